//! An in-memory [`Remote`] and [`Client`]: a state machine with the error
//! kinds and event sequences of the real backends, scriptable for tests.
//!
//! Processes run a tiny program language (see [`program_args`]): a spec whose
//! args are `["libctd-fake", "exit", "3"]` exits with 3, `print TEXT` writes to
//! stdout, `print-stderr TEXT` to stderr, `cat` echoes stdin, `sleep` runs
//! until signalled, `oom` is OOM-killed, `output N` writes N bytes. Any other
//! command runs the configured default program ([`FakeRemoteBuilder::default_program`],
//! `sleep` unless set); a command under `/nonexistent` fails to start.
//!
//! Behaviour follows containerd through libctd's Linux backend: `create`
//! makes a container without a task; `start` creates the task (events
//! `create`, `start`); `exec` adds processes (`exec-added`, `exec-started`);
//! exits produce `exit` (an OOM kill `oom` first, then `exit` 137 with
//! `oom_killed`); an exec is deleted right after its exit was delivered.
//!
//! Scripting, through [`FakeRemote::script`]: failures of any kind on any
//! operation for any container ([`FakeScript::fail`]), delays
//! ([`FakeScript::delay`]), per-process exit code, run time, extra stdout and
//! OOM ([`ProcessScript`]), the version answer; and
//! [`FakeRemote::exit_process`] ends a process with a given code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{LinuxMemory, LinuxResources, Process, Spec};
use libctd_core::{
    Backend, Client, Error, ErrorKind, EventDispatcher, INIT_PROCESS_ID, Remote, Resources, Result,
    Version, validate_container_id, validate_namespace, validate_process_id,
};

use crate::conformance::{Capabilities, Fixture, Program, Support};

mod client;
mod images;
#[cfg(test)]
#[cfg(feature = "metrics")]
mod metrics_tests;
mod program;

pub use client::{FAKE_RUNTIME_OPTIONS_TYPE, FakeClient};
pub use images::SNAPSHOTTER as FAKE_SNAPSHOTTER;
pub use program::{FAKE_COMMAND, output_pattern, program_args};

use client::Namespace;
use program::End;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding the fake's locks.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The configuration of a [`FakeRemote`]; write it with [`FakeRemote::builder`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FakeConfig {
    /// What the fake answers to [`Client::version`].
    pub version: Version,
    /// What a process runs when its command is not the fake's.
    pub default_program: Program,
    /// The first pid handed out.
    pub first_pid: u32,
    /// Operations that fail with `NotImplemented`, as on a platform that
    /// lacks them.
    pub unsupported: Vec<Op>,
    /// Whether OOM kills are reported (an `oom` event and `oom_killed`).
    pub oom_events: bool,
    /// Whether restore re-attaches to a running container; when not, it
    /// kills it and answers not alive (as the Windows backend does).
    pub restore_reattaches: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            version: Version::new(
                concat!("fake-", env!("CARGO_PKG_VERSION")),
                "libctd-testkit",
            ),
            default_program: Program::Sleep,
            first_pid: 1000,
            unsupported: Vec::new(),
            oom_events: true,
            restore_reattaches: true,
        }
    }
}

impl FakeConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an empty version, a default program that does
    /// not run ([`Program::Missing`]) or a first pid below 2.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid_argument(msg).with_operation("new remote"));
        if self.version.version.is_empty() {
            return bad("the fake version must not be empty".into());
        }
        if self.default_program == Program::Missing {
            return bad("the default program must be one that runs".into());
        }
        if self.first_pid < 2 {
            return bad(format!(
                "the first pid must be at least 2, not {}",
                self.first_pid
            ));
        }
        Ok(())
    }
}

/// Writes a [`FakeConfig`] setting by setting; [`build`](Self::build)
/// validates it. Made by [`FakeRemote::builder`].
///
/// ```
/// use libctd_testkit::fake::Op;
/// use libctd_testkit::FakeRemote;
///
/// let remote = FakeRemote::builder()
///     .first_pid(5000)
///     .unsupported(vec![Op::CreateCheckpoint])
///     .build()
///     .unwrap();
/// assert_eq!(remote.config().first_pid, 5000);
/// assert!(FakeRemote::builder().first_pid(1).build().is_err());
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FakeRemoteBuilder {
    config: FakeConfig,
}

