//! The runtime binary the runc shim runs: found (a path that must exist, a
//! name looked up in `PATH`), and, when it needs flags of its own, a small
//! script under the remote's state directory that runs it with them (the
//! shim's options name a binary, never its flags).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use libctd_core::{Error, Result};

/// The binary the shim runs when its options name none.
const DEFAULT_BINARY: &str = "runc";

/// A runtime binary that cannot be used: `InvalidArgument`, as any option
/// naming something that does not exist.
fn missing(binary: &str, why: &str) -> Error {
    Error::invalid_argument(format!("runtime binary {binary:?} cannot be used: {why}"))
}

/// Whether `path` is an executable regular file.
fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks the binary the shim is to run when it is a path (a name is the
/// shim's to find, in its own `PATH`): it must be absolute and an
/// executable file.
pub(crate) fn check_path(binary: &str) -> Result<()> {
    if !binary.contains('/') {
        return Ok(());
    }
    if !binary.starts_with('/') {
        return Err(missing(
            binary,
            "a path must be absolute (the shim runs it from the task's bundle)",
        ));
    }
    if !executable(Path::new(binary)) {
        return Err(missing(binary, "no executable file exists at that path"));
    }
    Ok(())
}

/// The absolute path of `binary` (empty: `runc`): a path as it is, a name
/// looked up in this process's `PATH`.
fn resolve(binary: &str) -> Result<PathBuf> {
    let binary = if binary.is_empty() {
        DEFAULT_BINARY
    } else {
        binary
    };
    check_path(binary)?;
    if binary.contains('/') {
        return Ok(PathBuf::from(binary));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(binary))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| missing(binary, "not in PATH: no executable of that name was found"))
}

/// `arg` quoted for a POSIX shell: single quotes, each `'` closed, escaped
/// and reopened.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The script that runs `binary` with `args` before the shim's own.
fn script(binary: &Path, args: &[String]) -> String {
    let mut line = format!("exec {}", quote(&binary.to_string_lossy()));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    format!(
        "#!/bin/sh\n# Written by libctd: the runtime binary with its own flags, for the runc shim.\n{line} \"$@\"\n"
    )
}

