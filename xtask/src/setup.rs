//! Installs what the build, the tests and the demo need.
//!
//! Debian packages are installed with apt when running as root; otherwise the
//! exact command is printed and setup fails. The other containerd lines the
//! tests run on are fetched into `target/containerd/` (see `daemons.rs`). The
//! Windows rustup target is added when missing.

use std::path::Path;
use std::process::Command;

use crate::{Result, WINDOWS_TARGET};

/// A program the project needs, and the Debian package that ships it.
#[derive(Clone, Copy)]
struct Need {
    path_or_name: &'static str,
    package: &'static str,
}

/// What the Linux backend, its tests and the demo need.
const LINUX: &[Need] = &[
    Need {
        path_or_name: "containerd",
        package: "containerd",
    },
    Need {
        path_or_name: "runc",
        package: "runc",
    },
    Need {
        path_or_name: "/bin/busybox",
        package: "busybox-static",
    },
    // containerd-client's build script compiles containerd's API with
    // protoc (it brings the .proto files, the well-known types among them).
    Need {
        path_or_name: "protoc",
        package: "protobuf-compiler",
    },
    Need {
        path_or_name: "criu",
        package: "criu",
    },
    // The runtimes other than runc that the runtime tests run through the
    // runc shim: gVisor, and crun (which refuses a hybrid cgroup host).
    Need {
        path_or_name: "runsc",
        package: "runsc",
    },
    Need {
        path_or_name: "crun",
        package: "crun",
    },
];

/// What building and running the Windows tests needs.
const WINDOWS: &[Need] = &[
    Need {
        path_or_name: "x86_64-w64-mingw32-gcc",
        package: "gcc-mingw-w64-x86-64",
    },
    Need {
        path_or_name: "/usr/lib/wine/wine64",
        package: "wine64",
    },
];

/// Everything.
pub(crate) fn all() -> Result {
    install(&[LINUX, WINDOWS].concat())?;
    crate::daemons::fetch_all()?;
    rustup_target()
}

/// What the Linux demo and benchmarks need (the benchmarks may run on any
/// tested containerd line).
pub(crate) fn linux() -> Result {
    install(LINUX)?;
    crate::daemons::fetch_all()
}

fn install(needs: &[Need]) -> Result {
    let mut missing: Vec<&str> = needs
        .iter()
        .filter(|n| !present(n.path_or_name))
        .map(|n| n.package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        return Err(format!("missing packages; as root, run:\n    {command}"));
    }
    println!("==> installing {}", missing.join(" "));
    let status = Command::new("sh")
        .args(["-c", &command])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run {command}: {e}"))?;
    if !status.success() {
        return Err(format!("{command} failed ({status})"));
    }
    match needs.iter().find(|n| !present(n.path_or_name)) {
        Some(n) => Err(format!(
            "{} is still missing after installing {}",
            n.path_or_name, n.package
        )),
        None => Ok(()),
    }
}

fn rustup_target() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == WINDOWS_TARGET)
    {
        return Ok(());
    }
    println!("==> rustup target add {WINDOWS_TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", WINDOWS_TARGET])
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "rustup target add {WINDOWS_TARGET} failed ({status})"
        ))
    }
}

fn present(path_or_name: &str) -> bool {
    if path_or_name.starts_with('/') {
        return Path::new(path_or_name).exists();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(path_or_name).is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
