//! The chaos test's engine: a small one that handles exits as Moby does
//! (delete the task, then the container) and restores every container it
//! knows after it restarts, and its ledger, which outlives its restarts as
//! an engine's own database would.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use libctd_core::{
    Client, ErrorKind, EventInfo, EventStream, EventType, INIT_PROCESS_ID, UNKNOWN_EXIT_CODE,
    discard_stdio,
};
use libctd_linux::{LinuxClient, LinuxRemote};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::support::embedded;

/// The namespace the engine runs its containers in.
pub(crate) const NS: &str = "chaos";
/// How long an engine waits for containerd to come back, or for exits.
pub(crate) const T: Duration = Duration::from_secs(60);
/// How many events an engine's stream buffers; a full one only slows
/// their delivery.
const EVENTS: usize = 1024;

/// One exit the engine committed.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub(crate) code: u32,
    /// The error that said why the status is unknown, if one did.
    pub(crate) error: Option<String>,
    /// How it came: "event", or "restore" (restore said not alive, and
    /// delete_task answered).
    pub(crate) via: &'static str,
    /// The engine generation that committed it (read in the verdict's
    /// debug output).
    #[allow(dead_code)]
    pub(crate) generation: u32,
}

/// What the test knows of one process, and what the engine saw of it.
#[derive(Debug)]
pub(crate) struct Proc {
    /// The code its script exits with.
    pub(crate) code: u32,
    pub(crate) exec: bool,
    /// `None` while its start is in flight; whether it started.
    pub(crate) started: Option<bool>,
    /// Its shim was SIGKILLed before its exit was committed.
    pub(crate) shim_killed: bool,
    /// The engine generation that started it.
    pub(crate) generation: u32,
    pub(crate) exits: Vec<Exit>,
}

/// A container the engine made.
#[derive(Debug)]
pub(crate) struct Container {
    /// The label of its current init process in the ledger.
    pub(crate) init: String,
    pub(crate) deleted: bool,
    pub(crate) cgroup: PathBuf,
}

#[derive(Default)]
struct Book {
    procs: BTreeMap<(String, String), Proc>,
    containers: BTreeMap<String, Container>,
    problems: Vec<String>,
}

