//! The fake's client: the 18 operations over an in-memory state machine.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use libctd_core::metrics::measured;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Client, CreateOptions, DirectIo, Error, EventDispatcher, EventInfo, EventType, INIT_PROCESS_ID,
    Images, LinuxProcess, LinuxStats, PlatformStats, Resources, Restored, Result, Stats, Status,
    StdioAttachment, StdioCallback, Summary, TaskExit, Version, validate_signal,
    validate_terminal_size,
};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::program::{self, End, OutSink, PIPE_SIZE, ProcessIo, StdinMsg, Tweaks};
use super::{Op, Shared, check_ids, is_init, lock};
use crate::conformance::Program;

/// The name of the file a fake checkpoint writes.
const CHECKPOINT_MARKER: &str = "libctd-fake-checkpoint";

/// How long deleting a process waits for the engine to consume its output.
const STDIO_DRAIN: Duration = Duration::from_secs(5);

/// Signals that do not end a process.
const HARMLESS_SIGNALS: [i32; 8] = [17, 18, 19, 20, 21, 22, 23, 28];

/// One process of a task.
struct Proc {
    pid: u32,
    exit: Option<(u32, SystemTime)>,
    control: watch::Sender<Option<End>>,
    stdin: Option<mpsc::UnboundedSender<StdinMsg>>,
    relay: Option<JoinHandle<()>>,
    stdout: OutSink,
    stderr: Option<OutSink>,
    terminal: bool,
    attachment: Option<Box<dyn StdioAttachment>>,
}

impl Proc {
    fn running(&self) -> bool {
        self.exit.is_none()
    }

    /// Fresh pipes for a restored engine: they replace the engine's old ends
    /// of the output (and, while the process runs, of stdin).
    fn reopen_stdio(&mut self) -> DirectIo {
        let running = self.running();
        let (out_proc, out_engine) = tokio::io::duplex(PIPE_SIZE);
        replace_sink(&self.stdout, running.then_some(out_proc));
        let engine_err = self.stderr.as_ref().map(|sink| {
            let (err_proc, err_engine) = tokio::io::duplex(PIPE_SIZE);
            replace_sink(sink, running.then_some(err_proc));
            err_engine
        });
        let mut engine_stdin = None;
        if let (true, Some(tx)) = (running, self.stdin.clone()) {
            let (engine_end, relay_end) = tokio::io::duplex(PIPE_SIZE);
            if let Some(old) = self.relay.take() {
                old.abort();
            }
            self.relay = Some(tokio::spawn(program::relay_stdin(relay_end, tx)));
            engine_stdin = Some(engine_end);
        }
        DirectIo::new(
            engine_stdin.map(|s| Box::pin(s) as _),
            Some(Box::pin(out_engine)),
            engine_err.map(|s| Box::pin(s) as _),
            self.terminal,
        )
    }

    /// Lets the engine's copies finish (boundedly), then cancels them.
    fn release_stdio(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
        }
        if let Some(mut attachment) = self.attachment.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if tokio::time::timeout(STDIO_DRAIN, attachment.wait())
                        .await
                        .is_err()
                    {
                        attachment.cancel();
                    }
                });
            } else {
                attachment.cancel();
            }
        }
    }
}

/// A container's task: its init process and execs.
struct Task {
    serial: u64,
    init: Proc,
    execs: HashMap<String, Proc>,
    paused: bool,
    frozen: watch::Sender<bool>,
}

impl Task {
    /// `FailedPrecondition` unless the init process runs.
    fn ensure_running(&self) -> Result<()> {
        if self.init.running() {
            Ok(())
        } else {
            Err(Error::failed_precondition("container is not running"))
        }
    }
}

struct Container {
    spec: Spec,
    events: EventDispatcher,
    task: Option<Task>,
    oom_killed: bool,
    resources: Option<Resources>,
    /// The image whose snapshot is its root filesystem, if any: the
    /// snapshot lives exactly as long as the container.
    snapshot: Option<String>,
}

