//! Exit statuses kept by the runc shims across a containerd restart, kept
//! on disk until an engine claims them.
//!
//! containerd 1.7 and 2.x, while they start (before their gRPC socket
//! opens, so before any client can subscribe), load every shim of their
//! state directory; a shim whose container has no process left is deleted
//! as leaked, with its task, and no event says how the process ended: the
//! task is then simply not found. (1.6 keeps such a task, stopped, with its
//! status, until it is deleted.) A dead shim's bundle is removed too, on
//! every line, and its exit is published to nobody. The shim itself knows
//! its init's status until containerd deletes it, so the supervisor asks
//! every shim of the daemon's state directory before it starts a daemon,
//! and keeps asking those still running until the daemon answers
//! ([`Watch`]):
//!
//! - a stopped init: its status is recorded;
//! - a shim gone before the start (it died while containerd was down): its
//!   init, if it had one, is recorded as lost ([`Lost::ShimDied`]);
//! - a shim that answered "running" and is gone once the daemon answers:
//!   its process ended after it was last asked and containerd dropped the
//!   task while it loaded; recorded as lost ([`Lost::Escaped`]). Asking
//!   every few milliseconds makes this window small; it cannot be closed
//!   without stopping the containers while containerd starts.
//!
//! The records live under the libctd state directory (`exits/`, see
//! `records`), so an engine that restarts, or another process on the same
//! state directory, finds them. Reconciliation delivers a recorded exit when
//! containerd no longer knows a task this client tracked; `restore` answers
//! "not alive" for such a container, and `delete_task` answers with the
//! recorded status and removes the record (as 1.6 keeps a stopped task until
//! it is deleted). `create` and `delete` of the id remove any record left.
//!
//! Only init processes are recorded (a bundle does not list exec ids); an
//! exec of a container whose init still runs stays known to containerd.

mod exit;
mod records;
mod shim;

use std::path::{Path, PathBuf};

use exit::lost;
pub(crate) use exit::{KeptStatus, Lost, ShimExit};
use records::Records;
use shim::{Answer, Task};

/// The shims that were running when a daemon start began, asked again
/// until it answers. Made by [`ShimExits::before_start`].
#[derive(Debug, Default)]
#[must_use = "a watch must be ended with after_start once the daemon answers"]
pub(crate) struct Watch {
    /// Each task with its init's pid, as last known.
    running: Vec<(Task, Option<u32>)>,
}

/// The kept exits of one state directory.
#[derive(Debug)]
pub(crate) struct ShimExits {
    records: Records,
}

