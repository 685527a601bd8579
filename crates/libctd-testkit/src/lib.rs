//! Test doubles for libctd, and the conformance suite every `Client` must pass.
//!
//! An engine's unit test drives the in-memory [`FakeRemote`] exactly as it
//! would drive containerd or HCS, and watches the events its `Backend` gets
//! through a [`RecordingBackend`]:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use libctd_core::{Client, CreateOptions, ErrorKind, EventType, Remote, Result, discard_stdio};
//! use libctd_testkit::conformance::Program;
//! use libctd_testkit::fake::{Op, ProcessScript, fake_spec};
//! use libctd_testkit::{FakeRemote, RecordingBackend, capture_stdio};
//!
//! /// The engine code under test: restarts a stopped container.
//! async fn restart(client: &dyn Client, id: &str) -> Result<u32> {
//!     let previous = client.delete_task(id).await?;
//!     tracing::info!(id, code = previous.exit_code, "restarting");
//!     client.start(id, None, false, discard_stdio()).await
//! }
//!
//! # #[tokio::main] async fn main() {
//! let remote = FakeRemote::new();
//! let events = Arc::new(RecordingBackend::new());
//! let client = remote.new_client("engine", events.clone()).await.unwrap();
//! let wait = Duration::from_secs(5);
//!
//! // A container that prints, then exits with 3 (scripted).
//! remote.script().process("web", "init", ProcessScript::new().exit_code(3));
//! let spec = fake_spec(&Program::Print("ready\n".into()), false);
//! client.create("web", &spec, CreateOptions::default()).await.unwrap();
//! let (attach, output) = capture_stdio();
//! client.start("web", None, false, attach).await.unwrap();
//! assert_eq!(output.wait_stdout(wait).await.unwrap(), b"ready\n");
//! let exit = events.next_event("web", EventType::Exit, wait).await.unwrap();
//! assert_eq!(exit.exit_code, 3);
//!
//! // The engine restarts it: a new start event arrives.
//! restart(&*client, "web").await.unwrap();
//! events.next_event("web", EventType::Start, wait).await.unwrap(); // the first start
//! events.next_event("web", EventType::Start, wait).await.unwrap(); // the restart
//!
//! // And when the daemon fails, the engine sees a typed error.
//! remote.script().fail(Some(Op::DeleteTask), Some("web"), ErrorKind::Unavailable, "daemon gone");
//! let err = restart(&*client, "web").await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Unavailable);
//! # }
//! ```
//!
//! The pieces:
//! - [`fake`]: [`FakeRemote`] / [`FakeClient`], an in-memory state machine with
//!   the real backends' error kinds and event order, scriptable (faults,
//!   delays, exit codes, output, OOM kills, version), and [`FakeFixture`].
//! - [`RecordingBackend`]: a `Backend` that records events and lets a test
//!   await "the next event of type T for container C" with a deadline; its
//!   handler can be held or made to fail.
//! - [`capture_stdio`]: a stdio callback that collects a process's output and
//!   gives the test its stdin.
//! - [`conformance`]: the behaviour suite every `Client` must pass, expanded
//!   into named tests by [`conformance_suite!`].
#![doc(test(attr(deny(warnings))))]

pub mod backend;
pub mod conformance;
#[cfg(all(unix, feature = "containerd"))]
pub mod containerd;
pub mod fake;
#[cfg(all(unix, feature = "containerd"))]
pub mod namespace;

pub use backend::{CapturedStdio, Hold, RecordedEvent, RecordingBackend, capture_stdio};
pub use fake::{FakeClient, FakeFixture, FakeRemote, FakeRemoteBuilder};
