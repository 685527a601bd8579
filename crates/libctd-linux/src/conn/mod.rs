//! The connection to containerd: what the remote's clients share, and the
//! [`Containerd`] seam, the narrow set of calls the backend makes.
//!
//! [`Tonic`] implements it over gRPC: every request carries the client's
//! namespace header and the remote's deadline (sent to containerd too,
//! which then gives up as well); the event stream and CRIU's calls carry no
//! deadline. With the `otel` feature, every request also carries the
//! OpenTelemetry context of the current `tracing` span (`trace`). Errors stay `tonic::Status`, so that `convert::status_error`
//! and `rollback::unreachable` read them the same way whatever implements
//! the seam. Tests implement it in memory (`mem`). The image path's calls
//! (content, leases, images, snapshots, diff) are a second seam beside it,
//! [`Store`] (`store`), which `Tonic` implements too.

mod blob;
mod clients;
#[cfg(test)]
pub(crate) mod mem;
#[cfg(test)]
pub(crate) mod mem_store;
mod store;
#[cfg(feature = "otel")]
mod trace;
mod transport;

pub(crate) use blob::{Expected, Written, write_blob};
pub(crate) use clients::client;
pub(crate) use store::{LeaseId, Store};
pub(crate) use transport::Transport;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    CheckpointTaskRequest, CloseIoRequest, Container, CreateContainerRequest, CreateTaskRequest,
    CreateTaskResponse, DeleteContainerRequest, DeleteProcessRequest, DeleteResponse,
    DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest, GetResponse,
    KillRequest, ListPidsRequest, MetricsRequest, PauseTaskRequest, PublishRequest,
    ResizePtyRequest, ResumeTaskRequest, StartRequest, SubscribeRequest, UpdateTaskRequest,
    VersionResponse,
};
use containerd_client::types::v1::ProcessInfo;
use containerd_client::types::{Envelope, Metric};
use libctd_core::{Error, INIT_PROCESS_ID, Result};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};

use crate::shim_exits::ShimExits;

/// What clients of one remote share.
pub(crate) struct Shared {
    /// The one gRPC transport (dials again after a daemon restart).
    pub transport: Transport,
    /// Where per-container FIFOs live.
    pub fifo_root: PathBuf,
    /// runc's state root for containers created through this remote.
    pub runc_root: PathBuf,
    /// Where the scripts that run a runtime binary with its own flags are
    /// written (`runtimes`).
    pub runtime_dir: PathBuf,
    /// The shim group label, if any.
    pub shim_group: Option<String>,
    /// The deadline of each call.
    pub rpc_timeout: Duration,
    /// Where an embedded daemon keeps its task bundles (`None` at an
    /// address): a bundle left by a task containerd lost is removed there.
    pub bundle_root: Option<PathBuf>,
    /// Cancelled on cleanup or when the remote is dropped: event streams stop.
    pub closed: CancellationToken,
    /// Exits the shims kept across restarts of an embedded daemon.
    pub shim_exits: Option<Arc<ShimExits>>,
}

/// The event stream of one subscription.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;

/// What the backend asks of containerd, in one namespace.
///
/// Every call but [`subscribe`](Self::subscribe) and those documented
/// otherwise is bounded by the remote's deadline.
#[async_trait]
pub(crate) trait Containerd: Send + Sync + 'static {
    /// `Version.Version`.
    async fn version(&self) -> Result<VersionResponse, Status>;
    /// `Containers.Create`.
    async fn create_container(&self, req: CreateContainerRequest) -> Result<(), Status>;
    /// `Containers.Get`.
    async fn get_container(&self, id: &str) -> Result<Container, Status>;
    /// `Containers.Delete`.
    async fn delete_container(&self, id: &str) -> Result<(), Status>;
    /// `Tasks.Create`; without `bounded`, no deadline (CRIU restoring a
    /// checkpoint takes as long as the image needs).
    async fn create_task(
        &self,
        req: CreateTaskRequest,
        bounded: bool,
    ) -> Result<CreateTaskResponse, Status>;
    /// `Tasks.Start` of the init process (`exec_id` "") or an exec; its pid.
    async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32, Status>;
    /// `Tasks.Kill`.
    async fn kill(&self, req: KillRequest) -> Result<(), Status>;
    /// `Tasks.Delete`.
    async fn delete_task(&self, container_id: &str) -> Result<DeleteResponse, Status>;
    /// `Tasks.DeleteProcess`.
    async fn delete_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<DeleteResponse, Status>;
    /// `Tasks.Get` of the init process (`exec_id` "") or an exec.
    async fn get(&self, container_id: &str, exec_id: &str) -> Result<GetResponse, Status>;
    /// `Tasks.ListPids`.
    async fn list_pids(&self, container_id: &str) -> Result<Vec<ProcessInfo>, Status>;
    /// `Tasks.Exec`.
    async fn exec(&self, req: ExecProcessRequest) -> Result<(), Status>;
    /// `Tasks.ResizePty`.
    async fn resize_pty(&self, req: ResizePtyRequest) -> Result<(), Status>;
    /// `Tasks.CloseIO` of stdin.
    async fn close_stdin(&self, container_id: &str, exec_id: &str) -> Result<(), Status>;
    /// `Tasks.Pause`.
    async fn pause(&self, container_id: &str) -> Result<(), Status>;
    /// `Tasks.Resume`.
    async fn resume(&self, container_id: &str) -> Result<(), Status>;
    /// `Tasks.Metrics` with `filters`.
    async fn metrics(&self, filters: Vec<String>) -> Result<Vec<Metric>, Status>;
    /// `Tasks.Update`.
    async fn update(&self, req: UpdateTaskRequest) -> Result<(), Status>;
    /// `Tasks.Checkpoint`, without a deadline (CRIU takes as long as the
    /// image needs).
    async fn checkpoint(&self, req: CheckpointTaskRequest) -> Result<(), Status>;
    /// `Events.Publish`.
    async fn publish(&self, req: PublishRequest) -> Result<(), Status>;
    /// `Events.Subscribe`, without a deadline. containerd answers it only
    /// with the first event.
    async fn subscribe(&self, filters: Vec<String>) -> Result<EventStream, Status>;
}

