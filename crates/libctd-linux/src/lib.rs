//! libctd's Linux backend: a [`Client`](libctd_core::Client) and
//! [`Remote`](libctd_core::Remote) over containerd's gRPC API, with an
//! embedded, supervised containerd by default.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libctd_core::{discard_stdio, Backend, BoxError, EventInfo, EventType, Remote};
//! use libctd_linux::LinuxRemote;
//!
//! struct Engine;
//! #[libctd_core::async_trait]
//! impl Backend for Engine {
//!     async fn process_event(&self, id: &str, e: EventType, i: EventInfo) -> Result<(), BoxError> {
//!         println!("{id}: {e} (exit code {})", i.exit_code);
//!         Ok(())
//!     }
//! }
//!
//! # async fn run(spec: libctd_core::oci_spec::runtime::Spec) -> libctd_core::Result<()> {
//! // Starts (or reuses) a private containerd under the state directory.
//! let remote = LinuxRemote::builder().state_dir("/run/my-engine").build().await?;
//! let client = remote.new_client("my-engine", Arc::new(Engine)).await?;
//! client.create("web", &spec, Default::default()).await?;
//! let pid = client.start("web", None, false, discard_stdio()).await?;
//! println!("web runs as pid {pid}");
//! remote.cleanup().await?; // stops the daemon it started
//! # Ok(()) }
//! # fn main() { let _ = run; }
//! ```
//!
//! # How it works
//!
//! - [`LinuxRemote`] embeds containerd by default: under its state directory
//!   it writes a config with the CRI and unused plugins disabled, starts
//!   `containerd` (dying with this process unless
//!   [`outlive`](LinuxRemoteBuilder::outlive)), records its
//!   pid, and reuses a live daemon named by that pid file. A new state
//!   directory is made 0700; an existing one is used only if it is a real
//!   directory of this user that no one else can write, and is never changed
//!   or removed. Of several remotes on one state directory, the one holding
//!   its lock (`supervisor.lock`) owns the daemon: only it starts, restarts
//!   or stops it; the others adopt it. The owner checks health every 500 ms
//!   (3 s timeout) and restarts a dead or hung daemon with throttling;
//!   clients reconnect by themselves. With [`address`](LinuxRemoteBuilder::address) it uses an existing
//!   containerd and never restarts it. `cleanup()` sends SIGTERM, waits up to
//!   15 s, then SIGKILL, and removes the pid file and sockets.
//! - [`LinuxClient`] implements the 18 operations of
//!   [`Client`](libctd_core::Client). Every request carries the client's
//!   namespace and a deadline ([`rpc_timeout`](LinuxRemoteBuilder::rpc_timeout), default 30 s): a containerd
//!   that does not answer fails the call `DeadlineExceeded`, one that is gone
//!   `Unavailable` ("containerd is unreachable"). Every gRPC status is
//!   classified into an [`ErrorKind`](libctd_core::ErrorKind) naming the
//!   container and operation. Mutating operations run in their own task, so
//!   dropping a call never leaves the client half-way.
//! - A create, start or exec that fails part-way removes what containerd
//!   made of it; when containerd cannot be reached for that, the rollback is
//!   remembered and completed before the id is used again, so a failed
//!   operation can always be retried with the same id.
//! - Stdio travels through FIFOs under `<state>/fifo/<namespace>/<container>/`,
//!   opened on tokio; output the engine drops is drained, and stdin closed by
//!   the engine leads to exactly one `CloseIO` once the process started.
//! - Events: one subscription per client (`namespace==<ns>,topic~=|^/tasks/|`)
//!   in its own task, proven live by a private sync event, decoded by bare type
//!   URL and delivered through the per-container
//!   [`EventQueue`](libctd_core::EventQueue). Repeated OOM events of one kill
//!   are delivered once; an exited exec is deleted after its exit was
//!   delivered (bounded by a timeout). A broken stream is resubscribed with
//!   backoff and the client then reconciles: exits that happened meanwhile
//!   are delivered, exactly once. Every started process gets exactly one
//!   exit: one whose task is gone (its shim died, the task was deleted)
//!   gets exit code 4294967295 and an `error` saying why; an exit that races
//!   `restore` is kept until restore tracks the process.
//! - runc keeps its state under `<state>/runc` for containers created here.
//!
//! # containerd lines
//!
//! Tested on containerd 1.6, 1.7 and 2.1 (Debian's 1.6.20, 1.7.24 and
//! 2.1.9, all with runc 1.1.5). [`containerd_binary`](LinuxRemoteBuilder::containerd_binary) selects the daemon an
//! embedded remote runs. Where the lines differ:
//!
//! - Configuration: the embedded daemon's binary is asked for its version
//!   (`containerd --version`); 1.x gets `version = 2`, 2.x `version = 3`.
//!   The keys libctd writes (`root`, `state`, `oom_score`,
//!   `disabled_plugins`, `[grpc]`, `[ttrpc]`, `[debug]`, `[metrics]`,
//!   `[plugins."<id>"]`) are the same in both.
//! - Plugin ids: 1.x has one CRI plugin (`io.containerd.grpc.v1.cri`); 2.x
//!   splits it into `io.containerd.cri.v1.images`, `io.containerd.cri.v1.runtime`,
//!   `io.containerd.podsandbox.controller.v1.podsandbox` and the gRPC
//!   service, and its `io.containerd.grpc.v1.sandbox-controllers` needs the
//!   pod sandbox controller: all of them are disabled; 2.x has no `aufs`
//!   snapshotter but a `blockfile` one.
//! - Shims: containerd starts the `containerd-shim-runc-v2` it finds in its
//!   `PATH`; the embedded daemon runs with its own directory first, so each
//!   line runs its own shim (2.x shims serve the task API v3, 1.x v2).
//! - Exits during an outage: 1.6 keeps a task whose processes died while it
//!   was down, stopped, with its exit status. 1.7 and 2.x delete such a
//!   task, and its status, as they start (they treat the shim as leaked).
//!   Before the supervisor starts a daemon it asks every shim for its init
//!   process's state and keeps the stopped ones' status; reconciliation and
//!   `delete_task` use it when containerd no longer knows the task. This
//!   needs the embedded daemon: an external daemon
//!   ([`address`](LinuxRemoteBuilder::address)) restarts
//!   out of libctd's sight, and such an exit is then delivered with
//!   4294967295 and an error saying the status is unknown (as for a process
//!   whose shim died on any line).
//! - Start-up errors: the daemon's own log tail is quoted; its wording
//!   differs (1.x "Can't convert ... to float64", 2.x "cannot decode TOML
//!   ... of type float64").
//! - Read the same way on all three (the conformance suite runs on each):
//!   event topics and payloads (bare type URLs), `exited_at` of a running
//!   process (Go's zero time or none: both read as none), the gRPC codes and
//!   messages the error classifier reads, metrics type URLs (with or without
//!   a leading `/`; `io.containerd.cgroups.v1.Metrics` on a cgroup v1 host),
//!   and task delete responses (only the exit status and time are read; 1.6
//!   leaves the id empty).
//!
//! On targets other than Unix the crate is empty.
#![doc(test(attr(deny(warnings))))]

