//! One model of the Host Compute Service, for tests: the synchronous state
//! machine of compute systems and processes, the rules of what each call
//! answers in each state, the exit rules, the fault plan, the document
//! checks and the processes' script language, written from hcsshim's
//! description of HCS (its v2 computecore path).
//!
//! It has two faces, which only adapt it: [`sim::Sim`](super::sim::Sim),
//! the [`Hcs`](super::Hcs) trait natively (async calls, in-memory duplex
//! pipes, waits on notifications), and the `computecore.dll` double under
//! Wine (handles, operations completing on threads, real pipes, callbacks,
//! handle-discipline checks). The model never blocks on I/O and never sleeps;
//! the faces run the programs ([`program`]) and wait out the plan's delays
//! ([`faults::Gate`]).
//!
//! All state sits behind one lock. A face learns of exits through its
//! [`Observer`], called after the lock is released: a face must not call
//! the model while holding a lock its observer takes.
//!
//! | file            | concern                                                     |
//! |-----------------|-------------------------------------------------------------|
//! | `systems.rs`    | compute system states, transitions, stops, handles          |
//! | `processes.rs`  | processes: create, signal, terminate, modify, their end     |
//! | `notices.rs`    | ProcessExited: sent, held, released, never (dead system),   |
//! |                 | or lost (a hung HCS, which loses SystemExited too)          |
//! | `properties.rs` | property queries                                            |
//! | `documents.rs`  | what a configuration needs to boot                          |
//! | `vm.rs`         | utility VMs' devices, disk access grants, the sim's files   |
//! | `network.rs`    | HNS namespaces and endpoints (computenetwork.dll)           |
//! | `faults.rs`     | the fault plan                                              |
//! | `program.rs`    | the processes' script language                              |
//!
//! # Where the two former models disagreed
//!
//! The simulation and the double each had their own rules until they
//! shared this model; where they differed, hcsshim's reading decided, or
//! (where hcsshim says nothing) the choice below, an assumption:
//!
//! - Documents are checked as HCS needs them to boot, for both faces:
//!   schema 2, strict decoding, `Container.Storage.Path`, a utility VM's
//!   boot disk (granted to it), HvSocket and `os` share, a hosted container
//!   as `HostingSystemId` + `HostedSystem` whose layers are its utility VM's
//!   shares and whose root is combined there (hcsshim's form; an earlier
//!   reading of this model refused `HostedSystem`, wrongly).
//! - A container hosted by a utility VM is Hyper-V isolated: it pauses.
//! - Only an *exited* process refuses a terminate (ERROR_ACCESS_DENIED, as
//!   Windows' `TerminateProcess`); a second terminate of a process still
//!   ending succeeds, its first code kept.
//! - An unknown signal is ERROR_INVALID_DATA (hcsshim checks signals
//!   before asking HCS, so HCS's own answer is not known).
//! - `UnexpectedExitOnShutdown` holds for every stop of the system, not
//!   only the next one (a system stops once).
//! - A terminate or signal of a process whose create is still in flight
//!   is kept and ends it when it starts.

mod documents;
pub mod faults;
mod network;
mod notices;
mod processes;
pub mod program;
mod properties;
mod systems;
#[cfg(test)]
mod tests;
mod vm;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{ProcessExit, SystemExit};
use crate::error::HcsError;

pub use faults::{Gate, Plan};
pub use processes::{Control, Spawn};
pub use program::{Program, Step, Stream};
pub use systems::Stop;
pub use vm::{FILE_EXISTS, FILE_NOT_FOUND};

/// The exit code of a process ended by a console control signal
/// (`STATUS_CONTROL_C_EXIT`), and of a shutdown's processes.
pub const CONTROL_C_EXIT: u32 = 0xC000_013A;
/// The exit code of a terminated process.
pub const TERMINATED_EXIT: u32 = 1;
pub use program::UNKNOWN_COMMAND_EXIT;

/// The HRESULTs the model answers with, by HCS's encodings.
pub mod hr {
    use crate::error::codes::*;
    use crate::error::{Hresult, win32};

