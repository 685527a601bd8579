//! What the model checks in compute system documents: what HCS needs to
//! boot them, as hcsshim builds them for Windows containers.
//!
//! A document decodes strictly (an unknown field is HCS_E_INVALID_JSON, as
//! the Windows Server 2022 guest reads what it is sent) into the crate's
//! schema types, whose field names are hcsshim's schema2 names. Then, by
//! its form:
//!
//! - a process-isolated container: a top-level `Container` whose
//!   `Storage.Path` names its mounted scratch;
//! - a utility VM: `VirtualMachine` booting from the disk at SCSI 0:0 of its
//!   first controller (keyed by GUID), which it must have been granted
//!   access to, with a Hyper-V socket configuration and the `os` VSMB share;
//! - a hosted container: `HostingSystemId` with `HostedSystem { SchemaVersion,
//!   Container }`; never a top-level `Container` beside `HostingSystemId`
//!   (the form HCS does not boot). Its layers and root are checked against
//!   its running utility VM ([`super::vm`]).

use super::hr;
use crate::error::HcsError;
use crate::schema::{ComputeSystem, Container, SCSI_CONTROLLER_0};

/// What the model keeps of a checked configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct Configuration {
    /// A utility VM, or a container hosted by one: it can be paused.
    pub(super) hyperv: bool,
    /// A utility VM (its devices can be modified).
    pub(super) vm: bool,
    /// The utility VM hosting this container (`HostingSystemId`).
    pub(super) hosted_by: Option<String>,
    /// A utility VM's boot disk (SCSI 0:0).
    pub(super) boot_disk: String,
    /// A utility VM's VSMB share names at boot.
    pub(super) shares: Vec<String>,
    /// A hosted container's layer paths, each a share of its utility VM.
    pub(super) layers: Vec<String>,
    /// A hosted container's root in its utility VM (`Storage.Path`).
    pub(super) root: String,
}

/// Checks a configuration the way HCS needs it to boot (see the module's
/// description). Failures are HCS_E_INVALID_JSON with a message.
pub(super) fn check_configuration(configuration: &str) -> Result<Configuration, HcsError> {
    let doc: ComputeSystem =
        serde_json::from_str(configuration).map_err(|e| invalid(&e.to_string()))?;
    if doc.schema_version.major != 2 {
        return Err(invalid("SchemaVersion must be 2.x"));
    }
    let storage_path = |c: &Container| {
        c.storage
            .as_ref()
            .and_then(|s| s.path.clone())
            .unwrap_or_default()
    };
    match (
        &doc.hosting_system_id,
        &doc.container,
        &doc.hosted_system,
        &doc.virtual_machine,
    ) {
        (None, Some(container), None, None) => {
            if storage_path(container).is_empty() {
                return Err(invalid("the container has no Storage.Path (its scratch)"));
            }
            Ok(Configuration::default())
        }
        (Some(_), Some(_), _, _) => Err(invalid(
            "a container hosted by HostingSystemId goes in HostedSystem \
             {SchemaVersion, Container}, not a top-level Container",
        )),
        (Some(host), None, Some(hosted), None) => {
            if hosted.schema_version.major != 2 {
                return Err(invalid("HostedSystem.SchemaVersion must be 2.x"));
            }
            let root = storage_path(&hosted.container);
            if root.is_empty() {
                return Err(invalid("the hosted container has no Storage.Path"));
            }
            let layers = hosted
                .container
                .storage
                .iter()
                .flat_map(|s| s.layers.iter().map(|l| l.path.clone()))
                .chain(
                    hosted
                        .container
                        .mapped_directories
                        .iter()
                        .map(|m| m.host_path.clone()),
                )
                .collect();
            Ok(Configuration {
                hyperv: true,
                hosted_by: Some(host.clone()),
                layers,
                root,
                ..Configuration::default()
            })
        }
        (None, None, Some(_), _) => Err(invalid("HostedSystem needs a HostingSystemId")),
        (None, None, None, Some(vm)) => {
            let boot = vm
                .devices
                .scsi
                .get(SCSI_CONTROLLER_0)
                .and_then(|c| c.attachments.get("0"))
                .filter(|a| a.kind == "VirtualDisk" && !a.path.is_empty())
                .ok_or_else(|| {
                    invalid(&format!(
                        "the utility VM cannot boot: no disk at SCSI 0:0 (controller {SCSI_CONTROLLER_0})"
                    ))
                })?;
            if vm.devices.hv_socket.is_none() {
                return Err(invalid("the utility VM has no HvSocket configuration"));
            }
            let shares: Vec<String> = vm
                .devices
                .virtual_smb
                .shares
                .iter()
                .map(|s| s.name.clone())
                .collect();
            if !shares.iter().any(|s| s == "os") {
                return Err(invalid("the utility VM has no os VSMB share"));
            }
            if vm.compute_topology.memory.size_in_mb % 2 != 0 {
                return Err(invalid(
                    "the utility VM's memory must be a multiple of 2 MB",
                ));
            }
            Ok(Configuration {
                hyperv: true,
                vm: true,
                boot_disk: boot.path.clone(),
                shares,
                ..Configuration::default()
            })
        }
        _ => Err(invalid(
            "exactly one of Container, HostedSystem (with HostingSystemId) and \
             VirtualMachine is needed",
        )),
    }
}