impl FakeRemoteBuilder {
    /// What the fake answers to [`Client::version`] (not empty).
    pub fn version(mut self, version: Version) -> Self {
        self.config.version = version;
        self
    }

    /// What a process runs when its command is not the fake's own (one that
    /// runs: not [`Program::Missing`]).
    pub fn default_program(mut self, program: Program) -> Self {
        self.config.default_program = program;
        self
    }

    /// The first pid the fake hands out (at least 2; default 1000).
    pub fn first_pid(mut self, pid: u32) -> Self {
        self.config.first_pid = pid;
        self
    }

    /// Operations that fail with `NotImplemented`.
    pub fn unsupported(mut self, ops: Vec<Op>) -> Self {
        self.config.unsupported = ops;
        self
    }

    /// Whether OOM kills are reported (default yes).
    pub fn oom_events(mut self, on: bool) -> Self {
        self.config.oom_events = on;
        self
    }

    /// Whether restore re-attaches to running containers (default yes).
    pub fn restore_reattaches(mut self, on: bool) -> Self {
        self.config.restore_reattaches = on;
        self
    }

    /// The configuration written so far (not yet validated).
    pub fn config(&self) -> &FakeConfig {
        &self.config
    }

    /// The remote.
    ///
    /// # Errors
    ///
    /// As [`FakeConfig::validate`].
    pub fn build(self) -> Result<FakeRemote> {
        self.config.validate()?;
        Ok(FakeRemote::from_config(self.config))
    }
}

/// The operations of [`Client`], to script faults and delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`Client::version`].
    Version,
    /// [`Client::restore`].
    Restore,
    /// [`Client::create`].
    Create,
    /// [`Client::start`].
    Start,
    /// [`Client::signal_process`].
    SignalProcess,
    /// [`Client::exec`].
    Exec,
    /// [`Client::resize_terminal`].
    ResizeTerminal,
    /// [`Client::close_stdin`].
    CloseStdin,
    /// [`Client::pause`].
    Pause,
    /// [`Client::resume`].
    Resume,
    /// [`Client::stats`].
    Stats,
    /// [`Client::list_pids`].
    ListPids,
    /// [`Client::summary`].
    Summary,
    /// [`Client::delete_task`].
    DeleteTask,
    /// [`Client::delete`].
    Delete,
    /// [`Client::status`].
    Status,
    /// [`Client::update_resources`].
    UpdateResources,
    /// [`Client::create_checkpoint`].
    CreateCheckpoint,
}

impl Op {
    /// The operation's name, as errors name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Version => "version",
            Op::Restore => "restore",
            Op::Create => "create",
            Op::Start => "start",
            Op::SignalProcess => "signal_process",
            Op::Exec => "exec",
            Op::ResizeTerminal => "resize_terminal",
            Op::CloseStdin => "close_stdin",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Stats => "stats",
            Op::ListPids => "list_pids",
            Op::Summary => "summary",
            Op::DeleteTask => "delete_task",
            Op::Delete => "delete",
            Op::Status => "status",
            Op::UpdateResources => "update_resources",
            Op::CreateCheckpoint => "create_checkpoint",
        }
    }
}

/// What a scripted process does differently from its program.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProcessScript {
    /// The code it exits with when its program exits by itself.
    pub exit_code: Option<u32>,
    /// How long it runs before its program starts.
    pub run_for: Option<Duration>,
    /// Bytes written to stdout before its program starts.
    pub stdout: Option<Vec<u8>>,
    /// Whether the OOM killer ends it (instead of its program).
    pub oom: bool,
}

impl ProcessScript {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }
    /// Exits with `code` when its program exits by itself.
    pub fn exit_code(mut self, code: u32) -> Self {
        self.exit_code = Some(code);
        self
    }
    /// Runs for `d` before its program starts.
    pub fn run_for(mut self, d: Duration) -> Self {
        self.run_for = Some(d);
        self
    }
    /// Writes `bytes` to stdout first.
    pub fn stdout(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdout = Some(bytes.into());
        self
    }
    /// Is OOM-killed.
    pub fn oom(mut self) -> Self {
        self.oom = true;
        self
    }
}

