//! The utility VM of a Hyper-V isolated container, and the modify requests
//! that hot-add its devices (VSMB shares, SCSI disks) and ask its guest to
//! mount a disk and combine a container's layers.
//!
//! Names follow hcsshim's schema2 and guest-request packages: a SCSI
//! controller is keyed by its GUID, a guest request names its resource type
//! (`MappedVirtualDisk`, `CombinedLayers`).
//!
//! ```
//! use libctd_windows::schema::ModifySettingRequest;
//!
//! let detach = ModifySettingRequest::detach_scsi(1);
//! assert_eq!(
//!     serde_json::to_string(&detach).unwrap(),
//!     r#"{"ResourcePath":"VirtualMachine/Devices/Scsi/df6d0690-79e5-55b6-a5ec-c1e2f77f580a/Attachments/1","RequestType":"Remove"}"#
//! );
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Layer;

/// Where a VSMB share of a utility VM appears inside it: this prefix and
/// the share's name.
pub const VSMB_PREFIX: &str = r"\\?\VMSMB\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\";
/// The key of a utility VM's first SCSI controller: HCS names controllers
/// by GUID (a version-5 GUID of the index, as hcsshim derives them).
pub const SCSI_CONTROLLER_0: &str = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a";
/// The resource path of a utility VM's VSMB shares.
pub const VSMB_SHARES_PATH: &str = "VirtualMachine/Devices/VirtualSmb/Shares";
/// The guest request type of a SCSI disk mounted in a Windows guest.
pub const MAPPED_VIRTUAL_DISK: &str = "MappedVirtualDisk";
/// The guest request type of a container's layers combined in the guest.
pub const COMBINED_LAYERS: &str = "CombinedLayers";

/// The resource path of SCSI attachment `lun` of the first controller.
pub fn scsi_attachment_path(lun: u32) -> String {
    format!("VirtualMachine/Devices/Scsi/{SCSI_CONTROLLER_0}/Attachments/{lun}")
}

/// The utility VM of a Hyper-V isolated container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VirtualMachine {
    /// Stop the VM when the guest resets.
    pub stop_on_reset: bool,
    /// Firmware settings.
    pub chipset: Chipset,
    /// Memory and processors.
    pub compute_topology: Topology,
    /// Its devices.
    pub devices: Devices,
}

/// Firmware settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Chipset {
    /// UEFI boot settings.
    pub uefi: Uefi,
}

/// UEFI boot settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Uefi {
    /// What to boot.
    pub boot_this: UefiBootEntry,
}

/// A UEFI boot entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UefiBootEntry {
    /// The device kind (`VmbFs`).
    pub device_type: String,
    /// The boot loader's path on that device.
    pub device_path: String,
}

/// Memory and processors of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Topology {
    /// Memory.
    pub memory: VmMemory,
    /// Processors.
    pub processor: VmProcessor,
}

/// Memory of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VmMemory {
    /// Size in MiB, a multiple of 2 (HCS backs VM memory in 2 MB pages).
    #[serde(rename = "SizeInMB")]
    pub size_in_mb: u64,
    /// Back the memory with the host's virtual memory.
    pub allow_overcommit: bool,
    /// Let the guest hint which pages are hot (with overcommit).
    pub enable_hot_hint: bool,
}

/// Processors of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VmProcessor {
    /// Number of virtual processors.
    pub count: u32,
}

/// Devices of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Devices {
    /// SCSI controllers by GUID, each with its attachments by LUN.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scsi: BTreeMap<String, Scsi>,
    /// The VM's Hyper-V socket configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hv_socket: Option<HvSocket>,
    /// VSMB shares.
    pub virtual_smb: VirtualSmb,
}

/// A SCSI controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Scsi {
    /// Attachments by LUN.
    pub attachments: BTreeMap<String, Attachment>,
}

/// A disk attached to a SCSI controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Attachment {
    /// The attachment kind (`VirtualDisk`).
    #[serde(rename = "Type")]
    pub kind: String,
    /// The host path of the disk.
    pub path: String,
}

impl Attachment {
    /// A virtual disk (VHDX) at host path `path`.
    pub fn virtual_disk(path: &str) -> Self {
        Self {
            kind: "VirtualDisk".to_owned(),
            path: path.to_owned(),
        }
    }
}

/// A VM's Hyper-V socket device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HvSocket {
    /// The system-wide configuration.
    pub hv_socket_config: HvSocketSystemConfig,
}

/// Default security of the VM's Hyper-V sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HvSocketSystemConfig {
    /// Who may bind a Hyper-V socket (an SDDL string).
    pub default_bind_security_descriptor: String,
}

/// VSMB shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VirtualSmb {
    /// The shares present at boot.
    #[serde(default)]
    pub shares: Vec<VirtualSmbShare>,
    /// Memory for directly mapped files, in MiB.
    #[serde(rename = "DirectFileMappingInMB", default)]
    pub direct_file_mapping_in_mb: u64,
}

/// One VSMB share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VirtualSmbShare {
    /// The share name.
    pub name: String,
    /// The host path shared (absent when a share is removed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Share options (absent when a share is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<VirtualSmbShareOptions>,
}