impl ShimExits {
    /// The exits kept in `dir` (under the libctd state directory).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            records: Records::new(dir),
        }
    }

    /// Before a daemon starts on `daemon_state` (containerd's `state`
    /// directory): asks every shim about its init, records the stopped ones
    /// and those whose shim is gone, and watches the others.
    pub(crate) async fn before_start(&self, daemon_state: &Path) -> Watch {
        let tasks = shim::tasks(daemon_state);
        let mut watch = Watch::default();
        for (task, answer) in ask_all(tasks).await {
            match answer {
                Answer::Stopped(exit) => self.record(&task, exit),
                Answer::Gone => {
                    if let Some(pid) = shim::init_pid(&task.bundle) {
                        self.record(&task, lost(pid, Lost::ShimDied));
                    }
                }
                Answer::Running { pid } => watch.running.push((task, Some(pid))),
                Answer::Unclear => {
                    let pid = shim::init_pid(&task.bundle);
                    watch.running.push((task, pid));
                }
            }
        }
        watch
    }

    /// While the daemon starts: asks the watched shims again, and records
    /// (and stops watching) those whose init stopped.
    pub(crate) async fn look_again(&self, watch: &mut Watch) {
        self.round(watch, false).await;
    }

    /// Once the daemon answers (it has loaded its shims): a last round, in
    /// which a watched shim that is gone lost its exit to the start.
    pub(crate) async fn after_start(&self, mut watch: Watch) {
        self.round(&mut watch, true).await;
    }

    async fn round(&self, watch: &mut Watch, last: bool) {
        let tasks = std::mem::take(&mut watch.running);
        let pids: std::collections::HashMap<(String, String), Option<u32>> = tasks
            .iter()
            .map(|(t, pid)| ((t.namespace.clone(), t.id.clone()), *pid))
            .collect();
        let asked = ask_all(tasks.into_iter().map(|(t, _)| t).collect()).await;
        for (task, answer) in asked {
            let known = pids
                .get(&(task.namespace.clone(), task.id.clone()))
                .copied()
                .flatten();
            match answer {
                Answer::Stopped(exit) => self.record(&task, exit),
                // Gone while containerd loads its shims: deleted as leaked
                // (its process ended since it was last asked), or died.
                Answer::Gone => {
                    if let Some(pid) = known {
                        self.record(&task, lost(pid, Lost::Escaped));
                    }
                }
                Answer::Running { pid } if !last => watch.running.push((task, Some(pid))),
                Answer::Unclear if !last => watch.running.push((task, known)),
                // containerd kept it: it knows the task from here on.
                Answer::Running { .. } | Answer::Unclear => {}
            }
        }
    }

    fn record(&self, task: &Task, exit: ShimExit) {
        tracing::debug!(namespace = %task.namespace, container_id = %task.id, status = ?exit.status, "keeping an init exit across the daemon's start");
        if let Err(e) = self.records.write(&task.namespace, &task.id, &exit) {
            tracing::warn!(namespace = %task.namespace, container_id = %task.id, error = %e, "cannot keep an init exit");
        }
    }

    /// The kept exit of a container's init process whose pid was `pid` (a
    /// record of an earlier task of the same id does not count). It is
    /// kept until [`take`](Self::take)n.
    pub(crate) fn get(&self, namespace: &str, container_id: &str, pid: u32) -> Option<ShimExit> {
        self.find(namespace, container_id)
            .filter(|exit| exit.pid == pid)
    }

    /// The kept exit of a container's init process, whatever its pid.
    pub(crate) fn find(&self, namespace: &str, container_id: &str) -> Option<ShimExit> {
        self.records.read(namespace, container_id)
    }

    /// Removes and returns the kept exit of a container's init process, if
    /// its pid is `pid` (any pid when `None`).
    pub(crate) fn take(
        &self,
        namespace: &str,
        container_id: &str,
        pid: Option<u32>,
    ) -> Option<ShimExit> {
        let exit = self
            .find(namespace, container_id)
            .filter(|exit| pid.is_none_or(|pid| pid == exit.pid))?;
        self.records.remove(namespace, container_id).then_some(exit)
    }

    /// (tests) Keeps `exit` for the id, as a daemon start would.
    #[cfg(test)]
    pub(crate) fn keep(&self, namespace: &str, container_id: &str, exit: ShimExit) {
        if let Err(e) = self.records.write(namespace, container_id, &exit) {
            panic!("cannot keep an exit: {e}");
        }
    }

    /// Removes whatever is kept for the id (a new container, or one deleted).
    pub(crate) fn forget(&self, namespace: &str, container_id: &str) {
        self.records.remove(namespace, container_id);
    }
}

/// How many shims are asked at once: a host with thousands of tasks gets
/// its answers in rounds, not thousands of sockets and tasks at a time.
const ASK_AT_ONCE: usize = 32;

/// Asks every task's shim, [`ASK_AT_ONCE`] at a time.
async fn ask_all(tasks: Vec<Task>) -> Vec<(Task, Answer)> {
    let mut asks = tokio::task::JoinSet::new();
    let mut answers = Vec::with_capacity(tasks.len());
    let mut collect = |joined: Option<Result<(Task, Answer), tokio::task::JoinError>>| {
        if let Some(Ok(answer)) = joined {
            answers.push(answer);
        }
    };
    for task in tasks {
        if asks.len() >= ASK_AT_ONCE {
            collect(asks.join_next().await);
        }
        asks.spawn(async move {
            let answer = shim::ask(&task).await;
            (task, answer)
        });
    }
    while !asks.is_empty() {
        collect(asks.join_next().await);
    }
    answers
}

#[cfg(test)]
mod tests;
