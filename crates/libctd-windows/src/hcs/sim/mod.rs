//! The simulated Host Compute Service: the [`Hcs`](super::Hcs) trait over
//! the [`model`], for fast native tests.
//!
//! [`Sim`] adapts the one model of HCS (states, answers, exit rules, fault
//! plan, document checks, the processes' script language: see
//! [`model`] and [`program`](model::program)) to the
//! trait: calls are async and wait out the plan's delays, processes run on
//! tokio tasks with in-memory duplex pipes as stdio, waits resolve on the
//! model's notifications. The computecore.dll double adapts the same model
//! to computecore's exports under Wine.
//!
//! What is particular to this face: a shutdown or terminate the plan makes
//! slow (`Slow`) is answered pending at once, as the real binding answers
//! a stop its submit wait did not see complete, and its later failure goes
//! to the system's exit waiters; a cancel is a dropped future, so the
//! plan's `IgnoreCancel` and `CreateProcessQuirk` (which the binding
//! recovers from) have no effect here; the host's processors and utility
//! VM layers are settings of the face.
//!
//! ```
//! use libctd_windows::hcs::{Hcs, sim::Sim};
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main] async fn main() {
//! let sim = Sim::new();
//! let doc = r#"{"Owner":"test","SchemaVersion":{"Major":2,"Minor":1},
//!               "ShouldTerminateOnLastHandleClosed":true,
//!               "Container":{"Storage":{"Path":"\\\\?\\Volume{1}\\"}}}"#;
//! let system = sim.create_compute_system("web", doc).await.unwrap();
//! sim.start_compute_system(&system).await.unwrap();
//! let params = r#"{"CommandLine":"echo hello ; exit 3","EmulateConsole":false,
//!     "CreateStdInPipe":false,"CreateStdOutPipe":true,"CreateStdErrPipe":true}"#;
//! let (process, mut info) = sim.create_process(&system, params).await.unwrap();
//! let mut out = String::new();
//! info.stdout.as_mut().unwrap().read_to_string(&mut out).await.unwrap();
//! assert_eq!(out, "hello\n");
//! let exit = sim.wait_process_exit(&process).await.unwrap();
//! assert_eq!(exit.code(), Some(3));
//! # }
//! ```

mod calls;
mod run;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::model::{self, Model, Notice, Observer, SystemKey};
use super::{HcsOp, HcsResult};
use crate::error::{HcsError, Hresult};
use crate::schema::ProcessParameters;

pub use super::model::{CONTROL_C_EXIT, TERMINATED_EXIT, UNKNOWN_COMMAND_EXIT, name_to_guid};

/// A simulated HCS. Clones share one simulated service.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    model: Model,
    /// Bumped on every change of the model: waits re-check on it.
    changed: Arc<watch::Sender<u64>>,
    /// Per system: the failure of a stop answered pending that failed.
    stop_failures: Mutex<HashMap<SystemKey, HcsError>>,
    host_cpus: Mutex<Option<u32>>,
    utility_vm_layers: Mutex<HashSet<String>>,
}

/// Wakes the face's waits.
struct Wake(Arc<watch::Sender<u64>>);

impl Observer for Wake {
    fn notice(&self, _: Notice) {
        self.changed();
    }

