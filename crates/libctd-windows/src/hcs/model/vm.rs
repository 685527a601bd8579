//! Utility VMs' devices and the host's disk files, as hcsshim describes
//! HCS for a Windows guest: a VM reads a disk only once it was granted
//! access to it (`HcsGrantVmAccess`); its VSMB shares and SCSI disks are
//! hot-added and removed with `HcsModifyComputeSystem` while it runs, and
//! its guest mounts a SCSI disk (`MappedVirtualDisk`) and combines a
//! container's layers over it (`CombinedLayers`). A hosted container's
//! layers must be shares of its VM and its root a combined root there.
//!
//! The host's files (a utility VM's scratch and its template) are kept
//! here for the simulation, which has no disk; the computecore.dll double
//! checks real files instead.

use std::collections::{BTreeMap, BTreeSet};

use super::documents::{failure, invalid};
use super::{Model, SystemKey, World, hr};
use crate::error::{HcsError, Hresult, win32};
use crate::schema::{
    Attachment, COMBINED_LAYERS, CombinedLayers, MAPPED_VIRTUAL_DISK, MappedVirtualDisk,
    ModifySettingRequest, NETWORK, NETWORK_NAMESPACE, NetworkAdapter, SCSI_CONTROLLER_0,
    VSMB_PREFIX, VSMB_SHARES_PATH, VirtualSmbShare,
};

/// The resource path of a VM's network adapters, before the adapter's id.
const NETWORK_ADAPTERS: &str = "VirtualMachine/Devices/NetworkAdapters/";

/// ERROR_FILE_NOT_FOUND.
pub const FILE_NOT_FOUND: Hresult = Hresult::from_win32(win32::FILE_NOT_FOUND);
/// ERROR_FILE_EXISTS.
pub const FILE_EXISTS: Hresult = Hresult::from_win32(0x50);

/// What a running utility VM holds beyond its document.
#[derive(Debug, Clone, Default)]
pub(super) struct VmDevices {
    /// VSMB share names (those of the document, then hot-added ones).
    pub(super) shares: BTreeSet<String>,
    /// Disks on the first SCSI controller, by LUN.
    pub(super) scsi: BTreeMap<u32, String>,
    /// Guest mounts of SCSI disks: guest path -> LUN.
    pub(super) mounts: BTreeMap<String, u32>,
    /// Container roots whose layers the guest combined.
    pub(super) combined: BTreeSet<String>,
    /// Network adapters by id, and their endpoints.
    pub(super) adapters: BTreeMap<String, NetworkAdapter>,
    /// Adapters the guest was told of, not added yet.
    pub(super) pre_added: BTreeSet<String>,
    /// Network namespaces added to the guest.
    pub(super) namespaces: BTreeSet<String>,
}

/// What HNS and the other VMs hold, as a VM's modify sees it.
pub(super) struct HostView<'a> {
    /// The disk access grants: (VM id, file).
    pub(super) grants: &'a BTreeSet<(String, String)>,
    /// HNS endpoints that exist.
    pub(super) endpoints: &'a BTreeSet<String>,
    /// Endpoints some running VM has an adapter for.
    pub(super) attached: BTreeSet<String>,
}

