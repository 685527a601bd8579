//! Processes: created in a running compute system, ended by their script,
//! a signal, a terminate or their system's stop.
//!
//! Rules, as hcsshim reads HCS: a call on a process whose compute system
//! has exited answers HCS_E_INVALID_STATE (hcsshim then releases the
//! process's wait itself); terminating a process that exited answers
//! ERROR_ACCESS_DENIED (Windows' `TerminateProcess`); signalling or
//! modifying one answers HCS_E_PROCESS_ALREADY_STOPPED. An end requested
//! twice keeps the first code.

use super::documents::failure;
use super::program::Program;
use super::{CONTROL_C_EXIT, Model, SystemKey, TERMINATED_EXIT, World, hr, systems::Status};
use crate::error::HcsError;
use crate::hcs::ProcessExit;
use crate::schema::{ModifyProcessRequest, ProcessParameters, PropertyQuery, SignalProcessOptions};

/// A process.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) pid: u32,
    pub(super) system: SystemKey,
    pub(super) image: String,
    pub(super) parameters: ProcessParameters,
    /// The code it was asked to end with (first request wins).
    pub(super) kill: Option<u32>,
    pub(super) stdin_closed: bool,
    pub(super) console_size: Option<[u16; 2]>,
    pub(super) signals: Vec<String>,
    /// Its end, once it ended.
    pub(super) exit: Option<ProcessExit>,
    /// Its ProcessExited notification, once sent.
    pub(super) notice: Option<ProcessExit>,
    /// Its compute system died: it sends no ProcessExited.
    pub(super) silent: bool,
    /// It ran (a failed create leaves a process that never started).
    pub(super) started: bool,
}

/// What a running program's face watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Control {
    /// The code the process was asked to end with.
    pub kill: Option<u32>,
    /// Its stdin was closed with a `CloseHandle` request.
    pub stdin_closed: bool,
}

/// A process the face now runs: its program and the pipes it asked for.
#[derive(Debug)]
pub struct Spawn {
    /// Its pid.
    pub pid: u32,
    /// Its script.
    pub program: Program,
    /// A stdin pipe was asked for.
    pub stdin: bool,
    /// A stdout pipe was asked for.
    pub stdout: bool,
    /// A stderr pipe was asked for (never with a console).
    pub stderr: bool,
    /// It runs on a console: its stderr goes to stdout.
    pub console: bool,
}

impl Process {
    /// A process being created.
    fn reserved(pid: u32, system: SystemKey) -> Self {
        Self {
            pid,
            system,
            image: String::new(),
            parameters: ProcessParameters::default(),
            kill: None,
            stdin_closed: false,
            console_size: None,
            signals: Vec::new(),
            exit: None,
            notice: None,
            silent: false,
            started: false,
        }
    }

    /// Asks it to end with `code`, unless it ended or was asked before.
    pub(super) fn request_kill(&mut self, code: u32) -> bool {
        if self.exit.is_some() || self.kill.is_some() {
            return false;
        }
        self.kill = Some(code);
        true
    }

    pub(super) fn control(&self) -> Control {
        Control {
            kill: self.kill,
            stdin_closed: self.stdin_closed,
        }
    }
}

impl World {
    /// Process `pid`, if its compute system has not exited.
    fn live(&mut self, pid: u32) -> Result<&mut Process, HcsError> {
        let system = self.process(pid)?.system;
        if self.system(system)?.status == Status::Stopped {
            return Err(failure(hr::INVALID_STATE, "the compute system has exited"));
        }
        self.processes
            .get_mut(&pid)
            .ok_or_else(|| HcsError::new(hr::NOT_FOUND))
    }
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, HcsError> {
    serde_json::from_str(text).map_err(|e| failure(hr::INVALID_JSON, &e.to_string()))
}

impl Model {
    /// A new process of `key`, being created: a face may hand out its
    /// handle before HcsCreateProcess's operation runs. A terminate or
    /// signal meanwhile is kept, and ends it as soon as it starts.
    pub fn reserve_process(&self, key: SystemKey) -> u32 {
        self.with(|w| {
            w.next_pid += 4;
            let pid = w.next_pid;
            w.processes.insert(pid, Process::reserved(pid, key));
            pid
        })
    }

