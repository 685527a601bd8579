//! (tests) containerd's image path in memory, behind the [`Store`] seam:
//! image records, content, leases and snapshots of one namespace, for the
//! rules of a container made from an image (create, start, delete and
//! their rollbacks) without a daemon.
//!
//! It is the same daemon as [`Mem`]: every call goes through `Mem`'s
//! faults (one planned for a call of either seam by its method name, and
//! `down`). It answers as containerd documents: a lease or an active
//! snapshot key made twice is `AlreadyExists`, a missing one `NotFound`,
//! a parent that does not exist `NotFound`, removing a snapshot that is a
//! parent `FailedPrecondition`. The garbage collector is not modelled:
//! what a client does not remove stays, as it does in containerd until a
//! collection. Writing blobs, unpacking and labels are the real
//! containerd's tests' (`tests/images.rs`); those calls answer
//! `Unimplemented`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use containerd_client::services::v1::snapshots::{
    self, CommitSnapshotRequest, PrepareSnapshotRequest,
};
use containerd_client::services::v1::{ApplyRequest, Image, Info, Lease};
use containerd_client::types::{Descriptor, Mount};
use libctd_image::config::chain_ids;
use libctd_image::descriptor::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use libctd_image::digest::Digest;
use tonic::Status;

use super::mem::Mem;
use super::store::{LeaseId, Store, WriteAnswers, WriteRequests};

/// One snapshot.
#[derive(Debug, Clone)]
struct Snapshot {
    parent: String,
    committed: bool,
}

#[derive(Default)]
struct World {
    images: HashMap<String, Image>,
    content: HashMap<String, Vec<u8>>,
    leases: BTreeSet<String>,
    /// Snapshots by snapshotter and key (or name, once committed).
    snapshots: BTreeMap<(String, String), Snapshot>,
}

/// containerd's image path in memory.
pub(crate) struct MemStore {
    mem: Arc<Mem>,
    world: Mutex<World>,
}

fn not_found(what: &str) -> Status {
    Status::not_found(format!("{what}: not found"))
}

fn not_modelled(call: &str) -> Status {
    Status::unimplemented(format!("{call} is not modelled in memory"))
}

impl MemStore {
    /// An empty store of the daemon `mem`.
    pub(crate) fn new(mem: Arc<Mem>) -> Arc<Self> {
        Arc::new(Self {
            mem,
            world: Mutex::new(World::default()),
        })
    }

    fn world(&self) -> MutexGuard<'_, World> {
        crate::sync::lock(&self.world)
    }

    /// Records the image `name` for this host, of one layer of `layer`'s
    /// bytes, unpacked in `snapshotter` (as an import leaves it).
    pub(crate) fn add_image(&self, name: &str, layer: &[u8], snapshotter: &str) {
        let diff_id = Digest::of(layer);
        let config = serde_json::json!({
            "architecture": std::env::consts::ARCH,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": diff_id.to_string(), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        let target = Descriptor {
            media_type: OCI_MANIFEST.to_owned(),
            digest: Digest::of(&manifest).to_string(),
            size: i64::try_from(manifest.len()).unwrap_or(i64::MAX),
            annotations: HashMap::new(),
        };
        let mut w = self.world();
        for doc in [config, manifest, layer.to_vec()] {
            w.content.insert(Digest::of(&doc).to_string(), doc);
        }
        for chain in chain_ids(&[diff_id]) {
            w.snapshots.insert(
                (snapshotter.to_owned(), chain.to_string()),
                Snapshot {
                    parent: String::new(),
                    committed: true,
                },
            );
        }
        w.images.insert(
            name.to_owned(),
            Image {
                name: name.to_owned(),
                target: Some(target),
                ..Image::default()
            },
        );
    }

    /// The ids of the leases.
    pub(crate) fn lease_ids(&self) -> Vec<String> {
        self.world().leases.iter().cloned().collect()
    }

    /// The keys of the active snapshots in `snapshotter`.
    pub(crate) fn active(&self, snapshotter: &str) -> Vec<String> {
        self.world()
            .snapshots
            .iter()
            .filter(|((s, _), snap)| s == snapshotter && !snap.committed)
            .map(|((_, key), _)| key.clone())
            .collect()
    }
}

#[async_trait]
impl Store for MemStore {
    async fn content_write(
        &self,
        _lease: Option<&LeaseId>,
        _requests: WriteRequests,
    ) -> Result<WriteAnswers, Status> {
        self.mem
            .gated("content_write", || Err(not_modelled("Content.Write")))
            .await
    }

    async fn content_abort(&self, _reference: &str) -> Result<(), Status> {
        self.mem
            .gated("content_abort", || Err(not_modelled("Content.Abort")))
            .await
    }

