//! Chaos on a real containerd: 100 containers whose processes (inits and
//! execs) end with codes of their own at random times, while containerd is
//! SIGKILLed and restarted, shims are SIGKILLed, and the engine restarts
//! (drops its client and remote, and a new remote restores every
//! container), several times over. The engine is a small one of the test's
//! (`engine.rs`) that handles exits as Moby does and keeps a ledger.
//!
//! Asserted at the end: every process that started got exactly one exit,
//! with its own code (or, when its shim was killed, a status for a process
//! whose shim died); every id can be used again; nothing is left. The seed
//! is printed: `LIBCTD_CHAOS_SEED=<n>` replays a run's choices (not the
//! machine's timing). The engine restarts once its execs have ended: the
//! contract restores containers, not execs.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod engine;
#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use engine::{Engine, Ledger, NS, T, retry};
use libctd_core::{Client, ErrorKind, INIT_PROCESS_ID, Remote, discard_stdio};
use libctd_testkit::containerd::{
    build_busybox_rootfs, busybox_process, busybox_spec, require_root, shim_of_container,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{assert_nothing_left, cgroup_of, daemons_of, shim_sockets};
use tokio::task::JoinSet;

const CONTAINERS: usize = 100;
/// How long faults are injected.
const CHAOS: Duration = Duration::from_secs(30);
const ENGINE_RESTARTS: u32 = 3;

/// SplitMix64: the test's only source of choices, from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An exit code no signal gives (1..=120).
    fn code(&mut self) -> u32 {
        1 + self.below(120) as u32
    }

    /// Seconds, with millisecond precision, in `lo..hi`.
    fn seconds(&mut self, lo: u64, hi: u64) -> String {
        let ms = lo * 1000 + self.below((hi - lo) * 1000);
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len() as u64) as usize])
    }
}

