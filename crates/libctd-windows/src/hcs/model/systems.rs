//! Compute systems: their states, and what each call answers in each.
//!
//! ```text
//! Creating -> Created -> Running <-> Paused (Hyper-V only)
//!     \          \          \          \
//!      `----------`----------`----------`--> Stopped (shutdown, terminate,
//!                                              crash, last handle closed)
//! ```
//!
//! A call that needs another state answers HCS_E_INVALID_STATE, or
//! HCS_E_SYSTEM_ALREADY_STOPPED once stopped. A stop ends every process
//! (shutdown: [`CONTROL_C_EXIT`], terminate: [`TERMINATED_EXIT`]) and then
//! publishes `SystemExited`: `GracefulExit`, `ForcedExit` with
//! HCS_E_TERMINATED, or `UnexpectedExit` when it died (then its processes
//! send no `ProcessExited`, as hcsshim reads HCS); a hung HCS (the plan's
//! `LoseExitNotices`) publishes nothing. A utility VM's hosted
//! containers stop with it. The last handle closed terminates the system
//! (`ShouldTerminateOnLastHandleClosed`) and frees its id.

use std::collections::BTreeSet;
use std::time::Instant;

use super::documents::{Configuration, check_configuration, failure};
use super::vm::VmDevices;
use super::{CONTROL_C_EXIT, Model, SystemKey, TERMINATED_EXIT, World, hr};
use crate::error::HcsError;
use crate::hcs::SystemExit;

/// A compute system's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// A compute system.
#[derive(Debug)]
pub(super) struct System {
    pub(super) id: String,
    pub(super) document: String,
    pub(super) config: Configuration,
    /// A utility VM's devices.
    pub(super) devices: VmDevices,
    pub(super) status: Status,
    pub(super) started: Option<Instant>,
    pub(super) pids: BTreeSet<u32>,
    pub(super) handles: u32,
    pub(super) exit: Option<SystemExit>,
    /// ProcessExited notices held back (the plan's `HoldExitNotices`).
    pub(super) held: Vec<u32>,
    /// The held notices were released: none is held any more.
    pub(super) released: bool,
}

/// How a system is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// HcsShutDownComputeSystem.
    Shutdown,
    /// HcsTerminateComputeSystem.
    Terminate,
}

/// A failure naming the state that refused the call.
fn refused(status: Status) -> HcsError {
    if status == Status::Stopped {
        failure(hr::ALREADY_STOPPED, "the compute system has stopped")
    } else {
        failure(
            hr::INVALID_STATE,
            &format!("the compute system is {status:?}"),
        )
    }
}

impl World {
    /// Stops `key`: its processes are told to end with `code`, then `exit`
    /// is published; hosted containers follow. False when stopped already.
    pub(super) fn stop_system(&mut self, key: SystemKey, code: u32, exit: SystemExit) -> bool {
        let Some(system) = self.systems.get_mut(&key) else {
            return false;
        };
        if system.status == Status::Stopped {
            return false;
        }
        system.status = Status::Stopped;
        // A hung HCS (`LoseExitNotices`) stops it and never says so.
        let publish = !self.plans.flag(&system.id, |plan| plan.lose_exit_notices);
        if publish {
            system.exit = Some(exit.clone());
        }
        let id = system.id.clone();
        let pids: Vec<u32> = system.pids.iter().copied().collect();
        for pid in pids {
            if let Some(p) = self.processes.get_mut(&pid) {
                p.request_kill(code);
            }
        }
        if publish {
            self.outbox
                .push(super::Notice::SystemExited(key, exit.clone()));
        }
        let hosted: Vec<SystemKey> = self
            .systems
            .iter()
            .filter(|(_, s)| s.config.hosted_by.as_deref() == Some(id.as_str()))
            .map(|(k, _)| *k)
            .collect();
        for h in hosted {
            self.stop_system(h, code, exit.clone());
        }
        true
    }

    /// Frees `key`'s id, if it still names it.
    fn unregister(&mut self, key: SystemKey) {
        let id = self.systems.get(&key).map(|s| s.id.clone());
        if let Some(id) = id
            && self.ids.get(&id) == Some(&key)
        {
            self.ids.remove(&id);
        }
    }
}

