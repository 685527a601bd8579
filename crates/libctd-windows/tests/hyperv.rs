//! Hyper-V isolated containers on the simulated HCS: the utility VM and the
//! hosted container as hcsshim builds them, everything set up for them
//! removed on delete and when a create fails half-way.
//!
//! What a real host would do is proven only against the model here (there
//! is no Windows host): the documents' form, the order of the hot-adds, the
//! access grants.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

const VM_SCRATCH: &str = r"C:\layers\scratch\vm\sandbox.vhdx";
const SCRATCH: &str = r"C:\layers\scratch\sandbox.vhdx";

fn uvm(id: &str) -> String {
    format!("{}@uvm", sys(id))
}

/// Nothing of container `id` is left: no compute system, no utility VM
/// scratch, no access grant.
fn assert_nothing_left(sim: &Sim, id: &str) {
    let systems = sim.compute_systems();
    assert!(
        !systems.contains(&sys(id)) && !systems.contains(&uvm(id)),
        "{systems:?}"
    );
    assert!(
        !sim.files().iter().any(|f| f == VM_SCRATCH),
        "{:?}",
        sim.files()
    );
    assert!(sim.grants().is_empty(), "{:?}", sim.grants());
    assert!(
        sim.files().iter().any(|f| f == SCRATCH),
        "the container's own scratch stays"
    );
}

#[tokio::test]
async fn a_hyperv_container_runs_in_its_own_utility_vm_and_leaves_nothing() {
    let e = env();
    e.run("h", &hyperv_spec("sleep")).await;
    let vm: serde_json::Value =
        serde_json::from_str(&e.sim.model().document(&uvm("h")).unwrap()).unwrap();
    let boot = &vm["VirtualMachine"]["Devices"]["Scsi"]["df6d0690-79e5-55b6-a5ec-c1e2f77f580a"]["Attachments"]
        ["0"]["Path"];
    assert_eq!(boot, VM_SCRATCH, "the VM boots from its own scratch");
    let hosted: serde_json::Value =
        serde_json::from_str(&e.sim.model().document(&sys("h")).unwrap()).unwrap();
    assert_eq!(hosted["HostingSystemId"], uvm("h"));
    assert!(hosted.get("Container").is_none());
    assert_eq!(
        hosted["HostedSystem"]["Container"]["Storage"]["Path"],
        r"c:\mounts\scsi\m0"
    );
    let mut grants = e.sim.grants();
    grants.sort();
    assert_eq!(
        grants,
        [
            (uvm("h"), SCRATCH.to_owned()),
            (uvm("h"), VM_SCRATCH.to_owned())
        ]
    );
    // The shares, the SCSI disk, its mount and the combined layers.
    let modifies = |sim: &Sim| {
        sim.calls()
            .iter()
            .filter(|(op, id)| *op == HcsOp::ModifyComputeSystem && *id == uvm("h"))
            .count()
    };
    assert_eq!(modifies(&e.sim), 4);
    e.client
        .signal_process("h", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("h").await;
    e.remove("h").await;
    assert_nothing_left(&e.sim, "h");
    assert_eq!(modifies(&e.sim), 8, "each hot-add undone");
}

#[tokio::test]
async fn a_create_failing_half_way_leaves_nothing() {
    let e = env();
    let failure = Hresult(0xC037_0100);
    // Every step of the set-up, in order, fails once.
    let steps = [
        (HcsOp::GrantVmAccess, uvm("c")),
        (HcsOp::CreateComputeSystem, uvm("c")),
        (HcsOp::StartComputeSystem, uvm("c")),
        (HcsOp::ModifyComputeSystem, uvm("c")),
        (HcsOp::CreateComputeSystem, sys("c")),
        (HcsOp::StartComputeSystem, sys("c")),
    ];
    for (op, system) in steps {
        e.sim.fail_once(op, Some(&system), failure);
        let err = e
            .client
            .create("c", &hyperv_spec("sleep"), CreateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Some("create"), "{op}: {err}");
        assert_nothing_left(&e.sim, "c");
    }
    // Every modify failing: the undo's removals fail too, yet the VM,
    // its scratch and the grants go.
    e.sim
        .fail(HcsOp::ModifyComputeSystem, Some(&uvm("c")), failure);
    let err = e
        .client
        .create("c", &hyperv_spec("sleep"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::System, "{err}");
    assert_nothing_left(&e.sim, "c");
    e.sim.clear_faults();
    e.run("c", &hyperv_spec("sleep")).await;
    e.client
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("c").await;
    e.remove("c").await;
    assert_nothing_left(&e.sim, "c");
}

#[tokio::test]
async fn a_missing_scratch_template_is_refused_before_any_vm() {
    let e = env();
    let mut spec = hyperv_spec("sleep");
    let mut windows = spec.windows().clone().unwrap();
    windows.set_layer_folders(Some(vec![
        r"C:\layers\base".to_owned(),
        r"C:\layers\other".to_owned(),
    ]));
    let mut hyperv = windows.hyperv().clone().unwrap();
    hyperv.set_utility_vm_path(Some(r"C:\nowhere\UtilityVM".to_owned()));
    windows.set_hyperv(Some(hyperv));
    spec.set_windows(Some(windows));
    let err = e
        .client
        .create("m", &spec, CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(e.sim.compute_systems().is_empty());
    assert!(e.sim.grants().is_empty());
}
