//! A `WindowsClient` over the real binding against the computecore.dll
//! double, in a namespace of its own (tests under Wine).

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libctd_core::EventInfo;
use libctd_core::oci_spec::runtime::Spec;
use libctd_testkit::backend::RecordingBackend;
use libctd_windows::error::Hresult;
use libctd_windows::hcs::HcsOp;
use libctd_windows::hcs::ffi::Computecore;
use libctd_windows::{ClientSettings, WindowsClient};

use crate::double;
use crate::exit_cases::ExitEnv;
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

    pub(crate) async fn run(&self, id: &str, spec: &Spec) -> u32 {
        lifecycle::run(&self.client, id, spec).await
    }

    pub(crate) async fn exit(&self, id: &str) -> EventInfo {
        lifecycle::exit(&self.backend, id).await
    }

    pub(crate) async fn remove(&self, id: &str) {
        lifecycle::remove(&self.client, id).await;
    }

    /// The pattern of this namespace's systems in the double's reports.
    fn pattern(&self) -> String {
        format!("@{}", self.namespace)
    }

    /// No violation, leak or orphan in this namespace.
    pub(crate) async fn assert_clean(&self) {
        let pattern = self.pattern();
        tokio::task::spawn_blocking(move || double::assert_clean(&pattern, T))
            .await
            .unwrap();
    }
}

/// Polls the double until process `pid` of `pattern`'s systems has exited.
fn wait_exited(pattern: &str, pid: u32) {
    double::poll(T, || {
        let r = double::report(pattern);
        let exited = r["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ProcessId"] == pid && p["Exited"] == true);
        match exited {
            true => Ok(()),
            false => Err(format!("process {pid} did not exit: {r}")),
        }
    });
}

/// The double's fault plan of a system is one document, set before it is
/// created: each control below sets the whole plan.
impl ExitEnv for Env {
    type Hcs = Computecore;

    fn with_settings(settings: ClientSettings) -> Self {
        env_with_settings(Computecore::load().unwrap(), settings)
    }

    fn client(&self) -> &WindowsClient<Computecore> {
        &self.client
    }

    fn backend(&self) -> &RecordingBackend {
        &self.backend
    }

    fn second_client(&self) -> WindowsClient<Computecore> {
        let hcs = Arc::new(Computecore::load().unwrap());
        WindowsClient::new(hcs, &self.namespace, Arc::new(RecordingBackend::new())).unwrap()
    }

    fn fail_create(&self, id: &str, hresult: Hresult) {
        let plan = serde_json::json!({"FailOnce": {"HcsCreateComputeSystem": hresult.0}});
        double::faults(&self.sys(id), plan);
    }

    fn slow_properties(&self, id: &str, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        let plan = serde_json::json!({"Slow": {"HcsGetComputeSystemProperties": ms}});
        double::faults(&self.sys(id), plan);
    }

    fn fail_shutdown_after_submit(&self, id: &str, hresult: Hresult) {
        // Slower than the binding's submit wait: answered pending first.
        let plan = serde_json::json!({"Slow": {"HcsShutDownComputeSystem": 1500},
                                      "Fail": {"HcsShutDownComputeSystem": hresult.0}});
        double::faults(&self.sys(id), plan);
    }

    fn hold_exit_notices(&self, id: &str) {
        double::faults(&self.sys(id), serde_json::json!({"HoldExitNotices": true}));
    }

    fn lose_exit_notices(&self, id: &str) {
        double::faults(&self.sys(id), serde_json::json!({"LoseExitNotices": true}));
    }

    fn hang_terminate(&self, id: &str, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        let plan = serde_json::json!({"LoseExitNotices": true,
                                      "Slow": {"HcsTerminateComputeSystem": ms}});
        double::faults(&self.sys(id), plan);
    }

    fn release_exit_notices(&self, id: &str) -> bool {
        double::release_exit_notices(&self.sys(id))
    }

    async fn wait_ended(&self, _id: &str, pid: u32) {
        let pattern = self.pattern();
        tokio::task::spawn_blocking(move || wait_exited(&pattern, pid))
            .await
            .unwrap();
    }

    fn crash(&self, id: &str) -> bool {
        double::crash(&self.sys(id))
    }

    fn end_process(&self, id: &str, pid: u32, code: u32) -> bool {
        double::end_process(&self.sys(id), pid, code)
    }

    fn call_count(&self, id: &str, op: HcsOp) -> usize {
        let calls = double::calls(&self.sys(id));
        calls.iter().filter(|c| c.as_str() == op.name()).count()
    }

    fn answer_pending_updates(&self, id: &str, pending: bool) {
        double::faults(
            &self.sys(id),
            serde_json::json!({"PendingUpdates": pending}),
        );
    }

    fn disconnect(&self, id: &str) {
        double::faults(&self.sys(id), serde_json::json!({"Disconnected": true}));
    }

    async fn assert_clean(&self) {
        Env::assert_clean(self).await;
    }
}

/// A base layer with a utility VM and a scratch folder of the test's own.
pub(crate) fn hyperv_layers(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = std::env::temp_dir().join("libctd-hcs-double").join(name);
    // What an earlier, interrupted run left would make the VM's scratch exist.
    let _ = std::fs::remove_dir_all(&root);
    let base = root.join("base");
    std::fs::create_dir_all(base.join("UtilityVM")).unwrap();
    std::fs::write(
        base.join("UtilityVM").join("SystemTemplate.vhdx"),
        b"template",
    )
    .unwrap();
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("sandbox.vhdx"), b"scratch").unwrap();
    (base, scratch)
}
