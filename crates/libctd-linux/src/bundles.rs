//! Task bundles containerd left on disk after the task was deleted.
//!
//! containerd (1.6 to 2.x alike) deletes a task's bundle in two steps: it
//! renames `<id>` to a hidden twin `.<id>` beside it, then removes the
//! twin. A daemon killed between the two, or during the removal, leaves the
//! twin, and containerd never removes it: its start-up skips hidden names
//! and a create of the id does not look at it. The next delete of the same
//! id then cannot rename the new bundle onto the twin (a directory that is
//! not empty), only logs that, answers the delete with success and leaves
//! the bundle too. (The shim's work directory, elsewhere, is containerd's
//! own to clear: at its next start and at the next create of the id.)
//!
//! So the hidden twin is removed here before containerd deletes the task
//! (its rename then succeeds and containerd removes the bundle itself), and
//! again after, for an embedded daemon only (whose state directory is
//! libctd's). Only the twin: nothing but containerd's delete ever makes it,
//! nothing runs from it. The visible `<id>` is never touched: an operation
//! of an earlier client still finishing in the background (cancel safety)
//! can run while a new task of the same id is being created, and containerd
//! answers NotFound for that task until its create returns: removing `<id>`
//! then took the new task's bundle from under its shim (seen in the chaos
//! test as an init reported lost). Nor is a twin a mount lies in touched (a
//! rootfs containerd could not unmount: removing through it would delete
//! the container's files).

use std::path::{Path, PathBuf};

use crate::conn::Conn;
use crate::procfs;

/// Removes the hidden twin containerd left of a bundle of task `id`, if
/// there is one. Does nothing at an address (not libctd's daemon).
pub(crate) fn clear_left_behind(conn: &Conn, id: &str) {
    let Some(root) = &conn.shared.bundle_root else {
        return;
    };
    let Some(twin) = left_behind(root, &conn.namespace, id) else {
        return;
    };
    let mounts = procfs::mount_points();
    tracing::warn!(container_id = id, bundle = %twin.display(), "removing a task bundle containerd left behind");
    if let Err(e) = remove(&twin, &mounts) {
        tracing::warn!(container_id = id, bundle = %twin.display(), error = %e, "cannot remove a task bundle containerd left behind");
    }
}

/// The hidden twin `.<id>` of task `id`'s bundle in `namespace`, when it
/// is a directory (not a file or a link) and both names are one path
/// component.
fn left_behind(root: &Path, namespace: &str, id: &str) -> Option<PathBuf> {
    if !one_component(namespace) || !one_component(id) {
        return None;
    }
    Some(root.join(namespace).join(format!(".{id}")))
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
}

fn one_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Removes `dir` unless one of `mounts` lies in it (or is it).
fn remove(dir: &Path, mounts: &[PathBuf]) -> std::io::Result<()> {
    if let Some(mount) = mounts.iter().find(|m| m.starts_with(dir)) {
        return Err(std::io::Error::other(format!(
            "{} is mounted in it",
            mount.display()
        )));
    }
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle as containerd lays it out (a part of one, as a cut-short
    /// removal leaves it).
    fn bundle(dir: &Path) {
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
    }

    #[test]
    fn only_the_ids_hidden_twin_is_found() {
        let root = tempfile::tempdir().unwrap();
        let ns = root.path().join("ns");
        for name in ["c", ".c", "c1", ".c1", "x.c", ".cc"] {
            bundle(&ns.join(name));
        }
        bundle(&root.path().join("other").join("c"));
        // Only the twin: the visible bundle may be a live task's.
        assert_eq!(left_behind(root.path(), "ns", "c"), Some(ns.join(".c")));
        std::fs::remove_dir_all(ns.join(".c")).unwrap();
        assert_eq!(left_behind(root.path(), "ns", "c"), None);
        assert!(ns.join("c").exists());
        assert_eq!(left_behind(root.path(), "ns", "d"), None);
        assert_eq!(left_behind(root.path(), "absent", "c"), None);
    }

    #[test]
    fn names_that_are_not_one_component_find_nothing() {
        let root = tempfile::tempdir().unwrap();
        bundle(&root.path().join("ns").join("c"));
        for (ns, id) in [
            ("ns", ""),
            ("ns", "."),
            ("ns", ".."),
            ("ns", "c/.."),
            ("ns", "../ns/c"),
            ("", "ns"),
            ("..", "c"),
            ("ns/c", "rootfs"),
        ] {
            assert_eq!(left_behind(root.path(), ns, id), None, "{ns:?} {id:?}");
        }
    }

    #[test]
    fn a_file_or_link_by_the_name_is_not_a_bundle() {
        let root = tempfile::tempdir().unwrap();
        let ns = root.path().join("ns");
        let elsewhere = root.path().join("elsewhere");
        bundle(&elsewhere);
        std::fs::create_dir_all(&ns).unwrap();
        std::fs::write(ns.join("c"), "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, ns.join(".c")).unwrap();
        assert_eq!(left_behind(root.path(), "ns", "c"), None);
    }

    #[test]
    fn a_bundle_is_removed_whole_unless_a_mount_lies_in_it() {
        let root = tempfile::tempdir().unwrap();
        let (c, twin) = (root.path().join("c"), root.path().join(".c"));
        bundle(&c);
        bundle(&twin);
        let mounts = vec![PathBuf::from("/proc"), twin.join("rootfs")];
        let refused = remove(&twin, &mounts).unwrap_err();
        assert!(refused.to_string().contains("rootfs"), "{refused}");
        assert!(twin.join("config.json").exists());
        remove(&c, &mounts).unwrap();
        assert!(!c.exists());
        // A mount that only shares a prefix of the name is not in it.
        remove(&twin, &[PathBuf::from(format!("{}x", twin.display()))]).unwrap();
        assert!(!twin.exists());
    }
}
