//! A Hyper-V isolated container's utility VM, built the way hcsshim builds
//! one for a Windows guest: the VM boots from its own scratch (a copy of the
//! image's `UtilityVM\SystemTemplate.vhdx` at `<scratch>\vm\sandbox.vhdx`,
//! SCSI 0:0) and the `os` VSMB share; once it runs, the container's layers
//! (and mounted directories) are hot-added as VSMB shares and its scratch
//! disk at SCSI 0:1, mounted by the guest at `c:\mounts\scsi\m0` where the
//! guest combines the layers. The hosted container sees only guest paths.

use std::collections::BTreeMap;

use libctd_core::Result;

use super::{invalid, join_windows};
use crate::schema::{
    Attachment, Chipset, ComputeSystem, Devices, HvSocket, HvSocketSystemConfig, Layer,
    MappedDirectory, ModifySettingRequest, SCSI_CONTROLLER_0, SchemaVersion, Scsi, Topology, Uefi,
    UefiBootEntry, VSMB_PREFIX, VirtualMachine, VirtualSmb, VirtualSmbShare,
    VirtualSmbShareOptions, VmMemory, VmProcessor,
};

/// The LUN of the container's scratch disk on the VM's first SCSI
/// controller (0 is the VM's own scratch, which it boots from).
pub const CONTAINER_SCRATCH_LUN: u32 = 1;
/// Where the guest mounts the container's scratch (the first SCSI mount of
/// a Windows guest) and combines its layers: the container's root.
pub const GUEST_ROOT: &str = r"c:\mounts\scsi\m0";
/// Who may bind Hyper-V sockets in the utility VM: SYSTEM and administrators.
const HV_SOCKET_BIND_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";
/// Memory of a utility VM without a limit in the spec, in MiB.
const DEFAULT_MEMORY_MB: u64 = 1024;
/// Processors of a utility VM without a count in the spec.
const DEFAULT_PROCESSORS: u32 = 2;
/// Memory for files the VM maps directly from its shares, in MiB.
const DIRECT_FILE_MAPPING_MB: u64 = 1024;

/// What a Hyper-V isolated container needs before its own compute system
/// is created, and what is removed with it.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilityVmPlan {
    /// The utility VM's document.
    pub document: ComputeSystem,
    /// The image's template of the VM's scratch (`UtilityVM\SystemTemplate.vhdx`).
    pub scratch_template: String,
    /// The VM's own scratch, `<scratch>\vm\sandbox.vhdx`, copied from the
    /// template; the VM boots from it at SCSI 0:0.
    pub scratch: String,
    /// The container's scratch disk, `<scratch>\sandbox.vhdx`, hot-added at
    /// SCSI 0:[`CONTAINER_SCRATCH_LUN`].
    pub container_scratch: String,
    /// Where the guest mounts the container's scratch and combines its layers.
    pub guest_root: String,
    /// The VSMB shares hot-added once the VM runs: the layers, then the
    /// mounted directories.
    pub shares: Vec<VirtualSmbShare>,
    /// The container's layers by guest path, as combined in the guest.
    pub guest_layers: Vec<Layer>,
}

/// A modify request of a utility VM and the request that undoes it.
pub type Reversible = (ModifySettingRequest, ModifySettingRequest);

impl UtilityVmPlan {
    /// The VSMB shares to hot-add once the VM runs, each with its removal.
    pub fn share_requests(&self) -> Vec<Reversible> {
        self.shares
            .iter()
            .map(|share| {
                (
                    ModifySettingRequest::add_share(share),
                    ModifySettingRequest::remove_share(&share.name),
                )
            })
            .collect()
    }

    /// The container's scratch attached at SCSI 0:[`CONTAINER_SCRATCH_LUN`],
    /// mounted by the guest, the layers combined over it; each with its undo.
    pub fn scratch_requests(&self) -> Vec<Reversible> {
        let lun = CONTAINER_SCRATCH_LUN;
        let root = &self.guest_root;
        vec![
            (
                ModifySettingRequest::attach_scsi(lun, &self.container_scratch),
                ModifySettingRequest::detach_scsi(lun),
            ),
            (
                ModifySettingRequest::mount_scsi(lun, root),
                ModifySettingRequest::unmount_scsi(lun, root),
            ),
            (
                ModifySettingRequest::combine_layers(root, &self.guest_layers),
                ModifySettingRequest::remove_combined_layers(root),
            ),
        ]
    }
}

/// A VM's memory in MiB, rounded up to a multiple of 2 (HCS backs it in
/// 2 MB pages; hcsshim normalises the size the same way).
pub fn normalize_memory_mb(requested: u64) -> u64 {
    requested.saturating_add(1) & !1
}

