//! HNS networking on the simulated HCS: a container whose spec gives
//! endpoints and no namespace gets a namespace of its own holding them
//! (as hcsshim makes one), deleted with the container and when its create
//! fails half-way. Proven only against the model (no Windows host here).

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, CreateOptions, ErrorKind, INIT_PROCESS_ID};
use libctd_windows::error::Hresult;
use libctd_windows::hcs::HcsOp;

#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::spec_json;
use sim_env::{env, sys};

fn networked(endpoints: &[&str]) -> Spec {
    let extra = format!(
        r#","network":{{"endpointList":{}}}"#,
        serde_json::json!(endpoints)
    );
    serde_json::from_value(spec_json("sleep", &extra)).unwrap()
}

#[tokio::test]
async fn endpoints_get_a_namespace_of_their_own_until_the_container_goes() {
    let e = env();
    e.sim.add_endpoint("e1");
    e.sim.add_endpoint("e2");
    e.run("n", &networked(&["e1", "e2"])).await;
    let namespaces = e.sim.namespaces();
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    let (ns, endpoints) = namespaces.iter().next().unwrap();
    assert_eq!(endpoints, &["e1", "e2"]);
    let doc: serde_json::Value =
        serde_json::from_str(&e.sim.model().document(&sys("n")).unwrap()).unwrap();
    assert_eq!(doc["Container"]["Networking"]["Namespace"], ns.as_str());
    e.client
        .signal_process("n", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("n").await;
    e.remove("n").await;
    assert!(e.sim.namespaces().is_empty(), "{:?}", e.sim.namespaces());
}

#[tokio::test]
async fn a_create_failing_half_way_leaves_no_namespace() {
    let e = env();
    e.sim.add_endpoint("e1");
    // An unknown endpoint: the namespace made for it goes.
    let err = e
        .client
        .create("n", &networked(&["e1", "nope"]), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    assert!(e.sim.namespaces().is_empty());
    // The namespace cannot be made; the container's create or start fails.
    let failure = Hresult(0xC037_0100);
    for (op, system) in [
        (HcsOp::CreateNamespace, None),
        (HcsOp::CreateComputeSystem, Some(sys("n"))),
        (HcsOp::StartComputeSystem, Some(sys("n"))),
    ] {
        e.sim.fail_once(op, system.as_deref(), failure);
        let err = e
            .client
            .create("n", &networked(&["e1"]), CreateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Some("create"), "{op}: {err}");
        assert!(e.sim.namespaces().is_empty(), "{op}");
        assert!(e.sim.compute_systems().is_empty(), "{op}");
    }
    // A container that was never started is deleted with its namespace.
    e.client
        .create("n", &networked(&["e1"]), CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(e.sim.namespaces().len(), 1);
    e.client.delete("n").await.unwrap();
    assert!(e.sim.namespaces().is_empty());
}
