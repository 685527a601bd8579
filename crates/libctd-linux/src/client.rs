//! [`LinuxClient`]: the 18 operations over containerd's gRPC API.
//!
//! Over 600 lines: the state model, every operation and the trait wrappers
//! still live together; issue 12 splits them into `state` and `client/`.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    CheckpointTaskRequest, CloseIoRequest, Container as ContainerProto, CreateContainerRequest,
    CreateTaskRequest, DeleteContainerRequest, DeleteProcessRequest, DeleteTaskRequest,
    ExecProcessRequest, GetContainerRequest, GetRequest, KillRequest, ListPidsRequest,
    MetricsRequest, PauseTaskRequest, ResizePtyRequest, ResumeTaskRequest, StartRequest,
    UpdateTaskRequest,
};
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Backend, Client, CreateOptions, Error, ErrorContext, ErrorKind, EventDispatcher,
    INIT_PROCESS_ID, LinuxProcess, PlatformStats, Resources, Restored, Result, Stats, Status,
    StdioAttachment, StdioCallback, Summary, TaskExit, Version, validate_container_id,
    validate_process_id, validate_signal, validate_terminal_size,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::convert::{self, status_error};
use crate::fifo::FifoSet;
use crate::remote::Shared;
use crate::rollback::{Rollback, unreachable};

/// The runtime used when [`CreateOptions::runtime`] is unset.
pub const DEFAULT_RUNTIME: &str = "io.containerd.runc.v2";

/// The annotation (and label) by which containerd's runc shim groups
/// containers into one shim (the shim reads the spec's annotation). With
/// [`shim_group`](crate::LinuxRemoteBuilder::shim_group), create sets it
/// to the group's name in both.
pub const SHIM_GROUP_KEY: &str = "io.containerd.runc.v2.group";
/// How long deleting a process waits for the engine to consume its output.
const STDIO_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The bound on an exec's cleanup after its exit was delivered.
const EXEC_CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// One process the client tracks.
pub(crate) struct Proc {
    pub fifos: FifoSet,
    /// Whether it has a terminal (only then can it be resized).
    pub terminal: bool,
    /// The client's end of stdin, if any.
    pub stdin: Option<crate::fifo::StdinSlot>,
    /// Whether its dropped output streams are drained.
    pub drain: crate::fifo::DrainFlag,
    pub attachment: Option<Box<dyn StdioAttachment>>,
    pub started: watch::Sender<bool>,
    pub exit_delivered: bool,
    pub pid: u32,
}

/// What the client knows of a container.
#[derive(Default)]
pub(crate) struct ContainerState {
    /// Processes of its task, "init" included; empty without a task.
    pub processes: HashMap<String, Proc>,
    /// Whether the task exists (start succeeded or restore found it).
    pub has_task: bool,
    /// An OOM kill was seen since the last start.
    pub oom: bool,
    /// Exec ids being set up.
    pub reserved: std::collections::HashSet<String>,
    /// A restore is between registering the container and tracking its init
    /// process: an init exit seen meanwhile is kept in `missed_exit`.
    pub restoring: bool,
    /// The init exit (pid, status, time) that arrived while restoring.
    pub missed_exit: Option<containerd_client::events::TaskExit>,
}

/// A container the client tracks.
pub(crate) struct Container {
    pub id: String,
    /// Its FIFO directory.
    pub dir: PathBuf,
    /// Whether its init process has a terminal.
    pub terminal: bool,
    /// The runc shim options it was created with (sent again on task create).
    pub runc: convert::RuncOptionsProto,
    /// Serialises start, delete_task, delete and restore.
    pub lifecycle: tokio::sync::Mutex<()>,
    pub state: Mutex<ContainerState>,
}

