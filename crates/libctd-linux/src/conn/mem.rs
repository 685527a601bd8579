//! (tests) containerd in memory, behind the [`Containerd`] seam, with faults.
//!
//! It models containerd as it documents itself and as libctd saw it:
//! containers and tasks by id, `NotFound` / `AlreadyExists` /
//! `FailedPrecondition` where containerd answers them, task and exec
//! states (created, running, paused, stopped), exit statuses (128 +
//! signal when killed), Go's zero time as the `exited_at` of a running
//! process, and the `/tasks/*` events with their bare type URLs and
//! payloads. Events published with no subscriber are lost, as in
//! containerd.
//!
//! Faults: a call can fail as an unreachable daemon does (a transport
//! `Unavailable`), do its work and lose the answer, or hang until the
//! deadline (a transport `Cancelled "Timeout expired"`); the whole daemon
//! can go down (every call fails, every stream ends with `Unknown`, as an
//! h2 error does), and new subscriptions can be made deaf.
//!
//! Over 600 lines: one model of containerd's containers, tasks and events,
//! each of the seam's 21 calls a few lines over the same private world.
//! Its image path (the `Store` seam) is `mem_store`, gated by the same
//! faults.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use containerd_client::events::{
    TaskCreate, TaskExecAdded, TaskExecStarted, TaskExit, TaskOom, TaskPaused, TaskResumed,
    TaskStart,
};
use containerd_client::services::v1::{
    CheckpointTaskRequest, Container, CreateContainerRequest, CreateTaskRequest,
    CreateTaskResponse, DeleteResponse, ExecProcessRequest, GetResponse, KillRequest,
    PublishRequest, ResizePtyRequest, UpdateTaskRequest, VersionResponse,
};
use containerd_client::types::v1::{Process, ProcessInfo, Status as TaskStatus};
use containerd_client::types::{Envelope, Metric};
use prost::Message;
use prost_types::{Any, Timestamp};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Status;

use super::{Containerd, EventStream};

/// Go's zero time: the `exited_at` containerd gives a running process.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// How long `start` of a process that exits at once leaves between its two
/// steps for the client to (wrongly) delete it: the client's exit handling
/// runs in microseconds; a correct client never deletes, and the test then
/// waits this long once.
const EXITED_AT_START_WINDOW: Duration = Duration::from_millis(100);

/// How a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// containerd is not reached: nothing happens.
    Unavailable,
    /// containerd does the work, then the answer is lost in transport.
    Lost,
    /// No answer until the deadline: nothing happens.
    Hang,
    /// The task's shim died: containerd cannot reach it ("ttrpc: closed",
    /// code Unknown) and drops its tasks on its own (here: at once).
    ShimGone,
    /// containerd does the work, then dies before it answers: this call
    /// and every later one fail as unreachable until `set_down(false)`.
    Dies,
}

/// One process of a task ("" is the init process).
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    status: TaskStatus,
    exit_status: u32,
    exited_at: Option<Timestamp>,
    io: [String; 3],
    terminal: bool,
}

#[derive(Default)]
struct World {
    containers: HashMap<String, Container>,
    /// Tasks by container id, each a map of processes by exec id.
    tasks: HashMap<String, BTreeMap<String, Proc>>,
    next_pid: u32,
    faults: VecDeque<(&'static str, Fault)>,
    down: bool,
    deaf: bool,
    /// Live subscriptions; a deaf one receives nothing.
    subscribers: Vec<(mpsc::UnboundedSender<Result<Envelope, Status>>, bool)>,
    /// Publishes delivered to at least one listening subscriber.
    delivered_publishes: usize,
    calls: Vec<&'static str>,
    /// Processes that exit with the given status as soon as they start.
    exit_at_start: HashMap<(String, String), u32>,
}

/// containerd in memory.
pub(crate) struct Mem {
    world: Mutex<World>,
    deadline: Duration,
    /// Notified whenever a process is deleted.
    deleted: Notify,
}

fn transport_unavailable() -> Status {
    let mut s = Status::unavailable("error trying to connect: No such file or directory");
    s.set_source(Arc::new(std::io::Error::from(std::io::ErrorKind::NotFound)));
    s
}

fn timeout_expired() -> Status {
    let mut s = Status::cancelled("Timeout expired");
    s.set_source(Arc::new(std::io::Error::from(std::io::ErrorKind::TimedOut)));
    s
}

fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

/// What the runc shim's init state machine answers to `op` (pause or
/// resume) in state `s`, as containerd passes it on.
fn refused(op: &str, s: TaskStatus) -> Status {
    let why = match (op, s) {
        (_, TaskStatus::Created) => format!("cannot {op} task in created state"),
        ("pause", TaskStatus::Paused) => "cannot pause a paused container".to_owned(),
        ("resume", TaskStatus::Running) => "cannot resume a running process".to_owned(),
        _ => format!("cannot {op} a stopped container"),
    };
    Status::unknown(format!("{why}: unknown"))
}

fn not_found(what: &str) -> Status {
    Status::not_found(format!("{what}: not found"))
}

fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: m.encode_to_vec(),
    }
}

