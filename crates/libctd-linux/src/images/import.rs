//! Importing an image archive: everything is written under a lease of its
//! own (with an expiry, so that what a crashed engine left is collected):
//! each blob streamed into the content store as the archive is read (with
//! progress), the layers unpacked, the garbage collector's labels set, an
//! image record per name; then the lease goes, and the records keep what
//! they reference. A failure removes the records it made and deletes the
//! lease, waiting for the garbage collector: nothing is left.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use containerd_client::services::v1::Image as ImageRecord;
use containerd_client::types::Descriptor as DescriptorProto;
use libctd_core::{Archive, Image, ImportOptions, ImportProgress, ProgressCallback, Result};
use libctd_image::archive::{Options, read_archive};
use libctd_image::descriptor::Descriptor;
use libctd_image::sink::{BlobBody, BlobInfo, BlobSink};

use super::labels::gc_labels;
use super::unpack::Unpack;
use super::{DEFAULT_SNAPSHOTTER, prefixed, validate_snapshotter};
use crate::conn::{Expected, LeaseId, Store, Written, write_blob};
use crate::convert::status_error;
use crate::image_store::{LEASE_EXPIRE_LABEL, rfc3339};

/// How long an import's lease outlives an engine that died importing
/// (containerd's own client's default).
const LEASE_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Imports `archive` into `store`, unpacking into `options.snapshotter`;
/// each call of a dropped import's clean-up runs within `patience`.
pub(crate) async fn import(
    store: Arc<dyn Store>,
    patience: Duration,
    archive: Archive,
    options: ImportOptions,
) -> Result<Vec<Image>> {
    let snapshotter = options
        .snapshotter
        .clone()
        .unwrap_or_else(|| DEFAULT_SNAPSHOTTER.to_owned());
    validate_snapshotter(&snapshotter)?;
    let lease = LeaseId::new(&lease_id())?;
    let labels = HashMap::from([(
        LEASE_EXPIRE_LABEL.to_owned(),
        rfc3339(SystemTime::now() + LEASE_EXPIRY),
    )]);
    // Armed before the lease is asked for: an import dropped while
    // containerd makes it still deletes it.
    let mut undo = Undo {
        store: store.clone(),
        lease: lease.clone(),
        created: Vec::new(),
        armed: true,
    };
    if let Err(s) = store.lease_create(&lease, labels).await {
        undo.armed = false;
        undo.run().await;
        return Err(prefixed(status_error(s), "creating the import's lease"));
    }
    let run = Import {
        store: &*store,
        lease: &lease,
        patience,
        snapshotter: &snapshotter,
        progress: options.progress.clone(),
    };
    match run.run(archive, &mut undo.created).await {
        Ok(images) => {
            // The records are the import's outcome: they stay. What they
            // reference is kept by them now; the lease goes (also when
            // the import is dropped while it does).
            undo.created.clear();
            if let Err(s) = store.lease_delete(lease.as_str(), false).await {
                tracing::warn!(lease = lease.as_str(), error = %status_error(s), "an import's lease is left to expire");
            }
            undo.armed = false;
            Ok(images)
        }
        Err(e) => {
            undo.armed = false;
            undo.run().await;
            Err(e)
        }
    }
}

/// A lease id no other import uses.
fn lease_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "libctd-import-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a failed or dropped import undoes: the records it created, then
/// its lease, waiting for the garbage collector.
struct Undo {
    store: Arc<dyn Store>,
    lease: LeaseId,
    created: Vec<String>,
    armed: bool,
}

impl Undo {
    async fn run(&self) {
        for name in &self.created {
            if let Err(s) = self.store.image_delete(name, false).await
                && s.code() != tonic::Code::NotFound
            {
                tracing::warn!(image = %name, error = %status_error(s), "a failed import's image record stays");
            }
        }
        if let Err(s) = self.store.lease_delete(self.lease.as_str(), true).await
            && s.code() != tonic::Code::NotFound
        {
            tracing::warn!(lease = self.lease.as_str(), error = %status_error(s), "a failed import's lease is left to expire");
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        // The import's future was dropped half-way: undone in a task.
        if !self.armed {
            return;
        }
        let undo = Self {
            store: self.store.clone(),
            lease: self.lease.clone(),
            created: std::mem::take(&mut self.created),
            armed: false,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { undo.run().await });
        }
    }
}

