//! Issue 18 over the real binding (`hcs::ffi`) against the computecore.dll
//! double under Wine: the cases of `exits.rs`, with the double's record of
//! handle misuse, leaks and orphans checked at the end of each. Runs where
//! `cargo xtask windows-test` installed the double.
#![cfg(windows)]
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/double.rs"]
mod double;
#[path = "support/ffi_env.rs"]
mod ffi_env;
#[path = "support/lifecycle.rs"]
mod lifecycle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use libctd_core::{Client, CreateOptions, ErrorKind, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::error::{Hresult, hresult_of};
use libctd_windows::hcs::ffi::Computecore;
use libctd_windows::{ClientSettings, WindowsClient};

use ffi_env::{env, env_with_settings};
use lifecycle::{T, process, spec};

/// HCS_E_SYSTEM_ALREADY_EXISTS from the call (a duplicate id) and from the
/// operation's result: AlreadyExists with a message, nothing left behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_system_id_is_already_exists() {
    let e = env();
    let other = WindowsClient::new(
        Arc::new(Computecore::load().unwrap()),
        &e.namespace,
        Arc::new(RecordingBackend::new()),
    )
    .unwrap();
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
    assert!(
        err.to_string().contains("exists already. (0x8037010f)"),
        "{err}"
    );

    double::faults(
        &e.sys("d"),
        serde_json::json!({"Fail": {"HcsCreateComputeSystem": 0x8037_010F_u32}}),
    );
    let err = e
        .client
        .create("d", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{}", err.report());
    assert!(!err.to_string().contains("Unknown error"), "{err}");
    e.client.delete("c").await.unwrap();
    e.assert_clean().await;
}

/// Polls the double until process `pid` of `pattern`'s systems has exited.
fn wait_exited(pattern: &str, pid: u32) {
    let until = Instant::now() + T;
    loop {
        let r = double::report(pattern);
        let exited = r["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ProcessId"] == pid && p["Exited"] == true);
        if exited {
            return;
        }
        assert!(Instant::now() < until, "process {pid} did not exit: {r}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Killing an exec that exited before its exit notification arrived:
/// HcsTerminateProcess answers E_ACCESSDENIED. The kill succeeds and the
/// exec's own exit is delivered, once.
#[tokio::test(flavor = "multi_thread")]
async fn killing_an_exited_exec_is_not_permission_denied() {
    let e = env();
    double::faults(&e.sys("c"), serde_json::json!({"HoldExitNotices": true}));
    e.run("c", "sleep").await;
    let pid = e
        .client
        .exec("c", "e1", &process("exit 4"), false, discard_stdio())
        .await
        .unwrap();
    let pattern = format!("@{}", e.namespace);
    tokio::task::spawn_blocking(move || wait_exited(&pattern, pid))
        .await
        .unwrap();
    e.client.signal_process("c", "e1", 9).await.unwrap();
    assert!(double::release_exit_notices(&e.sys("c")));
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
    e.assert_clean().await;
}

/// After our own SIGKILL, HCS reports `ForcedExit` with HCS_E_TERMINATED
/// (here before the init's ProcessExited, held until after it): not a
/// crash. The exit carries the process's own code and no error, as does
/// delete_task.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_exit_is_not_a_crash() {
    let e = env();
    double::faults(&e.sys("c"), serde_json::json!({"HoldExitNotices": true}));
    let pid = e.run("c", "sleep").await;
    e.client
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let pattern = format!("@{}", e.namespace);
    tokio::task::spawn_blocking(move || wait_exited(&pattern, pid))
        .await
        .unwrap();
    assert!(double::release_exit_notices(&e.sys("c")));
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, 1);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    let task = e.client.delete_task("c").await.unwrap();
    assert_eq!(task.exit_code, 1);
    e.client.delete("c").await.unwrap();
    e.assert_clean().await;
}

/// The double refuses the PendingUpdates query as hosts since Windows
/// Server 2019 do; a slow answer is given up on at the query's bound, its
/// operation cancelled (not left holding the system's handle open).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_or_slow_pending_updates_query_gives_a_clean_exit() {
    let settings = ClientSettings {
        update_query_timeout: Duration::from_millis(200),
        ..ClientSettings::default()
    };
    let e = env_with_settings(Computecore::load().unwrap(), settings);
    e.run("refused", "exit 0").await;
    let exit = e.exit("refused").await;
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.remove("refused").await;

    double::faults(
        &e.sys("slow"),
        serde_json::json!({"Slow": {"HcsGetComputeSystemProperties": 5000}}),
    );
    let started = Instant::now();
    e.run("slow", "exit 0").await;
    let exit = e.exit("slow").await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2000), "took {took:?}");
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.remove("slow").await;
    e.assert_clean().await;
}

/// A compute system that dies sends no ProcessExited for its processes
/// (calls on them answer HCS_E_INVALID_STATE). Within the exit grace the
/// init and the exec exit with 4294967295 and the system's error; then
/// delete_task and delete succeed, and no handle or process is left.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_system_without_process_exits_still_exits() {
    let settings = ClientSettings {
        exit_grace: Duration::from_millis(300),
        ..ClientSettings::default()
    };
    let e = env_with_settings(Computecore::load().unwrap(), settings);
    e.run("c", "sleep").await;
    e.client
        .exec("c", "e1", &process("sleep"), false, discard_stdio())
        .await
        .unwrap();
    let started = Instant::now();
    assert!(double::crash(&e.sys("c")));
    lifecycle::assert_died(&e.client, &e.backend, "c", started).await;
    e.assert_clean().await;
}

/// A shutdown answered pending (it takes longer than the submit wait) that
/// then fails escalates to terminate at once, not after the 300 s shutdown
/// timeout; its operation is not left behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_failing_after_submit_escalates_at_once() {
    let e = env();
    double::faults(
        &e.sys("c"),
        serde_json::json!({"Slow": {"HcsShutDownComputeSystem": 1500},
                           "Fail": {"HcsShutDownComputeSystem": 0x8007_0005_u32}}),
    );
    let started = Instant::now();
    e.run("c", "exit 0").await;
    let exit = e.exit("c").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exit.exit_code, u32::MAX);
    let text = exit.error.expect("the shutdown's failure").to_string();
    assert!(text.contains("failed to shutdown container"), "{text}");
    assert!(text.contains("(0x80070005)"), "{text}");
    e.remove("c").await;
    e.assert_clean().await;
}
