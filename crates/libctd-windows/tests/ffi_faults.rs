//! The binding (`hcs::ffi`) and `WindowsClient` over it against the
//! computecore.dll double's fault plan under Wine: one test per defect of
//! issue 8. Runs where `cargo xtask windows-test` installed the double.
#![cfg(windows)]
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/double.rs"]
mod double;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libctd_windows::hcs::Hcs;
use libctd_windows::hcs::ffi::Computecore;

const T: Duration = Duration::from_secs(10);

/// A compute system id no other test uses, and the pattern of its reports.
fn unique_id(what: &str) -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tag = format!("@faults{}x", NEXT.fetch_add(1, Ordering::Relaxed));
    (format!("{what}{tag}"), tag)
}

const PROCESS_ISOLATED: &str = r#"{"Owner":"test","SchemaVersion":{"Major":2,"Minor":1},
    "ShouldTerminateOnLastHandleClosed":true,
    "Container":{"Storage":{"Layers":[],"Path":"\\\\?\\Volume{0b8e5fd4-1}\\"}}}"#;

/// Polls the double until `pattern`'s systems have an operation in flight.
fn wait_operation_in_flight(pattern: &str) {
    let until = Instant::now() + T;
    while !double::report(pattern)["OpenHandles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h.as_str().unwrap().starts_with("operation"))
    {
        assert!(Instant::now() < until, "no operation in flight");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Defect 1: closing a compute system handle while a call on it is in
/// flight faults inside computecore. Close must wait for the call, and a
/// call after close must fail without reaching computecore.
#[tokio::test(flavor = "multi_thread")]
async fn close_waits_for_calls_in_flight() {
    let hcs = std::sync::Arc::new(Computecore::load().unwrap());
    let (id, tag) = unique_id("lifetime");
    double::faults(
        &id,
        serde_json::json!({"Slow": {"HcsGetComputeSystemProperties": 500}}),
    );
    let system = hcs
        .create_compute_system(&id, PROCESS_ISOLATED)
        .await
        .unwrap();
    hcs.start_compute_system(&system).await.unwrap();

    let (h, s) = (hcs.clone(), system.clone());
    let query = tokio::spawn(async move {
        h.get_compute_system_properties(&s, r#"{"PropertyTypes":["Statistics"]}"#)
            .await
    });
    let pattern = tag.clone();
    tokio::task::spawn_blocking(move || wait_operation_in_flight(&pattern))
        .await
        .unwrap();
    hcs.close_compute_system(&system).await.unwrap();
    let answer = query.await.unwrap().unwrap();
    assert!(answer.contains("Statistics"), "{answer}");

    // The handle is closed: calls fail as invalid handles, in the binding.
    let err = hcs.start_compute_system(&system).await.unwrap_err();
    assert_eq!(err.hresult.0, 0x8007_0006, "{err}");
    let err = hcs.close_compute_system(&system).await.unwrap_err();
    assert_eq!(err.hresult.0, 0x8007_0006, "{err}");
    double::assert_clean(&tag, T);
}
