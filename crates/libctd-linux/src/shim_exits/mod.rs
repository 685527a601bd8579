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
//! every shim of the daemon's state directory before it starts a daemon
//! ([`Watch`]), and, until the daemon answers, waits on those still running
//! (the shim's `Wait`, answered as soon as the shim reaps the process,
//! which is before containerd can find the container empty):
//!
//! - a stopped init: its status is recorded;
//! - a shim gone before the start (it died while containerd was down): its
//!   init, if it had one, is recorded as lost ([`Lost::ShimDied`]);
//! - a shim that closes a wait without answering, or (beyond the number of
//!   waits the process's file limit allows, which are asked again every few
//!   milliseconds instead) that answered "running" and is gone once the
//!   daemon answers: recorded as lost ([`Lost::Escaped`]).
//!
//! The records live under the libctd state directory (`exits/`, see
//! `records`), so an engine that restarts, or another process on the same
//! state directory, finds them. Reconciliation delivers a recorded exit when
//! containerd no longer knows a task this client tracked; `restore` answers
//! "not alive" for such a container, and `delete_task` answers with the
//! recorded status and removes the record (as 1.6 keeps a stopped task until
//! it is deleted). `create` and `delete` of the id remove any record left.
//!
//! Execs are not listed in a bundle: the clients say which they track
//! (`track_exec`), and while a daemon starts their shims are waited on too.
//! An exec's status is kept in memory only, for the client that tracks it
//! (an engine that restarts does not restore execs).

mod exit;
mod records;
mod shim;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::sync::lock;

#[cfg(test)]
pub(crate) use exit::KeptStatus;
use exit::lost;
pub(crate) use exit::{Lost, ShimExit};
use records::Records;
use shim::{Answer, Task};

/// The shims that were running when a daemon start began, waited on (or
/// asked again) until it answers. Made by [`ShimExits::before_start`];
/// dropping it ends the waits.
#[derive(Debug, Default)]
#[must_use = "a watch must be ended with after_start once the daemon answers"]
pub(crate) struct Watch {
    /// Each task asked again every round, with its init's pid as last known.
    running: Vec<(Task, Option<u32>)>,
    /// The waits on the others: each ends with the init's end, or without
    /// an answer once `closing` is cancelled.
    waits: tokio::task::JoinSet<Waited>,
    closing: tokio_util::sync::CancellationToken,
}

/// How a wait ended: the answer, or none when the watch ended first.
type Waited = (Task, Option<String>, u32, Option<Answer>);

impl Watch {
    /// Waits on a process of `task` (the init without `exec_id`) whose pid
    /// is `pid` from now on.
    fn wait_on(&mut self, task: Task, exec_id: Option<String>, pid: u32) {
        let closing = self.closing.clone();
        self.waits.spawn(async move {
            let wire_id = exec_id.as_deref().unwrap_or_default();
            let answer = tokio::select! {
                // An answer already there is taken, even once closing.
                biased;
                answer = shim::wait(&task, wire_id, pid) => Some(answer),
                () = closing.cancelled() => None,
            };
            (task, exec_id, pid, answer)
        });
    }
}

/// How many shims are waited on at once: a quarter of the process's file
/// limit (each wait holds a socket while the daemon starts), within
/// 32..=4096; the rest are asked again every round.
fn wait_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (soft / 4).clamp(32, 4096)
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
    /// The execs clients track, by (namespace, container id): exec id and
    /// pid. Their shims are waited on too while a daemon starts, so that
    /// the execs of a task containerd drops as it loads keep their status.
    execs: Mutex<HashMap<(String, String), HashMap<String, u32>>>,
    /// Exec exits read while a daemon started, for the client that tracks
    /// them (in memory: an engine restart does not restore execs).
    exec_exits: Mutex<HashMap<(String, String, String), ShimExit>>,
    /// How many shims are waited on at once ([`wait_budget`]).
    wait_budget: usize,
}

