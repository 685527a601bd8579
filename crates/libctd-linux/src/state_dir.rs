//! The embedded daemon's state directory: where its files live, and the
//! rules for using one (never take over a directory libctd did not make).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libctd_core::{Error, Result};

/// The files of an embedded daemon under the state directory.
#[derive(Debug, Clone)]
pub(crate) struct DaemonPaths {
    pub socket: PathBuf,
    pub ttrpc_socket: PathBuf,
    pub pid_file: PathBuf,
    pub config_file: PathBuf,
    pub log_file: PathBuf,
    /// Held (flock) by the one supervisor that owns the daemon.
    pub lock_file: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    /// The init exits kept across the daemon's restarts (`shim_exits`).
    pub exits: PathBuf,
}

impl DaemonPaths {
    pub(crate) fn new(state_dir: &Path) -> Self {
        let daemon = state_dir.join("daemon");
        Self {
            socket: state_dir.join("containerd.sock"),
            ttrpc_socket: state_dir.join("containerd.sock.ttrpc"),
            pid_file: state_dir.join("containerd.pid"),
            config_file: state_dir.join("containerd.toml"),
            log_file: state_dir.join("containerd.log"),
            lock_file: state_dir.join("supervisor.lock"),
            root: daemon.join("root"),
            state: daemon.join("state"),
            exits: state_dir.join("exits"),
        }
    }
}

/// An error about the state directory.
pub(crate) fn state_dir_error(dir: &Path, what: &str, e: std::io::Error) -> Error {
    let msg = format!(
        "the state directory {} cannot be used: {what}",
        dir.display()
    );
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::permission_denied(msg),
        _ => Error::invalid_argument(msg),
    }
    .with_source(e)
}

/// The file that marks a state directory as created by libctd: only such a
/// directory is ever removed whole.
pub(crate) const CREATED_MARKER: &str = ".libctd-created";

/// Creates `dir` (mode 0700, marked as libctd's) or checks that an existing
/// one is safe to use: a real directory (not a symlink), owned by this
/// process's user, writable by no one else. An existing directory is never
/// changed: its mode stays as its owner set it.
pub(crate) fn prepare_state_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let refuse = |why: String| {
        Error::invalid_argument(format!(
            "the state directory {} cannot be used: {why}",
            dir.display()
        ))
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => {
            if meta.file_type().is_symlink() {
                return Err(refuse(
                    "it is a symbolic link; name the directory it points to".into(),
                ));
            }
            if !meta.is_dir() {
                return Err(refuse("it is not a directory".into()));
            }
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me {
                return Err(Error::permission_denied(format!(
                    "the state directory {} cannot be used: it is owned by uid {}, not by this process's uid {me}",
                    dir.display(),
                    meta.uid()
                )));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(refuse(format!(
                    "it is writable by other users (mode {:o}); use a directory only its owner can write (libctd never changes the mode of a directory it did not create)",
                    meta.mode() & 0o7777
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| state_dir_error(dir, "cannot create its parent", e))?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {
                    std::fs::write(dir.join(CREATED_MARKER), b"")
                        .map_err(|e| state_dir_error(dir, "it is not writable", e))?;
                }
                // Made by someone else meanwhile: check it as an existing one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return prepare_state_dir(dir);
                }
                Err(e) => return Err(state_dir_error(dir, "cannot create it", e)),
            }
        }
        Err(e) => return Err(state_dir_error(dir, "cannot inspect it", e)),
    }
    let probe = dir.join(".libctd-probe");
    std::fs::write(&probe, b"").map_err(|e| state_dir_error(dir, "it is not writable", e))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Removes what libctd made under a state directory: the whole directory
/// when libctd created it, else only its own files and folders in it.
pub(crate) fn remove_state_dir(dir: &Path) {
    if dir.join(CREATED_MARKER).exists() {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let paths = DaemonPaths::new(dir);
    for file in [
        &paths.socket,
        &paths.ttrpc_socket,
        &paths.pid_file,
        &paths.config_file,
        &paths.log_file,
        &paths.lock_file,
    ] {
        let _ = std::fs::remove_file(file);
    }
    for sub in ["daemon", "fifo", "runc"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
}

/// The first executable named `name` in PATH (or `name` itself when it has a `/`).
pub(crate) fn find_binary(name: &Path) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.components().count() > 1 {
        return is_exec(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_exec(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_found_in_path_or_by_path() {
        assert!(find_binary(Path::new("sh")).is_some());
        assert!(find_binary(Path::new("/bin/sh")).is_some());
        assert!(find_binary(Path::new("/nonexistent/x")).is_none());
        assert!(find_binary(Path::new("no-such-binary-libctd")).is_none());
    }
}
