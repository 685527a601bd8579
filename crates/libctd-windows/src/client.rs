//! `WindowsClient`: libctd's operations over an [`Hcs`].
//!
//! "Created" on Windows means the compute system runs and the user's process
//! does not yet. The init process's exit is reaped in the order libcontainerd
//! settled on, with its defects fixed: the exit event always follows the start
//! event, and every system failure met while shutting the compute system down
//! reaches the engine as exit code 4294967295 plus a chained error in
//! [`EventInfo::error`].

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Backend, Client, CreateOptions, DirectIo, Error, ErrorContext, ErrorKind, EventDispatcher,
    EventInfo, EventType, INIT_PROCESS_ID, Resources, Restored, Result, Stats, Status,
    StdioAttachment, StdioCallback, Summary, TaskExit, Version, validate_container_id,
    validate_process_id, validate_signal, validate_terminal_size,
};
use tokio::sync::watch;
use tracing::Instrument;

use crate::convert::{self, ContainerConfig, Isolation, PropertiesError};
use crate::error::HcsError;
use crate::exits;
use crate::hcs::{Hcs, HcsOp, SystemExit};
use crate::schema::{ModifyProcessRequest, PropertyQuery};

/// The exit code reported when the real one could not be obtained (`u32` of -1).
pub const UNKNOWN_EXIT_CODE: u32 = u32::MAX;

const SIGKILL: i32 = 9;

/// Settings of a [`WindowsClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// How long to wait for a compute system to exit after asking it to shut
    /// down or terminate (libcontainerd: 5 minutes).
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
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            shutdown_timeout: Duration::from_secs(300),
            stdio_drain_timeout: Duration::from_secs(2),
            update_query_timeout: Duration::from_secs(5),
            exit_grace: Duration::from_secs(5),
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

struct Container<H: Hcs> {
    id: String,
    system: H::System,
    /// With Hyper-V isolation, the utility VM hosting `system`.
    utility_vm: Option<H::System>,
    isolation: Isolation,
    servicing: bool,
    spec: Spec,
    /// The compute system's exit, for the reapers of its processes.
    system_exit: exits::SystemExitWatch,
    state: tokio::sync::Mutex<State<H>>,
    /// True once the init process's exit has been fully reaped (the compute
    /// system shut down and closed) and its event queued.
    reaped: watch::Sender<bool>,
}

struct State<H: Hcs> {
    status: Status,
    init: Option<Proc<H>>,
    execs: HashMap<String, Proc<H>>,
    exit: Option<TaskExit>,
    task_deleted: bool,
}

struct Proc<H: Hcs> {
    handle: H::Process,
    pid: u32,
    terminal: bool,
    attachment: Option<Box<dyn StdioAttachment>>,
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
    /// Needs a tokio runtime (for the event queue).
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
                events: EventDispatcher::new(backend)?,
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

    /// Waits, at most the shutdown timeout, for the compute system's exit
    /// notification after a `requested` shutdown or terminate.
    async fn wait_system_exit(
        &self,
        ctr_id: &str,
        system: &H::System,
        requested: HcsOp,
    ) -> Result<SystemExit> {
        let timeout = self.settings.shutdown_timeout;
        match tokio::time::timeout(timeout, self.hcs.wait_compute_system_exit(system)).await {
            Ok(Ok(exit)) => Ok(exit),
            Ok(Err(e)) => Err(e.into_error(ctr_id, HcsOp::WaitForComputeSystemExit.name())),
            Err(_) => Err(Error::deadline_exceeded(format!(
                "the compute system did not exit within {timeout:?} of {requested}"
            ))
            .with_container(ctr_id)),
        }
    }

    /// Terminates the compute system and waits for it to exit; a system that
    /// already stopped is fine.
    async fn terminate_system(&self, ctr_id: &str, system: &H::System) -> Result<()> {
        match self.hcs.terminate_compute_system(system).await {
            Ok(()) => {}
            Err(e) if e.hresult.is_already_stopped() => return Ok(()),
            Err(e) if exits::system_stop_leaves_it_ended(e.hresult) => {}
            Err(e) => return Err(e.into_error(ctr_id, HcsOp::TerminateComputeSystem.name())),
        }
        // A forced exit is what was asked for; only a failed wait counts.
        self.wait_system_exit(ctr_id, system, HcsOp::TerminateComputeSystem)
            .await
            .map(drop)
    }

