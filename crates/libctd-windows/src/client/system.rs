//! Stopping compute systems: shut down (falling back to terminate),
//! terminate, wait for the exit notice with the shutdown timeout.

use libctd_core::{Error, Result};

use super::Inner;
use crate::exits;
use crate::hcs::{Hcs, HcsOp, SystemExit};

impl<H: Hcs> Inner<H> {
    /// Waits, at most the shutdown timeout, for the compute system's exit
    /// notification after a `requested` shutdown or terminate.
    pub(super) async fn wait_system_exit(
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
    pub(super) async fn terminate_system(&self, ctr_id: &str, system: &H::System) -> Result<()> {
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
    pub(super) async fn shutdown_system(&self, ctr_id: &str, system: &H::System) -> Result<()> {
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
}