#[cfg(unix)]
mod client;
#[cfg(unix)]
mod config;
#[cfg(unix)]
mod conn;
#[cfg(unix)]
mod convert;
#[cfg(unix)]
mod daemon_config;
#[cfg(unix)]
mod events;
#[cfg(unix)]
mod fifo;
#[cfg(all(unix, test))]
mod fuzz;
#[cfg(all(unix, test))]
mod layers;
#[cfg(unix)]
mod procfs;
#[cfg(unix)]
mod proto;
#[cfg(unix)]
mod remote;
#[cfg(unix)]
mod rollback;
#[cfg(unix)]
mod runc;
#[cfg(unix)]
mod session;
#[cfg(unix)]
mod shim_exits;
#[cfg(unix)]
mod state;
#[cfg(unix)]
mod state_dir;
#[cfg(unix)]
mod supervisor;
#[cfg(unix)]
mod validate;

#[cfg(unix)]
pub use client::{DEFAULT_RUNTIME, LinuxClient, SHIM_GROUP_KEY};
#[cfg(unix)]
pub use config::{
    DEFAULT_RPC_TIMEOUT, DEFAULT_STATE_DIR, HealthCheck, LinuxConfig, LinuxRemoteBuilder, LogLevel,
    MAX_RPC_TIMEOUT, PluginConfig,
};
#[cfg(unix)]
pub use remote::LinuxRemote;
#[cfg(unix)]
pub use runc::RuncOptions;
