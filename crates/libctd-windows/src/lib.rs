#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

pub mod client;
pub mod convert;
pub mod error;
mod exits;
pub mod hcs;
pub mod remote;
pub mod schema;

pub use client::{ClientSettings, UNKNOWN_EXIT_CODE, WindowsClient};
pub use remote::{PlatformHcs, WindowsConfig, WindowsRemote, WindowsRemoteBuilder};