impl World {
    fn emit(&mut self, topic: &str, event: Any) {
        let envelope = Envelope {
            timestamp: Some(now()),
            namespace: "test".to_owned(),
            topic: topic.to_owned(),
            event: Some(event),
        };
        let mut delivered = false;
        self.subscribers.retain(|(tx, deaf)| {
            if *deaf {
                return !tx.is_closed();
            }
            let ok = tx.send(Ok(envelope.clone())).is_ok();
            delivered |= ok;
            ok
        });
        if delivered && topic == "/tasks/libctd-sync" {
            self.delivered_publishes += 1;
        }
    }

    fn task(&mut self, id: &str) -> Result<&mut BTreeMap<String, Proc>, Status> {
        self.tasks
            .get_mut(id)
            .ok_or_else(|| not_found(&format!("no running task found: task {id}")))
    }

    fn process(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc, Status> {
        self.task(id)?
            .get_mut(exec_id)
            .ok_or_else(|| not_found(&format!("process {exec_id} does not exist")))
    }

    /// Stops a process with `status`; its TaskExit unless `silent`.
    fn stop(&mut self, id: &str, exec_id: &str, status: u32, silent: bool) -> bool {
        let Ok(p) = self.process(id, exec_id) else {
            return false;
        };
        if p.status == TaskStatus::Stopped {
            return false;
        }
        p.status = TaskStatus::Stopped;
        p.exit_status = status;
        p.exited_at = Some(now());
        let exit = TaskExit {
            container_id: id.to_owned(),
            id: if exec_id.is_empty() {
                id.to_owned()
            } else {
                exec_id.to_owned()
            },
            pid: p.pid,
            exit_status: status,
            exited_at: p.exited_at,
        };
        if !silent {
            self.emit("/tasks/exit", any("containerd.events.TaskExit", &exit));
        }
        true
    }

    /// The init process dies: the kernel kills the container's other processes.
    fn stop_init(&mut self, id: &str, status: u32, silent: bool) -> bool {
        let execs: Vec<String> = self
            .tasks
            .get(id)
            .map(|t| t.keys().filter(|k| !k.is_empty()).cloned().collect())
            .unwrap_or_default();
        for e in execs {
            self.stop(id, &e, 137, silent);
        }
        self.stop(id, "", status, silent)
    }
}

impl Mem {
    /// An empty containerd whose calls give up after `deadline` when hung.
    pub(crate) fn new(deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            world: Mutex::new(World {
                next_pid: 1000,
                ..World::default()
            }),
            deadline,
            deleted: Notify::new(),
        })
    }

    fn world(&self) -> MutexGuard<'_, World> {
        crate::sync::lock(&self.world)
    }

    /// The next call `op` (a method name of [`Containerd`]) fails with `fault`.
    pub(crate) fn fail(&self, op: &'static str, fault: Fault) {
        self.world().faults.push_back((op, fault));
    }

    /// containerd goes down (every call fails `Unavailable`, every stream
    /// ends with `Unknown`) or comes back.
    pub(crate) fn set_down(&self, down: bool) {
        let mut w = self.world();
        w.down = down;
        if down {
            for (tx, _) in w.subscribers.drain(..) {
                let _ = tx.send(Err(Status::unknown(
                    "h2 protocol error: error reading a body from connection",
                )));
            }
        }
    }

    /// Subscriptions made from now on receive nothing (or again everything).
    pub(crate) fn set_deaf(&self, deaf: bool) {
        self.world().deaf = deaf;
    }

    /// Ends every live subscription, as containerd dying does.
    pub(crate) fn drop_streams(&self) {
        for (tx, _) in self.world().subscribers.drain(..) {
            let _ = tx.send(Err(Status::unknown(
                "h2 protocol error: error reading a body from connection",
            )));
        }
    }

    /// How many sync publishes reached a listening subscription.
    pub(crate) fn syncs_delivered(&self) -> usize {
        self.world().delivered_publishes
    }

    /// How many times `op` was called.
    pub(crate) fn calls(&self, op: &str) -> usize {
        self.world().calls.iter().filter(|c| **c == op).count()
    }

    /// The calls made, in order.
    pub(crate) fn call_log(&self) -> Vec<&'static str> {
        self.world().calls.clone()
    }

    /// Whether a container record `id` exists.
    pub(crate) fn has_container(&self, id: &str) -> bool {
        self.world().containers.contains_key(id)
    }

    /// Whether the container has a task.
    pub(crate) fn has_task(&self, id: &str) -> bool {
        self.world().tasks.contains_key(id)
    }

    /// The stdin, stdout and stderr paths process `exec_id` was given.
    pub(crate) fn stdio(&self, id: &str, exec_id: &str) -> Option<[String; 3]> {
        self.world()
            .tasks
            .get(id)
            .and_then(|t| t.get(exec_id))
            .map(|p| p.io.clone())
    }

    /// Whether the task has process `exec_id`.
    pub(crate) fn has_process(&self, id: &str, exec_id: &str) -> bool {
        self.world()
            .tasks
            .get(id)
            .is_some_and(|t| t.contains_key(exec_id))
    }

    /// A process exits by itself with `status` (its TaskExit goes out).
    pub(crate) fn exit(&self, id: &str, exec_id: &str, status: u32) -> bool {
        let mut w = self.world();
        if exec_id.is_empty() {
            w.stop_init(id, status, false)
        } else {
            w.stop(id, exec_id, status, false)
        }
    }

    /// The process exits with `status` as soon as it is started: its TaskExit
    /// goes out while containerd's Tasks.Start is still asking the shim for
    /// its pid.
    pub(crate) fn exit_at_start(&self, id: &str, exec_id: &str, status: u32) {
        self.world()
            .exit_at_start
            .insert((id.to_owned(), exec_id.to_owned()), status);
    }

    /// Sends again the TaskExit of a stopped process (a late duplicate).
    pub(crate) fn replay_exit(&self, id: &str, exec_id: &str) {
        let mut w = self.world();
        let Ok(p) = w.process(id, exec_id).cloned() else {
            return;
        };
        let exit = TaskExit {
            container_id: id.to_owned(),
            id: if exec_id.is_empty() {
                id.to_owned()
            } else {
                exec_id.to_owned()
            },
            pid: p.pid,
            exit_status: p.exit_status,
            exited_at: p.exited_at,
        };
        w.emit("/tasks/exit", any("containerd.events.TaskExit", &exit));
    }

    /// The task vanishes without an exit (its shim died and containerd
    /// dropped it).
    pub(crate) fn lose_task(&self, id: &str) {
        self.world().tasks.remove(id);
    }

    /// Sends a TaskPaused event for the container, changing nothing: a
    /// marker the test waits for, to know the stream got that far.
    pub(crate) fn marker(&self, id: &str) {
        let e = TaskPaused {
            container_id: id.to_owned(),
        };
        self.world()
            .emit("/tasks/paused", any("containerd.events.TaskPaused", &e));
    }

    /// The kernel reports `count` OOM events for the container (one kill).
    pub(crate) fn oom(&self, id: &str, count: usize) {
        let mut w = self.world();
        for _ in 0..count {
            let e = TaskOom {
                container_id: id.to_owned(),
            };
            w.emit("/tasks/oom", any("containerd.events.TaskOOM", &e));
        }
    }

    /// Runs call `op`: its fault if one is planned, else `f` on the world.
    async fn call<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut World) -> Result<T, Status>,
    ) -> Result<T, Status> {
        self.gated(op, || f(&mut self.world())).await
    }

    /// Runs call `op` of either seam (this one or `mem_store`'s: one
    /// daemon): its fault if one is planned, else `f`.
    pub(crate) async fn gated<T>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> Result<T, Status>,
    ) -> Result<T, Status> {
        let fault = {
            let mut w = self.world();
            w.calls.push(op);
            if w.down {
                Some(Fault::Unavailable)
            } else {
                let i = w.faults.iter().position(|(o, _)| *o == op);
                i.and_then(|i| w.faults.remove(i)).map(|(_, f)| f)
            }
        };
        match fault {
            None => f(),
            Some(Fault::Unavailable) => Err(transport_unavailable()),
            Some(Fault::Lost) => {
                let _ = f();
                Err(transport_unavailable())
            }
            Some(Fault::Dies) => {
                let _ = f();
                self.set_down(true);
                Err(transport_unavailable())
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(self.deadline).await;
                Err(timeout_expired())
            }
            Some(Fault::ShimGone) => {
                self.world().tasks.clear();
                Err(Status::unknown("failed to delete task: ttrpc: closed"))
            }
        }
    }
}

