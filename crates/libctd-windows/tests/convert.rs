//! OCI spec to HCS documents: golden JSON for representative specs, and every
//! validation naming its field.
//!
//! Set `LIBCTD_UPDATE_GOLDEN=1` to rewrite the golden files after a deliberate
//! change, then review the diff.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use libctd_core::ErrorKind;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_windows::convert::{self, Isolation, join_args, split_command_line};
use libctd_windows::hcs::sim::Sim;

fn sim() -> Sim {
    let sim = Sim::new();
    sim.set_host_cpus(8);
    sim.add_utility_vm(r"C:\layers\uvm-base");
    sim
}

fn golden(name: &str, value: &impl serde::Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let mut actual = serde_json::to_string_pretty(value).unwrap();
    actual.push('\n');
    if std::env::var_os("LIBCTD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with LIBCTD_UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(actual, expected, "golden file {} differs", path.display());
}

fn spec(value: serde_json::Value) -> Spec {
    serde_json::from_value(value).unwrap()
}

fn full_process_isolated() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "hostname": "web-1",
        "process": {
            "args": ["C:\\app\\server.exe", "--name", "hello world", "say \"hi\"", "C:\\dir with space\\"],
            "cwd": "C:\\app",
            "env": ["PATH=C:\\Windows;C:\\app", "EMPTY=", "EQ=a=b"],
            "user": {"uid": 0, "gid": 0, "username": "ContainerUser"},
            "terminal": true,
            "consoleSize": {"height": 25, "width": 80}
        },
        "root": {"path": "\\\\?\\Volume{4c3e2d1a-0000-0000-0000-100000000000}"},
        "mounts": [
            {"destination": "C:\\data", "source": "D:\\volumes\\data"},
            {"destination": "C:\\config", "source": "D:\\volumes\\config", "options": ["ro"]},
            {"destination": "\\\\.\\pipe\\docker_engine", "source": "\\\\.\\pipe\\docker_engine"}
        ],
        "windows": {
            "layerFolders": ["C:\\layers\\app", "C:\\layers\\base", "C:\\layers\\scratch-web-1"],
            "resources": {
                "memory": {"limit": 536870912u64},
                "cpu": {"count": 64},
                "storage": {"iops": 1000, "bps": 10485760}
            },
            "network": {
                "allowUnqualifiedDNSQuery": true,
                "DNSSearchList": ["corp.example", "example"],
                "networkSharedContainerName": "pause-1",
                "networkNamespace": "f1e2d3c4-0000-0000-0000-000000000001"
            }
        }
    })
}

#[test]
fn golden_process_isolated_container() {
    let config = convert::compute_system(&sim(), "moby", &spec(full_process_isolated())).unwrap();
    assert_eq!(config.isolation, Isolation::Process);
    assert!(!config.servicing);
    golden("process_isolated", &config.document);
}

#[test]
fn golden_minimal_container_with_cpu_maximum() {
    let config = convert::compute_system(
        &sim(),
        "moby",
        &spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["cmd"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "\\\\?\\Volume{aa}\\"},
            "windows": {
                "layerFolders": ["C:\\layers\\base\\", "C:\\layers\\scratch"],
                "resources": {"cpu": {"maximum": 5000}},
                "servicing": true
            }
        })),
    )
    .unwrap();
    assert!(config.servicing);
    golden("minimal_cpu_maximum", &config.document);
}

fn hyperv_spec() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "hostname": "iso",
        "process": {"args": ["cmd"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "C:\\config", "source": "D:\\volumes\\config", "options": ["ro"]}
        ],
        "windows": {
            "layerFolders": ["C:\\layers\\app", "C:\\layers\\uvm-base", "C:\\layers\\scratch"],
            // 2047 MiB: the utility VM's memory rounds up to 2048.
            "resources": {"memory": {"limit": 2146435072u64}, "cpu": {"count": 2}},
            "hyperv": {}
        }
    })
}

