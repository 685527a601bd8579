#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

#[cfg(unix)]
mod backoff;
#[cfg(unix)]
mod bundles;
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
#[cfg(unix)]
mod events;
#[cfg(unix)]
mod fifo;
#[cfg(all(unix, test))]
mod fuzz;
#[cfg(unix)]
mod image_store;
#[cfg(unix)]
mod images;
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
mod runtimes;
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
mod sync;
#[cfg(unix)]
mod validate;

#[cfg(unix)]
pub use client::{DEFAULT_RUNTIME, LinuxClient, SHIM_GROUP_KEY};
#[cfg(unix)]
pub use config::{
    DEFAULT_RPC_TIMEOUT, DEFAULT_STATE_DIR, HealthCheck, Keepalive, LinuxConfig,
    LinuxRemoteBuilder, LogLevel, MAX_KEEPALIVE, MAX_RPC_TIMEOUT, MIN_KEEPALIVE, PluginConfig,
};
#[cfg(unix)]
pub use image_store::{
    BlobWritten, ContentInfo, ImageStore, LEASE_EXPIRE_LABEL, Lease, SnapshotMount,
};
#[cfg(unix)]
pub use images::DEFAULT_SNAPSHOTTER;
#[cfg(unix)]
pub use remote::LinuxRemote;
#[cfg(unix)]
pub use runc::RuncOptions;