#[async_trait]
impl Containerd for Mem {
    async fn version(&self) -> Result<VersionResponse, Status> {
        self.call("version", |_| {
            Ok(VersionResponse {
                version: "mem".into(),
                revision: "0".into(),
            })
        })
        .await
    }

    async fn create_container(&self, req: CreateContainerRequest) -> Result<(), Status> {
        self.call("create_container", |w| {
            let c = req.container.unwrap_or_default();
            if w.containers.contains_key(&c.id) {
                return Err(Status::already_exists(format!(
                    "container \"{}\": already exists",
                    c.id
                )));
            }
            w.containers.insert(c.id.clone(), c);
            Ok(())
        })
        .await
    }

    async fn get_container(&self, id: &str) -> Result<Container, Status> {
        self.call("get_container", |w| {
            w.containers
                .get(id)
                .cloned()
                .ok_or_else(|| not_found(&format!("container \"{id}\" in namespace \"test\"")))
        })
        .await
    }

    async fn delete_container(&self, id: &str) -> Result<(), Status> {
        self.call("delete_container", |w| {
            w.containers
                .remove(id)
                .map(drop)
                .ok_or_else(|| not_found(&format!("container \"{id}\" in namespace \"test\"")))
        })
        .await
    }

    async fn create_task(
        &self,
        req: CreateTaskRequest,
        _bounded: bool,
    ) -> Result<CreateTaskResponse, Status> {
        self.call("create_task", |w| {
            let id = req.container_id.clone();
            if !w.containers.contains_key(&id) {
                return Err(not_found(&format!(
                    "container \"{id}\" in namespace \"test\""
                )));
            }
            if w.tasks.contains_key(&id) {
                return Err(Status::already_exists(format!("task {id}: already exists")));
            }
            w.next_pid += 1;
            let pid = w.next_pid;
            let init = Proc {
                pid,
                status: TaskStatus::Created,
                exit_status: 0,
                exited_at: None,
                io: [req.stdin, req.stdout, req.stderr],
                terminal: req.terminal,
            };
            w.tasks
                .insert(id.clone(), BTreeMap::from([(String::new(), init)]));
            let e = TaskCreate {
                container_id: id.clone(),
                pid,
                ..TaskCreate::default()
            };
            w.emit("/tasks/create", any("containerd.events.TaskCreate", &e));
            Ok(CreateTaskResponse {
                container_id: id,
                pid,
            })
        })
        .await
    }

