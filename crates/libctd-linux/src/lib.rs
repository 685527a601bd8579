//! libctd's Linux backend: a [`Client`](libctd_core::Client) and
//! [`Remote`](libctd_core::Remote) over containerd's gRPC API, with an
//! embedded, supervised containerd by default.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libctd_core::{discard_stdio, Backend, BoxError, EventInfo, EventType, Remote, RemoteOption};
//! use libctd_linux::{LinuxRemote, StateDir};
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
//! let remote = LinuxRemote::new(&[&StateDir("/run/my-engine".into()) as &dyn RemoteOption]).await?;
//! let client = remote.new_client("my-engine", Arc::new(Engine)).await?;
//! client.create("web", &spec, Default::default()).await?;
//! let pid = client.start("web", None, false, discard_stdio()).await?;
//! println!("web runs as pid {pid}");
//! remote.cleanup().await?; // stops the daemon it started
//! # Ok(()) }
//! ```
//!
//! On targets other than Unix the crate is empty.

#[cfg(unix)]
mod client;
#[cfg(unix)]
mod convert;
#[cfg(unix)]
mod events;
#[cfg(unix)]
mod fifo;
#[cfg(unix)]
mod remote;
#[cfg(unix)]
mod supervisor;

#[cfg(unix)]
pub use client::{DEFAULT_RUNTIME, LinuxClient};
#[cfg(unix)]
pub use remote::{
    Address, ContainerdBinary, DEFAULT_STATE_DIR, DebugAddress, HealthCheck, LinuxConfig,
    LinuxRemote, LogLevel, MetricsAddress, OomScore, Outlive, PluginConfig, ShimGroup, SocketOwner,
    StateDir,
};
