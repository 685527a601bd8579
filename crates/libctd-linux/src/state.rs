//! What a client knows of its containers and their processes, and the
//! rules by which that changes. The fields are private: each rule (a
//! started process gets exactly one exit, one OOM kill is one event, a
//! task-less container tracks no process, an exec id is reserved before it
//! is set up) is a method here, and nowhere else.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use containerd_client::events::TaskExit;
use libctd_core::{
    Error, EventInfo, INIT_PROCESS_ID, Result, StdioAttachment, TaskExit as CoreTaskExit,
};
use tokio::sync::watch;

use crate::convert;
use crate::fifo::{DrainFlag, FifoSet, StdinSlot};

/// How long deleting a process waits for the engine to consume its output.
const STDIO_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One process the client tracks.
pub(crate) struct Proc {
    fifos: FifoSet,
    /// The client's end of stdin, if any.
    stdin: Option<StdinSlot>,
    /// Whether its dropped output streams are drained.
    drain: DrainFlag,
    attachment: Option<Box<dyn StdioAttachment>>,
    /// Whether it started (the shim has its FIFOs open from then on).
    started: watch::Sender<bool>,
    exit_delivered: bool,
    /// The status its delivered exit carried (none when the exit was
    /// delivered by another client, or restore found it stopped): what
    /// `delete_task` answers once containerd has dropped the task itself
    /// (its shim died while containerd ran).
    delivered_exit: Option<CoreTaskExit>,
    /// Its pid once containerd told it (0 before).
    pid: u32,
    /// Exits the stream brought for its id before containerd told its pid:
    /// its own (an exec that exited at once) or an earlier process's of the
    /// same id (one a rollback killed). Sorted out by
    /// [`ContainerState::mark_started`].
    held_exits: Vec<TaskExit>,
}

impl Proc {
    /// A process about to be created (or, restored, already running) with
    /// its streams attached; `started` is set by [`ContainerState::mark_started`].
    pub(crate) fn new(
        fifos: FifoSet,
        stdin: Option<StdinSlot>,
        drain: DrainFlag,
        attachment: Box<dyn StdioAttachment>,
        started: watch::Sender<bool>,
    ) -> Self {
        Self {
            fifos,
            stdin,
            drain,
            attachment: Some(attachment),
            started,
            exit_delivered: false,
            delivered_exit: None,
            pid: 0,
            held_exits: Vec::new(),
        }
    }

    /// A process found running (or stopped) by restore: `pid` known, its
    /// exit already delivered when `delivered` (with the status `exit`,
    /// when this client delivered it).
    pub(crate) fn restored(
        mut self,
        pid: u32,
        delivered: bool,
        exit: Option<CoreTaskExit>,
    ) -> Self {
        self.pid = pid;
        self.exit_delivered = delivered;
        self.delivered_exit = exit;
        self
    }

    /// Whether it started and its exit was not delivered yet: one is owed.
    pub(crate) fn exit_owed(&self) -> bool {
        *self.started.borrow() && !self.exit_delivered
    }

    /// Its pid (0 before containerd told it).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits (boundedly) for the engine to drain its output, then removes
    /// its FIFOs.
    pub(crate) async fn release(self) {
        if let Some(mut a) = self.attachment
            && tokio::time::timeout(STDIO_DRAIN_TIMEOUT, a.wait())
                .await
                .is_err()
        {
            a.cancel();
        }
        self.fifos.remove();
    }

    /// Its stdio as containerd knows it.
    pub(crate) fn fifos(&self) -> &FifoSet {
        &self.fifos
    }

    /// Lets go of its streams for a re-attach without draining or closing
    /// anything (the FIFOs stay the shim's). Returns whether its exit was
    /// delivered, and the status delivered.
    pub(crate) fn let_go(self) -> (bool, Option<CoreTaskExit>) {
        self.drain.store(false, Ordering::SeqCst);
        if let Some(slot) = &self.stdin {
            crate::fifo::lock(slot).close_by_client();
        }
        if let Some(mut a) = self.attachment {
            a.cancel();
        }
        (self.exit_delivered, self.delivered_exit)
    }
}

