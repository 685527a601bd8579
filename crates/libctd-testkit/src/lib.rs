#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

pub mod backend;
pub mod conformance;
#[cfg(all(unix, feature = "containerd"))]
pub mod containerd;
pub mod fake;
pub mod image;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(all(unix, feature = "containerd"))]
pub mod namespace;

pub use backend::{CapturedStdio, Hold, RecordedEvent, RecordingBackend, capture_stdio};
pub use fake::{FakeClient, FakeFixture, FakeRemote, FakeRemoteBuilder};
