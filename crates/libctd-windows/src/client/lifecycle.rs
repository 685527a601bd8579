//! A container's lifecycle: create (its compute system, and with Hyper-V
//! isolation its utility VM first), start (its init process, and the
//! reaper of its exit), delete its task, delete it. A create or start that
//! fails part-way leaves nothing running.

use std::path::Path;
use std::sync::Arc;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    CreateOptions, Error, ErrorKind, EventInfo, EventType, INIT_PROCESS_ID, Result, Status,
    StdioCallback, TaskExit, validate_container_id,
};
use tracing::Instrument;

use super::exec::{ProcessRequest, spawn_process};
use super::hyperv::VmNetwork;
use super::records::Leftovers;
use super::state::{Container, Reaped, State};
use super::{Inner, detached, hcs_error, lock, not_running};
use crate::convert::{self, ContainerConfig};
use crate::exits;
use crate::hcs::{Hcs, HcsOp};

pub(super) async fn create<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    spec: &Spec,
    options: CreateOptions,
) -> Result<()> {
    validate_container_id(container_id).map_err(|e| e.with_operation("create"))?;
    if let Some(o) = &options.runtime_options {
        return Err(Error::invalid_argument(format!(
            "runtime options of type {:?} are not understood: the Windows backend takes none",
            o.type_url()
        ))
        .with_operation("create")
        .with_container(container_id));
    }
    if options.image.is_some() {
        return Err(libctd_core::images_unsupported("Windows")
            .with_operation("create")
            .with_container(container_id));
    }
    if spec.process().is_none() {
        return Err(Error::invalid_argument("invalid spec: process is required")
            .with_operation("create")
            .with_container(container_id));
    }
    let mut config: ContainerConfig = convert::compute_system(&*inner.hcs, &inner.namespace, spec)
        .map_err(|e| e.with_operation("create").with_container(container_id))?;
    let system_id = inner.system_id(container_id);
    let uvm_id = convert::utility_vm_id(&system_id);
    if config.utility_vm.is_some() {
        config.document.hosting_system_id = Some(uvm_id.clone());
    }
    let encode = |doc: &crate::schema::ComputeSystem| -> Result<String> {
        serde_json::to_string(doc).map_err(|e| {
            Error::system("cannot encode the compute system document")
                .with_source(e)
                .with_operation("create")
                .with_container(container_id)
        })
    };
    let mut document = config.document.clone();
    let endpoints = std::mem::take(&mut config.endpoints);
    let uvm_document = config
        .utility_vm
        .as_ref()
        .map(|plan| encode(&plan.document))
        .transpose()?;
    let uvm_plan = config.utility_vm.take();
    let inner = inner.clone();
    let id = container_id.to_owned();
    let spec = spec.clone();
    detached("create", container_id, async move {
        {
            let table = lock(&inner.containers);
            if table.contains_key(&id) {
                return Err(Error::already_exists("container already exists")
                    .with_operation("create")
                    .with_container(&id));
            }
        }
        let hcs = &inner.hcs;
        // Endpoints without a namespace: the container's own namespace.
        let namespace = if endpoints.is_empty() {
            None
        } else {
            let ns = inner.set_up_namespace(&id, &endpoints).await?;
            let hosted = document.hosted_system.as_mut().map(|h| &mut h.container);
            if let Some(networking) = document
                .container
                .as_mut()
                .or(hosted)
                .and_then(|c| c.networking.as_mut())
            {
                networking.namespace.clone_from(&ns);
            }
            Some(ns)
        };
        // What a restore could not know is recorded before the utility VM
        // is set up, and forgotten if the create fails.
        let leftovers = Leftovers {
            vm_scratch: uvm_plan.as_ref().map(|p| p.scratch.clone()),
            container_scratch: uvm_plan.as_ref().map(|p| p.container_scratch.clone()),
            namespace: namespace.clone(),
        };
        if let Err(e) = inner.record(&id, &leftovers).await {
            let _ = inner.release_namespace(&id, namespace.as_deref()).await;
            return Err(e.with_operation("create"));
        }
        let created = async {
            let document = match serde_json::to_string(&document) {
                Ok(text) => text,
                Err(e) => {
                    let _ = inner.release_namespace(&id, namespace.as_deref()).await;
                    return Err(Error::system("cannot encode the compute system document")
                        .with_source(e)
                        .with_operation("create")
                        .with_container(&id));
                }
            };
            // Hyper-V isolation: the utility VM first, the container in it.
            let utility_vm = match (&uvm_plan, &uvm_document) {
                (Some(plan), Some(doc)) => {
                    let network = namespace.as_deref().map(|ns| VmNetwork {
                        namespace: ns,
                        endpoints: &endpoints,
                    });
                    let set_up = inner
                        .set_up_utility_vm(&id, &uvm_id, plan, doc, network)
                        .await;
                    match set_up {
                        Ok(vm) => Some(vm),
                        Err(err) => {
                            if let Err(e) = inner.release_namespace(&id, namespace.as_deref()).await {
                                tracing::warn!(container_id = %id, error = %e.report(), "deleting the namespace after a failed utility VM");
                            }
                            return Err(err);
                        }
                    }
                }
                _ => None,
            };
            let created = hcs
                .create_compute_system(&system_id, &document)
                .await
                .map_err(|e| hcs_error(e, &id, HcsOp::CreateComputeSystem, "create"));
            let system = match created {
                Ok(system) => system,
                Err(err) => {
                    if let Err(e) = inner.release_utility_vm(&id, utility_vm.as_ref()).await {
                        tracing::warn!(container_id = %id, error = %e.report(), "releasing the utility VM after a failed create");
                    }
                    if let Err(e) = inner.release_namespace(&id, namespace.as_deref()).await {
                        tracing::warn!(container_id = %id, error = %e.report(), "deleting the namespace after a failed create");
                    }
                    return Err(err);
                }
            };
            if let Err(e) = hcs.start_compute_system(&system).await {
                let err = hcs_error(e, &id, HcsOp::StartComputeSystem, "create");
                if let Err(te) = inner.terminate_system(&id, &system).await {
                    tracing::warn!(container_id = %id, error = %te.report(), "terminate after a failed start");
                }
                if let Err(ce) = hcs.close_compute_system(&system).await {
                    tracing::warn!(container_id = %id, error = %ce, "close after a failed start");
                }
                if let Err(e) = inner.release_utility_vm(&id, utility_vm.as_ref()).await {
                    tracing::warn!(container_id = %id, error = %e.report(), "releasing the utility VM after a failed start");
                }
                if let Err(e) = inner.release_namespace(&id, namespace.as_deref()).await {
                    tracing::warn!(container_id = %id, error = %e.report(), "deleting the namespace after a failed start");
                }
                return Err(err);
            }
            let system_exit = exits::SystemExitWatch::start(hcs.clone(), system.clone(), id.clone());
            let ctr = Arc::new(Container {
                id: id.clone(),
                system,
                utility_vm,
                namespace,
                isolation: config.isolation,
                servicing: config.servicing,
                spec,
                system_exit,
                state: tokio::sync::Mutex::new(State::created()),
                reaped: Reaped::default(),
            });
            let raced = {
                let mut table = lock(&inner.containers);
                if table.contains_key(&id) {
                    true
                } else {
                    table.insert(id.clone(), ctr.clone());
                    false
                }
            };
            if raced {
                // Another create of the same id won; HCS refuses duplicate ids,
                // so this cannot normally happen. Undo ours.
                let _ = inner.terminate_system(&id, &ctr.system).await;
                let _ = hcs.close_compute_system(&ctr.system).await;
                let _ = inner.release_utility_vm(&id, ctr.utility_vm.as_ref()).await;
                let _ = inner.release_namespace(&id, ctr.namespace.as_deref()).await;
                return Err(Error::already_exists("container already exists")
                    .with_operation("create")
                    .with_container(&id));
            }
            inner.emit(
                &ctr,
                EventType::Create,
                EventInfo::new(id.clone(), INIT_PROCESS_ID),
            );
            Ok(())
        }
        .await;
        if created.is_err() {
            inner.forget(&id).await;
        }
        created
    })
    .await
}