/// What the client knows of a container that changes.
#[derive(Default)]
pub(crate) struct ContainerState {
    /// Processes of its task, "init" included; empty without a task.
    processes: HashMap<String, Proc>,
    /// Whether the task exists (start succeeded or restore found it).
    has_task: bool,
    /// An OOM kill was seen since the last start.
    oom: bool,
    /// Exec ids being set up.
    reserved: HashSet<String>,
    /// A restore is between registering the container and tracking its init
    /// process: an init exit seen meanwhile is kept in `missed_exit`.
    restoring: bool,
    /// The init exit (pid, status, time) that arrived while restoring.
    missed_exit: Option<TaskExit>,
}

/// What to do with an exit reported by the event stream.
#[derive(Debug)]
pub(crate) enum StreamExit {
    /// Deliver it (the first exit of a tracked, current process).
    Deliver(EventInfo),
    /// Drop it: delivered already, a process not tracked, or the exit of an
    /// earlier process of the same id.
    Ignore,
}

impl ContainerState {
    /// Whether the container has a task.
    pub(crate) fn has_task(&self) -> bool {
        self.has_task
    }

    /// Whether an OOM kill was seen since the last start.
    pub(crate) fn oom(&self) -> bool {
        self.oom
    }

    /// Records an OOM event; true only for the first of one kill (a kill
    /// sends many).
    pub(crate) fn mark_oom(&mut self) -> bool {
        !std::mem::replace(&mut self.oom, true)
    }

    /// A start begins: the init process is tracked (not started yet), the
    /// container has a task, and no OOM kill was seen.
    pub(crate) fn begin_start(&mut self, init: Proc) {
        self.processes.insert(INIT_PROCESS_ID.to_owned(), init);
        self.has_task = true;
        self.oom = false;
    }

    /// Records the pid containerd gave a process: from here on it tells
    /// this process's exit from a previous one's still on its way.
    pub(crate) fn set_pid(&mut self, process_id: &str, pid: u32) {
        if let Some(p) = self.processes.get_mut(process_id) {
            p.pid = pid;
        }
    }

    /// The process started with `pid`: its exit is owed from now on. An
    /// exit the stream brought before, held until now, is returned when it
    /// is this process's (same pid), to be handled again; an earlier
    /// process's is dropped.
    #[must_use = "an exit held until the start answered must be handled"]
    pub(crate) fn mark_started(&mut self, process_id: &str, pid: u32) -> Option<TaskExit> {
        let p = self.processes.get_mut(process_id)?;
        p.pid = pid;
        p.started.send_replace(true);
        let held = std::mem::take(&mut p.held_exits);
        held.into_iter().find(|e| e.pid == pid)
    }

    /// Whether the process is tracked.
    pub(crate) fn has_process(&self, process_id: &str) -> bool {
        self.processes.contains_key(process_id)
    }

    /// Whether the tracked process has a terminal (`None` when untracked).
    pub(crate) fn terminal_of(&self, process_id: &str) -> Option<bool> {
        self.processes.get(process_id).map(|p| p.fifos.terminal)
    }

    /// The client's end of the process's stdin, if any.
    pub(crate) fn stdin_of(&self, process_id: &str) -> Option<StdinSlot> {
        self.processes.get(process_id).and_then(|p| p.stdin.clone())
    }

    /// The pid of a tracked process.
    pub(crate) fn pid_of(&self, process_id: &str) -> Option<u32> {
        self.processes.get(process_id).map(|p| p.pid)
    }

    /// Whether the init process's exit was delivered.
    pub(crate) fn init_exit_delivered(&self) -> bool {
        self.processes
            .get(INIT_PROCESS_ID)
            .is_some_and(|p| p.exit_delivered)
    }

    /// The status of the init exit this client delivered, if it did.
    pub(crate) fn delivered_init_exit(&self) -> Option<CoreTaskExit> {
        self.processes
            .get(INIT_PROCESS_ID)
            .and_then(|p| p.delivered_exit)
    }

    /// Reserves an exec id, so that a concurrent exec with the same id fails
    /// before it touches this one's FIFOs.
    pub(crate) fn reserve_exec(&mut self, process_id: &str) -> Result<()> {
        if self.processes.contains_key(process_id)
            || self.reserved.contains(process_id)
            || process_id == INIT_PROCESS_ID
        {
            return Err(Error::already_exists("process id is already in use"));
        }
        self.reserved.insert(process_id.to_owned());
        Ok(())
    }