    async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32, Status> {
        // containerd's Tasks.Start has the shim start the process, then asks
        // the shim for its state, whose pid it answers with: two steps, and a
        // process that exits at once has sent its exit between them.
        let deleted = self.deleted.notified();
        tokio::pin!(deleted);
        deleted.as_mut().enable();
        let exited = self
            .call("start", |w| {
                let p = w.process(container_id, exec_id)?;
                if p.status != TaskStatus::Created {
                    return Err(Status::failed_precondition(format!(
                        "process {exec_id} is {:?}: failed precondition",
                        p.status
                    )));
                }
                p.status = TaskStatus::Running;
                let pid = p.pid;
                if exec_id.is_empty() {
                    let e = TaskStart {
                        container_id: container_id.to_owned(),
                        pid,
                    };
                    w.emit("/tasks/start", any("containerd.events.TaskStart", &e));
                } else {
                    let e = TaskExecStarted {
                        container_id: container_id.to_owned(),
                        exec_id: exec_id.to_owned(),
                        pid,
                    };
                    w.emit(
                        "/tasks/exec-started",
                        any("containerd.events.TaskExecStarted", &e),
                    );
                }
                let key = (container_id.to_owned(), exec_id.to_owned());
                let exited = w.exit_at_start.remove(&key);
                if let Some(status) = exited {
                    if exec_id.is_empty() {
                        w.stop_init(container_id, status, false);
                    } else {
                        w.stop(container_id, exec_id, status, false);
                    }
                }
                Ok(exited.is_some())
            })
            .await?;
        if exited {
            let _ = tokio::time::timeout(EXITED_AT_START_WINDOW, deleted).await;
        }
        // The state step: a process deleted meanwhile is not found.
        self.world().process(container_id, exec_id).map(|p| p.pid)
    }

