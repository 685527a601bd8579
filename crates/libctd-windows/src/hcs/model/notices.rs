//! ProcessExited notices: sent when a process ends, never for a process
//! whose system died, held back while the plan says so
//! (`HoldExitNotices`: a process that ended is gone at once, its notice
//! comes on release), and lost for good while it says `LoseExitNotices`.

use super::{Model, Notice, World};

impl World {
    /// Sends (or holds) the ProcessExited of `pid`, which has just ended.
    pub(super) fn notify_process_exit(&mut self, pid: u32) {
        let Some(p) = self.processes.get(&pid) else {
            return;
        };
        if p.silent {
            return;
        }
        let key = p.system;
        let Some(system) = self.systems.get_mut(&key) else {
            return;
        };
        let id = system.id.clone();
        if self.plans.flag(&id, |plan| plan.lose_exit_notices) {
            return;
        }
        if !system.released && self.plans.flag(&id, |plan| plan.hold_exit_notices) {
            if let Some(system) = self.systems.get_mut(&key) {
                system.held.push(pid);
            }
            return;
        }
        self.send_process_exit(pid);
    }

    fn send_process_exit(&mut self, pid: u32) {
        if let Some(p) = self.processes.get_mut(&pid)
            && let Some(exit) = p.exit
        {
            p.notice = Some(exit);
            self.outbox.push(Notice::ProcessExited(pid, exit));
        }
    }
}

impl Model {
    /// Sends the ProcessExited notices held for compute system `id`, and
    /// holds no more. False when its plan holds none, or they were
    /// released already.
    pub fn release_exit_notices(&self, id: &str) -> bool {
        self.with(|w| {
            let Some(key) = w.ids.get(id).copied() else {
                return false;
            };
            if !w.plans.flag(id, |plan| plan.hold_exit_notices) {
                return false;
            }
            let Some(system) = w.systems.get_mut(&key) else {
                return false;
            };
            if system.released {
                return false;
            }
            system.released = true;
            for pid in std::mem::take(&mut system.held) {
                w.send_process_exit(pid);
            }
            true
        })
    }
}