    /// Shuts the compute system down, waiting for it, and falls back to
    /// terminate. A shutdown failure is returned even when terminate then
    /// succeeded; when terminate fails too, both are chained. A system that
    /// stopped already is fine only if it did not die: its stored exit
    /// notice is read, and an unexpected exit is the failure.
    async fn shutdown_system(&self, ctr_id: &str, system: &H::System) -> Result<()> {
        const OP: HcsOp = HcsOp::ShutDownComputeSystem;
        let exited = |exit: SystemExit| match exit.error() {
            Some(e) => Err(e.into_error(ctr_id, OP.name())),
            None => Ok(()),
        };
        let shutdown = match self.hcs.shutdown_compute_system(system).await {
            Err(e) if e.hresult.is_already_stopped() => {
                match self.wait_system_exit(ctr_id, system, OP).await {
                    Ok(exit) => exited(exit),
                    // Stopped, but how is unknown: nothing to report.
                    Err(e) => {
                        tracing::debug!(container_id = ctr_id, error = %e.report(), "no exit notice for a stopped compute system");
                        Ok(())
                    }
                }
            }
            Err(e) if !e.hresult.is_pending() => Err(e.into_error(ctr_id, OP.name())),
            // Requested (or pending): the exit notification says how it went.
            _ => self
                .wait_system_exit(ctr_id, system, OP)
                .await
                .and_then(exited),
        };
        let Err(err) = shutdown else {
            return Ok(());
        };
        tracing::debug!(container_id = ctr_id, error = %err.report(), "shutdown failed, terminating");
        match self.terminate_system(ctr_id, system).await {
            Ok(()) => Err(err),
            Err(terr) => {
                tracing::error!(container_id = ctr_id, error = %terr.report(), "terminate after a failed shutdown failed too");
                Err(Error::new(
                    err.kind(),
                    format!(
                        "{}: subsequent terminate failed {}",
                        err.message(),
                        terr.message()
                    ),
                )
                .with_container(ctr_id)
                .with_source(err))
            }
        }
    }

    /// Creates and starts the utility VM `uvm_id` of container `ctr_id`
    /// from `document`; on failure nothing is left running.
    async fn start_utility_vm(
        &self,
        ctr_id: &str,
        uvm_id: &str,
        document: &str,
    ) -> Result<H::System> {
        let uvm = self
            .hcs
            .create_compute_system(uvm_id, document)
            .await
            .map_err(|e| hcs_error(e, ctr_id, HcsOp::CreateComputeSystem, "create"))?;
        if let Err(e) = self.hcs.start_compute_system(&uvm).await {
            let err = hcs_error(e, ctr_id, HcsOp::StartComputeSystem, "create");
            if let Err(e) = self.release_utility_vm(ctr_id, Some(&uvm)).await {
                tracing::warn!(container_id = ctr_id, error = %e.report(), "releasing a utility VM that failed to start");
            }
            return Err(err);
        }
        Ok(uvm)
    }

    /// Terminates and closes a container's utility VM, once the container's
    /// own compute system is gone.
    async fn release_utility_vm(&self, ctr_id: &str, uvm: Option<&H::System>) -> Result<()> {
        let Some(uvm) = uvm else {
            return Ok(());
        };
        let terminated = self.terminate_system(ctr_id, uvm).await;
        let closed = self
            .hcs
            .close_compute_system(uvm)
            .await
            .map_err(|e| e.into_error(ctr_id, HcsOp::CloseComputeSystem.name()));
        terminated.and(closed)
    }

    /// Waits for a process's end ([`exits::process_end`]), then closes its
    /// handle: a failed close makes the exit code unknown too. Never
    /// [`UNKNOWN_EXIT_CODE`] without an error.
    async fn wait_and_close(
        &self,
        ctr: &Container<H>,
        process_id: &str,
        handle: &H::Process,
    ) -> exits::ProcessEnd {
        let watched = exits::Watched::<H> {
            ctr_id: &ctr.id,
            process_id,
            system: &ctr.system_exit,
            process: handle,
        };
        let mut end = exits::process_end(&*self.hcs, watched, self.settings.exit_grace).await;
        if let Err(e) = self.hcs.close_process(handle).await {
            end.exit_code = UNKNOWN_EXIT_CODE;
            let e = e.into_error(&ctr.id, HcsOp::CloseProcess.name());
            end.errors.push(
                Error::system(format!("hcsProcess.Close() failed {}", e.message())).with_source(e),
            );
        }
        end
    }

