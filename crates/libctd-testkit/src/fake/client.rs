//! The fake's client: the 18 operations over an in-memory state machine.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Client, CreateOptions, DirectIo, Error, ErrorContext, EventDispatcher, EventInfo, EventType,
    INIT_PROCESS_ID, LinuxProcess, LinuxStats, MemoryStats, PidsStats, PlatformStats, Resources,
    Restored, Result, Stats, Status, StdioAttachment, StdioCallback, Summary, TaskExit, Version,
    validate_signal, validate_terminal_size,
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

struct Container {
    spec: Spec,
    events: EventDispatcher,
    task: Option<Task>,
    oom_killed: bool,
    resources: Option<Resources>,
}

impl Container {
    fn info(&self, container_id: &str, process_id: &str, pid: u32) -> EventInfo {
        EventInfo {
            container_id: container_id.to_owned(),
            process_id: process_id.to_owned(),
            pid,
            oom_killed: self.oom_killed,
            ..EventInfo::default()
        }
    }
}

/// The containers of one namespace, shared by its clients.
#[derive(Default)]
pub(crate) struct Namespace {
    containers: Mutex<HashMap<String, Container>>,
}

fn no_container() -> Error {
    Error::not_found("no such container")
}

fn not_running() -> Error {
    Error::not_found("container is not running")
}

impl Namespace {
    pub fn container_ids(&self) -> Vec<String> {
        lock(&self.containers).keys().cloned().collect()
    }

