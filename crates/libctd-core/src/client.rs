//! The operations an engine performs on containers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use oci_spec::runtime::{Process, Spec};

use crate::error::{Error, Result};
use crate::image::{ImageRootfs, Images};
use crate::stats::{Resources, Stats, Summary};
use crate::status::Status;
use crate::stdio::StdioCallback;

/// The version of the service behind a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Version {
    /// The release, e.g. `1.6.20`.
    pub version: String,
    /// The source revision.
    pub revision: String,
}

impl Version {
    /// A version of `version` (the release) at `revision`.
    pub fn new(version: impl Into<String>, revision: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            revision: revision.into(),
        }
    }
}

/// What [`Client::restore`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// Whether the init process still runs.
    pub alive: bool,
    /// The init process's pid, when a task exists.
    pub pid: Option<u32>,
}

impl Restored {
    /// A restored container whose init process runs (`alive`) or not, with
    /// its pid when a task exists.
    pub fn new(alive: bool, pid: Option<u32>) -> Self {
        Self { alive, pid }
    }
}

/// How the init process ended, from [`Client::delete_task`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskExit {
    /// Its exit status ([`UNKNOWN_EXIT_CODE`](crate::UNKNOWN_EXIT_CODE) when
    /// it could not be obtained).
    pub exit_code: u32,
    /// When it exited.
    pub exited_at: SystemTime,
}

impl TaskExit {
    /// An exit with `exit_code` at `exited_at`.
    pub fn new(exit_code: u32, exited_at: SystemTime) -> Self {
        Self {
            exit_code,
            exited_at,
        }
    }

    /// The exit code, or `None` when it could not be obtained.
    pub fn exit_status(&self) -> Option<u32> {
        (self.exit_code != crate::UNKNOWN_EXIT_CODE).then_some(self.exit_code)
    }
}

/// Runtime settings for [`Client::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The runtime (Linux: default `io.containerd.runc.v2`).
    pub runtime: Option<String>,
    /// Options of the runtime, as the platform's backend offers them
    /// (Linux: `libctd_linux::RuncOptions`).
    pub runtime_options: Option<RuntimeOptions>,
    /// Labels recorded on the container.
    pub labels: BTreeMap<String, String>,
    /// The image whose snapshot is the container's root filesystem (the
    /// spec's `root.path` is then [`IMAGE_ROOTFS_PATH`](crate::IMAGE_ROOTFS_PATH));
    /// `None`: the root filesystem is the spec's `root.path`.
    pub image: Option<ImageRootfs>,
}

impl CreateOptions {
    /// Options with every field at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the runtime (Linux: a containerd runtime name such as
    /// `io.containerd.runc.v2`, or a shim's absolute path).
    pub fn with_runtime(mut self, runtime: impl Into<String>) -> Self {
        self.runtime = Some(runtime.into());
        self
    }

    /// Sets the runtime's options: a platform's typed options convert into
    /// [`RuntimeOptions`] (Linux: `libctd_linux::RuncOptions`).
    pub fn with_runtime_options(mut self, options: impl Into<RuntimeOptions>) -> Self {
        self.runtime_options = Some(options.into());
        self
    }

    /// Runs the container on a fresh snapshot of `image` (an image name, or
    /// an [`ImageRootfs`] naming the snapshotter too). Backends without
    /// images refuse it with `InvalidArgument`.
    pub fn with_image(mut self, image: impl Into<ImageRootfs>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// A runtime's options in the form containerd carries them: a protobuf
/// message and its type name (`Runtime.options`, a `google.protobuf.Any`).
///
/// Platform-neutral code passes them through; a platform's backend crate
/// offers typed options that convert into them (Linux:
/// `libctd_linux::RuncOptions`), and each backend refuses with
/// `InvalidArgument` a type it does not understand.
///
/// ```
/// use libctd_core::{CreateOptions, RuntimeOptions};
///
/// let raw = RuntimeOptions::new("example.com.shim.Options", vec![0x08, 0x01]);
/// assert_eq!(raw.type_url(), "example.com.shim.Options");
/// let options = CreateOptions::new().with_runtime_options(raw.clone());
/// assert_eq!(options.runtime_options, Some(raw));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    type_url: String,
    value: Vec<u8>,
}

impl RuntimeOptions {
    /// Options of type `type_url` (the message's full name), encoded as
    /// `value` (protobuf bytes).
    pub fn new(type_url: impl Into<String>, value: Vec<u8>) -> Self {
        Self {
            type_url: type_url.into(),
            value,
        }
    }

    /// The message's type name.
    pub fn type_url(&self) -> &str {
        &self.type_url
    }

