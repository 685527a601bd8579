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

#[cfg(test)]
pub(crate) use exit::KeptStatus;
use exit::lost;
pub(crate) use exit::{Lost, ShimExit};
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

/// Which round of asking the shims around a daemon start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Before the daemon is started.
    Before,
    /// While it starts.
    During,
    /// Once it answers.
    Last,
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
        let running = shim::tasks(daemon_state)
            .into_iter()
            .map(|task| {
                let pid = shim::init_pid(&task.bundle);
                (task, pid)
            })
            .collect();
        let mut watch = Watch { running };
        self.round(&mut watch, Round::Before).await;
        watch
    }

    /// While the daemon starts: asks the watched shims again, and records
    /// (and stops watching) those whose init stopped.
    pub(crate) async fn look_again(&self, watch: &mut Watch) {
        self.round(watch, Round::During).await;
    }

    /// Once the daemon answers (it has loaded its shims): a last round, in
    /// which a watched shim that is gone lost its exit to the start.
    pub(crate) async fn after_start(&self, mut watch: Watch) {
        self.round(&mut watch, Round::Last).await;
    }

    /// Asks every watched shim once; records what stopped or is gone, and
    /// keeps watching the rest unless it is the last round.
    async fn round(&self, watch: &mut Watch, round: Round) {
        let asked = ask_all(std::mem::take(&mut watch.running)).await;
        for (task, known, answer) in asked {
            match answer {
                Answer::Stopped(exit) => self.record(&task, exit),
                // Before the start: it died while containerd was down. During
                // and after: deleted as leaked by the loading daemon (its
                // process ended since it was last asked), or died.
                Answer::Gone => {
                    let why = match round {
                        Round::Before => Lost::ShimDied,
                        Round::During | Round::Last => Lost::Escaped,
                    };
                    if let Some(pid) = known {
                        self.record(&task, lost(pid, why));
                    }
                }
                // containerd kept it after the last round: it knows the task.
                Answer::Running { .. } | Answer::Unclear if round == Round::Last => {}
                Answer::Running { pid } => watch.running.push((task, Some(pid))),
                Answer::Unclear => watch.running.push((task, known)),
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

/// Asks every task's shim, [`ASK_AT_ONCE`] at a time; each answer comes
/// with what was passed along with its task.
async fn ask_all<T: Send + 'static>(tasks: Vec<(Task, T)>) -> Vec<(Task, T, Answer)> {
    let mut asks = tokio::task::JoinSet::new();
    let mut answers = Vec::with_capacity(tasks.len());
    let mut collect = |joined: Option<Result<(Task, T, Answer), tokio::task::JoinError>>| {
        if let Some(Ok(answer)) = joined {
            answers.push(answer);
        }
    };
    for (task, along) in tasks {
        if asks.len() >= ASK_AT_ONCE {
            collect(asks.join_next().await);
        }
        asks.spawn(async move {
            let answer = shim::ask(&task).await;
            (task, along, answer)
        });
    }
    while !asks.is_empty() {
        collect(asks.join_next().await);
    }
    answers
}

#[cfg(test)]
mod tests;