/// One import's settings.
struct Import<'a> {
    store: &'a dyn Store,
    lease: &'a LeaseId,
    patience: Duration,
    snapshotter: &'a str,
    progress: Option<ProgressCallback>,
}

impl Import<'_> {
    async fn run(&self, archive: Archive, created: &mut Vec<String>) -> Result<Vec<Image>> {
        let mut sink = Sink {
            import: self,
            next: 0,
        };
        let read = read_archive(archive, &mut sink, &Options::default()).await?;
        let images: Vec<_> = read
            .images
            .into_iter()
            .filter(|i| !i.names.is_empty())
            .collect();
        let unpack = Unpack {
            store: self.store,
            lease: self.lease,
            snapshotter: self.snapshotter,
        };
        for image in &images {
            unpack
                .layers(&image.layers, &format!("image {:?}", image.names[0]))
                .await?;
        }
        for (digest, labels) in gc_labels(&images, self.snapshotter) {
            self.store
                .content_label(&digest.to_string(), labels)
                .await
                .map_err(|s| prefixed(status_error(s), &format!("labelling blob {digest}")))?;
        }
        let mut out = Vec::new();
        for image in &images {
            let config = image.image_config.config.to_core();
            for name in &image.names {
                self.record(name, &image.target, created).await?;
                out.push(Image::new(
                    name,
                    image.manifest.digest.to_string(),
                    config.clone(),
                ));
            }
        }
        Ok(out)
    }

    /// Creates the record `name` pointing at `target`, or points the
    /// existing one at it.
    async fn record(
        &self,
        name: &str,
        target: &Descriptor,
        created: &mut Vec<String>,
    ) -> Result<()> {
        let record = ImageRecord {
            name: name.to_owned(),
            target: Some(DescriptorProto {
                media_type: target.media_type.clone(),
                digest: target.digest.to_string(),
                size: i64::try_from(target.size).unwrap_or(i64::MAX),
                annotations: target.annotations.clone().into_iter().collect(),
            }),
            ..ImageRecord::default()
        };
        let what = format!("recording image {name:?}");
        match self
            .store
            .image_create(Some(self.lease), record.clone())
            .await
        {
            Ok(_) => {
                created.push(name.to_owned());
                Ok(())
            }
            Err(s) if s.code() == tonic::Code::AlreadyExists => self
                .store
                .image_update(record, vec!["target".to_owned()])
                .await
                .map(drop)
                .map_err(|s| prefixed(status_error(s), &what)),
            Err(s) => Err(prefixed(status_error(s), &what)),
        }
    }
}

/// Streams each blob of the archive into the content store.
struct Sink<'a, 'b> {
    import: &'a Import<'b>,
    /// Numbers the blobs' ingest refs.
    next: usize,
}

#[async_trait]
impl BlobSink for Sink<'_, '_> {
    async fn blob(&mut self, info: &BlobInfo, body: &mut BlobBody<'_>) -> Result<()> {
        let import = self.import;
        let digest = info
            .digest
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let blob = if digest.is_empty() {
            info.entry.clone()
        } else {
            digest.clone()
        };
        let reference = format!("{}-{}", import.lease.as_str(), self.next);
        self.next += 1;
        let total = info.size;
        let mut last = None;
        let callback = import.progress.clone();
        let mut report = |done: u64| {
            if let Some(callback) = &callback {
                callback(&ImportProgress::new(blob.clone(), done, total));
            }
            last = Some(done);
        };
        let written = write_blob(
            import.store,
            Some(import.lease),
            &reference,
            Expected {
                digest: &digest,
                size: info.size,
            },
            HashMap::new(),
            body,
            &mut report,
            import.patience,
        )
        .await
        .map_err(|e| prefixed(e, &format!("image archive: entry {:?}", info.entry)))?;
        // A blob already stored (or empty) is whole at once.
        if (last != Some(total) || written == Written::AlreadyPresent)
            && let Some(callback) = &import.progress
        {
            callback(&ImportProgress::new(blob, total, total));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::Error;

    #[test]
    fn lease_ids_differ_and_are_headers() {
        let (a, b) = (lease_id(), lease_id());
        assert_ne!(a, b);
        LeaseId::new(&a).unwrap();
    }

    #[test]
    fn errors_name_where_they_happened() {
        let e = prefixed(Error::invalid_argument("bad"), "image archive: entry \"x\"");
        assert_eq!(e.message(), "image archive: entry \"x\": bad");
    }
}