impl Container {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ContainerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shared state of a client (events hold it too).
pub(crate) struct Inner {
    pub namespace: String,
    pub ns_header: MetadataValue<Ascii>,
    pub shared: Arc<Shared>,
    pub containers: Mutex<HashMap<String, Arc<Container>>>,
    pub dispatcher: EventDispatcher,
    /// Rollbacks that could not reach containerd, by container id.
    pub pending: Mutex<HashMap<String, Vec<Rollback>>>,
    /// Serialises the completion of remembered rollbacks.
    pub settling: tokio::sync::Mutex<()>,
}

/// A client of one containerd namespace.
///
/// Obtained from [`LinuxRemote::new_client`](libctd_core::Remote::new_client)
/// (or [`LinuxRemote::new_linux_client`](crate::LinuxRemote::new_linux_client)).
/// It subscribes to the namespace's task events in its own task, delivers them
/// to the engine's [`Backend`] through a per-container queue, and resubscribes
/// and reconciles after any gap. Dropping the last handle stops the
/// subscription.
pub struct LinuxClient {
    inner: Arc<Inner>,
    events: JoinHandle<()>,
}

impl std::fmt::Debug for LinuxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxClient")
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

impl Drop for LinuxClient {
    fn drop(&mut self) {
        self.events.abort();
    }
}

/// The exec id containerd knows a process by: "" for the init process.
pub(crate) fn wire_exec_id(process_id: &str) -> String {
    if process_id == INIT_PROCESS_ID {
        String::new()
    } else {
        process_id.to_owned()
    }
}

/// Runs `fut` in its own task, so that dropping the caller's future does not
/// interrupt a change half-way (operations stay cancel-safe).
async fn detached<T, F>(fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    tokio::spawn(fut).await.map_err(|e| {
        Error::system("libctd's task for the operation panicked (a bug in libctd)").with_source(e)
    })?
}

/// Whether CRIU can run here (`criu check`), with its complaint if not.
async fn criu_problem() -> Option<String> {
    match tokio::process::Command::new("criu")
        .arg("check")
        .output()
        .await
    {
        Err(e) => Some(format!("CRIU is not installed ({e})")),
        Ok(out) if !out.status.success() => {
            let text = String::from_utf8_lossy(&out.stderr);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Some(format!("`criu check` fails on this host: {}", last.trim()))
        }
        Ok(_) => None,
    }
}

/// The classified error of a failed CRIU operation: `NotImplemented` naming
/// CRIU where it cannot run, else containerd's error with CRIU named.
async fn criu_error(e: Error, what: &str) -> Error {
    match criu_problem().await {
        Some(problem) => Error::not_implemented(format!(
            "{what} needs CRIU, which cannot run here: {problem}"
        ))
        .with_source(e),
        None => {
            let msg = format!("{what} through CRIU failed: {}", e.message());
            e.with_message(msg)
        }
    }
}

impl Inner {
    /// A request carrying the client's namespace header and the remote's
    /// deadline (sent to containerd too, which then gives up as well).
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = self.stream_request(message);
        r.set_timeout(self.shared.rpc_timeout);
        r
    }

