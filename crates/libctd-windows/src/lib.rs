//! libctd's Windows backend: containers in-process over the Host Compute
//! Service (HCS v2, computecore.dll), with a simulated HCS for tests.
//!
//! [`WindowsClient`] holds all the logic and drives any [`hcs::Hcs`]: on
//! Windows the real computecore.dll (`hcs::ffi`, resolved at run time, so a
//! host without the Containers feature gets a clear `Unavailable` error instead
//! of a binary that does not start), everywhere the simulation [`hcs::sim::Sim`].
//!
//! ```
//! use std::sync::Arc;
//! use libctd_core::oci_spec::runtime::{ProcessBuilder, RootBuilder, SpecBuilder, WindowsBuilder};
//! use libctd_core::{discard_stdio, Client, CreateOptions, EventType, Status};
//! use libctd_windows::{WindowsClient, hcs::sim::Sim};
//! # use libctd_core::{async_trait, Backend, BoxError, EventInfo};
//! # struct Engine(tokio::sync::mpsc::UnboundedSender<(EventType, u32)>);
//! # #[async_trait]
//! # impl Backend for Engine {
//! #     async fn process_event(&self, _: &str, e: EventType, i: EventInfo) -> Result<(), BoxError> {
//! #         self.0.send((e, i.exit_code))?; Ok(())
//! #     }
//! # }
//!
//! # #[tokio::main] async fn main() {
//! let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
//! let sim = Arc::new(Sim::new());
//! let client = WindowsClient::new(sim.clone(), "moby", Arc::new(Engine(tx))).unwrap();
//!
//! // A process-isolated container whose init process prints and exits with 3.
//! let spec = SpecBuilder::default()
//!     .root(RootBuilder::default()
//!         .path(r"\\?\Volume{0b8e5fd4-1}\")
//!         .readonly(false)
//!         .build().unwrap())
//!     .mounts(vec![])
//!     .process(ProcessBuilder::default()
//!         .args(vec!["echo".into(), "hi".into(), ";".into(), "exit".into(), "3".into()])
//!         .cwd(r"C:\")
//!         .build().unwrap())
//!     .windows(WindowsBuilder::default()
//!         .layer_folders(vec![r"C:\layers\base".into(), r"C:\layers\scratch".into()])
//!         .build().unwrap())
//!     .build().unwrap();
//! client.create("web", &spec, CreateOptions::default()).await.unwrap();
//! assert_eq!(client.status("web").await.unwrap(), Status::Created);
//! client.start("web", None, false, discard_stdio()).await.unwrap();
//!
//! assert_eq!(events.recv().await.unwrap().0, EventType::Create);
//! assert_eq!(events.recv().await.unwrap().0, EventType::Start);
//! assert_eq!(events.recv().await.unwrap(), (EventType::Exit, 3));
//! assert_eq!(client.delete_task("web").await.unwrap().exit_code, 3);
//! client.delete("web").await.unwrap();
//! assert!(sim.compute_systems().is_empty());
//! # }
//! ```
//!
//! Modules: [`hcs`] (the `Hcs` trait, the simulation and the FFI binding),
//! [`schema`] (HCS documents), [`convert`] (OCI spec to documents), [`error`]
//! (HRESULTs), [`client`] and [`remote`].
#![doc(test(attr(deny(warnings))))]

pub mod client;
pub mod convert;
pub mod error;
pub mod hcs;
pub mod remote;
pub mod schema;

pub use client::{ClientSettings, UNKNOWN_EXIT_CODE, WindowsClient};
pub use remote::{PlatformHcs, WindowsConfig, WindowsRemote, WindowsRemoteBuilder};
