//! Execs and stdio: attaching a process's FIFOs to the engine, exec (with
//! its rollback), signals, terminal resizes and closing stdin.

use std::sync::Arc;

use containerd_client::services::v1::{ExecProcessRequest, KillRequest, ResizePtyRequest};
use libctd_core::oci_spec::runtime::Process;
use libctd_core::{
    Error, ErrorKind, INIT_PROCESS_ID, Result, Status, StdioCallback, validate_container_id,
    validate_process_id, validate_signal, validate_terminal_size,
};
use tokio::sync::{oneshot, watch};

use crate::client::queries::task_status;
use crate::conn::wire_exec_id;
use crate::convert::{self, status_error};
use crate::events::{self, TaskEvent};
use crate::fifo::FifoSet;
use crate::rollback::{Rollback, unreachable};
use crate::session::Session;
use crate::state::{Container, Proc};

/// Sets up a process's FIFOs, hands the streams to `attach`, and arranges
/// one CloseIO once the engine closes stdin and the process has started.
///
/// A new process whose output the engine dropped unread in `attach` (and
/// that has no stdin nor terminal) gets no FIFOs at all: containerd gives it
/// `/dev/null`, which saves the FIFOs' creation, their drain tasks and their
/// removal. [`Proc::fifos`] tells what containerd is to be given.
pub(crate) fn attach_process(
    s: &Arc<Session>,
    c: &Container,
    process_id: &str,
    fifos: FifoSet,
    attach: StdioCallback,
    already_started: bool,
) -> Result<Proc> {
    let (close_tx, close_rx) = oneshot::channel();
    // Only a new process's FIFOs can wait for the callback (a started one's
    // are the shim's).
    let deferred = if already_started { None } else { fifos.defer() };
    let (io, stdin_slot, drain, deferred) = match deferred {
        Some((io, drain, deferred)) => (io, None, drain, Some(deferred)),
        None => {
            if !already_started {
                fifos.create(&c.dir)?;
            }
            let (io, stdin_slot, drain) = fifos.open(close_tx)?;
            (io, stdin_slot, drain, None)
        }
    };
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
    let fifos = match deferred {
        Some(deferred) => deferred.settle(&fifos, &c.dir)?,
        None => fifos,
    };
    let (started, mut started_rx) = watch::channel(already_started);
    if has_stdin {
        let s = s.clone();
        let cid = c.id.clone();
        let exec_id = wire_exec_id(process_id);
        tokio::spawn(async move {
            // Only an engine close notifies; a client close_stdin does its own CloseIO.
            let Ok(closed) = close_rx.await else { return };
            if started_rx.wait_for(|s| *s).await.is_ok() {
                // The shim has the FIFO open now: our end may go.
                drop(closed);
                if let Err(e) = s.conn.api.close_stdin(&cid, &exec_id).await {
                    tracing::debug!(container_id = %cid, error = %e, "CloseIO after stdin close failed");
                }
            }
        });
    }
    Ok(Proc::new(fifos, stdin_slot, drain, attachment, started))
}