/// The exec id containerd knows a process by: "" for the init process.
pub(crate) fn wire_exec_id(process_id: &str) -> String {
    if process_id == INIT_PROCESS_ID {
        String::new()
    } else {
        process_id.to_owned()
    }
}

/// One client's connection: its namespace, the remote's shared state, and
/// the seam its calls go through.
#[derive(Clone)]
pub(crate) struct Conn {
    /// The containerd namespace.
    pub namespace: String,
    /// What the remote's clients share.
    pub shared: Arc<Shared>,
    /// containerd.
    pub api: Arc<dyn Containerd>,
    /// containerd's image path (content, leases, images, snapshots, diff);
    /// `None` where there is none (the in-memory double of the unit tests).
    pub store: Option<Arc<dyn Store>>,
}

impl Conn {
    /// The connection of a client of `namespace`, over the remote's transport.
    pub(crate) fn tonic(shared: Arc<Shared>, namespace: &str) -> Result<Self> {
        let api = Arc::new(Tonic::new(
            shared.transport.clone(),
            namespace,
            shared.rpc_timeout,
        )?);
        Ok(Self {
            namespace: namespace.to_owned(),
            shared,
            api: api.clone(),
            store: Some(api),
        })
    }

    /// The image path's calls, or `Unimplemented` where there are none.
    pub(crate) fn store(&self) -> Result<&dyn Store> {
        self.store
            .as_deref()
            .ok_or_else(|| Error::not_implemented("this connection has no image store"))
    }
}

/// [`Containerd`] over containerd's gRPC API.
pub(crate) struct Tonic {
    transport: Transport,
    ns_header: MetadataValue<Ascii>,
    rpc_timeout: Duration,
}

impl Tonic {
    /// The calls of namespace `namespace` over `transport`, each bounded by
    /// `rpc_timeout`.
    pub(crate) fn new(
        transport: Transport,
        namespace: &str,
        rpc_timeout: Duration,
    ) -> Result<Self> {
        let ns_header = namespace.parse::<MetadataValue<Ascii>>().map_err(|e| {
            Error::invalid_argument(format!("namespace {namespace:?} is not a valid header"))
                .with_source(e)
        })?;
        Ok(Self {
            transport,
            ns_header,
            rpc_timeout,
        })
    }

    /// A request carrying the namespace header (and, with the `otel`
    /// feature, the current span's trace context) and the deadline.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = self.unbounded(message);
        r.set_timeout(self.rpc_timeout);
        r
    }

    /// A request carrying the namespace header (and, with the `otel`
    /// feature, the current span's trace context) and no deadline. Every
    /// request is made here.
    fn unbounded<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut()
            .insert("containerd-namespace", self.ns_header.clone());
        #[cfg(feature = "otel")]
        trace::inject(r.metadata_mut());
        r
    }

    fn tasks(&self) -> TasksClient<Transport> {
        client(&self.transport)
    }

    fn containers(&self) -> ContainersClient<Transport> {
        client(&self.transport)
    }

    fn events(&self) -> EventsClient<Transport> {
        client(&self.transport)
    }
}

