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

use libctd_core::{Client, CreateOptions, ErrorKind};
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::WindowsClient;
use libctd_windows::error::{Hresult, hresult_of};
use libctd_windows::hcs::ffi::Computecore;

use ffi_env::env;
use lifecycle::spec;

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