impl VmDevices {
    /// Applies a modify request (already decoded) of the VM `vm_id`.
    fn apply(
        &mut self,
        request: &ModifySettingRequest,
        vm_id: &str,
        host: &HostView<'_>,
    ) -> Result<(), HcsError> {
        let grants = host.grants;
        let kind = request.request_type.as_deref().unwrap_or("");
        if let Some(path) = &request.resource_path {
            if let Some(adapter) = path.strip_prefix(NETWORK_ADAPTERS) {
                return self.apply_adapter(adapter, request, host);
            }
            if path == VSMB_SHARES_PATH {
                let share: VirtualSmbShare = settings(request.settings.as_ref())?;
                return match kind {
                    "Add" if share.path.is_empty() => Err(invalid("a VSMB share needs a Path")),
                    "Add" if !self.shares.insert(share.name.clone()) => Err(failure(
                        hr::ALREADY_EXISTS,
                        &format!("VSMB share {:?} exists", share.name),
                    )),
                    "Add" => Ok(()),
                    "Remove" if self.shares.remove(&share.name) => Ok(()),
                    "Remove" => Err(not_found(&format!("VSMB share {:?}", share.name))),
                    _ => Err(invalid(&format!("RequestType {kind:?}"))),
                };
            }
            let prefix = format!("VirtualMachine/Devices/Scsi/{SCSI_CONTROLLER_0}/Attachments/");
            let lun: u32 = path
                .strip_prefix(&prefix)
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| invalid(&format!("unknown ResourcePath {path:?}")))?;
            return match kind {
                "Add" => {
                    let disk: Attachment = settings(request.settings.as_ref())?;
                    if !grants.contains(&(vm_id.to_owned(), disk.path.clone())) {
                        return Err(failure(
                            hr::ACCESS_DENIED,
                            &format!("the VM may not read {:?}", disk.path),
                        ));
                    }
                    if self.scsi.contains_key(&lun) {
                        return Err(failure(
                            hr::ALREADY_EXISTS,
                            &format!("SCSI LUN {lun} is used"),
                        ));
                    }
                    self.scsi.insert(lun, disk.path);
                    Ok(())
                }
                "Remove" if self.mounts.values().any(|l| *l == lun) => Err(failure(
                    hr::INVALID_STATE,
                    &format!("SCSI LUN {lun} is mounted in the guest"),
                )),
                "Remove" if self.scsi.remove(&lun).is_some() => Ok(()),
                "Remove" => Err(not_found(&format!("SCSI LUN {lun}"))),
                _ => Err(invalid(&format!("RequestType {kind:?}"))),
            };
        }
        let Some(guest) = &request.guest_request else {
            return Err(invalid("neither ResourcePath nor GuestRequest"));
        };
        match (guest.resource_type.as_str(), guest.request_type.as_str()) {
            (MAPPED_VIRTUAL_DISK, kind) => {
                let disk: MappedVirtualDisk = settings(Some(&guest.settings))?;
                match kind {
                    "Add" if !self.scsi.contains_key(&disk.lun) => {
                        Err(not_found(&format!("SCSI LUN {}", disk.lun)))
                    }
                    "Add" => {
                        self.mounts.insert(disk.container_path, disk.lun);
                        Ok(())
                    }
                    "Remove" if self.combined.contains(&disk.container_path) => Err(failure(
                        hr::INVALID_STATE,
                        "the mount still holds combined layers",
                    )),
                    "Remove" if self.mounts.remove(&disk.container_path).is_some() => Ok(()),
                    "Remove" => Err(not_found(&format!("mount {:?}", disk.container_path))),
                    _ => Err(invalid(&format!("RequestType {kind:?}"))),
                }
            }
            (COMBINED_LAYERS, kind) => {
                let combined: CombinedLayers = settings(Some(&guest.settings))?;
                let root = combined.container_root_path;
                match kind {
                    "Add" => {
                        if !self.mounts.contains_key(&root) {
                            return Err(not_found(&format!("mounted root {root:?}")));
                        }
                        for layer in &combined.layers {
                            self.check_share_path(&layer.path)?;
                        }
                        self.combined.insert(root);
                        Ok(())
                    }
                    "Remove" if self.combined.remove(&root) => Ok(()),
                    "Remove" => Err(not_found(&format!("combined layers at {root:?}"))),
                    _ => Err(invalid(&format!("RequestType {kind:?}"))),
                }
            }
            (NETWORK | NETWORK_NAMESPACE, _) => self.apply_guest_network(guest),
            (other, _) => Err(invalid(&format!("unknown guest ResourceType {other:?}"))),
        }
    }

    /// A guest path must be one of the VM's VSMB shares.
    pub(super) fn check_share_path(&self, path: &str) -> Result<(), HcsError> {
        let shared = path
            .strip_prefix(VSMB_PREFIX)
            .is_some_and(|name| self.shares.contains(name));
        if shared {
            Ok(())
        } else {
            Err(invalid(&format!(
                "{path:?} is not a VSMB share of the utility VM"
            )))
        }
    }
}