    /// HcsCreateProcess: the process `pid` of `key` runs its script.
    pub fn create_process(
        &self,
        key: SystemKey,
        pid: u32,
        parameters: &str,
    ) -> Result<Spawn, HcsError> {
        let params: ProcessParameters = json(parameters)?;
        self.with(|w| {
            if w.system(key)?.status != Status::Running {
                return Err(failure(
                    hr::INVALID_STATE,
                    "the compute system is not running",
                ));
            }
            let program = Program::parse(&params.command_line)?;
            let console = params.emulate_console;
            let spawn = Spawn {
                pid,
                program,
                stdin: params.create_std_in_pipe,
                stdout: params.create_std_out_pipe,
                stderr: params.create_std_err_pipe && !console,
                console,
            };
            w.system_mut(key)?.pids.insert(pid);
            let process = w
                .processes
                .entry(pid)
                .or_insert_with(|| Process::reserved(pid, key));
            process.image = Program::image(&params.command_line);
            process.console_size = params.console_size;
            process.parameters = params;
            process.started = true;
            Ok(spawn)
        })
    }

    /// A process whose create failed or was cancelled: it never started,
    /// and answers as one that ended.
    pub fn abandon_process(&self, key: SystemKey, pid: u32) {
        self.with(|w| {
            let process = w
                .processes
                .entry(pid)
                .or_insert_with(|| Process::reserved(pid, key));
            if !process.started {
                process.silent = true;
                process.exit = Some(ProcessExit {
                    process_id: pid,
                    exited: true,
                    exit_code: TERMINATED_EXIT,
                    last_wait_result: 0,
                });
            }
        });
    }

    /// HcsOpenProcess: process `pid` of `key`, or ERROR_NOT_FOUND.
    pub fn open_process(&self, key: SystemKey, pid: u32) -> Result<(), HcsError> {
        self.read(|w| {
            if w.system(key)?.pids.contains(&pid) {
                Ok(())
            } else {
                Err(HcsError::new(hr::NOT_FOUND))
            }
        })
    }

    /// Whether process `pid` started (and was not only reserved).
    pub fn process_started(&self, pid: u32) -> bool {
        self.read(|w| w.processes.get(&pid).is_some_and(|p| p.started))
    }

    /// HcsSignalProcess: a console control signal ends the process with
    /// [`CONTROL_C_EXIT`]; an unknown one is ERROR_INVALID_DATA.
    pub fn signal_process(&self, pid: u32, options: &str) -> Result<(), HcsError> {
        self.with(|w| {
            let p = w.live(pid)?;
            let options: SignalProcessOptions = json(options)?;
            if !matches!(
                options.signal.as_str(),
                "CtrlC" | "CtrlBreak" | "CtrlClose" | "CtrlLogOff" | "CtrlShutdown"
            ) {
                return Err(failure(hr::INVALID_DATA, "unknown signal"));
            }
            if p.exit.is_some() {
                return Err(failure(
                    hr::PROCESS_ALREADY_STOPPED,
                    "the process has exited",
                ));
            }
            p.signals.push(options.signal);
            p.request_kill(CONTROL_C_EXIT);
            Ok(())
        })
    }

    /// HcsTerminateProcess: ERROR_ACCESS_DENIED once it exited.
    pub fn terminate_process(&self, pid: u32) -> Result<(), HcsError> {
        self.with(|w| {
            let p = w.live(pid)?;
            if p.exit.is_some() {
                return Err(failure(hr::ACCESS_DENIED, "the process has exited"));
            }
            p.request_kill(TERMINATED_EXIT);
            Ok(())
        })
    }

    /// HcsModifyProcess: resize the console, or close stdin.
    pub fn modify_process(&self, pid: u32, request: &str) -> Result<(), HcsError> {
        self.with(|w| {
            let p = w.live(pid)?;
            let request: ModifyProcessRequest = json(request)?;
            if p.exit.is_some() {
                return Err(failure(
                    hr::PROCESS_ALREADY_STOPPED,
                    "the process has exited",
                ));
            }
            match (
                request.operation.as_str(),
                request.console_size,
                request.close_handle,
            ) {
                ("ConsoleSize", Some(size), _) => {
                    if !p.parameters.emulate_console {
                        return Err(failure(hr::INVALID_HANDLE, "the process has no console"));
                    }
                    p.console_size = Some([size.height, size.width]);
                    Ok(())
                }
                ("CloseHandle", _, Some(h)) if h.handle == "StdIn" => {
                    p.stdin_closed = true;
                    Ok(())
                }
                _ => Err(failure(hr::INVALID_JSON, "unknown modify request")),
            }
        })
    }