#[derive(Debug, Clone)]
struct Fault {
    op: Option<Op>,
    container: Option<String>,
    kind: ErrorKind,
    message: String,
    remaining: Option<usize>,
}

#[derive(Default)]
struct ScriptState {
    faults: Vec<Fault>,
    delays: Vec<(Option<Op>, Option<String>, Duration)>,
    processes: HashMap<(String, String), ProcessScript>,
    version: Option<Version>,
}

/// The scripted behaviour of a [`FakeRemote`] and all its clients.
#[derive(Default)]
pub struct FakeScript {
    state: Mutex<ScriptState>,
}

impl std::fmt::Debug for FakeScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("FakeScript")
            .field("faults", &s.faults)
            .field("delays", &s.delays)
            .finish()
    }
}

impl FakeScript {
    /// Makes operation `op` (every operation when `None`) on `container`
    /// (every container when `None`) fail with an error of `kind`, until
    /// [`clear`](Self::clear)ed. Ids are still validated first.
    pub fn fail(
        &self,
        op: Option<Op>,
        container: Option<&str>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) {
        self.push_fault(op, container, kind, message.into(), None);
    }

    /// Like [`fail`](Self::fail), for the next `times` matching calls only.
    pub fn fail_times(
        &self,
        op: Option<Op>,
        container: Option<&str>,
        kind: ErrorKind,
        message: impl Into<String>,
        times: usize,
    ) {
        self.push_fault(op, container, kind, message.into(), Some(times));
    }

    fn push_fault(
        &self,
        op: Option<Op>,
        container: Option<&str>,
        kind: ErrorKind,
        message: String,
        remaining: Option<usize>,
    ) {
        lock(&self.state).faults.push(Fault {
            op,
            container: container.map(str::to_owned),
            kind,
            message,
            remaining,
        });
    }

    /// Makes operation `op` (every one when `None`) on `container` (every
    /// one when `None`) wait `delay` before doing anything, so a test can
    /// cancel it midway.
    pub fn delay(&self, op: Option<Op>, container: Option<&str>, delay: Duration) {
        lock(&self.state)
            .delays
            .push((op, container.map(str::to_owned), delay));
    }

    /// Scripts process `process_id` (or [`INIT_PROCESS_ID`]) of `container_id`
    /// for its next starts.
    pub fn process(&self, container_id: &str, process_id: &str, script: ProcessScript) {
        lock(&self.state)
            .processes
            .insert((container_id.to_owned(), process_id.to_owned()), script);
    }

    /// Sets the answer to [`Client::version`].
    pub fn set_version(&self, version: Version) {
        lock(&self.state).version = Some(version);
    }

    /// Forgets every fault, delay and process script.
    pub fn clear(&self) {
        let mut s = lock(&self.state);
        s.faults.clear();
        s.delays.clear();
        s.processes.clear();
    }

    /// The scripted failure for `op` on `container`, consuming one use.
    pub(crate) fn fault(&self, op: Op, container: Option<&str>) -> Option<Error> {
        let mut s = lock(&self.state);
        let i = s.faults.iter().position(|f| {
            f.op.is_none_or(|o| o == op)
                && (f.container.is_none() || f.container.as_deref() == container)
                && f.remaining != Some(0)
        })?;
        let fault = s.faults.get_mut(i)?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        Some(Error::new(fault.kind, fault.message.clone()))
    }

    pub(crate) fn delay_for(&self, op: Op, container: Option<&str>) -> Option<Duration> {
        let s = lock(&self.state);
        s.delays
            .iter()
            .find(|(o, c, _)| {
                o.is_none_or(|o| o == op) && (c.is_none() || c.as_deref() == container)
            })
            .map(|(_, _, d)| *d)
    }

    pub(crate) fn process_script(&self, container: &str, process: &str) -> Option<ProcessScript> {
        lock(&self.state)
            .processes
            .get(&(container.to_owned(), process.to_owned()))
            .cloned()
    }

    pub(crate) fn version(&self) -> Option<Version> {
        lock(&self.state).version.clone()
    }
}

