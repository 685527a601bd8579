//! A `WindowsClient` over the simulation, in the "test" namespace.

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::sync::Arc;

use libctd_core::EventInfo;
use libctd_core::oci_spec::runtime::Spec;
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::hcs::sim::Sim;
use libctd_windows::{ClientSettings, WindowsClient};

use crate::lifecycle;

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