pub(super) async fn start<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
    checkpoint_dir: Option<&Path>,
    with_stdin: bool,
    attach: StdioCallback,
) -> Result<u32> {
    let ctr = inner.container(container_id, "start")?;
    if checkpoint_dir.is_some() {
        return Err(
            Error::not_implemented("checkpoints are not supported on Windows")
                .with_operation("start")
                .with_container(container_id),
        );
    }
    let inner = inner.clone();
    detached("start", container_id, async move {
        let id = ctr.id.clone();
        let mut state = ctr.state.lock().await;
        if !state.is_unstarted() {
            return Err(Error::already_exists("container is already started")
                .with_operation("start")
                .with_container(&id));
        }
        let process = ctr.spec.process().clone().ok_or_else(|| {
            Error::invalid_argument("invalid spec: process is required to start")
                .with_operation("start")
                .with_container(&id)
        })?;
        let request = ProcessRequest {
            ctr_id: &id,
            process: &process,
            with_stdin,
            operation: "start",
            exit_timeout: inner.settings.shutdown_timeout,
        };
        let proc = spawn_process(&*inner.hcs, &ctr.system, request, attach).await?;
        let pid = proc.pid;
        let handle = proc.handle.clone();
        state.mark_started(proc);
        // Start is queued before the reaper exists, so it always precedes exit.
        inner.emit(
            &ctr,
            EventType::Start,
            EventInfo::new(id.clone(), INIT_PROCESS_ID).with_pid(pid),
        );
        drop(state);
        let span = tracing::debug_span!("reap", container_id = %id, process_id = INIT_PROCESS_ID);
        tokio::spawn(
            inner
                .clone()
                .reap_init(ctr.clone(), handle, pid)
                .instrument(span),
        );
        Ok(pid)
    })
    .await
}

