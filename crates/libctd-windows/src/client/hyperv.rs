//! A Hyper-V isolated container's utility VM, set up the way hcsshim sets
//! one up for a Windows guest, each step remembered so that a failure
//! half-way and the container's removal undo all of it, in reverse:
//!
//! 1. the VM's own scratch copied from the image's template, and the VM
//!    granted access to it (HcsGrantVmAccess);
//! 2. the VM created and started (booting from that scratch at SCSI 0:0);
//! 3. the container's layers and mounted directories hot-added as VSMB shares;
//! 4. the container's scratch disk granted and hot-added at SCSI 0:1;
//! 5. the guest asked to mount it and to combine the layers over it;
//! 6. with endpoints, the container's HNS namespace added to the guest and
//!    each endpoint added as a network adapter (its MAC address read from
//!    HNS, the guest told first).
//!
//! Undoing: adapters removed, the guest's namespace removed, layers uncombined, scratch unmounted, detached and its grant
//! revoked, shares removed, the VM terminated and closed, its scratch's
//! grant revoked and the file removed. Every step is tried; the first
//! failure is returned.

use std::sync::Mutex;

use libctd_core::{Error, Result};

use super::{Inner, hcs_error, lock};
use crate::convert::UtilityVmPlan;
use crate::hcs::{Hcs, HcsOp};
use crate::schema::{HostComputeEndpoint, ModifySettingRequest, NetworkAdapter};

/// A container's network as its utility VM gets it: the HNS namespace made
/// for it and the endpoints in it.
pub(super) struct VmNetwork<'a> {
    /// The namespace's id.
    pub(super) namespace: &'a str,
    /// The endpoints, one adapter each.
    pub(super) endpoints: &'a [String],
}

/// A container's utility VM and what to undo when it goes.
pub(super) struct UtilityVm<H: Hcs> {
    /// The VM's compute system.
    pub(super) system: H::System,
    /// Its compute system id.
    id: String,
    /// What was set up, in order; taken by the release.
    done: Mutex<Vec<Step>>,
}

impl<H: Hcs> std::fmt::Debug for UtilityVm<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtilityVm").field("id", &self.id).finish()
    }
}

/// One thing set up, to undo.
#[derive(Debug, Clone)]
enum Step {
    /// A host file made (the VM's scratch).
    File(String),
    /// Access to a file granted to the VM.
    Grant(String),
    /// The VM exists.
    Vm,
    /// A modify request applied; its undo.
    Modified(ModifySettingRequest),
}

impl<H: Hcs> UtilityVm<H> {
    /// A utility VM found by id (a restore): only its compute system is
    /// known to go.
    pub(super) fn opened(system: H::System, id: String) -> Self {
        Self {
            system,
            id,
            done: Mutex::new(vec![Step::Vm]),
        }
    }
}

fn encode(request: &ModifySettingRequest) -> Result<String> {
    serde_json::to_string(request)
        .map_err(|e| Error::system("cannot encode a modify request").with_source(e))
}

impl<H: Hcs> Inner<H> {
    /// Sets up the utility VM `uvm_id` of container `ctr_id` by `plan`; on
    /// failure nothing is left of it.
    pub(super) async fn set_up_utility_vm(
        &self,
        ctr_id: &str,
        uvm_id: &str,
        plan: &UtilityVmPlan,
        document: &str,
        network: Option<VmNetwork<'_>>,
    ) -> Result<UtilityVm<H>> {
        let mut done = Vec::new();
        let mut system = None;
        let mut result = self
            .set_up_steps(ctr_id, uvm_id, plan, document, &mut done, &mut system)
            .await;
        if let (Ok(()), Some(vm), Some(network)) = (&result, &system, network) {
            result = self
                .set_up_network(ctr_id, uvm_id, vm, network, &mut done)
                .await;
        }
        match (result, system) {
            (Ok(()), Some(system)) => Ok(UtilityVm {
                system,
                id: uvm_id.to_owned(),
                done: Mutex::new(done),
            }),
            (result, system) => {
                let err = result
                    .err()
                    .unwrap_or_else(|| Error::system("the utility VM was not created"));
                if let Err(e) = self.undo(ctr_id, uvm_id, system.as_ref(), done).await {
                    tracing::warn!(container_id = ctr_id, error = %e.report(), "undoing a utility VM set up half-way");
                }
                Err(err)
            }
        }
    }

    async fn set_up_steps(
        &self,
        ctr_id: &str,
        uvm_id: &str,
        plan: &UtilityVmPlan,
        document: &str,
        done: &mut Vec<Step>,
        system: &mut Option<H::System>,
    ) -> Result<()> {
        const OP: &str = "create";
        let hcs = &self.hcs;
        hcs.copy_file(&plan.scratch_template, &plan.scratch)
            .await
            .map_err(|e| {
                e.into_error(ctr_id, "copy the utility VM's scratch from its template")
                    .with_operation(OP)
            })?;
        done.push(Step::File(plan.scratch.clone()));
        hcs.grant_vm_access(uvm_id, &plan.scratch)
            .await
            .map_err(|e| hcs_error(e, ctr_id, HcsOp::GrantVmAccess, OP))?;
        done.push(Step::Grant(plan.scratch.clone()));
        let vm = hcs
            .create_compute_system(uvm_id, document)
            .await
            .map_err(|e| hcs_error(e, ctr_id, HcsOp::CreateComputeSystem, OP))?;
        done.push(Step::Vm);
        let vm: &H::System = system.insert(vm);
        hcs.start_compute_system(vm)
            .await
            .map_err(|e| hcs_error(e, ctr_id, HcsOp::StartComputeSystem, OP))?;

        let modify = |request: ModifySettingRequest, undo: ModifySettingRequest| async move {
            let text = encode(&request).map_err(|e| e.with_operation(OP))?;
            hcs.modify_compute_system(vm, &text)
                .await
                .map_err(|e| hcs_error(e, ctr_id, HcsOp::ModifyComputeSystem, OP))?;
            Ok::<_, Error>(Step::Modified(undo))
        };
        for (request, undo) in plan.share_requests() {
            done.push(modify(request, undo).await?);
        }
        hcs.grant_vm_access(uvm_id, &plan.container_scratch)
            .await
            .map_err(|e| hcs_error(e, ctr_id, HcsOp::GrantVmAccess, OP))?;
        done.push(Step::Grant(plan.container_scratch.clone()));
        for (request, undo) in plan.scratch_requests() {
            done.push(modify(request, undo).await?);
        }
        Ok(())
    }

