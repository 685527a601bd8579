//! The model's rules, without a face: what each call answers in each
//! state, the exit rules and the notices.

use std::sync::{Arc, Mutex};

use super::*;
use crate::error::Hresult;
use crate::schema::{ModifySettingRequest, VirtualSmbShare};

/// Records the notices.
#[derive(Default)]
pub(super) struct Record(Mutex<Vec<Notice>>);

impl Observer for Arc<Record> {
    fn notice(&self, notice: Notice) {
        self.0.lock().unwrap().push(notice);
    }
}

pub(super) fn model() -> (Model, Arc<Record>) {
    let record = Arc::new(Record::default());
    (Model::new(Box::new(record.clone())), record)
}

const CONTAINER: &str = r#"{"SchemaVersion":{"Major":2,"Minor":1},
    "Container":{"Storage":{"Path":"C:\\scratch\\"}}}"#;

fn params(line: &str) -> String {
    serde_json::json!({"CommandLine": line, "EmulateConsole": false,
        "CreateStdInPipe": false, "CreateStdOutPipe": true, "CreateStdErrPipe": true})
    .to_string()
}

fn running(m: &Model, id: &str) -> SystemKey {
    let key = m.create_system(id, CONTAINER).unwrap();
    m.start(key).unwrap();
    key
}

fn process(m: &Model, key: SystemKey, line: &str) -> u32 {
    let pid = m.reserve_process(key);
    m.create_process(key, pid, &params(line)).unwrap();
    pid
}

