//! The operations an engine performs on containers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use oci_spec::runtime::{Process, Spec};

use crate::error::{Error, Result};
use crate::stats::{Resources, Stats, Summary};
use crate::status::Status;
use crate::stdio::StdioCallback;

/// The version of the service behind a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// The release, e.g. `1.6.20`.
    pub version: String,
    /// The source revision.
    pub revision: String,
}

/// What [`Client::restore`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Whether the init process still runs.
    pub alive: bool,
    /// The init process's pid, when a task exists.
    pub pid: Option<u32>,
}

/// How the init process ended, from [`Client::delete_task`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskExit {
    /// Its exit status (4294967295 when it could not be obtained).
    pub exit_code: u32,
    /// When it exited.
    pub exited_at: SystemTime,
}

/// Runtime settings for [`Client::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The runtime (Linux: default `io.containerd.runc.v2`).
    pub runtime: Option<String>,
    /// Options of the runc shim (Linux only).
    pub runc: Option<RuncOptions>,
    /// Labels recorded on the container.
    pub labels: BTreeMap<String, String>,
}

impl CreateOptions {
    /// Options with every field at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the runc shim options.
    pub fn with_runc(mut self, runc: RuncOptions) -> Self {
        self.runc = Some(runc);
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// Options of containerd's runc shim (`containerd.runc.v1.Options`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuncOptions {
    /// The runc binary to use instead of `runc`.
    pub binary_name: Option<String>,
    /// runc's state root.
    pub root: Option<String>,
    /// Use systemd to manage cgroups.
    pub systemd_cgroup: bool,
    /// Do not use pivot_root.
    pub no_pivot_root: bool,
    /// Do not create a session keyring.
    pub no_new_keyring: bool,
    /// Owner of the stdio FIFOs.
    pub io_uid: u32,
    /// Group of the stdio FIFOs.
    pub io_gid: u32,
}

/// The operations an engine performs on containers, implemented by each
/// platform's backend.
///
/// Every operation validates its input first (ids, signals, sizes) and fails
/// with a typed [`Error`] naming the operation and container. Operations are
/// cancel-safe: dropping the future (or wrapping it in `tokio::time::timeout`)
/// leaves the client consistent. The trait is object-safe; engines hold an
/// `Arc<dyn Client>`.
///
/// Error kinds common to all operations: `InvalidArgument` for a malformed id
/// or argument; `NotFound` for an unknown container ("no such container"), a
/// container without a task where one is needed ("container is not running"),
/// or an unknown exec ("no such exec"); `NotImplemented` for what the platform
/// lacks; `Unavailable` when the service cannot be reached.
#[async_trait]
pub trait Client: Send + Sync {
    /// The version of the service.
    async fn version(&self) -> Result<Version>;

    /// Re-attaches to a container that exists in the service (after an engine
    /// restart). `attach` is called with the reopened streams only when a task
    /// exists.
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored>;

    /// Creates a container from `spec`. `AlreadyExists` when the id is in use.
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()>;

    /// Creates and starts the init process, calling `attach` with its streams
    /// before it starts, and returns its pid. With `checkpoint_dir`, restores
    /// from that checkpoint. `AlreadyExists` when already started. A failed start
    /// leaves nothing behind, so it can be retried.
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32>;

    /// Sends `signal` to a process ([`INIT_PROCESS_ID`](crate::INIT_PROCESS_ID)
    /// or an exec id).
    async fn signal_process(&self, container_id: &str, process_id: &str, signal: i32)
    -> Result<()>;

    /// Runs an additional process in the container's task and returns its pid.
    /// `AlreadyExists` when `process_id` is in use.
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32>;

    /// Resizes a process's terminal, in character cells.
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()>;

    /// Closes a process's standard input, so it reads EOF.
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()>;

    /// Freezes every process of the container.
    async fn pause(&self, container_id: &str) -> Result<()>;

    /// Thaws a paused container.
    async fn resume(&self, container_id: &str) -> Result<()>;

    /// The container's resource usage.
    async fn stats(&self, container_id: &str) -> Result<Stats>;

    /// The pids of the container's processes.
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>>;

    /// The container's processes, with platform details.
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>>;

    /// Deletes the container's stopped task and returns how it ended.
    /// `FailedPrecondition` while it runs.
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit>;

    /// Deletes the container (its task must be gone or stopped) and its state.
    async fn delete(&self, container_id: &str) -> Result<()>;

    /// The status of the container's task. `NotFound` without a task.
    async fn status(&self, container_id: &str) -> Result<Status>;

    /// Changes the resource limits of a running container.
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()>;

    /// Checkpoints the container into `checkpoint_dir`, stopping it afterwards
    /// when `exit` is set.
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()>;
}

/// The highest signal number accepted.
pub const MAX_SIGNAL: i32 = 64;

/// Checks a signal number: 1 to [`MAX_SIGNAL`].
///
/// ```
/// assert!(libctd_core::validate_signal(9).is_ok());
/// assert!(libctd_core::validate_signal(0).is_err());
/// assert!(libctd_core::validate_signal(65).is_err());
/// ```
pub fn validate_signal(signal: i32) -> Result<()> {
    if (1..=MAX_SIGNAL).contains(&signal) {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "signal {signal} is out of range 1..={MAX_SIGNAL}"
        )))
    }
}

/// Checks a terminal size: both dimensions 1 to 65535.
///
/// ```
/// assert!(libctd_core::validate_terminal_size(80, 24).is_ok());
/// assert!(libctd_core::validate_terminal_size(0, 24).is_err());
/// assert!(libctd_core::validate_terminal_size(80, 70_000).is_err());
/// ```
pub fn validate_terminal_size(width: u32, height: u32) -> Result<()> {
    let ok = |v: u32| (1..=u32::from(u16::MAX)).contains(&v);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "terminal size {width}x{height} is out of range: each side is 1 to 65535"
        )))
    }
}
