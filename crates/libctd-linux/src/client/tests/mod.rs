//! The client over containerd in memory (`conn::mem`): the event dedupe,
//! reconcile and rollback rules, without root or a daemon. Every wait is on
//! an event or a condition with a deadline.

use std::sync::Arc;
use std::time::Duration;

use libctd_core::oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec};
use libctd_core::{Client, ErrorKind, EventType, UNKNOWN_EXIT_CODE, discard_stdio, stdio_callback};
use libctd_testkit::RecordingBackend;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::LinuxClient;
use crate::conn::mem::{Fault, Mem};
use crate::conn::{Conn, Shared, Transport};
use crate::shim_exits::ShimExits;

/// The namespace of the fixture's client.
const NS: &str = "test";
/// How long a test waits for an event or a condition.
const WAIT: Duration = Duration::from_secs(10);
/// The deadline of a call to the double (a hung call fails after it).
const DEADLINE: Duration = Duration::from_millis(300);

struct Fixture {
    mem: Arc<Mem>,
    client: Arc<LinuxClient>,
    backend: Arc<RecordingBackend>,
    dir: tempfile::TempDir,
    _closed: DropGuard,
}

async fn fixture() -> Fixture {
    let mem = Mem::new(DEADLINE);
    fixture_on(mem).await
}

async fn fixture_on(mem: Arc<Mem>) -> Fixture {
    fixture_with(mem, None).await
}

/// A client of `mem` whose remote keeps shim exits in `exits`.
async fn fixture_with(mem: Arc<Mem>, exits: Option<Arc<ShimExits>>) -> Fixture {
    let (dir, conn, closed) = conn_with(&mem, exits);
    let backend = Arc::new(RecordingBackend::new());
    let client = LinuxClient::over(conn, backend.clone())
        .await
        .expect("the client subscribes");
    Fixture {
        mem,
        client,
        backend,
        dir,
        _closed: closed,
    }
}

/// A connection to `mem` whose remote keeps shim exits in `exits`.
fn conn_with(
    mem: &Arc<Mem>,
    exits: Option<Arc<ShimExits>>,
) -> (tempfile::TempDir, Conn, DropGuard) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let closed = CancellationToken::new();
    let shared = Arc::new(Shared {
        transport: Transport::lazy(&dir.path().join("no.sock"), Default::default()),
        fifo_root: dir.path().join("fifo"),
        runc_root: dir.path().join("runc"),
        runtime_dir: dir.path().join("runtimes"),
        shim_group: None,
        rpc_timeout: DEADLINE,
        bundle_root: None,
        closed: closed.clone(),
        shim_exits: exits,
    });
    let conn = Conn {
        namespace: NS.to_owned(),
        shared,
        api: mem.clone(),
        store: None,
    };
    (dir, conn, closed.drop_guard())
}

impl Fixture {
    fn spec(&self) -> Spec {
        let mut spec = Spec::default();
        let root = RootBuilder::default()
            .path(self.dir.path())
            .build()
            .expect("a root");
        spec.set_root(Some(root));
        spec
    }

    async fn create(&self, id: &str) {
        self.client
            .create(id, &self.spec(), Default::default())
            .await
            .expect("create");
    }

    async fn run(&self, id: &str) -> u32 {
        self.create(id).await;
        let pid = self
            .client
            .start(id, None, false, discard_stdio())
            .await
            .expect("start");
        self.backend
            .next_event(id, EventType::Start, WAIT)
            .await
            .expect("the start event");
        pid
    }

    async fn exec(&self, id: &str, exec_id: &str) -> libctd_core::Result<u32> {
        let spec = ProcessBuilder::default()
            .args(vec!["sh".to_owned()])
            .build()
            .expect("a process");
        self.client
            .exec(id, exec_id, &spec, false, discard_stdio())
            .await
    }

    /// The exits delivered for one process, once every queued event was handled.
    async fn exits_of(&self, id: &str, process_id: &str) -> Vec<u32> {
        self.client.event_queue().wait_idle().await;
        self.backend
            .events_of(id)
            .into_iter()
            .filter(|(e, i)| *e == EventType::Exit && i.process_id == process_id)
            .map(|(_, i)| i.exit_code)
            .collect()
    }