/// Options of a VSMB share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VirtualSmbShareOptions {
    /// Read-only share.
    #[serde(default)]
    pub read_only: bool,
    /// Allow shared reads.
    #[serde(default)]
    pub share_read: bool,
    /// Cache I/O in the guest.
    #[serde(default)]
    pub cache_io: bool,
    /// Use pseudo-oplocks.
    #[serde(default)]
    pub pseudo_oplocks: bool,
    /// Take the backup privilege.
    #[serde(default)]
    pub take_backup_privilege: bool,
}

impl VirtualSmbShareOptions {
    /// A read-only share of image files (the `os` share, a layer).
    pub fn image() -> Self {
        Self {
            read_only: true,
            share_read: true,
            cache_io: true,
            pseudo_oplocks: true,
            take_backup_privilege: true,
        }
    }

    /// A share of a mounted host directory, read-only or not.
    pub fn mount(read_only: bool) -> Self {
        Self {
            read_only,
            share_read: read_only,
            cache_io: read_only,
            pseudo_oplocks: read_only,
            take_backup_privilege: false,
        }
    }
}

/// An `HcsModifyComputeSystem` request on a utility VM: a host resource
/// (`ResourcePath`), a request to its guest, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifySettingRequest {
    /// The VM resource modified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_path: Option<String>,
    /// `Add` or `Remove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    /// The resource's settings (a share, an attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
    /// What the guest is asked to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_request: Option<GuestRequest>,
}

/// A request to a utility VM's guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GuestRequest {
    /// `MappedVirtualDisk`, `CombinedLayers`, `Network` or
    /// `NetworkNamespace`; absent from a network adapter's removal, as
    /// hcsshim sends it to a Windows guest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_type: String,
    /// `Add` or `Remove`.
    pub request_type: String,
    /// The request's settings.
    pub settings: serde_json::Value,
}

/// A SCSI disk mounted in a Windows guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MappedVirtualDisk {
    /// Where the guest mounts it.
    pub container_path: String,
    /// Its LUN on the first SCSI controller.
    pub lun: u32,
}

/// A container's layers combined over its scratch, in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CombinedLayers {
    /// The container's root in the guest (its mounted scratch).
    pub container_root_path: String,
    /// The layers, by guest path (absent when removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
}

pub(super) fn settings(value: &impl Serialize) -> Option<serde_json::Value> {
    // Every settings type here serialises to a JSON object.
    serde_json::to_value(value).ok()
}

impl ModifySettingRequest {
    pub(super) fn host(path: String, request_type: &str, value: Option<serde_json::Value>) -> Self {
        Self {
            resource_path: Some(path),
            request_type: Some(request_type.to_owned()),
            settings: value,
            guest_request: None,
        }
    }

    pub(super) fn guest(resource_type: &str, request_type: &str, value: &impl Serialize) -> Self {
        Self {
            resource_path: None,
            request_type: None,
            settings: None,
            guest_request: Some(GuestRequest {
                resource_type: resource_type.to_owned(),
                request_type: request_type.to_owned(),
                settings: settings(value).unwrap_or_default(),
            }),
        }
    }

    /// Hot-adds VSMB share `share`.
    pub fn add_share(share: &VirtualSmbShare) -> Self {
        Self::host(VSMB_SHARES_PATH.to_owned(), "Add", settings(share))
    }

    /// Removes VSMB share `name`.
    pub fn remove_share(name: &str) -> Self {
        let share = VirtualSmbShare {
            name: name.to_owned(),
            path: String::new(),
            options: None,
        };
        Self::host(VSMB_SHARES_PATH.to_owned(), "Remove", settings(&share))
    }

    /// Hot-adds the virtual disk `path` at SCSI 0:`lun`.
    pub fn attach_scsi(lun: u32, path: &str) -> Self {
        let disk = Attachment::virtual_disk(path);
        Self::host(scsi_attachment_path(lun), "Add", settings(&disk))
    }

    /// Removes the disk at SCSI 0:`lun`.
    pub fn detach_scsi(lun: u32) -> Self {
        Self::host(scsi_attachment_path(lun), "Remove", None)
    }

    /// Asks the guest to mount the disk at SCSI 0:`lun` at `guest_path`.
    pub fn mount_scsi(lun: u32, guest_path: &str) -> Self {
        let disk = MappedVirtualDisk {
            container_path: guest_path.to_owned(),
            lun,
        };
        Self::guest(MAPPED_VIRTUAL_DISK, "Add", &disk)
    }

    /// Asks the guest to unmount the disk at SCSI 0:`lun`.
    pub fn unmount_scsi(lun: u32, guest_path: &str) -> Self {
        let disk = MappedVirtualDisk {
            container_path: guest_path.to_owned(),
            lun,
        };
        Self::guest(MAPPED_VIRTUAL_DISK, "Remove", &disk)
    }

    /// Asks the guest to combine `layers` over the scratch mounted at `root`.
    pub fn combine_layers(root: &str, layers: &[Layer]) -> Self {
        let combined = CombinedLayers {
            container_root_path: root.to_owned(),
            layers: layers.to_vec(),
        };
        Self::guest(COMBINED_LAYERS, "Add", &combined)
    }

    /// Asks the guest to undo the layers combined at `root`.
    pub fn remove_combined_layers(root: &str) -> Self {
        let combined = CombinedLayers {
            container_root_path: root.to_owned(),
            layers: Vec::new(),
        };
        Self::guest(COMBINED_LAYERS, "Remove", &combined)
    }
}
