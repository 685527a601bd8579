//! The [`Store`] seam: what running containers from images asks of
//! containerd (content, leases, images, snapshots, diff), and its
//! implementation over gRPC by [`Tonic`], which gives each request the
//! namespace header and, where it names one, the `containerd-lease` header,
//! so that what is written or prepared belongs to the lease until an image
//! or a container references it.

use std::collections::HashMap;
use std::pin::Pin;

use async_trait::async_trait;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    self, CommitSnapshotRequest, ListSnapshotsRequest, MountsRequest, PrepareSnapshotRequest,
    RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    AbortRequest, ApplyRequest, CreateImageRequest, CreateRequest, DeleteContentRequest,
    DeleteImageRequest, DeleteRequest, GetImageRequest, Image, Info, InfoRequest, Lease,
    ListContentRequest, ListImagesRequest, ListRequest, ListStatusesRequest, ReadContentRequest,
    UpdateImageRequest, UpdateRequest, WriteContentRequest, WriteContentResponse,
};
use containerd_client::types::{Descriptor, Mount};
use libctd_core::{Error, Result};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};

use super::{Tonic, Transport, client};

/// The messages of a Content.Write, as the caller sends them (a concrete
/// stream: tonic's encoder over a boxed one is not provably Send).
pub(crate) type WriteRequests = ReceiverStream<WriteContentRequest>;
/// containerd's answers to a Content.Write, one per request message.
pub(crate) type WriteAnswers =
    Pin<Box<dyn Stream<Item = std::result::Result<WriteContentResponse, Status>> + Send>>;

/// A lease's id, checked once as the `containerd-lease` header that
/// carries it.
#[derive(Clone, Debug)]
pub(crate) struct LeaseId {
    id: String,
    header: MetadataValue<Ascii>,
}

impl LeaseId {
    /// `id` as a lease id; `InvalidArgument` if no header can carry it.
    pub(crate) fn new(id: &str) -> Result<Self> {
        let header = (!id.is_empty())
            .then(|| id.parse::<MetadataValue<Ascii>>().ok())
            .flatten()
            .ok_or_else(|| {
                Error::invalid_argument(format!("lease id {id:?} is not a valid gRPC header value"))
            })?;
        Ok(Self {
            id: id.to_owned(),
            header,
        })
    }

    /// The id.
    pub(crate) fn as_str(&self) -> &str {
        &self.id
    }
}