#[test]
fn golden_hyperv_container() {
    let config = convert::compute_system(&sim(), "moby", &spec(hyperv_spec())).unwrap();
    assert_eq!(config.isolation, Isolation::HyperV);
    // The container runs in its own utility VM, linked as the client does.
    let mut container = config.document.clone();
    container.hosting_system_id = Some(convert::utility_vm_id("iso@moby"));
    assert_eq!(container.hosting_system_id.as_deref(), Some("iso@moby@uvm"));
    assert!(
        container.container.is_none(),
        "hosted: no top-level Container"
    );
    golden("hyperv", &container);
    let plan = config.utility_vm.expect("a utility VM plan");
    golden("hyperv_utility_vm", &plan.document);
    assert_eq!(plan.scratch, r"C:\layers\scratch\vm\sandbox.vhdx");
    assert_eq!(
        plan.scratch_template,
        r"C:\layers\uvm-base\UtilityVM\SystemTemplate.vhdx"
    );
    assert_eq!(plan.container_scratch, r"C:\layers\scratch\sandbox.vhdx");
    let requests: Vec<_> = plan
        .share_requests()
        .into_iter()
        .chain(plan.scratch_requests())
        .map(|(add, undo)| serde_json::json!({"Do": add, "Undo": undo}))
        .collect();
    golden("hyperv_hot_adds", &requests);
    for name in [
        "hyperv",
        "hyperv_utility_vm",
        "hyperv_hot_adds",
        "process_isolated",
    ] {
        check_field_names(name);
    }
}

/// The field names of hcsshim's schema2 types (and of its guest requests)
/// that libctd's documents use, read from hcsshim's sources.
const HCSSHIM_FIELDS: &[&str] = &[
    // ComputeSystem, Version, HostedSystem
    "Owner",
    "SchemaVersion",
    "HostingSystemId",
    "HostedSystem",
    "Container",
    "VirtualMachine",
    "ShouldTerminateOnLastHandleClosed",
    "Major",
    "Minor",
    // Container and its parts
    "GuestOs",
    "HostName",
    "Storage",
    "Layers",
    "Path",
    "QoS",
    "Id",
    "IopsMaximum",
    "BandwidthMaximum",
    "MappedDirectories",
    "HostPath",
    "ContainerPath",
    "ReadOnly",
    "MappedPipes",
    "ContainerPipeName",
    "Memory",
    "SizeInMB",
    "Processor",
    "Count",
    "Maximum",
    "Weight",
    "Networking",
    "AllowUnqualifiedDnsQuery",
    "DnsSearchList",
    "NetworkSharedContainerName",
    "Namespace",
    // VirtualMachine and its parts
    "StopOnReset",
    "Chipset",
    "Uefi",
    "BootThis",
    "DeviceType",
    "DevicePath",
    "ComputeTopology",
    "AllowOvercommit",
    "EnableHotHint",
    "Devices",
    "Scsi",
    "Attachments",
    "Type",
    "HvSocket",
    "HvSocketConfig",
    "DefaultBindSecurityDescriptor",
    "VirtualSmb",
    "Shares",
    "DirectFileMappingInMB",
    "Name",
    "Options",
    "ShareRead",
    "CacheIo",
    "PseudoOplocks",
    "TakeBackupPrivilege",
    // ModifySettingRequest, ModificationRequest, WCOWMappedVirtualDisk, WCOWCombinedLayers
    "ResourcePath",
    "RequestType",
    "Settings",
    "GuestRequest",
    "ResourceType",
    "Lun",
    "ContainerRootPath",
];

/// Every key of golden document `name` is one of hcsshim's field names
/// (map keys, SCSI controllers and LUNs, are not fields).
fn check_field_names(name: &str) {
    fn walk(v: &serde_json::Value, path: &str, name: &str) {
        match v {
            serde_json::Value::Object(map) => {
                let is_map = path.ends_with("/Scsi") || path.ends_with("/Attachments");
                for (k, child) in map {
                    if !is_map && k != "Do" && k != "Undo" {
                        assert!(
                            HCSSHIM_FIELDS.contains(&k.as_str()),
                            "{name}: {path}/{k} is not a field of hcsshim's schema"
                        );
                    }
                    walk(child, &format!("{path}/{k}"), name);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, path, name);
                }
            }
            _ => {}
        }
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    walk(&doc, "", name);
}