    fn changed(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Default for Sim {
    fn default() -> Self {
        let changed = Arc::new(watch::channel(0).0);
        Self {
            inner: Arc::new(Inner {
                model: Model::new(Box::new(Wake(changed.clone()))),
                changed,
                stop_failures: Mutex::default(),
                host_cpus: Mutex::default(),
                utility_vm_layers: Mutex::default(),
            }),
        }
    }
}

/// A handle on a simulated compute system.
#[derive(Clone)]
pub struct SimSystem {
    key: SystemKey,
    id: String,
    closed: Arc<AtomicBool>,
}

impl SimSystem {
    /// A fresh, open handle on system `key`, known as `id`.
    fn new(key: SystemKey, id: &str) -> Self {
        Self {
            key,
            id: id.to_owned(),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl fmt::Debug for SimSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSystem")
            .field("id", &self.id)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

/// A handle on a simulated process.
#[derive(Clone)]
pub struct SimProcess {
    pid: u32,
    system: String,
    closed: Arc<AtomicBool>,
}

impl SimProcess {
    /// A fresh, open handle on process `pid` of system `system`.
    fn new(pid: u32, system: &str) -> Self {
        Self {
            pid,
            system: system.to_owned(),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl fmt::Debug for SimProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimProcess")
            .field("pid", &self.pid)
            .field("system", &self.system)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call on a closed handle.
fn check_open(closed: &AtomicBool) -> HcsResult<()> {
    if closed.load(Ordering::SeqCst) {
        Err(HcsError::new(model::hr::INVALID_HANDLE))
    } else {
        Ok(())
    }
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("systems", &self.compute_systems())
            .finish()
    }
}

impl Sim {
    /// A simulated HCS with no compute systems and no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model this face adapts.
    pub fn model(&self) -> &Model {
        &self.inner.model
    }

    fn plan(&self, container: Option<&str>, edit: impl FnOnce(&mut model::Plan)) {
        self.model().edit_plan(container, edit);
    }

    // ---- the fault plan (the model's, in this face's words) ----

    /// Every later `op` on `container` (any container when `None`) fails with
    /// `hresult`. A pending HRESULT still carries the operation out.
    pub fn fail(&self, op: HcsOp, container: Option<&str>, hresult: Hresult) {
        self.plan(container, |p| {
            p.fail.insert(op.name().to_owned(), i64::from(hresult.0));
        });
    }

    /// The next `op` on `container` fails with `hresult`, once.
    pub fn fail_once(&self, op: HcsOp, container: Option<&str>, hresult: Hresult) {
        self.plan(container, |p| {
            p.fail_once
                .insert(op.name().to_owned(), i64::from(hresult.0));
        });
    }

    /// The call of `op` on `container` after `skip` more fails with
    /// `hresult`, once.
    pub fn fail_later(&self, op: HcsOp, container: Option<&str>, skip: u32, hresult: Hresult) {
        self.plan(container, |p| {
            p.fail_later
                .insert(op.name().to_owned(), (skip, i64::from(hresult.0)));
        });
    }

    /// Removes every failure and delay.
    pub fn clear_faults(&self) {
        self.model().clear_faults();
    }

    /// Every later `op` on `container` (any when `None`) waits `delay`
    /// before taking effect (a shutdown or terminate is answered pending).
    pub fn delay(&self, op: HcsOp, container: Option<&str>, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.plan(container, |p| {
            p.slow.insert(op.name().to_owned(), ms);
        });
    }

    /// Makes `container`'s host answer `PendingUpdates` queries, with
    /// `pending`. By default the query is refused (HCS_E_INVALID_JSON), as
    /// hosts since Windows Server 2019 do: it is not a property type of
    /// schema 2. This models a host that would answer it.
    pub fn set_pending_updates(&self, container: &str, pending: bool) {
        self.plan(Some(container), |p| p.pending_updates = Some(pending));
    }

    /// A shutdown (or terminate) of `container` ends with the compute
    /// system exiting unexpectedly.
    pub fn exit_unexpectedly_on_shutdown(&self, container: &str) {
        self.plan(Some(container), |p| p.unexpected_exit_on_shutdown = true);
    }

    /// The next `op` (a shutdown or terminate) of `container` is answered
    /// pending, as a submitted stop, and fails with `hresult` `after` later
    /// without stopping anything: the system's exit waiters get the failure
    /// (no exit follows it).
    pub fn fail_after_submit(&self, op: HcsOp, container: &str, hresult: Hresult, after: Duration) {
        self.delay(op, Some(container), after);
        self.fail_once(op, Some(container), hresult);
    }

    /// Processes of `container` report this `LastWaitResult` when they exit
    /// (non-zero: the exit code could not be obtained).
    pub fn set_last_wait_result(&self, container: &str, result: i32) {
        self.plan(Some(container), |p| p.last_wait_result = i64::from(result));
    }

    /// Holds the ProcessExited notifications of `container`'s processes: a
    /// process that ends is gone at once (terminating it is denied, as on
    /// Windows), but waits for its exit finish only after
    /// [`Sim::release_exit_notices`].
    pub fn hold_exit_notices(&self, container: &str) {
        self.plan(Some(container), |p| p.hold_exit_notices = true);
    }

    /// Sends the ProcessExited notifications held for `container`, and holds
    /// no more. False when none were held.
    pub fn release_exit_notices(&self, container: &str) -> bool {
        self.model().release_exit_notices(container)
    }

    /// HCS hangs for `container`: it stops and its processes end as asked,
    /// but neither their ProcessExited nor its SystemExited is ever sent.
    pub fn lose_exit_notices(&self, container: &str) {
        self.plan(Some(container), |p| p.lose_exit_notices = true);
    }

    /// Loses (or restores) the connection to the service: every call fails
    /// with the service-disconnect HRESULT.
    pub fn set_disconnected(&self, disconnected: bool) {
        self.plan(None, |p| p.disconnected = disconnected);
    }

    /// The number of host processors reported (default: this machine's).
    pub fn set_host_cpus(&self, count: u32) {
        *lock(&self.inner.host_cpus) = Some(count);
    }

    /// Declares that `layer_folder` holds a `UtilityVM` folder, with the
    /// template of a utility VM's scratch (`UtilityVM\SystemTemplate.vhdx`).
    pub fn add_utility_vm(&self, layer_folder: &str) {
        lock(&self.inner.utility_vm_layers).insert(layer_folder.to_owned());
        let folder = layer_folder.trim_end_matches('\\');
        self.model()
            .add_file(&format!("{folder}\\UtilityVM\\SystemTemplate.vhdx"));
    }

    /// Declares that host file `path` exists (a container's scratch disk).
    pub fn add_file(&self, path: &str) {
        self.model().add_file(path);
    }

    /// The simulated host's files (utility VM templates and scratches).
    pub fn files(&self) -> Vec<String> {
        self.model().files()
    }

    /// Declares HNS endpoint `id` (made by a network driver).
    pub fn add_endpoint(&self, id: &str) {
        self.model().add_endpoint(id);
    }

    /// The HNS namespaces that exist, with their endpoints.
    pub fn namespaces(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.model().namespaces()
    }

    /// The disk access grants held: (VM id, file).
    pub fn grants(&self) -> Vec<(String, String)> {
        self.model().grants()
    }

    // ---- acting on the simulated world ----

    /// Makes `container`'s compute system die now, as HCS reports it: the
    /// system exits unexpectedly and its processes end without any
    /// ProcessExited (waits on them never finish; calls on them answer
    /// HCS_E_INVALID_STATE). False when it does not run.
    pub fn crash(&self, container: &str) -> bool {
        self.model().crash(container)
    }

    /// Ends process `pid` of `container` with `exit_code`, as if it exited by
    /// itself. False when there is no such running process.
    pub fn exit_process(&self, container: &str, pid: u32, exit_code: u32) -> bool {
        self.model().end_process(container, pid, exit_code)
    }

    // ---- observing the simulated world ----

    /// The ids of the compute systems that exist (until stopped and closed).
    pub fn compute_systems(&self) -> Vec<String> {
        self.model().compute_systems()
    }

    /// The configuration document `container` was created with.
    pub fn document(&self, container: &str) -> Option<String> {
        self.model().document(container)
    }

    /// Whether `container`'s compute system is running (or paused).
    pub fn is_running(&self, container: &str) -> bool {
        self.model().is_running(container)
    }

    /// The pids of `container`'s processes that have not exited.
    pub fn live_pids(&self, container: &str) -> Vec<u32> {
        self.model().live_pids(container)
    }

    /// The parameters process `pid` of `container` was created with.
    pub fn process_parameters(&self, container: &str, pid: u32) -> Option<ProcessParameters> {
        self.model().process_parameters(container, pid)
    }

    /// The console size last set on process `pid` of `container`.
    pub fn console_size(&self, container: &str, pid: u32) -> Option<[u16; 2]> {
        self.model().console_size(container, pid)
    }

    /// The signals sent to process `pid` of `container`.
    pub fn signals(&self, container: &str, pid: u32) -> Vec<String> {
        self.model().signals(container, pid)
    }

    /// Every call made so far, with the compute system it concerned.
    pub fn calls(&self) -> Vec<(HcsOp, String)> {
        self.model()
            .calls()
            .into_iter()
            .filter_map(|(op, id)| HcsOp::from_name(&op).map(|op| (op, id)))
            .collect()
    }

    /// How many times `op` was called on `container`.
    pub fn call_count(&self, op: HcsOp, container: &str) -> usize {
        self.model()
            .calls()
            .iter()
            .filter(|(o, c)| o == op.name() && c == container)
            .count()
    }
}
