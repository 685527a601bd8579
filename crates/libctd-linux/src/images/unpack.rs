//! Unpacking an image's layers into a snapshotter, as containerd's own
//! client does: for each layer, bottom first, a snapshot named by its
//! chain id is kept if it exists; else an active snapshot is prepared over
//! the layer below, the daemon's differ applies the layer into its mounts
//! (whiteouts and opaque directories included) and it is committed under
//! the chain id. Everything is made under the import's lease, so that a
//! failure leaves nothing once the lease goes.

use std::collections::HashMap;

use containerd_client::services::v1::ApplyRequest;
use containerd_client::services::v1::snapshots::{CommitSnapshotRequest, PrepareSnapshotRequest};
use containerd_client::types::Descriptor;
use libctd_core::{Error, ErrorKind, Result};
use libctd_image::image::Layer;

use super::prefixed;
use crate::conn::{LeaseId, Store};
use crate::convert::status_error;

/// What an unpack works with.
pub(crate) struct Unpack<'a> {
    /// containerd.
    pub store: &'a dyn Store,
    /// The lease everything is made under.
    pub lease: &'a LeaseId,
    /// The snapshotter.
    pub snapshotter: &'a str,
}

impl Unpack<'_> {
    /// Unpacks `layers` (of the image named `what` in messages), bottom
    /// first; a layer already unpacked is skipped.
    pub(crate) async fn layers(&self, layers: &[Layer], what: &str) -> Result<()> {
        let mut parent = String::new();
        for (i, layer) in layers.iter().enumerate() {
            let chain = layer.chain_id.to_string();
            let at = format!(
                "{what}: layer {} ({} of {}, into snapshotter {:?})",
                layer.descriptor.digest,
                i + 1,
                layers.len(),
                self.snapshotter
            );
            match self.store.snapshot_stat(self.snapshotter, &chain).await {
                Ok(_) => {
                    parent = chain;
                    continue;
                }
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => return Err(prefixed(status_error(s), &at)),
            }
            let key = format!("{}-unpack-{i}", self.lease.as_str());
            self.layer(layer, &key, &parent, &chain)
                .await
                .map_err(|e| prefixed(e, &at))?;
            parent = chain;
        }
        Ok(())
    }

    /// Unpacks one layer over `parent` into the snapshot `chain`, through
    /// the active snapshot `key` (removed on a failure).
    async fn layer(&self, layer: &Layer, key: &str, parent: &str, chain: &str) -> Result<()> {
        let prepare = PrepareSnapshotRequest {
            snapshotter: self.snapshotter.to_owned(),
            key: key.to_owned(),
            parent: parent.to_owned(),
            labels: HashMap::new(),
        };
        let mounts = self
            .store
            .snapshot_prepare(Some(self.lease), prepare)
            .await
            .map_err(status_error)?;
        let applied = self.apply(layer, mounts).await;
        let committed = match applied {
            Ok(()) => {
                let commit = CommitSnapshotRequest {
                    snapshotter: self.snapshotter.to_owned(),
                    name: chain.to_owned(),
                    key: key.to_owned(),
                    labels: HashMap::new(),
                };
                match self.store.snapshot_commit(Some(self.lease), commit).await {
                    Ok(()) => return Ok(()),
                    // Another import unpacked the same layers meanwhile.
                    Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
                    Err(s) => Err(status_error(s)),
                }
            }
            Err(e) => Err(e),
        };
        // The lease would free it too; removed now, the snapshotter's
        // directory goes at once.
        if let Err(s) = self.store.snapshot_remove(self.snapshotter, key).await
            && s.code() != tonic::Code::NotFound
        {
            tracing::debug!(key, error = %status_error(s), "could not remove an unpack's snapshot");
        }
        committed
    }

    /// Applies `layer` into `mounts`; the differ's diff id must be the
    /// config's.
    async fn apply(
        &self,
        layer: &Layer,
        mounts: Vec<containerd_client::types::Mount>,
    ) -> Result<()> {
        let d = &layer.descriptor;
        let req = ApplyRequest {
            diff: Some(Descriptor {
                media_type: d.media_type.clone(),
                digest: d.digest.to_string(),
                size: i64::try_from(d.size).unwrap_or(i64::MAX),
                annotations: HashMap::new(),
            }),
            mounts,
            payloads: HashMap::new(),
            sync_fs: false,
        };
        let applied = self
            .store
            .diff_apply(Some(self.lease), req)
            .await
            .map_err(|s| {
                let e = status_error(s);
                // The differ's failures without a code of their own (a
                // hard link to a path the layers do not have, a tar it
                // cannot read) are the layer's: bad input.
                match e.kind() {
                    ErrorKind::Unknown => Error::new(
                        ErrorKind::InvalidArgument,
                        format!("containerd could not apply it: {}", e.message()),
                    )
                    .with_source(e),
                    _ => e,
                }
            })?;
        if applied.digest != layer.diff_id.to_string() {
            return Err(Error::invalid_argument(format!(
                "its uncompressed content is {}, but the image's config says its diff id is {}",
                applied.digest, layer.diff_id
            )));
        }
        Ok(())
    }
}