    /// The encoded message.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// The operations an engine performs on containers, implemented by each
/// platform's backend.
///
/// Every operation validates its input first (ids, signals, sizes, paths)
/// and fails with a typed [`Error`] naming the operation, the container and,
/// where there is one, the process. The trait is object-safe; engines hold
/// an `Arc<dyn Client>`.
///
/// # Errors
///
/// One [`ErrorKind`](crate::ErrorKind) per situation, on every backend (the
/// conformance suite of `libctd-testkit` asserts each):
///
/// | situation | kind | operations |
/// |---|---|---|
/// | malformed container id, process id, signal, terminal size, path or spec | `InvalidArgument` | all that take one; checked before any lookup |
/// | runtime options of a type the backend does not understand, or that do not decode | `InvalidArgument` | `create` |
/// | a runtime binary that does not exist (Linux: `RuncOptions::binary_name`) | `InvalidArgument` | `create` (a path, or a name given with runtime flags), `start` (a name the shim does not find) |
/// | the runtime refuses to create or start the container for a reason of its own (Linux: crun on a cgroup v1 hybrid host, runsc in the host's network namespace) | `System` | `start`, `exec`; nothing is left behind |
/// | a create from an image ([`CreateOptions::with_image`]) on a backend without images (Windows), with a malformed image name or snapshotter, or with `root.path` other than [`IMAGE_ROOTFS_PATH`](crate::IMAGE_ROOTFS_PATH) | `InvalidArgument` | `create` |
/// | a create from an image that is not imported | `NotFound` | `create` |
/// | a create from an image not unpacked in the snapshotter asked for | `FailedPrecondition` | `create` |
/// | unknown container | `NotFound` "no such container" | all but `version`, `create` |
/// | the container has no task (never started, or its task deleted) | `NotFound` "container is not running" | `signal_process`, `exec`, `resize_terminal`, `close_stdin`, `pause`, `resume`, `stats`, `list_pids`, `summary`, `update_resources`, `create_checkpoint`, `delete_task`; `status` on Linux (Windows answers `Created`) |
/// | unknown exec id | `NotFound` "no such exec" | `signal_process`, `resize_terminal`, `close_stdin` |
/// | the id is in use | `AlreadyExists` | `create` (container id), `exec` (process id), `start` (already started) |
/// | the task is in the wrong state | `FailedPrecondition` | `exec` in a stopped container, `pause` when not running, `resume` when not paused, `delete_task` and `delete` while it runs, `resize_terminal` of a process without a terminal |
/// | the platform lacks it | `NotImplemented` | `create_checkpoint` (Windows; Linux where CRIU cannot run, or on gVisor's runsc), `pause`/`resume` of process-isolated Windows containers, `version` and `update_resources` on Windows (and on runsc) |
/// | the service cannot be reached | `Unavailable` | all |
/// | the service did not answer within the backend's deadline | `DeadlineExceeded` | all (Linux: `rpc_timeout`) |
///
/// # Cancel safety
///
/// Dropping an operation's future (or wrapping it in
/// `tokio::time::timeout`) never leaves the client half-way, but it does
/// not undo what was asked either. The operations that change state
/// (`restore`, `create`, `start`, `exec`, `delete_task`, `delete`) go on in
/// a task of their own when the caller's future is dropped (a backend may
/// run them there from the start, or only from the drop): they run to
/// completion, or roll back, and the engine learns the outcome from the
/// events that follow (`create`, `start`, `exec-added`, `exit`...) or a
/// later `status`. A dropped single request (`signal_process`,
/// `resize_terminal`, `close_stdin`, `pause`, `resume`, `update_resources`,
/// `create_checkpoint`) may or may not have reached the service; its effect,
/// if any, shows in events (`paused`, `resumed`, `exit`) and `status`.
/// Queries (`version`, `status`, `stats`, `list_pids`, `summary`) can be
/// dropped freely.
#[async_trait]
pub trait Client: Send + Sync {
    /// The version of the service.
    ///
    /// # Errors
    /// `NotImplemented` on Windows; `Unavailable`, `DeadlineExceeded`.
    async fn version(&self) -> Result<Version>;

    /// Re-attaches to a container that exists in the service (after an engine
    /// restart). `attach` is called with the reopened streams only when a task
    /// exists. With `alive == true`, the process's exit arrives later as an
    /// `exit` event, exactly once, however it races the restore.
    ///
    /// With `alive == false` and a `pid`, the init process ended while no
    /// client of this engine was watching (the engine was down, or the
    /// service restarted meanwhile): no `exit` event comes for it, and its
    /// exit status is [`delete_task`](Self::delete_task)'s answer, once the
    /// task is deleted. That holds on every containerd line: 1.6 keeps such
    /// a task stopped, and where 1.7 and 2.x drop it while they restart, the
    /// Linux backend keeps its status under the state directory of its
    /// embedded daemon until `delete_task` claims it (with
    /// [`UNKNOWN_EXIT_CODE`](crate::UNKNOWN_EXIT_CODE) when even the shim
    /// that ran it was gone). With `alive == false` and no `pid` there is no
    /// task, and nothing is known of how it ended.
    ///
    /// # Errors
    /// `NotFound` for a container the service does not know; the error
    /// `attach` returns.
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored>;