/// The share name of the `n`th hot-added share (1-based), as hcsshim names
/// them: `s` and a hexadecimal counter.
fn share_name(n: usize) -> String {
    format!("s{n:x}")
}

/// Plans the utility VM of a container whose image keeps its utility VM in
/// `uvm` (a `UtilityVM` folder), with scratch folder `scratch`, read-only
/// layers `layers` (host paths) and mounted directories `mounts`, whose
/// host paths become the guest paths of their shares.
pub(super) fn plan(
    owner: &str,
    uvm: &str,
    scratch: &str,
    layers: &[Layer],
    mounts: &mut [MappedDirectory],
    memory_mb: Option<u64>,
    processors: Option<u32>,
) -> Result<UtilityVmPlan> {
    if scratch.trim().is_empty() {
        return Err(invalid(
            "windows.layerFolders",
            "has an empty scratch folder",
        ));
    }
    let vm_scratch = join_windows(&join_windows(scratch, "vm"), "sandbox.vhdx");
    let mut shares = Vec::with_capacity(layers.len() + mounts.len());
    let mut guest_layers = Vec::with_capacity(layers.len());
    for layer in layers {
        let name = share_name(shares.len() + 1);
        guest_layers.push(Layer {
            id: layer.id.clone(),
            path: format!("{VSMB_PREFIX}{name}"),
        });
        shares.push(VirtualSmbShare {
            name,
            path: layer.path.clone(),
            options: Some(VirtualSmbShareOptions::image()),
        });
    }
    for mount in mounts.iter_mut() {
        let name = share_name(shares.len() + 1);
        let host = std::mem::replace(&mut mount.host_path, format!("{VSMB_PREFIX}{name}"));
        shares.push(VirtualSmbShare {
            name,
            path: host,
            options: Some(VirtualSmbShareOptions::mount(mount.read_only)),
        });
    }
    let vm = VirtualMachine {
        stop_on_reset: true,
        chipset: Chipset {
            uefi: Uefi {
                boot_this: UefiBootEntry {
                    device_type: "VmbFs".to_owned(),
                    device_path: r"\EFI\Microsoft\Boot\bootmgfw.efi".to_owned(),
                },
            },
        },
        compute_topology: Topology {
            memory: VmMemory {
                size_in_mb: normalize_memory_mb(memory_mb.unwrap_or(DEFAULT_MEMORY_MB)),
                allow_overcommit: true,
                enable_hot_hint: true,
            },
            processor: VmProcessor {
                count: processors.unwrap_or(DEFAULT_PROCESSORS),
            },
        },
        devices: Devices {
            scsi: BTreeMap::from([(
                SCSI_CONTROLLER_0.to_owned(),
                Scsi {
                    attachments: BTreeMap::from([(
                        "0".to_owned(),
                        Attachment::virtual_disk(&vm_scratch),
                    )]),
                },
            )]),
            hv_socket: Some(HvSocket {
                hv_socket_config: HvSocketSystemConfig {
                    default_bind_security_descriptor: HV_SOCKET_BIND_SDDL.to_owned(),
                },
            }),
            virtual_smb: VirtualSmb {
                shares: vec![VirtualSmbShare {
                    name: "os".to_owned(),
                    path: join_windows(uvm, "Files"),
                    options: Some(VirtualSmbShareOptions::image()),
                }],
                direct_file_mapping_in_mb: DIRECT_FILE_MAPPING_MB,
            },
        },
    };
    Ok(UtilityVmPlan {
        document: ComputeSystem {
            owner: owner.to_owned(),
            schema_version: SchemaVersion::V2_1,
            should_terminate_on_last_handle_closed: true,
            hosting_system_id: None,
            container: None,
            hosted_system: None,
            virtual_machine: Some(vm),
        },
        scratch_template: join_windows(uvm, "SystemTemplate.vhdx"),
        scratch: vm_scratch,
        container_scratch: join_windows(scratch, "sandbox.vhdx"),
        guest_root: GUEST_ROOT.to_owned(),
        shares,
        guest_layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_rounds_up_to_two_megabytes() {
        assert_eq!(normalize_memory_mb(1023), 1024);
        assert_eq!(normalize_memory_mb(1024), 1024);
        assert_eq!(normalize_memory_mb(1), 2);
        assert_eq!(normalize_memory_mb(u64::MAX), u64::MAX - 1);
    }

    #[test]
    fn shares_are_named_by_a_hexadecimal_counter() {
        assert_eq!(share_name(1), "s1");
        assert_eq!(share_name(10), "sa");
    }
}