/// Runs a new process in a container's task; on failure leaves nothing.
pub(crate) async fn exec(
    s: Arc<Session>,
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
    let c = s.get_with_task(&id)?;
    s.rollbacks.settle(&id).await?;
    if task_status(&s, &id).await? == Status::Stopped {
        return Err(Error::failed_precondition("the container is stopped"));
    }
    let spec_any = convert::json_any(convert::PROCESS_TYPE_URL, &spec)?;
    let terminal = spec.terminal().unwrap_or(false);
    let fifos = FifoSet::new(&c.dir, &c.id, &process_id, with_stdin, terminal);
    c.lock().reserve_exec(&process_id)?;
    let attached = attach_process(&s, &c, &process_id, fifos, attach, false);
    let fifos = match attached {
        Ok(p) => {
            let fifos = p.fifos().clone();
            c.lock().end_reservation(&process_id, Some(p));
            fifos
        }
        Err(e) => {
            c.lock().end_reservation(&process_id, None);
            return Err(e);
        }
    };
    let forget = |c: &Container| c.lock().forget(&process_id);
    let req = ExecProcessRequest {
        container_id: id.clone(),
        stdin: FifoSet::wire(&fifos.stdin),
        stdout: FifoSet::wire(&fifos.stdout),
        stderr: FifoSet::wire(&fifos.stderr),
        terminal,
        spec: Some(spec_any),
        exec_id: process_id.clone(),
    };
    if let Err(status) = s.conn.api.exec(req).await {
        let e = status_error(status);
        let forgotten = forget(&c);
        if unreachable(&e) {
            s.rollbacks
                .roll_back(&id, Rollback::Exec(process_id.clone()))
                .await;
        }
        if let Some(p) = forgotten {
            p.release().await;
        }
        return Err(e);
    }
    match s.conn.api.start(&id, &process_id).await {
        Ok(pid) => {
            // Waited on with its shim while an embedded daemon restarts.
            if let Some(kept) = s.kept_exits() {
                kept.track_exec(s.namespace(), &id, &process_id, pid);
            }
            let held = c.lock().mark_started(&process_id, pid);
            if let Some(exit) = held {
                // It exited before its start answered: delivered now.
                events::handle(&s, TaskEvent::Exit(exit));
            }
            Ok(pid)
        }
        Err(status) => {
            let e = status_error(status);
            // Forgotten first, so that the killed exec's exit is not delivered.
            let forgotten = forget(&c);
            s.rollbacks
                .roll_back(&id, Rollback::Exec(process_id.clone()))
                .await;
            if let Some(p) = forgotten {
                p.release().await;
            }
            Err(e)
        }
    }
}

/// Sends `signal` to a tracked process.
pub(crate) async fn signal_process(
    s: &Session,
    container_id: &str,
    process_id: &str,
    signal: i32,
) -> Result<()> {
    let (c, exec_id) = s.process(container_id, process_id, validate_signal(signal))?;
    let req = KillRequest {
        container_id: container_id.to_owned(),
        exec_id,
        signal: signal.unsigned_abs(),
        all: false,
    };
    s.conn.api.kill(req).await.map_err(|status| {
        let e = status_error(status);
        // An init whose exit was delivered has finished, whatever its shim,
        // shutting down under a concurrent delete_task, answers
        // ("ttrpc: closed"): NotFound, as the contract says.
        let finished = process_id == INIT_PROCESS_ID && c.lock().init_exit_delivered();
        if finished && e.kind() != ErrorKind::NotFound && !unreachable(&e) {
            Error::not_found("the process has exited").with_source(e)
        } else {
            e
        }
    })
}

/// Resizes a tracked process's terminal.
pub(crate) async fn resize_terminal(
    s: &Session,
    container_id: &str,
    process_id: &str,
    width: u32,
    height: u32,
) -> Result<()> {
    let (c, exec_id) = s.process(
        container_id,
        process_id,
        validate_terminal_size(width, height),
    )?;
    if c.lock().terminal_of(process_id) == Some(false) {
        return Err(Error::failed_precondition(
            "the process has no terminal to resize",
        ));
    }
    let req = ResizePtyRequest {
        container_id: container_id.to_owned(),
        exec_id,
        width,
        height,
    };
    s.conn.api.resize_pty(req).await.map_err(status_error)
}

/// Closes a tracked process's stdin: ours, then the shim's (CloseIO).
pub(crate) async fn close_stdin(s: &Session, container_id: &str, process_id: &str) -> Result<()> {
    let (c, exec_id) = s.process(container_id, process_id, Ok(()))?;
    // Every writer must go for the process to read EOF: ours too.
    let slot = c.lock().stdin_of(process_id);
    if let Some(slot) = slot {
        crate::fifo::lock(&slot).close_by_client();
    }
    s.conn
        .api
        .close_stdin(container_id, &exec_id)
        .await
        .map_err(status_error)
}