    async fn content_info(&self, digest: &str) -> Result<Info, Status> {
        self.mem
            .gated("content_info", || {
                let w = self.world();
                let data = w
                    .content
                    .get(digest)
                    .ok_or_else(|| not_found(&format!("content digest {digest}")))?;
                Ok(Info {
                    digest: digest.to_owned(),
                    size: i64::try_from(data.len()).unwrap_or(i64::MAX),
                    ..Info::default()
                })
            })
            .await
    }

    async fn content_read(&self, digest: &str, size: u64) -> Result<Vec<u8>, Status> {
        self.mem
            .gated("content_read", || {
                let w = self.world();
                let data = w
                    .content
                    .get(digest)
                    .ok_or_else(|| not_found(&format!("content digest {digest}")))?;
                let n = usize::try_from(size).unwrap_or(usize::MAX).min(data.len());
                Ok(data[..n].to_vec())
            })
            .await
    }

    async fn content_label(
        &self,
        _digest: &str,
        _labels: HashMap<String, String>,
    ) -> Result<(), Status> {
        self.mem
            .gated("content_label", || Err(not_modelled("Content.Update")))
            .await
    }

    async fn content_delete(&self, digest: &str) -> Result<(), Status> {
        self.mem
            .gated("content_delete", || {
                self.world()
                    .content
                    .remove(digest)
                    .map(drop)
                    .ok_or_else(|| not_found(&format!("content digest {digest}")))
            })
            .await
    }

    async fn content_list(&self, _filters: Vec<String>) -> Result<Vec<Info>, Status> {
        self.mem
            .gated("content_list", || {
                Ok(self
                    .world()
                    .content
                    .iter()
                    .map(|(digest, data)| Info {
                        digest: digest.clone(),
                        size: i64::try_from(data.len()).unwrap_or(i64::MAX),
                        ..Info::default()
                    })
                    .collect())
            })
            .await
    }

    async fn content_statuses(
        &self,
        _filters: Vec<String>,
    ) -> Result<Vec<containerd_client::services::v1::Status>, Status> {
        self.mem.gated("content_statuses", || Ok(Vec::new())).await
    }

    async fn lease_create(
        &self,
        id: &LeaseId,
        labels: HashMap<String, String>,
    ) -> Result<Lease, Status> {
        self.mem
            .gated("lease_create", || {
                if !self.world().leases.insert(id.as_str().to_owned()) {
                    return Err(Status::already_exists(format!(
                        "lease {:?}: already exists",
                        id.as_str()
                    )));
                }
                Ok(Lease {
                    id: id.as_str().to_owned(),
                    labels,
                    ..Lease::default()
                })
            })
            .await
    }

    async fn lease_delete(&self, id: &str, _sync: bool) -> Result<(), Status> {
        self.mem
            .gated("lease_delete", || {
                if self.world().leases.remove(id) {
                    Ok(())
                } else {
                    Err(not_found(&format!("lease {id:?}")))
                }
            })
            .await
    }

    async fn lease_list(&self, _filters: Vec<String>) -> Result<Vec<Lease>, Status> {
        self.mem
            .gated("lease_list", || {
                Ok(self
                    .lease_ids()
                    .into_iter()
                    .map(|id| Lease {
                        id,
                        ..Lease::default()
                    })
                    .collect())
            })
            .await
    }

    async fn image_create(&self, _lease: Option<&LeaseId>, image: Image) -> Result<Image, Status> {
        self.mem
            .gated("image_create", || {
                let mut w = self.world();
                if w.images.contains_key(&image.name) {
                    return Err(Status::already_exists(format!(
                        "image {:?}: already exists",
                        image.name
                    )));
                }
                w.images.insert(image.name.clone(), image.clone());
                Ok(image)
            })
            .await
    }

    async fn image_get(&self, name: &str) -> Result<Image, Status> {
        self.mem
            .gated("image_get", || {
                self.world()
                    .images
                    .get(name)
                    .cloned()
                    .ok_or_else(|| not_found(&format!("image {name:?}")))
            })
            .await
    }

    async fn image_update(&self, image: Image, _fields: Vec<String>) -> Result<Image, Status> {
        self.mem
            .gated("image_update", || {
                let mut w = self.world();
                let Some(record) = w.images.get_mut(&image.name) else {
                    return Err(not_found(&format!("image {:?}", image.name)));
                };
                record.target = image.target.clone();
                Ok(record.clone())
            })
            .await
    }

