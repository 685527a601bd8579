//! The operations that read or adjust a running task: version, status,
//! pause and resume, stats, process lists, resource updates, checkpoints
//! (and the CRIU diagnosis that checkpoint and restore share).

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use containerd_client::services::v1::{CheckpointTaskRequest, UpdateTaskRequest};
use libctd_core::{
    Error, ErrorKind, LinuxProcess, PlatformStats, Resources, Result, Stats, Status, Summary,
    Version,
};

use crate::convert::{self, status_error};
use crate::session::Session;

/// containerd's version.
pub(crate) async fn version(s: &Session) -> Result<Version> {
    let r = s.conn.api.version().await.map_err(status_error)?;
    Ok(Version::new(r.version, r.revision))
}

/// The status of a container's task (NotFound without one).
pub(crate) async fn task_status(s: &Session, id: &str) -> Result<Status> {
    match s.conn.api.get(id, "").await {
        Ok(r) => Ok(r
            .process
            .map_or(Status::Unknown, |p| convert::status_from_proto(p.status))),
        Err(st) if st.code() == tonic::Code::NotFound => {
            Err(Error::not_found("container is not running").with_source(st))
        }
        Err(st) => Err(status_error(st)),
    }
}

/// The status of a tracked container's task ("no such task" without one).
pub(crate) async fn status(s: &Session, container_id: &str) -> Result<Status> {
    s.get(container_id)?;
    task_status(s, container_id)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => e.with_message("no such task"),
            _ => e,
        })
}

/// Pauses a running task.
pub(crate) async fn pause(s: &Session, container_id: &str) -> Result<()> {
    s.get_with_task(container_id)?;
    let status = task_status(s, container_id).await?;
    if status != Status::Running {
        return Err(Error::failed_precondition(format!(
            "the container is {status}, not running"
        )));
    }
    s.conn.api.pause(container_id).await.map_err(status_error)
}

/// Resumes a paused task.
pub(crate) async fn resume(s: &Session, container_id: &str) -> Result<()> {
    s.get_with_task(container_id)?;
    let status = task_status(s, container_id).await?;
    if status != Status::Paused {
        return Err(Error::failed_precondition(format!(
            "the container is {status}, not paused"
        )));
    }
    s.conn.api.resume(container_id).await.map_err(status_error)
}

/// The task's cgroup metrics.
pub(crate) async fn stats(s: &Session, container_id: &str) -> Result<Stats> {
    s.get_with_task(container_id)?;
    let metrics = s
        .conn
        .api
        .metrics(vec![format!("id=={container_id}")])
        .await
        .map_err(status_error)?;
    let metric = metrics
        .into_iter()
        .find(|m| m.id == container_id)
        .ok_or_else(|| Error::not_found("no metrics: container is not running"))?;
    let data = metric
        .data
        .ok_or_else(|| Error::system("containerd sent metrics without data"))?;
    Ok(Stats::new(
        convert::time_from_proto(metric.timestamp.as_ref()).unwrap_or_else(SystemTime::now),
        PlatformStats::Linux(convert::decode_metrics(&data)?),
    ))
}

/// The task's processes.
pub(crate) async fn summary(s: &Session, container_id: &str) -> Result<Vec<Summary>> {
    s.get_with_task(container_id)?;
    let procs = s
        .conn
        .api
        .list_pids(container_id)
        .await
        .map_err(status_error)?;
    Ok(procs
        .into_iter()
        .map(|p| {
            let exec_id = convert::exec_id_of(p.info.as_ref());
            Summary::Linux(LinuxProcess::new(p.pid, exec_id))
        })
        .collect())
}

/// Updates the task's resources.
pub(crate) async fn update_resources(
    s: &Session,
    container_id: &str,
    resources: &Resources,
) -> Result<()> {
    s.get_with_task(container_id)?;
    let Resources::Linux(r) = resources else {
        return Err(Error::invalid_argument(
            "only Linux resources apply to a Linux container",
        ));
    };
    let any = convert::json_any(convert::RESOURCES_TYPE_URL, r)?;
    let req = UpdateTaskRequest {
        container_id: container_id.to_owned(),
        resources: Some(any),
        annotations: HashMap::new(),
    };
    s.conn.api.update(req).await.map_err(status_error)
}

/// Checkpoints the task through CRIU into `checkpoint_dir`.
pub(crate) async fn create_checkpoint(
    s: &Session,
    container_id: &str,
    checkpoint_dir: &Path,
    exit: bool,
) -> Result<()> {
    let c = s.get_with_task(container_id)?;
    if !checkpoint_dir.is_absolute() {
        return Err(Error::invalid_argument(format!(
            "checkpoint directory {} must be absolute",
            checkpoint_dir.display()
        )));
    }
    if crate::runc::is_runsc(&c.runc.binary_name) {
        // Its `checkpoint --leave-running` never returns (seen with the
        // 20221219 release): refused rather than hung, and a checkpoint
        // with exit alone would be one the runc shim cannot restore.
        return Err(Error::not_implemented(
            "checkpoints of containers on gVisor's runsc are not supported through the runc shim",
        ));
    }
    let options = convert::CheckpointOptionsProto {
        exit,
        image_path: checkpoint_dir.to_string_lossy().into_owned(),
        ..Default::default()
    };
    // CRIU takes as long as the image needs: no RPC deadline.
    let req = CheckpointTaskRequest {
        container_id: container_id.to_owned(),
        parent_checkpoint: String::new(),
        options: Some(convert::proto_any(&options)),
    };
    match s.conn.api.checkpoint(req).await {
        Ok(()) => Ok(()),
        Err(st) => Err(criu_error(status_error(st), "checkpoint").await),
    }
}

/// Whether CRIU can run here (`criu check`), with its complaint if not.
async fn criu_problem() -> Option<String> {
    match tokio::process::Command::new("criu")
        .arg("check")
        .output()
        .await
    {
        Err(e) => Some(format!("CRIU is not installed ({e})")),
        Ok(out) if !out.status.success() => {
            let text = String::from_utf8_lossy(&out.stderr);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Some(format!("`criu check` fails on this host: {}", last.trim()))
        }
        Ok(_) => None,
    }
}

/// The classified error of a failed CRIU operation: `NotImplemented` naming
/// CRIU where it cannot run, else containerd's error with CRIU named.
pub(crate) async fn criu_error(e: Error, what: &str) -> Error {
    match criu_problem().await {
        Some(problem) => Error::not_implemented(format!(
            "{what} needs CRIU, which cannot run here: {problem}"
        ))
        .with_source(e),
        None => {
            let msg = format!("{what} through CRIU failed: {}", e.message());
            e.with_message(msg)
        }
    }
}
