//! `WindowsClient`: libctd's operations over an [`Hcs`].
//!
//! "Created" on Windows means the compute system runs and the user's process
//! does not yet. The init process's exit is reaped in the order libcontainerd
//! settled on, with its defects fixed: the exit event always follows the start
//! event, and every system failure met while shutting the compute system down
//! reaches the engine as exit code 4294967295 plus a chained error in
//! [`EventInfo::error`].
//!
//! Here: construction, what the operations share, and the [`Client`]
//! trait's thin wrappers (each one [`measured`] call: the `metrics`
//! feature's counts and latencies) over the groups: `lifecycle` (create, start,
//! delete_task, delete), `exec` (processes and their stdio, signals,
//! resize, CloseIO), `restore`, `queries` (the rest). `state` holds a
//! container and every transition of its state; `reap` turns exits into
//! events by the rules of `exits`; `system` stops compute systems and
//! utility VMs.

mod exec;
mod hyperv;
mod lifecycle;
mod network;
mod queries;
mod reap;
mod records;
mod restore;
mod state;
mod system;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Backend, Client, CreateOptions, Error, ErrorContext, EventDispatcher, EventInfo, EventType,
    Resources, Restored, Result, Stats, Status, StdioCallback, Summary, TaskExit, Version,
    metrics::measured, validate_container_id, validate_process_id,
};

use crate::error::HcsError;
use crate::hcs::{Hcs, HcsOp};
use state::Container;

/// The exit code reported when the real one could not be obtained (`u32` of -1).
pub const UNKNOWN_EXIT_CODE: u32 = u32::MAX;

/// Settings of a [`WindowsClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// How long to wait for a compute system to exit after asking it to shut
    /// down or terminate (libcontainerd: 5 minutes). It also bounds a stop
    /// of the init process (`signal_process`: SIGKILL terminates, any other
    /// signal shuts down): when HCS reports neither the process's exit nor
    /// the system's within it (a hung HCS), every process of the container
    /// exits with [`UNKNOWN_EXIT_CODE`] and a `DeadlineExceeded` error, and
    /// the compute system is closed (its last handle ends it).
    pub shutdown_timeout: Duration,
    /// How long to wait for the engine to consume a process's output when
    /// the process is deleted, before cancelling its copies.
    pub stdio_drain_timeout: Duration,
    /// How long the `PendingUpdates` query after a clean exit may take
    /// before the exit goes on without it (`update_pending` false).
    pub update_query_timeout: Duration,
    /// How long, once a compute system has exited, its processes' own exit
    /// notifications are waited for. A system that dies sends none: its
    /// processes then exit with [`UNKNOWN_EXIT_CODE`] and the system's
    /// error after this grace.
    pub exit_grace: Duration,
    /// Where the client records what HCS cannot tell a restore after an
    /// engine restart: a Hyper-V isolated container's utility VM scratch
    /// file and the HNS namespace made for a container
    /// (`<state_dir>/<namespace>/<id>.json`). A restore then removes them;
    /// without it (the default) they stay behind.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            shutdown_timeout: Duration::from_secs(300),
            stdio_drain_timeout: Duration::from_secs(2),
            update_query_timeout: Duration::from_secs(5),
            exit_grace: Duration::from_secs(5),
            state_dir: None,
        }
    }
}

/// A libctd [`Client`] for Windows containers over an [`Hcs`].
///
/// ```
/// use std::sync::Arc;
/// use libctd_core::{Client, ErrorKind};
/// use libctd_windows::{WindowsClient, hcs::sim::Sim};
/// # use libctd_core::{async_trait, Backend, BoxError, EventInfo, EventType};
/// # struct Quiet;
/// # #[async_trait]
/// # impl Backend for Quiet {
/// #     async fn process_event(&self, _: &str, _: EventType, _: EventInfo) -> Result<(), BoxError> { Ok(()) }
/// # }
///
/// # #[tokio::main] async fn main() {
/// let client = WindowsClient::new(Arc::new(Sim::new()), "moby", Arc::new(Quiet)).unwrap();
/// let err = client.status("web").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// # }
/// ```
pub struct WindowsClient<H: Hcs> {
    inner: Arc<Inner<H>>,
}

impl<H: Hcs> Clone for WindowsClient<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<H: Hcs> std::fmt::Debug for WindowsClient<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowsClient")
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

