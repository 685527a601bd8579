#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod client;
mod detach;
mod error;
mod event;
mod event_stream;
mod id;
mod image;
pub mod metrics;
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
pub use detach::{Detached, detached};
pub use error::{BoxError, Error, ErrorContext, ErrorKind, Report, Result};
pub use event::{EventInfo, EventType, UNKNOWN_EXIT_CODE};
pub use event_stream::{Event, EventStream};
pub use id::{
    INIT_PROCESS_ID, MAX_ID_LEN, validate_container_id, validate_namespace, validate_process_id,
};
pub use image::{
    Archive, IMAGE_ROOTFS_PATH, Image, ImageConfig, ImageRootfs, Images, ImportOptions,
    ImportProgress, ProgressCallback, images_unsupported,
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