    /// A request carrying the client's namespace header and no deadline: for
    /// the event stream, which lasts as long as the client.
    pub(crate) fn stream_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut()
            .insert("containerd-namespace", self.ns_header.clone());
        r
    }

    pub(crate) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.shared.channel.clone())
    }

    pub(crate) fn containers_client(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.shared.channel.clone())
    }

    pub(crate) fn lock_containers(&self) -> MutexGuard<'_, HashMap<String, Arc<Container>>> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_pending(&self) -> MutexGuard<'_, HashMap<String, Vec<Rollback>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn container(&self, id: &str) -> Option<Arc<Container>> {
        self.lock_containers().get(id).cloned()
    }

    /// The tracked container, or NotFound "no such container".
    fn get(&self, id: &str) -> Result<Arc<Container>> {
        validate_container_id(id)?;
        self.container(id)
            .ok_or_else(|| Error::not_found("no such container").with_container(id))
    }

    /// The tracked container with a task, or NotFound "container is not running".
    fn get_with_task(&self, id: &str) -> Result<Arc<Container>> {
        let c = self.get(id)?;
        if !c.lock().has_task {
            return Err(Error::not_found("container is not running").with_container(id));
        }
        Ok(c)
    }

    /// A tracked process of a container with a task, and its containerd exec
    /// id. Both ids and `input` (the operation's other checks) are validated
    /// before anything is looked up, so bad input is InvalidArgument whether
    /// or not the container exists.
    fn process(
        &self,
        container_id: &str,
        process_id: &str,
        input: Result<()>,
    ) -> Result<(Arc<Container>, String)> {
        validate_container_id(container_id)?;
        validate_process_id(process_id)?;
        input?;
        let c = self.get_with_task(container_id)?;
        if process_id != INIT_PROCESS_ID && !c.lock().processes.contains_key(process_id) {
            return Err(Error::not_found("no such exec").with_process(process_id));
        }
        Ok((c, wire_exec_id(process_id)))
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.shared.fifo_root.join(&self.namespace).join(id)
    }

    /// Sets up a process's FIFOs, hands the streams to `attach`, and arranges
    /// one CloseIO once the engine closes stdin and the process has started.
    fn attach_process(
        self: &Arc<Self>,
        c: &Container,
        process_id: &str,
        fifos: FifoSet,
        attach: StdioCallback,
        already_started: bool,
    ) -> Result<Proc> {
        if !already_started {
            fifos.create(&c.dir)?;
        }
        let (close_tx, close_rx) = oneshot::channel();
        let (io, stdin_slot, drain) = fifos.open(close_tx)?;
        let has_stdin = io.stdin.is_some();
        let attached = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attach(io)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Error::system(format!(
                    "the engine's stdio callback panicked: {what}"
                )))
            });
        let attachment = match attached {
            Ok(a) => a,
            Err(e) => {
                fifos.remove();
                return Err(e);
            }
        };
        let (started, mut started_rx) = watch::channel(already_started);
        if has_stdin {
            let inner = self.clone();
            let cid = c.id.clone();
            let exec_id = wire_exec_id(process_id);
            tokio::spawn(async move {
                // Only an engine close notifies; a client close_stdin does its own CloseIO.
                let Ok(closed) = close_rx.await else { return };
                if started_rx.wait_for(|s| *s).await.is_ok() {
                    // The shim has the FIFO open now: our end may go.
                    drop(closed);
                    let req = inner.request(CloseIoRequest {
                        container_id: cid.clone(),
                        exec_id,
                        stdin: true,
                    });
                    if let Err(e) = inner.tasks().close_io(req).await {
                        tracing::debug!(container_id = %cid, error = %e, "CloseIO after stdin close failed");
                    }
                }
            });
        }
        Ok(Proc {
            terminal: fifos.terminal,
            fifos,
            stdin: stdin_slot,
            drain,
            attachment: Some(attachment),
            started,
            exit_delivered: false,
            pid: 0,
        })
    }

    /// The status of a container's task (NotFound without one).
    async fn task_status(&self, id: &str) -> Result<Status> {
        let req = self.request(GetRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        });
        match self.tasks().get(req).await {
            Ok(r) => Ok(r
                .into_inner()
                .process
                .map_or(Status::Unknown, |p| convert::status_from_proto(p.status))),
            Err(s) if s.code() == tonic::Code::NotFound => {
                Err(Error::not_found("container is not running").with_source(s))
            }
            Err(s) => Err(status_error(s)),
        }
    }

    /// Waits (boundedly) for the engine to drain a deleted process's output,
    /// then removes its FIFOs.
    pub(crate) async fn release(proc: Proc) {
        if let Some(mut a) = proc.attachment
            && tokio::time::timeout(STDIO_DRAIN_TIMEOUT, a.wait())
                .await
                .is_err()
        {
            a.cancel();
        }
        proc.fifos.remove();
    }

    /// Deletes an exec in containerd and forgets it (after its exit was delivered).
    pub(crate) async fn cleanup_exec(self: &Arc<Self>, container_id: &str, exec_id: &str) {
        let req = self.request(DeleteProcessRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        });
        let mut tasks = self.tasks();
        match tokio::time::timeout(EXEC_CLEANUP_TIMEOUT, tasks.delete_process(req)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(container_id, exec_id, error = %e, "deleting an exited exec failed")
            }
            Err(_) => tracing::warn!(container_id, exec_id, "deleting an exited exec timed out"),
        }
        let proc = self
            .container(container_id)
            .and_then(|c| c.lock().processes.remove(exec_id));
        if let Some(p) = proc {
            let _ = tokio::time::timeout(EXEC_CLEANUP_TIMEOUT, Self::release(p)).await;
        }
    }

    /// Marks the container task-less and takes its processes.
    fn take_processes(c: &Container) -> Vec<(String, Proc)> {
        let mut st = c.lock();
        st.has_task = false;
        st.processes.drain().collect()
    }

    /// Processes whose exit has not come yet (an exec killed with its init,
    /// an exit still on its way) get their real status while the task exists.
    async fn exits_before_task_delete(self: &Arc<Self>, c: &Arc<Container>) {
        let undelivered = c
            .lock()
            .processes
            .values()
            .any(|p| *p.started.borrow() && !p.exit_delivered);
        if undelivered {
            crate::events::reconcile_container(self, c, |_| true).await;
        }
    }

    /// Forgets the task's processes and releases their streams. The task is
    /// gone: a started process whose exit never came gets one now, with an
    /// unknown status, so that nobody waits for it for ever.
    async fn drop_task_state(&self, c: &Container) {
        let oom = c.lock().oom;
        for (process_id, p) in Self::take_processes(c) {
            if *p.started.borrow() && !p.exit_delivered {
                let info = crate::events::lost_exit(
                    &c.id,
                    &process_id,
                    p.pid,
                    oom,
                    "the task was deleted before the process's exit was reported",
                );
                self.dispatcher.dispatch(libctd_core::EventType::Exit, info);
            }
            Self::release(p).await;
        }
    }

    /// Forgets the task's processes for a re-attach: their streams are
    /// cancelled at once, their FIFOs (still the shim's) are kept.
    /// Lets go of the init process's streams for a re-attach (a second
    /// restore): they are cancelled at once, the FIFOs (still the shim's) are
    /// kept. The container stays marked with a task; its execs stay tracked.
    /// Returns whether the old init's exit was already delivered.
    fn detach_init(c: &Container) -> bool {
        let old = {
            let mut st = c.lock();
            st.has_task = true;
            st.processes.remove(INIT_PROCESS_ID)
        };
        let Some(p) = old else { return false };
        // The old streams let go without draining or closing anything.
        p.drain.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(slot) = &p.stdin {
            crate::fifo::lock(slot).close_by_client();
        }
        if let Some(mut a) = p.attachment {
            a.cancel();
        }
        p.exit_delivered
    }

    async fn create(self: Arc<Self>, id: String, spec: Spec, options: CreateOptions) -> Result<()> {
        crate::validate::spec(&spec)?;
        if let Some(runtime) = &options.runtime {
            crate::validate::runtime(runtime)?;
        }
        let mut runc = match &options.runtime_options {
            Some(o) => crate::runc::decode(o)?,
            None => convert::RuncOptionsProto::default(),
        };
        if self.container(&id).is_some() {
            return Err(Error::already_exists("container already exists"));
        }
        self.settle(&id).await?;
        // The runc shim groups containers by the spec's annotation (it reads the
        // bundle's config.json); the container label alone does not reach it.
        let spec = match &self.shared.shim_group {
            Some(group) => {
                let mut spec = spec;
                let mut annotations = spec.annotations().clone().unwrap_or_default();
                annotations.insert(SHIM_GROUP_KEY.to_owned(), group.clone());
                spec.set_annotations(Some(annotations));
                spec
            }
            None => spec,
        };
        let spec_any = convert::json_any(convert::SPEC_TYPE_URL, &spec)?;
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if runc.root.is_empty() {
            // runc's state stays under the remote's state directory.
            runc.root = self.shared.runc_root.to_string_lossy().into_owned();
        }
        let container = Arc::new(Container {
            id: id.clone(),
            dir: self.dir_of(&id),
            terminal,
            runc: runc.clone(),
            lifecycle: tokio::sync::Mutex::new(()),
            state: Mutex::new(ContainerState::default()),
        });
        {
            let mut map = self.lock_containers();
            if map.contains_key(&id) {
                return Err(Error::already_exists("container already exists"));
            }
            map.insert(id.clone(), container);
        }
        let mut labels: HashMap<String, String> = options.labels.clone().into_iter().collect();
        if let Some(group) = &self.shared.shim_group {
            labels.insert(SHIM_GROUP_KEY.into(), group.clone());
        }
        let runtime = options
            .runtime
            .clone()
            .unwrap_or_else(|| DEFAULT_RUNTIME.to_owned());
        let runc_options = Some(convert::proto_any(&runc));
        let req = self.request(CreateContainerRequest {
            container: Some(ContainerProto {
                id: id.clone(),
                labels,
                runtime: Some(Runtime {
                    name: runtime,
                    options: runc_options,
                }),
                spec: Some(spec_any),
                ..Default::default()
            }),
        });
        if let Err(status) = self.containers_client().create(req).await {
            self.lock_containers().remove(&id);
            let e = status_error(status);
            if unreachable(&e) {
                // containerd may have made the record before it went away.
                self.roll_back(&id, Rollback::Container).await;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn start(
        self: Arc<Self>,
        id: String,
        checkpoint_dir: Option<PathBuf>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        validate_container_id(&id)?;
        if let Some(dir) = &checkpoint_dir
            && !dir.is_absolute()
        {
            return Err(Error::invalid_argument(format!(
                "checkpoint directory {} must be absolute",
                dir.display()
            )));
        }
        let c = self.get(&id)?;
        let _guard = c.lifecycle.lock().await;
        if c.lock().has_task {
            return Err(Error::already_exists("container is already started"));
        }
        self.settle(&id).await?;
        let terminal = c.terminal;
        let fifos = FifoSet::new(&c.dir, INIT_PROCESS_ID, with_stdin, terminal);
        let proc = self.attach_process(&c, INIT_PROCESS_ID, fifos.clone(), attach, false)?;
        {
            let mut st = c.lock();
            st.processes.insert(INIT_PROCESS_ID.to_owned(), proc);
            st.has_task = true;
            st.oom = false;
        }
        let mut runc = c.runc.clone();
        if let Some(dir) = &checkpoint_dir {
            runc.criu_image_path = dir.to_string_lossy().into_owned();
        }
        let options = Some(convert::proto_any(&runc));
        let create = CreateTaskRequest {
            container_id: id.clone(),
            stdin: FifoSet::wire(&fifos.stdin),
            stdout: FifoSet::wire(&fifos.stdout),
            stderr: FifoSet::wire(&fifos.stderr),
            terminal,
            options,
            ..Default::default()
        };
        // CRIU restoring a checkpoint takes as long as the image needs.
        let req = match checkpoint_dir {
            Some(_) => self.stream_request(create),
            None => self.request(create),
        };
        match self.tasks().create(req).await {
            // Known from here on, the pid tells this process's exit from a
            // previous task's (one a rollback killed) still on its way.
            Ok(created) => {
                if let Some(p) = c.lock().processes.get_mut(INIT_PROCESS_ID) {
                    p.pid = created.into_inner().pid;
                }
            }
            Err(status) => {
                let e = status_error(status);
                // Forgotten first, so that the exit of what the rollback
                // kills is not taken as this process's.
                self.drop_task_state(&c).await;
                // A task the shim made before the failure (containerd died,
                // the deadline passed, runc failed half-way) goes too; a
                // task that already existed is not this start's to kill.
                if e.kind() != ErrorKind::AlreadyExists {
                    self.roll_back(&id, Rollback::Task).await;
                }
                return Err(match checkpoint_dir {
                    Some(_) => criu_error(e, "restoring a checkpoint").await,
                    None => e,
                });
            }
        }
        let req = self.request(StartRequest {
            container_id: id.clone(),
            exec_id: String::new(),
        });
        let pid = match self.tasks().start(req).await {
            Ok(r) => r.into_inner().pid,
            Err(status) => {
                let e = status_error(status);
                // Leave nothing behind, so start can be retried; forgotten
                // first, so that the killed process's exit is not delivered.
                self.drop_task_state(&c).await;
                self.roll_back(&id, Rollback::Task).await;
                return Err(e);
            }
        };
        if let Some(p) = c.lock().processes.get_mut(INIT_PROCESS_ID) {
            p.pid = pid;
            p.started.send_replace(true);
        }
        Ok(pid)
    }

    async fn exec(
        self: Arc<Self>,
        id: String,
        process_id: String,
        spec: Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        validate_container_id(&id)?;
        validate_process_id(&process_id)?;
        if spec.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::invalid_argument("the process has no args"));
        }
        let c = self.get_with_task(&id)?;
        self.settle(&id).await?;
        if self.task_status(&id).await? == Status::Stopped {
            return Err(Error::failed_precondition("the container is stopped"));
        }
        let spec_any = convert::json_any(convert::PROCESS_TYPE_URL, &spec)?;
        let terminal = spec.terminal().unwrap_or(false);
        let fifos = FifoSet::new(&c.dir, &process_id, with_stdin, terminal);
        {
            // Reserve the id, so a concurrent exec with the same id fails
            // before it touches this one's FIFOs.
            let mut st = c.lock();
            if st.processes.contains_key(&process_id)
                || st.reserved.contains(&process_id)
                || process_id == INIT_PROCESS_ID
            {
                return Err(Error::already_exists("process id is already in use"));
            }
            st.reserved.insert(process_id.clone());
        }
        let attached = self.attach_process(&c, &process_id, fifos.clone(), attach, false);
        {
            let mut st = c.lock();
            st.reserved.remove(&process_id);
            st.processes.insert(process_id.clone(), attached?);
        }
        let forget = |c: &Container| c.lock().processes.remove(&process_id);
        let req = self.request(ExecProcessRequest {
            container_id: id.clone(),
            stdin: FifoSet::wire(&fifos.stdin),
            stdout: FifoSet::wire(&fifos.stdout),
            stderr: FifoSet::wire(&fifos.stderr),
            terminal,
            spec: Some(spec_any),
            exec_id: process_id.clone(),
        });
        if let Err(status) = self.tasks().exec(req).await {
            let e = status_error(status);
            let forgotten = forget(&c);
            if unreachable(&e) {
                self.roll_back(&id, Rollback::Exec(process_id.clone()))
                    .await;
            }
            if let Some(p) = forgotten {
                Self::release(p).await;
            }
            return Err(e);
        }
        let req = self.request(StartRequest {
            container_id: id.clone(),
            exec_id: process_id.clone(),
        });
        match self.tasks().start(req).await {
            Ok(r) => {
                let pid = r.into_inner().pid;
                if let Some(p) = c.lock().processes.get_mut(&process_id) {
                    p.pid = pid;
                    p.started.send_replace(true);
                }
                Ok(pid)
            }
            Err(status) => {
                let e = status_error(status);
                // Forgotten first, so that the killed exec's exit is not delivered.
                let forgotten = forget(&c);
                self.roll_back(&id, Rollback::Exec(process_id.clone()))
                    .await;
                if let Some(p) = forgotten {
                    Self::release(p).await;
                }
                Err(e)
            }
        }
    }

    async fn delete_task(self: Arc<Self>, id: String) -> Result<TaskExit> {
        let c = self.get(&id)?;
        let _guard = c.lifecycle.lock().await;
        // Once the init exit has arrived the task is known to be stopped: the
        // status query is only needed before (one RPC less per lifecycle).
        let init_exited = c
            .lock()
            .processes
            .get(INIT_PROCESS_ID)
            .is_some_and(|p| p.exit_delivered);
        if !init_exited {
            let status = self.task_status(&id).await?;
            if matches!(status, Status::Running | Status::Paused | Status::Pausing) {
                return Err(Error::failed_precondition(format!(
                    "the task is {status}: it must stop before it is deleted"
                )));
            }
        }
        self.exits_before_task_delete(&c).await;
        let req = self.request(DeleteTaskRequest {
            container_id: id.clone(),
        });
        let resp = match self.tasks().delete(req).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let e = status_error(status);
                // 1.7 and 2.x drop a task that died while they were down;
                // its exit, delivered from its shim's record, is the answer.
                let kept = (init_exited && e.kind() == ErrorKind::NotFound)
                    .then(|| crate::events::take_exit_kept_by_shim(&self, &id))
                    .flatten();
                if let Some(exit) = kept {
                    self.drop_task_state(&c).await;
                    return Ok(TaskExit::new(
                        exit.exit_status,
                        convert::time_from_proto(exit.exited_at.as_ref())
                            .unwrap_or_else(SystemTime::now),
                    ));
                }
                return Err(match e.kind() {
                    ErrorKind::NotFound => e.with_message("container is not running"),
                    _ => e,
                });
            }
        };
        self.drop_task_state(&c).await;
        Ok(TaskExit::new(
            resp.exit_status,
            convert::time_from_proto(resp.exited_at.as_ref()).unwrap_or_else(SystemTime::now),
        ))
    }

    async fn delete(self: Arc<Self>, id: String) -> Result<()> {
        let c = self.get(&id)?;
        let _guard = c.lifecycle.lock().await;
        self.settle(&id).await?;
        // Without a task known to this client (never started, or its task
        // deleted through it) there is nothing to check: one RPC less.
        let has_task = c.lock().has_task;
        if has_task {
            match self.task_status(&id).await {
                Ok(Status::Stopped) => {
                    self.exits_before_task_delete(&c).await;
                    let req = self.request(DeleteTaskRequest {
                        container_id: id.clone(),
                    });
                    self.tasks().delete(req).await.map_err(status_error)?;
                }
                Ok(status) => {
                    return Err(Error::failed_precondition(format!(
                        "the container's task is {status}; stop it and delete the task first"
                    )));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.drop_task_state(&c).await;
        let req = self.request(DeleteContainerRequest { id: id.clone() });
        match self.containers_client().delete(req).await {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status_error(status)),
        }
        self.lock_containers().remove(&id);
        if let Err(e) = std::fs::remove_dir_all(&c.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %c.dir.display(), error = %e, "cannot remove the container's state");
        }
        Ok(())
    }

    async fn restore(self: Arc<Self>, id: String, attach: StdioCallback) -> Result<Restored> {
        validate_container_id(&id)?;
        let req = self.request(GetContainerRequest { id: id.clone() });
        let proto = self
            .containers_client()
            .get(req)
            .await
            .map_err(|s| {
                let e = status_error(s);
                match e.kind() {
                    ErrorKind::NotFound => e.with_message("no such container"),
                    _ => e,
                }
            })?
            .into_inner()
            .container
            .unwrap_or_default();
        let terminal = proto
            .spec
            .as_ref()
            .and_then(|s| serde_json::from_slice::<Spec>(&s.value).ok())
            .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
            .unwrap_or(false);
        let runc = proto
            .runtime
            .as_ref()
            .and_then(|r| r.options.as_ref())
            .and_then(convert::decode_any)
            .unwrap_or_default();
        let c = {
            let mut map = self.lock_containers();
            map.entry(id.clone())
                .or_insert_with(|| {
                    Arc::new(Container {
                        id: id.clone(),
                        dir: self.dir_of(&id),
                        terminal,
                        runc,
                        lifecycle: tokio::sync::Mutex::new(()),
                        state: Mutex::new(ContainerState::default()),
                    })
                })
                .clone()
        };
        let _guard = c.lifecycle.lock().await;
        // Register first, then read: an init exit that arrives from here on,
        // before the process is tracked, is kept and delivered below.
        {
            let mut st = c.lock();
            st.restoring = true;
            st.missed_exit = None;
        }
        let restored = self.restore_task(&c, attach).await;
        let missed = {
            let mut st = c.lock();
            st.restoring = false;
            st.missed_exit.take()
        };
        let restored = restored?;
        if let Some(exit) = missed
            && restored.alive
        {
            crate::events::handle(&self, crate::events::TaskEvent::Exit(exit));
        }
        Ok(restored)
    }

    /// Reads the task of a registered container and tracks its init process.
    async fn restore_task(
        self: &Arc<Self>,
        c: &Arc<Container>,
        attach: StdioCallback,
    ) -> Result<Restored> {
        let id = c.id.clone();
        let req = self.request(GetRequest {
            container_id: id.clone(),
            exec_id: String::new(),
        });
        let process = match self.tasks().get(req).await {
            Ok(r) => r.into_inner().process.unwrap_or_default(),
            Err(s) if s.code() == tonic::Code::NotFound => {
                self.drop_task_state(c).await;
                return Ok(Restored::new(false, None));
            }
            Err(s) => return Err(status_error(s)),
        };
        let status = convert::status_from_proto(process.status);
        let fifos = FifoSet::from_paths(
            &process.stdin,
            &process.stdout,
            &process.stderr,
            process.terminal,
        );
        // Streams of a previous attachment (a second restore) are replaced;
        // an exit it already delivered is not delivered again.
        let delivered = Self::detach_init(c);
        let mut proc = self.attach_process(c, INIT_PROCESS_ID, fifos, attach, true)?;
        proc.pid = process.pid;
        proc.exit_delivered = delivered || status == Status::Stopped;
        {
            let mut st = c.lock();
            st.processes.insert(INIT_PROCESS_ID.to_owned(), proc);
            st.has_task = true;
        }
        Ok(Restored::new(
            status != Status::Stopped && status != Status::Unknown,
            Some(process.pid),
        ))
    }
}