/// What the engine committed, across its restarts.
#[derive(Default, Clone)]
pub(crate) struct Ledger(Arc<Mutex<Book>>);

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap()
    }

    /// A container and its init process (labelled `init`), before its start.
    pub(crate) fn created(
        &self,
        id: &str,
        init: &str,
        code: u32,
        cgroup: PathBuf,
        generation: u32,
    ) {
        let mut b = self.book();
        b.containers.insert(
            id.to_owned(),
            Container {
                init: init.to_owned(),
                deleted: false,
                cgroup,
            },
        );
        b.procs.insert(
            (id.to_owned(), init.to_owned()),
            proc(code, false, generation),
        );
    }

    /// An exec, before its start.
    pub(crate) fn exec(&self, id: &str, exec: &str, code: u32, generation: u32) {
        self.book().procs.insert(
            (id.to_owned(), exec.to_owned()),
            proc(code, true, generation),
        );
    }

    /// Whether a process's start succeeded.
    pub(crate) fn started(&self, id: &str, label: &str, ok: bool) {
        if let Some(p) = self
            .book()
            .procs
            .get_mut(&(id.to_owned(), label.to_owned()))
        {
            p.started = Some(ok);
        }
    }

    /// The shim of container `id` was killed: what has not exited yet may
    /// end with the status of a process whose shim died.
    pub(crate) fn shim_killed(&self, id: &str) {
        for ((c, _), p) in self.book().procs.iter_mut() {
            if c == id && p.exits.is_empty() {
                p.shim_killed = true;
            }
        }
    }

    pub(crate) fn problem(&self, what: String) {
        eprintln!("chaos: {what}");
        self.book().problems.push(what);
    }

    fn commit(&self, id: &str, label: &str, exit: Exit) {
        let mut b = self.book();
        match b.procs.get_mut(&(id.to_owned(), label.to_owned())) {
            Some(p) => p.exits.push(exit),
            None => b.problems.push(format!(
                "{id}/{label}: an exit of a process never started: {exit:?}"
            )),
        }
    }

    fn init_of(&self, id: &str) -> Option<String> {
        self.book().containers.get(id).map(|c| c.init.clone())
    }

    fn deleted(&self, id: &str) {
        if let Some(c) = self.book().containers.get_mut(id) {
            c.deleted = true;
        }
    }

    /// Containers not deleted whose init has not exited (as far as the
    /// engine knows).
    pub(crate) fn running(&self) -> Vec<String> {
        let b = self.book();
        b.containers
            .iter()
            .filter(|(id, c)| {
                !c.deleted
                    && b.procs
                        .get(&((*id).clone(), c.init.clone()))
                        .is_some_and(|p| p.exits.is_empty())
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Containers not deleted.
    pub(crate) fn undeleted(&self) -> Vec<String> {
        let b = self.book();
        b.containers
            .iter()
            .filter(|(_, c)| !c.deleted)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Started processes (of `generation`, execs only, if given) with no
    /// exit yet, and containers not yet deleted.
    pub(crate) fn unsettled(&self, execs_of: Option<u32>) -> Vec<String> {
        let b = self.book();
        let procs = b.procs.iter().filter(|(_, p)| {
            p.started == Some(true)
                && p.exits.is_empty()
                && execs_of.is_none_or(|g| p.exec && p.generation == g)
        });
        let mut left: Vec<String> = procs.map(|((c, l), _)| format!("{c}/{l}")).collect();
        if execs_of.is_none() {
            left.extend(
                b.containers
                    .iter()
                    .filter(|(_, c)| !c.deleted)
                    .map(|(id, _)| format!("{id} (not deleted)")),
            );
        }
        left
    }

    pub(crate) fn cgroups(&self) -> Vec<PathBuf> {
        self.book()
            .containers
            .values()
            .map(|c| c.cgroup.clone())
            .collect()
    }

    /// Everything that breaks the promise: problems seen on the way, and
    /// processes without exactly one exit with an acceptable code.
    pub(crate) fn verdict(&self) -> Vec<String> {
        let b = self.book();
        let mut wrong = b.problems.clone();
        for ((id, label), p) in &b.procs {
            let name = format!("{id}/{label}");
            match (p.started, p.exits.as_slice()) {
                (Some(true), [exit]) => {
                    if !acceptable(p, exit) {
                        wrong.push(format!("{name}: wrong exit {exit:?} of {p:?}"));
                    }
                }
                (Some(false), []) => {}
                _ => wrong.push(format!("{name}: {p:?}")),
            }
        }
        wrong
    }

    /// How many processes started, and how many of them lost their shim.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let b = self.book();
        let started = b.procs.values().filter(|p| p.started == Some(true));
        let killed = started.clone().filter(|p| p.shim_killed).count();
        (started.count(), killed)
    }
}

fn proc(code: u32, exec: bool, generation: u32) -> Proc {
    Proc {
        code,
        exec,
        started: None,
        shim_killed: false,
        generation,
        exits: Vec::new(),
    }
}

/// A process's own code; an exec may also be SIGKILLed when its
/// container's init ends first (137); one whose shim died may end with
/// SIGKILL, containerd's status for a dead shim (255), or the unknown
/// status, which an event must explain with an error.
fn acceptable(p: &Proc, exit: &Exit) -> bool {
    if exit.code == p.code {
        return exit.error.is_none();
    }
    match exit.code {
        137 => p.exec || p.shim_killed,
        255 => p.shim_killed,
        UNKNOWN_EXIT_CODE => p.shim_killed && (exit.error.is_some() || exit.via == "restore"),
        _ => false,
    }
}

/// One life of the engine: a remote on the state directory, a client, and
/// the loop that handles exits.
pub(crate) struct Engine {
    pub(crate) generation: u32,
    pub(crate) remote: LinuxRemote,
    pub(crate) client: Arc<LinuxClient>,
    ledger: Ledger,
    stop: CancellationToken,
    events: tokio::task::JoinHandle<()>,
}

impl Engine {
    /// Starts generation `generation` on `dir`; from the second on, it
    /// restores every container the ledger has not deleted.
    pub(crate) async fn start(dir: &Path, ledger: &Ledger, generation: u32) -> Engine {
        let remote = retry(|| embedded(dir).rpc_timeout(Duration::from_secs(10)).build())
            .await
            .unwrap();
        let (backend, events) = EventStream::channel(EVENTS).unwrap();
        let client = retry(|| remote.new_linux_client(NS, backend.clone()))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let events = tokio::spawn(handle_exits(
            client.clone(),
            ledger.clone(),
            generation,
            events,
            stop.clone(),
        ));
        let engine = Engine {
            generation,
            remote,
            client,
            ledger: ledger.clone(),
            stop,
            events,
        };
        if generation > 1 {
            for id in ledger.undeleted() {
                engine.restore(&id).await;
            }
        }
        engine
    }

    /// Re-attaches to `id`; an init that ended unseen is committed from
    /// delete_task's answer.
    async fn restore(&self, id: &str) {
        let (client, ledger) = (&self.client, &self.ledger);
        let restored = match retry(|| client.restore(id, discard_stdio())).await {
            Ok(r) => r,
            Err(e) => return ledger.problem(format!("{id}: restore: {e}")),
        };
        if !ledger.running().iter().any(|r| r == id) {
            // Its exit was committed before the restart; its delete was not.
            return remove(client, ledger, id).await;
        }
        if restored.alive {
            return; // its exit comes as an event
        }
        let Some(init) = ledger.init_of(id) else {
            return ledger.problem(format!("{id}: restored but never created"));
        };
        match retry(|| client.delete_task(id)).await {
            Ok(answer) => ledger.commit(
                id,
                &init,
                Exit {
                    code: answer.exit_code,
                    error: None,
                    via: "restore",
                    generation: self.generation,
                },
            ),
            Err(e) => ledger.problem(format!(
                "{id}: restore said not alive (pid {:?}) and delete_task failed: {e}",
                restored.pid
            )),
        }
        remove(client, ledger, id).await;
    }

    /// The engine goes down as gently as a crash allows: the exits it is
    /// handling are finished, the ones not yet handled are dropped.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.events.await;
        drop(self.client);
        drop(self.remote);
    }
}

/// The engine's loop: each exit handled in a task of its own; when
/// stopped, the stream is closed (later deliveries fail, as to a crashed
/// engine), the handlers running are awaited and nothing more is taken.
async fn handle_exits(
    client: Arc<LinuxClient>,
    ledger: Ledger,
    generation: u32,
    mut events: EventStream,
    stop: CancellationToken,
) {
    let mut handlers = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            next = events.recv() => {
                let Some(event) = next else { break };
                if event.kind != EventType::Exit {
                    continue;
                }
                let (id, info) = (event.container_id, event.info);
                let (client, ledger) = (client.clone(), ledger.clone());
                handlers.spawn(async move {
                    on_exit(&client, &ledger, generation, &id, info).await;
                });
            }
        }
    }
    events.close();
    while handlers.join_next().await.is_some() {}
}

