//! [`NamespaceGuard`]: a test's containerd namespace is emptied when the
//! test ends, whether it passed or failed, and before it is used.
//!
//! A test that panics half-way never reaches its own clean-up: without a
//! guard its tasks keep running in their shims after the test binary ended.
//! The guard drives `ctr` (the one next to the daemon binary the tests run,
//! see [`containerd_binary`]) with a bounded timeout, so a hung or dead
//! daemon cannot hang the drop; synchronous, so it also works while a panic
//! unwinds through an async test.
//!
//! ```no_run
//! use libctd_testkit::namespace::NamespaceGuard;
//! # fn demo(socket: std::path::PathBuf) {
//! let _guard = NamespaceGuard::new(socket, "restart");
//! // ... the test; whatever it leaves in "restart" is removed at the end.
//! # }
//! # fn main() { let _ = demo; }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::containerd::containerd_binary;

/// The snapshotters images are unpacked into by the tests.
const SNAPSHOTTERS: [&str; 2] = ["overlayfs", "native"];
/// The most layers above each other the guard removes.
const MAX_SNAPSHOT_DEPTH: usize = 64;

/// How long one `ctr` command may take (`--timeout`).
const CTR_TIMEOUT: &str = "10s";
/// How long `ctr` may take to connect (`--connect-timeout`).
const CTR_CONNECT_TIMEOUT: &str = "2s";

/// Empties a namespace of a containerd (tasks killed and deleted, then
/// containers, image records, leases, snapshots of the snapshotters images
/// are unpacked into, children first, and content) when created and when
/// dropped.
#[derive(Debug)]
pub struct NamespaceGuard {
    socket: PathBuf,
    namespace: String,
    ctr: PathBuf,
}

impl NamespaceGuard {
    /// A guard over `namespace` of the containerd at `socket`; empties it now.
    pub fn new(socket: impl Into<PathBuf>, namespace: impl Into<String>) -> Self {
        let guard = Self {
            socket: socket.into(),
            namespace: namespace.into(),
            ctr: ctr_next_to(&containerd_binary()),
        };
        guard.clean();
        guard
    }

    /// The namespace guarded.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Kills and deletes every task of the namespace, then deletes its
    /// containers, image records, leases, snapshots and content. Returns
    /// how many objects were removed.
    /// Failures (the daemon is gone, an object vanished meanwhile) are
    /// ignored: the guard does what the daemon lets it.
    pub fn clean(&self) -> usize {
        if !self.socket.exists() {
            return 0; // no daemon: nothing to ask (and no connect timeout to wait)
        }
        let mut removed = 0;
        for id in self.list(&["tasks", "ls", "-q"]) {
            if self.ctr(&["tasks", "rm", "-f", &id]).is_some() {
                removed += 1;
            }
        }
        for id in self.list(&["containers", "ls", "-q"]) {
            if self.ctr(&["containers", "rm", &id]).is_some() {
                removed += 1;
            }
        }
        for name in self.list(&["images", "ls", "-q"]) {
            if self.ctr(&["images", "rm", &name]).is_some() {
                removed += 1;
            }
        }
        for id in self.list(&["leases", "ls", "-q"]) {
            if self.ctr(&["leases", "rm", &id]).is_some() {
                removed += 1;
            }
        }
        for snapshotter in SNAPSHOTTERS {
            removed += self.remove_snapshots(snapshotter);
        }
        for digest in self.list(&["content", "ls", "-q"]) {
            if self.ctr(&["content", "rm", &digest]).is_some() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes the snapshots of `snapshotter`, children before their
    /// parents (a parent cannot go first); how many.
    fn remove_snapshots(&self, snapshotter: &str) -> usize {
        let mut removed = 0;
        // Each round removes the leaves; a chain of n goes in n rounds.
        for _ in 0..MAX_SNAPSHOT_DEPTH {
            let table = self.list(&["snapshots", "--snapshotter", snapshotter, "ls"]);
            let snapshots: Vec<(String, String)> = table
                .iter()
                .skip(1) // KEY PARENT KIND
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    match cols.as_slice() {
                        [key, parent, _kind] => Some(((*key).to_owned(), (*parent).to_owned())),
                        [key, _kind] => Some(((*key).to_owned(), String::new())),
                        _ => None,
                    }
                })
                .collect();
            if snapshots.is_empty() {
                break;
            }
            let leaves: Vec<&String> = snapshots
                .iter()
                .map(|(key, _)| key)
                .filter(|key| !snapshots.iter().any(|(_, parent)| parent == *key))
                .collect();
            let before = removed;
            for key in leaves {
                if self
                    .ctr(&["snapshots", "--snapshotter", snapshotter, "rm", key])
                    .is_some()
                {
                    removed += 1;
                }
            }
            if removed == before {
                break;
            }
        }
        removed
    }

    /// The ids one `ctr ... ls -q` prints.
    fn list(&self, args: &[&str]) -> Vec<String> {
        self.ctr(args)
            .map(|out| {
                out.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `ctr` on the namespace; its stdout when it succeeded.
    fn ctr(&self, args: &[&str]) -> Option<String> {
        let output = Command::new(&self.ctr)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", &self.namespace])
            .args(["--timeout", CTR_TIMEOUT])
            .args(["--connect-timeout", CTR_CONNECT_TIMEOUT])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let removed = self.clean();
        if removed > 0 {
            eprintln!(
                "libctd-testkit: removed {removed} objects (tasks, containers, images, leases, snapshots, content) left in namespace {}",
                self.namespace
            );
        }
    }
}

/// The `ctr` of the same containerd line: next to `containerd`, else the
/// one in `PATH`.
fn ctr_next_to(containerd: &Path) -> PathBuf {
    containerd
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("ctr"))
        .filter(|ctr| ctr.is_file())
        .unwrap_or_else(|| PathBuf::from("ctr"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctr_is_taken_next_to_the_daemon_or_from_path() {
        assert_eq!(ctr_next_to(Path::new("containerd")), PathBuf::from("ctr"));
        assert_eq!(
            ctr_next_to(Path::new("/nonexistent/bin/containerd")),
            PathBuf::from("ctr")
        );
    }

    #[test]
    fn a_guard_on_an_absent_daemon_does_nothing_and_does_not_hang() {
        let guard = NamespaceGuard::new("/nonexistent/containerd.sock", "none");
        assert_eq!(guard.clean(), 0);
        assert_eq!(guard.namespace(), "none");
    }
}
