//! HNS networking of Hyper-V isolated containers on the simulated HCS, as
//! hcsshim sets up a Windows utility VM: the container's namespace is made
//! in HNS, added to the guest, and each endpoint becomes a network adapter
//! of the VM (its MAC address read from HNS); all of it goes, in reverse,
//! with the container and when its create fails half-way. Proven only
//! against the model (no Windows host here).

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, CreateOptions, ErrorKind, INIT_PROCESS_ID};
use libctd_windows::error::Hresult;
use libctd_windows::hcs::HcsOp;
use libctd_windows::hcs::sim::Sim;

#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::hyperv_spec;
use sim_env::{env, sys};

fn uvm(id: &str) -> String {
    format!("{}@uvm", sys(id))
}

/// A Hyper-V isolated container given `endpoints`.
fn networked(endpoints: &[&str]) -> Spec {
    let mut spec = hyperv_spec("sleep");
    let mut windows = spec.windows().clone().unwrap();
    let network = serde_json::from_value(serde_json::json!({"endpointList": endpoints})).unwrap();
    windows.set_network(Some(network));
    spec.set_windows(Some(windows));
    spec
}

/// No namespace, adapter, guest namespace or compute system is left.
fn assert_nothing_left(sim: &Sim) {
    let m = sim.model();
    assert!(sim.namespaces().is_empty(), "{:?}", sim.namespaces());
    assert!(m.adapters().is_empty(), "{:?}", m.adapters());
    assert!(
        m.guest_namespaces().is_empty(),
        "{:?}",
        m.guest_namespaces()
    );
    assert!(
        sim.compute_systems().is_empty(),
        "{:?}",
        sim.compute_systems()
    );
    assert!(sim.grants().is_empty(), "{:?}", sim.grants());
}

#[tokio::test]
async fn a_hyperv_container_with_two_endpoints_runs_with_both_adapters() {
    let e = env();
    e.sim.add_endpoint("e1");
    e.sim.add_endpoint("e2");
    e.run("h", &networked(&["e1", "e2"])).await;
    let namespaces = e.sim.namespaces();
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    let (ns, endpoints) = namespaces.iter().next().unwrap();
    assert_eq!(endpoints, &["e1", "e2"]);
    let m = e.sim.model();
    let adapters: Vec<_> = m
        .adapters()
        .into_iter()
        .map(|(vm, _, endpoint)| (vm, endpoint))
        .collect();
    let mut want = vec![(uvm("h"), "e1".to_owned()), (uvm("h"), "e2".to_owned())];
    want.sort();
    let mut adapters = adapters;
    adapters.sort();
    assert_eq!(adapters, want);
    assert_eq!(m.guest_namespaces(), [(uvm("h"), ns.clone())]);
    let doc: serde_json::Value = serde_json::from_str(&m.document(&sys("h")).unwrap()).unwrap();
    assert_eq!(
        doc["HostedSystem"]["Container"]["Networking"]["Namespace"],
        ns.as_str()
    );
    e.client
        .signal_process("h", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("h").await;
    e.remove("h").await;
    assert_nothing_left(&e.sim);
    // The adapters and the guest's namespace were removed before the VM
    // went: 4 storage hot-adds, the namespace, a PreAdd and an add per
    // adapter; then an adapter's removal each, the namespace's, the 4
    // storage removals.
    let modifies = e.sim.call_count(HcsOp::ModifyComputeSystem, &uvm("h"));
    assert_eq!(modifies, 4 + 1 + 2 * 2 + 2 + 1 + 4);
}

#[tokio::test]
async fn a_create_failing_at_each_network_step_leaves_nothing() {
    let e = env();
    e.sim.add_endpoint("e1");
    e.sim.add_endpoint("e2");
    let failure = Hresult(0xC037_0100);
    // Reading the second endpoint fails: the first adapter, the guest's
    // namespace, the VM and the namespace go.
    e.sim
        .fail_once(HcsOp::QueryEndpointProperties, Some("e2"), failure);
    let err = e
        .client
        .create("h", &networked(&["e1", "e2"]), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.operation(), Some("create"), "{err}");
    assert!(err.to_string().contains("\"e2\""), "{err}");
    assert_nothing_left(&e.sim);
    // The namespace cannot be made, or the container's own create or
    // start fails after the adapters were added.
    for (op, system) in [
        (HcsOp::CreateNamespace, None),
        (HcsOp::CreateComputeSystem, Some(sys("h"))),
        (HcsOp::StartComputeSystem, Some(sys("h"))),
    ] {
        e.sim.fail_once(op, system.as_deref(), failure);
        let err = e
            .client
            .create("h", &networked(&["e1", "e2"]), CreateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Some("create"), "{op}: {err}");
        assert_nothing_left(&e.sim);
    }
    // Each network modify of the VM fails in turn (after its 4 storage
    // hot-adds): the guest's namespace, then a PreAdd and an add per
    // adapter.
    for skip in 4..=8 {
        e.sim
            .fail_later(HcsOp::ModifyComputeSystem, Some(&uvm("h")), skip, failure);
        let err = e
            .client
            .create("h", &networked(&["e1", "e2"]), CreateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Some("create"), "{skip}: {err}");
        let named = ["", "\"e1\"", "\"e2\""][(skip as usize - 3) / 2];
        assert!(err.to_string().contains(named), "{skip}: {err}");
        assert_nothing_left(&e.sim);
    }
    // The second adapter is refused (its endpoint is another running VM's
    // adapter): everything of the second container goes, the first stays.
    let mut other = networked(&["e2"]);
    let mut windows = other.windows().clone().unwrap();
    windows.set_layer_folders(Some(vec![
        r"C:\layers\base".to_owned(),
        r"C:\layers\scratch-a".to_owned(),
    ]));
    other.set_windows(Some(windows));
    e.sim.add_file(r"C:\layers\scratch-a\sandbox.vhdx");
    e.run("a", &other).await;
    let err = e
        .client
        .create("h", &networked(&["e1", "e2"]), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("\"e2\""), "{err}");
    assert_eq!(e.sim.namespaces().len(), 1);
    assert_eq!(e.sim.model().adapters().len(), 1);
    e.client
        .signal_process("a", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("a").await;
    e.remove("a").await;
    assert_nothing_left(&e.sim);
}

#[tokio::test]
async fn an_endpoint_hns_does_not_know_is_refused_with_nothing_left() {
    let e = env();
    e.sim.add_endpoint("e1");
    let err = e
        .client
        .create("h", &networked(&["e1", "nope"]), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_nothing_left(&e.sim);
}
