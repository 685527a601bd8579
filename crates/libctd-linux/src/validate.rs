//! Checks of what an engine asks to create, so that what cannot work fails
//! at `create` with `InvalidArgument` instead of half-way through `start`.

use std::path::Path;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Error, Result};

/// The longest runtime name accepted.
const MAX_RUNTIME_LEN: usize = 255;

/// A container spec that runc can start: it has a process, and its root
/// filesystem is an absolute path to an existing directory (no mounts are
/// passed to the task, so a path relative to the bundle cannot work).
pub(crate) fn spec(spec: &Spec) -> Result<()> {
    if spec.process().is_none() {
        return Err(Error::invalid_argument(
            "the spec has no process: a Linux container needs one",
        ));
    }
    let Some(root) = spec.root() else {
        return Err(Error::invalid_argument(
            "the spec has no root: a Linux container needs root.path, its root filesystem",
        ));
    };
    rootfs(root.path())
}

/// A root filesystem path: absolute, an existing directory.
fn rootfs(path: &Path) -> Result<()> {
    if !path.is_absolute() {
        return Err(Error::invalid_argument(format!(
            "root.path {} is relative: give the root filesystem as an absolute path",
            path.display()
        )));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid_argument(format!(
            "root.path {} is not a directory",
            path.display()
        ))),
        Err(e) => Err(Error::invalid_argument(format!(
            "root.path {} cannot be used: {e}",
            path.display()
        ))
        .with_source(e)),
    }
}

/// A containerd runtime: a name such as `io.containerd.runc.v2` (dotted
/// lowercase words, at least three) or the absolute path of a shim binary.
pub(crate) fn runtime(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid_argument(format!(
            "runtime {name:?} is not a valid runtime: {why}"
        )))
    };
    if name.is_empty() || name.len() > MAX_RUNTIME_LEN {
        return bad("it must have 1 to 255 characters");
    }
    if name.starts_with('/') {
        return match std::fs::metadata(name) {
            Ok(m) if m.is_file() => Ok(()),
            _ => bad("no shim binary exists at that path"),
        };
    }
    let parts: Vec<&str> = name.split('.').collect();
    let word_ok = |w: &&str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if parts.len() < 3 || !parts.iter().all(word_ok) {
        return bad("expected a name like io.containerd.runc.v2, or a shim's absolute path");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes() {
        for good in ["io.containerd.runc.v2", "io.containerd.runsc.v1", "/bin/sh"] {
            assert!(runtime(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "runc",
            "io..runc",
            "io.containerd.runc.v2 ",
            "IO.containerd.runc.v2",
            "io.containerd.run/c.v2",
            "/nonexistent/shim",
            "io.containerd.\u{0}.v2",
        ] {
            let e = runtime(bad).unwrap_err();
            assert_eq!(e.kind(), libctd_core::ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert!(runtime(&"a.".repeat(200)).is_err());
    }

    #[test]
    fn rootfs_paths() {
        assert!(rootfs(Path::new("/")).is_ok());
        for bad in ["rootfs", "./rootfs", "/nonexistent/rootfs", "/etc/passwd"] {
            let e = rootfs(Path::new(bad)).unwrap_err();
            assert_eq!(e.kind(), libctd_core::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.message().contains(bad.trim_start_matches("./")), "{e}");
        }
    }
}
