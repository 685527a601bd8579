//! A `WindowsClient` over the real binding against the computecore.dll
//! double, in a namespace of its own (tests under Wine).

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libctd_core::EventInfo;
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::hcs::ffi::Computecore;
use libctd_windows::{ClientSettings, WindowsClient};

use crate::double;
use crate::lifecycle::{self, T};

/// A namespace no other test uses.
pub(crate) fn unique_namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("faults{}x", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A compute system id no other test uses, and the pattern of its reports.
pub(crate) fn unique_id(what: &str) -> (String, String) {
    let tag = format!("@{}", unique_namespace());
    (format!("{what}{tag}"), tag)
}

/// A `WindowsClient` over the binding, in a namespace of its own.
pub(crate) struct Env {
    pub(crate) client: WindowsClient<Computecore>,
    pub(crate) backend: Arc<RecordingBackend>,
    pub(crate) namespace: String,
}

pub(crate) fn env_with(hcs: Computecore) -> Env {
    env_with_settings(hcs, ClientSettings::default())
}

pub(crate) fn env_with_settings(hcs: Computecore, settings: ClientSettings) -> Env {
    let backend = Arc::new(RecordingBackend::new());
    let namespace = unique_namespace();
    let client =
        WindowsClient::with_settings(Arc::new(hcs), &namespace, backend.clone(), settings).unwrap();
    Env {
        client,
        backend,
        namespace,
    }
}

pub(crate) fn env() -> Env {
    env_with(Computecore::load().unwrap())
}

impl Env {
    /// The compute system id of container `id`.
    pub(crate) fn sys(&self, id: &str) -> String {
        format!("{id}@{}", self.namespace)
    }

    pub(crate) async fn run(&self, id: &str, script: &str) -> u32 {
        lifecycle::run(&self.client, id, &lifecycle::spec(script)).await
    }

    pub(crate) async fn exit(&self, id: &str) -> EventInfo {
        lifecycle::exit(&self.backend, id).await
    }

    pub(crate) async fn remove(&self, id: &str) {
        lifecycle::remove(&self.client, id).await;
    }

    /// No violation, leak or orphan in this namespace.
    pub(crate) async fn assert_clean(&self) {
        let pattern = format!("@{}", self.namespace);
        tokio::task::spawn_blocking(move || double::assert_clean(&pattern, T))
            .await
            .unwrap();
    }
}
