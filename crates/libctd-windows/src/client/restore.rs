//! Restore: Windows cannot re-attach to a container's processes, so
//! whatever HCS still runs of it is terminated, and the answer is always
//! "not alive". What HCS cannot tell (a utility VM's scratch, the HNS
//! namespace) is released from the client's record of it, if kept.

use std::sync::Arc;

use libctd_core::{Restored, Result, StdioCallback, validate_container_id};

use super::{Inner, detached, hcs_error, lock, not_found};
use crate::convert;
use crate::hcs::{Hcs, HcsOp};

pub(super) async fn restore<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    _attach: StdioCallback,
) -> Result<Restored> {
    validate_container_id(container_id).map_err(|e| e.with_operation("restore"))?;
    let tracked = lock(&inner.containers).get(container_id).cloned();
    let inner = inner.clone();
    let id = container_id.to_owned();
    // A re-attach is not possible on Windows: whatever HCS still runs is
    // shot, and the answer is always "not alive"; the stdio callback is
    // never called. A tracked container's exit then arrives as usual.
    detached("restore", container_id, async move {
        if let Some(ctr) = tracked {
            let state = ctr.state.lock().await;
            // A stopped container's compute system is being (or was)
            // shut down and closed by its reaper. Otherwise it stays open
            // while the lock is held: the reaper closes it only after it
            // recorded the exit, under this lock.
            if !state.has_exited() {
                inner
                    .terminate_system(&id, &ctr.system)
                    .await
                    .map_err(|e| e.with_operation("restore"))?;
            }
            drop(state);
            return Ok(Restored::new(false, None));
        }
        match inner.hcs.open_compute_system(&inner.system_id(&id)).await {
            Ok(system) => {
                let terminated = inner.terminate_system(&id, &system).await;
                if let Err(e) = inner.hcs.close_compute_system(&system).await {
                    tracing::warn!(container_id = %id, error = %e, "closing a restored compute system");
                }
                terminated.map_err(|e| e.with_operation("restore"))?;
                release_rest(&inner, &id, "restore").await?;
                Ok(Restored::new(false, None))
            }
            Err(e) if e.hresult.is_not_exist() => {
                // The engine may have died before the container's system
                // was made, or it died: what was recorded still goes.
                if inner.recorded(&id).await?.is_some() {
                    release_rest(&inner, &id, "restore").await?;
                }
                Err(not_found(&id, "restore"))
            }
            Err(e) => Err(hcs_error(e, &id, HcsOp::OpenComputeSystem, "restore")),
        }
    })
    .await
}

/// Releases what a container whose compute system is gone left: its
/// utility VM (terminated), then what was recorded of it (the VM's
/// scratch and grants, the namespace), then the record.
async fn release_rest<H: Hcs>(inner: &Inner<H>, id: &str, op: &'static str) -> Result<()> {
    let uvm_id = convert::utility_vm_id(&inner.system_id(id));
    if let Ok(uvm) = inner.hcs.open_compute_system(&uvm_id).await {
        let uvm = super::hyperv::UtilityVm::opened(uvm, uvm_id.clone());
        inner
            .release_utility_vm(id, Some(&uvm))
            .await
            .map_err(|e| e.with_operation(op))?;
    }
    if let Some(leftovers) = inner.recorded(id).await? {
        inner
            .release_leftovers(id, &uvm_id, &leftovers)
            .await
            .map_err(|e| e.with_operation(op))?;
        inner.forget(id).await;
    }
    Ok(())
}

/// Deletes a container the client does not track but has a record of (a
/// restore after an engine restart could not release all of it): its
/// compute system, if HCS still has it, is terminated; then the rest goes.
/// `None` when there is no record (the container is unknown).
pub(super) async fn delete_recorded<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
) -> Option<Result<()>> {
    const OP: &str = "delete";
    match inner.recorded(container_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return None,
        Err(e) => return Some(Err(e.with_operation(OP))),
    }
    let inner = inner.clone();
    let id = container_id.to_owned();
    Some(
        detached(OP, container_id, async move {
            if let Ok(system) = inner.hcs.open_compute_system(&inner.system_id(&id)).await {
                let terminated = inner.terminate_system(&id, &system).await;
                if let Err(e) = inner.hcs.close_compute_system(&system).await {
                    tracing::warn!(container_id = %id, error = %e, "closing a recorded compute system");
                }
                terminated.map_err(|e| e.with_operation(OP))?;
            }
            release_rest(&inner, &id, OP).await
        })
        .await,
    )
}
