//! Runs the Windows crate's tests as Windows binaries under Wine.
//!
//! 1. `cargo test -p libctd-windows --target x86_64-pc-windows-gnu --no-run
//!    --message-format=json` builds the test executables with the mingw linker
//!    (set in `.cargo/config.toml`); their paths come from the JSON messages.
//! 2. `xtask/assets/windows/bcryptprimitives.c` is built with
//!    `x86_64-w64-mingw32-gcc` into the DLL Rust's std needs and Wine 8.0 lacks,
//!    and placed beside the executables.
//! 3. Each executable runs under `wine64` (`/usr/lib/wine/wine64`, or
//!    `$LIBCTD_WINE`) with `WINEDEBUG=-all` and a private `WINEPREFIX` under the
//!    target directory, for at most [`EXE_TIMEOUT`] each (a hung test binary is
//!    killed and fails the run); any failure fails the run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, WINDOWS_TARGET, cargo, workspace_root};

/// The package whose tests run under Wine.
const PACKAGE: &str = "libctd-windows";
/// Where Debian's wine64 package puts the loader.
const DEFAULT_WINE: &str = "/usr/lib/wine/wine64";
/// The mingw C compiler.
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";
/// How long one test executable may run under Wine before it is killed.
const EXE_TIMEOUT: Duration = Duration::from_secs(600);

/// Builds and runs the Windows tests under wine64.
pub fn run() -> Result {
    let root = workspace_root();
    let target_dir = target_dir(&root);
    let exes = build_tests(&root)?;
    if exes.is_empty() {
        return Err(format!(
            "cargo built no test executables for {PACKAGE} ({WINDOWS_TARGET})"
        ));
    }
    let dll = build_stub(&root, &target_dir)?;
    for dir in exe_dirs(&exes) {
        let dest = dir.join("bcryptprimitives.dll");
        std::fs::copy(&dll, &dest)
            .map_err(|e| format!("cannot copy {} to {}: {e}", dll.display(), dest.display()))?;
    }
    let wine = env::var_os("LIBCTD_WINE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WINE));
    if !wine.exists() {
        return Err(format!(
            "{} not found: install wine64 (cargo xtask setup does)",
            wine.display()
        ));
    }
    let prefix = target_dir.join("wine").join("prefix");
    std::fs::create_dir_all(&prefix)
        .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;

    let mut failed = Vec::new();
    for exe in &exes {
        println!("--> wine {}", exe.display());
        let mut command = Command::new(&wine);
        command
            .arg(exe)
            .current_dir(&root)
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            // No Mono/Gecko installers when the prefix is created; our stub
            // bcryptprimitives.dll is the native one to load.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=;bcryptprimitives=n")
            .env_remove("DISPLAY")
            .stdin(Stdio::null());
        let what = format!("{} {}", wine.display(), exe.display());
        match run_bounded(&mut command, &what, EXE_TIMEOUT)? {
            Some(status) if status.success() => {}
            Some(status) => failed.push(format!("{} ({status})", exe.display())),
            None => failed.push(format!(
                "{} (killed: still running after {EXE_TIMEOUT:?})",
                exe.display()
            )),
        }
    }
    if failed.is_empty() {
        println!("all {} Windows test binaries passed under Wine", exes.len());
        Ok(())
    } else {
        Err(format!(
            "Windows test binaries failed under Wine: {}",
            failed.join(", ")
        ))
    }
}

/// Runs `command` for at most `timeout`: its exit status, or `None` when it
/// had to be killed. Polls with a deadline.
fn run_bounded(command: &mut Command, what: &str, timeout: Duration) -> Result<Option<ExitStatus>> {
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("cannot wait for {what}: {e}"))?
        {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // Killing may race with its exit; either way it is gone after wait.
            let _ = child.kill();
            child
                .wait()
                .map_err(|e| format!("cannot reap {what} after killing it: {e}"))?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        }
        None => root.join("target"),
    }
}

/// Builds the test executables and returns their paths.
fn build_tests(root: &Path) -> Result<Vec<PathBuf>> {
    println!("--> building the {PACKAGE} tests for {WINDOWS_TARGET}");
    let output = cargo(&[
        "test",
        "-p",
        PACKAGE,
        "--target",
        WINDOWS_TARGET,
        "--no-run",
        "--message-format=json",
    ])
    .current_dir(root)
    .stderr(Stdio::inherit())
    .output()
    .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the {PACKAGE} tests for {WINDOWS_TARGET} failed ({})",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut exes: Vec<PathBuf> = stdout
        .lines()
        .filter(|l| l.contains(r#""reason":"compiler-artifact""#))
        .filter_map(|l| json_string_field(l, "executable"))
        .map(PathBuf::from)
        .filter(|p| p.extension().is_some_and(|e| e == "exe"))
        .collect();
    exes.sort();
    exes.dedup();
    Ok(exes)
}

/// The string value of `"field":"..."` in one line of JSON (`None` for
/// `null` or absent), with JSON escapes undone.
fn json_string_field(line: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\":\"");
    let start = line.find(&key)? + key.len();
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Builds the bcryptprimitives.dll stub and returns its path.
fn build_stub(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    let source = root
        .join("xtask")
        .join("assets")
        .join("windows")
        .join("bcryptprimitives.c");
    let out_dir = target_dir.join(WINDOWS_TARGET).join("wine-stub");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let dll = out_dir.join("bcryptprimitives.dll");
    println!("--> building {}", dll.display());
    let status = Command::new(MINGW_GCC)
        .args(["-shared", "-O2", "-Wall", "-o"])
        .arg(&dll)
        .arg(&source)
        .arg("-ladvapi32")
        .status()
        .map_err(|e| format!("cannot run {MINGW_GCC}: {e} (install gcc-mingw-w64-x86-64)"))?;
    if status.success() {
        Ok(dll)
    } else {
        Err(format!(
            "{MINGW_GCC} failed to build {} ({status})",
            dll.display()
        ))
    }
}

fn exe_dirs(exes: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = exes
        .iter()
        .filter_map(|e| e.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_command_that_outlives_its_deadline_is_killed() {
        let mut quick = Command::new("true");
        let status = run_bounded(&mut quick, "true", Duration::from_secs(60)).unwrap();
        assert!(status.is_some_and(|s| s.success()));
        let mut hung = Command::new("sleep");
        hung.arg("600");
        assert_eq!(
            run_bounded(&mut hung, "sleep", Duration::from_millis(200)).unwrap(),
            None
        );
        let err = run_bounded(
            &mut Command::new("/nonexistent/libctd"),
            "nothing",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.contains("cannot run nothing"), "{err}");
    }

    #[test]
    fn reads_executables_from_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"client"},"executable":"/w/target/x86_64-pc-windows-gnu/debug/deps/client-1a2b.exe","fresh":true}"#;
        assert_eq!(
            json_string_field(line, "executable").as_deref(),
            Some("/w/target/x86_64-pc-windows-gnu/debug/deps/client-1a2b.exe")
        );
        let none = r#"{"reason":"compiler-artifact","executable":null}"#;
        assert_eq!(json_string_field(none, "executable"), None);
        let escaped = r#"{"executable":"C:\\a\"b\u0041"}"#;
        assert_eq!(
            json_string_field(escaped, "executable").as_deref(),
            Some("C:\\a\"bA")
        );
        let controls = r#"{"executable":"a\rb\tc\/d"}"#;
        assert_eq!(
            json_string_field(controls, "executable").as_deref(),
            Some("a\rb\tc/d")
        );
    }
}
