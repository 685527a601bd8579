//! A simulated Host Compute Service, with a fault plan.
//!
//! [`Sim`] keeps compute systems and processes in memory and behaves like HCS
//! where the client can tell: handles, states, exit notifications, property
//! answers, stdio pipes (in-memory, through `tokio::io::duplex`). Its fault plan
//! can make any operation on any compute system fail with any HRESULT, delay
//! operations, hold ProcessExited notifications until released, make
//! a compute system exit unexpectedly during shutdown or crash (no
//! ProcessExited for its processes), answer `PendingUpdates` (refused by
//! default, as hosts since WS2019 do), end processes with chosen exit codes
//! or a failed wait (`LastWaitResult`), and lose the connection to the
//! service. A terminate's exit is `ForcedExit` with HCS_E_TERMINATED;
//! terminating an exited process is denied access, as on Windows.
//!
//! # Programs
//!
//! A process's command line is a tiny script: statements separated by a `;`
//! argument, run in order. The process exits with 0 at the end of the script.
//!
//! | statement        | effect                                                   |
//! |------------------|----------------------------------------------------------|
//! | `exit N`         | exit with code N                                         |
//! | `echo WORDS...`  | print the words and a newline on stdout                  |
//! | `echoerr WORDS...` | the same on stderr (stdout with a console)             |
//! | `print TEXT`     | write TEXT (one argument, any characters) on stdout       |
//! | `printerr TEXT`  | the same on stderr (stdout with a console)               |
//! | `cat`            | copy stdin to stdout until EOF or the handle is closed   |
//! | `bytes N`        | write N bytes on stdout                                  |
//! | `sleep`          | wait until signalled, terminated or shut down            |
//! | `sleepms N`      | wait N milliseconds                                      |
//!
//! A script with an unknown statement cannot be started: `create_process`
//! fails with `ERROR_FILE_NOT_FOUND`, as for a program that does not exist.
//! Bad arguments print an error on stderr and exit with 9009. A signal (`CtrlC`...) ends a process with exit code
//! [`CONTROL_C_EXIT`], a terminate with 1.
//!
//! ```
//! use libctd_windows::hcs::{Hcs, sim::Sim};
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main] async fn main() {
//! let sim = Sim::new();
//! let doc = r#"{"Owner":"test","SchemaVersion":{"Major":2,"Minor":1},
//!               "ShouldTerminateOnLastHandleClosed":true}"#;
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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::{Hcs, HcsOp, HcsResult, ProcessExit, ProcessInfo, SystemExit};
use crate::convert::split_command_line;
use crate::error::{HcsError, Hresult, win32};
use crate::schema::{
    ComputeSystem, ModifyProcessRequest, ProcessDetails, ProcessParameters, ProcessorStats,
    Properties, PropertyQuery, SignalProcessOptions, Statistics,
};

/// The exit code of a process ended by a console control signal
/// (`STATUS_CONTROL_C_EXIT`).
pub const CONTROL_C_EXIT: u32 = 0xC000_013A;
/// The exit code of a terminated process.
pub const TERMINATED_EXIT: u32 = 1;
/// The exit code of a statement with bad arguments.
pub const UNKNOWN_COMMAND_EXIT: u32 = 9009;

/// The statements of the process language.
const KNOWN_STATEMENTS: &[&str] = &[
    "exit", "echo", "echoerr", "print", "printerr", "bytes", "cat", "sleep", "sleepms",
];

/// HRESULTs the simulation answers with.
mod hr {
    use crate::error::Hresult;
    use crate::error::codes::*;
    pub(super) const INVALID_STATE: Hresult = HCS_E_INVALID_STATE.v1();
    pub(super) const INVALID_JSON: Hresult = HCS_E_INVALID_JSON.v1();
    pub(super) const NOT_FOUND: Hresult = HCS_E_SYSTEM_NOT_FOUND.v1();
    pub(super) const ALREADY_STOPPED: Hresult = HCS_E_SYSTEM_ALREADY_STOPPED.v1();
    pub(super) const PROCESS_ALREADY_STOPPED: Hresult = HCS_E_PROCESS_ALREADY_STOPPED;
    pub(super) const SERVICE_DISCONNECT: Hresult = HCS_E_SERVICE_DISCONNECT;
    pub(super) const ALREADY_EXISTS: Hresult = HCS_E_SYSTEM_ALREADY_EXISTS;
    pub(super) const PENDING: Hresult = HCS_E_OPERATION_PENDING;
}

/// A simulated HCS. Clones share one simulated service.
#[derive(Clone, Default)]
pub struct Sim {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    next_pid: AtomicU32,
}

#[derive(Default)]
struct State {
    systems: HashMap<String, Arc<System>>,
    faults: Vec<Fault>,
    delays: Vec<(HcsOp, Option<String>, Duration)>,
    disconnected: bool,
    pending_updates: HashMap<String, bool>,
    unexpected_exit_on_shutdown: HashSet<String>,
    late_failures: Vec<(HcsOp, String, Hresult, Duration)>,
    last_wait_results: HashMap<String, i32>,
    /// Per container: whether its held ProcessExited notices are released.
    held_notices: HashMap<String, watch::Sender<bool>>,
    host_cpus: Option<u32>,
    utility_vm_layers: HashSet<String>,
    calls: Vec<(HcsOp, String)>,
}

#[derive(Debug, Clone)]
struct Fault {
    op: HcsOp,
    container: Option<String>,
    hresult: Hresult,
    remaining: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SysStatus {
    Created,
    Running,
    Paused,
    Stopped,
}

struct System {
    id: String,
    document: String,
    hyperv: bool,
    started: Mutex<Option<Instant>>,
    status: Mutex<SysStatus>,
    processes: Mutex<HashMap<u32, Arc<Process>>>,
    handles: AtomicU32,
    exit: watch::Sender<Option<SystemExit>>,
    /// The failure of a stop answered pending that failed later.
    stop_failure: watch::Sender<Option<HcsError>>,
}

struct Process {
    pid: u32,
    system_id: String,
    image: String,
    parameters: ProcessParameters,
    /// Set once to end the process with a code.
    kill: watch::Sender<Option<u32>>,
    stdin_closed: watch::Sender<bool>,
    console_size: Mutex<Option<[u16; 2]>>,
    signals: Mutex<Vec<String>>,
    exit: watch::Sender<Option<ProcessExit>>,
    /// Set when its compute system died: it ends without a ProcessExited.
    silent: AtomicBool,
    /// Its compute system's exit: once set, calls on it are refused.
    system_exit: watch::Receiver<Option<SystemExit>>,
}

/// A handle on a simulated compute system.
#[derive(Clone)]
pub struct SimSystem {
    system: Arc<System>,
    closed: Arc<AtomicBool>,
}

impl fmt::Debug for SimSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSystem")
            .field("id", &self.system.id)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

/// A handle on a simulated process.
#[derive(Clone)]
pub struct SimProcess {
    process: Arc<Process>,
    closed: Arc<AtomicBool>,
}

impl fmt::Debug for SimProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimProcess")
            .field("pid", &self.process.pid)
            .field("system", &self.process.system_id)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid_handle() -> HcsError {
    HcsError::new(Hresult::from_win32(win32::INVALID_HANDLE))
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
        let sim = Self::default();
        sim.inner.next_pid.store(1000, Ordering::SeqCst);
        sim
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    // ---- the fault plan ----

    /// Every later `op` on `container` (any container when `None`) fails with
    /// `hresult`. A pending HRESULT still carries the operation out.
    pub fn fail(&self, op: HcsOp, container: Option<&str>, hresult: Hresult) {
        self.push_fault(op, container, hresult, None);
    }

    /// The next `op` on `container` fails with `hresult`, once.
    pub fn fail_once(&self, op: HcsOp, container: Option<&str>, hresult: Hresult) {
        self.push_fault(op, container, hresult, Some(1));
    }

    fn push_fault(
        &self,
        op: HcsOp,
        container: Option<&str>,
        hresult: Hresult,
        remaining: Option<usize>,
    ) {
        self.state().faults.push(Fault {
            op,
            container: container.map(str::to_owned),
            hresult,
            remaining,
        });
    }

    /// Removes every fault and delay.
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.delays.clear();
    }

    /// Every later `op` on `container` (any when `None`) waits `delay` first.
    pub fn delay(&self, op: HcsOp, container: Option<&str>, delay: Duration) {
        self.state()
            .delays
            .push((op, container.map(str::to_owned), delay));
    }

    /// Makes `container`'s host answer `PendingUpdates` queries, with
    /// `pending`. By default the query is refused (HCS_E_INVALID_JSON), as
    /// hosts since Windows Server 2019 do: it is not a property type of
    /// schema 2. This models a host that would answer it.
    pub fn set_pending_updates(&self, container: &str, pending: bool) {
        self.state()
            .pending_updates
            .insert(container.to_owned(), pending);
    }

    /// The next shutdown (or terminate) of `container` ends with the compute
    /// system exiting unexpectedly.
    pub fn exit_unexpectedly_on_shutdown(&self, container: &str) {
        self.state()
            .unexpected_exit_on_shutdown
            .insert(container.to_owned());
    }

    /// The next `op` (a shutdown or terminate) of `container` is answered
    /// pending, as a submitted stop, and fails with `hresult` `after` later
    /// without stopping anything: the system's exit waiters get the failure
    /// (no exit follows it).
    pub fn fail_after_submit(&self, op: HcsOp, container: &str, hresult: Hresult, after: Duration) {
        self.state()
            .late_failures
            .push((op, container.to_owned(), hresult, after));
    }

    /// Processes of `container` report this `LastWaitResult` when they exit
    /// (non-zero: the exit code could not be obtained).
    pub fn set_last_wait_result(&self, container: &str, result: i32) {
        self.state()
            .last_wait_results
            .insert(container.to_owned(), result);
    }

    /// Holds the ProcessExited notifications of `container`'s processes: a
    /// process that ends is gone at once (terminating it is denied, as on
    /// Windows), but waits for its exit finish only after
    /// [`Sim::release_exit_notices`].
    pub fn hold_exit_notices(&self, container: &str) {
        self.state()
            .held_notices
            .insert(container.to_owned(), watch::channel(false).0);
    }

    /// Sends the ProcessExited notifications held for `container`, and holds
    /// no more. False when none were held.
    pub fn release_exit_notices(&self, container: &str) -> bool {
        let state = self.state();
        let held = state.held_notices.get(container);
        held.is_some_and(|released| !released.send_replace(true))
    }

    /// Loses (or restores) the connection to the service: every call fails
    /// with the service-disconnect HRESULT.
    pub fn set_disconnected(&self, disconnected: bool) {
        self.state().disconnected = disconnected;
    }

    /// The number of host processors reported (default: this machine's).
    pub fn set_host_cpus(&self, count: u32) {
        self.state().host_cpus = Some(count);
    }

    /// Declares that `layer_folder` holds a `UtilityVM` folder.
    pub fn add_utility_vm(&self, layer_folder: &str) {
        self.state()
            .utility_vm_layers
            .insert(layer_folder.to_owned());
    }

    // ---- acting on the simulated world ----

    /// Makes `container`'s compute system die now, as HCS reports it: the
    /// system exits unexpectedly and its processes end without any
    /// ProcessExited (waits on them never finish; calls on them answer
    /// HCS_E_INVALID_STATE). False when it does not run.
    pub fn crash(&self, container: &str) -> bool {
        let Some(system) = self.state().systems.get(container).cloned() else {
            return false;
        };
        for p in lock(&system.processes).values() {
            p.silent.store(true, Ordering::SeqCst);
        }
        stop_system(&system, TERMINATED_EXIT, SystemExit::unexpected())
    }

    /// Ends process `pid` of `container` with `exit_code`, as if it exited by
    /// itself. False when there is no such running process.
    pub fn exit_process(&self, container: &str, pid: u32, exit_code: u32) -> bool {
        let Some(system) = self.state().systems.get(container).cloned() else {
            return false;
        };
        let process = lock(&system.processes).get(&pid).cloned();
        match process {
            Some(p) if p.exit.borrow().is_none() => {
                p.kill.send_replace(Some(exit_code));
                true
            }
            _ => false,
        }
    }

    // ---- observing the simulated world ----

    /// The ids of the compute systems that exist (until stopped and closed).
    pub fn compute_systems(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.state().systems.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The configuration document `container` was created with.
    pub fn document(&self, container: &str) -> Option<String> {
        self.state()
            .systems
            .get(container)
            .map(|s| s.document.clone())
    }

    /// Whether `container`'s compute system is running (or paused).
    pub fn is_running(&self, container: &str) -> bool {
        self.state()
            .systems
            .get(container)
            .is_some_and(|s| matches!(*lock(&s.status), SysStatus::Running | SysStatus::Paused))
    }

    /// The pids of `container`'s processes that have not exited.
    pub fn live_pids(&self, container: &str) -> Vec<u32> {
        let Some(system) = self.state().systems.get(container).cloned() else {
            return Vec::new();
        };
        let mut pids: Vec<_> = lock(&system.processes)
            .values()
            .filter(|p| p.exit.borrow().is_none())
            .map(|p| p.pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The parameters process `pid` of `container` was created with.
    pub fn process_parameters(&self, container: &str, pid: u32) -> Option<ProcessParameters> {
        let system = self.state().systems.get(container).cloned()?;
        let p = lock(&system.processes).get(&pid).cloned()?;
        Some(p.parameters.clone())
    }

    /// The console size last set on process `pid` of `container`.
    pub fn console_size(&self, container: &str, pid: u32) -> Option<[u16; 2]> {
        let system = self.state().systems.get(container).cloned()?;
        let p = lock(&system.processes).get(&pid).cloned()?;
        *lock(&p.console_size)
    }

    /// The signals sent to process `pid` of `container`.
    pub fn signals(&self, container: &str, pid: u32) -> Vec<String> {
        let Some(system) = self.state().systems.get(container).cloned() else {
            return Vec::new();
        };
        let p = lock(&system.processes).get(&pid).cloned();
        p.map(|p| lock(&p.signals).clone()).unwrap_or_default()
    }

    /// Every call made so far, with the compute system it concerned.
    pub fn calls(&self) -> Vec<(HcsOp, String)> {
        self.state().calls.clone()
    }

    /// How many times `op` was called on `container`.
    pub fn call_count(&self, op: HcsOp, container: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|(o, c)| *o == op && c == container)
            .count()
    }

    // ---- internals ----

    /// Records the call, applies delays, then the fault plan: `Err` to fail
    /// without acting, `Ok(Some(_))` to act and then fail (pending).
    async fn gate(&self, op: HcsOp, container: &str) -> HcsResult<Option<HcsError>> {
        let delay = {
            let mut state = self.state();
            state.calls.push((op, container.to_owned()));
            if state.disconnected {
                return Err(HcsError::new(hr::SERVICE_DISCONNECT));
            }
            state
                .delays
                .iter()
                .filter(|(o, c, _)| *o == op && c.as_deref().is_none_or(|c| c == container))
                .map(|(_, _, d)| *d)
                .max()
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.state();
        let Some(i) = state.faults.iter().position(|f| {
            f.op == op
                && f.container.as_deref().is_none_or(|c| c == container)
                && f.remaining != Some(0)
        }) else {
            return Ok(None);
        };
        let fault = &mut state.faults[i];
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        let err = HcsError::new(fault.hresult);
        if fault.hresult.is_pending() {
            Ok(Some(err))
        } else {
            Err(err)
        }
    }

    fn check_open(&self, handle: &SimSystem) -> HcsResult<()> {
        if handle.closed.load(Ordering::SeqCst) {
            Err(invalid_handle())
        } else {
            Ok(())
        }
    }

    fn release(&self, system: &Arc<System>) {
        let remaining = system
            .handles
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        if remaining == 0 {
            // ShouldTerminateOnLastHandleClosed.
            if *lock(&system.status) != SysStatus::Stopped {
                stop_system(system, TERMINATED_EXIT, SystemExit::forced());
            }
            let mut state = self.state();
            if state
                .systems
                .get(&system.id)
                .is_some_and(|s| Arc::ptr_eq(s, system))
            {
                state.systems.remove(&system.id);
            }
        }
    }

    fn last_wait_result(&self, container: &str) -> i32 {
        self.state()
            .last_wait_results
            .get(container)
            .copied()
            .unwrap_or(0)
    }

    fn take_unexpected(&self, container: &str) -> bool {
        self.state().unexpected_exit_on_shutdown.remove(container)
    }

    /// A pause or resume (`op`): the system goes from `from` to `to`. Only
    /// Hyper-V isolated systems can be paused.
    async fn transition(
        &self,
        handle: &SimSystem,
        op: HcsOp,
        from: SysStatus,
        to: SysStatus,
    ) -> HcsResult<()> {
        let pending = self.gate(op, &handle.system.id).await?;
        self.check_open(handle)?;
        if op == HcsOp::PauseComputeSystem && !handle.system.hyperv {
            return Err(HcsError::new(Hresult::from_win32(win32::NOT_SUPPORTED)));
        }
        let mut status = lock(&handle.system.status);
        match *status {
            current if current == from => *status = to,
            SysStatus::Stopped => return Err(HcsError::new(hr::ALREADY_STOPPED)),
            _ => return Err(HcsError::new(hr::INVALID_STATE)),
        }
        pending.map_or(Ok(()), Err)
    }

    /// A shutdown or terminate (`op`): the processes end with `code`, and
    /// the system exits with `exit`, or unexpectedly when the fault plan
    /// says so.
    async fn stop(
        &self,
        handle: &SimSystem,
        op: HcsOp,
        code: u32,
        exit: SystemExit,
    ) -> HcsResult<()> {
        let pending = self.gate(op, &handle.system.id).await?;
        self.check_open(handle)?;
        let system = handle.system.clone();
        system.stop_failure.send_replace(None);
        let late = {
            let mut state = self.state();
            let found = state
                .late_failures
                .iter()
                .position(|(o, c, _, _)| *o == op && *c == system.id);
            found.map(|i| state.late_failures.remove(i))
        };
        if let Some((_, _, hresult, after)) = late {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                system
                    .stop_failure
                    .send_replace(Some(HcsError::new(hresult)));
            });
            return Err(HcsError::new(hr::PENDING));
        }
        let exit = if self.take_unexpected(&handle.system.id) {
            SystemExit::unexpected()
        } else {
            exit
        };
        if !stop_system(&handle.system, code, exit) {
            return Err(HcsError::new(hr::ALREADY_STOPPED));
        }
        pending.map_or(Ok(()), Err)
    }
}

/// Ends every process of `system` with `code`, marks it stopped and publishes
/// `exit`. False if it was already stopped.
fn stop_system(system: &Arc<System>, code: u32, exit: SystemExit) -> bool {
    {
        let mut status = lock(&system.status);
        if *status == SysStatus::Stopped {
            return false;
        }
        *status = SysStatus::Stopped;
    }
    let processes: Vec<_> = lock(&system.processes).values().cloned().collect();
    for p in processes {
        p.kill.send_if_modified(|k| {
            if k.is_none() {
                *k = Some(code);
                true
            } else {
                false
            }
        });
    }
    // The exit is published once the processes are told to end.
    system.exit.send_replace(Some(exit));
    true
}

#[async_trait]
impl Hcs for Sim {
    type System = SimSystem;
    type Process = SimProcess;

    async fn create_compute_system(&self, id: &str, configuration: &str) -> HcsResult<SimSystem> {
        self.gate(HcsOp::CreateComputeSystem, id).await?;
        let doc: ComputeSystem = serde_json::from_str(configuration)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        if doc.hosted_system.is_some() {
            // As the computecore.dll double: a utility VM and its container
            // are separate compute systems, linked by HostingSystemId.
            return Err(HcsError::with_document(
                hr::INVALID_JSON,
                r#"{"ErrorMessage":"HostedSystem is not supported"}"#,
            ));
        }
        let mut state = self.state();
        if state.systems.contains_key(id) {
            // HCS's own code, not Win32's ERROR_ALREADY_EXISTS.
            return Err(HcsError::new(hr::ALREADY_EXISTS));
        }
        if let Some(host) = &doc.hosting_system_id {
            match state.systems.get(host) {
                None => return Err(HcsError::new(hr::NOT_FOUND)),
                Some(h) if *lock(&h.status) != SysStatus::Running => {
                    return Err(HcsError::new(hr::INVALID_STATE));
                }
                Some(_) => {}
            }
        }
        let (exit, _) = watch::channel(None);
        let system = Arc::new(System {
            id: id.to_owned(),
            document: configuration.to_owned(),
            hyperv: doc.virtual_machine.is_some(),
            started: Mutex::new(None),
            status: Mutex::new(SysStatus::Created),
            processes: Mutex::new(HashMap::new()),
            handles: AtomicU32::new(1),
            exit,
            stop_failure: watch::channel(None).0,
        });
        state.systems.insert(id.to_owned(), system.clone());
        Ok(SimSystem {
            system,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn open_compute_system(&self, id: &str) -> HcsResult<SimSystem> {
        self.gate(HcsOp::OpenComputeSystem, id).await?;
        let system = self
            .state()
            .systems
            .get(id)
            .cloned()
            .ok_or_else(|| HcsError::new(hr::NOT_FOUND))?;
        system.handles.fetch_add(1, Ordering::SeqCst);
        Ok(SimSystem {
            system,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn start_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let pending = self
            .gate(HcsOp::StartComputeSystem, &handle.system.id)
            .await?;
        self.check_open(handle)?;
        let mut status = lock(&handle.system.status);
        match *status {
            SysStatus::Created => {
                *status = SysStatus::Running;
                *lock(&handle.system.started) = Some(Instant::now());
            }
            SysStatus::Stopped => return Err(HcsError::new(hr::ALREADY_STOPPED)),
            _ => return Err(HcsError::new(hr::INVALID_STATE)),
        }
        pending.map_or(Ok(()), Err)
    }

    async fn shutdown_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let exit = SystemExit::clean("GracefulExit");
        self.stop(handle, HcsOp::ShutDownComputeSystem, CONTROL_C_EXIT, exit)
            .await
    }

    async fn terminate_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        let exit = SystemExit::forced();
        self.stop(handle, HcsOp::TerminateComputeSystem, TERMINATED_EXIT, exit)
            .await
    }

    async fn pause_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        self.transition(
            handle,
            HcsOp::PauseComputeSystem,
            SysStatus::Running,
            SysStatus::Paused,
        )
        .await
    }

    async fn resume_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        self.transition(
            handle,
            HcsOp::ResumeComputeSystem,
            SysStatus::Paused,
            SysStatus::Running,
        )
        .await
    }

    async fn close_compute_system(&self, handle: &SimSystem) -> HcsResult<()> {
        self.gate(HcsOp::CloseComputeSystem, &handle.system.id)
            .await?;
        if handle.closed.swap(true, Ordering::SeqCst) {
            return Err(invalid_handle());
        }
        self.release(&handle.system);
        Ok(())
    }

    async fn get_compute_system_properties(
        &self,
        handle: &SimSystem,
        query: &str,
    ) -> HcsResult<String> {
        self.gate(HcsOp::GetComputeSystemProperties, &handle.system.id)
            .await?;
        self.check_open(handle)?;
        let query: PropertyQuery = serde_json::from_str(query)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        let system = &handle.system;
        if *lock(&system.status) == SysStatus::Stopped {
            return Err(HcsError::new(hr::ALREADY_STOPPED));
        }
        let mut answer = Properties {
            id: system.id.clone(),
            ..Properties::default()
        };
        for kind in &query.property_types {
            match kind.as_str() {
                "Statistics" => {
                    let uptime = lock(&system.started)
                        .map(|s| s.elapsed().as_nanos() / 100)
                        .unwrap_or(0);
                    let uptime = u64::try_from(uptime).unwrap_or(u64::MAX);
                    let live = lock(&system.processes)
                        .values()
                        .filter(|p| p.exit.borrow().is_none())
                        .count() as u64;
                    answer.statistics = Some(Statistics {
                        timestamp: "2026-01-01T00:00:00Z".to_owned(),
                        container_start_time: "2026-01-01T00:00:00Z".to_owned(),
                        uptime_100ns: uptime,
                        processor: ProcessorStats {
                            total_runtime_100ns: uptime / 2,
                            runtime_user_100ns: uptime / 3,
                            runtime_kernel_100ns: uptime / 2 - uptime / 3,
                        },
                        memory: crate::schema::MemoryStats {
                            memory_usage_commit_bytes: ((live + 1) * 16) << 20,
                            memory_usage_commit_peak_bytes: ((live + 1) * 24) << 20,
                            memory_usage_private_working_set_bytes: ((live + 1) * 8) << 20,
                        },
                        storage: crate::schema::StorageStats::default(),
                    });
                }
                "ProcessList" => {
                    let mut list: Vec<_> = lock(&system.processes)
                        .values()
                        .filter(|p| p.exit.borrow().is_none())
                        .map(|p| ProcessDetails {
                            process_id: p.pid,
                            image_name: p.image.clone(),
                            create_timestamp: "2026-01-01T00:00:00Z".to_owned(),
                            memory_commit_bytes: 4 << 20,
                            memory_working_set_private_bytes: 2 << 20,
                            memory_working_set_shared_bytes: 1 << 20,
                            ..ProcessDetails::default()
                        })
                        .collect();
                    list.sort_by_key(|p| p.process_id);
                    answer.process_list = Some(list);
                }
                "PendingUpdates" => {
                    let answered = self.state().pending_updates.get(&system.id).copied();
                    let Some(pending) = answered else {
                        return Err(HcsError::with_document(
                            hr::INVALID_JSON,
                            r#"{"ErrorMessage":"PendingUpdates is not a property type"}"#,
                        ));
                    };
                    answer.are_updates_pending = Some(pending);
                }
                _ => {
                    return Err(HcsError::with_document(
                        hr::INVALID_JSON,
                        &format!(r#"{{"ErrorMessage":"unknown property type {kind}"}}"#),
                    ));
                }
            }
        }
        serde_json::to_string(&answer)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))
    }

    async fn modify_compute_system(&self, handle: &SimSystem, request: &str) -> HcsResult<()> {
        self.gate(HcsOp::ModifyComputeSystem, &handle.system.id)
            .await?;
        self.check_open(handle)?;
        serde_json::from_str::<serde_json::Value>(request)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        Err(HcsError::new(Hresult::from_win32(win32::NOT_SUPPORTED)))
    }

    async fn wait_compute_system_exit(&self, handle: &SimSystem) -> HcsResult<SystemExit> {
        self.gate(HcsOp::WaitForComputeSystemExit, &handle.system.id)
            .await?;
        self.check_open(handle)?;
        let mut rx = handle.system.exit.subscribe();
        let mut failure = handle.system.stop_failure.subscribe();
        let exit = tokio::select! {
            biased;
            exit = rx.wait_for(Option::is_some) => exit
                .map_err(|_| HcsError::new(hr::SERVICE_DISCONNECT))?
                .clone(),
            failed = failure.wait_for(Option::is_some) => {
                let failed = failed.ok().and_then(|f| f.clone());
                return Err(failed.unwrap_or_else(|| HcsError::new(hr::SERVICE_DISCONNECT)));
            }
        };
        exit.ok_or_else(|| HcsError::new(hr::SERVICE_DISCONNECT))
    }

    async fn create_process(
        &self,
        handle: &SimSystem,
        parameters: &str,
    ) -> HcsResult<(SimProcess, ProcessInfo)> {
        self.gate(HcsOp::CreateProcess, &handle.system.id).await?;
        self.check_open(handle)?;
        let params: ProcessParameters = serde_json::from_str(parameters)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        let system = &handle.system;
        if *lock(&system.status) != SysStatus::Running {
            return Err(HcsError::new(hr::INVALID_STATE));
        }
        let args = split_command_line(&params.command_line);
        if let Some(unknown) = args
            .split(|a| a == ";")
            .filter_map(|statement| statement.first())
            .find(|cmd| !KNOWN_STATEMENTS.contains(&cmd.as_str()))
        {
            // Like CreateProcess of a program that does not exist.
            return Err(HcsError::with_document(
                Hresult::from_win32(win32::FILE_NOT_FOUND),
                &format!(r#"{{"ErrorMessage":"no program {unknown:?}"}}"#),
            ));
        }
        let pid = self.inner.next_pid.fetch_add(4, Ordering::SeqCst);
        let image = args.first().cloned().unwrap_or_default();

        let (stdin_ours, stdin_theirs) = pipe(params.create_std_in_pipe);
        let (stdout_ours, stdout_theirs) = pipe(params.create_std_out_pipe);
        let (stderr_ours, stderr_theirs) =
            pipe(params.create_std_err_pipe && !params.emulate_console);

        let (kill, _) = watch::channel(None);
        let (stdin_closed, _) = watch::channel(false);
        let (exit, _) = watch::channel(None);
        let process = Arc::new(Process {
            pid,
            system_id: system.id.clone(),
            image,
            parameters: params.clone(),
            kill,
            stdin_closed,
            console_size: Mutex::new(params.console_size),
            signals: Mutex::new(Vec::new()),
            exit,
            silent: AtomicBool::new(false),
            system_exit: system.exit.subscribe(),
        });
        lock(&system.processes).insert(pid, process.clone());

        let io = ProgramIo {
            stdin: stdin_ours,
            stdout: stdout_ours,
            stderr: stderr_ours,
            console: params.emulate_console,
        };
        let last_wait_result = self.last_wait_result(&system.id);
        let runner = process.clone();
        tokio::spawn(async move {
            let mut kill = runner.kill.subscribe();
            let mut stdin_closed = runner.stdin_closed.subscribe();
            let code = tokio::select! {
                code = run_program(&args, io, &mut stdin_closed) => code,
                code = kill.wait_for(Option::is_some) => {
                    code.ok().and_then(|c| *c).unwrap_or(TERMINATED_EXIT)
                }
            };
            runner.exit.send_replace(Some(ProcessExit {
                process_id: runner.pid,
                exited: true,
                exit_code: code,
                last_wait_result,
            }));
        });

        let info = ProcessInfo {
            pid,
            stdin: stdin_theirs.map(|s| Box::pin(s) as libctd_core::StdinStream),
            stdout: stdout_theirs.map(|s| Box::pin(s) as libctd_core::OutputStream),
            stderr: stderr_theirs.map(|s| Box::pin(s) as libctd_core::OutputStream),
        };
        Ok((
            SimProcess {
                process,
                closed: Arc::new(AtomicBool::new(false)),
            },
            info,
        ))
    }

    async fn open_process(&self, handle: &SimSystem, pid: u32) -> HcsResult<SimProcess> {
        self.gate(HcsOp::OpenProcess, &handle.system.id).await?;
        self.check_open(handle)?;
        let process = lock(&handle.system.processes)
            .get(&pid)
            .cloned()
            .ok_or_else(|| HcsError::new(Hresult::from_win32(win32::NOT_FOUND)))?;
        Ok(SimProcess {
            process,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn signal_process(&self, handle: &SimProcess, options: &str) -> HcsResult<()> {
        let pending = self
            .gate(HcsOp::SignalProcess, &handle.process.system_id)
            .await?;
        check_live_process(handle)?;
        let options: SignalProcessOptions = serde_json::from_str(options)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        if !matches!(
            options.signal.as_str(),
            "CtrlC" | "CtrlBreak" | "CtrlClose" | "CtrlLogOff" | "CtrlShutdown"
        ) {
            return Err(HcsError::new(Hresult::from_win32(win32::INVALID_DATA)));
        }
        lock(&handle.process.signals).push(options.signal);
        end_process(handle, CONTROL_C_EXIT)?;
        pending.map_or(Ok(()), Err)
    }

    async fn terminate_process(&self, handle: &SimProcess) -> HcsResult<()> {
        let pending = self
            .gate(HcsOp::TerminateProcess, &handle.process.system_id)
            .await?;
        check_live_process(handle)?;
        // Windows' TerminateProcess on a process that exited already fails
        // with ERROR_ACCESS_DENIED, and HCS passes that on (hcsshim ignores it).
        end_process(handle, TERMINATED_EXIT)
            .map_err(|_| HcsError::new(Hresult::from_win32(win32::ACCESS_DENIED)))?;
        pending.map_or(Ok(()), Err)
    }

    async fn modify_process(&self, handle: &SimProcess, request: &str) -> HcsResult<()> {
        self.gate(HcsOp::ModifyProcess, &handle.process.system_id)
            .await?;
        check_live_process(handle)?;
        let request: ModifyProcessRequest = serde_json::from_str(request)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        if handle.process.exit.borrow().is_some() {
            return Err(HcsError::new(hr::PROCESS_ALREADY_STOPPED));
        }
        match (
            request.operation.as_str(),
            request.console_size,
            request.close_handle,
        ) {
            ("ConsoleSize", Some(size), _) => {
                if !handle.process.parameters.emulate_console {
                    return Err(HcsError::new(Hresult::from_win32(win32::INVALID_HANDLE)));
                }
                *lock(&handle.process.console_size) = Some([size.height, size.width]);
                Ok(())
            }
            ("CloseHandle", _, Some(h)) if h.handle == "StdIn" => {
                handle.process.stdin_closed.send_replace(true);
                Ok(())
            }
            _ => Err(HcsError::new(hr::INVALID_JSON)),
        }
    }

    async fn get_process_properties(&self, handle: &SimProcess, query: &str) -> HcsResult<String> {
        self.gate(HcsOp::GetProcessProperties, &handle.process.system_id)
            .await?;
        check_live_process(handle)?;
        serde_json::from_str::<PropertyQuery>(query)
            .map_err(|e| HcsError::with_document(hr::INVALID_JSON, &e.to_string()))?;
        let exit = *handle.process.exit.borrow();
        Ok(serde_json::json!({
            "ProcessId": handle.process.pid,
            "Exited": exit.is_some(),
            "ExitCode": exit.map_or(0, |e| e.exit_code),
        })
        .to_string())
    }

    async fn wait_process_exit(&self, handle: &SimProcess) -> HcsResult<ProcessExit> {
        self.gate(HcsOp::WaitForProcessExit, &handle.process.system_id)
            .await?;
        check_process(handle)?;
        let mut rx = handle.process.exit.subscribe();
        let exit = *rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| HcsError::new(hr::SERVICE_DISCONNECT))?;
        if handle.process.silent.load(Ordering::SeqCst) {
            // Its system died: HCS sends no ProcessExited for it.
            std::future::pending::<()>().await;
        }
        let held = self
            .state()
            .held_notices
            .get(&handle.process.system_id)
            .map(watch::Sender::subscribe);
        if let Some(mut released) = held {
            // The sender lives in the state: the wait ends only on release.
            let _ = released.wait_for(|r| *r).await;
        }
        exit.ok_or_else(|| HcsError::new(hr::SERVICE_DISCONNECT))
    }

    async fn close_process(&self, handle: &SimProcess) -> HcsResult<()> {
        self.gate(HcsOp::CloseProcess, &handle.process.system_id)
            .await?;
        if handle.closed.swap(true, Ordering::SeqCst) {
            return Err(invalid_handle());
        }
        Ok(())
    }

    fn name_to_guid(&self, name: &str) -> HcsResult<String> {
        Ok(name_to_guid(name))
    }

    fn host_cpu_count(&self) -> u32 {
        self.state().host_cpus.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1)
        })
    }

    fn has_utility_vm(&self, layer_folder: &str) -> bool {
        self.state().utility_vm_layers.contains(layer_folder)
    }
}

fn check_process(handle: &SimProcess) -> HcsResult<()> {
    if handle.closed.load(Ordering::SeqCst) {
        Err(invalid_handle())
    } else {
        Ok(())
    }
}

/// A call on a process: refused on a closed handle, and with
/// HCS_E_INVALID_STATE on a process whose compute system has exited
/// (hcsshim releases the process's wait on it).
fn check_live_process(handle: &SimProcess) -> HcsResult<()> {
    check_process(handle)?;
    if handle.process.system_exit.borrow().is_some() {
        Err(HcsError::new(hr::INVALID_STATE))
    } else {
        Ok(())
    }
}

fn end_process(handle: &SimProcess, code: u32) -> HcsResult<()> {
    let sent = handle.process.kill.send_if_modified(|k| {
        if k.is_none() && handle.process.exit.borrow().is_none() {
            *k = Some(code);
            true
        } else {
            false
        }
    });
    if sent {
        Ok(())
    } else {
        Err(HcsError::new(hr::PROCESS_ALREADY_STOPPED))
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

fn pipe(wanted: bool) -> (Option<DuplexStream>, Option<DuplexStream>) {
    if wanted {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (Some(a), Some(b))
    } else {
        (None, None)
    }
}

struct ProgramIo {
    stdin: Option<DuplexStream>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    console: bool,
}

async fn write_all(stream: &mut Option<DuplexStream>, data: &[u8]) {
    if let Some(s) = stream.as_mut() {
        // A reader that went away is a closed pipe: the output is lost.
        if s.write_all(data).await.is_err() {
            *stream = None;
        }
    }
}

/// Runs a script and returns its exit code. The streams are dropped (closed)
/// when it returns.
async fn run_program(
    args: &[String],
    mut io: ProgramIo,
    stdin_closed: &mut watch::Receiver<bool>,
) -> u32 {
    for statement in args.split(|a| a == ";") {
        let Some((cmd, rest)) = statement.split_first() else {
            continue;
        };
        match cmd.as_str() {
            "exit" => {
                let Some(arg) = rest.first() else {
                    return 0;
                };
                if let Some(code) = parse_code(arg) {
                    return code;
                }
                let msg = format!("sim: bad exit code {arg:?}\n");
                write_err(&mut io, msg.as_bytes()).await;
                return UNKNOWN_COMMAND_EXIT;
            }
            "echo" => {
                let line = format!("{}\n", rest.join(" "));
                write_all(&mut io.stdout, line.as_bytes()).await;
            }
            "echoerr" => {
                let line = format!("{}\n", rest.join(" "));
                write_err(&mut io, line.as_bytes()).await;
            }
            "print" => {
                write_all(&mut io.stdout, rest.join(" ").as_bytes()).await;
            }
            "printerr" => {
                write_err(&mut io, rest.join(" ").as_bytes()).await;
            }
            "bytes" => {
                let Some(n) = rest.first().and_then(|n| n.parse::<usize>().ok()) else {
                    write_err(&mut io, b"sim: bytes needs a count\n").await;
                    return UNKNOWN_COMMAND_EXIT;
                };
                let chunk: Vec<u8> = (0..8192u32).map(|i| b'a' + (i % 26) as u8).collect();
                let mut left = n;
                while left > 0 && io.stdout.is_some() {
                    let k = left.min(chunk.len());
                    write_all(&mut io.stdout, &chunk[..k]).await;
                    left -= k;
                }
            }
            "cat" => cat(&mut io, stdin_closed).await,
            "sleep" => std::future::pending::<()>().await,
            "sleepms" => {
                let ms = rest
                    .first()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            other => {
                let msg =
                    format!("'{other}' is not recognized as an internal or external command\n");
                write_err(&mut io, msg.as_bytes()).await;
                return UNKNOWN_COMMAND_EXIT;
            }
        }
    }
    0
}

fn parse_code(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x") {
        return u32::from_str_radix(hex, 16).ok();
    }
    s.parse::<u32>()
        .ok()
        .or_else(|| s.parse::<i32>().ok().map(|v| v as u32))
}

async fn write_err(io: &mut ProgramIo, data: &[u8]) {
    if io.console {
        write_all(&mut io.stdout, data).await;
    } else {
        write_all(&mut io.stderr, data).await;
    }
}

async fn cat(io: &mut ProgramIo, stdin_closed: &mut watch::Receiver<bool>) {
    let Some(mut stdin) = io.stdin.take() else {
        return;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        if *stdin_closed.borrow() {
            return;
        }
        let n = tokio::select! {
            n = read_some(&mut stdin, &mut buf) => n,
            _ = stdin_closed.wait_for(|c| *c) => return,
        };
        match n {
            Some(0) | None => return,
            Some(n) => write_all(&mut io.stdout, &buf[..n]).await,
        }
    }
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Option<usize> {
    r.read(buf).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const DOC: &str = r#"{"Owner":"t","SchemaVersion":{"Major":2,"Minor":1},"ShouldTerminateOnLastHandleClosed":true}"#;

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
            ("exit seven", "sim: bad exit code \"seven\"\n"),
            ("bytes", "sim: bytes needs a count\n"),
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
