//! The fake's queries and updates of a running container: stats, pids,
//! summary, status, and resource updates.

use std::time::SystemTime;

use libctd_core::{
    Error, LinuxProcess, LinuxStats, PlatformStats, Resources, Result, Stats, Status, Summary,
};

use super::FakeClient;
use super::state::{Task, container, container_mut};
use crate::fake::Op;

pub(super) async fn stats(client: &FakeClient, container_id: &str) -> Result<Stats> {
    client
        .operate(Op::Stats, container_id, None, Ok(()), |cs| {
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

pub(super) async fn list_pids(client: &FakeClient, container_id: &str) -> Result<Vec<u32>> {
    client
        .operate(Op::ListPids, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?.task()?;
            Ok(running_pids(task).into_iter().map(|(pid, _)| pid).collect())
        })
        .await
}

pub(super) async fn summary(client: &FakeClient, container_id: &str) -> Result<Vec<Summary>> {
    client
        .operate(Op::Summary, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?.task()?;
            Ok(running_pids(task)
                .into_iter()
                .map(|(pid, exec_id)| Summary::Linux(LinuxProcess::new(pid, exec_id)))
                .collect())
        })
        .await
}

pub(super) async fn status(client: &FakeClient, container_id: &str) -> Result<Status> {
    client
        .operate(Op::Status, container_id, None, Ok(()), |cs| {
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

pub(super) async fn update_resources(
    client: &FakeClient,
    container_id: &str,
    resources: &Resources,
) -> Result<()> {
    client
        .operate(Op::UpdateResources, container_id, None, Ok(()), |cs| {
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
