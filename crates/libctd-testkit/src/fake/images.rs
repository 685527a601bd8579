//! The fake's images: archives read by libctd-image (so the fake refuses
//! what the real import refuses, with the same kinds), image records per
//! namespace, and a snapshot per container made from an image.

use std::collections::BTreeMap;

use async_trait::async_trait;
use libctd_core::metrics::measured;
use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    Archive, Error, IMAGE_ROOTFS_PATH, Image, ImageRootfs, Images, ImportOptions, ImportProgress,
    ProgressCallback, Result,
};
use libctd_image::archive::{Options, read_archive};
use libctd_image::reference::normalise;
use libctd_image::sink::{BlobBody, BlobInfo, BlobSink};
use tokio::io::AsyncReadExt;

use super::client::FakeClient;
use super::lock;

/// The fake's only snapshotter, and its default (`FAKE_SNAPSHOTTER`).
pub const SNAPSHOTTER: &str = "fake";

/// The image records of one namespace, by normalised name.
pub(crate) type ImageRecords = BTreeMap<String, Image>;

/// Reads each blob to its end (which verifies it), reporting progress,
/// and keeps nothing: the fake stores no content.
struct Drain {
    progress: Option<ProgressCallback>,
}

impl Drain {
    fn report(&self, blob: &str, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            progress(&ImportProgress::new(blob, done, total));
        }
    }
}

#[async_trait]
impl BlobSink for Drain {
    async fn blob(&mut self, info: &BlobInfo, body: &mut BlobBody<'_>) -> Result<()> {
        let name = info
            .digest
            .as_ref()
            .map_or(info.entry.clone(), ToString::to_string);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut buf).await.map_err(|e| {
                // The body's own error (a digest mismatch) comes back from
                // read_archive; this one only says the read stopped.
                Error::invalid_argument(format!("image archive: entry {:?}: {e}", info.entry))
            })?;
            if n == 0 {
                break;
            }
            self.report(&name, body.done(), info.size);
        }
        // A docker-save layer is known by its digest only now.
        if let Some(digest) = body.digest() {
            self.report(&digest.to_string(), body.done(), info.size);
        }
        Ok(())
    }
}

/// A snapshotter the fake has: containerd answers a name it has not
/// loaded with `InvalidArgument` ("snapshotter not loaded").
fn check_snapshotter(snapshotter: &str) -> Result<()> {
    if snapshotter == SNAPSHOTTER {
        return Ok(());
    }
    Err(Error::invalid_argument(format!(
        "snapshotter not loaded: {snapshotter:?} (the fake has only {SNAPSHOTTER:?})"
    )))
}

/// The record of a create's image: validated, found, and the spec's root
/// where the snapshot is mounted. Returns the image's name.
pub(crate) fn check_create(
    records: &ImageRecords,
    rootfs: &ImageRootfs,
    spec: &Spec,
) -> Result<String> {
    let name = normalise(&rootfs.image)?;
    if let Some(snapshotter) = rootfs.snapshotter.as_deref() {
        check_snapshotter(snapshotter)?;
    }
    let root = spec.root().as_ref().map(|r| r.path().clone());
    if root.as_deref() != Some(std::path::Path::new(IMAGE_ROOTFS_PATH)) {
        return Err(Error::invalid_argument(format!(
            "a container from an image has its root at {IMAGE_ROOTFS_PATH:?} (ImageConfig::apply sets it), not {root:?}"
        )));
    }
    if !records.contains_key(&name) {
        return Err(Error::not_found(format!("no such image {name}")));
    }
    Ok(name)
}

/// The fake's images, each operation one
/// [`measured`](libctd_core::metrics::measured) call, as the backends'
/// are (the `metrics` feature's counts and latencies).
#[async_trait]
impl Images for FakeClient {
    async fn import(&self, archive: Archive, options: ImportOptions) -> Result<Vec<Image>> {
        measured("import", self.import_archive(archive, options)).await
    }

    async fn image(&self, name: &str) -> Result<Image> {
        measured("image", async {
            let ctx = |e: Error| e.with_operation("image");
            let name = normalise(name).map_err(ctx)?;
            lock(&self.namespace_state().images)
                .get(&name)
                .cloned()
                .ok_or_else(|| ctx(Error::not_found(format!("no such image {name}"))))
        })
        .await
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        measured("list_images", async {
            Ok(lock(&self.namespace_state().images)
                .values()
                .cloned()
                .collect())
        })
        .await
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        measured("remove_image", async {
            let ctx = |e: Error| e.with_operation("remove_image");
            let name = normalise(name).map_err(ctx)?;
            lock(&self.namespace_state().images)
                .remove(&name)
                .map(drop)
                .ok_or_else(|| ctx(Error::not_found(format!("no such image {name}"))))
        })
        .await
    }
}

impl FakeClient {
    /// [`Images::import`]'s work: the archive read, its images recorded.
    async fn import_archive(&self, archive: Archive, options: ImportOptions) -> Result<Vec<Image>> {
        let ctx = |e: Error| e.with_operation("import");
        if let Some(snapshotter) = options.snapshotter.as_deref() {
            check_snapshotter(snapshotter).map_err(ctx)?;
        }
        let mut sink = Drain {
            progress: options.progress.clone(),
        };
        let read = read_archive(archive, &mut sink, &Options::default())
            .await
            .map_err(ctx)?;
        let mut imported = Vec::new();
        for image in &read.images {
            for name in &image.names {
                imported.push(image.to_core(name));
            }
        }
        // An image the archive names nothing is not recorded (containerd
        // keeps no record without a name): an archive of such images
        // imports none, and that is no error.
        let mut records = lock(&self.namespace_state().images);
        for image in &imported {
            records.insert(image.name.clone(), image.clone());
        }
        Ok(imported)
    }
}
