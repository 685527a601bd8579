//! The narrow set of Host Compute Service calls the client needs, with the
//! host-side steps of a utility VM (disk access grants, its scratch file)
//! and the Host Networking Service's namespace calls (computenetwork.dll).
//!
//! Documents travel as JSON text, exactly as computecore.dll takes and returns
//! them; handles are opaque, cheap to clone, and stay valid until closed. Two
//! implementations exist: [`sim::Sim`], a simulated HCS (always compiled, used by
//! the tests and the testkit), and on Windows `ffi::Computecore`, the real
//! computecore.dll resolved at run time. [`model`] is the one model of HCS
//! that tests use: `Sim` is its face behind this trait, the computecore.dll
//! double its face under Wine.

use std::fmt;

use async_trait::async_trait;
use libctd_core::{OutputStream, StdinStream};
use serde::Deserialize;

use crate::error::codes::{HCS_E_TERMINATED, HCS_E_UNEXPECTED_EXIT};
use crate::error::{HcsError, Hresult};

#[cfg(windows)]
pub mod ffi;
pub mod model;
pub mod sim;

/// The result of an HCS call.
pub type HcsResult<T> = Result<T, HcsError>;

/// The HCS calls, named as computecore.dll (and, for namespaces,
/// computenetwork.dll) names them. They key fault plans and name the
/// operation in rendered errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HcsOp {
    /// HcsCreateComputeSystem.
    CreateComputeSystem,
    /// HcsOpenComputeSystem.
    OpenComputeSystem,
    /// HcsStartComputeSystem.
    StartComputeSystem,
    /// HcsShutDownComputeSystem.
    ShutDownComputeSystem,
    /// HcsTerminateComputeSystem.
    TerminateComputeSystem,
    /// HcsPauseComputeSystem.
    PauseComputeSystem,
    /// HcsResumeComputeSystem.
    ResumeComputeSystem,
    /// HcsCloseComputeSystem.
    CloseComputeSystem,
    /// HcsGetComputeSystemProperties.
    GetComputeSystemProperties,
    /// HcsModifyComputeSystem.
    ModifyComputeSystem,
    /// Waiting for the compute system's exit notification.
    WaitForComputeSystemExit,
    /// HcsCreateProcess.
    CreateProcess,
    /// HcsOpenProcess.
    OpenProcess,
    /// HcsSignalProcess.
    SignalProcess,
    /// HcsTerminateProcess.
    TerminateProcess,
    /// HcsModifyProcess.
    ModifyProcess,
    /// HcsGetProcessProperties.
    GetProcessProperties,
    /// Waiting for a process's exit notification.
    WaitForProcessExit,
    /// HcsCloseProcess.
    CloseProcess,
    /// HcsGrantVmAccess.
    GrantVmAccess,
    /// HcsRevokeVmAccess.
    RevokeVmAccess,
    /// HcnCreateNamespace (computenetwork.dll).
    CreateNamespace,
    /// HcnModifyNamespace (computenetwork.dll).
    ModifyNamespace,
    /// HcnDeleteNamespace (computenetwork.dll).
    DeleteNamespace,
    /// HcnQueryEndpointProperties (computenetwork.dll).
    QueryEndpointProperties,
}

