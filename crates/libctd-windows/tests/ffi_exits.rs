//! Issue 18 over the real binding (`hcs::ffi`) against the computecore.dll
//! double under Wine: the cases of `support/exit_cases.rs`, each ending
//! with the double's record of handle misuse, leaks and orphans checked.
//! Runs where `cargo xtask windows-test` installed the double.
#![cfg(windows)]
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/double.rs"]
mod double;
#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/ffi_env.rs"]
mod ffi_env;
#[path = "support/lifecycle.rs"]
mod lifecycle;

use ffi_env::Env;

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_system_id_is_already_exists() {
    exit_cases::a_duplicate_system_id_is_already_exists::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_an_exited_exec_is_not_permission_denied() {
    exit_cases::killing_an_exited_exec_is_not_permission_denied::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_exit_is_not_a_crash() {
    exit_cases::a_forced_exit_is_not_a_crash::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_or_slow_pending_updates_query_gives_a_clean_exit() {
    exit_cases::a_refused_or_slow_pending_updates_query_gives_a_clean_exit::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_system_without_process_exits_still_exits() {
    exit_cases::a_dead_system_without_process_exits_still_exits::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_hcs_still_exits_after_a_kill() {
    exit_cases::a_hung_hcs_still_exits_after_a_kill::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_hcs_still_exits_after_a_shutdown() {
    exit_cases::a_hung_hcs_still_exits_after_a_shutdown::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_kill_does_not_hold_the_system() {
    exit_cases::a_hung_kill_does_not_hold_the_system::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_answering_pending_updates_marks_a_clean_exit() {
    exit_cases::a_host_answering_pending_updates_marks_a_clean_exit::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_service_is_unavailable() {
    exit_cases::a_lost_service_is_unavailable::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_can_end_a_process_with_a_code() {
    exit_cases::the_plan_can_end_a_process_with_a_code::<Env>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_failing_after_submit_escalates_at_once() {
    drop(exit_cases::a_shutdown_failing_after_submit_escalates_at_once::<Env>().await);
}
