//! HNS networking over the real binding (`hcs::ffi`, computenetwork.dll's
//! namespace functions) against the double under Wine: a container given
//! endpoints gets a namespace of its own holding them, deleted with it, and
//! a create failing half-way leaves none.
//!
//! Runs where the double is installed in System32 (also as
//! computenetwork.dll): `cargo xtask windows-test`.
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

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, CreateOptions, ErrorKind, INIT_PROCESS_ID};

fn networked(endpoints: &[String]) -> Spec {
    let extra = format!(
        r#","network":{{"endpointList":{}}}"#,
        serde_json::json!(endpoints)
    );
    serde_json::from_value(lifecycle::spec_json("sleep", &extra)).unwrap()
}

/// The namespaces holding any of `endpoints`.
fn namespaces_of(endpoints: &[String]) -> Vec<(String, Vec<String>)> {
    let all = double::network_control(serde_json::json!({"Namespaces": null}));
    all["Namespaces"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, eps)| (id.clone(), serde_json::from_value(eps.clone()).unwrap()))
        .filter(|(_, eps): &(String, Vec<String>)| eps.iter().any(|e| endpoints.contains(e)))
        .collect()
}

#[tokio::test]
async fn endpoints_get_a_namespace_of_their_own_until_the_container_goes() {
    let env = ffi_env::env();
    let endpoints: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| format!("ep-{}-{n}", env.namespace))
        .collect();
    for e in &endpoints {
        double::network_control(serde_json::json!({"AddEndpoint": e}));
    }
    env.run("n", &networked(&endpoints)).await;
    let namespaces = namespaces_of(&endpoints);
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    assert_eq!(namespaces[0].1, endpoints);
    env.client
        .signal_process("n", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    env.exit("n").await;
    env.remove("n").await;
    env.assert_clean().await;
    assert!(namespaces_of(&endpoints).is_empty());
}

#[tokio::test]
async fn a_create_failing_half_way_leaves_no_namespace() {
    let env = ffi_env::env();
    let known = format!("ep-{}-known", env.namespace);
    let unknown = format!("ep-{}-unknown", env.namespace);
    double::network_control(serde_json::json!({"AddEndpoint": known}));
    let both = [known.clone(), unknown];
    let err = env
        .client
        .create("n", &networked(&both), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(namespaces_of(&both).is_empty());
    // The container's create fails after its namespace was made.
    double::faults(
        &env.sys("n"),
        serde_json::json!({"FailOnce": {"HcsCreateComputeSystem": 0xC037_0100_u32}}),
    );
    let err = env
        .client
        .create("n", &networked(&both[..1]), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.operation(), Some("create"), "{err}");
    assert!(namespaces_of(&both).is_empty());
    env.assert_clean().await;
}
