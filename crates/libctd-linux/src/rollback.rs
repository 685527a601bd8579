//! Rollback of what a failed operation may have left in containerd.
//!
//! A create, start or exec that fails part-way (containerd died, the call
//! timed out, runc refused) may leave a container record, a task, an exec
//! process, or an image-backed container's snapshot and the lease it was
//! prepared under behind, which would make the id unusable ("already
//! exists") and leak a shim, runc state, cgroups and storage. The failing operation removes it at
//! once; when containerd cannot be reached for that, the rollback is
//! remembered and completed before the id is used again (create, start,
//! exec, delete) and as soon as the event stream is back (reconcile).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use containerd_client::services::v1::KillRequest;
use libctd_core::{Error, ErrorKind, Result};

use crate::conn::Conn;
use crate::convert::{made_by_transport, status_error};
use crate::state::RootSnapshot;

/// How long a rollback waits for a killed process to stop before it can be
/// deleted.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// One change to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rollback {
    /// The container record (a create whose outcome is unknown).
    Container,
    /// The container's task (a failed start).
    Task,
    /// An exec process (a failed exec).
    Exec(String),
    /// The snapshot a container from an image runs on (a failed create,
    /// or a delete that could not remove it).
    Snapshot(RootSnapshot),
    /// The lease, by id, a create prepared a container's snapshot under
    /// (the record holds the snapshot, or the create failed).
    Lease(String),
}

/// Whether `e` means containerd was not reached, so that what was asked
/// may or may not have happened: the call's deadline passed, or the
/// transport failed (`status_error` made it `Unavailable`). containerd's
/// own `Unavailable` (a dead shim's "ttrpc: closed") is an answer, not this.
pub(crate) fn unreachable(e: &Error) -> bool {
    match e.kind() {
        ErrorKind::DeadlineExceeded => true,
        ErrorKind::Unavailable => std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<tonic::Status>())
            .is_some_and(made_by_transport),
        _ => false,
    }
}

/// The rollbacks of one client that could not reach containerd yet.
pub(crate) struct Rollbacks {
    conn: Conn,
    /// Rollbacks that could not reach containerd, by container id.
    pending: Mutex<HashMap<String, Vec<Rollback>>>,
    /// Serialises the completion of remembered rollbacks.
    settling: tokio::sync::Mutex<()>,
}

impl Rollbacks {
    /// None remembered yet.
    pub(crate) fn new(conn: Conn) -> Self {
        Self {
            conn,
            pending: Mutex::new(HashMap::new()),
            settling: tokio::sync::Mutex::new(()),
        }
    }

