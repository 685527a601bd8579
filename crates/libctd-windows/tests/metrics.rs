//! What a Windows client records through the `metrics` facade, over the
//! simulated HCS: the lifecycle-and-errors scenario every backend runs. The
//! client's events and the simulation's processes are tasks of the test's
//! current-thread runtime, so a recorder set on the test's thread sees them.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use libctd_core::Client;
use libctd_core::metrics::{OPERATION_ERRORS, OPERATIONS};
use libctd_testkit::metrics::{
    MetricsRecorder, assert_every_operation_recorded, assert_lifecycle_recorded,
};

#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::{T, spec};
use sim_env::env;

#[tokio::test]
async fn a_lifecycle_and_its_errors_are_recorded() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let e = env();
    assert_lifecycle_recorded(&e.client, &e.backend, &spec("exit 3"), &recorder, "test", T)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_operation_is_recorded_under_its_name() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    assert_every_operation_recorded(&env().client, &recorder).await;
}

#[tokio::test]
async fn bad_input_to_process_operations_is_counted_as_invalid_argument() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let e = env();
    // A process id HCS could never hold, and an out-of-range signal.
    assert!(e.client.close_stdin("c1", "bad/id").await.is_err());
    assert!(e.client.signal_process("c1", "init", -1).await.is_err());
    let recorded = recorder.read();
    assert_eq!(
        recorded.counters(OPERATIONS),
        [
            ("operation=close_stdin".to_owned(), 1),
            ("operation=signal_process".to_owned(), 1)
        ]
        .into()
    );
    assert_eq!(
        recorded.counters(OPERATION_ERRORS),
        [
            ("operation=close_stdin,kind=invalid argument".to_owned(), 1),
            (
                "operation=signal_process,kind=invalid argument".to_owned(),
                1
            )
        ]
        .into()
    );
}
