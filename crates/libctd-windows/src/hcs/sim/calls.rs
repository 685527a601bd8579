//! The [`Hcs`] trait over the model: each call records itself, waits out
//! the plan's delays, checks its handle and asks the model.

use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::run::{pipes, run};
use super::{Sim, SimProcess, SimSystem, Wake, check_open, lock, name_to_guid};
use crate::error::HcsError;
use crate::hcs::model::{self, Gate, Observer, Stop};
use crate::hcs::{Hcs, HcsOp, HcsResult, ProcessExit, ProcessInfo, SystemExit};
use crate::schema::ModifyNamespaceRequest;

impl Sim {
    /// Records the call and waits out the plan's delay; fails when the
    /// plan fails it.
    async fn gate(&self, op: HcsOp, container: &str) -> HcsResult<Gate> {
        let mut gate = self.model().gate(op.name(), container)?;
        if !gate.slow.is_zero() {
            tokio::time::sleep(gate.slow).await;
        }
        match gate.fail.take() {
            Some(err) => Err(err),
            None => Ok(gate),
        }
    }

    /// Resolves once `ready` gives a value, re-checked on every change.
    pub(super) async fn until<T>(&self, mut ready: impl FnMut() -> Option<T>) -> T {
        let mut changes = self.inner.changed.subscribe();
        loop {
            if let Some(value) = ready() {
                return value;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// A shutdown or terminate. A slow one is answered pending and acts
    /// later; its failure then goes to the exit waiters.
    async fn stop(&self, handle: &SimSystem, op: HcsOp, how: Stop) -> HcsResult<()> {
        let gate = self.model().gate(op.name(), &handle.id)?;
        check_open(&handle.closed)?;
        lock(&self.inner.stop_failures).remove(&handle.key);
        if gate.slow.is_zero() {
            if let Some(err) = gate.fail {
                return Err(err);
            }
            let done = self.model().stop(handle.key, how);
            return answer(gate, done).await;
        }
        let sim = self.clone();
        let key = handle.key;
        tokio::spawn(async move {
            tokio::time::sleep(gate.slow).await;
            let done = match gate.fail {
                Some(err) => Err(err),
                None => sim.model().stop(key, how),
            };
            if let Err(err) = done {
                lock(&sim.inner.stop_failures).insert(key, err);
                Wake(sim.inner.changed.clone()).changed();
            }
        });
        Err(HcsError::new(model::hr::PENDING))
    }
}

/// The answer of a call that acted: after the plan's `Late`, and pending
/// when the plan says so.
async fn answer<T>(gate: Gate, result: HcsResult<T>) -> HcsResult<T> {
    if !gate.late.is_zero() {
        tokio::time::sleep(gate.late).await;
    }
    gate.answer(result)
}

#[async_trait]
impl Hcs for Sim {
    type System = SimSystem;
    type Process = SimProcess;

    async fn create_compute_system(&self, id: &str, configuration: &str) -> HcsResult<SimSystem> {
        let gate = self.gate(HcsOp::CreateComputeSystem, id).await?;
        let key = self.model().create_system(id, configuration)?;
        answer(gate, Ok(SimSystem::new(key, id))).await
    }

    async fn open_compute_system(&self, id: &str) -> HcsResult<SimSystem> {
        let gate = self.gate(HcsOp::OpenComputeSystem, id).await?;
        let key = self.model().open_system(id)?;
        answer(gate, Ok(SimSystem::new(key, id))).await
    }

    async fn start_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let gate = self.gate(HcsOp::StartComputeSystem, &handle.id).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().start(handle.key)).await
    }

    async fn shutdown_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        self.stop(handle, HcsOp::ShutDownComputeSystem, Stop::Shutdown)
            .await
    }