    /// HCS_E_INVALID_STATE.
    pub const INVALID_STATE: Hresult = HCS_E_INVALID_STATE.v1();
    /// HCS_E_INVALID_JSON.
    pub const INVALID_JSON: Hresult = HCS_E_INVALID_JSON.v1();
    /// HCS_E_SYSTEM_NOT_FOUND.
    pub const SYSTEM_NOT_FOUND: Hresult = HCS_E_SYSTEM_NOT_FOUND.v1();
    /// HCS_E_SYSTEM_ALREADY_STOPPED.
    pub const ALREADY_STOPPED: Hresult = HCS_E_SYSTEM_ALREADY_STOPPED.v1();
    /// HCS_E_PROCESS_ALREADY_STOPPED.
    pub const PROCESS_ALREADY_STOPPED: Hresult = HCS_E_PROCESS_ALREADY_STOPPED;
    /// HCS_E_SERVICE_DISCONNECT.
    pub const SERVICE_DISCONNECT: Hresult = HCS_E_SERVICE_DISCONNECT;
    /// HCS_E_SYSTEM_ALREADY_EXISTS (HCS's own code, not Win32's).
    pub const ALREADY_EXISTS: Hresult = HCS_E_SYSTEM_ALREADY_EXISTS;
    /// HCS_E_OPERATION_PENDING.
    pub const PENDING: Hresult = HCS_E_OPERATION_PENDING;
    /// HCS_E_PROCESS_INFO_NOT_AVAILABLE.
    pub const PROCESS_INFO_NOT_AVAILABLE: Hresult = HCS_E_PROCESS_INFO_NOT_AVAILABLE;
    /// ERROR_NOT_FOUND.
    pub const NOT_FOUND: Hresult = Hresult::from_win32(win32::NOT_FOUND);
    /// ERROR_NOT_SUPPORTED.
    pub const NOT_SUPPORTED: Hresult = Hresult::from_win32(win32::NOT_SUPPORTED);
    /// ERROR_INVALID_HANDLE (E_HANDLE).
    pub const INVALID_HANDLE: Hresult = Hresult::from_win32(win32::INVALID_HANDLE);
    /// ERROR_ACCESS_DENIED.
    pub const ACCESS_DENIED: Hresult = Hresult::from_win32(win32::ACCESS_DENIED);
    /// ERROR_INVALID_DATA.
    pub const INVALID_DATA: Hresult = Hresult::from_win32(win32::INVALID_DATA);
}

/// A compute system of the model; ids are reused, keys are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemKey(u64);

/// A notification a face delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `SystemExited` of a compute system.
    SystemExited(SystemKey, SystemExit),
    /// `ProcessExited` of process `pid`.
    ProcessExited(u32, ProcessExit),
}

/// How a face learns what changed.
pub trait Observer: Send + Sync {
    /// A notification to deliver (called without the model's lock).
    fn notice(&self, notice: Notice);
    /// Something changed (a kill, stdin closed, an exit): wake waiters.
    fn changed(&self) {}
}

/// The model: every compute system and process, the fault plan, the calls.
pub struct Model {
    world: Mutex<World>,
    changed: Condvar,
    observer: Box<dyn Observer>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("systems", &self.compute_systems())
            .finish()
    }
}

/// Everything the model knows, behind its lock.
#[derive(Default)]
struct World {
    next_key: u64,
    next_pid: u32,
    /// The compute systems that exist, by id.
    ids: HashMap<String, SystemKey>,
    /// Every compute system ever created (for handles still held).
    systems: HashMap<SystemKey, systems::System>,
    /// Every process ever created.
    processes: HashMap<u32, processes::Process>,
    plans: faults::Plans,
    calls: Vec<(String, String)>,
    /// Notices to deliver once the lock is released.
    outbox: Vec<Notice>,
    /// Access to disk files granted to VMs: (VM id, file).
    grants: BTreeSet<(String, String)>,
    /// The simulation's host files.
    files: BTreeSet<String>,
    /// HNS endpoints that exist.
    endpoints: BTreeSet<String>,
    /// HNS namespaces by id, with their endpoints.
    namespaces: std::collections::BTreeMap<String, Vec<String>>,
    next_namespace: u64,
}

impl World {
    fn system(&self, key: SystemKey) -> Result<&systems::System, HcsError> {
        self.systems
            .get(&key)
            .ok_or_else(|| HcsError::new(hr::SYSTEM_NOT_FOUND))
    }