impl HcsOp {
    /// The name shown in rendered errors, e.g. `HcsShutDownComputeSystem`.
    pub fn name(self) -> &'static str {
        match self {
            HcsOp::CreateComputeSystem => "HcsCreateComputeSystem",
            HcsOp::OpenComputeSystem => "HcsOpenComputeSystem",
            HcsOp::StartComputeSystem => "HcsStartComputeSystem",
            HcsOp::ShutDownComputeSystem => "HcsShutDownComputeSystem",
            HcsOp::TerminateComputeSystem => "HcsTerminateComputeSystem",
            HcsOp::PauseComputeSystem => "HcsPauseComputeSystem",
            HcsOp::ResumeComputeSystem => "HcsResumeComputeSystem",
            HcsOp::CloseComputeSystem => "HcsCloseComputeSystem",
            HcsOp::GetComputeSystemProperties => "HcsGetComputeSystemProperties",
            HcsOp::ModifyComputeSystem => "HcsModifyComputeSystem",
            HcsOp::WaitForComputeSystemExit => "HcsWaitForComputeSystemExit",
            HcsOp::CreateProcess => "HcsCreateProcess",
            HcsOp::OpenProcess => "HcsOpenProcess",
            HcsOp::SignalProcess => "HcsSignalProcess",
            HcsOp::TerminateProcess => "HcsTerminateProcess",
            HcsOp::ModifyProcess => "HcsModifyProcess",
            HcsOp::GetProcessProperties => "HcsGetProcessProperties",
            HcsOp::WaitForProcessExit => "HcsWaitForProcessExit",
            HcsOp::CloseProcess => "HcsCloseProcess",
            HcsOp::GrantVmAccess => "HcsGrantVmAccess",
            HcsOp::RevokeVmAccess => "HcsRevokeVmAccess",
            HcsOp::CreateNamespace => "HcnCreateNamespace",
            HcsOp::ModifyNamespace => "HcnModifyNamespace",
            HcsOp::DeleteNamespace => "HcnDeleteNamespace",
            HcsOp::QueryEndpointProperties => "HcnQueryEndpointProperties",
        }
    }
}

impl HcsOp {
    /// Every operation.
    pub const ALL: [HcsOp; 25] = [
        HcsOp::CreateComputeSystem,
        HcsOp::OpenComputeSystem,
        HcsOp::StartComputeSystem,
        HcsOp::ShutDownComputeSystem,
        HcsOp::TerminateComputeSystem,
        HcsOp::PauseComputeSystem,
        HcsOp::ResumeComputeSystem,
        HcsOp::CloseComputeSystem,
        HcsOp::GetComputeSystemProperties,
        HcsOp::ModifyComputeSystem,
        HcsOp::WaitForComputeSystemExit,
        HcsOp::CreateProcess,
        HcsOp::OpenProcess,
        HcsOp::SignalProcess,
        HcsOp::TerminateProcess,
        HcsOp::ModifyProcess,
        HcsOp::GetProcessProperties,
        HcsOp::WaitForProcessExit,
        HcsOp::CloseProcess,
        HcsOp::GrantVmAccess,
        HcsOp::RevokeVmAccess,
        HcsOp::CreateNamespace,
        HcsOp::ModifyNamespace,
        HcsOp::DeleteNamespace,
        HcsOp::QueryEndpointProperties,
    ];

    /// The operation named `name` (`HcsShutDownComputeSystem`...).
    pub fn from_name(name: &str) -> Option<HcsOp> {
        HcsOp::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for HcsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A new process's pid and its standard streams (each present only when
/// requested in the process parameters), fetched and wrapped once.
pub struct ProcessInfo {
    /// The process id inside the compute system.
    pub pid: u32,
    /// Its standard input, to write.
    pub stdin: Option<StdinStream>,
    /// Its standard output (the console's output with `EmulateConsole`).
    pub stdout: Option<OutputStream>,
    /// Its standard error.
    pub stderr: Option<OutputStream>,
}

impl fmt::Debug for ProcessInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessInfo")
            .field("pid", &self.pid)
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

/// The data of a `ProcessExited` notification:
/// `{ProcessId, Exited, ExitCode, LastWaitResult}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessExit {
    /// The process id.
    #[serde(default)]
    pub process_id: u32,
    /// Whether the process has exited.
    #[serde(default)]
    pub exited: bool,
    /// Its exit code.
    #[serde(default)]
    pub exit_code: u32,
    /// The result of HCS's wait on the process; non-zero means the exit code
    /// could not be obtained.
    #[serde(default)]
    pub last_wait_result: i32,
}

impl ProcessExit {
    /// The exit code, or `None` when HCS could not obtain it.
    pub fn code(&self) -> Option<u32> {
        (self.last_wait_result == 0).then_some(self.exit_code)
    }
}

/// The data of a `SystemExited` notification: `{"Status":hr,"ExitType":"..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemExit {
    /// The HRESULT the compute system exited with (0 for a clean exit).
    #[serde(default)]
    pub status: i64,
    /// How it exited: `GracefulExit`, `ForcedExit`, `UnexpectedExit`, ...
    #[serde(default)]
    pub exit_type: String,
}