    async fn kill(&self, req: KillRequest) -> Result<(), Status> {
        self.call("kill", |w| {
            let p = w.process(&req.container_id, &req.exec_id)?;
            if p.status == TaskStatus::Stopped {
                return Err(not_found("process already finished"));
            }
            let status = 128 + req.signal;
            if req.exec_id.is_empty() {
                w.stop_init(&req.container_id, status, false);
            } else {
                w.stop(&req.container_id, &req.exec_id, status, false);
            }
            Ok(())
        })
        .await
    }

    async fn delete_task(&self, container_id: &str) -> Result<DeleteResponse, Status> {
        self.call("delete_task", |w| {
            let init = w.process(container_id, "")?.clone();
            if !matches!(init.status, TaskStatus::Stopped | TaskStatus::Created) {
                return Err(Status::failed_precondition(format!(
                    "task must be stopped before deletion: {:?}: failed precondition",
                    init.status
                )));
            }
            w.tasks.remove(container_id);
            Ok(DeleteResponse {
                // 1.6 leaves it empty.
                id: String::new(),
                pid: init.pid,
                exit_status: init.exit_status,
                exited_at: init.exited_at,
            })
        })
        .await
    }

    async fn delete_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<DeleteResponse, Status> {
        let deleted = self
            .call("delete_process", |w| {
                let p = w.process(container_id, exec_id)?.clone();
                if !matches!(p.status, TaskStatus::Stopped | TaskStatus::Created) {
                    return Err(Status::failed_precondition(format!(
                        "process {exec_id} must be stopped before deletion: failed precondition"
                    )));
                }
                w.task(container_id)?.remove(exec_id);
                Ok(DeleteResponse {
                    id: exec_id.to_owned(),
                    pid: p.pid,
                    exit_status: p.exit_status,
                    exited_at: p.exited_at,
                })
            })
            .await;
        if deleted.is_ok() {
            self.deleted.notify_waiters();
        }
        deleted
    }

    async fn get(&self, container_id: &str, exec_id: &str) -> Result<GetResponse, Status> {
        self.call("get", |w| {
            let p = w.process(container_id, exec_id)?.clone();
            let [stdin, stdout, stderr] = p.io;
            Ok(GetResponse {
                process: Some(Process {
                    container_id: container_id.to_owned(),
                    id: exec_id.to_owned(),
                    pid: p.pid,
                    status: p.status as i32,
                    exit_status: p.exit_status,
                    exited_at: p.exited_at.or(Some(Timestamp {
                        seconds: GO_ZERO_TIME,
                        nanos: 0,
                    })),
                    stdin,
                    stdout,
                    stderr,
                    terminal: p.terminal,
                }),
            })
        })
        .await
    }

