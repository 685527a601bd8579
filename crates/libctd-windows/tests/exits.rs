//! Issue 18 over the simulation: how HCS reports exits and failures as
//! hcsshim describes it (a system exit without a process exit, a forced
//! exit, terminate on an exited process, HCS's own codes, a refused
//! PendingUpdates query). `ffi_exits.rs` runs the same cases over the real
//! binding against the computecore.dll double.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use libctd_core::{Client, CreateOptions, ErrorKind};
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::WindowsClient;
use libctd_windows::error::{Hresult, hresult_of};
use libctd_windows::hcs::HcsOp;

#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::spec;
use sim_env::{env, sys};

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
