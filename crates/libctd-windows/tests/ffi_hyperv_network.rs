//! HNS networking of a Hyper-V isolated container over the real binding
//! (`hcs::ffi`: computenetwork.dll's namespace and endpoint functions,
//! computecore's modify) against the double under Wine: the container's
//! namespace is added to its utility VM's guest and each endpoint becomes a
//! network adapter; a create failing at a network step leaves nothing (no
//! namespace, no adapter, no VM).
//!
//! HNS and HCS are two copies of the double (two services); an endpoint
//! HCS can attach is declared in both.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, CreateOptions, ErrorKind, INIT_PROCESS_ID};

/// An endpoint id (a GUID, as HNS's) no other test uses; declared to HNS,
/// and to HCS when `attachable`.
fn endpoint(attachable: bool) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:08x}-0000-4000-8000-{n:012x}", std::process::id());
    double::network_control(serde_json::json!({"AddEndpoint": id}));
    if attachable {
        double::control(serde_json::json!({"AddEndpoint": id}));
    }
    id
}

/// A Hyper-V isolated container's spec with `endpoints`, its layers in
/// folders of the test's own.
fn networked(name: &str, endpoints: &[String]) -> (Spec, PathBuf) {
    let (base, scratch) = ffi_env::hyperv_layers(name);
    let spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sleep"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}},
        "windows": {
            "layerFolders": [base.to_str().unwrap(), scratch.to_str().unwrap()],
            "hyperv": {},
            "network": {"endpointList": endpoints},
        }
    }))
    .unwrap();
    (spec, scratch)
}

/// The namespaces holding any of `endpoints`.
fn namespaces_of(endpoints: &[String]) -> Vec<String> {
    let all = double::network_control(serde_json::json!({"Namespaces": null}));
    all["Namespaces"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, eps)| {
            eps.as_array()
                .unwrap()
                .iter()
                .any(|e| endpoints.iter().any(|x| e == x.as_str()))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// The adapters (`[VM, adapter, endpoint]`) and guest namespaces of the
/// VMs whose id contains `pattern`.
fn adapters(pattern: &str) -> (Vec<[String; 3]>, Vec<[String; 2]>) {
    let a = double::control(serde_json::json!({"Adapters": pattern}));
    (
        serde_json::from_value(a["Adapters"].clone()).unwrap(),
        serde_json::from_value(a["GuestNamespaces"].clone()).unwrap(),
    )
}

/// Nothing of `env`'s container `id` with `endpoints` is left.
fn assert_nothing_left(env: &ffi_env::Env, id: &str, endpoints: &[String], scratch: &Path) {
    assert!(namespaces_of(endpoints).is_empty(), "a namespace is left");
    let (nics, guest) = adapters(&env.sys(id));
    assert!(nics.is_empty() && guest.is_empty(), "{nics:?} {guest:?}");
    let report = double::report(&env.sys(id));
    assert_eq!(
        report["Systems"].as_array().map_or(0, Vec::len),
        0,
        "{report}"
    );
    assert!(!scratch.join("vm").exists(), "the VM's scratch is left");
}

#[tokio::test]
async fn a_hyperv_container_with_two_endpoints_runs_with_both_adapters() {
    let env = ffi_env::env();
    let endpoints = vec![endpoint(true), endpoint(true)];
    let (spec, scratch) = networked("hvnet-runs", &endpoints);
    env.run("h", &spec).await;
    let namespaces = namespaces_of(&endpoints);
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    let uvm = format!("{}@uvm", env.sys("h"));
    let (nics, guest) = adapters(&env.sys("h"));
    let attached: Vec<&str> = nics.iter().map(|[_, _, e]| e.as_str()).collect();
    let mut want: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    want.sort_unstable();
    let mut attached = attached;
    attached.sort_unstable();
    assert_eq!(attached, want, "{nics:?}");
    assert!(nics.iter().all(|[vm, _, _]| *vm == uvm), "{nics:?}");
    assert_eq!(guest, [[uvm, namespaces[0].clone()]]);
    env.client
        .signal_process("h", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    env.exit("h").await;
    env.remove("h").await;
    env.assert_clean().await;
    assert_nothing_left(&env, "h", &endpoints, &scratch);
}

#[tokio::test]
async fn a_create_failing_at_a_network_step_leaves_nothing() {
    let env = ffi_env::env();
    // HCS does not know the second endpoint: its adapter is refused after
    // the first was added.
    let endpoints = vec![endpoint(true), endpoint(false)];
    let (spec, scratch) = networked("hvnet-fails", &endpoints);
    let err = env
        .client
        .create("c", &spec, CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&endpoints[1]), "{err}");
    assert_nothing_left(&env, "c", &endpoints, &scratch);
    // Reading the endpoint from HNS fails.
    let endpoints = vec![endpoint(true)];
    let (spec, scratch) = networked("hvnet-fails", &endpoints);
    double::network_control(serde_json::json!({"Faults": {"System": endpoints[0],
        "Plan": {"FailOnce": {"HcnQueryEndpointProperties": 0x8007_0005_u32}}}}));
    let err = env
        .client
        .create("c", &spec, CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_nothing_left(&env, "c", &endpoints, &scratch);
    // The VM's modifies after its 4 storage hot-adds fail in turn: the
    // guest's namespace, the PreAdd, the adapter.
    let uvm = format!("{}@uvm", env.sys("c"));
    for skip in 4..=6 {
        double::faults(
            &uvm,
            serde_json::json!({"FailLater": {"HcsModifyComputeSystem": [skip, 0xC037_0100_u32]}}),
        );
        let err = env
            .client
            .create("c", &spec, CreateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Some("create"), "{skip}: {err}");
        assert_nothing_left(&env, "c", &endpoints, &scratch);
    }
    double::faults(&uvm, serde_json::json!({}));
    // The hosted container's create fails after the adapters were added.
    double::faults(
        &env.sys("c"),
        serde_json::json!({"FailOnce": {"HcsCreateComputeSystem": 0xC037_0100_u32}}),
    );
    let err = env
        .client
        .create("c", &spec, CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.operation(), Some("create"), "{err}");
    assert_nothing_left(&env, "c", &endpoints, &scratch);
    env.assert_clean().await;
}