#[test]
fn hyperv_memory_is_a_multiple_of_two_megabytes() {
    for (limit_mb, vm_mb) in [(1u64, 2u64), (2047, 2048), (2048, 2048)] {
        let mut v = hyperv_spec();
        v["windows"]["resources"]["memory"]["limit"] = (limit_mb * 1024 * 1024).into();
        let config = convert::compute_system(&sim(), "moby", &spec(v)).unwrap();
        let vm = config.utility_vm.unwrap().document.virtual_machine.unwrap();
        assert_eq!(vm.compute_topology.memory.size_in_mb, vm_mb, "{limit_mb}");
    }
}

#[test]
fn unsupported_fields_left_empty_are_accepted() {
    let mut v = full_process_isolated();
    v["windows"]["devices"] = serde_json::json!([]);
    v["windows"]["network"]["endpointList"] = serde_json::json!([]);
    v["windows"]["ignoreFlushesDuringBoot"] = false.into();
    let config = convert::compute_system(&sim(), "moby", &spec(v)).unwrap();
    assert_eq!(config.isolation, Isolation::Process);
}

#[test]
fn golden_process_parameters() {
    let s = spec(full_process_isolated());
    let params = convert::process_parameters(s.process().as_ref().unwrap(), true).unwrap();
    golden("process_parameters_terminal", &params);
    // The command line reads back as the original arguments.
    assert_eq!(
        split_command_line(&params.command_line),
        s.process().as_ref().unwrap().args().clone().unwrap()
    );

    let p: Process = serde_json::from_value(serde_json::json!({
        "args": ["ignored"],
        "commandLine": "cmd /S /C \"echo hi\"",
        "cwd": "C:\\",
        "user": {"uid": 0, "gid": 0}
    }))
    .unwrap();
    let params = convert::process_parameters(&p, false).unwrap();
    golden("process_parameters_command_line", &params);
}