impl ShimExits {
    /// The exits kept in `dir` (under the libctd state directory).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            records: Records::new(dir),
            execs: Mutex::default(),
            exec_exits: Mutex::default(),
            wait_budget: wait_budget(),
        }
    }

    /// Before a daemon starts on `daemon_state` (containerd's `state`
    /// directory): asks every shim about its init, records the stopped ones
    /// and those whose shim is gone, and watches the others.
    pub(crate) async fn before_start(&self, daemon_state: &Path) -> Watch {
        let tasks = shim::tasks(daemon_state);
        let running = tasks
            .iter()
            .cloned()
            .map(|task| {
                let pid = shim::init_pid(&task.bundle);
                (task, pid)
            })
            .collect();
        let mut watch = Watch {
            running,
            ..Watch::default()
        };
        self.round(&mut watch, Round::Before).await;
        // Those running with a known pid are waited on, as many as the
        // budget allows; the others stay asked every round.
        let budget = self.wait_budget;
        let mut polled = Vec::new();
        for (task, pid) in std::mem::take(&mut watch.running) {
            match pid {
                Some(pid) if watch.waits.len() < budget => watch.wait_on(task, None, pid),
                _ => polled.push((task, pid)),
            }
        }
        watch.running = polled;
        // The tracked execs of every task, whatever its init did (a wait
        // on one that ended answers at once).
        for task in tasks {
            let key = (task.namespace.clone(), task.id.clone());
            let execs = lock(&self.execs).get(&key).cloned().unwrap_or_default();
            for (exec_id, pid) in execs {
                if watch.waits.len() < budget {
                    watch.wait_on(task.clone(), Some(exec_id), pid);
                }
            }
        }
        watch
    }

    /// While the daemon starts: records the waits that ended, asks the
    /// polled shims again, and records (and stops watching) those whose
    /// init stopped.
    pub(crate) async fn look_again(&self, watch: &mut Watch) {
        while let Some(ended) = watch.waits.try_join_next() {
            self.waited(watch, ended, Round::During);
        }
        self.round(watch, Round::During).await;
    }

    /// Once the daemon answers (it has loaded its shims): the waits end
    /// (an answer already given is recorded), and a last round, in which a
    /// polled shim that is gone lost its exit to the start.
    pub(crate) async fn after_start(&self, mut watch: Watch) {
        watch.closing.cancel();
        while let Some(ended) = watch.waits.join_next().await {
            self.waited(&mut watch, ended, Round::Last);
        }
        self.round(&mut watch, Round::Last).await;
    }

    /// Records how a wait ended: a status, or lost when the shim went
    /// without answering; an unclear answer is asked again by polling.
    fn waited(
        &self,
        watch: &mut Watch,
        ended: Result<Waited, tokio::task::JoinError>,
        round: Round,
    ) {
        let Ok((task, exec_id, pid, answer)) = ended else {
            return;
        };
        if let Some(exec_id) = exec_id {
            // An exec: its status if it gave one; the client reports one
            // that is gone without it as lost.
            if let Some(Answer::Stopped(exit)) = answer {
                let key = (task.namespace, task.id, exec_id);
                lock(&self.exec_exits).insert(key, exit);
            }
            return;
        }
        match answer {
            Some(Answer::Stopped(exit)) => self.record(&task, exit),
            Some(Answer::Gone) => self.record(&task, lost(pid, Lost::Escaped)),
            Some(Answer::Unclear | Answer::Running { .. }) if round == Round::During => {
                watch.running.push((task, Some(pid)));
            }
            // Ended by the daemon's answer: containerd knows the task.
            Some(Answer::Unclear | Answer::Running { .. }) | None => {}
        }
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
        if !replaces(self.records.read(&task.namespace, &task.id).as_ref(), &exit) {
            return;
        }
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
        let key = (namespace.to_owned(), container_id.to_owned());
        lock(&self.execs).remove(&key);
        lock(&self.exec_exits).retain(|(ns, id, _), _| (ns, id) != (&key.0, &key.1));
    }

    /// A client tracks exec `exec_id` (pid `pid`) of a container: it is
    /// waited on while a daemon starts.
    pub(crate) fn track_exec(&self, namespace: &str, container_id: &str, exec_id: &str, pid: u32) {
        let key = (namespace.to_owned(), container_id.to_owned());
        lock(&self.execs)
            .entry(key)
            .or_default()
            .insert(exec_id.to_owned(), pid);
    }

    /// The client no longer tracks the exec (its exit was delivered and it
    /// was deleted): nothing is kept for it.
    pub(crate) fn untrack_exec(&self, namespace: &str, container_id: &str, exec_id: &str) {
        let key = (namespace.to_owned(), container_id.to_owned());
        let mut execs = lock(&self.execs);
        if let Some(of_task) = execs.get_mut(&key) {
            of_task.remove(exec_id);
            if of_task.is_empty() {
                execs.remove(&key);
            }
        }
        drop(execs);
        let key = (key.0, key.1, exec_id.to_owned());
        lock(&self.exec_exits).remove(&key);
    }

    /// The exit of exec `exec_id` (pid `pid`) read while a daemon started.
    pub(crate) fn exec_exit(
        &self,
        namespace: &str,
        container_id: &str,
        exec_id: &str,
        pid: u32,
    ) -> Option<ShimExit> {
        let key = (
            namespace.to_owned(),
            container_id.to_owned(),
            exec_id.to_owned(),
        );
        lock(&self.exec_exits)
            .get(&key)
            .copied()
            .filter(|exit| exit.pid == pid)
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

/// Whether `new` may replace the record `kept` of the same container: a
/// status read from the shim is never replaced by "lost" for the same
/// process. (containerd 2.x, starting, kills the shim of an init that
/// ended as leaked; a daemon killed again before it removed the bundle
/// leaves that bundle to the next start, whose shim is gone by then: the
/// status read at the first start stands.)
fn replaces(kept: Option<&ShimExit>, new: &ShimExit) -> bool {
    match kept {
        Some(kept) => {
            !(kept.pid == new.pid
                && matches!(kept.status, exit::KeptStatus::Exited(_))
                && matches!(new.status, exit::KeptStatus::Lost(_)))
        }
        None => true,
    }
}

#[cfg(test)]
mod tests;