    /// Adds the namespace to the guest, then each endpoint as an adapter.
    async fn set_up_network(
        &self,
        ctr_id: &str,
        uvm_id: &str,
        vm: &H::System,
        network: VmNetwork<'_>,
        done: &mut Vec<Step>,
    ) -> Result<()> {
        const OP: &str = "create";
        let modify = |request: ModifySettingRequest| async move {
            let text = encode(&request).map_err(|e| e.with_operation(OP))?;
            self.hcs
                .modify_compute_system(vm, &text)
                .await
                .map_err(|e| hcs_error(e, ctr_id, HcsOp::ModifyComputeSystem, OP))
        };
        let ns = network.namespace;
        modify(ModifySettingRequest::add_guest_namespace(ns)).await?;
        done.push(Step::Modified(
            ModifySettingRequest::remove_guest_namespace(ns),
        ));
        for (i, endpoint) in network.endpoints.iter().enumerate() {
            let named = |e: Error| {
                let message = format!("HNS endpoint {endpoint:?}: {}", e.message());
                e.with_message(message)
            };
            let text = self
                .hcs
                .endpoint_properties(endpoint)
                .await
                .map_err(|e| named(hcs_error(e, ctr_id, HcsOp::QueryEndpointProperties, OP)))?;
            let bad = |e: serde_json::Error| {
                named(
                    Error::system("HNS answered unreadable endpoint properties")
                        .with_source(e)
                        .with_operation(OP)
                        .with_container(ctr_id),
                )
            };
            let properties: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
            let read: HostComputeEndpoint =
                serde_json::from_value(properties.clone()).map_err(bad)?;
            let adapter = self
                .hcs
                .name_to_guid(&format!("{uvm_id}/nic/{i}"))
                .map_err(|e| {
                    e.into_error(ctr_id, "name a network adapter")
                        .with_operation(OP)
                })?;
            // The guest is told first; the adapter's removal undoes both.
            modify(ModifySettingRequest::pre_add_adapter(&adapter, &properties))
                .await
                .map_err(named)?;
            let nic = NetworkAdapter {
                endpoint_id: read.id,
                mac_address: read.mac_address,
            };
            modify(ModifySettingRequest::add_adapter(&adapter, &nic))
                .await
                .map_err(named)?;
            done.push(Step::Modified(ModifySettingRequest::remove_adapter(
                &adapter, &nic,
            )));
        }
        Ok(())
    }

    /// Undoes `done` in reverse; every step is tried, the first failure
    /// returned.
    async fn undo(
        &self,
        ctr_id: &str,
        uvm_id: &str,
        system: Option<&H::System>,
        done: Vec<Step>,
    ) -> Result<()> {
        let hcs = &self.hcs;
        let mut first: Option<Error> = None;
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(container_id = ctr_id, error = %e.report(), "releasing the utility VM");
                first.get_or_insert(e);
            }
        };
        for step in done.into_iter().rev() {
            match (step, system) {
                (Step::Modified(request), Some(vm)) => {
                    let r = match encode(&request) {
                        Ok(text) => hcs
                            .modify_compute_system(vm, &text)
                            .await
                            .map_err(|e| e.into_error(ctr_id, HcsOp::ModifyComputeSystem.name())),
                        Err(e) => Err(e),
                    };
                    keep(r);
                }
                (Step::Vm, Some(vm)) => {
                    let terminated = self.terminate_system(ctr_id, vm).await;
                    let closed = hcs
                        .close_compute_system(vm)
                        .await
                        .map_err(|e| e.into_error(ctr_id, HcsOp::CloseComputeSystem.name()));
                    keep(terminated.and(closed));
                }
                (Step::Grant(path), _) => keep(
                    hcs.revoke_vm_access(uvm_id, &path)
                        .await
                        .map_err(|e| e.into_error(ctr_id, HcsOp::RevokeVmAccess.name())),
                ),
                (Step::File(path), _) => keep(
                    hcs.remove_file(&path)
                        .await
                        .map_err(|e| e.into_error(ctr_id, "remove the utility VM's scratch")),
                ),
                // Steps on the VM without its handle cannot be: the VM
                // step precedes them.
                (Step::Modified(_) | Step::Vm, None) => {}
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Releases a container's utility VM once the container's own compute
    /// system is gone: everything set up for it, once.
    pub(super) async fn release_utility_vm(
        &self,
        ctr_id: &str,
        uvm: Option<&UtilityVm<H>>,
    ) -> Result<()> {
        let Some(uvm) = uvm else {
            return Ok(());
        };
        let done = std::mem::take(&mut *lock(&uvm.done));
        self.undo(ctr_id, &uvm.id, Some(&uvm.system), done).await
    }
}
