//! Issue 18 over the simulation: how HCS reports exits and failures as
//! hcsshim describes it (a system exit without a process exit, a forced
//! exit, terminate on an exited process, HCS's own codes, a refused
//! PendingUpdates query). `ffi_exits.rs` runs the same cases over the real
//! binding against the computecore.dll double.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libctd_core::{Client, CreateOptions, ErrorKind, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::error::{Hresult, hresult_of};
use libctd_windows::hcs::HcsOp;
use libctd_windows::hcs::sim::{Sim, TERMINATED_EXIT};
use libctd_windows::{ClientSettings, WindowsClient};

#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::{T, process, spec};
use sim_env::{env, env_with, sys};

/// HCS answers a duplicate compute system id with its own
/// HCS_E_SYSTEM_ALREADY_EXISTS, from the call or from the operation's
/// result: AlreadyExists with a message, never "Unknown error".
#[tokio::test]
async fn a_duplicate_system_id_is_already_exists() {
    let e = env();
    // A second client of the same namespace: the id is taken in HCS only.
    let other =
        WindowsClient::new(e.sim.clone(), "test", Arc::new(RecordingBackend::new())).unwrap();
    e.client
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
    e.sim.fail_once(
        HcsOp::CreateComputeSystem,
        Some(&sys("d")),
        Hresult(0x8037_010F),
    );
    let err = e
        .client
        .create("d", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{}", err.report());
    assert!(!err.to_string().contains("Unknown error"), "{err}");
    assert_eq!(e.sim.compute_systems(), vec![sys("c")]);
    e.client.delete("c").await.unwrap();
    assert!(e.sim.compute_systems().is_empty());
}

/// Polls until process `pid` of `container` has ended in HCS.
async fn wait_ended(sim: &Sim, container: &str, pid: u32) {
    let until = Instant::now() + T;
    while sim.live_pids(container).contains(&pid) {
        assert!(Instant::now() < until, "process {pid} did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Killing an exec that exited, before its exit was reaped: HCS answers
/// E_ACCESSDENIED (Windows' TerminateProcess), which means it is gone. The
/// kill succeeds and the exec's own exit is delivered, once.
#[tokio::test]
async fn killing_an_exited_exec_is_not_permission_denied() {
    let e = env();
    // The exit notification is held: the exec has ended in HCS, the client
    // does not know it yet.
    e.sim.hold_exit_notices(&sys("c"));
    e.run("c", &spec("sleep")).await;
    let pid = e
        .client
        .exec("c", "e1", &process("exit 4"), false, discard_stdio())
        .await
        .unwrap();
    wait_ended(&e.sim, &sys("c"), pid).await;
    e.client.signal_process("c", "e1", 9).await.unwrap();
    assert!(e.sim.release_exit_notices(&sys("c")));
    let exit = e
        .backend
        .next_process_event("c", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 4);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.client
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("c").await;
    e.remove("c").await;
    let exits = e
        .backend
        .events_of("c")
        .into_iter()
        .filter(|(t, i)| *t == EventType::Exit && i.process_id == "e1")
        .count();
    assert_eq!(exits, 1);
}

/// After our own SIGKILL, HCS reports `ForcedExit` with HCS_E_TERMINATED
/// as its status: not a crash. Here SystemExited comes first and the init's
/// ProcessExited is held until after it (the exit does not depend on the
/// order). The exit carries the process's own code and no error, and
/// delete_task gives the same code.
#[tokio::test]
async fn a_forced_exit_is_not_a_crash() {
    let e = env();
    e.sim.hold_exit_notices(&sys("c"));
    let pid = e.run("c", &spec("sleep")).await;
    e.client
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    wait_ended(&e.sim, &sys("c"), pid).await;
    assert!(e.sim.release_exit_notices(&sys("c")));
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, TERMINATED_EXIT);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    let task = e.client.delete_task("c").await.unwrap();
    assert_eq!(task.exit_code, TERMINATED_EXIT);
    e.client.delete("c").await.unwrap();
    assert!(e.sim.compute_systems().is_empty());
}

/// Hosts since Windows Server 2019 refuse the PendingUpdates query (not a
/// property type of schema 2), and a host may be slow to answer at all:
/// the exit is clean (update_pending false, no error) and not held back
/// past the query's bound.
#[tokio::test]
async fn a_refused_or_slow_pending_updates_query_gives_a_clean_exit() {
    let e = env_with(ClientSettings {
        update_query_timeout: Duration::from_millis(200),
        ..ClientSettings::default()
    });
    e.run("refused", &spec("exit 0")).await;
    let exit = e.exit("refused").await;
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.remove("refused").await;

    e.sim.delay(
        HcsOp::GetComputeSystemProperties,
        Some(&sys("slow")),
        Duration::from_secs(5),
    );
    let started = Instant::now();
    e.run("slow", &spec("exit 0")).await;
    let exit = e.exit("slow").await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.remove("slow").await;
}

/// A compute system that dies sends SystemExited (UnexpectedExit) and no
/// ProcessExited for its processes. Within the exit grace the init and the
/// exec exit with 4294967295 and the system's error; then delete_task and
/// delete succeed and nothing is left.
#[tokio::test]
async fn a_dead_system_without_process_exits_still_exits() {
    let e = env_with(ClientSettings {
        exit_grace: Duration::from_millis(300),
        ..ClientSettings::default()
    });
    e.run("c", &spec("sleep")).await;
    e.client
        .exec("c", "e1", &process("sleep"), false, discard_stdio())
        .await
        .unwrap();
    let started = Instant::now();
    assert!(e.sim.crash(&sys("c")));
    lifecycle::assert_died(&e.client, &e.backend, "c", started).await;
    assert!(e.sim.compute_systems().is_empty());
}

/// A shutdown answered pending that fails afterwards (no exit follows it)
/// escalates to terminate at once, not after the shutdown timeout: the
/// exit comes soon, 4294967295 with the shutdown's failure.
#[tokio::test]
async fn a_shutdown_failing_after_submit_escalates_at_once() {
    let e = env();
    e.sim.fail_after_submit(
        HcsOp::ShutDownComputeSystem,
        &sys("c"),
        Hresult::from_win32(5),
        Duration::from_millis(200),
    );
    let started = Instant::now();
    e.run("c", &spec("exit 0")).await;
    let exit = e.exit("c").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exit.exit_code, u32::MAX);
    let text = exit.error.expect("the shutdown's failure").to_string();
    assert!(text.contains("failed to shutdown container"), "{text}");
    assert!(text.contains("(0x80070005)"), "{text}");
    assert_eq!(
        e.sim.call_count(HcsOp::TerminateComputeSystem, &sys("c")),
        1
    );
    e.remove("c").await;
}