    fn system_mut(&mut self, key: SystemKey) -> Result<&mut systems::System, HcsError> {
        self.systems
            .get_mut(&key)
            .ok_or_else(|| HcsError::new(hr::SYSTEM_NOT_FOUND))
    }

    fn process(&self, pid: u32) -> Result<&processes::Process, HcsError> {
        self.processes
            .get(&pid)
            .ok_or_else(|| HcsError::new(hr::NOT_FOUND))
    }
}

impl Model {
    /// An empty model reporting to `observer`.
    pub fn new(observer: Box<dyn Observer>) -> Self {
        Self {
            world: Mutex::new(World {
                next_pid: 1000,
                ..World::default()
            }),
            changed: Condvar::new(),
            observer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the world, then delivers its notices and wakes waiters.
    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let (value, notices) = {
            let mut world = self.lock();
            let value = f(&mut world);
            (value, std::mem::take(&mut world.outbox))
        };
        self.changed.notify_all();
        for notice in notices {
            self.observer.notice(notice);
        }
        self.observer.changed();
        value
    }

    /// Reads the world.
    fn read<T>(&self, f: impl FnOnce(&World) -> T) -> T {
        f(&self.lock())
    }

    /// Blocks the calling thread until process `pid`'s control state
    /// satisfies `done` or `timeout` passes (for faces that run programs
    /// on threads); gives the state it saw last.
    pub fn wait_process(
        &self,
        pid: u32,
        timeout: Option<Duration>,
        done: impl Fn(Control) -> bool,
    ) -> Control {
        let control = |w: &World| {
            w.processes
                .get(&pid)
                .map(|p| p.control())
                .unwrap_or_default()
        };
        let world = self.lock();
        let pending = |w: &mut World| !done(control(w));
        let world = match timeout {
            None => self
                .changed
                .wait_while(world, pending)
                .unwrap_or_else(PoisonError::into_inner),
            Some(t) => {
                self.changed
                    .wait_timeout_while(world, t, pending)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        control(&world)
    }

    // ---- the fault plan ----

    /// Records call `op` on `system` and gives the plan's effect on it;
    /// fails at once while the plan disconnects the service.
    pub fn gate(&self, op: &str, system: &str) -> Result<Gate, HcsError> {
        self.with(|w| {
            w.calls.push((op.to_owned(), system.to_owned()));
            if w.plans.flag(system, |p| p.disconnected) {
                return Err(HcsError::new(hr::SERVICE_DISCONNECT));
            }
            Ok(w.plans.gate(op, system))
        })
    }

    /// Edits the plan of `system` (`None`: of every system).
    pub fn edit_plan(&self, system: Option<&str>, edit: impl FnOnce(&mut Plan)) {
        self.with(|w| edit(w.plans.edit(system)));
    }

    /// Replaces the plan of `system`.
    pub fn set_plan(&self, system: &str, plan: Plan) {
        self.with(|w| w.plans.set(system, plan));
    }

    /// Removes every failure and delay of every plan.
    pub fn clear_faults(&self) {
        self.with(|w| w.plans.clear_faults());
    }

    /// Whether `system`'s plan (or the plan of all) sets `flag`.
    pub fn plan_flag(&self, system: &str, flag: impl Fn(&Plan) -> bool) -> bool {
        self.read(|w| w.plans.flag(system, flag))
    }

    // ---- observing ----

    /// The ids of the compute systems that exist.
    pub fn compute_systems(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.read(|w| w.ids.keys().cloned().collect());
        ids.sort();
        ids
    }

    /// Every call gated so far: (operation name, compute system id).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.read(|w| w.calls.clone())
    }
}

/// A failure's result document, as HCS returns it with the HRESULT:
/// `{"Error","ErrorMessage","ErrorEvents"}`.
pub fn result_document(err: &HcsError) -> String {
    let mut events: Vec<&str> = err.detail.iter().map(String::as_str).collect();
    events.extend(err.events.iter().map(String::as_str));
    serde_json::json!({
        "Error": err.hresult.0 as i32,
        "ErrorMessage": err.text(),
        "ErrorEvents": events.iter().map(|m| serde_json::json!({"Message": m})).collect::<Vec<_>>(),
    })
    .to_string()
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
