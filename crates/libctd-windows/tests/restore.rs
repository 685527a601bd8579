//! A restore after the engine restarted, on the simulated HCS: what HCS
//! cannot tell (a Hyper-V isolated container's utility VM scratch and its
//! grants, the HNS namespace made for the container) is released from the
//! client's record in its state directory; without one it stays behind.
//! The engine's death is its runtime dropped with the client's tasks.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, discard_stdio};
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::hcs::sim::Sim;
use libctd_windows::{ClientSettings, WindowsClient};

#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::hyperv_spec;

const VM_SCRATCH: &str = r"C:\layers\scratch\vm\sandbox.vhdx";

fn networked() -> Spec {
    let mut spec = hyperv_spec("sleep");
    let mut windows = spec.windows().clone().unwrap();
    let network = serde_json::from_value(serde_json::json!({"endpointList": ["e1"]})).unwrap();
    windows.set_network(Some(network));
    spec.set_windows(Some(windows));
    spec
}

/// A state directory of the test's own.
fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("libctd-windows-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn client(
    sim: &Arc<Sim>,
    state_dir: Option<&PathBuf>,
) -> (WindowsClient<Sim>, Arc<RecordingBackend>) {
    let settings = ClientSettings {
        state_dir: state_dir.cloned(),
        ..ClientSettings::default()
    };
    let backend = Arc::new(RecordingBackend::new());
    let client = WindowsClient::with_settings(sim.clone(), "test", backend.clone(), settings);
    (client.unwrap(), backend)
}

/// Runs container `id` in an engine that then dies (its runtime and every
/// task of its client dropped).
fn run_in_an_engine_that_dies(sim: &Arc<Sim>, state_dir: Option<&PathBuf>, id: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (engine, _) = client(sim, state_dir);
        lifecycle::run(&engine, id, &networked()).await;
    });
    drop(rt);
}

/// Neither the container "h" nor its utility VM runs.
fn assert_stopped(sim: &Sim) {
    assert!(!sim.is_running("h@test") && !sim.is_running("h@test@uvm"));
}

fn sim() -> Arc<Sim> {
    let sim = Arc::new(Sim::new());
    sim.add_utility_vm(r"C:\layers\base");
    sim.add_file(r"C:\layers\scratch\sandbox.vhdx");
    sim.add_endpoint("e1");
    sim
}

#[test]
fn a_restore_releases_the_vm_scratch_and_the_namespace_it_recorded() {
    let sim = sim();
    let dir = state_dir("restore");
    run_in_an_engine_that_dies(&sim, Some(&dir), "h");
    assert_eq!(sim.namespaces().len(), 1);
    assert!(dir.join("test").join("h.json").is_file());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (engine, backend) = client(&sim, Some(&dir));
        let restored = engine.restore("h", discard_stdio()).await.unwrap();
        assert!(!restored.alive);
        assert_stopped(&sim);
        assert!(sim.namespaces().is_empty(), "{:?}", sim.namespaces());
        assert!(
            !sim.files().iter().any(|f| f == VM_SCRATCH),
            "{:?}",
            sim.files()
        );
        assert!(sim.grants().is_empty(), "{:?}", sim.grants());
        assert!(
            !dir.join("test").join("h.json").exists(),
            "the record is left"
        );
        // The scratch folder can be used again (the dead engine's handles
        // keep the old id: the model has no process to end with it).
        lifecycle::run(&engine, "h2", &networked()).await;
        assert!(dir.join("test").join("h2.json").is_file());
        engine
            .signal_process("h2", libctd_core::INIT_PROCESS_ID, 9)
            .await
            .unwrap();
        lifecycle::exit(&backend, "h2").await;
        lifecycle::remove(&engine, "h2").await;
        assert!(
            !dir.join("test").join("h.json").exists(),
            "forgotten on delete"
        );
        assert!(sim.namespaces().is_empty());
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_state_directory_a_restore_leaves_them() {
    let sim = sim();
    run_in_an_engine_that_dies(&sim, None, "h");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (engine, _) = client(&sim, None);
        assert!(!engine.restore("h", discard_stdio()).await.unwrap().alive);
        assert_stopped(&sim);
        assert_eq!(sim.namespaces().len(), 1);
        assert!(sim.files().iter().any(|f| f == VM_SCRATCH));
    });
}

#[test]
fn an_unreadable_record_fails_the_restore_with_a_clear_error() {
    let sim = sim();
    let dir = state_dir("unreadable");
    std::fs::create_dir_all(dir.join("test")).unwrap();
    std::fs::write(dir.join("test").join("gone.json"), b"{not json").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (engine, _) = client(&sim, Some(&dir));
        let err = engine.restore("gone", discard_stdio()).await.unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::System, "{err}");
        assert!(err.to_string().contains("gone.json"), "{err}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_delete_after_a_restore_that_failed_half_way_releases_the_rest() {
    use libctd_windows::error::Hresult;
    use libctd_windows::hcs::HcsOp;
    let sim = sim();
    let dir = state_dir("delete");
    run_in_an_engine_that_dies(&sim, Some(&dir), "h");
    let record = dir.join("test").join("h.json");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (engine, _) = client(&sim, Some(&dir));
        // HNS fails the namespace's deletion once: the restore fails and
        // the record stays.
        sim.fail_once(HcsOp::DeleteNamespace, None, Hresult(0x8007_0005));
        let err = engine.restore("h", discard_stdio()).await.unwrap_err();
        assert_eq!(
            err.kind(),
            libctd_core::ErrorKind::PermissionDenied,
            "{err}"
        );
        assert_eq!(sim.namespaces().len(), 1);
        assert!(record.is_file());
        // The engine deletes the container it could not restore.
        engine.delete("h").await.unwrap();
        assert!(sim.namespaces().is_empty(), "{:?}", sim.namespaces());
        assert!(!sim.files().iter().any(|f| f == VM_SCRATCH));
        assert!(sim.grants().is_empty(), "{:?}", sim.grants());
        assert!(!record.exists());
        // Nothing recorded, nothing tracked: not found.
        let err = engine.delete("h").await.unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::NotFound, "{err}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