impl SystemExit {
    /// A clean exit of `exit_type`.
    pub fn clean(exit_type: &str) -> Self {
        Self {
            status: 0,
            exit_type: exit_type.to_owned(),
        }
    }

    /// The exit of a compute system terminated on request: `ForcedExit`
    /// with HCS_E_TERMINATED as its status, as HCS may report it.
    pub fn forced() -> Self {
        Self {
            status: i64::from(HCS_E_TERMINATED.0),
            exit_type: "ForcedExit".to_owned(),
        }
    }

    /// The exit of a compute system that died.
    pub fn unexpected() -> Self {
        Self {
            status: i64::from(HCS_E_UNEXPECTED_EXIT.v1().0),
            exit_type: "UnexpectedExit".to_owned(),
        }
    }

    /// Whether the compute system died rather than stopping on request.
    pub fn is_unexpected(&self) -> bool {
        self.exit_type == "UnexpectedExit"
    }

    /// The failure this exit reports, if any. Only an unexpected exit is a
    /// failure (as hcsshim reads it): its status, or without one "The
    /// compute system exited unexpectedly.". A forced or graceful exit is
    /// what was asked for, even with a failing status (a terminate's
    /// HCS_E_TERMINATED).
    pub fn error(&self) -> Option<HcsError> {
        if !self.is_unexpected() {
            return None;
        }
        let status = Hresult::from_i64(self.status);
        Some(HcsError::new(if status.is_failure() {
            status
        } else {
            HCS_E_UNEXPECTED_EXIT.v1()
        }))
    }
}