    /// Creates a container from `spec`.
    ///
    /// # Errors
    /// `AlreadyExists` when the id is in use; `InvalidArgument` for a spec
    /// that cannot run (no process; on Linux no root, a relative or missing
    /// `root.path`, a malformed runtime or runc options).
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()>;

    /// Creates and starts the init process, calling `attach` with its streams
    /// before it starts, and returns its pid. With `checkpoint_dir`, restores
    /// from that checkpoint. A failed start leaves nothing behind, so it can
    /// be retried with the same id.
    ///
    /// # Errors
    /// `AlreadyExists` when already started; `InvalidArgument` for a relative
    /// checkpoint directory or a process the runtime cannot run (executable
    /// not found); the error `attach` returns.
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32>;

    /// Sends `signal` to a process ([`INIT_PROCESS_ID`](crate::INIT_PROCESS_ID)
    /// or an exec id).
    ///
    /// # Errors
    /// `InvalidArgument` for a signal outside 1..=64; `NotFound` for an
    /// unknown exec or a container without a task.
    async fn signal_process(&self, container_id: &str, process_id: &str, signal: i32)
    -> Result<()>;

    /// Runs an additional process in the container's task and returns its pid.
    ///
    /// # Errors
    /// `AlreadyExists` when `process_id` is in use; `NotFound` "container is
    /// not running" without a task; `FailedPrecondition` when the task has
    /// stopped; `InvalidArgument` for a process without args.
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32>;

    /// Resizes a process's terminal, in character cells.
    ///
    /// # Errors
    /// `InvalidArgument` for a side outside 1..=65535; `FailedPrecondition`
    /// for a process without a terminal.
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()>;

    /// Closes a process's standard input, so it reads EOF.
    ///
    /// # Errors
    /// `NotFound` for an unknown exec or a container without a task.
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()>;

    /// Freezes every process of the container.
    ///
    /// # Errors
    /// `FailedPrecondition` when it is not running; `NotImplemented` for
    /// process-isolated Windows containers.
    async fn pause(&self, container_id: &str) -> Result<()>;

    /// Thaws a paused container.
    ///
    /// # Errors
    /// `FailedPrecondition` when it is not paused; `NotImplemented` for
    /// process-isolated Windows containers.
    async fn resume(&self, container_id: &str) -> Result<()>;

    /// The container's resource usage.
    ///
    /// # Errors
    /// `NotFound` without a task.
    async fn stats(&self, container_id: &str) -> Result<Stats>;

    /// The pids of the container's processes.
    ///
    /// # Errors
    /// `NotFound` without a task.
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>>;

    /// The container's processes, with platform details.
    ///
    /// # Errors
    /// `NotFound` without a task.
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>>;

    /// Deletes the container's stopped task and returns how it ended: after
    /// an `exit` event for the init process, the same exit code as that
    /// event, even when the service has already dropped the task itself
    /// (a containerd whose shim died).
    ///
    /// # Errors
    /// `FailedPrecondition` while it runs; `NotFound` without a task.
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit>;

    /// Deletes the container (its task must be gone or stopped) and its state.
    ///
    /// # Errors
    /// `FailedPrecondition` while its task runs.
    async fn delete(&self, container_id: &str) -> Result<()>;

    /// The status of the container's task.
    ///
    /// # Errors
    /// `NotFound` without a task on Linux (Windows answers `Created`).
    async fn status(&self, container_id: &str) -> Result<Status>;

    /// Changes the resource limits of a running container.
    ///
    /// # Errors
    /// `InvalidArgument` for resources of another platform; `NotImplemented`
    /// on Windows.
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()>;

    /// Checkpoints the container into `checkpoint_dir`, stopping it afterwards
    /// when `exit` is set.
    ///
    /// # Errors
    /// `InvalidArgument` for a relative directory; `NotImplemented` on
    /// Windows and where CRIU cannot run (the message says why).
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()>;

    /// The client's image store, in its namespace, when the backend keeps
    /// images (Linux); `None` when it does not (Windows, whose layers come
    /// as folders). Default: `None`.
    fn images(&self) -> Option<&dyn Images> {
        None
    }
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
