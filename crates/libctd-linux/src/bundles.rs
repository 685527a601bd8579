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
//! So once a task is deleted and containerd says it has no task of that id,
//! the id's bundle and its hidden twin are removed here, for an embedded
//! daemon only (whose state directory is libctd's). Nothing else in the
//! directory is touched, nor a directory a mount lies in (a rootfs
//! containerd could not unmount: removing through it would delete the
//! container's files).

use std::path::{Path, PathBuf};

use crate::conn::Conn;
use crate::procfs;

/// Removes what containerd left of the bundle of task `id` once it has no
/// such task: the id's bundle and its hidden twin. Does nothing at an
/// address (not libctd's daemon), when neither exists, or while containerd
/// has the task or cannot say.
pub(crate) async fn clear_left_behind(conn: &Conn, id: &str) {
    let Some(root) = &conn.shared.bundle_root else {
        return;
    };
    let dirs = left_behind(root, &conn.namespace, id);
    if dirs.is_empty() {
        return;
    }
    // Only the bundle of a task containerd no longer has is a leftover.
    match conn.api.get(id, "").await {
        Err(status) if status.code() == tonic::Code::NotFound => {}
        _ => return,
    }
    let mounts = procfs::mount_points();
    for dir in &dirs {
        tracing::warn!(container_id = id, bundle = %dir.display(), "removing a task bundle containerd left behind");
        if let Err(e) = remove(dir, &mounts) {
            tracing::warn!(container_id = id, bundle = %dir.display(), error = %e, "cannot remove a task bundle containerd left behind");
        }
    }
}

/// The bundle of `id` and its hidden twin that exist as directories in
/// `namespace` under `root`; none for a name that is not one path
/// component.
fn left_behind(root: &Path, namespace: &str, id: &str) -> Vec<PathBuf> {
    if !one_component(namespace) || !one_component(id) {
        return Vec::new();
    }
    let dir = root.join(namespace);
    [dir.join(id), dir.join(format!(".{id}"))]
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
        .collect()
}

/// Whether `name` names exactly one entry of a directory.
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
    fn only_the_ids_bundle_and_its_hidden_twin_are_found() {
        let root = tempfile::tempdir().unwrap();
        let ns = root.path().join("ns");
        for name in ["c", ".c", "c1", ".c1", "x.c", ".cc"] {
            bundle(&ns.join(name));
        }
        bundle(&root.path().join("other").join("c"));
        let found = left_behind(root.path(), "ns", "c");
        assert_eq!(found, vec![ns.join("c"), ns.join(".c")]);
        // Only one of them, or none.
        std::fs::remove_dir_all(ns.join("c")).unwrap();
        assert_eq!(left_behind(root.path(), "ns", "c"), vec![ns.join(".c")]);
        assert!(left_behind(root.path(), "ns", "d").is_empty());
        assert!(left_behind(root.path(), "absent", "c").is_empty());
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
            assert!(left_behind(root.path(), ns, id).is_empty(), "{ns:?} {id:?}");
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
        assert!(left_behind(root.path(), "ns", "c").is_empty());
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
