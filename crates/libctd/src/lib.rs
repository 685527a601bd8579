//! libctd: drive containers from a Rust container engine, through one contract,
//! on containerd (Linux) and on the Host Compute Service (Windows).
//!
//! ```no_run
//! use std::sync::Arc;
//! use libctd::{Backend, BoxError, EventInfo, EventType, INIT_PROCESS_ID, async_trait, discard_stdio};
//! use libctd::oci_spec::runtime::Spec;
//!
//! /// The engine's side: it hears about its containers here.
//! struct Engine;
//!
//! #[async_trait]
//! impl Backend for Engine {
//!     async fn process_event(
//!         &self,
//!         container_id: &str,
//!         event: EventType,
//!         info: EventInfo,
//!     ) -> Result<(), BoxError> {
//!         println!("{container_id}/{}: {event} (exit code {})", info.process_id, info.exit_code);
//!         Ok(())
//!     }
//! }
//!
//! # async fn run(spec: Spec) -> libctd::Result<()> {
//! // On Linux: an embedded, supervised containerd. On Windows: HCS in-process.
//! let remote = libctd::default_remote().await?;
//! let client = remote.new_client("my-engine", Arc::new(Engine)).await?;
//!
//! client.create("web", &spec, Default::default()).await?;
//! let pid = client.start("web", None, false, discard_stdio()).await?;
//! println!("web runs as pid {pid}");
//! client.signal_process("web", INIT_PROCESS_ID, 15).await?;
//! // ... Engine::process_event receives `exit` ...
//! let exit = client.delete_task("web").await?;
//! println!("web exited with {}", exit.exit_code);
//! client.delete("web").await?;
//! remote.cleanup().await?;
//! # Ok(()) }
//! # fn main() { let _ = run; }
//! ```
//!
//! Everything in [`libctd_core`] is re-exported here; the platform's backend is
//! [`platform`]. For tests of an engine, `libctd-testkit` offers an in-memory
//! fake `Remote`, a recording `Backend` and the conformance suite that every
//! backend passes.
#![doc(test(attr(deny(warnings))))]

use std::sync::Arc;

pub use libctd_core::*;

cfg_if::cfg_if! {
    if #[cfg(windows)] {
        /// This target's backend: HCS.
        pub use libctd_windows as platform;

        /// The platform's default remote: HCS v2 in-process (computecore.dll,
        /// loaded at run time; `Unavailable` where the Containers feature is
        /// missing). For other settings use
        /// [`platform::WindowsRemote::builder`] inside the engine's own
        /// `cfg(windows)` code.
        ///
        /// # Errors
        ///
        /// `Unavailable` where HCS is missing.
        pub async fn default_remote() -> Result<Arc<dyn Remote>> {
            Ok(Arc::new(libctd_windows::WindowsRemote::builder().native()?))
        }
    } else if #[cfg(unix)] {
        /// This target's backend: containerd.
        pub use libctd_linux as platform;

        /// The platform's default remote: an embedded containerd supervised by
        /// libctd under [`platform::DEFAULT_STATE_DIR`] (reused if already
        /// running). For other settings (an existing containerd's address,
        /// another state directory, timeouts) use
        /// [`platform::LinuxRemote::builder`] inside the engine's own
        /// `cfg(unix)` code.
        ///
        /// # Errors
        ///
        /// As [`platform::LinuxRemoteBuilder::build`].
        pub async fn default_remote() -> Result<Arc<dyn Remote>> {
            Ok(Arc::new(libctd_linux::LinuxRemote::builder().build().await?))
        }
    }
}