/// What every client of one remote shares.
pub(crate) struct Shared {
    pub config: FakeConfig,
    pub script: Arc<FakeScript>,
    pub namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
    pub next_pid: AtomicU32,
    pub next_serial: AtomicU64,
    pub closed: AtomicBool,
}

impl Shared {
    pub(crate) fn pid(&self) -> u32 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }
    pub(crate) fn serial(&self) -> u64 {
        self.next_serial.fetch_add(1, Ordering::Relaxed)
    }
}

/// An in-memory [`Remote`]. Clients of one namespace share its containers;
/// namespaces are isolated from each other.
///
/// ```
/// use std::sync::Arc;
/// use libctd_core::{ErrorKind, Remote};
/// use libctd_testkit::fake::FakeRemote;
/// use libctd_testkit::RecordingBackend;
///
/// # #[tokio::main] async fn main() {
/// let remote = FakeRemote::new();
/// let client = remote.new_client("engine", Arc::new(RecordingBackend::new())).await.unwrap();
/// assert!(client.version().await.unwrap().version.starts_with("fake"));
/// let err = remote.new_client("../x", Arc::new(RecordingBackend::new())).await.err().unwrap();
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
/// remote.cleanup().await.unwrap();
/// remote.cleanup().await.unwrap(); // idempotent
/// # }
/// ```
#[derive(Clone)]
pub struct FakeRemote {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRemote")
            .field("config", &self.shared.config)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for FakeRemote {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRemote {
    /// A remote with the default configuration.
    pub fn new() -> Self {
        Self::from_config(FakeConfig::default())
    }

    /// A builder with every setting at its default.
    pub fn builder() -> FakeRemoteBuilder {
        FakeRemoteBuilder::default()
    }

    fn from_config(config: FakeConfig) -> Self {
        let first_pid = config.first_pid;
        Self {
            shared: Arc::new(Shared {
                config,
                script: Arc::new(FakeScript::default()),
                namespaces: Mutex::new(HashMap::new()),
                next_pid: AtomicU32::new(first_pid),
                next_serial: AtomicU64::new(1),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The remote's configuration.
    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// The script every client of this remote follows.
    pub fn script(&self) -> &FakeScript {
        &self.shared.script
    }

    /// Whether [`cleanup`](Remote::cleanup) was called.
    pub fn is_cleaned_up(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// The ids of the containers of `namespace`, sorted.
    pub fn containers(&self, namespace: &str) -> Vec<String> {
        let ns = lock(&self.shared.namespaces).get(namespace).cloned();
        let mut ids = ns.map(|ns| ns.container_ids()).unwrap_or_default();
        ids.sort();
        ids
    }

    /// The containers of `namespace` whose root filesystem is a snapshot of
    /// an image, with the image's name, sorted: a deleted container's
    /// snapshot is gone with it.
    pub fn snapshots(&self, namespace: &str) -> Vec<(String, String)> {
        let ns = lock(&self.shared.namespaces).get(namespace).cloned();
        let mut snapshots = ns.map(|ns| ns.snapshots()).unwrap_or_default();
        snapshots.sort();
        snapshots
    }

    /// Makes process `process_id` of `container_id` in `namespace` exit with
    /// `exit_code` now, as if it had ended by itself.
    pub fn exit_process(
        &self,
        namespace: &str,
        container_id: &str,
        process_id: &str,
        exit_code: u32,
    ) -> Result<()> {
        let ns = lock(&self.shared.namespaces)
            .get(namespace)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no namespace {namespace}")))?;
        ns.end_process(container_id, process_id, End::Exit(exit_code))
    }
}

#[async_trait]
impl Remote for FakeRemote {
    #[tracing::instrument(level = "debug", skip(self, backend))]
    async fn new_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<dyn Client>> {
        validate_namespace(namespace).map_err(|e| e.with_operation("new_client"))?;
        if self.is_cleaned_up() {
            return Err(
                Error::unavailable("the fake remote was cleaned up").with_operation("new_client")
            );
        }
        let events = EventDispatcher::for_client(backend, namespace)
            .map_err(|e| e.with_operation("new_client"))?;
        let ns = lock(&self.shared.namespaces)
            .entry(namespace.to_owned())
            .or_insert_with(|| Arc::new(Namespace::default()))
            .clone();
        Ok(Arc::new(FakeClient::new(
            self.shared.clone(),
            namespace.to_owned(),
            ns,
            events,
        )))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn cleanup(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The conformance [`Fixture`] of the fake: a fresh [`FakeRemote`], and a
/// namespace of its own for every client.
#[derive(Debug)]
pub struct FakeFixture {
    remote: FakeRemote,
    counter: AtomicU32,
    capabilities: Capabilities,
}

impl Default for FakeFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeFixture {
    /// A fixture over a fresh remote.
    pub fn new() -> Self {
        Self::with_remote(FakeRemote::new())
    }

    /// A fixture over `remote`.
    pub fn with_remote(remote: FakeRemote) -> Self {
        Self {
            remote,
            counter: AtomicU32::new(0),
            capabilities: Capabilities::new(),
        }
    }

    /// A fixture over a fake that lacks what some platforms lack: no
    /// version, pause, checkpoint, resource update or stats (all
    /// `NotImplemented`), no OOM events, and a restore that does not
    /// re-attach. Its capabilities say so, so the suite asserts those errors.
    pub fn limited() -> Self {
        let unsupported = vec![
            Op::Version,
            Op::Pause,
            Op::Resume,
            Op::CreateCheckpoint,
            Op::UpdateResources,
            Op::Stats,
        ];
        let config = FakeConfig {
            unsupported,
            oom_events: false,
            restore_reattaches: false,
            ..FakeConfig::default()
        };
        let mut fixture = Self::with_remote(FakeRemote::from_config(config));
        let caps = &mut fixture.capabilities;
        caps.version = Support::not_implemented("not supported by the fake");
        caps.pause = Support::not_implemented("not supported by the fake");
        caps.checkpoint = Support::not_implemented("not supported by the fake");
        caps.update_resources = Support::not_implemented("not supported by the fake");
        caps.stats = Support::not_implemented("not supported by the fake");
        caps.oom_events = false;
        caps.restore_reattaches = false;
        fixture
    }

    /// The remote the fixture's clients come from.
    pub fn remote(&self) -> &FakeRemote {
        &self.remote
    }

    fn next(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// A process running `program` on the fake.
pub fn fake_process(program: &Program, terminal: bool) -> Process {
    let mut process = Process::default();
    process.set_args(Some(program_args(program)));
    process.set_terminal(Some(terminal));
    process
}

/// A container spec whose init process runs `program` on the fake.
pub fn fake_spec(program: &Program, terminal: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_process(Some(fake_process(program, terminal)));
    spec
}

#[async_trait]
impl Fixture for FakeFixture {
    async fn client(&self, backend: Arc<dyn Backend>) -> Result<Arc<dyn Client>> {
        let namespace = format!("fixture-{}", self.next());
        self.remote.new_client(&namespace, backend).await
    }

    fn spec(&self, program: &Program, terminal: bool) -> Spec {
        fake_spec(program, terminal)
    }

    fn process(&self, program: &Program, terminal: bool) -> Process {
        fake_process(program, terminal)
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    fn image(&self, name: &str) -> Option<crate::image::ImageArchive> {
        // The fake runs programs by their arguments; a layer is all an
        // image needs.
        let layer = crate::image::Layer::new().file(&format!("bin/{FAKE_COMMAND}"), b"", 0o755);
        Some(crate::image::ImageArchive::new(name).layer(layer))
    }

    fn resources(&self) -> Resources {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(256 * 1024 * 1024));
        let mut resources = LinuxResources::default();
        resources.set_memory(Some(memory));
        Resources::Linux(resources)
    }
}

/// Validates a container id and a process id for an operation.
pub(crate) fn check_ids(op: Op, container_id: &str, process_id: Option<&str>) -> Result<()> {
    validate_container_id(container_id).map_err(|e| e.with_operation(op.as_str()))?;
    if let Some(p) = process_id {
        validate_process_id(p)
            .map_err(|e| e.with_operation(op.as_str()).with_container(container_id))?;
    }
    Ok(())
}

/// Whether `process_id` names the init process.
pub(crate) fn is_init(process_id: &str) -> bool {
    process_id == INIT_PROCESS_ID
}