impl Model {
    /// HcsCreateComputeSystem's first half: the id is taken (or
    /// HCS_E_SYSTEM_ALREADY_EXISTS) and a handle is open on it.
    pub fn begin_create(&self, id: &str) -> Result<SystemKey, HcsError> {
        self.with(|w| {
            if w.ids.contains_key(id) {
                return Err(HcsError::new(hr::ALREADY_EXISTS));
            }
            w.next_key += 1;
            let key = SystemKey(w.next_key);
            w.ids.insert(id.to_owned(), key);
            w.systems.insert(
                key,
                System {
                    id: id.to_owned(),
                    document: String::new(),
                    config: Configuration::default(),
                    devices: VmDevices::default(),
                    status: Status::Creating,
                    started: None,
                    pids: BTreeSet::new(),
                    handles: 1,
                    exit: None,
                    held: Vec::new(),
                    released: false,
                },
            );
            Ok(key)
        })
    }

    /// HcsCreateComputeSystem's operation: checks the configuration
    /// (and a hosted container's utility VM: it must run and share every
    /// layer). On failure the system is gone (its handle stays open).
    pub fn finish_create(&self, key: SystemKey, configuration: &str) -> Result<(), HcsError> {
        self.with(|w| {
            let checked = check_configuration(configuration).and_then(|config| {
                if let Some(host) = &config.hosted_by {
                    let host = w
                        .ids
                        .get(host)
                        .and_then(|k| w.systems.get(k))
                        .ok_or_else(|| {
                            failure(hr::SYSTEM_NOT_FOUND, &format!("no utility VM {host:?}"))
                        })?;
                    if host.status != Status::Running {
                        return Err(failure(
                            hr::INVALID_STATE,
                            &format!("the utility VM {:?} is not running", host.id),
                        ));
                    }
                    for path in &config.layers {
                        host.devices.check_share_path(path)?;
                    }
                    if !host.devices.combined.contains(&config.root) {
                        return Err(failure(
                            hr::NOT_FOUND,
                            &format!(
                                "Storage.Path {:?} is no combined container root in the utility VM",
                                config.root
                            ),
                        ));
                    }
                }
                if config.vm {
                    let id = &w.system(key)?.id;
                    if !w.granted(id, &config.boot_disk) {
                        return Err(failure(
                            hr::ACCESS_DENIED,
                            &format!(
                                "the utility VM may not read its disk {:?} (no HcsGrantVmAccess)",
                                config.boot_disk
                            ),
                        ));
                    }
                }
                Ok(config)
            });
            let system = w.system_mut(key)?;
            match checked {
                Ok(config) => {
                    system.devices.shares = config.shares.iter().cloned().collect();
                    system.config = config;
                    system.document = configuration.to_owned();
                    if system.status == Status::Creating {
                        system.status = Status::Created;
                    }
                    Ok(())
                }
                Err(e) => {
                    system.status = Status::Stopped;
                    w.unregister(key);
                    Err(e)
                }
            }
        })
    }

    /// A create that failed or was cancelled before its operation ran.
    pub fn abandon_create(&self, key: SystemKey) {
        self.with(|w| {
            if let Some(s) = w.systems.get_mut(&key) {
                s.status = Status::Stopped;
            }
            w.unregister(key);
        });
    }

    /// Both halves of HcsCreateComputeSystem.
    pub fn create_system(&self, id: &str, configuration: &str) -> Result<SystemKey, HcsError> {
        let key = self.begin_create(id)?;
        self.finish_create(key, configuration).map(|()| key)
    }

    /// HcsOpenComputeSystem: another handle on `id`.
    pub fn open_system(&self, id: &str) -> Result<SystemKey, HcsError> {
        self.with(|w| {
            let key = *w
                .ids
                .get(id)
                .ok_or_else(|| HcsError::new(hr::SYSTEM_NOT_FOUND))?;
            w.system_mut(key)?.handles += 1;
            Ok(key)
        })
    }