    fn lock_pending(&self) -> MutexGuard<'_, HashMap<String, Vec<Rollback>>> {
        crate::sync::lock(&self.pending)
    }

    /// Undoes `change` of container `id` now, or leaves it remembered for
    /// later when containerd cannot be reached. It is remembered before it is
    /// tried, so that a concurrent use of the id waits for it (`settle`).
    pub(crate) async fn roll_back(&self, id: &str, change: Rollback) {
        self.lock_pending()
            .entry(id.to_owned())
            .or_default()
            .push(change);
        if let Err(e) = self.complete(id, false).await {
            tracing::warn!(container_id = id, error = %e, "rollback deferred until containerd answers");
        }
    }

    /// Completes the remembered rollbacks of container `id`. Fails (with the
    /// kind of what failed: `Unavailable` or `DeadlineExceeded`) while
    /// containerd still cannot be reached, so that the id is not used on top
    /// of what is left.
    pub(crate) async fn settle(&self, id: &str) -> Result<()> {
        if !self.lock_pending().contains_key(id) {
            return Ok(());
        }
        self.complete(id, true).await
    }

    /// Undoes the remembered changes of `id`, one caller at a time; a
    /// `deferred` completion may also clear a bundle containerd lost.
    async fn complete(&self, id: &str, deferred: bool) -> Result<()> {
        let _one_at_a_time = self.settling.lock().await;
        let changes = self.lock_pending().get(id).cloned().unwrap_or_default();
        for change in &changes {
            if let Err(e) = self.undo(id, change, deferred).await {
                let msg = format!(
                    "an earlier failed operation left state in containerd that cannot be removed yet: {}",
                    e.message()
                );
                return Err(e.with_message(msg));
            }
            let mut pending = self.lock_pending();
            if let Some(list) = pending.get_mut(id) {
                list.retain(|c| c != change);
                if list.is_empty() {
                    pending.remove(id);
                }
            }
        }
        Ok(())
    }

    /// Completes every remembered rollback that containerd now allows.
    pub(crate) async fn settle_all(&self) {
        let ids: Vec<String> = self.lock_pending().keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.settle(&id).await {
                tracing::debug!(container_id = %id, error = %e, "rollback still pending");
            }
        }
    }

    /// Undoes one change. Errs only when containerd was not reached; any
    /// other failure is logged and the change counted as undone, so that a
    /// refusal cannot make the id unusable for ever.
    async fn undo(&self, id: &str, change: &Rollback, deferred: bool) -> Result<()> {
        let result = match change {
            Rollback::Container => self
                .conn
                .api
                .delete_container(id)
                .await
                .map_err(status_error),
            Rollback::Task => match self.kill_and_delete(id, "").await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if deferred {
                        self.remove_stale_bundle(id).await;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Rollback::Exec(exec_id) => self.kill_and_delete(id, exec_id).await,
            Rollback::Snapshot(snapshot) => match self.conn.store() {
                Ok(store) => store
                    .snapshot_remove(&snapshot.snapshotter, &snapshot.key)
                    .await
                    .map_err(status_error),
                Err(_) => Ok(()),
            },
            Rollback::Lease(lease) => match self.conn.store() {
                Ok(store) => store.lease_delete(lease, false).await.map_err(status_error),
                Err(_) => Ok(()),
            },
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if unreachable(&e) => Err(e),
            Err(e) => {
                tracing::warn!(container_id = id, ?change, error = %e.report(), "rollback refused; giving up on it");
                Ok(())
            }
        }
    }

    /// Removes what an interrupted task create left in an embedded daemon's
    /// state when containerd itself no longer knows the task: containerd
    /// 1.6 leaves a bundle whose shim never wrote its `runtime` file (it
    /// cannot clean it up at restart), and the id can never start again.
    /// Its runc container, if runc got that far, is deleted by force.
    async fn remove_stale_bundle(&self, id: &str) {
        let Some(root) = &self.conn.shared.bundle_root else {
            return;
        };
        let bundle = root.join(&self.conn.namespace).join(id);
        // A shim that got as far as its address or pid file is containerd's
        // to clean up; only a bundle without either is lost.
        if !bundle.exists() || bundle.join("address").exists() || bundle.join("shim.pid").exists() {
            return;
        }
        tracing::warn!(container_id = id, bundle = %bundle.display(), "removing a task bundle containerd lost");
        let runc_root = self.conn.shared.runc_root.join(&self.conn.namespace);
        if runc_root.join(id).exists() {
            let forced = tokio::process::Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "--force", id])
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(STOP_WAIT, forced).await {
                Ok(Ok(out)) if out.status.success() => {}
                other => {
                    tracing::warn!(container_id = id, result = ?other.map(|r| r.map(|o| o.status)), "runc delete --force failed")
                }
            }
        }
        // The shim's work directory, only where containerd puts it.
        if let Ok(work) = std::fs::read_link(bundle.join("work"))
            && work.ends_with(Path::new(&self.conn.namespace).join(id))
            && work
                .components()
                .any(|c| c.as_os_str() == "io.containerd.runtime.v2.task")
        {
            let _ = std::fs::remove_dir_all(work);
        }
        if let Err(e) = std::fs::remove_dir_all(&bundle) {
            tracing::warn!(container_id = id, error = %e, "cannot remove a lost task bundle");
        }
    }

    /// SIGKILLs a task (`exec_id` "") or exec and deletes it once stopped.
    async fn kill_and_delete(&self, id: &str, exec_id: &str) -> Result<()> {
        let kill = KillRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
            signal: 9,
            all: exec_id.is_empty(),
        };
        if let Err(e) = self.conn.api.kill(kill).await.map_err(status_error)
            && unreachable(&e)
        {
            return Err(e);
        }
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        let mut pause = Duration::from_millis(10);
        loop {
            let deleted = if exec_id.is_empty() {
                self.conn.api.delete_task(id).await.map(drop)
            } else {
                self.conn.api.delete_process(id, exec_id).await.map(drop)
            };
            match deleted.map_err(status_error) {
                // Killed but not yet reaped: ask again shortly.
                Err(e)
                    if e.kind() == ErrorKind::FailedPrecondition
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }
}
