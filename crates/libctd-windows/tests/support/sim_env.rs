//! A `WindowsClient` over the simulation, in the "test" namespace.

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libctd_core::EventInfo;
use libctd_core::oci_spec::runtime::Spec;
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::error::Hresult;
use libctd_windows::hcs::HcsOp;
use libctd_windows::hcs::sim::Sim;
use libctd_windows::{ClientSettings, WindowsClient};

use crate::exit_cases::ExitEnv;
use crate::lifecycle::{self, T};

/// The HCS id of a container of the "test" namespace.
pub(crate) fn sys(id: &str) -> String {
    format!("{id}@test")
}

pub(crate) struct Env {
    pub(crate) sim: Arc<Sim>,
    pub(crate) backend: Arc<RecordingBackend>,
    pub(crate) client: WindowsClient<Sim>,
}

pub(crate) fn env() -> Env {
    env_with(ClientSettings::default())
}

/// An [`Env`] whose client has `settings`.
pub(crate) fn env_with(settings: ClientSettings) -> Env {
    let sim = Arc::new(Sim::new());
    let backend = Arc::new(RecordingBackend::new());
    sim.add_utility_vm("C:\\layers\\base");
    sim.add_file("C:\\layers\\scratch\\sandbox.vhdx");
    let client =
        WindowsClient::with_settings(sim.clone(), "test", backend.clone(), settings).unwrap();
    Env {
        sim,
        backend,
        client,
    }
}

impl Env {
    pub(crate) async fn run(&self, id: &str, spec: &Spec) -> u32 {
        lifecycle::run(&self.client, id, spec).await
    }

    pub(crate) async fn exit(&self, id: &str) -> EventInfo {
        lifecycle::exit(&self.backend, id).await
    }

    pub(crate) async fn remove(&self, id: &str) {
        lifecycle::remove(&self.client, id).await;
        assert!(!self.sim.compute_systems().contains(&sys(id)));
    }
}

/// Polls until process `pid` of `container` has ended in the simulation.
pub(crate) async fn wait_ended(sim: &Sim, container: &str, pid: u32) {
    let until = Instant::now() + T;
    while sim.live_pids(container).contains(&pid) {
        assert!(Instant::now() < until, "process {pid} did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl ExitEnv for Env {
    type Hcs = Sim;

    fn with_settings(settings: ClientSettings) -> Self {
        env_with(settings)
    }

    fn client(&self) -> &WindowsClient<Sim> {
        &self.client
    }

    fn backend(&self) -> &RecordingBackend {
        &self.backend
    }

    fn second_client(&self) -> WindowsClient<Sim> {
        WindowsClient::new(self.sim.clone(), "test", Arc::new(RecordingBackend::new())).unwrap()
    }

    fn fail_create(&self, id: &str, hresult: Hresult) {
        self.sim
            .fail_once(HcsOp::CreateComputeSystem, Some(&sys(id)), hresult);
    }

    fn slow_properties(&self, id: &str, delay: Duration) {
        self.sim
            .delay(HcsOp::GetComputeSystemProperties, Some(&sys(id)), delay);
    }

    fn fail_shutdown_after_submit(&self, id: &str, hresult: Hresult) {
        let after = Duration::from_millis(200);
        self.sim
            .fail_after_submit(HcsOp::ShutDownComputeSystem, &sys(id), hresult, after);
    }

    fn hold_exit_notices(&self, id: &str) {
        self.sim.hold_exit_notices(&sys(id));
    }

    fn lose_exit_notices(&self, id: &str) {
        self.sim.lose_exit_notices(&sys(id));
    }

    fn hang_terminate(&self, id: &str, delay: Duration) {
        self.sim.lose_exit_notices(&sys(id));
        self.sim
            .delay(HcsOp::TerminateComputeSystem, Some(&sys(id)), delay);
    }

    fn release_exit_notices(&self, id: &str) -> bool {
        self.sim.release_exit_notices(&sys(id))
    }

    async fn wait_ended(&self, id: &str, pid: u32) {
        wait_ended(&self.sim, &sys(id), pid).await;
    }

    fn crash(&self, id: &str) -> bool {
        self.sim.crash(&sys(id))
    }

    fn end_process(&self, id: &str, pid: u32, code: u32) -> bool {
        self.sim.exit_process(&sys(id), pid, code)
    }

    fn call_count(&self, id: &str, op: HcsOp) -> usize {
        self.sim.call_count(op, &sys(id))
    }

    fn answer_pending_updates(&self, id: &str, pending: bool) {
        self.sim.set_pending_updates(&sys(id), pending);
    }

    fn disconnect(&self, id: &str) {
        self.sim
            .model()
            .edit_plan(Some(&sys(id)), |plan| plan.disconnected = true);
    }

    async fn assert_clean(&self) {
        assert_eq!(self.sim.compute_systems(), Vec::<String>::new());
    }
}