#[async_trait]
impl Containerd for Tonic {
    async fn version(&self) -> Result<VersionResponse, Status> {
        let mut v: VersionClient<Transport> = client(&self.transport);
        Ok(v.version(self.request(())).await?.into_inner())
    }

    async fn create_container(&self, req: CreateContainerRequest) -> Result<(), Status> {
        self.containers().create(self.request(req)).await.map(drop)
    }

    async fn get_container(&self, id: &str) -> Result<Container, Status> {
        let req = self.request(GetContainerRequest { id: id.to_owned() });
        let r = self.containers().get(req).await?.into_inner();
        Ok(r.container.unwrap_or_default())
    }

    async fn delete_container(&self, id: &str) -> Result<(), Status> {
        let req = self.request(DeleteContainerRequest { id: id.to_owned() });
        self.containers().delete(req).await.map(drop)
    }

    async fn create_task(
        &self,
        req: CreateTaskRequest,
        bounded: bool,
    ) -> Result<CreateTaskResponse, Status> {
        let req = if bounded {
            self.request(req)
        } else {
            self.unbounded(req)
        };
        Ok(self.tasks().create(req).await?.into_inner())
    }

    async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32, Status> {
        let req = self.request(StartRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        });
        Ok(self.tasks().start(req).await?.into_inner().pid)
    }

    async fn kill(&self, req: KillRequest) -> Result<(), Status> {
        self.tasks().kill(self.request(req)).await.map(drop)
    }

    async fn delete_task(&self, container_id: &str) -> Result<DeleteResponse, Status> {
        let req = self.request(DeleteTaskRequest {
            container_id: container_id.to_owned(),
        });
        Ok(self.tasks().delete(req).await?.into_inner())
    }

    async fn delete_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<DeleteResponse, Status> {
        let req = self.request(DeleteProcessRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        });
        Ok(self.tasks().delete_process(req).await?.into_inner())
    }

    async fn get(&self, container_id: &str, exec_id: &str) -> Result<GetResponse, Status> {
        let req = self.request(GetRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        });
        Ok(self.tasks().get(req).await?.into_inner())
    }

    async fn list_pids(&self, container_id: &str) -> Result<Vec<ProcessInfo>, Status> {
        let req = self.request(ListPidsRequest {
            container_id: container_id.to_owned(),
        });
        Ok(self.tasks().list_pids(req).await?.into_inner().processes)
    }

    async fn exec(&self, req: ExecProcessRequest) -> Result<(), Status> {
        self.tasks().exec(self.request(req)).await.map(drop)
    }

    async fn resize_pty(&self, req: ResizePtyRequest) -> Result<(), Status> {
        self.tasks().resize_pty(self.request(req)).await.map(drop)
    }

    async fn close_stdin(&self, container_id: &str, exec_id: &str) -> Result<(), Status> {
        let req = self.request(CloseIoRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            stdin: true,
        });
        self.tasks().close_io(req).await.map(drop)
    }

    async fn pause(&self, container_id: &str) -> Result<(), Status> {
        let req = self.request(PauseTaskRequest {
            container_id: container_id.to_owned(),
        });
        self.tasks().pause(req).await.map(drop)
    }

    async fn resume(&self, container_id: &str) -> Result<(), Status> {
        let req = self.request(ResumeTaskRequest {
            container_id: container_id.to_owned(),
        });
        self.tasks().resume(req).await.map(drop)
    }

    async fn metrics(&self, filters: Vec<String>) -> Result<Vec<Metric>, Status> {
        let req = self.request(MetricsRequest { filters });
        Ok(self.tasks().metrics(req).await?.into_inner().metrics)
    }

    async fn update(&self, req: UpdateTaskRequest) -> Result<(), Status> {
        self.tasks().update(self.request(req)).await.map(drop)
    }

    async fn checkpoint(&self, req: CheckpointTaskRequest) -> Result<(), Status> {
        self.tasks().checkpoint(self.unbounded(req)).await.map(drop)
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), Status> {
        self.events().publish(self.request(req)).await.map(drop)
    }

    async fn subscribe(&self, filters: Vec<String>) -> Result<EventStream, Status> {
        // The stream lasts as long as the client: no deadline.
        let req = self.unbounded(SubscribeRequest { filters });
        let stream = self.events().subscribe(req).await?.into_inner();
        Ok(Box::pin(stream))
    }
}

/// Whether containerd answers Version within `timeout`.
pub(crate) async fn version_ok(transport: &Transport, timeout: Duration) -> bool {
    let mut v: VersionClient<Transport> = client(transport);
    matches!(
        tokio::time::timeout(timeout, v.version(())).await,
        Ok(Ok(_))
    )
}