    /// Reaps the init process: the exit path libcontainerd settled on.
    async fn reap_init(self: Arc<Self>, ctr: Arc<Container<H>>, handle: H::Process, pid: u32) {
        let id = ctr.id.clone();
        let hcs = self.hcs.clone();
        let end = self.wait_and_close(&ctr, INIT_PROCESS_ID, &handle).await;
        let (exited_at, mut exit_code, mut chain) = (end.exited_at, end.exit_code, end.errors);

        // Stopped, and anyone waiting on that woken, before the shutdown.
        {
            let mut state = ctr.state.lock().await;
            state.status = Status::Stopped;
            state.exit = Some(TaskExit::new(exit_code, exited_at));
        }

        let update_pending = exit_code == 0
            && !ctr.servicing
            && exits::update_pending(&*hcs, &ctr.system, &id, self.settings.update_query_timeout)
                .await;

        // A system that exited already needs no shutdown (and its exit was
        // read by the rules of `exits`).
        let shutdown = if end.system_exited {
            Ok(())
        } else {
            self.shutdown_system(&id, &ctr.system).await
        };
        if let Err(e) = shutdown {
            exit_code = UNKNOWN_EXIT_CODE;
            tracing::warn!(container_id = %id, error = %e.report(), "failed to shutdown container");
            chain.push(
                Error::new(
                    e.kind(),
                    format!("failed to shutdown container: {}", e.message()),
                )
                .with_source(e),
            );
        }
        if let Err(e) = hcs.close_compute_system(&ctr.system).await {
            exit_code = UNKNOWN_EXIT_CODE;
            let e = e.into_error(&id, HcsOp::CloseComputeSystem.name());
            tracing::error!(container_id = %id, error = %e.report(), "failed to clean hcs container resources");
            chain.push(
                Error::new(
                    e.kind(),
                    format!("failed to terminate container: {}", e.message()),
                )
                .with_source(e),
            );
        }
        if let Err(e) = self.release_utility_vm(&id, ctr.utility_vm.as_ref()).await {
            exit_code = UNKNOWN_EXIT_CODE;
            chain.push(
                Error::new(
                    e.kind(),
                    format!("failed to terminate utility VM: {}", e.message()),
                )
                .with_source(e),
            );
        }

        let error = chain_errors(chain).map(|e| {
            Arc::new(
                e.with_operation("exit")
                    .with_container(&id)
                    .with_process(INIT_PROCESS_ID),
            )
        });
        let info = EventInfo::new(id.clone(), INIT_PROCESS_ID)
            .with_pid(pid)
            .with_exit_code(exit_code)
            .with_exited_at(Some(exited_at))
            .with_update_pending(update_pending)
            .with_error(error);
        self.emit(&ctr, EventType::Exit, info);
        ctr.reaped.send_replace(true);
    }

    /// Reaps an exec: its exit event, then its removal in the same queue slot.
    async fn reap_exec(
        self: Arc<Self>,
        ctr: Arc<Container<H>>,
        exec_id: String,
        handle: H::Process,
        pid: u32,
    ) {
        let end = self.wait_and_close(&ctr, &exec_id, &handle).await;
        let (exited_at, exit_code) = (end.exited_at, end.exit_code);
        let error = chain_errors(end.errors).map(|e| {
            Arc::new(
                e.with_operation("exit")
                    .with_container(&ctr.id)
                    .with_process(&exec_id),
            )
        });
        let info = EventInfo::new(ctr.id.clone(), exec_id.clone())
            .with_pid(pid)
            .with_exit_code(exit_code)
            .with_exited_at(Some(exited_at))
            .with_error(error);
        let drain = self.settings.stdio_drain_timeout;
        let cleanup_ctr = ctr.clone();
        let cleanup = async move {
            let removed = cleanup_ctr.state.lock().await.execs.remove(&exec_id);
            if let Some(p) = removed {
                release(p, drain).await;
            }
        };
        if ctr.servicing {
            cleanup.await;
        } else {
            self.events.dispatch_then(EventType::Exit, info, cleanup);
        }
    }
}

/// Chains errors as `<previous>: <next>`, keeping the first as the source.
fn chain_errors(chain: Vec<Error>) -> Option<Error> {
    let mut iter = chain.into_iter();
    let first = iter.next()?;
    let mut message = first.message().to_owned();
    let mut kind = first.kind();
    for next in iter {
        message.push_str(": ");
        message.push_str(next.message());
        kind = ErrorKind::System;
    }
    Some(Error::new(kind, message).with_source(first))
}

/// Lets the engine finish consuming a deleted process's output, boundedly.
async fn release<H: Hcs>(mut p: Proc<H>, drain: Duration) {
    if let Some(mut att) = p.attachment.take()
        && tokio::time::timeout(drain, att.wait()).await.is_err()
    {
        att.cancel();
    }
}

/// What to start: a process of a container, and how.
struct ProcessRequest<'a> {
    ctr_id: &'a str,
    process: &'a Process,
    with_stdin: bool,
    operation: &'static str,
    /// How long to wait for the process to exit when it has to be undone.
    exit_timeout: Duration,
}