    /// Waits until every event the stream carried so far was handled: a
    /// marker event sent now comes through after them (the stream is read
    /// in order, and a reconciliation a subscription starts runs before
    /// the next event is read).
    async fn flush(&self, marker: &str) {
        self.mem.marker(marker);
        self.backend
            .next_event(marker, EventType::Paused, WAIT)
            .await
            .expect("the marker comes through");
    }

    /// Waits until a new subscription is live and has been reconciled.
    async fn wait_resubscribed(&self, marker: &str, syncs_before: usize) {
        poll(|| self.mem.syncs_delivered() > syncs_before).await;
        self.flush(marker).await;
    }
}

/// Polls `cond` until it holds, failing the test after [`WAIT`].
async fn poll(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition did not hold within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_by_stream_is_not_delivered_again_by_reconcile() {
    let f = fixture().await;
    f.run("a").await;
    f.run("marker").await;
    assert!(f.mem.exit("a", "", 3));
    let exit = f
        .backend
        .next_event("a", EventType::Exit, WAIT)
        .await
        .expect("the exit");
    assert_eq!(exit.exit_code, 3);
    // A gap: the client resubscribes and reconciles; containerd still
    // reports the process stopped with status 3.
    let syncs = f.mem.syncs_delivered();
    f.mem.drop_streams();
    f.wait_resubscribed("marker", syncs).await;
    f.mem.replay_exit("a", "");
    f.flush("marker").await;
    assert_eq!(f.exits_of("a", "init").await, vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_by_reconcile_is_not_delivered_again_by_stream() {
    let f = fixture().await;
    f.run("a").await;
    f.run("marker").await;
    f.mem.set_down(true);
    // Exits while nobody listens are lost, as in containerd.
    assert!(f.mem.exit("a", "", 7));
    let syncs = f.mem.syncs_delivered();
    f.mem.set_down(false);
    let exit = f
        .backend
        .next_event("a", EventType::Exit, WAIT)
        .await
        .expect("reconcile delivers the exit");
    assert_eq!(exit.exit_code, 7);
    f.wait_resubscribed("marker", syncs).await;
    // A late copy of the same exit on the stream is not a second exit.
    f.mem.replay_exit("a", "");
    f.flush("marker").await;
    assert_eq!(f.exits_of("a", "init").await, vec![7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_oom_events_of_one_kill_are_delivered_once() {
    let f = fixture().await;
    f.run("a").await;
    f.mem.oom("a", 15);
    assert!(f.mem.exit("a", "", 137));
    let exit = f
        .backend
        .next_event("a", EventType::Exit, WAIT)
        .await
        .expect("the exit");
    assert!(exit.oom_killed, "the exit says it was an OOM kill");
    let ooms = |f: &Fixture| {
        f.backend
            .event_types_of("a")
            .into_iter()
            .filter(|e| *e == EventType::Oom)
            .count()
    };
    f.client.event_queue().wait_idle().await;
    assert_eq!(ooms(&f), 1);
    // A new start is a new process: its OOM kill is reported again.
    f.client.delete_task("a").await.expect("delete_task");
    f.client
        .start("a", None, false, discard_stdio())
        .await
        .expect("start again");
    f.mem.oom("a", 3);
    assert!(f.mem.exit("a", "", 137));
    f.backend
        .next_event("a", EventType::Exit, WAIT)
        .await
        .expect("the second exit");
    f.client.event_queue().wait_idle().await;
    assert_eq!(ooms(&f), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_a_gap_delivers_what_happened_meanwhile() {
    let f = fixture().await;
    f.run("a").await;
    f.run("b").await;
    f.run("c").await;
    f.exec("a", "e1").await.expect("exec");
    f.mem.set_down(true);
    assert!(f.mem.exit("a", "e1", 5));
    // b's task vanishes without an exit (its shim died).
    f.mem.lose_task("b");
    f.mem.set_down(false);
    let e1 = f
        .backend
        .next_process_event("a", "e1", EventType::Exit, WAIT)
        .await
        .expect("the exec's exit");
    assert_eq!(e1.exit_code, 5);
    let b = f
        .backend
        .next_event("b", EventType::Exit, WAIT)
        .await
        .expect("an exit for the vanished task");
    assert_eq!(b.exit_code, UNKNOWN_EXIT_CODE);
    assert!(b.error.is_some(), "the exit says why its status is unknown");
    // The exited exec was deleted after its exit was delivered.
    poll(|| !f.mem.has_process("a", "e1")).await;
    // c still runs: no exit for it, and no second exit for anyone.
    assert_eq!(f.exits_of("c", "init").await, Vec::<u32>::new());
    assert_eq!(f.exits_of("a", "e1").await, vec![5]);
    assert_eq!(f.exits_of("a", "init").await, Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_nothing_and_no_exit() {
    let f = fixture().await;
    f.create("a").await;
    // containerd answers: the task was made, starting it failed.
    f.mem.fail("start", Fault::Lost);
    let err = f
        .client
        .start("a", None, false, discard_stdio())
        .await
        .expect_err("start fails");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!f.mem.has_task("a"), "the rollback deleted the task");
    f.client
        .start("a", None, false, discard_stdio())
        .await
        .expect("start can be retried");
    f.backend
        .next_event("a", EventType::Start, WAIT)
        .await
        .expect("the retried start");
    // The killed first process's exit is not delivered as the new one's.
    assert_eq!(f.exits_of("a", "init").await, Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_rollback_that_cannot_reach_containerd_completes_before_the_id_is_reused() {
    let f = fixture().await;
    f.create("a").await;
    f.mem.fail("start", Fault::Hang);
    // The daemon vanishes mid-rollback: the kill does not reach it.
    f.mem.fail("kill", Fault::Unavailable);
    let err = f
        .client
        .start("a", None, false, discard_stdio())
        .await
        .expect_err("start fails");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert!(f.mem.has_task("a"), "the task is left, remembered");
    // While containerd still cannot be reached, the id is not used on top.
    f.mem.fail("kill", Fault::Unavailable);
    let err = f
        .client
        .start("a", None, false, discard_stdio())
        .await
        .expect_err("the remembered rollback still cannot complete");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let creates = f.mem.calls("create_task");
    assert_eq!(creates, 1, "no second task create on top of the first");
    f.client
        .start("a", None, false, discard_stdio())
        .await
        .expect("the rollback completes, then start succeeds");
    let log = f.mem.call_log();
    let deleted = log.iter().position(|c| *c == "delete_task");
    let recreated = log.iter().rposition(|c| *c == "create_task");
    assert!(
        deleted.is_some() && deleted < recreated,
        "the old task was deleted before the new create: {log:?}"
    );
    f.backend
        .next_event("a", EventType::Start, WAIT)
        .await
        .expect("the start event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_exec_leaves_nothing() {
    let f = fixture().await;
    f.run("a").await;
    // containerd made the exec, the answer was lost.
    f.mem.fail("exec", Fault::Lost);
    let err = f.exec("a", "e1").await.expect_err("exec fails");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!f.mem.has_process("a", "e1"), "the rollback deleted it");
    // A failed exec start: killed and deleted, no exit delivered.
    f.mem.fail("start", Fault::Unavailable);
    f.exec("a", "e1").await.expect_err("exec start fails");
    assert!(!f.mem.has_process("a", "e1"));
    f.exec("a", "e1").await.expect("exec can be retried");
    f.backend
        .next_process_event("a", "e1", EventType::ExecStarted, WAIT)
        .await
        .expect("the retried exec started");
    assert_eq!(f.exits_of("a", "e1").await, Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_that_exits_at_once_is_deleted_only_after_its_start_answered() {
    let f = fixture().await;
    f.run("a").await;
    // Its exit is delivered while containerd's Tasks.Start still asks the
    // shim for its pid (seen on containerd 1.7 with `echo` as the exec).
    f.mem.exit_at_start("a", "e1", 7);
    let pid = f.exec("a", "e1").await.expect("the exec's start succeeds");
    assert!(pid > 0);
    assert_eq!(f.exits_of("a", "e1").await, vec![7], "its exit, once");
    poll(|| !f.mem.has_process("a", "e1")).await;
    assert_eq!(f.mem.calls("delete_process"), 1, "deleted once it answered");
    f.exec("a", "e1").await.expect("the id is usable again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_rollback_that_cannot_reach_containerd_completes_before_the_id_is_reused() {
    let f = fixture().await;
    f.run("a").await;
    f.mem.fail("exec", Fault::Lost);
    f.mem.fail("kill", Fault::Unavailable);
    f.exec("a", "e1").await.expect_err("exec fails");
    assert!(f.mem.has_process("a", "e1"), "left, remembered");
    f.mem.fail("kill", Fault::Hang);
    let err = f
        .exec("a", "e1")
        .await
        .expect_err("the rollback still cannot complete");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(f.mem.calls("exec"), 1, "no exec on top of the first");
    f.exec("a", "e1")
        .await
        .expect("completed, then exec succeeds");
    assert_eq!(f.mem.calls("delete_process"), 1);
    f.backend
        .next_process_event("a", "e1", EventType::ExecStarted, WAIT)
        .await
        .expect("the exec started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_subscription_is_ready_only_once_proven_live() {
    let mem = Mem::new(DEADLINE);
    // The first subscription is accepted but carries nothing.
    mem.set_deaf(true);
    let connecting = tokio::spawn(fixture_on(mem.clone()));
    // The client keeps publishing its sync event and does not call itself
    // ready while it never comes back.
    poll(|| mem.calls("publish") >= 3).await;
    assert!(
        !connecting.is_finished(),
        "ready before the stream was live"
    );
    assert_eq!(mem.calls("subscribe"), 1);
    // The stream breaks; the next subscription hears.
    mem.set_deaf(false);
    mem.drop_streams();
    let f = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("ready within the deadline")
        .expect("the fixture task");
    assert_eq!(mem.calls("subscribe"), 2);
    // Ready means live: the first event after it is delivered.
    f.run("a").await;
}

/// The FIFO files left in the client's stdio directory.
fn fifo_files(f: &Fixture) -> Vec<String> {
    match std::fs::read_dir(f.dir.path().join("fifo").join(NS)) {
        Ok(dir) => dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_the_engine_drops_costs_no_fifos() {
    let f = fixture().await;
    f.run("quiet").await;
    assert_eq!(
        f.mem.stdio("quiet", "").expect("the init process"),
        [String::new(), String::new(), String::new()],
        "containerd gives the process /dev/null"
    );
    f.exec("quiet", "e1").await.expect("exec");
    assert_eq!(
        f.mem.stdio("quiet", "e1").expect("the exec"),
        [String::new(), String::new(), String::new()]
    );
    assert!(fifo_files(&f).is_empty(), "{:?}", fifo_files(&f));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_the_engine_keeps_gets_fifos() {
    let f = fixture().await;
    f.create("loud").await;
    // The engine keeps stdout and drops stderr: both stay FIFOs (the
    // dropped one is drained), as the shim needs every path or none.
    let (kept_tx, kept_rx) = std::sync::mpsc::channel();
    let attach = stdio_callback(move |mut io| {
        let _ = kept_tx.send(io.stdout.take());
        Ok(Box::new(()))
    });
    f.client
        .start("loud", None, false, attach)
        .await
        .expect("start");
    let stdout = kept_rx.recv().expect("the callback ran");
    assert!(stdout.is_some());
    let [stdin, out, err] = f.mem.stdio("loud", "").expect("the init process");
    assert!(stdin.is_empty());
    assert!(out.ends_with("loud@init-stdout"), "{out}");
    assert!(err.ends_with("loud@init-stderr"), "{err}");
    assert_eq!(fifo_files(&f).len(), 2, "{:?}", fifo_files(&f));
    // With stdin asked for, even all-dropped output keeps its FIFOs.
    f.create("in").await;
    f.client
        .start("in", None, true, discard_stdio())
        .await
        .expect("start with stdin");
    let [stdin, out, _] = f.mem.stdio("in", "").expect("the init process");
    assert!(stdin.ends_with("in@init-stdin") && !out.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_refusals_are_failed_preconditions_as_from_the_shim() {
    use crate::conn::Containerd;
    use crate::convert::status_error;
    let f = fixture().await;
    f.run("a").await;
    let refused = |r: Result<(), tonic::Status>| status_error(r.expect_err("refused")).kind();
    // The double answers as the runc shim's init state machine does; a race
    // past the client's own status check gets the same kind.
    assert_eq!(
        refused(f.mem.resume("a").await),
        ErrorKind::FailedPrecondition
    );
    f.mem.pause("a").await.expect("pause a running task");
    assert_eq!(
        refused(f.mem.pause("a").await),
        ErrorKind::FailedPrecondition
    );
    f.mem.resume("a").await.expect("resume a paused task");
    assert!(f.mem.exit("a", "", 0));
    assert_eq!(
        refused(f.mem.pause("a").await),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        refused(f.mem.resume("a").await),
        ErrorKind::FailedPrecondition
    );
    let e = f.client.pause("a").await.expect_err("a stopped task");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
}

mod images;
mod kept;