    /// Ends a reservation: the exec is tracked if it was set up.
    pub(crate) fn end_reservation(&mut self, process_id: &str, proc: Option<Proc>) {
        self.reserved.remove(process_id);
        if let Some(p) = proc {
            self.processes.insert(process_id.to_owned(), p);
        }
    }

    /// Forgets a process (a failed exec, an exec deleted after its exit).
    pub(crate) fn forget(&mut self, process_id: &str) -> Option<Proc> {
        self.processes.remove(process_id)
    }

    /// The task is gone: the container is task-less and its processes are
    /// handed over (to be released; see [`Proc::exit_owed`]).
    pub(crate) fn take_processes(&mut self) -> Vec<(String, Proc)> {
        self.has_task = false;
        self.processes.drain().collect()
    }

    /// The ids of the started processes `which` selects whose exit is owed.
    pub(crate) fn owed_exits(&self, which: impl Fn(&str) -> bool) -> Vec<String> {
        self.processes
            .iter()
            .filter(|(id, p)| which(id) && p.exit_owed())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether a started process's exit is owed.
    pub(crate) fn any_exit_owed(&self) -> bool {
        self.processes.values().any(Proc::exit_owed)
    }

    /// Whether an exec (not the init process) still has no delivered exit.
    pub(crate) fn exec_exit_undelivered(&self) -> bool {
        self.processes
            .iter()
            .any(|(id, p)| id != INIT_PROCESS_ID && !p.exit_delivered)
    }

    /// Takes the exit of `process_id` to deliver, exactly once: the event
    /// `info` makes of its pid and the OOM mark, or `None` when it is
    /// untracked or delivered already. The status is remembered.
    pub(crate) fn take_exit(
        &mut self,
        process_id: &str,
        info: impl FnOnce(u32, bool) -> EventInfo,
    ) -> Option<EventInfo> {
        let oom = self.oom;
        let p = self.processes.get_mut(process_id)?;
        if p.exit_delivered {
            return None;
        }
        let info = info(p.pid, oom);
        p.exit_delivered = true;
        p.delivered_exit = Some(CoreTaskExit::new(
            info.exit_code,
            info.exited_at.unwrap_or_else(std::time::SystemTime::now),
        ));
        Some(info)
    }

    /// Applies an exit the event stream reported (`TaskExit.id` is the exec
    /// id, or the container id for the init process).
    pub(crate) fn exit_from_stream(&mut self, container_id: &str, e: TaskExit) -> StreamExit {
        let is_init = e.id == container_id || e.id.is_empty();
        let process_id = if is_init {
            INIT_PROCESS_ID.to_owned()
        } else {
            e.id.clone()
        };
        let Some(p) = self.processes.get_mut(&process_id) else {
            if is_init && self.restoring {
                // restore delivers it once it tracks the process.
                self.missed_exit = Some(e);
            }
            return StreamExit::Ignore; // a process we no longer track
        };
        // An exit before containerd told the process's pid (an exec's start,
        // an init's task create) is its own (an exec that exited at once)
        // or an earlier process's of the same id (one a rollback killed):
        // held until the pid tells which.
        if p.pid == 0 {
            p.held_exits.push(e);
            return StreamExit::Ignore;
        }
        // The exit of an earlier process of the same id.
        if e.pid != 0 && e.pid != p.pid {
            return StreamExit::Ignore;
        }
        let info = self.take_exit(&process_id, |_, oom| {
            EventInfo::new(container_id, process_id.as_str())
                .with_pid(e.pid)
                .with_exit_code(e.exit_status)
                .with_exited_at(convert::time_from_proto(e.exited_at.as_ref()))
                .with_oom_killed(oom)
        });
        match info {
            Some(info) => StreamExit::Deliver(info),
            None => StreamExit::Ignore,
        }
    }

    /// A restore begins: an init exit seen from here on is kept.
    pub(crate) fn begin_restore(&mut self) {
        self.restoring = true;
        self.missed_exit = None;
    }

    /// A restore ends: the init exit kept meanwhile, if any.
    pub(crate) fn end_restore(&mut self) -> Option<TaskExit> {
        self.restoring = false;
        self.missed_exit.take()
    }

    /// A re-attach (a second restore) takes the init process out, to let go
    /// of its streams; the container stays marked with a task and its execs
    /// stay tracked.
    pub(crate) fn detach_init(&mut self) -> Option<Proc> {
        self.has_task = true;
        self.processes.remove(INIT_PROCESS_ID)
    }

    /// Restore tracks the task's init process.
    pub(crate) fn track_restored_init(&mut self, init: Proc) {
        self.processes.insert(INIT_PROCESS_ID.to_owned(), init);
        self.has_task = true;
    }
}

/// A container the client tracks.
/// The active snapshot that is a container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootSnapshot {
    /// The snapshotter holding it.
    pub snapshotter: String,
    /// Its key (the container's id).
    pub key: String,
}