impl Container {
    /// The task, or NotFound "container is not running" before start.
    fn task(&self) -> Result<&Task> {
        self.task.as_ref().ok_or_else(not_running)
    }

    fn task_mut(&mut self) -> Result<&mut Task> {
        self.task.as_mut().ok_or_else(not_running)
    }

    fn info(&self, container_id: &str, process_id: &str, pid: u32) -> EventInfo {
        EventInfo::new(container_id, process_id)
            .with_pid(pid)
            .with_oom_killed(self.oom_killed)
    }
}

/// The containers of one namespace, shared by its clients.
#[derive(Default)]
pub(crate) struct Namespace {
    containers: Mutex<Containers>,
    /// Its image records (lock after `containers` when both are held).
    pub(crate) images: Mutex<super::images::ImageRecords>,
}

fn no_container() -> Error {
    Error::not_found("no such container")
}

fn not_running() -> Error {
    Error::not_found("container is not running")
}

impl Namespace {
    pub(crate) fn container_ids(&self) -> Vec<String> {
        lock(&self.containers).keys().cloned().collect()
    }

    /// The containers that have a snapshot of an image, with its name.
    pub(crate) fn snapshots(&self) -> Vec<(String, String)> {
        lock(&self.containers)
            .iter()
            .filter_map(|(id, c)| Some((id.clone(), c.snapshot.clone()?)))
            .collect()
    }

    /// Ends a process as if it had ended by itself.
    pub(crate) fn end_process(&self, container_id: &str, process_id: &str, end: End) -> Result<()> {
        let cs = lock(&self.containers);
        running_proc(&cs, container_id, process_id)?
            .control
            .send_replace(Some(end));
        Ok(())
    }

    /// Records the end of a process and delivers its events.
    fn finish(self: &Arc<Self>, container_id: &str, process_id: &str, serial: u64, end: End) {
        let mut cs = lock(&self.containers);
        let Some(c) = cs.get_mut(container_id) else {
            return;
        };
        let Some(task) = c.task.as_mut().filter(|t| t.serial == serial) else {
            return;
        };
        let proc = if is_init(process_id) {
            &mut task.init
        } else if let Some(p) = task.execs.get_mut(process_id) {
            p
        } else {
            return;
        };
        if proc.exit.is_some() {
            return;
        }
        let code = match end {
            End::Exit(code) => code,
            End::Signal(sig) => 128 + sig.unsigned_abs(),
            End::Oom => 137,
        };
        let at = SystemTime::now();
        proc.exit = Some((code, at));
        let pid = proc.pid;
        let init = is_init(process_id);
        if init {
            for exec in task.execs.values().filter(|e| e.running()) {
                exec.control.send_replace(Some(End::Signal(9)));
            }
        }
        if end == End::Oom {
            c.oom_killed = true;
            let info = c.info(container_id, process_id, pid);
            c.events.dispatch(EventType::Oom, info);
        }
        let mut info = c.info(container_id, process_id, pid);
        info.exit_code = code;
        info.exited_at = Some(at);
        if init {
            c.events.dispatch(EventType::Exit, info);
        } else {
            // As the Linux backend does: the exec is deleted once its exit
            // was delivered, in the same queue slot.
            let ns = self.clone();
            let (cid, pid) = (container_id.to_owned(), process_id.to_owned());
            c.events.dispatch_then(EventType::Exit, info, async move {
                ns.remove_exec(&cid, &pid, serial);
            });
        }
    }

    fn remove_exec(&self, container_id: &str, process_id: &str, serial: u64) {
        let mut cs = lock(&self.containers);
        let Some(task) = cs
            .get_mut(container_id)
            .and_then(|c| c.task.as_mut())
            .filter(|t| t.serial == serial)
        else {
            return;
        };
        if task.execs.get(process_id).is_some_and(|p| !p.running())
            && let Some(mut p) = task.execs.remove(process_id)
        {
            p.release_stdio();
        }
    }
}

