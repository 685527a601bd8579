//! A Hyper-V isolated container over the real binding (`hcs::ffi`) against
//! the computecore.dll double under Wine: it runs in its own utility VM,
//! whose scratch is a real file copied from the image's template, and a
//! create failing half-way leaves nothing (no VM, no scratch, no grant).
//!
//! Runs where the double is installed in System32: `cargo xtask windows-test`.
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

use std::path::Path;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, CreateOptions, INIT_PROCESS_ID};
use lifecycle::T;

fn hyperv_spec(base: &Path, scratch: &Path) -> Spec {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sleep"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}},
        "windows": {
            "layerFolders": [base.to_str().unwrap(), scratch.to_str().unwrap()],
            "hyperv": {}
        }
    }))
    .unwrap()
}

/// Nothing of `env`'s container `id` is left.
fn assert_nothing_left(env: &ffi_env::Env, id: &str, scratch: &Path) {
    let uvm = format!("{}@uvm", env.sys(id));
    assert!(
        !scratch.join("vm").join("sandbox.vhdx").exists(),
        "the utility VM's scratch is left"
    );
    assert!(!scratch.join("vm").exists(), "its folder is left");
    assert!(
        scratch.join("sandbox.vhdx").exists(),
        "the container's own scratch stays"
    );
    assert!(
        double::grants(&uvm).is_empty(),
        "{:?}",
        double::grants(&uvm)
    );
    let report = double::report(&env.sys(id));
    assert_eq!(
        report["Systems"].as_array().map_or(0, Vec::len),
        0,
        "{report}"
    );
}

#[tokio::test]
async fn a_hyperv_container_runs_and_leaves_nothing() {
    let (base, scratch) = ffi_env::hyperv_layers("hyperv-runs");
    let env = ffi_env::env();
    env.run("h", &hyperv_spec(&base, &scratch)).await;
    let uvm = format!("{}@uvm", env.sys("h"));
    assert!(scratch.join("vm").join("sandbox.vhdx").is_file());
    assert_eq!(
        double::grants(&uvm).len(),
        2,
        "the VM's and the container's scratch"
    );
    let calls = double::calls(&uvm);
    let modifies = calls
        .iter()
        .filter(|c| *c == "HcsModifyComputeSystem")
        .count();
    assert_eq!(modifies, 4, "{calls:?}");
    env.client
        .signal_process("h", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    env.exit("h").await;
    env.remove("h").await;
    env.assert_clean().await;
    assert_nothing_left(&env, "h", &scratch);
}

#[tokio::test]
async fn a_create_failing_half_way_leaves_nothing() {
    let (base, scratch) = ffi_env::hyperv_layers("hyperv-fails");
    let env = ffi_env::env();
    let spec = hyperv_spec(&base, &scratch);
    let uvm = format!("{}@uvm", env.sys("c"));
    // The hosted container's create fails: after the VM, its shares, the
    // SCSI disk, the mount and the combined layers.
    double::faults(
        &env.sys("c"),
        serde_json::json!({"FailOnce": {"HcsCreateComputeSystem": 0xC037_0100_u32}}),
    );
    let err = tokio::time::timeout(T, env.client.create("c", &spec, CreateOptions::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.operation(), Some("create"), "{err}");
    assert_nothing_left(&env, "c", &scratch);
    // The grant of the VM's scratch fails, then the VM's start.
    for op in ["HcsGrantVmAccess", "HcsStartComputeSystem"] {
        double::faults(&uvm, serde_json::json!({"FailOnce": {op: 0xC037_0100_u32}}));
        let err = env
            .client
            .create("c", &spec, CreateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Some("create"), "{op}: {err}");
        assert!(err.to_string().contains(op), "{op}: {err}");
        assert_nothing_left(&env, "c", &scratch);
    }
    // A hot-add fails: the VM's modify refuses every request.
    double::faults(
        &uvm,
        serde_json::json!({"Fail": {"HcsModifyComputeSystem": 0xC037_0100_u32}}),
    );
    let err = env
        .client
        .create("c", &spec, CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.operation(), Some("create"), "{err}");
    assert_nothing_left(&env, "c", &scratch);
    env.assert_clean().await;
}