struct Inner<H: Hcs> {
    hcs: Arc<H>,
    namespace: String,
    settings: ClientSettings,
    events: EventDispatcher,
    containers: Mutex<HashMap<String, Arc<Container<H>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `fut` cancel-safely ([`libctd_core::detached`]): dropping the
/// caller's future never leaves HCS and the client's tables half updated.
async fn detached<T, F>(operation: &'static str, container_id: &str, fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    libctd_core::detached(fut)
        .await
        .context(operation, container_id)
}

fn hcs_error(e: HcsError, container_id: &str, op: HcsOp, operation: &'static str) -> Error {
    e.into_error(container_id, op.name())
        .with_operation(operation)
}

fn not_found(container_id: &str, operation: &'static str) -> Error {
    Error::not_found("no such container")
        .with_operation(operation)
        .with_container(container_id)
}

fn not_running(container_id: &str, operation: &'static str) -> Error {
    Error::not_found("container is not running")
        .with_operation(operation)
        .with_container(container_id)
}

impl<H: Hcs> WindowsClient<H> {
    /// A client of `namespace` over `hcs`, delivering events to `backend`.
    /// Needs a tokio runtime (for the event queue), with I/O enabled over
    /// the real HCS (its stdio pipes complete on the runtime's I/O driver).
    pub fn new(hcs: Arc<H>, namespace: &str, backend: Arc<dyn Backend>) -> Result<Self> {
        Self::with_settings(hcs, namespace, backend, ClientSettings::default())
    }

    /// A client with explicit settings.
    pub fn with_settings(
        hcs: Arc<H>,
        namespace: &str,
        backend: Arc<dyn Backend>,
        settings: ClientSettings,
    ) -> Result<Self> {
        libctd_core::validate_namespace(namespace)?;
        Ok(Self {
            inner: Arc::new(Inner {
                hcs,
                namespace: namespace.to_owned(),
                settings,
                events: EventDispatcher::for_client(backend, namespace)?,
                containers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The HCS the client drives.
    pub fn hcs(&self) -> &Arc<H> {
        &self.inner.hcs
    }

    /// The namespace of the client (the `Owner` of its compute systems).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Resolves once every event queued so far has been delivered.
    pub async fn wait_events_idle(&self) {
        self.inner.events.queue().wait_idle().await;
    }
}

impl<H: Hcs> Inner<H> {
    /// The HCS id of a container: compute-system ids are global, so the
    /// namespace is part of it (`@` cannot occur in ids or namespaces).
    fn system_id(&self, container_id: &str) -> String {
        format!("{container_id}@{}", self.namespace)
    }

    fn container(&self, id: &str, operation: &'static str) -> Result<Arc<Container<H>>> {
        validate_container_id(id).map_err(|e| e.with_operation(operation))?;
        lock(&self.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(id, operation))
    }

    /// The container of an operation on one of its processes. The input is
    /// checked first (container id, process id, then `checks`, such as a
    /// signal number), so bad input is `InvalidArgument` even for an unknown
    /// container.
    fn process_container(
        &self,
        container_id: &str,
        process_id: &str,
        operation: &'static str,
        checks: Result<()>,
    ) -> Result<Arc<Container<H>>> {
        validate_container_id(container_id).map_err(|e| e.with_operation(operation))?;
        validate_process_id(process_id).and(checks).map_err(|e| {
            e.with_operation(operation)
                .with_container(container_id)
                .with_process(process_id)
        })?;
        self.container(container_id, operation)
    }

    fn emit(&self, ctr: &Container<H>, event: EventType, info: EventInfo) {
        if ctr.servicing {
            tracing::debug!(container_id = %ctr.id, %event, "servicing container: event not emitted");
            return;
        }
        self.events.dispatch(event, info);
    }
}

#[async_trait]
impl<H: Hcs> Client for WindowsClient<H> {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn version(&self) -> Result<Version> {
        measured("version", async { queries::version() }).await
    }

    #[tracing::instrument(level = "debug", skip(self, attach))]
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        measured("restore", async {
            restore::restore(&self.inner, container_id, attach).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        measured("create", async {
            lifecycle::create(&self.inner, container_id, spec, options).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, attach))]
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        measured("start", async {
            lifecycle::start(
                &self.inner,
                container_id,
                checkpoint_dir,
                with_stdin,
                attach,
            )
            .await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        measured("signal_process", async {
            exec::signal_process(&self.inner, container_id, process_id, signal).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, attach))]
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        measured("exec", async {
            exec::exec(
                &self.inner,
                container_id,
                process_id,
                spec,
                with_stdin,
                attach,
            )
            .await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        measured("resize_terminal", async {
            exec::resize_terminal(&self.inner, container_id, process_id, width, height).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        measured("close_stdin", async {
            exec::close_stdin(&self.inner, container_id, process_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        measured("pause", async {
            queries::pause_resume(&self.inner, container_id, true).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        measured("resume", async {
            queries::pause_resume(&self.inner, container_id, false).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        measured("stats", async {
            queries::stats(&self.inner, container_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        measured("list_pids", async {
            queries::list_pids(&self.inner, container_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        measured("summary", async {
            queries::summary(&self.inner, container_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        measured("delete_task", async {
            lifecycle::delete_task(&self.inner, container_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        measured("delete", async {
            lifecycle::delete(&self.inner, container_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        measured("status", async {
            queries::status(&self.inner, container_id).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, resources))]
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        measured("update_resources", async {
            queries::update_resources(&self.inner, container_id, resources).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        measured("create_checkpoint", async {
            queries::create_checkpoint(&self.inner, container_id, checkpoint_dir, exit).await
        })
        .await
    }
}