type Containers = HashMap<String, Container>;

fn container<'a>(cs: &'a Containers, container_id: &str) -> Result<&'a Container> {
    cs.get(container_id).ok_or_else(no_container)
}

fn container_mut<'a>(cs: &'a mut Containers, container_id: &str) -> Result<&'a mut Container> {
    cs.get_mut(container_id).ok_or_else(no_container)
}

/// A process that has not exited yet; NotFound otherwise.
fn running_proc<'a>(cs: &'a Containers, container_id: &str, process_id: &str) -> Result<&'a Proc> {
    let p = find_proc(container(cs, container_id)?.task()?, process_id)?;
    if p.running() {
        Ok(p)
    } else {
        Err(Error::not_found("process already finished"))
    }
}

fn find_proc<'a>(task: &'a Task, process_id: &str) -> Result<&'a Proc> {
    if is_init(process_id) {
        Ok(&task.init)
    } else {
        task.execs
            .get(process_id)
            .ok_or_else(|| Error::not_found("no such exec"))
    }
}

/// A process ready to run: its record, its side of the streams, and the
/// engine's side.
struct Prepared {
    proc: Proc,
    io: ProcessIo,
    engine: DirectIo,
    stdin_pipe: Option<(DuplexStream, mpsc::UnboundedSender<StdinMsg>)>,
}

fn prepare(pid: u32, terminal: bool, with_stdin: bool, frozen: watch::Receiver<bool>) -> Prepared {
    let (control, control_rx) = watch::channel(None);
    let (out_proc, out_engine) = tokio::io::duplex(PIPE_SIZE);
    let stdout: OutSink = Arc::new(tokio::sync::Mutex::new(Some(out_proc)));
    let (stderr, err_engine) = if terminal {
        (None, None)
    } else {
        let (err_proc, err_engine) = tokio::io::duplex(PIPE_SIZE);
        let sink: OutSink = Arc::new(tokio::sync::Mutex::new(Some(err_proc)));
        (Some(sink), Some(err_engine))
    };
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (engine_stdin, stdin_pipe) = if with_stdin {
        let (engine_end, relay_end) = tokio::io::duplex(PIPE_SIZE);
        (Some(engine_end), Some((relay_end, stdin_tx.clone())))
    } else {
        let _ = stdin_tx.send(StdinMsg::Eof);
        (None, None)
    };
    let engine = DirectIo::new(
        engine_stdin.map(|s| Box::pin(s) as _),
        Some(Box::pin(out_engine)),
        err_engine.map(|s| Box::pin(s) as _),
        terminal,
    );
    Prepared {
        proc: Proc {
            pid,
            exit: None,
            control,
            stdin: with_stdin.then_some(stdin_tx),
            relay: None,
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            terminal,
            attachment: None,
        },
        io: ProcessIo {
            stdin: Some(stdin_rx),
            stdout,
            stderr,
            control: control_rx,
            frozen,
        },
        engine,
        stdin_pipe,
    }
}

/// The fake's [`Client`]. Made by [`FakeRemote::new_client`](super::FakeRemote).
pub struct FakeClient {
    shared: Arc<Shared>,
    namespace: String,
    ns: Arc<Namespace>,
    events: EventDispatcher,
}