    async fn image_delete(&self, name: &str, _sync: bool) -> Result<(), Status> {
        self.mem
            .gated("image_delete", || {
                self.world()
                    .images
                    .remove(name)
                    .map(drop)
                    .ok_or_else(|| not_found(&format!("image {name:?}")))
            })
            .await
    }

    async fn image_list(&self, _filters: Vec<String>) -> Result<Vec<Image>, Status> {
        self.mem
            .gated("image_list", || {
                Ok(self.world().images.values().cloned().collect())
            })
            .await
    }

    async fn snapshot_prepare(
        &self,
        _lease: Option<&LeaseId>,
        req: PrepareSnapshotRequest,
    ) -> Result<Vec<Mount>, Status> {
        self.mem
            .gated("snapshot_prepare", || {
                let mut w = self.world();
                let key = (req.snapshotter.clone(), req.key.clone());
                if w.snapshots.contains_key(&key) {
                    return Err(Status::already_exists(format!(
                        "snapshot {:?}: already exists",
                        req.key
                    )));
                }
                let parent = (req.snapshotter.clone(), req.parent.clone());
                if !req.parent.is_empty() && !w.snapshots.contains_key(&parent) {
                    return Err(not_found(&format!("parent snapshot {:?}", req.parent)));
                }
                w.snapshots.insert(
                    key,
                    Snapshot {
                        parent: req.parent.clone(),
                        committed: false,
                    },
                );
                Ok(vec![mount(&req.snapshotter, &req.key)])
            })
            .await
    }

    async fn snapshot_mounts(&self, snapshotter: &str, key: &str) -> Result<Vec<Mount>, Status> {
        self.mem
            .gated("snapshot_mounts", || {
                match self
                    .world()
                    .snapshots
                    .get(&(snapshotter.to_owned(), key.to_owned()))
                {
                    Some(s) if !s.committed => Ok(vec![mount(snapshotter, key)]),
                    _ => Err(not_found(&format!("snapshot {key:?}"))),
                }
            })
            .await
    }

    async fn snapshot_commit(
        &self,
        _lease: Option<&LeaseId>,
        _req: CommitSnapshotRequest,
    ) -> Result<(), Status> {
        self.mem
            .gated("snapshot_commit", || Err(not_modelled("Snapshots.Commit")))
            .await
    }

    async fn snapshot_remove(&self, snapshotter: &str, key: &str) -> Result<(), Status> {
        self.mem
            .gated("snapshot_remove", || {
                let mut w = self.world();
                let id = (snapshotter.to_owned(), key.to_owned());
                if !w.snapshots.contains_key(&id) {
                    return Err(not_found(&format!("snapshot {key:?}")));
                }
                if w.snapshots
                    .iter()
                    .any(|((s, _), snap)| s == snapshotter && snap.parent == key)
                {
                    return Err(Status::failed_precondition(format!(
                        "cannot remove snapshot {key:?} with dependents"
                    )));
                }
                w.snapshots.remove(&id);
                Ok(())
            })
            .await
    }

    async fn snapshot_stat(&self, snapshotter: &str, key: &str) -> Result<snapshots::Info, Status> {
        self.mem
            .gated("snapshot_stat", || {
                let w = self.world();
                let snap = w
                    .snapshots
                    .get(&(snapshotter.to_owned(), key.to_owned()))
                    .ok_or_else(|| not_found(&format!("snapshot {key:?}")))?;
                Ok(snapshots::Info {
                    name: key.to_owned(),
                    parent: snap.parent.clone(),
                    ..snapshots::Info::default()
                })
            })
            .await
    }

    async fn snapshot_list(
        &self,
        snapshotter: &str,
        _filters: Vec<String>,
    ) -> Result<Vec<snapshots::Info>, Status> {
        self.mem
            .gated("snapshot_list", || {
                Ok(self
                    .world()
                    .snapshots
                    .iter()
                    .filter(|((s, _), _)| s == snapshotter)
                    .map(|((_, key), snap)| snapshots::Info {
                        name: key.clone(),
                        parent: snap.parent.clone(),
                        ..snapshots::Info::default()
                    })
                    .collect())
            })
            .await
    }

    async fn diff_apply(
        &self,
        _lease: Option<&LeaseId>,
        _req: ApplyRequest,
    ) -> Result<Descriptor, Status> {
        self.mem
            .gated("diff_apply", || Err(not_modelled("Diff.Apply")))
            .await
    }
}

/// The mount an active snapshot's mounts stand for.
fn mount(snapshotter: &str, key: &str) -> Mount {
    Mount {
        r#type: "bind".to_owned(),
        source: format!("/mem/{snapshotter}/{key}"),
        options: vec!["rbind".to_owned(), "rw".to_owned()],
        ..Mount::default()
    }
}