/// FNV-1a, 64 bits: a name for a script's content that stays the same
/// from one build to the next (std's hasher does not promise that).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The path of a script in `dir` that runs `binary` (a name or path;
/// empty: `runc`) with `args` first, written when it is not there yet.
///
/// Its name is its content's hash, so containers created with the same
/// runtime and flags share one script, and a script is never changed while
/// a shim may run it (the shim runs its binary for every operation, long
/// after `create`). Scripts stay as long as the state directory.
pub(crate) fn with_args(dir: &Path, binary: &str, args: &[String]) -> Result<String> {
    let resolved = resolve(binary)?;
    let content = script(&resolved, args);
    let stem = resolved
        .file_name()
        .map_or_else(|| "runtime".into(), |n| n.to_string_lossy().into_owned());
    let path = dir.join(format!("{stem}-{:016x}", fnv1a(content.as_bytes())));
    let written = |e: std::io::Error| {
        Error::system(format!(
            "cannot write the runtime script {}",
            path.display()
        ))
        .with_source(e)
    };
    if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) && executable(&path) {
        return Ok(path.to_string_lossy().into_owned());
    }
    std::fs::create_dir_all(dir).map_err(written)?;
    // Written aside and renamed into place: a shim never runs half a script.
    // The aside file is this call's own (creates run concurrently in one
    // process, and processes may share the state directory), and it is
    // removed whatever fails.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let partial = dir.join(format!(
        ".{stem}-{}-{}.partial",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&partial)?;
        file.write_all(content.as_bytes())?;
        // Set, not left to the umask: the shim must be able to run it.
        file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&partial, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        written(e)
    })?;
    Ok(path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;

    #[test]
    fn a_script_runs_the_binary_with_its_flags_first() {
        let dir = tempfile::tempdir().unwrap();
        let args = vec!["--network=none".to_owned(), "--odd='x'".to_owned()];
        let path = with_args(dir.path(), "/bin/echo", &args).unwrap();
        assert!(path.starts_with(dir.path().to_str().unwrap()), "{path}");
        let out = run_script(&path, &["create", "it's"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "--network=none --odd='x' create it's\n"
        );
        // The same runtime and flags: the same script, not rewritten.
        assert_eq!(with_args(dir.path(), "/bin/echo", &args).unwrap(), path);
        let other = with_args(dir.path(), "/bin/echo", &args[..1]).unwrap();
        assert_ne!(other, path);
        // A name is looked up in PATH.
        let by_name = with_args(dir.path(), "echo", &args).unwrap();
        assert!(by_name.contains("/echo-"), "{by_name}");
    }

    #[test]
    fn hostile_flags_reach_the_runtime_literally() {
        let dir = tempfile::tempdir().unwrap();
        let pwned = dir.path().join("pwned");
        let victim = dir.path().join("x");
        std::fs::create_dir(&victim).unwrap();
        let hostile = [
            format!("--x=$(touch {})", pwned.display()),
            format!("--y=`touch {}`", pwned.display()),
            format!("'; rm -rf {}; '", victim.display()),
            format!("--z=\"; rm -rf {} #", victim.display()),
            "--n=a\nb\r\n".to_owned(),
            "--v=$HOME ${PATH} $0 $@ $1 \\ \\n ~ * ?".to_owned(),
            "--q=it's \"quoted\" '' \"\"".to_owned(),
            "--u=\u{e9}\u{1F600}\t|&;<>(){}!".to_owned(),
        ];
        // printf's format first: each argument after it printed as it came.
        let mut args = vec!["--%s]\n".to_owned()];
        args.extend(hostile.iter().cloned());
        let path = with_args(dir.path(), "/usr/bin/printf", &args).unwrap();
        let out = run_script(&path, &["--create$(id)", "it's"]);
        assert!(out.status.success(), "{out:?}");
        let expected: String = hostile
            .iter()
            .map(String::as_str)
            .chain(["--create$(id)", "it's"])
            .map(|a| format!("--{a}]\n"))
            .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        assert!(!pwned.exists(), "a flag ran a command");
        assert!(victim.exists(), "a flag ran a command");
    }

    #[test]
    fn a_script_is_executable_and_leaves_nothing_aside() {
        let dir = tempfile::tempdir().unwrap();
        let args = vec!["--debug".to_owned()];
        let path = with_args(dir.path(), "/bin/echo", &args).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{path}");
        // A script whose mode was lost is written again.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(with_args(dir.path(), "/bin/echo", &args).unwrap(), path);
        assert!(executable(Path::new(&path)));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    /// Runs a script just written. Another test's child, forked while the
    /// script's temporary file was open for writing and not yet exec'd,
    /// holds a writable descriptor for a moment: exec then fails with
    /// ETXTBSY (the shim, a process of its own, runs the script later).
    fn run_script(path: &str, args: &[&str]) -> std::process::Output {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match std::process::Command::new(path).args(args).output() {
                Err(e)
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::yield_now();
                }
                r => return r.unwrap(),
            }
        }
    }

    #[test]
    fn concurrent_writers_each_get_their_own_script_whole() {
        // Creates run concurrently in one process, and two processes may
        // share the state directory: every writer of a script gets it whole.
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    let args = vec![format!("--n={}", i % 4), "--same".to_owned()];
                    let mut paths = Vec::new();
                    for _ in 0..20 {
                        paths.push((i % 4, with_args(&dir, "/bin/echo", &args).unwrap()));
                    }
                    paths
                })
            })
            .collect();
        for t in threads {
            for (i, path) in t.join().unwrap() {
                let out = run_script(&path, &[]);
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    format!("--n={i} --same\n"),
                    "{path}"
                );
            }
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            4,
            "one script per set of flags, nothing aside: {names:?}"
        );
    }

    #[test]
    fn a_missing_or_relative_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let args = vec!["--x".to_owned()];
        for (binary, says) in [
            ("/nonexistent/runsc", "no executable file"),
            ("/etc/passwd", "no executable file"),
            ("bin/runsc", "absolute"),
            ("no-such-runtime-binary", "not in PATH"),
        ] {
            let e = with_args(dir.path(), binary, &args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{binary}");
            assert!(e.message().contains(says), "{binary}: {e}");
        }
        assert_eq!(
            check_path("/nonexistent/runc").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        // A name is the shim's to find.
        assert!(check_path("no-such-runtime-binary").is_ok());
        assert!(check_path("/bin/sh").is_ok());
    }
}