impl std::fmt::Debug for FakeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeClient")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl FakeClient {
    /// The state of the client's namespace, shared with its other clients.
    pub(crate) fn namespace_state(&self) -> &Namespace {
        &self.ns
    }

    pub(crate) fn new(
        shared: Arc<Shared>,
        namespace: String,
        ns: Arc<Namespace>,
        events: EventDispatcher,
    ) -> Self {
        Self {
            shared,
            namespace,
            ns,
            events,
        }
    }

    /// The client's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The event queue of the client (to wait until events were delivered).
    pub fn events(&self) -> &EventDispatcher {
        &self.events
    }

    /// The common start of every operation: the remote is up, scripted
    /// faults and delays. Nothing has changed when this fails or is cancelled.
    async fn enter(&self, op: Op, container_id: Option<&str>) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::unavailable("the fake remote was cleaned up"));
        }
        if self.shared.config.unsupported.contains(&op) {
            return Err(Error::not_implemented(format!(
                "{} is not supported by the fake",
                op.as_str()
            )));
        }
        if let Some(delay) = self.shared.script.delay_for(op, container_id) {
            tokio::time::sleep(delay).await;
        }
        if let Some(err) = self.shared.script.fault(op, container_id) {
            return Err(err);
        }
        Ok(())
    }

    /// The frame of every per-container operation: the ids (then `checks`)
    /// are validated, the remote is entered (faults, delays), then `f` runs on
    /// the namespace's containers under their lock. Every error names the
    /// operation, the container and the process. Cancel-safe: the only await
    /// comes before anything changes.
    async fn operate<R>(
        &self,
        op: Op,
        container_id: &str,
        process_id: Option<&str>,
        checks: Result<()>,
        f: impl FnOnce(&mut Containers) -> Result<R>,
    ) -> Result<R> {
        measured(op.as_str(), async {
            check_ids(op, container_id, process_id)?;
            let ctx = |e: Error| {
                let e = e.with_operation(op.as_str()).with_container(container_id);
                match process_id {
                    Some(p) => e.with_process(p),
                    None => e,
                }
            };
            checks.map_err(ctx)?;
            self.enter(op, Some(container_id)).await.map_err(ctx)?;
            let mut cs = lock(&self.ns.containers);
            f(&mut cs).map_err(ctx)
        })
        .await
    }

    /// Pauses (`freeze`) or resumes the container's task.
    async fn freeze(&self, op: Op, container_id: &str, freeze: bool) -> Result<()> {
        self.operate(op, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            let task = c.task_mut()?;
            if freeze {
                task.ensure_running()?;
                if task.paused {
                    return Err(Error::failed_precondition("container is already paused"));
                }
            } else if !task.paused {
                return Err(Error::failed_precondition("container is not paused"));
            }
            task.paused = freeze;
            task.frozen.send_replace(freeze);
            let pid = task.init.pid;
            let event = if freeze {
                EventType::Paused
            } else {
                EventType::Resumed
            };
            c.events
                .dispatch(event, c.info(container_id, INIT_PROCESS_ID, pid));
            Ok(())
        })
        .await
    }

    /// The program a process runs, and the scripted changes to it.
    fn program_of(
        &self,
        container_id: &str,
        process_id: &str,
        process: &Process,
    ) -> Result<(Program, Tweaks)> {
        let args = process.args().clone().unwrap_or_default();
        let mut program = program::parse_args(&args)?
            .unwrap_or_else(|| self.shared.config.default_program.clone());
        if program == Program::Oom && !self.shared.config.oom_events {
            // Without OOM reporting the process just dies of SIGKILL.
            program = Program::Exit(137);
        }
        let mut tweaks = Tweaks::default();
        if let Some(s) = self.shared.script.process_script(container_id, process_id) {
            if s.oom {
                program = if self.shared.config.oom_events {
                    Program::Oom
                } else {
                    Program::Exit(137)
                };
            }
            tweaks = Tweaks {
                run_for: s.run_for,
                stdout: s.stdout,
                exit_code: s.exit_code,
            };
        }
        Ok((program, tweaks))
    }

    /// Runs a process's program (as [`program_of`](Self::program_of) gave
    /// it) and records its end.
    fn spawn(
        &self,
        container_id: &str,
        process_id: &str,
        serial: u64,
        (program, tweaks): (Program, Tweaks),
        io: ProcessIo,
    ) {
        let ns = self.ns.clone();
        let (cid, pid) = (container_id.to_owned(), process_id.to_owned());
        tokio::spawn(async move {
            let end = program::run(program, io, tweaks).await;
            ns.finish(&cid, &pid, serial, end);
        });
    }
}

/// The one runtime options type the fake takes: the runc shim's, as the
/// Linux backend does (its bytes are not read).
pub const FAKE_RUNTIME_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

