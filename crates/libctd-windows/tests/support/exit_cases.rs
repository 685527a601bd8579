//! Issue 18's cases, once for every test environment: how HCS reports
//! exits and failures as hcsshim describes it (a system exit without a
//! process exit, a forced exit, terminate on an exited process, HCS's own
//! codes, a refused or answered PendingUpdates query, a lost service, a
//! hung HCS that reports no exit at all). `exits.rs` runs them over the
//! simulation, `ffi_exits.rs` over the real binding against the
//! computecore.dll double; each environment gives its client and its
//! fault controls through [`ExitEnv`].

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use libctd_core::{Client, CreateOptions, ErrorKind, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::error::{Hresult, hresult_of};
use libctd_windows::hcs::sim::TERMINATED_EXIT;
use libctd_windows::hcs::{Hcs, HcsOp};
use libctd_windows::{ClientSettings, WindowsClient};

use crate::lifecycle::{self, T, process, spec};

/// A client over one HCS, and that HCS's fault controls. Faults of a
/// container are set before it is created.
pub(crate) trait ExitEnv: Sized {
    /// The HCS the client drives.
    type Hcs: Hcs;

    /// A client with `settings`, in a namespace no other test uses.
    fn with_settings(settings: ClientSettings) -> Self;
    /// The client.
    fn client(&self) -> &WindowsClient<Self::Hcs>;
    /// The client's backend.
    fn backend(&self) -> &RecordingBackend;
    /// Another client of the same namespace over the same HCS.
    fn second_client(&self) -> WindowsClient<Self::Hcs>;
    /// Creating container `id`'s compute system fails with `hresult` from
    /// its operation.
    fn fail_create(&self, id: &str, hresult: Hresult);
    /// Property queries on container `id` are answered `delay` late.
    fn slow_properties(&self, id: &str, delay: Duration);
    /// The next shutdown of container `id` is answered pending, then fails
    /// with `hresult` without stopping anything.
    fn fail_shutdown_after_submit(&self, id: &str, hresult: Hresult);
    /// ProcessExited notifications of container `id` are held until released.
    fn hold_exit_notices(&self, id: &str);
    /// HCS hangs for container `id`: what it stops ends, but neither
    /// ProcessExited nor SystemExited is ever sent.
    fn lose_exit_notices(&self, id: &str);
    /// HCS hangs for container `id` as for [`lose_exit_notices`], and its
    /// terminate takes effect only `delay` late (answered pending first).
    ///
    /// [`lose_exit_notices`]: ExitEnv::lose_exit_notices
    fn hang_terminate(&self, id: &str, delay: Duration);
    /// Sends the held notifications of container `id`; false when none were held.
    fn release_exit_notices(&self, id: &str) -> bool;
    /// Returns once process `pid` of container `id` has ended in HCS.
    async fn wait_ended(&self, id: &str, pid: u32);
    /// Makes container `id`'s compute system die; false when it does not run.
    fn crash(&self, id: &str) -> bool;
    /// Ends process `pid` of container `id` with `code`, as if it exited
    /// by itself; false when no such process runs.
    fn end_process(&self, id: &str, pid: u32, code: u32) -> bool;
    /// Container `id`'s host answers PendingUpdates queries with `pending`
    /// (hosts since Windows Server 2019 refuse them).
    fn answer_pending_updates(&self, id: &str, pending: bool);
    /// The service is lost for container `id`: every call fails with
    /// HCS_E_SERVICE_DISCONNECT.
    fn disconnect(&self, id: &str);
    /// How many times `op` was called on container `id`'s compute system.
    fn call_count(&self, id: &str, op: HcsOp) -> usize;
    /// Nothing is left of the test's containers in HCS.
    async fn assert_clean(&self);

    /// A client with the default settings.
    fn new() -> Self {
        Self::with_settings(ClientSettings::default())
    }
}

/// HCS answers a duplicate compute system id with its own
/// HCS_E_SYSTEM_ALREADY_EXISTS, from the call or from the operation's
/// result: AlreadyExists with a message, never "Unknown error", and nothing
/// left behind.
pub(crate) async fn a_duplicate_system_id_is_already_exists<E: ExitEnv>() {
    let e = E::new();
    // A second client of the same namespace: the id is taken in HCS only.
    let other = e.second_client();
    e.client()
        .create("c", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap();
    let err = other
        .create("c", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{}", err.report());
    assert_eq!(hresult_of(&err), Some(Hresult(0x8037_010F)));
    let text = err.to_string();
    assert!(text.contains("exists already. (0x8037010f)"), "{text}");

    // The same code as the operation's result.
    e.fail_create("d", Hresult(0x8037_010F));
    let err = e
        .client()
        .create("d", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{}", err.report());
    assert!(!err.to_string().contains("Unknown error"), "{err}");
    e.client().delete("c").await.unwrap();
    e.assert_clean().await;
}

/// Killing an exec that exited, before its exit notification came: HCS
/// answers E_ACCESSDENIED (Windows' TerminateProcess), which means it is
/// gone. The kill succeeds and the exec's own exit is delivered, once.
pub(crate) async fn killing_an_exited_exec_is_not_permission_denied<E: ExitEnv>() {
    let e = E::new();
    // The exec ends in HCS; the client does not know it yet.
    e.hold_exit_notices("c");
    lifecycle::run(e.client(), "c", &spec("sleep")).await;
    let pid = e
        .client()
        .exec("c", "e1", &process("exit 4"), false, discard_stdio())
        .await
        .unwrap();
    e.wait_ended("c", pid).await;
    e.client().signal_process("c", "e1", 9).await.unwrap();
    assert!(e.release_exit_notices("c"));
    let exit = e
        .backend()
        .next_process_event("c", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 4);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.client()
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    lifecycle::exit(e.backend(), "c").await;
    lifecycle::remove(e.client(), "c").await;
    let exits = e
        .backend()
        .events_of("c")
        .into_iter()
        .filter(|(t, i)| *t == EventType::Exit && i.process_id == "e1")
        .count();
    assert_eq!(exits, 1);
    e.assert_clean().await;
}

/// After our own SIGKILL, HCS reports `ForcedExit` with HCS_E_TERMINATED
/// as its status: not a crash. Here SystemExited comes first and the
/// init's ProcessExited is held until after it (the exit does not depend
/// on their order). The exit carries the process's own code and no error,
/// as does delete_task.
pub(crate) async fn a_forced_exit_is_not_a_crash<E: ExitEnv>() {
    let e = E::new();
    e.hold_exit_notices("c");
    let pid = lifecycle::run(e.client(), "c", &spec("sleep")).await;
    e.client()
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.wait_ended("c", pid).await;
    assert!(e.release_exit_notices("c"));
    let exit = lifecycle::exit(e.backend(), "c").await;
    assert_eq!(exit.exit_code, TERMINATED_EXIT);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    let task = e.client().delete_task("c").await.unwrap();
    assert_eq!(task.exit_code, TERMINATED_EXIT);
    e.client().delete("c").await.unwrap();
    e.assert_clean().await;
}

/// Hosts since Windows Server 2019 refuse the PendingUpdates query (not a
/// property type of schema 2), and a host may be slow to answer at all:
/// the exit is clean (update_pending false, no error) and not held back
/// past the query's bound (the slow query is given up on, not left
/// holding the system).
pub(crate) async fn a_refused_or_slow_pending_updates_query_gives_a_clean_exit<E: ExitEnv>() {
    let e = E::with_settings(ClientSettings {
        update_query_timeout: Duration::from_millis(200),
        ..ClientSettings::default()
    });
    lifecycle::run(e.client(), "refused", &spec("exit 0")).await;
    let exit = lifecycle::exit(e.backend(), "refused").await;
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    lifecycle::remove(e.client(), "refused").await;

    e.slow_properties("slow", Duration::from_secs(5));
    let started = Instant::now();
    lifecycle::run(e.client(), "slow", &spec("exit 0")).await;
    let exit = lifecycle::exit(e.backend(), "slow").await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2000), "took {took:?}");
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    lifecycle::remove(e.client(), "slow").await;
    e.assert_clean().await;
}

/// A compute system that dies sends SystemExited (UnexpectedExit) and no
/// ProcessExited for its processes (calls on them answer
/// HCS_E_INVALID_STATE). Within the exit grace the init and the exec exit
/// with 4294967295 and the system's error; then delete_task and delete
/// succeed and nothing is left.
pub(crate) async fn a_dead_system_without_process_exits_still_exits<E: ExitEnv>() {
    let e = E::with_settings(ClientSettings {
        exit_grace: Duration::from_millis(300),
        ..ClientSettings::default()
    });
    run_with_an_exec(&e).await;
    let started = Instant::now();
    assert!(e.crash("c"));
    lifecycle::assert_died(e.client(), e.backend(), "c", started).await;
    e.assert_clean().await;
}

/// Runs container "c" whose init and exec "e1" sleep.
async fn run_with_an_exec<E: ExitEnv>(e: &E) {
    lifecycle::run(e.client(), "c", &spec("sleep")).await;
    e.client()
        .exec("c", "e1", &process("sleep"), false, discard_stdio())
        .await
        .unwrap();
}

/// The bound on a stop (the shutdown timeout) in the hung-HCS cases.
const STOP_BOUND: Duration = Duration::from_millis(500);

/// A client whose stops are bounded by `bound` (the shutdown timeout).
fn with_stop_bound<E: ExitEnv>(bound: Duration) -> E {
    E::with_settings(ClientSettings {
        shutdown_timeout: bound,
        ..ClientSettings::default()
    })
}

/// Sends `signal` to container "c"'s init, whose exit HCS never reports:
/// its exit event must carry 4294967295 and a DeadlineExceeded error.
/// Gives the error's text and how long the exit took from the signal.
async fn stop_unanswered<E: ExitEnv>(e: &E, signal: i32) -> (String, Duration) {
    let started = Instant::now();
    e.client()
        .signal_process("c", INIT_PROCESS_ID, signal)
        .await
        .unwrap();
    let init = lifecycle::exit(e.backend(), "c").await;
    let took = started.elapsed();
    assert_eq!(init.exit_code, u32::MAX);
    let err = init.error.expect("why the exit code is unknown");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{}", err.report());
    (err.to_string(), took)
}

/// A hung HCS: after a kill, neither the init's ProcessExited nor its
/// system's SystemExited ever comes. Within the bound on a stop (the
/// shutdown timeout) the init and the exec exit with 4294967295 and an
/// error naming the bound and the kill; delete_task and delete succeed,
/// and nothing is left (closing the last handle ends the system).
pub(crate) async fn a_hung_hcs_still_exits_after_a_kill<E: ExitEnv>() {
    let e: E = with_stop_bound(STOP_BOUND);
    e.lose_exit_notices("c");
    run_with_an_exec(&e).await;
    let (text, took) = stop_unanswered(&e, 9).await;
    assert!(took >= STOP_BOUND && took < STOP_BOUND * 6, "took {took:?}");
    assert!(text.contains("HcsTerminateComputeSystem"), "{text}");
    assert!(text.contains("exit container c process init"), "{text}");
    let exec = e
        .backend()
        .next_process_event("c", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exec.exit_code, u32::MAX);
    assert!(exec.error.is_some());
    assert_eq!(
        e.client().delete_task("c").await.unwrap().exit_code,
        u32::MAX
    );
    e.client().delete("c").await.unwrap();
    e.assert_clean().await;
}

/// A hung HCS after a graceful stop (SIGTERM shuts the system down): the
/// same bound, the error naming the shutdown; delete_task and delete
/// succeed and nothing is left.
pub(crate) async fn a_hung_hcs_still_exits_after_a_shutdown<E: ExitEnv>() {
    let e: E = with_stop_bound(STOP_BOUND);
    e.lose_exit_notices("c");
    lifecycle::run(e.client(), "c", &spec("sleep")).await;
    let (text, took) = stop_unanswered(&e, 15).await;
    assert!(took >= STOP_BOUND && took < STOP_BOUND * 6, "took {took:?}");
    assert!(text.contains("HcsShutDownComputeSystem"), "{text}");
    lifecycle::remove(e.client(), "c").await;
    e.assert_clean().await;
}

/// A hung HCS whose terminate also hangs (answered pending, in effect
/// only 20 s later): the kill's operation does not hold the system past
/// the bound. The exit comes within it, the close cancels the submitted
/// terminate instead of waiting for it, and nothing is left.
pub(crate) async fn a_hung_kill_does_not_hold_the_system<E: ExitEnv>() {
    let e: E = with_stop_bound(STOP_BOUND);
    e.hang_terminate("c", Duration::from_secs(20));
    let started = Instant::now();
    lifecycle::run(e.client(), "c", &spec("sleep")).await;
    let (_, took) = stop_unanswered(&e, 9).await;
    assert!(took < Duration::from_secs(4), "took {took:?}");
    lifecycle::remove(e.client(), "c").await;
    e.assert_clean().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// A shutdown answered pending that fails afterwards (no exit follows it)
/// escalates to terminate at once, not after the 300 s shutdown timeout:
/// the exit comes soon, 4294967295 with the shutdown's failure, and its
/// operation is not left behind. Gives the environment, for checks of its
/// own.
pub(crate) async fn a_shutdown_failing_after_submit_escalates_at_once<E: ExitEnv>() -> E {
    let e = E::new();
    e.fail_shutdown_after_submit("c", Hresult::from_win32(5));
    let started = Instant::now();
    lifecycle::run(e.client(), "c", &spec("exit 0")).await;
    let exit = lifecycle::exit(e.backend(), "c").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exit.exit_code, u32::MAX);
    let text = exit.error.expect("the shutdown's failure").to_string();
    assert!(text.contains("failed to shutdown container"), "{text}");
    assert!(text.contains("(0x80070005)"), "{text}");
    lifecycle::remove(e.client(), "c").await;
    e.assert_clean().await;
    e
}

/// A host that answers PendingUpdates (the model's plan can, though hosts
/// since Windows Server 2019 refuse the query): an exit with code 0 carries
/// `update_pending`, a non-zero one does not (the query is not even made),
/// and neither is an error.
pub(crate) async fn a_host_answering_pending_updates_marks_a_clean_exit<E: ExitEnv>() {
    let e = E::new();
    e.answer_pending_updates("ok", true);
    e.answer_pending_updates("bad", true);
    lifecycle::run(e.client(), "ok", &spec("exit 0")).await;
    let exit = lifecycle::exit(e.backend(), "ok").await;
    assert_eq!(exit.exit_code, 0);
    assert!(exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    lifecycle::remove(e.client(), "ok").await;
    lifecycle::run(e.client(), "bad", &spec("exit 3")).await;
    let exit = lifecycle::exit(e.backend(), "bad").await;
    assert_eq!(exit.exit_code, 3);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    assert_eq!(
        e.call_count("bad", HcsOp::GetComputeSystemProperties),
        0,
        "PendingUpdates must not be asked for a non-zero exit"
    );
    lifecycle::remove(e.client(), "bad").await;
    e.assert_clean().await;
}

/// A lost connection to HCS (HCS_E_SERVICE_DISCONNECT): create fails as
/// Unavailable with HCS's code, and leaves nothing behind.
pub(crate) async fn a_lost_service_is_unavailable<E: ExitEnv>() {
    let e = E::new();
    e.disconnect("c");
    let err = e
        .client()
        .create("c", &spec("exit 0"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.report());
    assert!(err.to_string().contains("(0x8037011e)"), "{err}");
    e.assert_clean().await;
}

/// The fault plan can end a process with a code of its choosing: the exit
/// carries it, and a process that ended cannot be ended again.
pub(crate) async fn the_plan_can_end_a_process_with_a_code<E: ExitEnv>() {
    let e = E::new();
    let pid = lifecycle::run(e.client(), "c", &spec("sleep")).await;
    assert!(e.end_process("c", pid, 42));
    assert_eq!(lifecycle::exit(e.backend(), "c").await.exit_code, 42);
    assert!(!e.end_process("c", pid, 43), "it exited already");
    lifecycle::remove(e.client(), "c").await;
    e.assert_clean().await;
}