    /// HcsGetProcessProperties: `{ProcessId, Exited, ExitCode, LastWaitResult}`.
    pub fn process_properties(&self, pid: u32, query: &str) -> Result<String, HcsError> {
        self.with(|w| {
            let p = w.live(pid)?;
            json::<PropertyQuery>(query)?;
            let exit = p.exit;
            Ok(serde_json::json!({
                "ProcessId": p.pid,
                "Exited": exit.is_some(),
                "ExitCode": exit.map_or(0, |e| e.exit_code),
                "LastWaitResult": exit.map_or(0, |e| e.last_wait_result),
            })
            .to_string())
        })
    }

    /// The face's program ended with `code` (its own, or the kill's):
    /// the process ends, and its ProcessExited is sent, held or (its
    /// system died) never sent.
    pub fn process_exited(&self, pid: u32, code: u32) {
        self.with(|w| {
            let Some(p) = w.processes.get(&pid) else {
                return;
            };
            if p.exit.is_some() {
                return;
            }
            let system = w
                .systems
                .get(&p.system)
                .map(|s| s.id.clone())
                .unwrap_or_default();
            let lwr = w
                .plans
                .value(&system, |plan| {
                    (plan.last_wait_result != 0).then_some(plan.last_wait_result)
                })
                .unwrap_or(0);
            let exit = ProcessExit {
                process_id: pid,
                exited: true,
                exit_code: code,
                last_wait_result: crate::error::Hresult::from_i64(lwr).0 as i32,
            };
            if let Some(p) = w.processes.get_mut(&pid) {
                p.exit = Some(exit);
            }
            w.notify_process_exit(pid);
        });
    }

    /// Ends process `pid` of compute system `id` with `code`, as if it
    /// exited by itself. False when no such process runs.
    pub fn end_process(&self, id: &str, pid: u32, code: u32) -> bool {
        self.with(|w| {
            let Some(key) = w.ids.get(id).copied() else {
                return false;
            };
            match w.processes.get_mut(&pid) {
                Some(p) if p.system == key && p.exit.is_none() => {
                    p.kill = Some(code);
                    true
                }
                _ => false,
            }
        })
    }

    /// What process `pid`'s program watches.
    pub fn control(&self, pid: u32) -> Control {
        self.read(|w| {
            w.processes
                .get(&pid)
                .map(Process::control)
                .unwrap_or_default()
        })
    }

    /// Process `pid`'s ProcessExited, once sent.
    pub fn process_notice(&self, pid: u32) -> Option<ProcessExit> {
        self.read(|w| w.processes.get(&pid).and_then(|p| p.notice))
    }

    /// Whether process `pid` has ended.
    pub fn process_ended(&self, pid: u32) -> bool {
        self.read(|w| w.processes.get(&pid).is_some_and(|p| p.exit.is_some()))
    }

    /// Runs `f` on process `pid` of compute system `id`.
    fn inspect<T>(&self, id: &str, pid: u32, f: impl FnOnce(&Process) -> T) -> Option<T> {
        self.read(|w| {
            let key = w.ids.get(id)?;
            w.processes.get(&pid).filter(|p| p.system == *key).map(f)
        })
    }

    /// The pids of compute system `id`'s processes that have not ended.
    pub fn live_pids(&self, id: &str) -> Vec<u32> {
        self.read(|w| {
            let Some(s) = w.ids.get(id).and_then(|k| w.systems.get(k)) else {
                return Vec::new();
            };
            s.pids
                .iter()
                .copied()
                .filter(|pid| w.processes.get(pid).is_some_and(|p| p.exit.is_none()))
                .collect()
        })
    }

    /// Every process of the compute systems that exist: (system id, pid,
    /// ended).
    pub fn all_processes(&self) -> Vec<(String, u32, bool)> {
        self.read(|w| {
            let mut all = Vec::new();
            for (id, key) in &w.ids {
                let Some(s) = w.systems.get(key) else {
                    continue;
                };
                for pid in &s.pids {
                    let ended = w.processes.get(pid).is_none_or(|p| p.exit.is_some());
                    all.push((id.clone(), *pid, ended));
                }
            }
            all.sort();
            all
        })
    }

    /// The parameters process `pid` of `id` was created with.
    pub fn process_parameters(&self, id: &str, pid: u32) -> Option<ProcessParameters> {
        self.inspect(id, pid, |p| p.parameters.clone())
    }

    /// The console size last set on process `pid` of `id`.
    pub fn console_size(&self, id: &str, pid: u32) -> Option<[u16; 2]> {
        self.inspect(id, pid, |p| p.console_size).flatten()
    }

    /// The signals sent to process `pid` of `id`.
    pub fn signals(&self, id: &str, pid: u32) -> Vec<String> {
        self.inspect(id, pid, |p| p.signals.clone())
            .unwrap_or_default()
    }
}