/// Refuses runtime options of any other type, as every backend refuses a
/// type it does not understand.
fn check_runtime_options(options: Option<&libctd_core::RuntimeOptions>) -> Result<()> {
    match options {
        Some(o) if o.type_url() != FAKE_RUNTIME_OPTIONS_TYPE => {
            Err(Error::invalid_argument(format!(
                "runtime options of type {:?} are not understood: the fake takes {FAKE_RUNTIME_OPTIONS_TYPE}",
                o.type_url()
            )))
        }
        _ => Ok(()),
    }
}

/// Validates the parts of a process spec the fake relies on.
fn check_process(process: Option<&Process>, what: &str) -> Result<Process> {
    let process = process
        .cloned()
        .ok_or_else(|| Error::invalid_argument(format!("{what} has no process")))?;
    if process.args().as_ref().is_none_or(Vec::is_empty) {
        return Err(Error::invalid_argument(format!(
            "{what} has a process without args"
        )));
    }
    Ok(process)
}

/// Calls the engine's callback and starts relaying stdin.
fn attach(prepared: &mut Prepared, attach: StdioCallback) -> Result<()> {
    let engine = std::mem::replace(&mut prepared.engine, DirectIo::new(None, None, None, false));
    let attachment = attach(engine)?;
    prepared.proc.attachment = Some(attachment);
    if let Some((from, to)) = prepared.stdin_pipe.take() {
        prepared.proc.relay = Some(tokio::spawn(program::relay_stdin(from, to)));
    }
    Ok(())
}