#[test]
fn validations_name_their_field() {
    type Edit = fn(&mut serde_json::Value);
    let cases: &[(&str, Edit)] = &[
        ("windows", |v| {
            v.as_object_mut().unwrap().remove("windows");
        }),
        ("windows.layerFolders", |v| {
            v["windows"]["layerFolders"] = serde_json::json!(["C:\\only"]);
        }),
        ("windows.layerFolders[1]", |v| {
            v["windows"]["layerFolders"] = serde_json::json!(["C:\\a", " ", "C:\\s"]);
        }),
        ("windows.resources.cpu", |v| {
            v["windows"]["resources"]["cpu"] = serde_json::json!({"count": 2, "shares": 10});
        }),
        ("windows.resources.cpu.count", |v| {
            v["windows"]["resources"]["cpu"] = serde_json::json!({"count": 0});
        }),
        ("windows.resources.cpu.maximum", |v| {
            v["windows"]["resources"]["cpu"] = serde_json::json!({"maximum": 10001});
        }),
        ("windows.resources.memory.limit", |v| {
            v["windows"]["resources"]["memory"] = serde_json::json!({"limit": 1000});
        }),
        ("mounts[1].type", |v| {
            v["mounts"][1]["type"] = "bind".into();
        }),
        ("mounts[0].source", |v| {
            v["mounts"][0]["source"] = "".into();
        }),
        ("mounts[2].destination", |v| {
            v["mounts"][2]["destination"] = "\\\\.\\pipe\\".into();
        }),
        ("windows.credentialSpec", |v| {
            v["windows"]["credentialSpec"] = serde_json::json!({"CmsPlugin": "x"});
        }),
        ("windows.devices", |v| {
            v["windows"]["devices"] = serde_json::json!([{"id": "5B45201D-F2F2-4F3B-85BB-30FF1F953599", "idType": "class"}]);
        }),
        // With a namespace given (Hyper-V isolation takes endpoints: see
        // tests/hyperv_network.rs).
        ("windows.network.endpointList", |v| {
            v["windows"]["network"]["endpointList"] = serde_json::json!(["e1"]);
        }),
        ("windows.network.endpointList[0]", |v| {
            v["windows"]["network"] = serde_json::json!({"endpointList": [" "]});
        }),
        ("windows.ignoreFlushesDuringBoot", |v| {
            v["windows"]["ignoreFlushesDuringBoot"] = true.into();
        }),
        ("windows.resources.storage.sandboxSize", |v| {
            v["windows"]["resources"]["storage"]["sandboxSize"] = 21_474_836_480u64.into();
        }),
        ("root.readonly", |v| {
            v["root"]["readonly"] = true.into();
        }),
        ("root.path", |v| {
            v["root"]["path"] = "".into();
        }),
        ("root.path", |v| {
            v["windows"]["hyperv"] = serde_json::json!({});
        }),
        ("windows.layerFolders", |v| {
            v["windows"]["hyperv"] = serde_json::json!({});
            v["root"]["path"] = "".into();
            v["mounts"] = serde_json::json!([]);
        }),
        ("mounts[2].destination", |v| {
            v["windows"]["layerFolders"][1] = "C:\\layers\\uvm-base".into();
            v["windows"]["hyperv"] = serde_json::json!({});
            v["root"]["path"] = "".into();
        }),
    ];
    for (field, edit) in cases {
        let mut v = full_process_isolated();
        edit(&mut v);
        let err = convert::compute_system(&sim(), "moby", &spec(v)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{field}: {err}");
        assert!(
            err.to_string().contains(&format!("invalid spec: {field} ")),
            "{field}: {err}"
        );
    }

    let process_cases: &[(&str, serde_json::Value)] = &[
        (
            "process.args",
            serde_json::json!({"args": [], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}}),
        ),
        (
            "process.env[1]",
            serde_json::json!({"args": ["a"], "env": ["A=1", "NOEQUALS"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}}),
        ),
        (
            "process.env[0]",
            serde_json::json!({"args": ["a"], "env": ["=x"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}}),
        ),
        (
            "process.consoleSize",
            serde_json::json!({"args": ["a"], "terminal": true, "consoleSize": {"height": 0, "width": 80}, "cwd": "C:\\", "user": {"uid": 0, "gid": 0}}),
        ),
    ];
    for (field, value) in process_cases {
        let p: Process = serde_json::from_value(value.clone()).unwrap();
        let err = convert::process_parameters(&p, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{field}: {err}");
        assert!(
            err.to_string().contains(&format!("invalid spec: {field} ")),
            "{field}: {err}"
        );
    }
}

#[test]
fn command_line_escaping() {
    let cases: &[(&[&str], &str)] = &[
        (&["a", "b"], "a b"),
        (&[""], "\"\""),
        (&["a b"], "\"a b\""),
        (&["a\"b"], "a\\\"b"),
        (&["a\\b"], "a\\b"),
        (&["a b\\"], "\"a b\\\\\""),
        (&["\\\"x"], "\\\\\\\"x"),
    ];
    for (args, line) in cases {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(join_args(&args), *line);
        assert_eq!(split_command_line(line), args, "{line}");
    }
}

proptest::proptest! {
    #[test]
    fn command_lines_round_trip(args in proptest::collection::vec("[a-z \\\\\"\t]{0,8}", 1..5)) {
        proptest::prop_assert_eq!(split_command_line(&join_args(&args)), args);
    }
}

/// The property query documents sent are what PropertyQuery encodes.
#[test]
fn property_query_constants_are_their_encoding() {
    use libctd_windows::schema::PropertyQuery;
    for (constant, types) in [
        (PropertyQuery::STATISTICS, "Statistics"),
        (PropertyQuery::PROCESS_LIST, "ProcessList"),
        (PropertyQuery::PENDING_UPDATES, "PendingUpdates"),
    ] {
        let encoded = serde_json::to_string(&PropertyQuery::new(&[types])).unwrap();
        assert_eq!(constant, encoded);
    }
}