    /// Ends a process as if it had ended by itself.
    pub fn end_process(&self, container_id: &str, process_id: &str, end: End) -> Result<()> {
        let cs = lock(&self.containers);
        let c = cs.get(container_id).ok_or_else(no_container)?;
        let task = c.task.as_ref().ok_or_else(not_running)?;
        let p = find_proc(task, process_id)?;
        if !p.running() {
            return Err(Error::not_found("process already finished"));
        }
        p.control.send_replace(Some(end));
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

    fn spawn(&self, container_id: &str, process_id: &str, serial: u64, p: ProcessRun) {
        let ns = self.ns.clone();
        let (cid, pid) = (container_id.to_owned(), process_id.to_owned());
        tokio::spawn(async move {
            let end = program::run(p.program, p.io, p.tweaks).await;
            ns.finish(&cid, &pid, serial, end);
        });
    }
}

struct ProcessRun {
    program: Program,
    io: ProcessIo,
    tweaks: Tweaks,
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
    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn version(&self) -> Result<Version> {
        self.enter(Op::Version, None)
            .await
            .map_err(|e| e.with_operation("version"))?;
        Ok(self
            .shared
            .script
            .version()
            .unwrap_or_else(|| self.shared.config.version.clone()))
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.namespace))]
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        check_ids(Op::Restore, container_id, None)?;
        self.enter(Op::Restore, Some(container_id))
            .await
            .context("restore", container_id)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .context("restore", container_id)?;
        // Events of the container now go to this client.
        c.events = self.events.clone();
        let Some(task) = c.task.as_mut() else {
            return Ok(Restored {
                alive: false,
                pid: None,
            });
        };
        let p = &mut task.init;
        if !self.shared.config.restore_reattaches {
            // As on Windows: what survived the engine is terminated.
            if p.running() {
                p.control.send_replace(Some(End::Signal(9)));
            }
            return Ok(Restored {
                alive: false,
                pid: Some(p.pid),
            });
        }
        // Reopen the streams: fresh pipes replace the engine's old ends.
        let (out_proc, out_engine) = tokio::io::duplex(PIPE_SIZE);
        let mut engine_err = None;
        let running = p.running();
        replace_sink(&p.stdout, running.then_some(out_proc));
        if let Some(sink) = &p.stderr {
            let (err_proc, err_engine) = tokio::io::duplex(PIPE_SIZE);
            replace_sink(sink, running.then_some(err_proc));
            engine_err = Some(err_engine);
        }
        let mut engine_stdin = None;
        if let (true, Some(tx)) = (running, p.stdin.clone()) {
            let (engine_end, relay_end) = tokio::io::duplex(PIPE_SIZE);
            if let Some(old) = p.relay.take() {
                old.abort();
            }
            p.relay = Some(tokio::spawn(program::relay_stdin(relay_end, tx)));
            engine_stdin = Some(engine_end);
        }
        let io = DirectIo::new(
            engine_stdin.map(|s| Box::pin(s) as _),
            Some(Box::pin(out_engine)),
            engine_err.map(|s| Box::pin(s) as _),
            p.terminal,
        );
        let attachment = attach(io).context("restore", container_id)?;
        if let Some(mut old) = p.attachment.replace(attachment) {
            old.cancel();
        }
        Ok(Restored {
            alive: running,
            pid: Some(p.pid),
        })
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options), fields(namespace = %self.namespace))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        check_ids(Op::Create, container_id, None)?;
        self.enter(Op::Create, Some(container_id))
            .await
            .context("create", container_id)?;
        let _ = options;
        check_process(spec.process().as_ref(), "the spec").context("create", container_id)?;
        let mut cs = lock(&self.ns.containers);
        if cs.contains_key(container_id) {
            return Err(Error::already_exists("container already exists"))
                .context("create", container_id);
        }
        cs.insert(
            container_id.to_owned(),
            Container {
                spec: spec.clone(),
                events: self.events.clone(),
                task: None,
                oom_killed: false,
                resources: None,
            },
        );
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, attach_cb), fields(namespace = %self.namespace))]
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach_cb: StdioCallback,
    ) -> Result<u32> {
        check_ids(Op::Start, container_id, None)?;
        self.enter(Op::Start, Some(container_id))
            .await
            .context("start", container_id)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .context("start", container_id)?;
        if c.task.is_some() {
            return Err(Error::already_exists("container is already started"))
                .context("start", container_id);
        }
        if let Some(dir) = checkpoint_dir
            && !dir.join(CHECKPOINT_MARKER).is_file()
        {
            return Err(Error::not_found(format!(
                "no checkpoint in {}",
                dir.display()
            )))
            .context("start", container_id);
        }
        let process =
            check_process(c.spec.process().as_ref(), "the spec").context("start", container_id)?;
        let (program, tweaks) = self
            .program_of(container_id, INIT_PROCESS_ID, &process)
            .context("start", container_id)?;
        let terminal = process.terminal().unwrap_or(false);
        let (frozen, frozen_rx) = watch::channel(false);
        let pid = self.shared.pid();
        let mut prepared = prepare(pid, terminal, with_stdin, frozen_rx);
        attach(&mut prepared, attach_cb).context("start", container_id)?;
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
        c.events.dispatch(
            EventType::Create,
            c.info(container_id, INIT_PROCESS_ID, pid),
        );
        c.events
            .dispatch(EventType::Start, c.info(container_id, INIT_PROCESS_ID, pid));
        self.spawn(
            container_id,
            INIT_PROCESS_ID,
            serial,
            ProcessRun {
                program,
                io,
                tweaks,
            },
        );
        Ok(pid)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        let ctx = |e: Error| {
            e.with_operation("signal_process")
                .with_container(container_id)
                .with_process(process_id)
        };
        check_ids(Op::SignalProcess, container_id, Some(process_id))?;
        validate_signal(signal).map_err(ctx)?;
        self.enter(Op::SignalProcess, Some(container_id))
            .await
            .map_err(ctx)?;
        let cs = lock(&self.ns.containers);
        let c = cs.get(container_id).ok_or_else(no_container).map_err(ctx)?;
        let task = c.task.as_ref().ok_or_else(not_running).map_err(ctx)?;
        let p = find_proc(task, process_id).map_err(ctx)?;
        if !p.running() {
            return Err(ctx(Error::not_found("process already finished")));
        }
        if !HARMLESS_SIGNALS.contains(&signal) {
            p.control.send_replace(Some(End::Signal(signal)));
        }
        Ok(())
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
        let ctx = |e: Error| {
            e.with_operation("exec")
                .with_container(container_id)
                .with_process(process_id)
        };
        check_ids(Op::Exec, container_id, Some(process_id))?;
        self.enter(Op::Exec, Some(container_id))
            .await
            .map_err(ctx)?;
        let process = check_process(Some(spec), "the exec").map_err(ctx)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .map_err(ctx)?;
        let Some(task) = c.task.as_mut() else {
            return Err(ctx(Error::invalid_argument("container is not running")));
        };
        if !task.init.running() {
            return Err(ctx(Error::failed_precondition(
                "cannot exec in a stopped container: container is not running",
            )));
        }
        if is_init(process_id) || task.execs.contains_key(process_id) {
            return Err(ctx(Error::already_exists("exec id is already in use")));
        }
        let (program, tweaks) = self
            .program_of(container_id, process_id, &process)
            .map_err(ctx)?;
        let terminal = process.terminal().unwrap_or(false);
        let pid = self.shared.pid();
        let mut prepared = prepare(pid, terminal, with_stdin, task.frozen.subscribe());
        attach(&mut prepared, attach_cb).map_err(ctx)?;
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
        self.spawn(
            container_id,
            process_id,
            serial,
            ProcessRun {
                program,
                io,
                tweaks,
            },
        );
        Ok(pid)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let ctx = |e: Error| {
            e.with_operation("resize_terminal")
                .with_container(container_id)
                .with_process(process_id)
        };
        check_ids(Op::ResizeTerminal, container_id, Some(process_id))?;
        validate_terminal_size(width, height).map_err(ctx)?;
        self.enter(Op::ResizeTerminal, Some(container_id))
            .await
            .map_err(ctx)?;
        let cs = lock(&self.ns.containers);
        let c = cs.get(container_id).ok_or_else(no_container).map_err(ctx)?;
        let task = c.task.as_ref().ok_or_else(not_running).map_err(ctx)?;
        let p = find_proc(task, process_id).map_err(ctx)?;
        if !p.running() {
            return Err(ctx(Error::not_found("process already finished")));
        }
        // Like runc's shim: resizing a process without a terminal does nothing.
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        let ctx = |e: Error| {
            e.with_operation("close_stdin")
                .with_container(container_id)
                .with_process(process_id)
        };
        check_ids(Op::CloseStdin, container_id, Some(process_id))?;
        self.enter(Op::CloseStdin, Some(container_id))
            .await
            .map_err(ctx)?;
        let cs = lock(&self.ns.containers);
        let c = cs.get(container_id).ok_or_else(no_container).map_err(ctx)?;
        let task = c.task.as_ref().ok_or_else(not_running).map_err(ctx)?;
        let p = find_proc(task, process_id).map_err(ctx)?;
        if let Some(tx) = &p.stdin {
            // Everything written before stays ahead of the EOF.
            let _ = tx.send(StdinMsg::Eof);
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        check_ids(Op::Pause, container_id, None)?;
        self.enter(Op::Pause, Some(container_id))
            .await
            .context("pause", container_id)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .context("pause", container_id)?;
        let task = c
            .task
            .as_mut()
            .ok_or_else(not_running)
            .context("pause", container_id)?;
        if !task.init.running() {
            return Err(Error::failed_precondition("container is not running"))
                .context("pause", container_id);
        }
        if task.paused {
            return Err(Error::failed_precondition("container is already paused"))
                .context("pause", container_id);
        }
        task.paused = true;
        task.frozen.send_replace(true);
        let pid = task.init.pid;
        c.events.dispatch(
            EventType::Paused,
            c.info(container_id, INIT_PROCESS_ID, pid),
        );
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        check_ids(Op::Resume, container_id, None)?;
        self.enter(Op::Resume, Some(container_id))
            .await
            .context("resume", container_id)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .context("resume", container_id)?;
        let task = c
            .task
            .as_mut()
            .ok_or_else(not_running)
            .context("resume", container_id)?;
        if !task.paused {
            return Err(Error::failed_precondition("container is not paused"))
                .context("resume", container_id);
        }
        task.paused = false;
        task.frozen.send_replace(false);
        let pid = task.init.pid;
        c.events.dispatch(
            EventType::Resumed,
            c.info(container_id, INIT_PROCESS_ID, pid),
        );
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        check_ids(Op::Stats, container_id, None)?;
        self.enter(Op::Stats, Some(container_id))
            .await
            .context("stats", container_id)?;
        let cs = lock(&self.ns.containers);
        let c = cs
            .get(container_id)
            .ok_or_else(no_container)
            .context("stats", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(not_running)
            .context("stats", container_id)?;
        let running = running_pids(task).len() as u64;
        let limit = match &c.resources {
            Some(Resources::Linux(r)) => r
                .memory()
                .as_ref()
                .and_then(|m| m.limit())
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        Ok(Stats {
            read: SystemTime::now(),
            platform: PlatformStats::Linux(LinuxStats {
                memory: MemoryStats {
                    usage: running * 1024 * 1024,
                    limit,
                    ..MemoryStats::default()
                },
                pids: PidsStats {
                    current: running,
                    limit: 0,
                },
                ..LinuxStats::default()
            }),
        })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        check_ids(Op::ListPids, container_id, None)?;
        self.enter(Op::ListPids, Some(container_id))
            .await
            .context("list_pids", container_id)?;
        let cs = lock(&self.ns.containers);
        let c = cs
            .get(container_id)
            .ok_or_else(no_container)
            .context("list_pids", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(not_running)
            .context("list_pids", container_id)?;
        Ok(running_pids(task).into_iter().map(|(pid, _)| pid).collect())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        check_ids(Op::Summary, container_id, None)?;
        self.enter(Op::Summary, Some(container_id))
            .await
            .context("summary", container_id)?;
        let cs = lock(&self.ns.containers);
        let c = cs
            .get(container_id)
            .ok_or_else(no_container)
            .context("summary", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(not_running)
            .context("summary", container_id)?;
        Ok(running_pids(task)
            .into_iter()
            .map(|(pid, exec_id)| Summary::Linux(LinuxProcess { pid, exec_id }))
            .collect())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        check_ids(Op::DeleteTask, container_id, None)?;
        self.enter(Op::DeleteTask, Some(container_id))
            .await
            .context("delete_task", container_id)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .context("delete_task", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(not_running)
            .context("delete_task", container_id)?;
        let Some((exit_code, exited_at)) = task.init.exit else {
            return Err(Error::failed_precondition("task is still running"))
                .context("delete_task", container_id);
        };
        if let Some(task) = c.task.take() {
            release_task(task);
        }
        Ok(TaskExit {
            exit_code,
            exited_at,
        })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        check_ids(Op::Delete, container_id, None)?;
        self.enter(Op::Delete, Some(container_id))
            .await
            .context("delete", container_id)?;
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get(container_id)
            .ok_or_else(no_container)
            .context("delete", container_id)?;
        if c.task.as_ref().is_some_and(|t| t.init.running()) {
            return Err(Error::failed_precondition("container is running"))
                .context("delete", container_id);
        }
        if let Some(task) = cs.remove(container_id).and_then(|c| c.task) {
            release_task(task);
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        check_ids(Op::Status, container_id, None)?;
        self.enter(Op::Status, Some(container_id))
            .await
            .context("status", container_id)?;
        let cs = lock(&self.ns.containers);
        let c = cs
            .get(container_id)
            .ok_or_else(no_container)
            .context("status", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(|| Error::not_found("no such task"))
            .context("status", container_id)?;
        Ok(if !task.init.running() {
            Status::Stopped
        } else if task.paused {
            Status::Paused
        } else {
            Status::Running
        })
    }

    #[tracing::instrument(level = "debug", skip(self, resources), fields(namespace = %self.namespace))]
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        check_ids(Op::UpdateResources, container_id, None)?;
        self.enter(Op::UpdateResources, Some(container_id))
            .await
            .context("update_resources", container_id)?;
        if !matches!(resources, Resources::Linux(_)) {
            return Err(Error::invalid_argument(
                "only Linux resources apply to this container",
            ))
            .context("update_resources", container_id);
        }
        let mut cs = lock(&self.ns.containers);
        let c = cs
            .get_mut(container_id)
            .ok_or_else(no_container)
            .context("update_resources", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(not_running)
            .context("update_resources", container_id)?;
        if !task.init.running() {
            return Err(Error::failed_precondition("container is not running"))
                .context("update_resources", container_id);
        }
        c.resources = Some(resources.clone());
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        check_ids(Op::CreateCheckpoint, container_id, None)?;
        self.enter(Op::CreateCheckpoint, Some(container_id))
            .await
            .context("create_checkpoint", container_id)?;
        let cs = lock(&self.ns.containers);
        let c = cs
            .get(container_id)
            .ok_or_else(no_container)
            .context("create_checkpoint", container_id)?;
        let task = c
            .task
            .as_ref()
            .ok_or_else(not_running)
            .context("create_checkpoint", container_id)?;
        if !task.init.running() {
            return Err(Error::failed_precondition("container is not running"))
                .context("create_checkpoint", container_id);
        }
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
            })
            .context("create_checkpoint", container_id)?;
        if exit {
            task.init.control.send_replace(Some(End::Signal(9)));
        }
        Ok(())
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