impl RootSnapshot {
    /// What a container record names, if it names a snapshot.
    pub(crate) fn of_record(snapshotter: &str, key: &str) -> Option<Self> {
        (!snapshotter.is_empty() && !key.is_empty()).then(|| Self {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        })
    }
}

pub(crate) struct Container {
    /// Its id.
    pub id: String,
    /// The directory of its FIFOs (its namespace's, shared).
    pub dir: PathBuf,
    /// Whether its init process has a terminal.
    pub terminal: bool,
    /// The runc shim options it was created with (sent again on task create).
    pub runc: convert::RuncOptionsProto,
    /// The snapshot its root filesystem is, when it runs from an image
    /// (from its record: also known after a restore).
    pub snapshot: Option<RootSnapshot>,
    /// Serialises start, delete_task, delete and restore.
    pub lifecycle: tokio::sync::Mutex<()>,
    state: Mutex<ContainerState>,
}

impl Container {
    /// A container without a task.
    pub(crate) fn new(
        id: String,
        dir: PathBuf,
        terminal: bool,
        runc: convert::RuncOptionsProto,
    ) -> Self {
        Self {
            id,
            dir,
            terminal,
            runc,
            snapshot: None,
            lifecycle: tokio::sync::Mutex::new(()),
            state: Mutex::new(ContainerState::default()),
        }
    }

    /// The container, its root filesystem the snapshot `snapshot`.
    pub(crate) fn with_snapshot(mut self, snapshot: Option<RootSnapshot>) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// Its state, locked (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, ContainerState> {
        crate::sync::lock(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_exit(pid: u32, code: u32) -> TaskExit {
        TaskExit {
            container_id: "c".into(),
            id: "e1".into(),
            pid,
            exit_status: code,
            exited_at: None,
        }
    }

    fn state_with_exec() -> ContainerState {
        let mut st = ContainerState::default();
        st.reserve_exec("e1").unwrap();
        let proc = Proc::new(
            FifoSet::null(),
            None,
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            Box::new(()),
            watch::channel(false).0,
        );
        st.end_reservation("e1", Some(proc));
        st
    }

    #[test]
    fn an_earlier_execs_exit_before_the_start_answered_is_not_this_ones() {
        let mut st = state_with_exec();
        // A rollback killed an earlier exec of the same id; its exit comes
        // while this one's start has not answered yet.
        assert!(matches!(
            st.exit_from_stream("c", exec_exit(5, 137)),
            StreamExit::Ignore
        ));
        assert_eq!(st.mark_started("e1", 9), None, "not its exit");
        assert!(st.any_exit_owed());
        let StreamExit::Deliver(info) = st.exit_from_stream("c", exec_exit(9, 0)) else {
            panic!("its own exit is delivered");
        };
        assert_eq!((info.pid, info.exit_code), (9, 0));
        assert!(
            matches!(
                st.exit_from_stream("c", exec_exit(9, 0)),
                StreamExit::Ignore
            ),
            "once"
        );
    }

    #[test]
    fn an_exec_that_exits_before_its_start_answered_gets_its_exit_after_it() {
        let mut st = state_with_exec();
        assert!(matches!(
            st.exit_from_stream("c", exec_exit(9, 7)),
            StreamExit::Ignore
        ));
        assert!(matches!(
            st.exit_from_stream("c", exec_exit(5, 137)),
            StreamExit::Ignore
        ));
        let held = st.mark_started("e1", 9).expect("its own exit, held");
        assert_eq!((held.pid, held.exit_status), (9, 7));
        let StreamExit::Deliver(info) = st.exit_from_stream("c", held) else {
            panic!("handled again, it is delivered");
        };
        assert_eq!(info.exit_code, 7);
        assert_eq!(st.mark_started("e1", 9), None, "nothing held twice");
    }
}
