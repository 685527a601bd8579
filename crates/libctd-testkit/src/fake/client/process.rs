//! The fake's processes: their streams (made, reattached, released), the
//! program each runs, and the per-process operations (exec, signals,
//! terminal size, stdin).

use std::sync::Arc;
use std::time::Duration;

use libctd_core::oci_spec::runtime::Process;
use libctd_core::{
    DirectIo, Error, EventType, Result, StdioCallback, validate_signal, validate_terminal_size,
};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, watch};

use super::FakeClient;
use super::state::{Proc, container, container_mut, find_proc, running_proc};
use crate::conformance::Program;
use crate::fake::program::{self, End, OutSink, PIPE_SIZE, ProcessIo, StdinMsg, Tweaks};
use crate::fake::{Op, is_init};

/// How long deleting a process waits for the engine to consume its output.
const STDIO_DRAIN: Duration = Duration::from_secs(5);

/// Signals that do not end a process.
const HARMLESS_SIGNALS: [i32; 8] = [17, 18, 19, 20, 21, 22, 23, 28];

impl Proc {
    /// Fresh pipes for a restored engine: they replace the engine's old ends
    /// of the output (and, while the process runs, of stdin).
    pub(super) fn reopen_stdio(&mut self) -> DirectIo {
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
    pub(super) fn release_stdio(&mut self) {
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

/// A process ready to run: its record, its side of the streams, and the
/// engine's side.
pub(super) struct Prepared {
    pub(super) proc: Proc,
    pub(super) io: ProcessIo,
    engine: DirectIo,
    stdin_pipe: Option<(DuplexStream, mpsc::UnboundedSender<StdinMsg>)>,
}

pub(super) fn prepare(
    pid: u32,
    terminal: bool,
    with_stdin: bool,
    frozen: watch::Receiver<bool>,
) -> Prepared {
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

impl FakeClient {
    /// The program a process runs, and the scripted changes to it.
    pub(super) fn program_of(
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
    pub(super) fn spawn(
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

/// Validates the parts of a process spec the fake relies on.
pub(super) fn check_process(process: Option<&Process>, what: &str) -> Result<Process> {
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
pub(super) fn attach(prepared: &mut Prepared, attach: StdioCallback) -> Result<()> {
    let engine = std::mem::replace(&mut prepared.engine, DirectIo::new(None, None, None, false));
    let attachment = attach(engine)?;
    prepared.proc.attachment = Some(attachment);
    if let Some((from, to)) = prepared.stdin_pipe.take() {
        prepared.proc.relay = Some(tokio::spawn(program::relay_stdin(from, to)));
    }
    Ok(())
}

pub(super) async fn signal_process(
    client: &FakeClient,
    container_id: &str,
    process_id: &str,
    signal: i32,
) -> Result<()> {
    let checks = validate_signal(signal);
    client
        .operate(
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

pub(super) async fn exec(
    client: &FakeClient,
    container_id: &str,
    process_id: &str,
    spec: &Process,
    with_stdin: bool,
    attach_cb: StdioCallback,
) -> Result<u32> {
    client
        .operate(Op::Exec, container_id, Some(process_id), Ok(()), |cs| {
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
            let program = client.program_of(container_id, process_id, &process)?;
            let terminal = process.terminal().unwrap_or(false);
            let pid = client.shared.pid();
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
            client.spawn(container_id, process_id, serial, program, io);
            Ok(pid)
        })
        .await
}

pub(super) async fn resize_terminal(
    client: &FakeClient,
    container_id: &str,
    process_id: &str,
    width: u32,
    height: u32,
) -> Result<()> {
    let checks = validate_terminal_size(width, height);
    client
        .operate(
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

pub(super) async fn close_stdin(
    client: &FakeClient,
    container_id: &str,
    process_id: &str,
) -> Result<()> {
    client
        .operate(
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