    async fn list_pids(&self, container_id: &str) -> Result<Vec<ProcessInfo>, Status> {
        self.call("list_pids", |w| {
            Ok(w.task(container_id)?
                .values()
                .filter(|p| p.status != TaskStatus::Stopped)
                .map(|p| ProcessInfo {
                    pid: p.pid,
                    info: None,
                })
                .collect())
        })
        .await
    }

    async fn exec(&self, req: ExecProcessRequest) -> Result<(), Status> {
        self.call("exec", |w| {
            let id = req.container_id.clone();
            let task = w.task(&id)?;
            if task.contains_key(&req.exec_id) {
                return Err(Status::already_exists(format!(
                    "id {}: already exists",
                    req.exec_id
                )));
            }
            if task.get("").is_none_or(|p| p.status != TaskStatus::Running) {
                return Err(Status::failed_precondition(
                    "container must be running to exec: failed precondition",
                ));
            }
            w.next_pid += 1;
            let pid = w.next_pid;
            let p = Proc {
                pid,
                status: TaskStatus::Created,
                exit_status: 0,
                exited_at: None,
                io: [req.stdin, req.stdout, req.stderr],
                terminal: req.terminal,
            };
            w.task(&id)?.insert(req.exec_id.clone(), p);
            let e = TaskExecAdded {
                container_id: id,
                exec_id: req.exec_id,
            };
            w.emit(
                "/tasks/exec-added",
                any("containerd.events.TaskExecAdded", &e),
            );
            Ok(())
        })
        .await
    }

    async fn resize_pty(&self, req: ResizePtyRequest) -> Result<(), Status> {
        self.call("resize_pty", |w| {
            w.process(&req.container_id, &req.exec_id).map(drop)
        })
        .await
    }

    async fn close_stdin(&self, container_id: &str, exec_id: &str) -> Result<(), Status> {
        self.call("close_stdin", |w| {
            w.process(container_id, exec_id).map(drop)
        })
        .await
    }

    async fn pause(&self, container_id: &str) -> Result<(), Status> {
        self.call("pause", |w| {
            let init = w.process(container_id, "")?;
            init.status = match init.status {
                TaskStatus::Running => TaskStatus::Paused,
                s => return Err(refused("pause", s)),
            };
            let e = TaskPaused {
                container_id: container_id.to_owned(),
            };
            w.emit("/tasks/paused", any("containerd.events.TaskPaused", &e));
            Ok(())
        })
        .await
    }

    async fn resume(&self, container_id: &str) -> Result<(), Status> {
        self.call("resume", |w| {
            let init = w.process(container_id, "")?;
            init.status = match init.status {
                TaskStatus::Paused => TaskStatus::Running,
                s => return Err(refused("resume", s)),
            };
            let e = TaskResumed {
                container_id: container_id.to_owned(),
            };
            w.emit("/tasks/resumed", any("containerd.events.TaskResumed", &e));
            Ok(())
        })
        .await
    }

    async fn metrics(&self, _filters: Vec<String>) -> Result<Vec<Metric>, Status> {
        self.call("metrics", |_| Ok(Vec::new())).await
    }

    async fn update(&self, req: UpdateTaskRequest) -> Result<(), Status> {
        self.call("update", |w| w.task(&req.container_id).map(drop))
            .await
    }

    async fn checkpoint(&self, req: CheckpointTaskRequest) -> Result<(), Status> {
        self.call("checkpoint", |w| w.task(&req.container_id).map(drop))
            .await
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), Status> {
        self.call("publish", |w| {
            if let Some(e) = req.event {
                w.emit(&req.topic, e);
            }
            Ok(())
        })
        .await
    }

    async fn subscribe(&self, _filters: Vec<String>) -> Result<EventStream, Status> {
        self.call("subscribe", |w| {
            let (tx, rx) = mpsc::unbounded_channel();
            let deaf = w.deaf;
            w.subscribers.push((tx, deaf));
            Ok(Box::pin(UnboundedReceiverStream::new(rx)) as EventStream)
        })
        .await
    }
}