#[test]
fn calls_answer_by_state() {
    let (m, _) = model();
    let key = m.create_system("c", CONTAINER).unwrap();
    assert_eq!(
        m.create_system("c", CONTAINER).unwrap_err().hresult,
        hr::ALREADY_EXISTS
    );
    assert!(m.resume(key).unwrap_err().hresult.is_invalid_state());
    let pid = m.reserve_process(key);
    let err = m.create_process(key, pid, &params("exit")).unwrap_err();
    assert!(err.hresult.is_invalid_state(), "not running yet");
    m.start(key).unwrap();
    assert!(m.start(key).unwrap_err().hresult.is_invalid_state());
    let err = m.pause(key).unwrap_err();
    assert_eq!(err.hresult, hr::NOT_SUPPORTED, "process isolation");
    m.stop(key, Stop::Shutdown).unwrap();
    for err in [
        m.start(key).unwrap_err(),
        m.stop(key, Stop::Terminate).unwrap_err(),
        m.properties(key, r#"{"PropertyTypes":[]}"#).unwrap_err(),
    ] {
        assert!(err.hresult.is_already_stopped(), "{err:?}");
    }
    assert_eq!(m.system_exit(key), Some(SystemExit::clean("GracefulExit")));
}

#[test]
fn bad_input_is_invalid_json() {
    let (m, _) = model();
    assert!(
        m.create_system("c", "{")
            .unwrap_err()
            .hresult
            .is_not_supported()
    );
    assert!(
        m.compute_systems().is_empty(),
        "a refused create leaves nothing"
    );
    let key = running(&m, "c");
    let pid = m.reserve_process(key);
    assert_eq!(
        m.create_process(key, pid, "[").unwrap_err().hresult,
        hr::INVALID_JSON
    );
    let pid = process(&m, key, "sleep");
    for err in [
        m.signal_process(pid, "{}").unwrap_err(),
        m.modify_process(pid, r#"{"Operation":"Nope"}"#)
            .unwrap_err(),
        m.properties(key, r#"{"PropertyTypes":["Nope"]}"#)
            .unwrap_err(),
        m.modify_system(key, "{").unwrap_err(),
    ] {
        assert_eq!(err.hresult, hr::INVALID_JSON, "{err:?}");
    }
    let err = m.signal_process(pid, r#"{"Signal":"Nope"}"#).unwrap_err();
    assert_eq!(err.hresult, hr::INVALID_DATA);
}

#[test]
fn exits_as_hcsshim_reads_them() {
    let (m, record) = model();
    let key = running(&m, "c");
    let pid = process(&m, key, "sleep");
    m.terminate_process(pid).unwrap();
    assert_eq!(m.control(pid).kill, Some(TERMINATED_EXIT));
    m.process_exited(pid, TERMINATED_EXIT);
    // Terminating an exited process is denied; signalling it is "stopped".
    assert_eq!(
        m.terminate_process(pid).unwrap_err().hresult,
        hr::ACCESS_DENIED
    );
    let err = m.signal_process(pid, r#"{"Signal":"CtrlC"}"#).unwrap_err();
    assert_eq!(err.hresult, hr::PROCESS_ALREADY_STOPPED);
    // A terminate's exit is forced, with HCS_E_TERMINATED: not an error.
    m.stop(key, Stop::Terminate).unwrap();
    let exit = m.system_exit(key).unwrap();
    assert_eq!(exit.exit_type, "ForcedExit");
    assert!(exit.error().is_none());
    // Calls on a process of an exited system: HCS_E_INVALID_STATE.
    let err = m.terminate_process(pid).unwrap_err();
    assert!(err.hresult.is_invalid_state());
    let notices = record.0.lock().unwrap().clone();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(matches!(notices[0], Notice::ProcessExited(p, e) if p == pid && e.code() == Some(1)));
    assert!(matches!(&notices[1], Notice::SystemExited(k, _) if *k == key));
}

#[test]
fn a_dead_system_sends_no_process_exit() {
    let (m, record) = model();
    let key = running(&m, "c");
    let pid = process(&m, key, "sleep");
    assert!(m.crash("c"));
    assert!(!m.crash("c"), "stopped already");
    assert!(m.system_exit(key).unwrap().is_unexpected());
    assert!(m.control(pid).kill.is_some(), "its processes end");
    m.process_exited(pid, TERMINATED_EXIT);
    assert_eq!(m.process_notice(pid), None);
    assert_eq!(record.0.lock().unwrap().len(), 1, "SystemExited only");
}

/// A hung HCS: the system and its processes stop, and neither notice is
/// ever sent.
#[test]
fn a_hung_hcs_loses_both_notices() {
    let (m, record) = model();
    m.edit_plan(Some("c"), |p| p.lose_exit_notices = true);
    let key = running(&m, "c");
    let pid = process(&m, key, "sleep");
    m.stop(key, Stop::Terminate).unwrap();
    assert_eq!(m.control(pid).kill, Some(TERMINATED_EXIT), "it ends");
    m.process_exited(pid, TERMINATED_EXIT);
    assert!(m.process_ended(pid));
    assert!(!m.is_running("c"));
    assert_eq!(m.system_exit(key), None);
    assert_eq!(m.process_notice(pid), None);
    assert!(record.0.lock().unwrap().is_empty(), "no notice at all");
}

#[test]
fn held_notices_wait_for_their_release() {
    let (m, _) = model();
    m.edit_plan(Some("c"), |p| {
        p.hold_exit_notices = true;
        p.last_wait_result = 0x102;
    });
    let key = running(&m, "c");
    let pid = process(&m, key, "exit 4");
    m.process_exited(pid, 4);
    assert!(m.process_ended(pid));
    assert_eq!(m.process_notice(pid), None);
    assert!(m.release_exit_notices("c"));
    assert!(!m.release_exit_notices("c"), "released once");
    let exit = m.process_notice(pid).unwrap();
    assert_eq!(exit.code(), None, "its LastWaitResult");
    assert_eq!(exit.exit_code, 4);
}

#[test]
fn the_last_handle_terminates_and_frees_the_id() {
    let (m, _) = model();
    let key = running(&m, "c");
    let again = m.open_system("c").unwrap();
    m.close_system(key);
    assert!(m.is_running("c"));
    m.close_system(again);
    assert!(m.compute_systems().is_empty());
    assert_eq!(m.system_exit(key).unwrap().exit_type, "ForcedExit");
    assert!(m.open_system("c").unwrap_err().hresult.is_not_exist());
}

const SCSI0: &str = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a";

fn vm_doc() -> String {
    serde_json::json!({"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{
        "StopOnReset":true,
        "Chipset":{"Uefi":{"BootThis":{"DeviceType":"VmbFs","DevicePath":"\\b.efi"}}},
        "ComputeTopology":{"Memory":{"SizeInMB":1024,"AllowOvercommit":true,"EnableHotHint":true},
            "Processor":{"Count":2}},
        "Devices":{
            "Scsi":{SCSI0:{"Attachments":{"0":{"Type":"VirtualDisk","Path":"C:\\s\\vm\\sandbox.vhdx"}}}},
            "HvSocket":{"HvSocketConfig":{"DefaultBindSecurityDescriptor":"D:P"}},
            "VirtualSmb":{"Shares":[{"Name":"os","Path":"C:\\u\\Files"}]}}}})
    .to_string()
}

fn hosted(layer: &str) -> String {
    serde_json::json!({"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"vm",
        "HostedSystem":{"SchemaVersion":{"Major":2,"Minor":1},
        "Container":{"Storage":{"Path":"c:\\mounts\\scsi\\m0","Layers":[{"Id":"x","Path":format!(
            r"\\?\VMSMB\VSMB-{{dcc079ae-60ba-4d07-847c-3493609c0870}}\{layer}")}]}}}})
    .to_string()
}

/// A running utility VM `vm` with share `s1`, the scratch `C:\s\sandbox.vhdx`
/// mounted at `c:\mounts\scsi\m0` and the layers combined there.
fn prepared_vm(m: &Model) -> SystemKey {
    m.grant_vm_access("vm", r"C:\s\vm\sandbox.vhdx").unwrap();
    let vm = running_doc(m, "vm", &vm_doc());
    m.grant_vm_access("vm", r"C:\s\sandbox.vhdx").unwrap();
    for request in [
        ModifySettingRequest::add_share(&VirtualSmbShare {
            name: "s1".into(),
            path: r"C:\l\base".into(),
            options: None,
        }),
        ModifySettingRequest::attach_scsi(1, r"C:\s\sandbox.vhdx"),
        ModifySettingRequest::mount_scsi(1, r"c:\mounts\scsi\m0"),
        ModifySettingRequest::combine_layers(r"c:\mounts\scsi\m0", &[]),
    ] {
        m.modify_system(vm, &serde_json::to_string(&request).unwrap())
            .unwrap();
    }
    vm
}

#[test]
fn a_utility_vm_boots_only_from_a_disk_it_was_granted() {
    let (m, _) = model();
    let err = m.create_system("vm", &vm_doc()).unwrap_err();
    assert_eq!(err.hresult, hr::ACCESS_DENIED, "{err:?}");
    assert!(m.compute_systems().is_empty());
    m.grant_vm_access("vm", r"C:\s\vm\sandbox.vhdx").unwrap();
    running_doc(&m, "vm", &vm_doc());
    m.revoke_vm_access("vm", r"C:\s\vm\sandbox.vhdx").unwrap();
    assert!(m.grants().is_empty());
    assert!(m.revoke_vm_access("vm", "x").is_err(), "nothing to revoke");
}

#[test]
fn a_utility_vm_hot_adds_and_removes_devices_in_order() {
    let (m, _) = model();
    let vm = prepared_vm(&m);
    let modify = |r: ModifySettingRequest| m.modify_system(vm, &serde_json::to_string(&r).unwrap());
    // Not granted, a LUN in use, a mount of a missing disk, layers off a share.
    assert!(modify(ModifySettingRequest::attach_scsi(2, r"C:\other.vhdx")).is_err());
    assert!(modify(ModifySettingRequest::attach_scsi(1, r"C:\s\sandbox.vhdx")).is_err());
    assert!(modify(ModifySettingRequest::mount_scsi(3, r"c:\m")).is_err());
    let layer = crate::schema::Layer {
        id: "x".into(),
        path: r"C:\host\path".into(),
    };
    assert!(
        modify(ModifySettingRequest::combine_layers(
            r"c:\mounts\scsi\m0",
            &[layer]
        ))
        .is_err()
    );
    // Removal in the wrong order is refused: the disk is mounted.
    assert!(modify(ModifySettingRequest::detach_scsi(1)).is_err());
    assert!(modify(ModifySettingRequest::unmount_scsi(1, r"c:\mounts\scsi\m0")).is_err());
    modify(ModifySettingRequest::remove_combined_layers(
        r"c:\mounts\scsi\m0",
    ))
    .unwrap();
    modify(ModifySettingRequest::unmount_scsi(1, r"c:\mounts\scsi\m0")).unwrap();
    modify(ModifySettingRequest::detach_scsi(1)).unwrap();
    modify(ModifySettingRequest::remove_share("s1")).unwrap();
    assert!(modify(ModifySettingRequest::remove_share("s1")).is_err());
    // Unknown fields are refused, as the guest refuses them.
    let strict = m.modify_system(vm, r#"{"ResourcePath":"x","Bogus":1}"#);
    assert!(strict.unwrap_err().hresult.is_not_supported());
}

#[test]
fn a_utility_vm_takes_its_containers_with_it() {
    let (m, _) = model();
    let err = m.create_system("h", &hosted("s1")).unwrap_err();
    assert!(err.hresult.is_not_exist(), "no utility VM yet");
    let vm = prepared_vm(&m);
    assert!(
        m.create_system("x", &hosted("other")).is_err(),
        "not a share"
    );
    // The old form: a top-level Container beside HostingSystemId.
    let old = hosted("s1").replace(
        r#""HostedSystem":{"SchemaVersion":{"Major":2,"Minor":1},"Container""#,
        r#""Container""#,
    );
    let old = old.strip_suffix('}').unwrap();
    let err = m.create_system("o", old).unwrap_err();
    assert!(err.hresult.is_not_supported(), "{err:?}");
    let h = m.create_system("h", &hosted("s1")).unwrap();
    m.start(h).unwrap();
    m.pause(h).unwrap();
    m.resume(h).unwrap();
    m.stop(vm, Stop::Terminate).unwrap();
    assert!(m.system_exit(h).is_some(), "stopped with its VM");
}

fn running_doc(m: &Model, id: &str, doc: &str) -> SystemKey {
    let key = m.create_system(id, doc).unwrap();
    m.start(key).unwrap();
    key
}

#[test]
fn the_plan_gates_calls() {
    let (m, _) = model();
    m.edit_plan(None, |p| p.disconnected = true);
    let err = m.gate("HcsCreateComputeSystem", "c").unwrap_err();
    assert_eq!(err.hresult, hr::SERVICE_DISCONNECT);
    m.edit_plan(None, |p| p.disconnected = false);
    m.set_plan(
        "c",
        serde_json::from_str(r#"{"UnexpectedExitOnShutdown":true,"PendingUpdates":true}"#).unwrap(),
    );
    let key = running(&m, "c");
    let answer = m
        .properties(key, r#"{"PropertyTypes":["PendingUpdates"]}"#)
        .unwrap();
    assert!(answer.contains(r#""AreUpdatesPending":true"#), "{answer}");
    m.stop(key, Stop::Shutdown).unwrap();
    let exit = m.system_exit(key).unwrap();
    assert_eq!(exit.error().unwrap().hresult, Hresult(0xC037_0106));
    assert_eq!(m.calls()[0].0, "HcsCreateComputeSystem");
}

#[test]
fn a_kill_before_the_start_is_kept() {
    let (m, _) = model();
    let key = running(&m, "c");
    let pid = m.reserve_process(key);
    m.terminate_process(pid).unwrap();
    m.create_process(key, pid, &params("sleep")).unwrap();
    assert_eq!(m.control(pid).kill, Some(TERMINATED_EXIT));
    let never = m.reserve_process(key);
    m.abandon_process(key, never);
    assert!(!m.process_started(never));
    assert!(m.process_ended(never));
}

#[test]
fn a_utility_vm_takes_adapters_of_known_endpoints_once_while_it_runs() {
    use crate::schema::NetworkAdapter;
    let (m, _) = model();
    let vm = prepared_vm(&m);
    let modify = |r: ModifySettingRequest| m.modify_system(vm, &serde_json::to_string(&r).unwrap());
    m.add_endpoint("e1");
    let props: serde_json::Value =
        serde_json::from_str(&m.endpoint_properties("e1").unwrap()).unwrap();
    let nic = |endpoint: &str, mac: &str| NetworkAdapter {
        endpoint_id: endpoint.to_owned(),
        mac_address: mac.to_owned(),
    };
    let mac = props["MacAddress"].as_str().unwrap().to_owned();
    let add = |id: &str, n: &NetworkAdapter| modify(ModifySettingRequest::add_adapter(id, n));
    let pre_add = |id: &str| modify(ModifySettingRequest::pre_add_adapter(id, &props));
    // The guest needs its namespace first, and to be told of the adapter.
    assert!(pre_add("a1").is_err(), "no guest namespace");
    modify(ModifySettingRequest::add_guest_namespace("ns")).unwrap();
    assert!(add("a1", &nic("e1", &mac)).is_err(), "no PreAdd");
    pre_add("a1").unwrap();
    let err = add("a1", &nic("nope", &mac)).unwrap_err();
    assert!(err.hresult.is_not_exist(), "unknown endpoint: {err:?}");
    assert!(add("a1", &nic("e1", "00-00-00-00-00-00")).is_err(), "MAC");
    add("a1", &nic("e1", &mac)).unwrap();
    pre_add("a2").unwrap();
    assert!(add("a2", &nic("e1", &mac)).is_err(), "endpoint attached");
    assert!(add("a1", &nic("e1", &mac)).is_err(), "adapter exists");
    assert_eq!(m.adapters(), [("vm".into(), "a1".into(), "e1".into())]);
    assert!(
        modify(ModifySettingRequest::remove_guest_namespace("ns")).is_err(),
        "adapters first"
    );
    modify(ModifySettingRequest::remove_adapter("a1", &nic("e1", &mac))).unwrap();
    assert!(modify(ModifySettingRequest::remove_adapter("a1", &nic("e1", &mac))).is_err());
    modify(ModifySettingRequest::remove_guest_namespace("ns")).unwrap();
    assert!(m.guest_namespaces().is_empty());
    assert!(m.endpoint_properties("nope").is_err());
    // A VM that does not run takes no adapter.
    m.stop(vm, Stop::Terminate).unwrap();
    let err = modify(ModifySettingRequest::add_guest_namespace("ns")).unwrap_err();
    assert!(
        err.hresult.is_invalid_state() || err.hresult.is_not_exist(),
        "{err:?}"
    );
}
