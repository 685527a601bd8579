//! Issue 18 over the simulation: the cases of `support/exit_cases.rs`
//! (`ffi_exits.rs` runs them over the real binding against the
//! computecore.dll double).

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;

use std::time::{Duration, Instant};

use libctd_core::{Client, discard_stdio};
use libctd_windows::ClientSettings;
use libctd_windows::error::Hresult;
use libctd_windows::hcs::HcsOp;
use sim_env::{Env, env_with, sys};

#[tokio::test]
async fn a_duplicate_system_id_is_already_exists() {
    exit_cases::a_duplicate_system_id_is_already_exists::<Env>().await;
}

#[tokio::test]
async fn killing_an_exited_exec_is_not_permission_denied() {
    exit_cases::killing_an_exited_exec_is_not_permission_denied::<Env>().await;
}

#[tokio::test]
async fn a_forced_exit_is_not_a_crash() {
    exit_cases::a_forced_exit_is_not_a_crash::<Env>().await;
}

#[tokio::test]
async fn a_refused_or_slow_pending_updates_query_gives_a_clean_exit() {
    exit_cases::a_refused_or_slow_pending_updates_query_gives_a_clean_exit::<Env>().await;
}

#[tokio::test]
async fn a_dead_system_without_process_exits_still_exits() {
    exit_cases::a_dead_system_without_process_exits_still_exits::<Env>().await;
}

#[tokio::test]
async fn a_hung_hcs_still_exits_after_a_kill() {
    exit_cases::a_hung_hcs_still_exits_after_a_kill::<Env>().await;
}

#[tokio::test]
async fn a_hung_hcs_still_exits_after_a_shutdown() {
    exit_cases::a_hung_hcs_still_exits_after_a_shutdown::<Env>().await;
}

#[tokio::test]
async fn a_hung_kill_does_not_hold_the_system() {
    exit_cases::a_hung_kill_does_not_hold_the_system::<Env>().await;
}

#[tokio::test]
async fn a_host_answering_pending_updates_marks_a_clean_exit() {
    exit_cases::a_host_answering_pending_updates_marks_a_clean_exit::<Env>().await;
}

#[tokio::test]
async fn a_lost_service_is_unavailable() {
    exit_cases::a_lost_service_is_unavailable::<Env>().await;
}

#[tokio::test]
async fn the_plan_can_end_a_process_with_a_code() {
    exit_cases::the_plan_can_end_a_process_with_a_code::<Env>().await;
}

/// The escalation is one terminate.
#[tokio::test]
async fn a_shutdown_failing_after_submit_escalates_at_once() {
    let e = exit_cases::a_shutdown_failing_after_submit_escalates_at_once::<Env>().await;
    assert_eq!(
        e.sim.call_count(HcsOp::TerminateComputeSystem, &sys("c")),
        1
    );
}

/// The simulation only (the double has no HcsWaitForComputeSystemExit):
/// the system's exit is waited for once per container, for all its
/// reapers, and a failed wait is made again. A wait that fails once is
/// neither taken for another wait's answer nor left waiting forever: the
/// system that dies afterwards still ends the init and the exec.
#[tokio::test]
async fn a_failed_system_exit_wait_does_not_hide_the_exit() {
    let e = env_with(ClientSettings {
        exit_grace: Duration::from_millis(300),
        ..ClientSettings::default()
    });
    e.sim.fail_once(
        HcsOp::WaitForComputeSystemExit,
        Some(&sys("c")),
        Hresult::from_win32(5),
    );
    e.run("c", &lifecycle::spec("sleep")).await;
    e.client
        .exec(
            "c",
            "e1",
            &lifecycle::process("sleep"),
            false,
            discard_stdio(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    assert!(e.sim.crash(&sys("c")));
    lifecycle::assert_died(&e.client, &e.backend, "c", started).await;
    assert_eq!(
        e.sim.call_count(HcsOp::WaitForComputeSystemExit, &sys("c")),
        2,
        "one wait, made again once"
    );
}
