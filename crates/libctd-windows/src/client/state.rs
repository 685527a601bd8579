//! A container and the state of its processes. The fields of [`State`]
//! are private: every transition is a method here, so the rules of which
//! operation may follow which live in one place.

use std::collections::HashMap;
use std::time::Duration;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Status, StdioAttachment, TaskExit};
use tokio::sync::watch;

use crate::convert::Isolation;
use crate::exits;
use crate::hcs::Hcs;

/// A container: its compute system and what the client knows of it.
pub(super) struct Container<H: Hcs> {
    pub(super) id: String,
    pub(super) system: H::System,
    /// With Hyper-V isolation, the utility VM hosting `system`.
    pub(super) utility_vm: Option<super::hyperv::UtilityVm<H>>,
    /// The HNS namespace made for the container (from its endpoints).
    pub(super) namespace: Option<String>,
    pub(super) isolation: Isolation,
    pub(super) servicing: bool,
    pub(super) spec: Spec,
    /// The compute system's exit, for the reapers of its processes.
    pub(super) system_exit: exits::SystemExitWatch,
    pub(super) state: tokio::sync::Mutex<State<H>>,
    /// Whether the init process's exit has been fully reaped.
    pub(super) reaped: Reaped,
}

/// Set once the init process's exit has been fully reaped (the compute
/// system shut down and closed) and its event queued.
#[derive(Default)]
pub(super) struct Reaped(watch::Sender<bool>);

impl Reaped {
    /// The reaper is done.
    pub(super) fn mark(&self) {
        self.0.send_replace(true);
    }

    /// Waits at most `wait` for the reaper to be done; false if it is not.
    pub(super) async fn wait(&self, wait: Duration) -> bool {
        let mut reaped = self.0.subscribe();
        tokio::time::timeout(wait, reaped.wait_for(|r| *r))
            .await
            .is_ok()
    }
}

/// A started process: its handle, pid, and the engine's hold on its stdio.
pub(super) struct Proc<H: Hcs> {
    pub(super) handle: H::Process,
    pub(super) pid: u32,
    pub(super) terminal: bool,
    pub(super) attachment: Option<Box<dyn StdioAttachment>>,
}

impl<H: Hcs> Proc<H> {
    /// Lets the engine finish consuming a deleted process's output,
    /// boundedly (`drain`), then cancels its copies.
    pub(super) async fn release(mut self, drain: Duration) {
        if let Some(mut att) = self.attachment.take()
            && tokio::time::timeout(drain, att.wait()).await.is_err()
        {
            att.cancel();
        }
    }
}

/// The state of a container's task: its status, the init process and
/// the execs, the init's exit, whether the task was deleted.
pub(super) struct State<H: Hcs> {
    status: Status,
    init: Option<Proc<H>>,
    execs: HashMap<String, Proc<H>>,
    exit: Option<TaskExit>,
    task_deleted: bool,
}

impl<H: Hcs> State<H> {
    /// A created container: the compute system runs, the user's process
    /// does not yet.
    pub(super) fn created() -> Self {
        Self {
            status: Status::Created,
            init: None,
            execs: HashMap::new(),
            exit: None,
            task_deleted: false,
        }
    }

    pub(super) fn status(&self) -> Status {
        self.status
    }

    /// Created and never started: the only state `start` accepts, and the
    /// one `delete` shuts the compute system down from.
    pub(super) fn is_unstarted(&self) -> bool {
        self.status == Status::Created && self.init.is_none() && self.exit.is_none()
    }

    /// Whether the task exists: started and not deleted (its init may have
    /// exited).
    pub(super) fn has_task(&self) -> bool {
        self.init.is_some() && !self.task_deleted
    }

    /// Whether the init process runs (or is paused).
    pub(super) fn is_running(&self) -> bool {
        self.init.is_some() && matches!(self.status, Status::Running | Status::Paused)
    }

    /// Whether the init process has exited (or its exit is being reaped).
    pub(super) fn has_exited(&self) -> bool {
        self.status == Status::Stopped || self.exit.is_some()
    }

    /// Whether an exec can run: the task exists (started, or its exit
    /// recorded) and was not deleted.
    pub(super) fn accepts_execs(&self) -> bool {
        (self.init.is_some() || self.exit.is_some()) && !self.task_deleted
    }

    /// The init process's pid, 0 before it started.
    pub(super) fn init_pid(&self) -> u32 {
        self.init.as_ref().map_or(0, |p| p.pid)
    }

    /// The init process, while it has not stopped.
    pub(super) fn live_init(&self) -> Option<&Proc<H>> {
        self.init
            .as_ref()
            .filter(|_| self.status != Status::Stopped)
    }

    pub(super) fn exec(&self, exec_id: &str) -> Option<&Proc<H>> {
        self.execs.get(exec_id)
    }

    /// The init process started: the container runs.
    pub(super) fn mark_started(&mut self, init: Proc<H>) {
        self.init = Some(init);
        self.status = Status::Running;
    }

    /// The init process exited with `exit`: the container stopped.
    pub(super) fn mark_exited(&mut self, exit: TaskExit) {
        self.status = Status::Stopped;
        self.exit = Some(exit);
    }

    /// An unstarted container's compute system was shut down.
    pub(super) fn mark_shut_down(&mut self) {
        self.status = Status::Stopped;
    }

    /// Pauses or resumes a running container: `Paused` or `Running`.
    pub(super) fn mark_paused(&mut self, paused: bool) {
        self.status = if paused {
            Status::Paused
        } else {
            Status::Running
        };
    }

    /// The exit of a stopped task, if it has one to report.
    pub(super) fn exit_of_stopped(&self) -> Option<TaskExit> {
        self.exit.filter(|_| self.status == Status::Stopped)
    }

    /// Deletes the task: its init process, to release.
    pub(super) fn delete_task(&mut self) -> Option<Proc<H>> {
        self.task_deleted = true;
        self.init.take()
    }

    /// Records a started exec (its id checked free by the caller, under
    /// the same lock).
    pub(super) fn add_exec(&mut self, exec_id: String, proc: Proc<H>) {
        self.execs.insert(exec_id, proc);
    }

    /// Forgets an exec that exited: it, to release.
    pub(super) fn remove_exec(&mut self, exec_id: &str) -> Option<Proc<H>> {
        self.execs.remove(exec_id)
    }

    /// Forgets every process (the container is deleted): them, to release.
    pub(super) fn take_processes(&mut self) -> Vec<Proc<H>> {
        let init = self.init.take();
        init.into_iter()
            .chain(self.execs.drain().map(|(_, p)| p))
            .collect()
    }
}
