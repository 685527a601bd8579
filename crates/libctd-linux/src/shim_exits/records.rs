//! The kept exits on disk: one file per container, under the libctd state
//! directory, so that they outlive the engine process that recorded them.
//!
//! Layout: `<dir>/<namespace>/<container id>`, each a small JSON object.
//! Directories are made 0700 and files 0600, as the rest of the state
//! directory; a file is written whole beside its final name (a name that
//! starts with `.`, which no id has) and renamed over it, so a reader never
//! sees half a record. Only the supervisor that owns the daemon writes;
//! any client of the state directory reads and removes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use prost_types::Timestamp;
use serde::{Deserialize, Serialize};

use super::exit::{KeptStatus, ShimExit};

/// The longest namespace or id accepted as a file name.
const MAX_NAME: usize = 255;

/// Whether `name` can be a containerd namespace or container id, and so a
/// safe file name: a letter or digit, then letters, digits, `.`, `_`, `-`.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A record as it is stored.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    pid: u32,
    status: KeptStatus,
    /// Seconds and nanoseconds since the epoch.
    exited_at: Option<(i64, i32)>,
}

/// The records under one directory.
#[derive(Debug)]
pub(crate) struct Records {
    dir: PathBuf,
}

impl Records {
    /// The records kept in `dir` (made when the first one is written).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, namespace: &str, id: &str) -> Option<PathBuf> {
        (valid_name(namespace) && valid_name(id)).then(|| self.dir.join(namespace).join(id))
    }

    /// Writes (or replaces) the record of `namespace`/`id`.
    pub(crate) fn write(&self, namespace: &str, id: &str, exit: &ShimExit) -> std::io::Result<()> {
        let Some(path) = self.path(namespace, id) else {
            return Err(std::io::Error::other(format!(
                "not a container name: {namespace:?}/{id:?}"
            )));
        };
        let ns_dir = self.dir.join(namespace);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ns_dir)?;
        let stored = Stored {
            pid: exit.pid,
            status: exit.status,
            exited_at: exit.exited_at.map(|t| (t.seconds, t.nanos)),
        };
        let text = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        let partial = ns_dir.join(format!(".{id}.partial"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(&text)?;
        drop(file);
        fs::rename(&partial, &path)
    }

    /// The record of `namespace`/`id`, if there is one that can be read.
    pub(crate) fn read(&self, namespace: &str, id: &str) -> Option<ShimExit> {
        let text = fs::read(self.path(namespace, id)?).ok()?;
        let stored: Stored = match serde_json::from_slice(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(namespace, container_id = id, error = %e, "an unreadable kept exit is ignored");
                return None;
            }
        };
        Some(ShimExit {
            pid: stored.pid,
            status: stored.status,
            exited_at: stored
                .exited_at
                .map(|(seconds, nanos)| Timestamp { seconds, nanos }),
        })
    }

    /// Removes the record of `namespace`/`id`; whether there was one.
    pub(crate) fn remove(&self, namespace: &str, id: &str) -> bool {
        self.path(namespace, id)
            .is_some_and(|path| fs::remove_file(path).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim_exits::exit::Lost;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn exit(pid: u32, status: KeptStatus) -> ShimExit {
        ShimExit {
            pid,
            status,
            exited_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
        }
    }

    #[test]
    fn records_are_written_read_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("exits"));
        assert_eq!(records.read("ns", "c1"), None);
        let first = exit(7, KeptStatus::Exited(3));
        records.write("ns", "c1", &first).unwrap();
        assert_eq!(records.read("ns", "c1"), Some(first));
        assert_eq!(records.read("other", "c1"), None);
        let lost = exit(8, KeptStatus::Lost(Lost::ShimDied));
        records.write("ns", "c1", &lost).unwrap();
        assert_eq!(records.read("ns", "c1"), Some(lost));
        // Another reader (a new engine process) sees the same.
        let again = Records::new(dir.path().join("exits"));
        assert_eq!(again.read("ns", "c1"), Some(lost));
        assert!(again.remove("ns", "c1"));
        assert!(!records.remove("ns", "c1"));
        assert_eq!(records.read("ns", "c1"), None);
        // Nothing but the namespace directory is left behind.
        let left: Vec<_> = fs::read_dir(dir.path().join("exits/ns")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn every_status_is_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("exits"));
        for status in [
            KeptStatus::Exited(u32::MAX - 1),
            KeptStatus::Lost(Lost::ShimDied),
            KeptStatus::Lost(Lost::Escaped),
        ] {
            records.write("ns", "c", &exit(3, status)).unwrap();
            assert_eq!(records.read("ns", "c").map(|e| e.status), Some(status));
        }
    }

    #[test]
    fn records_are_private_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("exits"));
        records
            .write("ns", "c1", &exit(1, KeptStatus::Exited(0)))
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("exits/ns")), 0o700);
        assert_eq!(mode(&dir.path().join("exits/ns/c1")), 0o600);
    }

    #[test]
    fn hostile_names_and_damaged_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("exits"));
        for (ns, id) in [
            ("ns", "../escape"),
            ("..", "c"),
            ("ns", ".hidden"),
            ("ns", ""),
            ("a/b", "c"),
            ("ns", "c\0"),
        ] {
            assert!(
                records
                    .write(ns, id, &exit(1, KeptStatus::Exited(0)))
                    .is_err(),
                "{ns}/{id}"
            );
            assert_eq!(records.read(ns, id), None);
            assert!(!records.remove(ns, id));
        }
        assert!(!dir.path().join("escape").exists());
        assert!(valid_name(&"a".repeat(MAX_NAME)));
        assert!(!valid_name(&"a".repeat(MAX_NAME + 1)));
        // A damaged or foreign file is no record.
        fs::create_dir_all(dir.path().join("exits/ns")).unwrap();
        for text in [
            "",
            "{",
            "[]",
            r#"{"pid":1}"#,
            r#"{"pid":1,"status":{"lost":"what"}}"#,
            r#"{"pid":1,"status":{"exited":2,"lost":"escaped"}}"#,
            r#"{"pid":1,"status":{"exited":-1}}"#,
        ] {
            fs::write(dir.path().join("exits/ns/c"), text).unwrap();
            assert_eq!(records.read("ns", "c"), None, "{text}");
        }
    }
}
