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

use libctd_windows::hcs::HcsOp;
use sim_env::{Env, sys};

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

/// The escalation is one terminate.
#[tokio::test]
async fn a_shutdown_failing_after_submit_escalates_at_once() {
    let e = exit_cases::a_shutdown_failing_after_submit_escalates_at_once::<Env>().await;
    assert_eq!(
        e.sim.call_count(HcsOp::TerminateComputeSystem, &sys("c")),
        1
    );
}