/// A request's settings decoded strictly.
pub(super) fn settings<T: serde::de::DeserializeOwned>(
    value: Option<&serde_json::Value>,
) -> Result<T, HcsError> {
    let value = value.ok_or_else(|| invalid("the request has no Settings"))?;
    serde_json::from_value(value.clone()).map_err(|e| invalid(&e.to_string()))
}

pub(super) fn not_found(what: &str) -> HcsError {
    failure(hr::NOT_FOUND, &format!("no {what}"))
}

impl World {
    /// The utility VMs that run (their devices exist).
    pub(super) fn running_vms(&self) -> impl Iterator<Item = &super::systems::System> {
        self.systems
            .values()
            .filter(|s| s.config.vm && s.status == super::systems::Status::Running)
    }

    /// Whether `vm_id` may read `path`.
    pub(super) fn granted(&self, vm_id: &str, path: &str) -> bool {
        self.grants.contains(&(vm_id.to_owned(), path.to_owned()))
    }
}

impl Model {
    /// HcsModifyComputeSystem: a running utility VM's devices change; a
    /// container modifies nothing.
    pub fn modify_system(&self, key: SystemKey, request: &str) -> Result<(), HcsError> {
        let request: ModifySettingRequest =
            serde_json::from_str(request).map_err(|e| invalid(&e.to_string()))?;
        self.with(|w| {
            let grants = std::mem::take(&mut w.grants);
            let endpoints = std::mem::take(&mut w.endpoints);
            let attached = w
                .running_vms()
                .flat_map(|s| s.devices.adapters.values().map(|a| a.endpoint_id.clone()))
                .collect();
            let host = HostView {
                grants: &grants,
                endpoints: &endpoints,
                attached,
            };
            let result = (|| {
                let system = w.system_mut(key)?;
                if !system.config.vm {
                    return Err(failure(hr::NOT_SUPPORTED, "the container modifies nothing"));
                }
                if system.status != super::systems::Status::Running {
                    return Err(failure(hr::INVALID_STATE, "the utility VM is not running"));
                }
                let id = system.id.clone();
                system.devices.apply(&request, &id, &host)
            })();
            w.grants = grants;
            w.endpoints = endpoints;
            result
        })
    }

    /// HcsGrantVmAccess: `vm_id` may read `path` (the face checks that the
    /// file exists).
    pub fn grant_vm_access(&self, vm_id: &str, path: &str) -> Result<(), HcsError> {
        if vm_id.is_empty() || path.is_empty() {
            return Err(HcsError::new(hr::INVALID_DATA));
        }
        self.with(|w| {
            w.grants.insert((vm_id.to_owned(), path.to_owned()));
            Ok(())
        })
    }

    /// HcsRevokeVmAccess.
    pub fn revoke_vm_access(&self, vm_id: &str, path: &str) -> Result<(), HcsError> {
        self.with(|w| {
            if w.grants.remove(&(vm_id.to_owned(), path.to_owned())) {
                Ok(())
            } else {
                Err(not_found(&format!("access of {vm_id:?} to {path:?}")))
            }
        })
    }

    /// The access grants held: (VM id, file).
    pub fn grants(&self) -> Vec<(String, String)> {
        self.read(|w| w.grants.iter().cloned().collect())
    }

    /// The simulation's host: file `path` exists.
    pub fn add_file(&self, path: &str) {
        self.with(|w| w.files.insert(path.to_owned()));
    }

    /// The simulation's host: whether file `path` exists.
    pub fn has_file(&self, path: &str) -> bool {
        self.read(|w| w.files.contains(path))
    }

    /// The simulation's host: every file.
    pub fn files(&self) -> Vec<String> {
        self.read(|w| w.files.iter().cloned().collect())
    }

    /// The simulation's host: copies `from` to a new file `to`.
    pub fn copy_file(&self, from: &str, to: &str) -> Result<(), HcsError> {
        self.with(|w| {
            if !w.files.contains(from) {
                return Err(failure(FILE_NOT_FOUND, &format!("no file {from:?}")));
            }
            if !w.files.insert(to.to_owned()) {
                return Err(failure(FILE_EXISTS, &format!("{to:?} exists")));
            }
            Ok(())
        })
    }

    /// The simulation's host: removes file `path` (a missing one is fine).
    pub fn remove_file(&self, path: &str) {
        self.with(|w| w.files.remove(path));
    }
}