pub(super) async fn delete_task<H: Hcs>(
    inner: &Arc<Inner<H>>,
    container_id: &str,
) -> Result<TaskExit> {
    const OP: &str = "delete_task";
    let ctr = inner.container(container_id, OP)?;
    let drain = inner.settings.stdio_drain_timeout;
    detached(OP, container_id, async move {
        let mut state = ctr.state.lock().await;
        if !state.has_task() {
            return Err(not_running(&ctr.id, OP));
        }
        let Some(exit) = state.exit_of_stopped() else {
            return Err(Error::failed_precondition("task is still running")
                .with_operation(OP)
                .with_container(&ctr.id));
        };
        let init = state.delete_task();
        drop(state);
        if let Some(p) = init {
            p.release(drain).await;
        }
        Ok(exit)
    })
    .await
}

pub(super) async fn delete<H: Hcs>(inner: &Arc<Inner<H>>, container_id: &str) -> Result<()> {
    const OP: &str = "delete";
    let ctr = match inner.container(container_id, OP) {
        Ok(ctr) => ctr,
        // Not tracked: a record a restore could not release goes now.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return match super::restore::delete_recorded(inner, container_id).await {
                Some(done) => done,
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let inner = inner.clone();
    detached(OP, container_id, async move {
        let id = ctr.id.clone();
        let mut state = ctr.state.lock().await;
        match state.status() {
            Status::Created if state.is_unstarted() => {
                // The compute system runs without a user process: shut it down.
                inner
                    .shutdown_system(&id, &ctr.system)
                    .await
                    .map_err(|e| e.with_operation(OP))?;
                if let Err(e) = inner.hcs.close_compute_system(&ctr.system).await {
                    return Err(hcs_error(e, &id, HcsOp::CloseComputeSystem, OP));
                }
                inner
                    .release_utility_vm(&id, ctr.utility_vm.as_ref())
                    .await
                    .map_err(|e| e.with_operation(OP))?;
                inner
                    .release_namespace(&id, ctr.namespace.as_deref())
                    .await
                    .map_err(|e| e.with_operation(OP))?;
                state.mark_shut_down();
            }
            Status::Stopped => {
                drop(state);
                // The reaper shuts the compute system down and closes it.
                let wait = inner.settings.shutdown_timeout.saturating_mul(2);
                if !ctr.reaped.wait(wait).await {
                    return Err(Error::deadline_exceeded(
                        "the container's compute system is still shutting down",
                    )
                    .with_operation(OP)
                    .with_container(&id));
                }
                state = ctr.state.lock().await;
            }
            _ => {
                return Err(Error::failed_precondition(format!(
                    "container is {}: only created or stopped containers can be deleted",
                    state.status()
                ))
                .with_operation(OP)
                .with_container(&id));
            }
        }
        let processes = state.take_processes();
        drop(state);
        lock(&inner.containers).remove(&id);
        inner.forget(&id).await;
        let drain = inner.settings.stdio_drain_timeout;
        for p in processes {
            p.release(drain).await;
        }
        Ok(())
    })
    .await
}