/// HCS_E_INVALID_JSON with `message` as its result document's.
pub(super) fn invalid(message: &str) -> HcsError {
    failure(hr::INVALID_JSON, message)
}

/// A failure with a result document carrying `message`.
pub(super) fn failure(hresult: crate::error::Hresult, message: &str) -> HcsError {
    HcsError::with_document(
        hresult,
        &serde_json::json!({"ErrorMessage": message}).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str = r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{
        "StopOnReset":true,
        "Chipset":{"Uefi":{"BootThis":{"DeviceType":"VmbFs","DevicePath":"\\b.efi"}}},
        "ComputeTopology":{"Memory":{"SizeInMB":1024,"AllowOvercommit":true,"EnableHotHint":true},
            "Processor":{"Count":2}},
        "Devices":{
        "Scsi":{"df6d0690-79e5-55b6-a5ec-c1e2f77f580a":{"Attachments":{"0":{"Type":"VirtualDisk","Path":"C:\\s\\vm\\sandbox.vhdx"}}}},
        "HvSocket":{"HvSocketConfig":{"DefaultBindSecurityDescriptor":"D:P"}},
        "VirtualSmb":{"Shares":[{"Name":"os","Path":"C:\\u\\Files"}]}}}}"#;

    #[test]
    fn documents_need_what_hcs_boots() {
        let ok = r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Path":"\\\\?\\Volume{x}\\"}}}"#;
        assert!(check_configuration(ok).is_ok());
        let vm = check_configuration(VM).unwrap();
        assert!(vm.vm);
        assert_eq!(vm.boot_disk, r"C:\s\vm\sandbox.vhdx");
        let hosted = r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"vm",
            "HostedSystem":{"SchemaVersion":{"Major":2,"Minor":1},
            "Container":{"Storage":{"Path":"c:\\mounts\\scsi\\m0","Layers":[]}}}}"#;
        let hosted = check_configuration(hosted).unwrap();
        assert_eq!(hosted.hosted_by.as_deref(), Some("vm"));
        assert_eq!(hosted.root, r"c:\mounts\scsi\m0");
        for bad in [
            "{",
            r#"{"SchemaVersion":{"Major":1,"Minor":0}}"#,
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{}}"#,
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Path":"x"}},"Extra":1}"#,
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Path":"x","Bogus":1}}}"#,
            // The old form: a top-level Container beside HostingSystemId.
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"vm","Container":{"Storage":{"Path":"x"}}}"#,
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostedSystem":{"SchemaVersion":{"Major":2,"Minor":1},"Container":{}}}"#,
            // The old utility VM: its boot disk keyed by controller "0".
            &VM.replace("df6d0690-79e5-55b6-a5ec-c1e2f77f580a", "0"),
            &VM.replace("1024", "1025"),
            r#"{"SchemaVersion":{"Major":2,"Minor":1}}"#,
        ] {
            let err = check_configuration(bad).unwrap_err();
            assert!(err.hresult.is_not_supported(), "{bad}: {err:?}");
            assert!(err.detail.is_some(), "{bad}");
        }
    }
}
