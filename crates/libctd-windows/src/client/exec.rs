//! A container's processes: starting one (the init or an exec) with its
//! stdio handed to the engine, exec, signals, the console size, closing
//! stdin.

use std::sync::Arc;
use std::time::Duration;

use libctd_core::oci_spec::runtime::Process;
use libctd_core::{
    DirectIo, Error, EventInfo, EventType, INIT_PROCESS_ID, Result, Status, StdioCallback,
    validate_signal, validate_terminal_size,
};
use tracing::Instrument;

use super::state::{Container, Proc};
use super::{Inner, detached, hcs_error, not_running};
use crate::convert;
use crate::exits;
use crate::hcs::{Hcs, HcsOp};
use crate::schema::ModifyProcessRequest;

/// Signal 9: on the init process, terminate rather than shut down.
const SIGKILL: i32 = 9;

/// What to start: a process of a container, and how.
pub(super) struct ProcessRequest<'a> {
    pub(super) ctr_id: &'a str,
    pub(super) process: &'a Process,
    pub(super) with_stdin: bool,
    pub(super) operation: &'static str,
    /// How long to wait for the process to exit when it has to be undone.
    pub(super) exit_timeout: Duration,
}

/// Starts a process and hands its streams to `attach`; on any failure the
/// process is terminated and closed, and nothing is left behind.
pub(super) async fn spawn_process<H: Hcs>(
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

pub(super) async fn exec<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    process_id: &str,
    spec: &Process,
    with_stdin: bool,
    attach: StdioCallback,
) -> Result<u32> {
    const OP: &str = "exec";
    let ctr = inner.process_container(container_id, process_id, OP, Ok(()))?;
    if process_id == INIT_PROCESS_ID {
        // As on Linux: the id is in use, by the init process.
        return Err(Error::already_exists(format!(
            "the exec id {INIT_PROCESS_ID:?} is in use by the init process"
        ))
        .with_operation(OP)
        .with_container(container_id)
        .with_process(process_id));
    }
    let inner = inner.clone();
    let exec_id = process_id.to_owned();
    let spec = spec.clone();
    detached(OP, container_id, async move {
        let id = ctr.id.clone();
        let mut state = ctr.state.lock().await;
        if !state.accepts_execs() {
            // Never started, or its task deleted: there is no task to
            // run the exec in.
            return Err(Error::not_found("container is not running")
                .with_operation(OP)
                .with_container(&id)
                .with_process(&exec_id));
        }
        if !matches!(state.status(), Status::Running | Status::Paused) {
            return Err(
                Error::failed_precondition(format!("container is {}", state.status()))
                    .with_operation(OP)
                    .with_container(&id)
                    .with_process(&exec_id),
            );
        }
        if state.exec(&exec_id).is_some() {
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
        state.add_exec(exec_id.clone(), proc);
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

pub(super) async fn signal_process<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    process_id: &str,
    signal: i32,
) -> Result<()> {
    const OP: &str = "signal_process";
    let ctr = inner.process_container(container_id, process_id, OP, validate_signal(signal))?;
    let inner = inner.clone();
    let process_id = process_id.to_owned();
    detached(OP, container_id, async move {
        let id = ctr.id.clone();
        let state = ctr.state.lock().await;
        if process_id == INIT_PROCESS_ID {
            if !state.has_task() {
                return Err(not_running(&id, OP).with_process(&process_id));
            }
            if state.status() == Status::Stopped {
                return Err(Error::not_found("process already finished")
                    .with_operation(OP)
                    .with_container(&id)
                    .with_process(&process_id));
            }
            drop(state);
            let (op, result) = if signal == SIGKILL {
                let op = HcsOp::TerminateComputeSystem;
                (op, inner.hcs.terminate_compute_system(&ctr.system).await)
            } else {
                let op = HcsOp::ShutDownComputeSystem;
                (op, inner.hcs.shutdown_compute_system(&ctr.system).await)
            };
            match result {
                // Its exit notice follows (or came): the reaper reports it,
                // or, when none comes within the bound, that none came.
                Ok(()) => {}
                Err(e) if exits::system_stop_leaves_it_ended(e.hresult) => {}
                Err(e) => return Err(hcs_error(e, &id, op, OP).with_process(&process_id)),
            }
            ctr.system_exit
                .stop_requested(op, inner.settings.shutdown_timeout);
            Ok(())
        } else {
            let Some(p) = state.exec(&process_id) else {
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
                    Err(hcs_error(e, &id, HcsOp::TerminateProcess, OP).with_process(&process_id))
                }
            }
        }
    })
    .await
}

pub(super) async fn resize_terminal<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    process_id: &str,
    width: u32,
    height: u32,
) -> Result<()> {
    const OP: &str = "resize_terminal";
    let size = validate_terminal_size(width, height);
    let ctr = inner.process_container(container_id, process_id, OP, size)?;
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
    modify_process(inner, &ctr.id, process_id, &handle, &request, OP).await
}

pub(super) async fn close_stdin<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    process_id: &str,
) -> Result<()> {
    const OP: &str = "close_stdin";
    let ctr = inner.process_container(container_id, process_id, OP, Ok(()))?;
    let (handle, _) = process_handle(&ctr, process_id, OP).await?;
    modify_process(
        inner,
        &ctr.id,
        process_id,
        &handle,
        &ModifyProcessRequest::close_stdin(),
        OP,
    )
    .await
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
        state.live_init()
    } else {
        state.exec(process_id)
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

async fn modify_process<H: Hcs>(
    inner: &Inner<H>,
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
    inner
        .hcs
        .modify_process(handle, &document)
        .await
        .map_err(|e| {
            hcs_error(e, container_id, HcsOp::ModifyProcess, operation).with_process(process_id)
        })
}
