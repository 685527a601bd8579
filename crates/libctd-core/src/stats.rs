//! Statistics, process summaries and resource updates, with a variant per platform.
//!
//! The figures are `#[non_exhaustive]`: a backend fills a `Default` value
//! field by field (or uses the constructors below), so new figures can be
//! added without breaking it.

use std::time::SystemTime;

/// A container's resource usage at one instant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// When the figures were read.
    pub read: SystemTime,
    /// The figures themselves.
    pub platform: PlatformStats,
}

impl Stats {
    /// Figures read at `read`.
    pub fn new(read: SystemTime, platform: PlatformStats) -> Self {
        Self { read, platform }
    }
}

/// Platform-specific statistics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PlatformStats {
    /// cgroup metrics of a Linux container.
    Linux(LinuxStats),
    /// HCS statistics of a Windows container.
    Windows(WindowsStats),
}

/// cgroup (v1 or v2) metrics of a Linux container, in common units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinuxStats {
    /// CPU accounting.
    pub cpu: CpuStats,
    /// Memory accounting.
    pub memory: MemoryStats,
    /// Number of tasks.
    pub pids: PidsStats,
    /// Block I/O, bytes per device and operation.
    pub blkio: Vec<BlkioEntry>,
}

/// CPU usage, in nanoseconds unless stated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuStats {
    /// Total CPU time consumed.
    pub usage_total_ns: u64,
    /// CPU time in user mode.
    pub usage_user_ns: u64,
    /// CPU time in kernel mode.
    pub usage_kernel_ns: u64,
    /// Total CPU time per CPU (cgroup v1 only; empty on v2).
    pub per_cpu_ns: Vec<u64>,
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Total time throttled.
    pub throttled_time_ns: u64,
}

/// Memory usage, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Current usage.
    pub usage: u64,
    /// Peak usage (cgroup v1 only).
    pub max_usage: u64,
    /// The limit in force (`u64::MAX`-like values mean unlimited).
    pub limit: u64,
    /// How many times the limit was hit.
    pub failcnt: u64,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache: u64,
    /// Anonymous memory (v1 `rss`, v2 `anon`).
    pub rss: u64,
    /// Swap in use.
    pub swap_usage: u64,
}

/// Task counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PidsStats {
    /// Tasks in the container now.
    pub current: u64,
    /// The limit (0 when unlimited).
    pub limit: u64,
}

/// One block-I/O counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// The operation: `Read`, `Write`, `Sync`, `Async`, `Total`...
    pub op: String,
    /// The counter's value.
    pub value: u64,
}

impl BlkioEntry {
    /// The counter `op` of device `major:minor`.
    pub fn new(major: u64, minor: u64, op: impl Into<String>, value: u64) -> Self {
        Self {
            major,
            minor,
            op: op.into(),
            value,
        }
    }
}

/// HCS statistics of a Windows container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowsStats {
    /// HCS's own timestamp of the reading, as it reported it.
    pub timestamp: String,
    /// When the container started, as HCS reported it.
    pub container_start_time: String,
    /// Time since start, in 100 ns units.
    pub uptime_100ns: u64,
    /// Processor usage.
    pub processor: WindowsProcessorStats,
    /// Memory usage.
    pub memory: WindowsMemoryStats,
    /// Storage usage.
    pub storage: WindowsStorageStats,
}

/// Processor usage of a Windows container, in 100 ns units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowsProcessorStats {
    /// Total run time.
    pub total_runtime_100ns: u64,
    /// Run time in user mode.
    pub runtime_user_100ns: u64,
    /// Run time in kernel mode.
    pub runtime_kernel_100ns: u64,
}

/// Memory usage of a Windows container, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowsMemoryStats {
    /// Committed memory.
    pub commit_bytes: u64,
    /// Peak committed memory.
    pub commit_peak_bytes: u64,
    /// Private working set.
    pub private_working_set_bytes: u64,
}

/// Storage usage of a Windows container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowsStorageStats {
    /// Normalised read count.
    pub read_count_normalized: u64,
    /// Bytes read.
    pub read_size_bytes: u64,
    /// Normalised write count.
    pub write_count_normalized: u64,
    /// Bytes written.
    pub write_size_bytes: u64,
}

/// One process of a container, from [`Client::summary`](crate::Client::summary).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Summary {
    /// A Linux process.
    Linux(LinuxProcess),
    /// A Windows process.
    Windows(WindowsProcess),
}

impl Summary {
    /// The process's pid, on either platform.
    pub fn pid(&self) -> u32 {
        match self {
            Summary::Linux(p) => p.pid,
            Summary::Windows(p) => p.process_id,
        }
    }
}

/// A process of a Linux container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinuxProcess {
    /// The host pid.
    pub pid: u32,
    /// The exec id, when the runtime reports it.
    pub exec_id: Option<String>,
}

impl LinuxProcess {
    /// The process `pid`, with its exec id when the runtime reports it.
    pub fn new(pid: u32, exec_id: Option<String>) -> Self {
        Self { pid, exec_id }
    }
}

/// A process of a Windows container (an HCS `ProcessList` item).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowsProcess {
    /// The process id.
    pub process_id: u32,
    /// The executable's name.
    pub image_name: String,
    /// When it was created, as HCS reported it.
    pub create_timestamp: String,
    /// User time, in 100 ns units.
    pub user_time_100ns: u64,
    /// Kernel time, in 100 ns units.
    pub kernel_time_100ns: u64,
    /// Committed memory, in bytes.
    pub memory_commit_bytes: u64,
    /// Private working set, in bytes.
    pub memory_working_set_private_bytes: u64,
    /// Shared working set, in bytes.
    pub memory_working_set_shared_bytes: u64,
}

/// New resource limits for a running container, from
/// [`Client::update_resources`](crate::Client::update_resources).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// Built once per update call and passed by reference: boxing would only make
// callers' code noisier.
#[allow(clippy::large_enum_variant)]
pub enum Resources {
    /// OCI Linux resources (cgroup limits).
    Linux(oci_spec::runtime::LinuxResources),
    /// OCI Windows resources.
    Windows(oci_spec::runtime::WindowsResources),
}