/// What running containers from images asks of containerd, in one
/// namespace. Each call is bounded by the remote's deadline, but
/// [`content_write`](Self::content_write) and [`diff_apply`](Self::diff_apply),
/// whose time grows with a blob's size (their callers bound their
/// progress; the keepalive catches a hung daemon).
#[async_trait]
pub(crate) trait Store: Send + Sync + 'static {
    /// `Content.Write`: a bidirectional stream, under `lease`.
    async fn content_write(
        &self,
        lease: Option<&LeaseId>,
        requests: WriteRequests,
    ) -> std::result::Result<WriteAnswers, Status>;
    /// `Content.Abort` of a write's ref.
    async fn content_abort(&self, reference: &str) -> std::result::Result<(), Status>;
    /// `Content.Info` of a blob.
    async fn content_info(&self, digest: &str) -> std::result::Result<Info, Status>;
    /// `Content.Read` of a whole blob of `size` bytes (a server stream,
    /// collected: for the small documents of an image, never a layer).
    async fn content_read(&self, digest: &str, size: u64) -> std::result::Result<Vec<u8>, Status>;
    /// `Content.Update` of a blob's labels: each of `labels` is set
    /// (others are kept).
    async fn content_label(
        &self,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> std::result::Result<(), Status>;
    /// `Content.Delete` of a blob.
    async fn content_delete(&self, digest: &str) -> std::result::Result<(), Status>;
    /// `Content.List` with `filters` (the stream collected).
    async fn content_list(&self, filters: Vec<String>) -> std::result::Result<Vec<Info>, Status>;
    /// `Content.ListStatuses`: the writes in progress, by `filters`.
    async fn content_statuses(
        &self,
        filters: Vec<String>,
    ) -> std::result::Result<Vec<containerd_client::services::v1::Status>, Status>;
    /// `Leases.Create` of `id` with `labels` (`containerd.io/gc.expire`
    /// bounds a lease that is never deleted).
    async fn lease_create(
        &self,
        id: &LeaseId,
        labels: HashMap<String, String>,
    ) -> std::result::Result<Lease, Status>;
    /// `Leases.Delete`; with `sync`, answered once the garbage collector
    /// has run.
    async fn lease_delete(&self, id: &str, sync: bool) -> std::result::Result<(), Status>;
    /// `Leases.List` with `filters`.
    async fn lease_list(&self, filters: Vec<String>) -> std::result::Result<Vec<Lease>, Status>;
    /// `Images.Create`, under `lease`.
    async fn image_create(
        &self,
        lease: Option<&LeaseId>,
        image: Image,
    ) -> std::result::Result<Image, Status>;
    /// `Images.Get`.
    async fn image_get(&self, name: &str) -> std::result::Result<Image, Status>;
    /// `Images.Update` of the fields named in `fields` (all if empty).
    async fn image_update(
        &self,
        image: Image,
        fields: Vec<String>,
    ) -> std::result::Result<Image, Status>;
    /// `Images.Delete`; with `sync`, answered once the garbage collector
    /// has run.
    async fn image_delete(&self, name: &str, sync: bool) -> std::result::Result<(), Status>;
    /// `Images.List` with `filters`.
    async fn image_list(&self, filters: Vec<String>) -> std::result::Result<Vec<Image>, Status>;
    /// `Snapshots.Prepare`, under `lease`: an active snapshot's mounts.
    async fn snapshot_prepare(
        &self,
        lease: Option<&LeaseId>,
        req: PrepareSnapshotRequest,
    ) -> std::result::Result<Vec<Mount>, Status>;
    /// `Snapshots.Mounts` of an active snapshot or view.
    async fn snapshot_mounts(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> std::result::Result<Vec<Mount>, Status>;
    /// `Snapshots.Commit`, under `lease`.
    async fn snapshot_commit(
        &self,
        lease: Option<&LeaseId>,
        req: CommitSnapshotRequest,
    ) -> std::result::Result<(), Status>;
    /// `Snapshots.Remove`.
    async fn snapshot_remove(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> std::result::Result<(), Status>;
    /// `Snapshots.Stat`.
    async fn snapshot_stat(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> std::result::Result<snapshots::Info, Status>;
    /// `Snapshots.List` with `filters` (the stream collected).
    async fn snapshot_list(
        &self,
        snapshotter: &str,
        filters: Vec<String>,
    ) -> std::result::Result<Vec<snapshots::Info>, Status>;
    /// `Diff.Apply` of a layer to `req`'s mounts, under `lease`: the
    /// applied (uncompressed) layer's descriptor.
    async fn diff_apply(
        &self,
        lease: Option<&LeaseId>,
        req: ApplyRequest,
    ) -> std::result::Result<Descriptor, Status>;
}

impl Tonic {
    /// A request under `lease` (if any), with the namespace header and,
    /// when `bounded`, the deadline.
    fn leased<T>(&self, message: T, lease: Option<&LeaseId>, bounded: bool) -> tonic::Request<T> {
        let mut r = if bounded {
            self.request(message)
        } else {
            self.unbounded(message)
        };
        if let Some(lease) = lease {
            r.metadata_mut()
                .insert("containerd-lease", lease.header.clone());
        }
        r
    }

    fn content(&self) -> ContentClient<Transport> {
        client(&self.transport)
    }

    fn leases(&self) -> LeasesClient<Transport> {
        client(&self.transport)
    }

    fn images(&self) -> ImagesClient<Transport> {
        client(&self.transport)
    }

    fn snapshots(&self) -> SnapshotsClient<Transport> {
        client(&self.transport)
    }
}

/// A server stream's messages, collected (each within the call's deadline,
/// which covers the whole stream).
async fn collect<M, T>(
    stream: tonic::Streaming<M>,
    mut pick: impl FnMut(M) -> Vec<T>,
) -> std::result::Result<Vec<T>, Status> {
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(m) = stream.next().await {
        out.extend(pick(m?));
    }
    Ok(out)
}

#[async_trait]
impl Store for Tonic {
    async fn content_write(
        &self,
        lease: Option<&LeaseId>,
        requests: WriteRequests,
    ) -> std::result::Result<WriteAnswers, Status> {
        let req = self.leased(requests, lease, false);
        let answers = self.content().write(req).await?.into_inner();
        Ok(Box::pin(answers))
    }

    async fn content_abort(&self, reference: &str) -> std::result::Result<(), Status> {
        let req = self.request(AbortRequest {
            r#ref: reference.to_owned(),
        });
        self.content().abort(req).await.map(drop)
    }

    async fn content_info(&self, digest: &str) -> std::result::Result<Info, Status> {
        let req = self.request(InfoRequest {
            digest: digest.to_owned(),
        });
        let info = self.content().info(req).await?.into_inner().info;
        Ok(info.unwrap_or_default())
    }

    async fn content_read(&self, digest: &str, size: u64) -> std::result::Result<Vec<u8>, Status> {
        let req = self.request(ReadContentRequest {
            digest: digest.to_owned(),
            offset: 0,
            size: i64::try_from(size).unwrap_or(i64::MAX),
        });
        let mut stream = self.content().read(req).await?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // Each chunk says where it goes; containerd sends them in order.
            if u64::try_from(chunk.offset).ok() != Some(out.len() as u64) {
                return Err(Status::data_loss(format!(
                    "content {digest}: a chunk at offset {} after {} bytes",
                    chunk.offset,
                    out.len()
                )));
            }
            out.extend_from_slice(&chunk.data);
            if out.len() as u64 > size {
                return Err(Status::data_loss(format!(
                    "content {digest}: more than the {size} bytes asked for"
                )));
            }
        }
        Ok(out)
    }

    async fn content_label(
        &self,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> std::result::Result<(), Status> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let req = self.request(UpdateRequest {
            info: Some(Info {
                digest: digest.to_owned(),
                labels,
                ..Info::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        });
        self.content().update(req).await.map(drop)
    }

    async fn content_delete(&self, digest: &str) -> std::result::Result<(), Status> {
        let req = self.request(DeleteContentRequest {
            digest: digest.to_owned(),
        });
        self.content().delete(req).await.map(drop)
    }

    async fn content_list(&self, filters: Vec<String>) -> std::result::Result<Vec<Info>, Status> {
        let req = self.request(ListContentRequest { filters });
        collect(self.content().list(req).await?.into_inner(), |m| m.info).await
    }

    async fn content_statuses(
        &self,
        filters: Vec<String>,
    ) -> std::result::Result<Vec<containerd_client::services::v1::Status>, Status> {
        let req = self.request(ListStatusesRequest { filters });
        Ok(self
            .content()
            .list_statuses(req)
            .await?
            .into_inner()
            .statuses)
    }

    async fn lease_create(
        &self,
        id: &LeaseId,
        labels: HashMap<String, String>,
    ) -> std::result::Result<Lease, Status> {
        let req = self.request(CreateRequest {
            id: id.as_str().to_owned(),
            labels,
        });
        let lease = self.leases().create(req).await?.into_inner().lease;
        Ok(lease.unwrap_or_default())
    }

    async fn lease_delete(&self, id: &str, sync: bool) -> std::result::Result<(), Status> {
        let req = self.request(DeleteRequest {
            id: id.to_owned(),
            sync,
        });
        self.leases().delete(req).await.map(drop)
    }

    async fn lease_list(&self, filters: Vec<String>) -> std::result::Result<Vec<Lease>, Status> {
        let req = self.request(ListRequest { filters });
        Ok(self.leases().list(req).await?.into_inner().leases)
    }

    async fn image_create(
        &self,
        lease: Option<&LeaseId>,
        image: Image,
    ) -> std::result::Result<Image, Status> {
        let req = self.leased(
            CreateImageRequest {
                image: Some(image),
                source_date_epoch: None,
            },
            lease,
            true,
        );
        let image = self.images().create(req).await?.into_inner().image;
        Ok(image.unwrap_or_default())
    }

    async fn image_get(&self, name: &str) -> std::result::Result<Image, Status> {
        let req = self.request(GetImageRequest {
            name: name.to_owned(),
        });
        let image = self.images().get(req).await?.into_inner().image;
        Ok(image.unwrap_or_default())
    }

    async fn image_update(
        &self,
        image: Image,
        fields: Vec<String>,
    ) -> std::result::Result<Image, Status> {
        let update_mask = (!fields.is_empty()).then_some(prost_types::FieldMask { paths: fields });
        let req = self.request(UpdateImageRequest {
            image: Some(image),
            update_mask,
            source_date_epoch: None,
        });
        let image = self.images().update(req).await?.into_inner().image;
        Ok(image.unwrap_or_default())
    }

    async fn image_delete(&self, name: &str, sync: bool) -> std::result::Result<(), Status> {
        let req = self.request(DeleteImageRequest {
            name: name.to_owned(),
            sync,
            target: None,
        });
        self.images().delete(req).await.map(drop)
    }

    async fn image_list(&self, filters: Vec<String>) -> std::result::Result<Vec<Image>, Status> {
        let req = self.request(ListImagesRequest { filters });
        Ok(self.images().list(req).await?.into_inner().images)
    }

    async fn snapshot_prepare(
        &self,
        lease: Option<&LeaseId>,
        req: PrepareSnapshotRequest,
    ) -> std::result::Result<Vec<Mount>, Status> {
        let req = self.leased(req, lease, true);
        Ok(self.snapshots().prepare(req).await?.into_inner().mounts)
    }

    async fn snapshot_mounts(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> std::result::Result<Vec<Mount>, Status> {
        let req = self.request(MountsRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        });
        Ok(self.snapshots().mounts(req).await?.into_inner().mounts)
    }

    async fn snapshot_commit(
        &self,
        lease: Option<&LeaseId>,
        req: CommitSnapshotRequest,
    ) -> std::result::Result<(), Status> {
        let req = self.leased(req, lease, true);
        self.snapshots().commit(req).await.map(drop)
    }

    async fn snapshot_remove(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> std::result::Result<(), Status> {
        let req = self.request(RemoveSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        });
        self.snapshots().remove(req).await.map(drop)
    }

    async fn snapshot_stat(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> std::result::Result<snapshots::Info, Status> {
        let req = self.request(StatSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        });
        let info = self.snapshots().stat(req).await?.into_inner().info;
        Ok(info.unwrap_or_default())
    }

    async fn snapshot_list(
        &self,
        snapshotter: &str,
        filters: Vec<String>,
    ) -> std::result::Result<Vec<snapshots::Info>, Status> {
        let req = self.request(ListSnapshotsRequest {
            snapshotter: snapshotter.to_owned(),
            filters,
        });
        collect(self.snapshots().list(req).await?.into_inner(), |m| m.info).await
    }

    async fn diff_apply(
        &self,
        lease: Option<&LeaseId>,
        req: ApplyRequest,
    ) -> std::result::Result<Descriptor, Status> {
        let req = self.leased(req, lease, false);
        let mut diff: DiffClient<Transport> = client(&self.transport);
        let applied = diff.apply(req).await?.into_inner().applied;
        Ok(applied.unwrap_or_default())
    }
}