/// Starts a process and hands its streams to `attach`; on any failure the
/// process is terminated and closed, and nothing is left behind.
async fn spawn_process<H: Hcs>(
    hcs: &H,
    system: &H::System,
    request: ProcessRequest<'_>,
    attach: StdioCallback,
) -> Result<Proc<H>> {
    let ProcessRequest {
        ctr_id,
        process,
        with_stdin,
        operation,
        exit_timeout,
    } = request;
    let params = convert::process_parameters(process, with_stdin)
        .map_err(|e| e.with_operation(operation).with_container(ctr_id))?;
    let document = serde_json::to_string(&params).map_err(|e| {
        Error::system("cannot encode the process parameters")
            .with_source(e)
            .with_operation(operation)
            .with_container(ctr_id)
    })?;
    let (handle, info) = hcs
        .create_process(system, &document)
        .await
        .map_err(|e| hcs_error(e, ctr_id, HcsOp::CreateProcess, operation))?;
    let io = DirectIo::new(
        if with_stdin { info.stdin } else { None },
        info.stdout,
        info.stderr,
        params.emulate_console,
    );
    match attach(io) {
        Ok(attachment) => Ok(Proc {
            handle,
            pid: info.pid,
            terminal: params.emulate_console,
            attachment: Some(attachment),
        }),
        Err(e) => {
            if let Err(te) = hcs.terminate_process(&handle).await {
                tracing::warn!(container_id = ctr_id, error = %te, "terminating a process whose stdio failed");
            }
            // Bounded: a process that survives a failed terminate must not
            // hold the operation (and the container's state) forever.
            match tokio::time::timeout(exit_timeout, hcs.wait_process_exit(&handle)).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(container_id = ctr_id, timeout = ?exit_timeout, "a process whose stdio failed did not exit; closing it anyway");
                }
            }
            if let Err(ce) = hcs.close_process(&handle).await {
                tracing::warn!(container_id = ctr_id, error = %ce, "closing a process whose stdio failed");
            }
            Err(e.with_operation(operation).with_container(ctr_id))
        }
    }
}

#[async_trait]
impl<H: Hcs> Client for WindowsClient<H> {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn version(&self) -> Result<Version> {
        Err(Error::not_implemented(
            "version is not implemented on Windows: HCS has no version query",
        )
        .with_operation("version"))
    }

