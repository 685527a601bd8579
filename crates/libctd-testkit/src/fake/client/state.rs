//! The fake's state: containers, their tasks and processes, the lookups
//! over them, and how a process's end is recorded and announced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    Error, EventDispatcher, EventInfo, EventType, Resources, Result, StdioAttachment,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fake::program::{End, OutSink, StdinMsg};
use crate::fake::{is_init, lock};

/// One process of a task.
pub(super) struct Proc {
    pub(super) pid: u32,
    pub(super) exit: Option<(u32, SystemTime)>,
    pub(super) control: watch::Sender<Option<End>>,
    pub(super) stdin: Option<mpsc::UnboundedSender<StdinMsg>>,
    pub(super) relay: Option<JoinHandle<()>>,
    pub(super) stdout: OutSink,
    pub(super) stderr: Option<OutSink>,
    pub(super) terminal: bool,
    pub(super) attachment: Option<Box<dyn StdioAttachment>>,
}

impl Proc {
    pub(super) fn running(&self) -> bool {
        self.exit.is_none()
    }
}

/// A container's task: its init process and execs.
pub(super) struct Task {
    pub(super) serial: u64,
    pub(super) init: Proc,
    pub(super) execs: HashMap<String, Proc>,
    pub(super) paused: bool,
    pub(super) frozen: watch::Sender<bool>,
}

impl Task {
    /// `FailedPrecondition` unless the init process runs.
    pub(super) fn ensure_running(&self) -> Result<()> {
        if self.init.running() {
            Ok(())
        } else {
            Err(Error::failed_precondition("container is not running"))
        }
    }
}

pub(super) struct Container {
    pub(super) spec: Spec,
    pub(super) events: EventDispatcher,
    pub(super) task: Option<Task>,
    pub(super) oom_killed: bool,
    pub(super) resources: Option<Resources>,
    /// The image whose snapshot is its root filesystem, if any: the
    /// snapshot lives exactly as long as the container.
    pub(super) snapshot: Option<String>,
}

impl Container {
    /// The task, or NotFound "container is not running" before start.
    pub(super) fn task(&self) -> Result<&Task> {
        self.task.as_ref().ok_or_else(not_running)
    }

    pub(super) fn task_mut(&mut self) -> Result<&mut Task> {
        self.task.as_mut().ok_or_else(not_running)
    }

    pub(super) fn info(&self, container_id: &str, process_id: &str, pid: u32) -> EventInfo {
        EventInfo::new(container_id, process_id)
            .with_pid(pid)
            .with_oom_killed(self.oom_killed)
    }
}

/// The containers of one namespace, shared by its clients.
#[derive(Default)]
pub(crate) struct Namespace {
    pub(super) containers: Mutex<Containers>,
    /// Its image records (lock after `containers` when both are held).
    pub(crate) images: Mutex<crate::fake::images::ImageRecords>,
}

fn no_container() -> Error {
    Error::not_found("no such container")
}

fn not_running() -> Error {
    Error::not_found("container is not running")
}

impl Namespace {
    pub(crate) fn container_ids(&self) -> Vec<String> {
        lock(&self.containers).keys().cloned().collect()
    }

    /// The containers that have a snapshot of an image, with its name.
    pub(crate) fn snapshots(&self) -> Vec<(String, String)> {
        lock(&self.containers)
            .iter()
            .filter_map(|(id, c)| Some((id.clone(), c.snapshot.clone()?)))
            .collect()
    }

    /// Ends a process as if it had ended by itself.
    pub(crate) fn end_process(&self, container_id: &str, process_id: &str, end: End) -> Result<()> {
        let cs = lock(&self.containers);
        running_proc(&cs, container_id, process_id)?
            .control
            .send_replace(Some(end));
        Ok(())
    }

    /// Records the end of a process and delivers its events.
    pub(super) fn finish(
        self: &Arc<Self>,
        container_id: &str,
        process_id: &str,
        serial: u64,
        end: End,
    ) {
        let mut cs = lock(&self.containers);
        let Some(c) = cs.get_mut(container_id) else {
            return;
        };
        let Some(task) = c.task.as_mut().filter(|t| t.serial == serial) else {
            return;
        };
        let proc = if is_init(process_id) {
            &mut task.init
        } else if let Some(p) = task.execs.get_mut(process_id) {
            p
        } else {
            return;
        };
        if proc.exit.is_some() {
            return;
        }
        let code = match end {
            End::Exit(code) => code,
            End::Signal(sig) => 128 + sig.unsigned_abs(),
            End::Oom => 137,
        };
        let at = SystemTime::now();
        proc.exit = Some((code, at));
        let pid = proc.pid;
        let init = is_init(process_id);
        if init {
            for exec in task.execs.values().filter(|e| e.running()) {
                exec.control.send_replace(Some(End::Signal(9)));
            }
        }
        if end == End::Oom {
            c.oom_killed = true;
            let info = c.info(container_id, process_id, pid);
            c.events.dispatch(EventType::Oom, info);
        }
        let mut info = c.info(container_id, process_id, pid);
        info.exit_code = code;
        info.exited_at = Some(at);
        if init {
            c.events.dispatch(EventType::Exit, info);
        } else {
            // As the Linux backend does: the exec is deleted once its exit
            // was delivered, in the same queue slot.
            let ns = self.clone();
            let (cid, pid) = (container_id.to_owned(), process_id.to_owned());
            c.events.dispatch_then(EventType::Exit, info, async move {
                ns.remove_exec(&cid, &pid, serial);
            });
        }
    }

    fn remove_exec(&self, container_id: &str, process_id: &str, serial: u64) {
        let mut cs = lock(&self.containers);
        let Some(task) = cs
            .get_mut(container_id)
            .and_then(|c| c.task.as_mut())
            .filter(|t| t.serial == serial)
        else {
            return;
        };
        if task.execs.get(process_id).is_some_and(|p| !p.running())
            && let Some(mut p) = task.execs.remove(process_id)
        {
            p.release_stdio();
        }
    }
}

pub(super) type Containers = HashMap<String, Container>;

pub(super) fn container<'a>(cs: &'a Containers, container_id: &str) -> Result<&'a Container> {
    cs.get(container_id).ok_or_else(no_container)
}

pub(super) fn container_mut<'a>(
    cs: &'a mut Containers,
    container_id: &str,
) -> Result<&'a mut Container> {
    cs.get_mut(container_id).ok_or_else(no_container)
}

/// A process that has not exited yet; NotFound otherwise.
pub(super) fn running_proc<'a>(
    cs: &'a Containers,
    container_id: &str,
    process_id: &str,
) -> Result<&'a Proc> {
    let p = find_proc(container(cs, container_id)?.task()?, process_id)?;
    if p.running() {
        Ok(p)
    } else {
        Err(Error::not_found("process already finished"))
    }
}

pub(super) fn find_proc<'a>(task: &'a Task, process_id: &str) -> Result<&'a Proc> {
    if is_init(process_id) {
        Ok(&task.init)
    } else {
        task.execs
            .get(process_id)
            .ok_or_else(|| Error::not_found("no such exec"))
    }
}