    /// HcsCloseComputeSystem: the last handle terminates the system and
    /// frees its id.
    pub fn close_system(&self, key: SystemKey) {
        self.with(|w| {
            let Some(s) = w.systems.get_mut(&key) else {
                return;
            };
            s.handles = s.handles.saturating_sub(1);
            if s.handles == 0 {
                w.stop_system(key, TERMINATED_EXIT, SystemExit::forced());
                w.unregister(key);
            }
        });
    }

    /// Moves `key` from `from` to `to`.
    fn transition(&self, key: SystemKey, from: Status, to: Status) -> Result<(), HcsError> {
        self.with(|w| {
            let s = w.system_mut(key)?;
            if s.status != from {
                return Err(refused(s.status));
            }
            s.status = to;
            if to == Status::Running && s.started.is_none() {
                s.started = Some(Instant::now());
            }
            Ok(())
        })
    }

    /// HcsStartComputeSystem.
    pub fn start(&self, key: SystemKey) -> Result<(), HcsError> {
        self.transition(key, Status::Created, Status::Running)
    }

    /// HcsPauseComputeSystem: Hyper-V isolated systems only.
    pub fn pause(&self, key: SystemKey) -> Result<(), HcsError> {
        if !self.read(|w| w.system(key).map(|s| s.config.hyperv))? {
            return Err(failure(
                hr::NOT_SUPPORTED,
                "only Hyper-V isolated compute systems pause",
            ));
        }
        self.transition(key, Status::Running, Status::Paused)
    }

    /// HcsResumeComputeSystem.
    pub fn resume(&self, key: SystemKey) -> Result<(), HcsError> {
        self.transition(key, Status::Paused, Status::Running)
    }

    /// HcsShutDownComputeSystem / HcsTerminateComputeSystem: the exit is
    /// `UnexpectedExit` when the plan says so.
    pub fn stop(&self, key: SystemKey, how: Stop) -> Result<(), HcsError> {
        self.with(|w| {
            let id = w.system(key)?.id.clone();
            let (code, exit) = if w.plans.flag(&id, |p| p.unexpected_exit_on_shutdown) {
                (TERMINATED_EXIT, SystemExit::unexpected())
            } else if how == Stop::Shutdown {
                (CONTROL_C_EXIT, SystemExit::clean("GracefulExit"))
            } else {
                (TERMINATED_EXIT, SystemExit::forced())
            };
            if w.stop_system(key, code, exit) {
                Ok(())
            } else {
                Err(failure(
                    hr::ALREADY_STOPPED,
                    "the compute system has stopped",
                ))
            }
        })
    }

    /// Makes compute system `id` die, as HCS reports it: `UnexpectedExit`,
    /// and no ProcessExited for its processes. False when it is gone or
    /// stopped already.
    pub fn crash(&self, id: &str) -> bool {
        self.with(|w| {
            let Some(key) = w.ids.get(id).copied() else {
                return false;
            };
            let pids: Vec<u32> = w
                .system(key)
                .map(|s| s.pids.iter().copied().collect())
                .unwrap_or_default();
            for pid in pids {
                if let Some(p) = w.processes.get_mut(&pid) {
                    p.silent = true;
                }
            }
            w.stop_system(key, TERMINATED_EXIT, SystemExit::unexpected())
        })
    }

    /// `SystemExited` of `key`, once published.
    pub fn system_exit(&self, key: SystemKey) -> Option<SystemExit> {
        self.read(|w| w.systems.get(&key).and_then(|s| s.exit.clone()))
    }

    /// The configuration document of compute system `id`.
    pub fn document(&self, id: &str) -> Option<String> {
        self.read(|w| {
            let key = w.ids.get(id)?;
            w.systems.get(key).map(|s| s.document.clone())
        })
    }

    /// Whether compute system `id` is running (or paused).
    pub fn is_running(&self, id: &str) -> bool {
        self.read(|w| {
            w.ids
                .get(id)
                .and_then(|k| w.systems.get(k))
                .is_some_and(|s| matches!(s.status, Status::Running | Status::Paused))
        })
    }
}