/// The Host Compute Service, narrowed to what the Windows client uses.
///
/// Every call takes and returns JSON documents as text. A failed call gives an
/// [`HcsError`] carrying the HRESULT and HCS's result document. Handles are
/// cheap clones of one underlying handle; `close_*` releases it, after which
/// calls on any clone fail.
#[async_trait]
pub trait Hcs: Send + Sync + 'static {
    /// A compute system handle.
    type System: Clone + Send + Sync + fmt::Debug + 'static;
    /// A process handle.
    type Process: Clone + Send + Sync + fmt::Debug + 'static;

    /// Creates a compute system from its configuration document.
    async fn create_compute_system(&self, id: &str, configuration: &str)
    -> HcsResult<Self::System>;
    /// Opens an existing compute system.
    async fn open_compute_system(&self, id: &str) -> HcsResult<Self::System>;
    /// Starts a created compute system.
    async fn start_compute_system(&self, system: &Self::System) -> HcsResult<()>;
    /// Asks the compute system to shut down; completion is seen through
    /// [`wait_compute_system_exit`](Hcs::wait_compute_system_exit). May fail
    /// with a pending HRESULT, which means the same.
    async fn shutdown_compute_system(&self, system: &Self::System) -> HcsResult<()>;
    /// Terminates the compute system.
    async fn terminate_compute_system(&self, system: &Self::System) -> HcsResult<()>;
    /// Pauses (Hyper-V isolated systems only).
    async fn pause_compute_system(&self, system: &Self::System) -> HcsResult<()>;
    /// Resumes a paused compute system.
    async fn resume_compute_system(&self, system: &Self::System) -> HcsResult<()>;
    /// Releases the handle.
    async fn close_compute_system(&self, system: &Self::System) -> HcsResult<()>;
    /// Answers a property query document with a properties document.
    async fn get_compute_system_properties(
        &self,
        system: &Self::System,
        query: &str,
    ) -> HcsResult<String>;
    /// Applies a modify request document.
    async fn modify_compute_system(&self, system: &Self::System, request: &str) -> HcsResult<()>;
    /// Resolves once the compute system has exited, with its exit
    /// notification. Fails with the failure of a shutdown or terminate that
    /// was answered pending and failed afterwards (no exit follows it),
    /// until another one is submitted.
    async fn wait_compute_system_exit(&self, system: &Self::System) -> HcsResult<SystemExit>;

    /// Creates (and starts) a process from its parameters document.
    async fn create_process(
        &self,
        system: &Self::System,
        parameters: &str,
    ) -> HcsResult<(Self::Process, ProcessInfo)>;
    /// Opens a process of the compute system by pid (without its streams).
    async fn open_process(&self, system: &Self::System, pid: u32) -> HcsResult<Self::Process>;
    /// Sends a signal document (`{"Signal":"CtrlC"}`...).
    async fn signal_process(&self, process: &Self::Process, options: &str) -> HcsResult<()>;
    /// Terminates the process.
    async fn terminate_process(&self, process: &Self::Process) -> HcsResult<()>;
    /// Applies a modify request (console size, closing stdin).
    async fn modify_process(&self, process: &Self::Process, request: &str) -> HcsResult<()>;
    /// Answers a process property query.
    async fn get_process_properties(
        &self,
        process: &Self::Process,
        query: &str,
    ) -> HcsResult<String>;
    /// Resolves once the process has exited, with its exit notification.
    async fn wait_process_exit(&self, process: &Self::Process) -> HcsResult<ProcessExit>;
    /// Releases the handle.
    async fn close_process(&self, process: &Self::Process) -> HcsResult<()>;

    /// Grants the utility VM `vm_id` access to the disk file `path`
    /// (HcsGrantVmAccess), before the VM boots from or attaches it.
    async fn grant_vm_access(&self, vm_id: &str, path: &str) -> HcsResult<()>;
    /// Revokes an access [`grant_vm_access`](Hcs::grant_vm_access) gave
    /// (HcsRevokeVmAccess).
    async fn revoke_vm_access(&self, vm_id: &str, path: &str) -> HcsResult<()>;
    /// Copies the host file `from` to a new file `to`, creating its folder:
    /// a utility VM's scratch from its image's template.
    async fn copy_file(&self, from: &str, to: &str) -> HcsResult<()>;
    /// Removes the host file `path`, and its folder once empty; a missing
    /// file is fine.
    async fn remove_file(&self, path: &str) -> HcsResult<()>;

    /// Creates an HNS namespace from its settings document
    /// (computenetwork.dll's HcnCreateNamespace); its id.
    async fn create_namespace(&self, settings: &str) -> HcsResult<String>;
    /// Adds HNS endpoint `endpoint` to namespace `namespace`
    /// (HcnModifyNamespace).
    async fn add_namespace_endpoint(&self, namespace: &str, endpoint: &str) -> HcsResult<()>;
    /// Deletes namespace `namespace` (HcnDeleteNamespace).
    async fn delete_namespace(&self, namespace: &str) -> HcsResult<()>;
    /// The properties document of HNS endpoint `endpoint` (HcnOpenEndpoint,
    /// HcnQueryEndpointProperties, HcnCloseEndpoint).
    async fn endpoint_properties(&self, endpoint: &str) -> HcsResult<String>;

    /// The layer id of a layer folder's base name (vmcompute's `NameToGuid`).
    fn name_to_guid(&self, name: &str) -> HcsResult<String>;
    /// The number of logical processors of the host.
    fn host_cpu_count(&self) -> u32;
    /// Whether `layer_folder` holds a `UtilityVM` folder.
    fn has_utility_vm(&self, layer_folder: &str) -> bool;
}