    async fn terminate_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        self.stop(handle, HcsOp::TerminateComputeSystem, Stop::Terminate)
            .await
    }

    async fn pause_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let gate = self.gate(HcsOp::PauseComputeSystem, &handle.id).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().pause(handle.key)).await
    }

    async fn resume_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let gate = self.gate(HcsOp::ResumeComputeSystem, &handle.id).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().resume(handle.key)).await
    }

    async fn close_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let gate = self.gate(HcsOp::CloseComputeSystem, &handle.id).await?;
        if handle.closed.swap(true, Ordering::SeqCst) {
            return Err(HcsError::new(model::hr::INVALID_HANDLE));
        }
        self.model().close_system(handle.key);
        answer(gate, Ok(())).await
    }

    async fn get_compute_system_properties(
        &self,
        handle: &SimSystem,
        query: &str,
    ) -> HcsResult<String> {
        let gate = self
            .gate(HcsOp::GetComputeSystemProperties, &handle.id)
            .await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().properties(handle.key, query)).await
    }

    async fn modify_compute_system(&self, handle: &SimSystem, request: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::ModifyComputeSystem, &handle.id).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().modify_system(handle.key, request)).await
    }

    async fn wait_compute_system_exit(&self, handle: &SimSystem) -> HcsResult<SystemExit> {
        let gate = self
            .gate(HcsOp::WaitForComputeSystemExit, &handle.id)
            .await?;
        check_open(&handle.closed)?;
        let key = handle.key;
        let exit = self
            .until(|| match self.model().system_exit(key) {
                Some(exit) => Some(Ok(exit)),
                None => lock(&self.inner.stop_failures).get(&key).cloned().map(Err),
            })
            .await;
        answer(gate, exit).await
    }

    async fn create_process(
        &self,
        handle: &SimSystem,
        parameters: &str,
    ) -> HcsResult<(SimProcess, ProcessInfo)> {
        let gate = self.gate(HcsOp::CreateProcess, &handle.id).await?;
        check_open(&handle.closed)?;
        let pid = self.model().reserve_process(handle.key);
        let spawn = self.model().create_process(handle.key, pid, parameters)?;
        let (io, info) = pipes(&spawn);
        tokio::spawn(run(self.clone(), pid, spawn.program, io));
        answer(gate, Ok((SimProcess::new(pid, &handle.id), info))).await
    }

    async fn open_process(&self, handle: &SimSystem, pid: u32) -> HcsResult<SimProcess> {
        let gate = self.gate(HcsOp::OpenProcess, &handle.id).await?;
        check_open(&handle.closed)?;
        self.model().open_process(handle.key, pid)?;
        answer(gate, Ok(SimProcess::new(pid, &handle.id))).await
    }

    async fn signal_process(&self, handle: &SimProcess, options: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::SignalProcess, &handle.system).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().signal_process(handle.pid, options)).await
    }

    async fn terminate_process(&self, handle: &SimProcess) -> HcsResult<()> {
        let gate = self.gate(HcsOp::TerminateProcess, &handle.system).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().terminate_process(handle.pid)).await
    }

    async fn modify_process(&self, handle: &SimProcess, request: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::ModifyProcess, &handle.system).await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().modify_process(handle.pid, request)).await
    }

    async fn get_process_properties(&self, handle: &SimProcess, query: &str) -> HcsResult<String> {
        let gate = self
            .gate(HcsOp::GetProcessProperties, &handle.system)
            .await?;
        check_open(&handle.closed)?;
        answer(gate, self.model().process_properties(handle.pid, query)).await
    }

    async fn wait_process_exit(&self, handle: &SimProcess) -> HcsResult<ProcessExit> {
        let gate = self.gate(HcsOp::WaitForProcessExit, &handle.system).await?;
        check_open(&handle.closed)?;
        // The notice: never for a process whose system died, and only on
        // release while the plan holds notices.
        let exit = self.until(|| self.model().process_notice(handle.pid)).await;
        answer(gate, Ok(exit)).await
    }

    async fn close_process(&self, handle: &SimProcess) -> HcsResult<()> {
        let gate = self.gate(HcsOp::CloseProcess, &handle.system).await?;
        if handle.closed.swap(true, Ordering::SeqCst) {
            return Err(HcsError::new(model::hr::INVALID_HANDLE));
        }
        answer(gate, Ok(())).await
    }

    async fn grant_vm_access(&self, vm_id: &str, path: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::GrantVmAccess, vm_id).await?;
        if !self.model().has_file(path) {
            return Err(HcsError::new(model::FILE_NOT_FOUND));
        }
        answer(gate, self.model().grant_vm_access(vm_id, path)).await
    }

    async fn revoke_vm_access(&self, vm_id: &str, path: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::RevokeVmAccess, vm_id).await?;
        answer(gate, self.model().revoke_vm_access(vm_id, path)).await
    }

    async fn copy_file(&self, from: &str, to: &str) -> HcsResult<()> {
        self.model().copy_file(from, to)
    }

    async fn remove_file(&self, path: &str) -> HcsResult<()> {
        self.model().remove_file(path);
        Ok(())
    }

    async fn create_namespace(&self, settings: &str) -> HcsResult<String> {
        let gate = self.gate(HcsOp::CreateNamespace, "").await?;
        answer(gate, self.model().create_namespace(settings)).await
    }

    async fn add_namespace_endpoint(&self, namespace: &str, endpoint: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::ModifyNamespace, namespace).await?;
        let request = ModifyNamespaceRequest::add_endpoint(endpoint);
        let request =
            serde_json::to_string(&request).map_err(|_| HcsError::new(model::hr::INVALID_DATA))?;
        answer(gate, self.model().modify_namespace(namespace, &request)).await
    }

    async fn delete_namespace(&self, namespace: &str) -> HcsResult<()> {
        let gate = self.gate(HcsOp::DeleteNamespace, namespace).await?;
        answer(gate, self.model().delete_namespace(namespace)).await
    }

    async fn endpoint_properties(&self, endpoint: &str) -> HcsResult<String> {
        let gate = self.gate(HcsOp::QueryEndpointProperties, endpoint).await?;
        answer(gate, self.model().endpoint_properties(endpoint)).await
    }

    fn name_to_guid(&self, name: &str) -> HcsResult<String> {
        Ok(name_to_guid(name))
    }

    fn host_cpu_count(&self) -> u32 {
        lock(&self.inner.host_cpus).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1)
        })
    }

    fn has_utility_vm(&self, layer_folder: &str) -> bool {
        lock(&self.inner.utility_vm_layers).contains(layer_folder)
    }
}
