//! The simulated Host Compute Service: the [`Hcs`] trait over the
//! [`model`](super::model), for fast native tests.
//!
//! [`Sim`] adapts the one model of HCS (states, answers, exit rules, fault
//! plan, document checks, the processes' script language: see
//! [`model`](super::model) and [`program`](super::model::program)) to the
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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::model::{self, Gate, Model, Notice, Observer, Program, Step, Stop, Stream, SystemKey};
use super::{Hcs, HcsOp, HcsResult, ProcessExit, ProcessInfo, SystemExit};
use crate::error::{HcsError, Hresult};
use crate::schema::ProcessParameters;

pub use super::model::{CONTROL_C_EXIT, TERMINATED_EXIT, UNKNOWN_COMMAND_EXIT};

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

    /// Loses (or restores) the connection to the service: every call fails
    /// with the service-disconnect HRESULT.
    pub fn set_disconnected(&self, disconnected: bool) {
        self.plan(None, |p| p.disconnected = disconnected);
    }

    /// The number of host processors reported (default: this machine's).
    pub fn set_host_cpus(&self, count: u32) {
        *lock(&self.inner.host_cpus) = Some(count);
    }

    /// Declares that `layer_folder` holds a `UtilityVM` folder.
    pub fn add_utility_vm(&self, layer_folder: &str) {
        lock(&self.inner.utility_vm_layers).insert(layer_folder.to_owned());
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

    // ---- the face ----

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
    async fn until<T>(&self, mut ready: impl FnMut() -> Option<T>) -> T {
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
        let handle = SimSystem {
            key,
            id: id.to_owned(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        answer(gate, Ok(handle)).await
    }

    async fn open_compute_system(&self, id: &str) -> HcsResult<SimSystem> {
        let gate = self.gate(HcsOp::OpenComputeSystem, id).await?;
        let key = self.model().open_system(id)?;
        let handle = SimSystem {
            key,
            id: id.to_owned(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        answer(gate, Ok(handle)).await
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
        let process = SimProcess {
            pid,
            system: handle.id.clone(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        answer(gate, Ok((process, info))).await
    }

    async fn open_process(&self, handle: &SimSystem, pid: u32) -> HcsResult<SimProcess> {
        let gate = self.gate(HcsOp::OpenProcess, &handle.id).await?;
        check_open(&handle.closed)?;
        self.model().open_process(handle.key, pid)?;
        let process = SimProcess {
            pid,
            system: handle.id.clone(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        answer(gate, Ok(process)).await
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

/// A deterministic stand-in for vmcompute's `NameToGuid`: a GUID built from
/// two FNV-1a hashes of the name.
pub fn name_to_guid(name: &str) -> String {
    let hash = |seed: u64| {
        name.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        })
    };
    let a = hash(0xcbf2_9ce4_8422_2325);
    let b = hash(0x8422_2325_cbf2_9ce4);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        (a & 0x0FFF) | 0x5000,
        ((b >> 48) & 0x3FFF) | 0x8000,
        b & 0xFFFF_FFFF_FFFF
    )
}

/// The face's ends of a process's pipes.
struct Io {
    stdin: Option<DuplexStream>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    console: bool,
}

/// The pipes `spawn` asked for: the process's ends, and the caller's.
fn pipes(spawn: &model::Spawn) -> (Io, ProcessInfo) {
    let pipe = |wanted: bool| {
        if wanted {
            let (a, b) = tokio::io::duplex(64 * 1024);
            (Some(a), Some(b))
        } else {
            (None, None)
        }
    };
    let (stdin, stdin_theirs) = pipe(spawn.stdin);
    let (stdout, stdout_theirs) = pipe(spawn.stdout);
    let (stderr, stderr_theirs) = pipe(spawn.stderr);
    let io = Io {
        stdin,
        stdout,
        stderr,
        console: spawn.console,
    };
    let info = ProcessInfo {
        pid: spawn.pid,
        stdin: stdin_theirs.map(|s| Box::pin(s) as libctd_core::StdinStream),
        stdout: stdout_theirs.map(|s| Box::pin(s) as libctd_core::OutputStream),
        stderr: stderr_theirs.map(|s| Box::pin(s) as libctd_core::OutputStream),
    };
    (io, info)
}

/// Runs process `pid`'s program until it exits or is ended; its pipes
/// close, then its end goes to the model.
async fn run(sim: Sim, pid: u32, mut program: Program, mut io: Io) {
    let code = tokio::select! {
        code = interpret(&sim, pid, &mut program, &mut io) => code,
        code = sim.until(|| sim.model().control(pid).kill) => code,
    };
    drop(io);
    sim.model().process_exited(pid, code);
}

/// Writes `data` on `stream`; a reader that went away is a closed pipe.
async fn write(stream: &mut Option<DuplexStream>, data: &[u8]) -> bool {
    let written = match stream.as_mut() {
        Some(s) => s.write_all(data).await.is_ok(),
        None => false,
    };
    if !written {
        *stream = None;
    }
    written
}

async fn interpret(sim: &Sim, pid: u32, program: &mut Program, io: &mut Io) -> u32 {
    loop {
        match program.next_step() {
            Step::Exit(code) => return code,
            Step::Write(stream, data) => {
                let target = match stream {
                    Stream::Err if !io.console => &mut io.stderr,
                    _ => &mut io.stdout,
                };
                if !write(target, &data).await {
                    program.stop_filling();
                }
            }
            Step::Cat => cat(sim, pid, io).await,
            Step::Sleep => std::future::pending::<()>().await,
            Step::Pause(time) => tokio::time::sleep(time).await,
        }
    }
}

/// Copies stdin to stdout until EOF or stdin is closed by a request.
async fn cat(sim: &Sim, pid: u32, io: &mut Io) {
    let Some(mut stdin) = io.stdin.take() else {
        return;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        let n = tokio::select! {
            n = stdin.read(&mut buf) => n.unwrap_or(0),
            _ = sim.until(|| sim.model().control(pid).stdin_closed.then_some(())) => return,
        };
        if n == 0 {
            return;
        }
        write(&mut io.stdout, &buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ModifyProcessRequest;

    const DOC: &str = r#"{"Owner":"t","SchemaVersion":{"Major":2,"Minor":1},"ShouldTerminateOnLastHandleClosed":true,
        "Container":{"Storage":{"Path":"C:\\scratch\\"}}}"#;

    fn params(line: &str, stdin: bool) -> String {
        serde_json::to_string(&ProcessParameters {
            command_line: line.to_owned(),
            create_std_in_pipe: stdin,
            create_std_out_pipe: true,
            create_std_err_pipe: true,
            ..ProcessParameters::default()
        })
        .unwrap()
    }

    async fn running(sim: &Sim, id: &str) -> SimSystem {
        let s = sim.create_compute_system(id, DOC).await.unwrap();
        sim.start_compute_system(&s).await.unwrap();
        s
    }

    #[tokio::test]
    async fn programs_print_and_exit() {
        let sim = Sim::new();
        let s = running(&sim, "c").await;
        let (p, mut info) = sim
            .create_process(
                &s,
                &params("echo a b ; echoerr oops ; bytes 10 ; exit 7", false),
            )
            .await
            .unwrap();
        assert!(info.stdin.is_none());
        let mut out = String::new();
        info.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        let mut err = String::new();
        info.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert_eq!(out, "a b\nabcdefghij");
        assert_eq!(err, "oops\n");
        assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), Some(7));
    }

    #[tokio::test]
    async fn bad_arguments_exit_9009_with_a_message() {
        let sim = Sim::new();
        let s = running(&sim, "c").await;
        for (script, message) in [
            ("exit seven", "bad exit code \"seven\"\n"),
            ("bytes", "bytes needs a count\n"),
        ] {
            let (p, mut info) = sim
                .create_process(&s, &params(script, false))
                .await
                .unwrap();
            let mut err = String::new();
            info.stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            assert_eq!(err, message, "{script}");
            assert_eq!(
                sim.wait_process_exit(&p).await.unwrap().code(),
                Some(UNKNOWN_COMMAND_EXIT),
                "{script}"
            );
        }
        // No argument: exit 0.
        let (p, _info) = sim
            .create_process(&s, &params("exit", false))
            .await
            .unwrap();
        assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), Some(0));
    }

    #[tokio::test]
    async fn cat_until_stdin_closed_by_handle() {
        let sim = Sim::new();
        let s = running(&sim, "c").await;
        let (p, mut info) = sim
            .create_process(&s, &params("cat ; exit 4", true))
            .await
            .unwrap();
        let mut stdin = info.stdin.take().unwrap();
        stdin.write_all(b"ping").await.unwrap();
        let mut stdout = info.stdout.take().unwrap();
        let mut buf = [0u8; 4];
        stdout.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        sim.modify_process(
            &p,
            &serde_json::to_string(&ModifyProcessRequest::close_stdin()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), Some(4));
    }

    #[tokio::test]
    async fn signals_terminate_and_faults() {
        let sim = Sim::new();
        let s = running(&sim, "c").await;
        let (p, _info) = sim
            .create_process(&s, &params("sleep", false))
            .await
            .unwrap();
        sim.signal_process(&p, r#"{"Signal":"CtrlC"}"#)
            .await
            .unwrap();
        assert_eq!(
            sim.wait_process_exit(&p).await.unwrap().exit_code,
            CONTROL_C_EXIT
        );
        // Terminating an exited process is denied, as Windows' TerminateProcess.
        let err = sim.terminate_process(&p).await.unwrap_err();
        assert!(err.hresult.is_access_denied());
        let err = sim
            .signal_process(&p, r#"{"Signal":"CtrlC"}"#)
            .await
            .unwrap_err();
        assert!(err.hresult.is_already_stopped());

        sim.fail_once(HcsOp::CreateProcess, Some("c"), Hresult(0x8000_4005));
        let err = sim
            .create_process(&s, &params("exit", false))
            .await
            .unwrap_err();
        assert_eq!(err.hresult, Hresult(0x8000_4005));
        assert!(sim.create_process(&s, &params("exit", false)).await.is_ok());

        sim.set_last_wait_result("c", 5);
        let (p, _) = sim
            .create_process(&s, &params("exit 0", false))
            .await
            .unwrap();
        assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), None);
    }

    #[tokio::test]
    async fn shutdown_and_unexpected_exit() {
        let sim = Sim::new();
        let s = running(&sim, "c").await;
        let (p, _info) = sim
            .create_process(&s, &params("sleep", false))
            .await
            .unwrap();
        sim.exit_unexpectedly_on_shutdown("c");
        sim.shutdown_compute_system(&s).await.unwrap();
        let exit = sim.wait_compute_system_exit(&s).await.unwrap();
        assert!(exit.is_unexpected());
        assert_eq!(exit.error().unwrap().hresult, Hresult(0xC037_0106));
        assert!(sim.wait_process_exit(&p).await.unwrap().exited);
        let err = sim.shutdown_compute_system(&s).await.unwrap_err();
        assert!(err.hresult.is_already_stopped());
        sim.close_compute_system(&s).await.unwrap();
        assert!(sim.compute_systems().is_empty());
        assert!(sim.close_compute_system(&s).await.is_err());
    }

    #[tokio::test]
    async fn disconnect_and_unknown_systems() {
        let sim = Sim::new();
        let err = sim.open_compute_system("nope").await.unwrap_err();
        assert!(err.hresult.is_not_exist());
        sim.set_disconnected(true);
        let err = sim.create_compute_system("c", DOC).await.unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::Unavailable);
        sim.set_disconnected(false);
        let err = sim.create_compute_system("c", "{").await.unwrap_err();
        assert!(err.hresult.is_not_supported());
    }

    #[test]
    fn guids_are_stable_and_well_formed() {
        let g = name_to_guid("base");
        assert_eq!(g, name_to_guid("base"));
        assert_ne!(g, name_to_guid("other"));
        assert_eq!(g.len(), 36);
        assert_eq!(g.matches('-').count(), 4);
    }
}