impl LinuxClient {
    /// Builds the client and waits until its event subscription is live.
    pub(crate) async fn connect(
        shared: Arc<Shared>,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<Self>> {
        let ns_header = namespace.parse::<MetadataValue<Ascii>>().map_err(|e| {
            Error::invalid_argument(format!("namespace {namespace:?} is not a valid header"))
                .with_source(e)
        })?;
        let inner = Arc::new(Inner {
            namespace: namespace.to_owned(),
            ns_header,
            shared,
            containers: Mutex::new(HashMap::new()),
            dispatcher: EventDispatcher::new(backend)?,
            pending: Mutex::new(HashMap::new()),
            settling: tokio::sync::Mutex::new(()),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let span = tracing::info_span!("events", namespace = %namespace);
        let events = tokio::spawn(tracing::Instrument::instrument(
            crate::events::run(inner.clone(), ready_tx),
            span,
        ));
        let client = Arc::new(Self { inner, events });
        match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
            Ok(Ok(())) => Ok(client),
            _ => Err(Error::unavailable(
                "cannot subscribe to containerd's events (no answer within 20s)",
            )
            .with_operation("new_client")),
        }
    }

    /// The namespace of the client.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The event queue, to wait until every delivered event was handled.
    pub fn event_queue(&self) -> &libctd_core::EventQueue {
        self.inner.dispatcher.queue()
    }
}

#[async_trait]
impl Client for LinuxClient {
    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn version(&self) -> Result<Version> {
        let mut v = VersionClient::new(self.inner.shared.channel.clone());
        let r = v
            .version(self.inner.request(()))
            .await
            .map_err(status_error)
            .map_err(|e| e.with_operation("version"))?
            .into_inner();
        Ok(Version::new(r.version, r.revision))
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.inner.namespace))]
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        detached(self.inner.clone().restore(container_id.to_owned(), attach))
            .await
            .context("restore", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options), fields(namespace = %self.inner.namespace))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        validate_container_id(container_id).context("create", container_id)?;
        detached(
            self.inner
                .clone()
                .create(container_id.to_owned(), spec.clone(), options),
        )
        .await
        .context("create", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.inner.namespace))]
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        detached(self.inner.clone().start(
            container_id.to_owned(),
            checkpoint_dir.map(Path::to_path_buf),
            with_stdin,
            attach,
        ))
        .await
        .context("start", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        let run = async {
            let (_, exec_id) =
                self.inner
                    .process(container_id, process_id, validate_signal(signal))?;
            let req = self.inner.request(KillRequest {
                container_id: container_id.to_owned(),
                exec_id,
                signal: signal.unsigned_abs(),
                all: false,
            });
            self.inner.tasks().kill(req).await.map_err(status_error)?;
            Ok(())
        };
        run.await
            .map_err(|e: Error| e.with_process(process_id))
            .context("signal_process", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self, spec, attach), fields(namespace = %self.inner.namespace))]
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        detached(self.inner.clone().exec(
            container_id.to_owned(),
            process_id.to_owned(),
            spec.clone(),
            with_stdin,
            attach,
        ))
        .await
        .map_err(|e| e.with_process(process_id))
        .context("exec", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let run = async {
            let (c, exec_id) = self.inner.process(
                container_id,
                process_id,
                validate_terminal_size(width, height),
            )?;
            if c.lock()
                .processes
                .get(process_id)
                .is_some_and(|p| !p.terminal)
            {
                return Err(Error::failed_precondition(
                    "the process has no terminal to resize",
                ));
            }
            let req = self.inner.request(ResizePtyRequest {
                container_id: container_id.to_owned(),
                exec_id,
                width,
                height,
            });
            self.inner
                .tasks()
                .resize_pty(req)
                .await
                .map_err(status_error)?;
            Ok(())
        };
        run.await
            .map_err(|e: Error| e.with_process(process_id))
            .context("resize_terminal", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        let run = async {
            let (c, exec_id) = self.inner.process(container_id, process_id, Ok(()))?;
            // Every writer must go for the process to read EOF: ours too.
            if let Some(slot) = c
                .lock()
                .processes
                .get(process_id)
                .and_then(|p| p.stdin.clone())
            {
                crate::fifo::lock(&slot).close_by_client();
            }
            let req = self.inner.request(CloseIoRequest {
                container_id: container_id.to_owned(),
                exec_id,
                stdin: true,
            });
            self.inner
                .tasks()
                .close_io(req)
                .await
                .map_err(status_error)?;
            Ok(())
        };
        run.await
            .map_err(|e: Error| e.with_process(process_id))
            .context("close_stdin", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        let run = async {
            self.inner.get_with_task(container_id)?;
            let status = self.inner.task_status(container_id).await?;
            if status != Status::Running {
                return Err(Error::failed_precondition(format!(
                    "the container is {status}, not running"
                )));
            }
            let req = self.inner.request(PauseTaskRequest {
                container_id: container_id.to_owned(),
            });
            self.inner.tasks().pause(req).await.map_err(status_error)?;
            Ok(())
        };
        run.await.context("pause", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        let run = async {
            self.inner.get_with_task(container_id)?;
            let status = self.inner.task_status(container_id).await?;
            if status != Status::Paused {
                return Err(Error::failed_precondition(format!(
                    "the container is {status}, not paused"
                )));
            }
            let req = self.inner.request(ResumeTaskRequest {
                container_id: container_id.to_owned(),
            });
            self.inner.tasks().resume(req).await.map_err(status_error)?;
            Ok(())
        };
        run.await.context("resume", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        let run = async {
            self.inner.get_with_task(container_id)?;
            let req = self.inner.request(MetricsRequest {
                filters: vec![format!("id=={container_id}")],
            });
            let metrics = self
                .inner
                .tasks()
                .metrics(req)
                .await
                .map_err(status_error)?
                .into_inner()
                .metrics;
            let metric = metrics
                .into_iter()
                .find(|m| m.id == container_id)
                .ok_or_else(|| Error::not_found("no metrics: container is not running"))?;
            let data = metric
                .data
                .ok_or_else(|| Error::system("containerd sent metrics without data"))?;
            Ok(Stats::new(
                convert::time_from_proto(metric.timestamp.as_ref()).unwrap_or_else(SystemTime::now),
                PlatformStats::Linux(convert::decode_metrics(&data)?),
            ))
        };
        run.await.context("stats", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        let s = self.summary(container_id).await;
        s.map(|v| v.iter().map(Summary::pid).collect())
            .map_err(|e| e.with_operation("list_pids"))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        let run = async {
            self.inner.get_with_task(container_id)?;
            let req = self.inner.request(ListPidsRequest {
                container_id: container_id.to_owned(),
            });
            let procs = self
                .inner
                .tasks()
                .list_pids(req)
                .await
                .map_err(status_error)?
                .into_inner()
                .processes;
            Ok(procs
                .into_iter()
                .map(|p| {
                    let exec_id = convert::exec_id_of(p.info.as_ref());
                    Summary::Linux(LinuxProcess::new(p.pid, exec_id))
                })
                .collect())
        };
        run.await.context("summary", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        validate_container_id(container_id).context("delete_task", container_id)?;
        detached(self.inner.clone().delete_task(container_id.to_owned()))
            .await
            .context("delete_task", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        validate_container_id(container_id).context("delete", container_id)?;
        detached(self.inner.clone().delete(container_id.to_owned()))
            .await
            .context("delete", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        let run = async {
            self.inner.get(container_id)?;
            self.inner
                .task_status(container_id)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::NotFound => e.with_message("no such task"),
                    _ => e,
                })
        };
        run.await.context("status", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self, resources), fields(namespace = %self.inner.namespace))]
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        let run = async {
            self.inner.get_with_task(container_id)?;
            let Resources::Linux(r) = resources else {
                return Err(Error::invalid_argument(
                    "only Linux resources apply to a Linux container",
                ));
            };
            let any = convert::json_any(convert::RESOURCES_TYPE_URL, r)?;
            let req = self.inner.request(UpdateTaskRequest {
                container_id: container_id.to_owned(),
                resources: Some(any),
                annotations: HashMap::new(),
            });
            self.inner.tasks().update(req).await.map_err(status_error)?;
            Ok(())
        };
        run.await.context("update_resources", container_id)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        let run = async {
            self.inner.get_with_task(container_id)?;
            if !checkpoint_dir.is_absolute() {
                return Err(Error::invalid_argument(format!(
                    "checkpoint directory {} must be absolute",
                    checkpoint_dir.display()
                )));
            }
            let options = convert::CheckpointOptionsProto {
                exit,
                image_path: checkpoint_dir.to_string_lossy().into_owned(),
                ..Default::default()
            };
            // CRIU takes as long as the image needs: no RPC deadline.
            let req = self.inner.stream_request(CheckpointTaskRequest {
                container_id: container_id.to_owned(),
                parent_checkpoint: String::new(),
                options: Some(convert::proto_any(&options)),
            });
            match self.inner.tasks().checkpoint(req).await {
                Ok(_) => Ok(()),
                Err(s) => Err(criu_error(status_error(s), "checkpoint").await),
            }
        };
        run.await.context("create_checkpoint", container_id)
    }
}