    #[tracing::instrument(level = "debug", skip(self, _attach))]
    async fn restore(&self, container_id: &str, _attach: StdioCallback) -> Result<Restored> {
        validate_container_id(container_id).map_err(|e| e.with_operation("restore"))?;
        let tracked = lock(&self.inner.containers).get(container_id).cloned();
        let inner = self.inner.clone();
        let id = container_id.to_owned();
        // A re-attach is not possible on Windows: whatever HCS still runs is
        // shot, and the answer is always "not alive"; the stdio callback is
        // never called. A tracked container's exit then arrives as usual.
        detached("restore", container_id, async move {
            if let Some(ctr) = tracked {
                let stopped = {
                    let state = ctr.state.lock().await;
                    state.status == Status::Stopped || state.exit.is_some()
                };
                // A stopped container's compute system is being (or was)
                // shut down and closed by its reaper.
                if !stopped {
                    inner
                        .terminate_system(&id, &ctr.system)
                        .await
                        .map_err(|e| e.with_operation("restore"))?;
                }
                return Ok(Restored::new(false, None));
            }
            match inner.hcs.open_compute_system(&inner.system_id(&id)).await {
                Ok(system) => {
                    let terminated = inner.terminate_system(&id, &system).await;
                    if let Err(e) = inner.hcs.close_compute_system(&system).await {
                        tracing::warn!(container_id = %id, error = %e, "closing a restored compute system");
                    }
                    terminated.map_err(|e| e.with_operation("restore"))?;
                    // A Hyper-V isolated container's utility VM goes too.
                    let uvm_id = convert::utility_vm_id(&inner.system_id(&id));
                    if let Ok(uvm) = inner.hcs.open_compute_system(&uvm_id).await {
                        inner
                            .release_utility_vm(&id, Some(&uvm))
                            .await
                            .map_err(|e| e.with_operation("restore"))?;
                    }
                    Ok(Restored::new(false, None))
                }
                Err(e) if e.hresult.is_not_exist() => Err(not_found(&id, "restore")),
                Err(e) => Err(hcs_error(e, &id, HcsOp::OpenComputeSystem, "restore")),
            }
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        validate_container_id(container_id).map_err(|e| e.with_operation("create"))?;
        if let Some(o) = &options.runtime_options {
            return Err(Error::invalid_argument(format!(
                "runtime options of type {:?} are not understood: the Windows backend takes none",
                o.type_url()
            ))
            .with_operation("create")
            .with_container(container_id));
        }
        if spec.process().is_none() {
            return Err(Error::invalid_argument("invalid spec: process is required")
                .with_operation("create")
                .with_container(container_id));
        }
        let mut config: ContainerConfig =
            convert::compute_system(&*self.inner.hcs, &self.inner.namespace, spec)
                .map_err(|e| e.with_operation("create").with_container(container_id))?;
        let system_id = self.inner.system_id(container_id);
        let uvm_id = convert::utility_vm_id(&system_id);
        if config.utility_vm.is_some() {
            config.document.hosting_system_id = Some(uvm_id.clone());
        }
        let encode = |doc: &crate::schema::ComputeSystem| {
            serde_json::to_string(doc).map_err(|e| {
                Error::system("cannot encode the compute system document")
                    .with_source(e)
                    .with_operation("create")
                    .with_container(container_id)
            })
        };
        let document = encode(&config.document)?;
        let uvm_document = config.utility_vm.as_ref().map(encode).transpose()?;
        let inner = self.inner.clone();
        let id = container_id.to_owned();
        let spec = spec.clone();
        detached("create", container_id, async move {
            {
                let table = lock(&inner.containers);
                if table.contains_key(&id) {
                    return Err(Error::already_exists("container already exists")
                        .with_operation("create")
                        .with_container(&id));
                }
            }
            let hcs = &inner.hcs;
            // Hyper-V isolation: the utility VM first, the container in it.
            let utility_vm = match &uvm_document {
                Some(doc) => Some(inner.start_utility_vm(&id, &uvm_id, doc).await?),
                None => None,
            };
            let created = hcs
                .create_compute_system(&system_id, &document)
                .await
                .map_err(|e| hcs_error(e, &id, HcsOp::CreateComputeSystem, "create"));
            let system = match created {
                Ok(system) => system,
                Err(err) => {
                    if let Err(e) = inner.release_utility_vm(&id, utility_vm.as_ref()).await {
                        tracing::warn!(container_id = %id, error = %e.report(), "releasing the utility VM after a failed create");
                    }
                    return Err(err);
                }
            };
            if let Err(e) = hcs.start_compute_system(&system).await {
                let err = hcs_error(e, &id, HcsOp::StartComputeSystem, "create");
                if let Err(te) = inner.terminate_system(&id, &system).await {
                    tracing::warn!(container_id = %id, error = %te.report(), "terminate after a failed start");
                }
                if let Err(ce) = hcs.close_compute_system(&system).await {
                    tracing::warn!(container_id = %id, error = %ce, "close after a failed start");
                }
                if let Err(e) = inner.release_utility_vm(&id, utility_vm.as_ref()).await {
                    tracing::warn!(container_id = %id, error = %e.report(), "releasing the utility VM after a failed start");
                }
                return Err(err);
            }
            let system_exit = exits::SystemExitWatch::start(hcs.clone(), system.clone(), id.clone());
            let ctr = Arc::new(Container {
                id: id.clone(),
                system,
                utility_vm,
                isolation: config.isolation,
                servicing: config.servicing,
                spec,
                system_exit,
                state: tokio::sync::Mutex::new(State {
                    status: Status::Created,
                    init: None,
                    execs: HashMap::new(),
                    exit: None,
                    task_deleted: false,
                }),
                reaped: watch::channel(false).0,
            });
            let raced = {
                let mut table = lock(&inner.containers);
                if table.contains_key(&id) {
                    true
                } else {
                    table.insert(id.clone(), ctr.clone());
                    false
                }
            };
            if raced {
                // Another create of the same id won; HCS refuses duplicate ids,
                // so this cannot normally happen. Undo ours.
                let _ = inner.terminate_system(&id, &ctr.system).await;
                let _ = hcs.close_compute_system(&ctr.system).await;
                let _ = inner.release_utility_vm(&id, ctr.utility_vm.as_ref()).await;
                return Err(Error::already_exists("container already exists")
                    .with_operation("create")
                    .with_container(&id));
            }
            inner.emit(
                &ctr,
                EventType::Create,
                EventInfo::new(id.clone(), INIT_PROCESS_ID),
            );
            Ok(())
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
        let ctr = self.inner.container(container_id, "start")?;
        if checkpoint_dir.is_some() {
            return Err(
                Error::not_implemented("checkpoints are not supported on Windows")
                    .with_operation("start")
                    .with_container(container_id),
            );
        }
        let inner = self.inner.clone();
        detached("start", container_id, async move {
            let id = ctr.id.clone();
            let mut state = ctr.state.lock().await;
            if state.status != Status::Created || state.init.is_some() || state.exit.is_some() {
                return Err(Error::already_exists("container is already started")
                    .with_operation("start")
                    .with_container(&id));
            }
            let process = ctr.spec.process().clone().ok_or_else(|| {
                Error::invalid_argument("invalid spec: process is required to start")
                    .with_operation("start")
                    .with_container(&id)
            })?;
            let request = ProcessRequest {
                ctr_id: &id,
                process: &process,
                with_stdin,
                operation: "start",
                exit_timeout: inner.settings.shutdown_timeout,
            };
            let proc = spawn_process(&*inner.hcs, &ctr.system, request, attach).await?;
            let pid = proc.pid;
            let handle = proc.handle.clone();
            state.init = Some(proc);
            state.status = Status::Running;
            // Start is queued before the reaper exists, so it always precedes exit.
            inner.emit(
                &ctr,
                EventType::Start,
                EventInfo::new(id.clone(), INIT_PROCESS_ID).with_pid(pid),
            );
            drop(state);
            let span =
                tracing::debug_span!("reap", container_id = %id, process_id = INIT_PROCESS_ID);
            tokio::spawn(
                inner
                    .clone()
                    .reap_init(ctr.clone(), handle, pid)
                    .instrument(span),
            );
            Ok(pid)
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
        const OP: &str = "signal_process";
        let ctr =
            self.inner
                .process_container(container_id, process_id, OP, validate_signal(signal))?;
        let inner = self.inner.clone();
        let process_id = process_id.to_owned();
        detached(OP, container_id, async move {
            let id = ctr.id.clone();
            let state = ctr.state.lock().await;
            if process_id == INIT_PROCESS_ID {
                if state.init.is_none() || state.task_deleted {
                    return Err(not_running(&id, OP).with_process(&process_id));
                }
                if state.status == Status::Stopped {
                    return Err(Error::not_found("process already finished")
                        .with_operation(OP)
                        .with_container(&id)
                        .with_process(&process_id));
                }
                drop(state);
                let result = if signal == SIGKILL {
                    inner
                        .hcs
                        .terminate_compute_system(&ctr.system)
                        .await
                        .map_err(|e| (e, HcsOp::TerminateComputeSystem))
                } else {
                    inner
                        .hcs
                        .shutdown_compute_system(&ctr.system)
                        .await
                        .map_err(|e| (e, HcsOp::ShutDownComputeSystem))
                };
                match result {
                    Ok(()) => Ok(()),
                    // Its exit notice follows (or came): the reaper reports it.
                    Err((e, _)) if exits::system_stop_leaves_it_ended(e.hresult) => Ok(()),
                    Err((e, op)) => Err(hcs_error(e, &id, op, OP).with_process(&process_id)),
                }
            } else {
                let Some(p) = state.execs.get(&process_id) else {
                    return Err(Error::not_found("no such exec")
                        .with_operation(OP)
                        .with_container(&id)
                        .with_process(&process_id));
                };
                let handle = p.handle.clone();
                drop(state);
                match inner.hcs.terminate_process(&handle).await {
                    Ok(()) => Ok(()),
                    // It exited: its reaper reports the exit.
                    Err(e) if exits::terminate_leaves_it_ended(e.hresult) => Ok(()),
                    Err(e) => {
                        Err(hcs_error(e, &id, HcsOp::TerminateProcess, OP)
                            .with_process(&process_id))
                    }
                }
            }
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
        const OP: &str = "exec";
        let ctr = self
            .inner
            .process_container(container_id, process_id, OP, Ok(()))?;
        if process_id == INIT_PROCESS_ID {
            // As on Linux: the id is in use, by the init process.
            return Err(Error::already_exists(format!(
                "the exec id {INIT_PROCESS_ID:?} is in use by the init process"
            ))
            .with_operation(OP)
            .with_container(container_id)
            .with_process(process_id));
        }
        let inner = self.inner.clone();
        let exec_id = process_id.to_owned();
        let spec = spec.clone();
        detached(OP, container_id, async move {
            let id = ctr.id.clone();
            let mut state = ctr.state.lock().await;
            if (state.init.is_none() && state.exit.is_none()) || state.task_deleted {
                // Never started, or its task deleted: there is no task to
                // run the exec in.
                return Err(Error::not_found("container is not running")
                    .with_operation(OP)
                    .with_container(&id)
                    .with_process(&exec_id));
            }
            if !matches!(state.status, Status::Running | Status::Paused) {
                return Err(
                    Error::failed_precondition(format!("container is {}", state.status))
                        .with_operation(OP)
                        .with_container(&id)
                        .with_process(&exec_id),
                );
            }
            if state.execs.contains_key(&exec_id) {
                return Err(Error::already_exists("an exec with this id exists already")
                    .with_operation(OP)
                    .with_container(&id)
                    .with_process(&exec_id));
            }
            let request = ProcessRequest {
                ctr_id: &id,
                process: &spec,
                with_stdin,
                operation: OP,
                exit_timeout: inner.settings.shutdown_timeout,
            };
            let proc = spawn_process(&*inner.hcs, &ctr.system, request, attach)
                .await
                .map_err(|e| e.with_process(&exec_id))?;
            let pid = proc.pid;
            let handle = proc.handle.clone();
            state.execs.insert(exec_id.clone(), proc);
            for event in [EventType::ExecAdded, EventType::ExecStarted] {
                inner.emit(
                    &ctr,
                    event,
                    EventInfo::new(id.clone(), exec_id.clone()).with_pid(pid),
                );
            }
            drop(state);
            let span = tracing::debug_span!("reap", container_id = %id, process_id = %exec_id);
            tokio::spawn(
                inner
                    .clone()
                    .reap_exec(ctr.clone(), exec_id, handle, pid)
                    .instrument(span),
            );
            Ok(pid)
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
        const OP: &str = "resize_terminal";
        let size = validate_terminal_size(width, height);
        let ctr = self
            .inner
            .process_container(container_id, process_id, OP, size)?;
        let (handle, terminal) = process_handle(&ctr, process_id, OP).await?;
        if !terminal {
            return Err(Error::failed_precondition("the process has no terminal")
                .with_operation(OP)
                .with_container(container_id)
                .with_process(process_id));
        }
        let request = ModifyProcessRequest::console_size(
            u16::try_from(height).unwrap_or(u16::MAX),
            u16::try_from(width).unwrap_or(u16::MAX),
        );
        self.modify_process(&ctr.id, process_id, &handle, &request, OP)
            .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        const OP: &str = "close_stdin";
        let ctr = self
            .inner
            .process_container(container_id, process_id, OP, Ok(()))?;
        let (handle, _) = process_handle(&ctr, process_id, OP).await?;
        self.modify_process(
            &ctr.id,
            process_id,
            &handle,
            &ModifyProcessRequest::close_stdin(),
            OP,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        self.pause_resume(container_id, true).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        self.pause_resume(container_id, false).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        let props = self
            .query(container_id, "stats", PropertyQuery::STATISTICS)
            .await?;
        Ok(convert::stats(&props))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        let props = self
            .query(container_id, "list_pids", PropertyQuery::PROCESS_LIST)
            .await?;
        Ok(convert::summary(&props).iter().map(Summary::pid).collect())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        let props = self
            .query(container_id, "summary", PropertyQuery::PROCESS_LIST)
            .await?;
        Ok(convert::summary(&props))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        const OP: &str = "delete_task";
        let ctr = self.inner.container(container_id, OP)?;
        let drain = self.inner.settings.stdio_drain_timeout;
        detached(OP, container_id, async move {
            let mut state = ctr.state.lock().await;
            if state.init.is_none() || state.task_deleted {
                return Err(not_running(&ctr.id, OP));
            }
            let exit = match (state.status, state.exit) {
                (Status::Stopped, Some(exit)) => exit,
                _ => {
                    return Err(Error::failed_precondition("task is still running")
                        .with_operation(OP)
                        .with_container(&ctr.id));
                }
            };
            state.task_deleted = true;
            let init = state.init.take();
            drop(state);
            if let Some(p) = init {
                release(p, drain).await;
            }
            Ok(exit)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        const OP: &str = "delete";
        let ctr = self.inner.container(container_id, OP)?;
        let inner = self.inner.clone();
        detached(OP, container_id, async move {
            let id = ctr.id.clone();
            let mut state = ctr.state.lock().await;
            match state.status {
                Status::Created if state.init.is_none() && state.exit.is_none() => {
                    // The compute system runs without a user process: shut it down.
                    inner
                        .shutdown_system(&id, &ctr.system)
                        .await
                        .map_err(|e| e.with_operation(OP))?;
                    if let Err(e) = inner.hcs.close_compute_system(&ctr.system).await {
                        return Err(hcs_error(e, &id, HcsOp::CloseComputeSystem, OP));
                    }
                    inner
                        .release_utility_vm(&id, ctr.utility_vm.as_ref())
                        .await
                        .map_err(|e| e.with_operation(OP))?;
                    state.status = Status::Stopped;
                }
                Status::Stopped => {
                    drop(state);
                    // The reaper shuts the compute system down and closes it.
                    let mut reaped = ctr.reaped.subscribe();
                    let wait = inner.settings.shutdown_timeout.saturating_mul(2);
                    if tokio::time::timeout(wait, reaped.wait_for(|r| *r))
                        .await
                        .is_err()
                    {
                        return Err(Error::deadline_exceeded(
                            "the container's compute system is still shutting down",
                        )
                        .with_operation(OP)
                        .with_container(&id));
                    }
                    state = ctr.state.lock().await;
                }
                _ => {
                    return Err(Error::failed_precondition(format!(
                        "container is {}: only created or stopped containers can be deleted",
                        state.status
                    ))
                    .with_operation(OP)
                    .with_container(&id));
                }
            }
            let init = state.init.take();
            let execs: Vec<_> = state.execs.drain().map(|(_, p)| p).collect();
            drop(state);
            lock(&inner.containers).remove(&id);
            let drain = inner.settings.stdio_drain_timeout;
            for p in init.into_iter().chain(execs) {
                release(p, drain).await;
            }
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        let ctr = self.inner.container(container_id, "status")?;
        let state = ctr.state.lock().await;
        Ok(state.status)
    }

    #[tracing::instrument(level = "debug", skip(self, _resources))]
    async fn update_resources(&self, container_id: &str, _resources: &Resources) -> Result<()> {
        self.inner.container(container_id, "update_resources")?;
        Err(
            Error::not_implemented("updating resources is not implemented on Windows")
                .with_operation("update_resources")
                .with_container(container_id),
        )
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        _checkpoint_dir: &Path,
        _exit: bool,
    ) -> Result<()> {
        self.inner.container(container_id, "create_checkpoint")?;
        Err(
            Error::not_implemented("checkpoints are not supported on Windows")
                .with_operation("create_checkpoint")
                .with_container(container_id),
        )
    }
}

/// The handle of `process_id` (init or an exec) of a running container, and
/// whether it has a terminal.
async fn process_handle<H: Hcs>(
    ctr: &Container<H>,
    process_id: &str,
    operation: &'static str,
) -> Result<(H::Process, bool)> {
    let state = ctr.state.lock().await;
    let proc = if process_id == INIT_PROCESS_ID {
        state
            .init
            .as_ref()
            .filter(|_| state.status != Status::Stopped)
    } else {
        state.execs.get(process_id)
    };
    match proc {
        Some(p) => Ok((p.handle.clone(), p.terminal)),
        None if process_id == INIT_PROCESS_ID => {
            Err(not_running(&ctr.id, operation).with_process(process_id))
        }
        None => Err(Error::not_found("no such exec")
            .with_operation(operation)
            .with_container(&ctr.id)
            .with_process(process_id)),
    }
}

impl<H: Hcs> WindowsClient<H> {
    async fn modify_process(
        &self,
        container_id: &str,
        process_id: &str,
        handle: &H::Process,
        request: &ModifyProcessRequest,
        operation: &'static str,
    ) -> Result<()> {
        let document = serde_json::to_string(request).map_err(|e| {
            Error::system("cannot encode a modify request")
                .with_source(e)
                .with_operation(operation)
                .with_container(container_id)
                .with_process(process_id)
        })?;
        self.inner
            .hcs
            .modify_process(handle, &document)
            .await
            .map_err(|e| {
                hcs_error(e, container_id, HcsOp::ModifyProcess, operation).with_process(process_id)
            })
    }

    async fn pause_resume(&self, container_id: &str, pause: bool) -> Result<()> {
        let op: &'static str = if pause { "pause" } else { "resume" };
        let ctr = self.inner.container(container_id, op)?;
        if ctr.isolation != Isolation::HyperV {
            return Err(Error::not_implemented(format!(
                "{op} is only supported for Hyper-V isolated containers"
            ))
            .with_operation(op)
            .with_container(container_id));
        }
        let inner = self.inner.clone();
        detached(op, container_id, async move {
            let id = ctr.id.clone();
            let mut state = ctr.state.lock().await;
            let (from, to, event, hcs_op) = if pause {
                (
                    Status::Running,
                    Status::Paused,
                    EventType::Paused,
                    HcsOp::PauseComputeSystem,
                )
            } else {
                (
                    Status::Paused,
                    Status::Running,
                    EventType::Resumed,
                    HcsOp::ResumeComputeSystem,
                )
            };
            if state.init.is_none() {
                return Err(not_running(&id, op));
            }
            if state.status != from {
                return Err(
                    Error::failed_precondition(format!("container is {}", state.status))
                        .with_operation(op)
                        .with_container(&id),
                );
            }
            // Hyper-V isolation: the utility VM is what pauses.
            let target = ctr.utility_vm.as_ref().unwrap_or(&ctr.system);
            let result = if pause {
                inner.hcs.pause_compute_system(target).await
            } else {
                inner.hcs.resume_compute_system(target).await
            };
            match result {
                Ok(()) => {}
                Err(e) if e.hresult.is_pending() => {}
                Err(e) => return Err(hcs_error(e, &id, hcs_op, op)),
            }
            state.status = to;
            let pid = state.init.as_ref().map_or(0, |p| p.pid);
            inner.emit(
                &ctr,
                event,
                EventInfo::new(id.clone(), INIT_PROCESS_ID).with_pid(pid),
            );
            Ok(())
        })
        .await
    }

    async fn query(
        &self,
        container_id: &str,
        operation: &'static str,
        query: &str,
    ) -> Result<crate::schema::Properties> {
        let ctr = self.inner.container(container_id, operation)?;
        {
            let state = ctr.state.lock().await;
            if state.init.is_none() || !matches!(state.status, Status::Running | Status::Paused) {
                return Err(not_running(container_id, operation));
            }
        }
        let asked = convert::system_properties(&*self.inner.hcs, &ctr.system, query).await;
        asked.map_err(|e| match e {
            PropertiesError::Refused(e) => hcs_error(
                e,
                container_id,
                HcsOp::GetComputeSystemProperties,
                operation,
            ),
            PropertiesError::Unreadable(e) => {
                e.with_operation(operation).with_container(container_id)
            }
        })
    }
}
