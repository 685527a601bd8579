//! The reapers: a process's exit, waited for by the rules of
//! [`exits`], becomes its exit event. The init's reaper also
//! shuts the compute system down and closes it (the path libcontainerd
//! settled on); every failure on the way makes the exit code unknown and is
//! chained into the event's error.

use std::sync::Arc;

use libctd_core::{Error, ErrorKind, EventInfo, EventType, INIT_PROCESS_ID, TaskExit};

use super::state::Container;
use super::{Inner, UNKNOWN_EXIT_CODE};
use crate::exits;
use crate::hcs::{Hcs, HcsOp};

impl<H: Hcs> Inner<H> {
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
    pub(super) async fn reap_init(
        self: Arc<Self>,
        ctr: Arc<Container<H>>,
        handle: H::Process,
        pid: u32,
    ) {
        let id = ctr.id.clone();
        let hcs = self.hcs.clone();
        let end = self.wait_and_close(&ctr, INIT_PROCESS_ID, &handle).await;
        let (exited_at, mut exit_code, mut chain) = (end.exited_at, end.exit_code, end.errors);

        // Stopped, and anyone waiting on that woken, before the shutdown.
        ctr.state
            .lock()
            .await
            .mark_exited(TaskExit::new(exit_code, exited_at));

        let update_pending = exit_code == 0
            && !ctr.servicing
            && exits::update_pending(&*hcs, &ctr.system, &id, self.settings.update_query_timeout)
                .await;

        // A system that exited already needs no shutdown (and its exit was
        // read by the rules of `exits`); one that never answered our stop
        // would not answer another: closing its last handle ends it.
        let shutdown = if end.system_exited || end.unanswered {
            Ok(())
        } else {
            self.shutdown_system(&id, &ctr.system).await
        };
        if let Err(e) = shutdown {
            exit_code = UNKNOWN_EXIT_CODE;
            tracing::warn!(container_id = %id, error = %e.report(), "failed to shutdown container");
            chain.push(failed_step("failed to shutdown container", e));
        }
        if let Err(e) = hcs.close_compute_system(&ctr.system).await {
            exit_code = UNKNOWN_EXIT_CODE;
            let e = e.into_error(&id, HcsOp::CloseComputeSystem.name());
            tracing::error!(container_id = %id, error = %e.report(), "failed to clean hcs container resources");
            chain.push(failed_step("failed to terminate container", e));
        }
        if let Err(e) = self.release_utility_vm(&id, ctr.utility_vm.as_ref()).await {
            exit_code = UNKNOWN_EXIT_CODE;
            chain.push(failed_step("failed to terminate utility VM", e));
        }
        if let Err(e) = self.release_namespace(&id, ctr.namespace.as_deref()).await {
            exit_code = UNKNOWN_EXIT_CODE;
            chain.push(failed_step("failed to delete the network namespace", e));
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
        ctr.reaped.mark();
    }

    /// Reaps an exec: its exit event, then its removal in the same queue slot.
    pub(super) async fn reap_exec(
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
            let removed = cleanup_ctr.state.lock().await.remove_exec(&exec_id);
            if let Some(p) = removed {
                p.release(drain).await;
            }
        };
        if ctr.servicing {
            cleanup.await;
        } else {
            self.events.dispatch_then(EventType::Exit, info, cleanup);
        }
    }
}

/// A failed clean-up step after the exit: `e` under `what` (keeping its
/// kind, and `e` as the source).
fn failed_step(what: &str, e: Error) -> Error {
    Error::new(e.kind(), format!("{what}: {}", e.message())).with_source(e)
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
