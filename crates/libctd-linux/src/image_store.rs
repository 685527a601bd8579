//! [`ImageStore`]: containerd's content store, leases and snapshotters of
//! one namespace, the parts an image's import and unpack are made of, with
//! typed answers and errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::snapshots::{CommitSnapshotRequest, PrepareSnapshotRequest};
use libctd_core::Result;
use tokio::io::AsyncRead;

use crate::conn::{Expected, LeaseId, Store, Tonic, Written, write_blob};
use crate::convert::status_error;

/// The label that bounds a lease's life when it is never deleted.
pub const LEASE_EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// The content store, leases and snapshotters of one containerd namespace
/// (from [`LinuxRemote::image_store`](crate::LinuxRemote::image_store)).
///
/// What is written or prepared under a [`Lease`] stays until the lease is
/// deleted; whatever nothing then references (an image, a container, another
/// lease) is freed by containerd's garbage collector.
///
/// Besides the parts an import is made of, it lists what the namespace
/// holds (leases, blobs, writes in progress, image records whatever their
/// platform, snapshots and a snapshot's parent), as `ctr` does: for an
/// engine's own checks and clean-up, and for leftover scans.
#[derive(Clone)]
pub struct ImageStore {
    store: Arc<dyn Store>,
    /// How long containerd may take to answer any one call (or, in a blob's
    /// write, each chunk).
    rpc_timeout: Duration,
}

/// A containerd lease: the work in progress it holds is kept from the
/// garbage collector.
#[derive(Clone, Debug)]
pub struct Lease {
    id: LeaseId,
}

impl Lease {
    /// The lease's id.
    pub fn id(&self) -> &str {
        self.id.as_str()
    }
}

/// A blob in the content store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentInfo {
    /// Its digest (`sha256:...`).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its labels.
    pub labels: HashMap<String, String>,
}

/// One mount of a snapshot, as containerd describes it (passed on to a
/// task's rootfs, or mounted by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMount {
    /// The filesystem type (`bind`, `overlay`, ...).
    pub kind: String,
    /// The source.
    pub source: String,
    /// The mount options.
    pub options: Vec<String>,
}

/// How a blob came to be in the content store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobWritten {
    /// This write stored it.
    Stored,
    /// It was there already; nothing was written.
    AlreadyPresent,
}

impl ImageStore {
    pub(crate) fn new(store: Tonic, rpc_timeout: Duration) -> Self {
        Self {
            store: Arc::new(store),
            rpc_timeout,
        }
    }

    /// Creates the lease `id`, which containerd deletes by itself after
    /// `expire` if it still exists then.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an id no gRPC header can carry; `AlreadyExists`
    /// for a lease that exists; containerd's failures by their kind.
    pub async fn create_lease(&self, id: &str, expire: Option<Duration>) -> Result<Lease> {
        let id = LeaseId::new(id)?;
        let mut labels = HashMap::new();
        if let Some(expire) = expire {
            labels.insert(
                LEASE_EXPIRE_LABEL.to_owned(),
                rfc3339(SystemTime::now() + expire),
            );
        }
        self.store
            .lease_create(&id, labels)
            .await
            .map_err(status_error)?;
        Ok(Lease { id })
    }

    /// Deletes `lease`; with `sync`, returns once the garbage collector has
    /// freed what only the lease held.
    ///
    /// # Errors
    ///
    /// `NotFound` for a lease that does not exist; containerd's failures.
    pub async fn delete_lease(&self, lease: &Lease, sync: bool) -> Result<()> {
        self.store
            .lease_delete(lease.id(), sync)
            .await
            .map_err(status_error)
    }

    /// Writes the blob of `digest` and `size` read from `reader` under
    /// `lease`, streamed in chunks of 1 MiB (`progress` hears the bytes
    /// written after each), and commits it with `labels`. The ingest is
    /// named `reference` while it is written.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` naming the digest for a malformed digest, or data
    /// whose digest or size does not match (containerd verifies both on
    /// commit); a failed read of `reader` (`InvalidArgument` when it ended
    /// early or held bad data); `DeadlineExceeded` when containerd does not
    /// answer a chunk within the remote's deadline. On any failure the
    /// ingest is aborted: nothing half-written stays.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_blob(
        &self,
        lease: &Lease,
        reference: &str,
        digest: &str,
        size: u64,
        labels: HashMap<String, String>,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<BlobWritten> {
        let expected = Expected { digest, size };
        let written = write_blob(
            &*self.store,
            Some(&lease.id),
            reference,
            expected,
            labels,
            reader,
            progress,
            self.rpc_timeout,
        )
        .await?;
        Ok(match written {
            Written::Stored => BlobWritten::Stored,
            Written::AlreadyPresent => BlobWritten::AlreadyPresent,
        })
    }

    /// The blob of `digest`.
    ///
    /// # Errors
    ///
    /// `NotFound` when the store does not hold it; containerd's failures.
    pub async fn content_info(&self, digest: &str) -> Result<ContentInfo> {
        let info = self
            .store
            .content_info(digest)
            .await
            .map_err(status_error)?;
        Ok(ContentInfo {
            digest: info.digest,
            size: u64::try_from(info.size).unwrap_or_default(),
            labels: info.labels,
        })
    }