fn seed() -> u64 {
    match std::env::var("LIBCTD_CHAOS_SEED") {
        Ok(s) => s.parse().expect("LIBCTD_CHAOS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// The test's side of the run: what it injects, beside the engine.
struct Chaos {
    dir: PathBuf,
    rootfs: PathBuf,
    ledger: Ledger,
    rng: Rng,
    engine: Option<Engine>,
    /// Execs in flight (their calls), of the engine that made them.
    calls: JoinSet<()>,
    /// The daemon killed last, until its restart is seen.
    killed_daemon: Option<u32>,
    /// Sockets of killed shims, which nothing removes.
    sockets: Vec<PathBuf>,
    execs: usize,
    restarts: u32,
}

impl Chaos {
    fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    /// Creates and starts container `id`, whose init is labelled `label`
    /// and runs `script`, exiting with `code`.
    async fn run(&self, id: &str, label: &str, script: &str, code: u32) {
        let spec = busybox_spec(&self.rootfs, &["sh", "-c", script], false, None);
        let e = self.engine();
        self.ledger
            .created(id, label, code, cgroup_of(&spec), e.generation);
        retry(|| e.client.create(id, &spec, Default::default()))
            .await
            .unwrap();
        let started = retry(|| e.client.start(id, None, false, discard_stdio())).await;
        self.ledger.started(id, label, started.is_ok());
        started.unwrap();
    }

    /// Creates and starts every container of `plan` (id, label, script,
    /// code), eight at a time.
    async fn run_all(&self, plan: Vec<(String, String, String, u32)>) {
        for batch in plan.chunks(8) {
            let runs = batch
                .iter()
                .map(|(id, label, script, code)| self.run(id, label, script, *code));
            futures_join(runs).await;
        }
    }

    /// An exec in a random running container, its call in a task of its own.
    fn exec(&mut self) {
        let running = self.ledger.running();
        let Some(id) = self.rng.pick(&running).cloned() else {
            return;
        };
        self.execs += 1;
        let exec_id = format!("e{}", self.execs);
        let code = self.rng.code();
        let script = format!("sleep {}; exit {code}", self.rng.seconds(0, 3));
        let e = self.engine();
        self.ledger.exec(&id, &exec_id, code, e.generation);
        let (client, ledger) = (e.client.clone(), self.ledger.clone());
        self.calls.spawn(async move {
            let process = busybox_process(&["sh", "-c", &script], false);
            let started = client
                .exec(&id, &exec_id, &process, false, discard_stdio())
                .await;
            ledger.started(&id, &exec_id, started.is_ok());
        });
    }

    /// SIGKILLs containerd, unless the last one killed was not restarted yet.
    fn kill_daemon(&mut self) {
        let Some(pid) = self.engine().remote.daemon_pid() else {
            return;
        };
        // A pid goes round quickly here: only a containerd of this run's.
        let config = self.dir.join("containerd.toml");
        let ours = daemons_of(&config).contains(&pid);
        if self.killed_daemon == Some(pid) || !ours {
            return;
        }
        if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            eprintln!("chaos: containerd {pid} killed");
            self.killed_daemon = Some(pid);
        }
    }

    /// SIGKILLs the shim of a random running container.
    fn kill_shim(&mut self) {
        let running = self.ledger.running();
        let Some(id) = self.rng.pick(&running).cloned() else {
            return;
        };
        let Some(shim) = shim_of_container(NS, &id).and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        let sockets = shim_sockets(shim);
        // Marked first: the processes' exits may come at once.
        self.ledger.shim_killed(&id);
        if kill(Pid::from_raw(shim), Signal::SIGKILL).is_ok() {
            eprintln!("chaos: the shim {shim} of {id} killed");
            self.sockets.extend(sockets);
        }
    }

    /// Waits until `what` lists nothing, or fails the run with what is left.
    async fn settle(&self, what: &str, left: impl Fn() -> Vec<String>) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let now = left();
            if now.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                self.ledger.problem(format!("{what}: still {now:?}"));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The engine restarts: its exec calls and their exits are awaited
    /// (the contract restores containers, not execs); then it stops and a
    /// new generation restores everything.
    async fn restart_engine(&mut self) {
        while self.calls.join_next().await.is_some() {}
        let generation = self.engine().generation;
        self.settle("the execs' exits before the engine restarts", || {
            self.ledger.unsettled(Some(generation))
        })
        .await;
        self.engine.take().unwrap().stop().await;
        eprintln!("chaos: engine generation {generation} stopped");
        self.engine = Some(Engine::start(&self.dir, &self.ledger, generation + 1).await);
        self.restarts += 1;
    }

    /// Ends every running container (SIGTERM: each init's trap exits with
    /// its code) and waits for every exit to be committed.
    async fn end_all(&mut self) {
        while self.calls.join_next().await.is_some() {}
        let client = self.engine().client.clone();
        for id in self.ledger.running() {
            match retry(|| client.signal_process(&id, INIT_PROCESS_ID, 15)).await {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    self.ledger.problem(format!("{id}: SIGTERM: {e}"));
                }
                _ => {}
            }
        }
        self.settle("exits and deletes at the end", || {
            self.ledger.unsettled(None)
        })
        .await;
    }
}

/// Awaits all of `futures` concurrently.
async fn futures_join<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut all: Vec<_> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        all.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if all.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_exit_once_and_nothing_left_through_daemon_shim_and_engine_deaths() {
    require_root();
    let seed = seed();
    eprintln!("chaos: seed {seed} (replay with LIBCTD_CHAOS_SEED={seed})");
    let dir = PathBuf::from(format!("/tmp/libctd-c{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rootfs = dir.join("rootfs");
    let ledger = Ledger::default();
    let engine = Engine::start(&dir, &ledger, 1).await;
    build_busybox_rootfs(&rootfs).unwrap();
    let mut chaos = Chaos {
        dir: dir.clone(),
        rootfs,
        ledger: ledger.clone(),
        rng: Rng(seed),
        engine: Some(engine),
        calls: JoinSet::new(),
        killed_daemon: None,
        sockets: Vec::new(),
        execs: 0,
        restarts: 0,
    };

    // Each init exits with its code after a random time, or on SIGTERM;
    // four in ten run until the end.
    let plan: Vec<_> = (0..CONTAINERS)
        .map(|i| {
            let code = chaos.rng.code();
            let life = if chaos.rng.below(10) < 4 {
                "100000".to_owned()
            } else {
                chaos.rng.seconds(1, 40)
            };
            let script = format!("trap 'exit {code}' TERM; sleep {life} & wait; exit {code}");
            (format!("c{i}"), "init".to_owned(), script, code)
        })
        .collect();
    chaos.run_all(plan).await;

    // The engine restarts at random moments, ENGINE_RESTARTS times.
    let began = tokio::time::Instant::now();
    let mut restarts: Vec<Duration> = (0..ENGINE_RESTARTS)
        .map(|_| Duration::from_millis(chaos.rng.below(CHAOS.as_millis() as u64)))
        .collect();
    restarts.sort_unstable_by(|a, b| b.cmp(a));
    while began.elapsed() < CHAOS {
        if restarts.last().is_some_and(|at| began.elapsed() >= *at) {
            restarts.pop();
            chaos.restart_engine().await;
        }
        match chaos.rng.below(100) {
            0..8 => chaos.kill_daemon(),
            8..18 => chaos.kill_shim(),
            18..70 => chaos.exec(),
            _ => {}
        }
        // The pace of the chaos, not a wait for anything.
        let pause = Duration::from_millis(100 + chaos.rng.below(500));
        tokio::time::sleep(pause).await;
    }
    chaos.end_all().await;

    // Every id again, on the last engine: a container that exits at once.
    let again: Vec<_> = (0..CONTAINERS)
        .map(|i| {
            let code = chaos.rng.code();
            (
                format!("c{i}"),
                "again".to_owned(),
                format!("exit {code}"),
                code,
            )
        })
        .collect();
    chaos.run_all(again).await;
    chaos
        .settle("the ids used again", || ledger.unsettled(None))
        .await;

    let (started, shim_killed) = ledger.counts();
    eprintln!(
        "chaos: {started} processes ({} execs, {shim_killed} lost their shim), {} engine restarts, {} daemon restarts in the last engine",
        chaos.execs,
        chaos.restarts,
        chaos.engine().remote.restarts()
    );
    let wrong = ledger.verdict();
    let engine = chaos.engine.take().unwrap();
    if wrong.is_empty() {
        assert_nothing_left(&engine.remote, NS, &ledger.cgroups()).await;
    } else {
        // The daemon's side of a failed run, for whoever replays it.
        let kept = std::env::temp_dir().join(format!("libctd-chaos-{seed}-containerd.log"));
        if std::fs::copy(dir.join("containerd.log"), &kept).is_ok() {
            eprintln!("chaos: containerd's log kept at {}", kept.display());
        }
    }
    engine.remote.cleanup().await.unwrap();
    engine.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    for path in &chaos.sockets {
        let _ = std::fs::remove_file(path);
    }
    assert!(
        wrong.is_empty(),
        "seed {seed}: {} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
