//! Figures and settings of a running container: stats, pids, summary,
//! resources, checkpoints, version.

use libctd_core::{Result, Status};

use super::{Harness, Program};

/// stats of a running container, or the platform's error.
pub(crate) async fn stats_running(h: &Harness) -> Result<()> {
    let id = "busy";
    h.run(id, &Program::Sleep, false, false).await?;
    let stats = h.client().stats(id).await;
    h.check_support("stats", h.caps().stats, stats);
    h.kill_and_remove(id).await
}

/// The init's pid where list_pids and summary report it: the pid start
/// returned, or 1 in a sandbox's own kernel (which does not know the host's).
fn init_pid_listed(h: &Harness, start_pid: u32, listed: &[u32]) {
    if h.caps().sandbox_pids {
        assert!(
            listed.contains(&1) && !listed.contains(&start_pid),
            "{listed:?}: a sandbox lists its own init (1), not the host's pid {start_pid}"
        );
    } else {
        assert!(
            listed.contains(&start_pid),
            "{listed:?} lacks init pid {start_pid}"
        );
    }
}

/// list_pids of a running container includes the init pid.
pub(crate) async fn list_pids_running(h: &Harness) -> Result<()> {
    let id = "busy";
    let started = h.run(id, &Program::Sleep, false, false).await?;
    let pids = h.client().list_pids(id).await;
    if let Some(pids) = h.check_support("list_pids", h.caps().list_pids, pids) {
        init_pid_listed(h, started.pid, &pids);
    }
    h.kill_and_remove(id).await
}

/// summary of a running container has an entry for the init process.
pub(crate) async fn summary_running(h: &Harness) -> Result<()> {
    let id = "busy";
    let started = h.run(id, &Program::Sleep, false, false).await?;
    let summary = h.client().summary(id).await;
    if let Some(summary) = h.check_support("summary", h.caps().summary, summary) {
        let pids: Vec<u32> = summary.iter().map(|s| s.pid()).collect();
        init_pid_listed(h, started.pid, &pids);
    }
    h.kill_and_remove(id).await
}

/// update_resources of a running container, or the platform's error; the
/// container keeps running either way.
pub(crate) async fn update_resources_running(h: &Harness) -> Result<()> {
    let id = "busy";
    h.run(id, &Program::Sleep, false, false).await?;
    let r = h
        .client()
        .update_resources(id, &h.fixture().resources())
        .await;
    h.check_support("update_resources", h.caps().update_resources, r);
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.kill_and_remove(id).await
}

/// A checkpoint that leaves the container running, or the platform's error.
pub(crate) async fn checkpoint_running(h: &Harness) -> Result<()> {
    let id = "busy";
    h.run(id, &Program::Sleep, false, false).await?;
    let dir = h.fixture().checkpoint_dir();
    let r = h.client().create_checkpoint(id, &dir, false).await;
    if h.check_support("create_checkpoint", h.caps().checkpoint, r)
        .is_some()
    {
        assert!(dir.is_dir(), "no checkpoint directory at {}", dir.display());
    }
    assert_eq!(h.client().status(id).await?, Status::Running);
    let _ = std::fs::remove_dir_all(&dir);
    h.kill_and_remove(id).await
}

/// A checkpoint with exit stops the container (where supported).
pub(crate) async fn checkpoint_exit(h: &Harness) -> Result<()> {
    let id = "busy";
    h.run(id, &Program::Sleep, false, false).await?;
    let dir = h.fixture().checkpoint_dir();
    let r = h.client().create_checkpoint(id, &dir, true).await;
    if h.check_support("create_checkpoint", h.caps().checkpoint, r)
        .is_some()
    {
        h.wait_exit(id).await?;
        assert_eq!(h.client().status(id).await?, Status::Stopped);
    }
    let _ = std::fs::remove_dir_all(&dir);
    h.discard(id).await
}

/// version answers a non-empty version, or the platform's error.
pub(crate) async fn version(h: &Harness) -> Result<()> {
    let v = h.client().version().await;
    if let Some(v) = h.check_support("version", h.caps().version, v) {
        assert!(!v.version.is_empty(), "empty version {v:?}");
    }
    Ok(())
}
