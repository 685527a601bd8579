//! What the double checks in compute system documents: what HCS needs to
//! boot them, as hcsshim builds them.

use crate::world::{Status, hr, lock, world};

/// Where a utility VM's VSMB shares appear inside it.
const VSMB_PREFIX: &str = r"\\?\VMSMB\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\";

/// Checks a configuration the way HCS needs it to boot (as hcsshim builds
/// them): schema 2; a utility VM with its scratch disk at SCSI 0:0, a
/// Hyper-V socket configuration and the `os` VSMB share; a container with
/// its scratch as `Storage.Path`; never the combined `HostedSystem` form.
pub(crate) fn check_configuration(doc: &serde_json::Value) -> Result<(), String> {
    let text = |p: &str| {
        doc.pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    if doc
        .pointer("/SchemaVersion/Major")
        .and_then(serde_json::Value::as_u64)
        != Some(2)
    {
        return Err("SchemaVersion must be 2.x".into());
    }
    if doc.get("HostedSystem").is_some() {
        return Err(
            "HostedSystem is not supported: create the utility VM, then the container \
                    with HostingSystemId"
                .into(),
        );
    }
    match (doc.get("Container"), doc.get("VirtualMachine")) {
        (Some(_), None) => {
            if text("/Container/Storage/Path").is_empty() {
                return Err("the container has no Storage.Path (its scratch)".into());
            }
        }
        (None, Some(_)) => {
            if text("/VirtualMachine/Devices/Scsi/0/Attachments/0/Type") != "VirtualDisk"
                || text("/VirtualMachine/Devices/Scsi/0/Attachments/0/Path").is_empty()
            {
                return Err("the utility VM cannot boot: no scratch disk at SCSI 0:0".into());
            }
            if doc
                .pointer("/VirtualMachine/Devices/HvSocket/HvSocketConfig")
                .is_none()
            {
                return Err("the utility VM has no HvSocket configuration".into());
            }
            if !vsmb_shares(doc).iter().any(|s| s == "os") {
                return Err("the utility VM has no os VSMB share".into());
            }
        }
        _ => return Err("exactly one of Container and VirtualMachine is needed".into()),
    }
    Ok(())
}

/// A utility VM document's VSMB share names.
pub(crate) fn vsmb_shares(doc: &serde_json::Value) -> Vec<String> {
    doc.pointer("/VirtualMachine/Devices/VirtualSmb/Shares")
        .and_then(serde_json::Value::as_array)
        .map(|shares| {
            shares
                .iter()
                .filter_map(|s| s.get("Name").and_then(serde_json::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a hosted container against its utility VM: it must run, and
/// every layer must be one of its VSMB shares.
pub(crate) fn check_host(doc: &serde_json::Value, host_id: &str) -> Result<(), (i32, String)> {
    let host = world().systems.get(host_id).cloned();
    let Some(host) = host else {
        return Err((hr::SYSTEM_NOT_FOUND, format!("no utility VM {host_id:?}")));
    };
    if lock(&host.state).status != Status::Running {
        return Err((
            hr::INVALID_STATE,
            format!("the utility VM {host_id:?} is not running"),
        ));
    }
    let layers = doc
        .pointer("/Container/Storage/Layers")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for layer in layers {
        let path = layer
            .get("Path")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let shared = path
            .strip_prefix(VSMB_PREFIX)
            .is_some_and(|name| host.shares.iter().any(|s| s == name));
        if !shared {
            return Err((
                hr::INVALID_JSON,
                format!("layer {path:?} is not a VSMB share of the utility VM"),
            ));
        }
    }
    Ok(())
}
