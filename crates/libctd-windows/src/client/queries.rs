//! What is asked of a container rather than done to its processes:
//! status, pause and resume (Hyper-V isolation only), statistics and
//! process lists (property queries), and the operations Windows lacks.

use std::path::Path;
use std::sync::Arc;

use libctd_core::{
    Error, EventInfo, EventType, INIT_PROCESS_ID, Resources, Result, Stats, Status, Summary,
    Version,
};

use super::{Inner, detached, hcs_error, not_running};
use crate::convert::{self, Isolation, PropertiesError};
use crate::hcs::{Hcs, HcsOp};
use crate::schema::{Properties, PropertyQuery};

pub(super) fn version() -> Result<Version> {
    Err(
        Error::not_implemented("version is not implemented on Windows: HCS has no version query")
            .with_operation("version"),
    )
}

pub(super) async fn status<H: Hcs>(inner: &Arc<Inner<H>>, container_id: &str) -> Result<Status> {
    let ctr = inner.container(container_id, "status")?;
    let state = ctr.state.lock().await;
    Ok(state.status())
}

pub(super) async fn pause_resume<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    pause: bool,
) -> Result<()> {
    let op: &'static str = if pause { "pause" } else { "resume" };
    let ctr = inner.container(container_id, op)?;
    if ctr.isolation != Isolation::HyperV {
        return Err(Error::not_implemented(format!(
            "{op} is only supported for Hyper-V isolated containers"
        ))
        .with_operation(op)
        .with_container(container_id));
    }
    let inner = inner.clone();
    detached(op, container_id, async move {
        let id = ctr.id.clone();
        let mut state = ctr.state.lock().await;
        let (from, event, hcs_op) = if pause {
            (
                Status::Running,
                EventType::Paused,
                HcsOp::PauseComputeSystem,
            )
        } else {
            (
                Status::Paused,
                EventType::Resumed,
                HcsOp::ResumeComputeSystem,
            )
        };
        if !state.has_task() {
            return Err(not_running(&id, op));
        }
        if state.status() != from {
            return Err(
                Error::failed_precondition(format!("container is {}", state.status()))
                    .with_operation(op)
                    .with_container(&id),
            );
        }
        // Hyper-V isolation: the utility VM is what pauses.
        let target = ctr.utility_vm.as_ref().map_or(&ctr.system, |u| &u.system);
        let result = if pause {
            inner.hcs.pause_compute_system(target).await
        } else {
            inner.hcs.resume_compute_system(target).await
        };
        match result {
            Ok(()) => {}
            Err(e) if e.hresult.is_pending() => {}
            Err(e) => return Err(hcs_error(e, &id, hcs_op, op)),
        }
        state.mark_paused(pause);
        let pid = state.init_pid();
        inner.emit(
            &ctr,
            event,
            EventInfo::new(id.clone(), INIT_PROCESS_ID).with_pid(pid),
        );
        Ok(())
    })
    .await
}

async fn query<H: Hcs>(
    inner: &Inner<H>,
    container_id: &str,
    operation: &'static str,
    query: &str,
) -> Result<Properties> {
    let ctr = inner.container(container_id, operation)?;
    {
        let state = ctr.state.lock().await;
        if !state.is_running() {
            return Err(not_running(container_id, operation));
        }
    }
    let asked = convert::system_properties(&*inner.hcs, &ctr.system, query).await;
    asked.map_err(|e| match e {
        PropertiesError::Refused(e) => hcs_error(
            e,
            container_id,
            HcsOp::GetComputeSystemProperties,
            operation,
        ),
        PropertiesError::Unreadable(e) => e.with_operation(operation).with_container(container_id),
    })
}

pub(super) async fn stats<H: Hcs>(inner: &Arc<Inner<H>>, container_id: &str) -> Result<Stats> {
    let props = query(inner, container_id, "stats", PropertyQuery::STATISTICS).await?;
    Ok(convert::stats(&props))
}

pub(super) async fn list_pids<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
) -> Result<Vec<u32>> {
    let props = query(
        inner,
        container_id,
        "list_pids",
        PropertyQuery::PROCESS_LIST,
    )
    .await?;
    Ok(convert::summary(&props).iter().map(Summary::pid).collect())
}

pub(super) async fn summary<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
) -> Result<Vec<Summary>> {
    let props = query(inner, container_id, "summary", PropertyQuery::PROCESS_LIST).await?;
    Ok(convert::summary(&props))
}

pub(super) async fn update_resources<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    _resources: &Resources,
) -> Result<()> {
    inner.container(container_id, "update_resources")?;
    Err(
        Error::not_implemented("updating resources is not implemented on Windows")
            .with_operation("update_resources")
            .with_container(container_id),
    )
}

pub(super) async fn create_checkpoint<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    _checkpoint_dir: &Path,
    _exit: bool,
) -> Result<()> {
    inner.container(container_id, "create_checkpoint")?;
    Err(
        Error::not_implemented("checkpoints are not supported on Windows")
            .with_operation("create_checkpoint")
            .with_container(container_id),
    )
}