#[async_trait]
impl Client for FakeClient {
    fn images(&self) -> Option<&dyn Images> {
        Some(self)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn version(&self) -> Result<Version> {
        measured(Op::Version.as_str(), async {
            self.enter(Op::Version, None)
                .await
                .map_err(|e| e.with_operation(Op::Version.as_str()))?;
            Ok(self
                .shared
                .script
                .version()
                .unwrap_or_else(|| self.shared.config.version.clone()))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.namespace))]
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        let reattach = self.shared.config.restore_reattaches;
        self.operate(Op::Restore, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            // Events of the container now go to this client.
            c.events = self.events.clone();
            let Some(task) = c.task.as_mut() else {
                return Ok(Restored::new(false, None));
            };
            let p = &mut task.init;
            if !reattach {
                // As on Windows: what survived the engine is terminated.
                if p.running() {
                    p.control.send_replace(Some(End::Signal(9)));
                }
                return Ok(Restored::new(false, Some(p.pid)));
            }
            let running = p.running();
            let io = p.reopen_stdio();
            let attachment = attach(io)?;
            if let Some(mut old) = p.attachment.replace(attachment) {
                old.cancel();
            }
            Ok(Restored::new(running, Some(p.pid)))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options), fields(namespace = %self.namespace))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        self.operate(Op::Create, container_id, None, Ok(()), |cs| {
            check_process(spec.process().as_ref(), "the spec")?;
            check_runtime_options(options.runtime_options.as_ref())?;
            let snapshot = match &options.image {
                Some(rootfs) => Some(super::images::check_create(
                    &lock(&self.ns.images),
                    rootfs,
                    spec,
                )?),
                None => None,
            };
            if cs.contains_key(container_id) {
                return Err(Error::already_exists("container already exists"));
            }
            cs.insert(
                container_id.to_owned(),
                Container {
                    spec: spec.clone(),
                    events: self.events.clone(),
                    task: None,
                    oom_killed: false,
                    resources: None,
                    snapshot,
                },
            );
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, attach_cb), fields(namespace = %self.namespace))]
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach_cb: StdioCallback,
    ) -> Result<u32> {
        self.operate(Op::Start, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            if c.task.is_some() {
                return Err(Error::already_exists("container is already started"));
            }
            if let Some(dir) = checkpoint_dir
                && !dir.join(CHECKPOINT_MARKER).is_file()
            {
                return Err(Error::not_found(format!(
                    "no checkpoint in {}",
                    dir.display()
                )));
            }
            let process = check_process(c.spec.process().as_ref(), "the spec")?;
            let program = self.program_of(container_id, INIT_PROCESS_ID, &process)?;
            let terminal = process.terminal().unwrap_or(false);
            let (frozen, frozen_rx) = watch::channel(false);
            let pid = self.shared.pid();
            let mut prepared = prepare(pid, terminal, with_stdin, frozen_rx);
            attach(&mut prepared, attach_cb)?;
            let serial = self.shared.serial();
            let Prepared { proc, io, .. } = prepared;
            c.task = Some(Task {
                serial,
                init: proc,
                execs: HashMap::new(),
                paused: false,
                frozen,
            });
            c.oom_killed = false;
            for event in [EventType::Create, EventType::Start] {
                c.events
                    .dispatch(event, c.info(container_id, INIT_PROCESS_ID, pid));
            }
            self.spawn(container_id, INIT_PROCESS_ID, serial, program, io);
            Ok(pid)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        let checks = validate_signal(signal);
        self.operate(
            Op::SignalProcess,
            container_id,
            Some(process_id),
            checks,
            |cs| {
                let p = running_proc(cs, container_id, process_id)?;
                if !HARMLESS_SIGNALS.contains(&signal) {
                    p.control.send_replace(Some(End::Signal(signal)));
                }
                Ok(())
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, attach_cb), fields(namespace = %self.namespace))]
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach_cb: StdioCallback,
    ) -> Result<u32> {
        self.operate(Op::Exec, container_id, Some(process_id), Ok(()), |cs| {
            let process = check_process(Some(spec), "the exec")?;
            let c = container_mut(cs, container_id)?;
            let Some(task) = c.task.as_mut() else {
                return Err(Error::not_found("container is not running"));
            };
            if !task.init.running() {
                return Err(Error::failed_precondition(
                    "cannot exec in a stopped container: container is not running",
                ));
            }
            if is_init(process_id) || task.execs.contains_key(process_id) {
                return Err(Error::already_exists("exec id is already in use"));
            }
            let program = self.program_of(container_id, process_id, &process)?;
            let terminal = process.terminal().unwrap_or(false);
            let pid = self.shared.pid();
            let mut prepared = prepare(pid, terminal, with_stdin, task.frozen.subscribe());
            attach(&mut prepared, attach_cb)?;
            let Prepared { proc, io, .. } = prepared;
            task.execs.insert(process_id.to_owned(), proc);
            let serial = task.serial;
            // containerd's TaskExecAdded carries no pid.
            c.events
                .dispatch(EventType::ExecAdded, c.info(container_id, process_id, 0));
            c.events.dispatch(
                EventType::ExecStarted,
                c.info(container_id, process_id, pid),
            );
            self.spawn(container_id, process_id, serial, program, io);
            Ok(pid)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let checks = validate_terminal_size(width, height);
        self.operate(
            Op::ResizeTerminal,
            container_id,
            Some(process_id),
            checks,
            |cs| {
                let p = running_proc(cs, container_id, process_id)?;
                if !p.terminal {
                    return Err(Error::failed_precondition(
                        "the process has no terminal to resize",
                    ));
                }
                Ok(())
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        self.operate(
            Op::CloseStdin,
            container_id,
            Some(process_id),
            Ok(()),
            |cs| {
                let p = find_proc(container(cs, container_id)?.task()?, process_id)?;
                if let Some(tx) = &p.stdin {
                    // Everything written before stays ahead of the EOF.
                    let _ = tx.send(StdinMsg::Eof);
                }
                Ok(())
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        self.freeze(Op::Pause, container_id, true).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        self.freeze(Op::Resume, container_id, false).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        self.operate(Op::Stats, container_id, None, Ok(()), |cs| {
            let c = container(cs, container_id)?;
            let running = u64::try_from(running_pids(c.task()?).len()).unwrap_or(u64::MAX);
            let limit = match &c.resources {
                Some(Resources::Linux(r)) => r
                    .memory()
                    .as_ref()
                    .and_then(|m| m.limit())
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(u64::MAX),
                _ => u64::MAX,
            };
            let mut linux = LinuxStats::default();
            linux.memory.usage = running.saturating_mul(1024 * 1024);
            linux.memory.limit = limit;
            linux.pids.current = running;
            Ok(Stats::new(SystemTime::now(), PlatformStats::Linux(linux)))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        self.operate(Op::ListPids, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?.task()?;
            Ok(running_pids(task).into_iter().map(|(pid, _)| pid).collect())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        self.operate(Op::Summary, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?.task()?;
            Ok(running_pids(task)
                .into_iter()
                .map(|(pid, exec_id)| Summary::Linux(LinuxProcess::new(pid, exec_id)))
                .collect())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        self.operate(Op::DeleteTask, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            let Some((exit_code, exited_at)) = c.task()?.init.exit else {
                return Err(Error::failed_precondition("task is still running"));
            };
            if let Some(task) = c.task.take() {
                release_task(task);
            }
            Ok(TaskExit::new(exit_code, exited_at))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        self.operate(Op::Delete, container_id, None, Ok(()), |cs| {
            let c = container(cs, container_id)?;
            if c.task.as_ref().is_some_and(|t| t.init.running()) {
                return Err(Error::failed_precondition("container is running"));
            }
            if let Some(task) = cs.remove(container_id).and_then(|c| c.task) {
                release_task(task);
            }
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        self.operate(Op::Status, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?
                .task
                .as_ref()
                .ok_or_else(|| Error::not_found("no such task"))?;
            Ok(if !task.init.running() {
                Status::Stopped
            } else if task.paused {
                Status::Paused
            } else {
                Status::Running
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, resources), fields(namespace = %self.namespace))]
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        self.operate(Op::UpdateResources, container_id, None, Ok(()), |cs| {
            if !matches!(resources, Resources::Linux(_)) {
                return Err(Error::invalid_argument(
                    "only Linux resources apply to this container",
                ));
            }
            let c = container_mut(cs, container_id)?;
            c.task()?.ensure_running()?;
            c.resources = Some(resources.clone());
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        self.operate(Op::CreateCheckpoint, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?.task()?;
            task.ensure_running()?;
            std::fs::create_dir_all(checkpoint_dir)
                .and_then(|()| {
                    std::fs::write(
                        checkpoint_dir.join(CHECKPOINT_MARKER),
                        format!("{container_id}\n"),
                    )
                })
                .map_err(|e| {
                    Error::system(format!(
                        "cannot write the checkpoint into {}",
                        checkpoint_dir.display()
                    ))
                    .with_source(e)
                })?;
            if exit {
                task.init.control.send_replace(Some(End::Signal(9)));
            }
            Ok(())
        })
        .await
    }
}

fn running_pids(task: &Task) -> Vec<(u32, Option<String>)> {
    let mut pids = Vec::new();
    if task.init.running() {
        pids.push((task.init.pid, None));
    }
    let mut execs: Vec<_> = task.execs.iter().filter(|(_, p)| p.running()).collect();
    execs.sort_by_key(|(_, p)| p.pid);
    pids.extend(execs.into_iter().map(|(id, p)| (p.pid, Some(id.clone()))));
    pids
}

fn release_task(mut task: Task) {
    for p in task.execs.values_mut() {
        p.control.send_replace(Some(End::Signal(9)));
        p.release_stdio();
    }
    task.init.release_stdio();
}

fn replace_sink(sink: &OutSink, new: Option<DuplexStream>) {
    match sink.try_lock() {
        Ok(mut guard) => *guard = new,
        Err(_) => {
            // The process is writing; swap once it is done with this chunk.
            let sink = sink.clone();
            tokio::spawn(async move {
                *sink.lock().await = new;
            });
        }
    }
}
