//! The libctd contract: what a container engine sees of any platform.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use libctd_core::{Backend, BoxError, EventDispatcher, EventInfo, EventType, INIT_PROCESS_ID};
//!
//! // The engine implements `Backend` to hear about its containers...
//! struct Engine(tokio::sync::mpsc::UnboundedSender<String>);
//!
//! #[async_trait]
//! impl Backend for Engine {
//!     async fn process_event(
//!         &self,
//!         container_id: &str,
//!         event: EventType,
//!         info: EventInfo,
//!     ) -> Result<(), BoxError> {
//!         self.0.send(format!("{container_id} {event} {}", info.exit_code))?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! // ...and a backend delivers events to it, in order per container.
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let events = EventDispatcher::new(Arc::new(Engine(tx))).unwrap();
//! for (event, code) in [(EventType::Start, 0), (EventType::Exit, 3)] {
//!     let info = EventInfo::new("web", INIT_PROCESS_ID).with_exit_code(code);
//!     events.dispatch(event, info);
//! }
//! assert_eq!(rx.recv().await.unwrap(), "web start 0");
//! assert_eq!(rx.recv().await.unwrap(), "web exit 3");
//! # }
//! ```
//!
//! The pieces:
//! - [`Client`]: the 18 operations on containers; [`Remote`]: the service that
//!   hands out clients (each backend builds its own with a typed builder).
//! - [`Backend`]: the engine's event callback, fed through the per-container
//!   [`EventQueue`] by an [`EventDispatcher`].
//! - [`EventType`], [`EventInfo`], [`Status`]: what happened, and in what state a
//!   container is.
//! - [`DirectIo`], [`StdioCallback`]: a process's raw streams, handed to the engine.
//! - [`Stats`], [`Summary`], [`Resources`]: per-platform figures and limits.
//! - [`Error`], [`ErrorKind`]: one error type, classified.
//! - [`validate_container_id`] and friends: input checks every backend applies
//!   before touching a path or a daemon.
#![doc(test(attr(deny(warnings))))]

mod backend;
mod client;
mod error;
mod event;
mod id;
mod queue;
mod remote;
mod stats;
mod status;
mod stdio;

pub use backend::Backend;
pub use client::{
    Client, CreateOptions, MAX_SIGNAL, Restored, RuntimeOptions, TaskExit, Version,
    validate_signal, validate_terminal_size,
};
pub use error::{BoxError, Error, ErrorContext, ErrorKind, Report, Result};
pub use event::{EventInfo, EventType, UNKNOWN_EXIT_CODE};
pub use id::{
    INIT_PROCESS_ID, MAX_ID_LEN, validate_container_id, validate_namespace, validate_process_id,
};
pub use queue::{EventDispatcher, EventQueue};
pub use remote::Remote;
pub use stats::{
    BlkioEntry, CpuStats, LinuxProcess, LinuxStats, MemoryStats, PidsStats, PlatformStats,
    Resources, Stats, Summary, WindowsMemoryStats, WindowsProcess, WindowsProcessorStats,
    WindowsStats, WindowsStorageStats,
};
pub use status::Status;
pub use stdio::{
    DirectIo, OutputStream, StdinStream, StdioAttachment, StdioCallback, discard_stdio,
    stdio_callback,
};

/// Re-exported for implementing [`Backend`], [`Client`] and [`Remote`].
pub use async_trait::async_trait;
/// Re-exported so that engines and backends name the same OCI types.
pub use oci_spec;
