//! Test doubles for libctd and the conformance suite every `Client` must pass.
//!
//! - [`RecordingBackend`]: a `Backend` that records events and lets a test
//!   await "the next event of type T for container C" with a deadline.
//! - [`capture_stdio`]: a stdio callback that collects a process's output and
//!   gives the test its stdin.
//! - [`conformance`]: the suite, with [`conformance_suite!`].

pub mod backend;
pub mod conformance;
#[cfg(all(unix, feature = "containerd"))]
pub mod containerd;
pub mod fake;

pub use backend::{CapturedStdio, Hold, RecordedEvent, RecordingBackend, capture_stdio};
pub use fake::{FakeClient, FakeFixture, FakeRemote};