async fn on_exit(
    client: &LinuxClient,
    ledger: &Ledger,
    generation: u32,
    id: &str,
    info: EventInfo,
) {
    let exit = Exit {
        code: info.exit_code,
        error: info.error.as_ref().map(|e| format!("{e:#}")),
        via: "event",
        generation,
    };
    if info.process_id != INIT_PROCESS_ID {
        return ledger.commit(id, &info.process_id, exit);
    }
    let Some(init) = ledger.init_of(id) else {
        return ledger.problem(format!("{id}: an exit of an unknown container: {info:?}"));
    };
    ledger.commit(id, &init, exit);
    match retry(|| client.delete_task(id)).await {
        Ok(answer) if answer.exit_code != info.exit_code => ledger.problem(format!(
            "{id}: the exit event said {} and delete_task {}",
            info.exit_code, answer.exit_code
        )),
        Ok(_) => {}
        Err(e) => ledger.problem(format!("{id}: delete_task after its exit: {e}")),
    }
    remove(client, ledger, id).await;
}

async fn remove(client: &LinuxClient, ledger: &Ledger, id: &str) {
    match retry(|| client.delete(id)).await {
        Ok(()) => ledger.deleted(id),
        Err(e) => ledger.problem(format!("{id}: delete: {e}")),
    }
}

/// Runs `call` again while containerd is away (Unavailable, or a deadline
/// passed while it restarts), up to [`T`].
pub(crate) async fn retry<T, F, Fut>(mut call: F) -> libctd_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = libctd_core::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match call().await {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unavailable | ErrorKind::DeadlineExceeded
                ) && tokio::time::Instant::now() < deadline =>
            {
                // A pause between attempts while the daemon restarts.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r,
        }
    }
}