    /// Deletes the blob of `digest`.
    ///
    /// # Errors
    ///
    /// `NotFound` when the store does not hold it; containerd's failures.
    pub async fn delete_content(&self, digest: &str) -> Result<()> {
        self.store
            .content_delete(digest)
            .await
            .map_err(status_error)
    }

    /// Every blob in the store.
    ///
    /// # Errors
    ///
    /// containerd's failures.
    pub async fn contents(&self) -> Result<Vec<ContentInfo>> {
        let infos = self
            .store
            .content_list(Vec::new())
            .await
            .map_err(status_error)?;
        Ok(infos
            .into_iter()
            .map(|info| ContentInfo {
                digest: info.digest,
                size: u64::try_from(info.size).unwrap_or_default(),
                labels: info.labels,
            })
            .collect())
    }

    /// The ids of the namespace's leases.
    ///
    /// # Errors
    ///
    /// containerd's failures.
    pub async fn leases(&self) -> Result<Vec<String>> {
        let leases = self
            .store
            .lease_list(Vec::new())
            .await
            .map_err(status_error)?;
        Ok(leases.into_iter().map(|l| l.id).collect())
    }

    /// The names of the namespace's image records (whatever platform they
    /// are for).
    ///
    /// # Errors
    ///
    /// containerd's failures.
    pub async fn image_names(&self) -> Result<Vec<String>> {
        let images = self
            .store
            .image_list(Vec::new())
            .await
            .map_err(status_error)?;
        Ok(images.into_iter().map(|i| i.name).collect())
    }

    /// The parent of snapshot `key` in `snapshotter` ("" for none).
    ///
    /// # Errors
    ///
    /// `NotFound` for a key that does not exist; containerd's failures.
    pub async fn snapshot_parent(&self, snapshotter: &str, key: &str) -> Result<String> {
        let info = self
            .store
            .snapshot_stat(snapshotter, key)
            .await
            .map_err(status_error)?;
        Ok(info.parent)
    }

    /// The refs of the writes in progress (ingests not committed or
    /// aborted).
    ///
    /// # Errors
    ///
    /// containerd's failures.
    pub async fn writes_in_progress(&self) -> Result<Vec<String>> {
        let statuses = self
            .store
            .content_statuses(Vec::new())
            .await
            .map_err(status_error)?;
        Ok(statuses.into_iter().map(|s| s.r#ref).collect())
    }

    /// Prepares the active snapshot `key` over `parent` ("" for none) in
    /// `snapshotter`, under `lease`; its mounts.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` for a key in use; `NotFound` for a parent or
    /// snapshotter that does not exist; containerd's failures.
    pub async fn prepare_snapshot(
        &self,
        lease: Option<&Lease>,
        snapshotter: &str,
        key: &str,
        parent: &str,
    ) -> Result<Vec<SnapshotMount>> {
        let req = PrepareSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
            parent: parent.to_owned(),
            labels: HashMap::new(),
        };
        let mounts = self
            .store
            .snapshot_prepare(lease.map(|l| &l.id), req)
            .await
            .map_err(status_error)?;
        Ok(mounts.into_iter().map(mount).collect())
    }

    /// The mounts of the active snapshot `key`.
    ///
    /// # Errors
    ///
    /// `NotFound` for a key that does not exist; containerd's failures.
    pub async fn snapshot_mounts(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<Vec<SnapshotMount>> {
        let mounts = self
            .store
            .snapshot_mounts(snapshotter, key)
            .await
            .map_err(status_error)?;
        Ok(mounts.into_iter().map(mount).collect())
    }

    /// Commits the active snapshot `key` as `name`, under `lease`.
    ///
    /// # Errors
    ///
    /// `NotFound` for a key that does not exist; `AlreadyExists` for a name
    /// in use; containerd's failures.
    pub async fn commit_snapshot(
        &self,
        lease: Option<&Lease>,
        snapshotter: &str,
        name: &str,
        key: &str,
    ) -> Result<()> {
        let req = CommitSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            labels: HashMap::new(),
        };
        self.store
            .snapshot_commit(lease.map(|l| &l.id), req)
            .await
            .map_err(status_error)
    }

    /// Removes the snapshot `key`.
    ///
    /// # Errors
    ///
    /// `NotFound` for a key that does not exist; `FailedPrecondition` for a
    /// snapshot that others have as parent; containerd's failures.
    pub async fn remove_snapshot(&self, snapshotter: &str, key: &str) -> Result<()> {
        self.store
            .snapshot_remove(snapshotter, key)
            .await
            .map_err(status_error)
    }

    /// The names of the snapshots in `snapshotter`.
    ///
    /// # Errors
    ///
    /// `NotFound` for a snapshotter that does not exist; containerd's
    /// failures.
    pub async fn snapshots(&self, snapshotter: &str) -> Result<Vec<String>> {
        let infos = self
            .store
            .snapshot_list(snapshotter, Vec::new())
            .await
            .map_err(status_error)?;
        Ok(infos.into_iter().map(|i| i.name).collect())
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore").finish_non_exhaustive()
    }
}

fn mount(m: containerd_client::types::Mount) -> SnapshotMount {
    SnapshotMount {
        kind: m.r#type,
        source: m.source,
        options: m.options,
    }
}

/// `t` as RFC 3339 in UTC (what containerd's expiry label holds), to the
/// second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_599);
        assert_eq!(rfc3339(t), "2025-12-31T23:59:59Z");
    }
}
