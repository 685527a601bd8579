//! Serde types of the HCS schema-2 documents the client sends and reads.
//!
//! Field names follow HCS exactly (PascalCase, with `SizeInMB` and `QoS`),
//! as hcsshim's schema2 package names them. Optional fields are omitted when
//! unset, so the documents stay minimal. The documents a compute system is
//! made from decode strictly (an unknown field is an error), as the Windows
//! Server 2022 guest reads them; the utility VM's types and the modify
//! requests that hot-add its devices are in `vm.rs`.
//!
//! ```
//! use libctd_windows::schema::{ModifyProcessRequest, PropertyQuery};
//!
//! let resize = ModifyProcessRequest::console_size(24, 80);
//! assert_eq!(
//!     serde_json::to_string(&resize).unwrap(),
//!     r#"{"Operation":"ConsoleSize","ConsoleSize":{"Height":24,"Width":80}}"#
//! );
//! let query = PropertyQuery::new(&["Statistics"]);
//! assert_eq!(serde_json::to_string(&query).unwrap(), r#"{"PropertyTypes":["Statistics"]}"#);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod network;
mod vm;

pub use network::*;
pub use vm::*;

/// A schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SchemaVersion {
    /// Major version (2).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl SchemaVersion {
    /// Schema 2.1, understood by Windows Server 2019 and later.
    pub const V2_1: SchemaVersion = SchemaVersion { major: 2, minor: 1 };
}

/// The configuration of a compute system (`HcsCreateComputeSystem`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ComputeSystem {
    /// Who owns the system (the client's namespace).
    #[serde(default)]
    pub owner: String,
    /// The schema version of this document.
    pub schema_version: SchemaVersion,
    /// Terminate the system when its last handle is closed.
    #[serde(default)]
    pub should_terminate_on_last_handle_closed: bool,
    /// The utility VM hosting this container (Hyper-V isolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting_system_id: Option<String>,
    /// A process-isolated container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// A container hosted by the utility VM `HostingSystemId` (Hyper-V
    /// isolation): its own schema version and container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_system: Option<HostedSystem>,
    /// The Hyper-V utility VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<VirtualMachine>,
}

/// A container, hosted or not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Container {
    /// The guest operating system's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_os: Option<GuestOs>,
    /// The container's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Host directories visible in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapped_directories: Vec<MappedDirectory>,
    /// Host named pipes visible in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapped_pipes: Vec<MappedPipe>,
    /// Processor limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<ContainerProcessor>,
    /// Memory limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ContainerMemory>,
    /// Network settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
}

/// Guest OS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GuestOs {
    /// The container's host name.
    pub host_name: String,
}

/// A container's storage: its mounted scratch volume and image layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Storage {
    /// The volume GUID path of the mounted scratch, with a trailing backslash
    /// (process isolation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The read-only image layers, parents first.
    #[serde(default)]
    pub layers: Vec<Layer>,
    /// Storage limits.
    #[serde(rename = "QoS", default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<StorageQoS>,
}

/// One image layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Layer {
    /// `NameToGuid` of the layer folder's base name.
    pub id: String,
    /// The layer folder.
    pub path: String,
}

/// Storage limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StorageQoS {
    /// Maximum I/O operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_maximum: Option<u64>,
    /// Maximum bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_maximum: Option<u64>,
}

/// A host directory mapped into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MappedDirectory {
    /// The host directory.
    pub host_path: String,
    /// Where it appears in the container.
    pub container_path: String,
    /// Whether the container may only read it.
    pub read_only: bool,
}

/// A host named pipe mapped into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MappedPipe {
    /// The pipe's name in the container (without `\\.\pipe\`).
    pub container_pipe_name: String,
    /// The host pipe.
    pub host_path: String,
}

/// Processor limits of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ContainerProcessor {
    /// Number of processors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Maximum, in hundredths of a percent of the processors (1..=10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u32>,
    /// Relative weight (shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Memory limit of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ContainerMemory {
    /// The limit, in MiB.
    #[serde(rename = "SizeInMB")]
    pub size_in_mb: u64,
}

/// Network settings of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Networking {
    /// Allow DNS queries of unqualified names.
    pub allow_unqualified_dns_query: bool,
    /// DNS suffixes, comma-separated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dns_search_list: String,
    /// The container whose network stack this one shares.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network_shared_container_name: String,
    /// The network namespace (compartment) id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// A container hosted in a utility VM (Hyper-V isolation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HostedSystem {
    /// The schema version of the hosted container.
    pub schema_version: SchemaVersion,
    /// The container.
    pub container: Container,
}

/// The parameters of a new process (`HcsCreateProcess`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessParameters {
    /// The command line (escaped arguments joined by spaces).
    pub command_line: String,
    /// The working directory.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_directory: String,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The user to run as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Run on a pseudo console.
    pub emulate_console: bool,
    /// Create a pipe for standard input.
    pub create_std_in_pipe: bool,
    /// Create a pipe for standard output.
    pub create_std_out_pipe: bool,
    /// Create a pipe for standard error.
    pub create_std_err_pipe: bool,
    /// The console size, `[Height, Width]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u16; 2]>,
}

/// A `HcsModifyProcess` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyProcessRequest {
    /// `ConsoleSize` or `CloseHandle`.
    pub operation: String,
    /// The new console size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    /// The handle to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_handle: Option<CloseHandle>,
}

impl ModifyProcessRequest {
    /// Resize the console.
    pub fn console_size(height: u16, width: u16) -> Self {
        Self {
            operation: "ConsoleSize".to_owned(),
            console_size: Some(ConsoleSize { height, width }),
            close_handle: None,
        }
    }

    /// Close the process's standard input.
    pub fn close_stdin() -> Self {
        Self {
            operation: "CloseHandle".to_owned(),
            console_size: None,
            close_handle: Some(CloseHandle {
                handle: "StdIn".to_owned(),
            }),
        }
    }
}

/// A console size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsoleSize {
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
}

/// Which handle to close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloseHandle {
    /// `StdIn`, `StdOut` or `StdErr`.
    pub handle: String,
}

/// A `HcsSignalProcess` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignalProcessOptions {
    /// `CtrlC`, `CtrlBreak`, `CtrlClose`, `CtrlLogOff` or `CtrlShutdown`.
    pub signal: String,
}

/// A property query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PropertyQuery {
    /// The property types asked for.
    pub property_types: Vec<String>,
}

impl PropertyQuery {
    /// The query of a compute system's statistics.
    pub const STATISTICS: &'static str = r#"{"PropertyTypes":["Statistics"]}"#;
    /// The query of a compute system's processes.
    pub const PROCESS_LIST: &'static str = r#"{"PropertyTypes":["ProcessList"]}"#;
    /// The query of whether Windows updates are pending.
    pub const PENDING_UPDATES: &'static str = r#"{"PropertyTypes":["PendingUpdates"]}"#;

    /// A query of `types`.
    pub fn new(types: &[&str]) -> Self {
        Self {
            property_types: types.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

/// The answer to a property query; only the asked-for fields are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Properties {
    /// The compute system's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `Statistics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
    /// `ProcessList`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_list: Option<Vec<ProcessDetails>>,
    /// `PendingUpdates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub are_updates_pending: Option<bool>,
}

/// HCS statistics of a compute system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Statistics {
    /// When the figures were read.
    pub timestamp: String,
    /// When the container started.
    pub container_start_time: String,
    /// Time since start, in 100 ns units.
    pub uptime_100ns: u64,
    /// Processor usage.
    pub processor: ProcessorStats,
    /// Memory usage.
    pub memory: MemoryStats,
    /// Storage usage.
    pub storage: StorageStats,
}

/// Processor usage, in 100 ns units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessorStats {
    /// Total run time.
    pub total_runtime_100ns: u64,
    /// User-mode run time.
    pub runtime_user_100ns: u64,
    /// Kernel-mode run time.
    pub runtime_kernel_100ns: u64,
}

/// Memory usage, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MemoryStats {
    /// Committed memory.
    pub memory_usage_commit_bytes: u64,
    /// Peak committed memory.
    pub memory_usage_commit_peak_bytes: u64,
    /// Private working set.
    pub memory_usage_private_working_set_bytes: u64,
}

/// Storage usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StorageStats {
    /// Normalised read count.
    pub read_count_normalized: u64,
    /// Bytes read.
    pub read_size_bytes: u64,
    /// Normalised write count.
    pub write_count_normalized: u64,
    /// Bytes written.
    pub write_size_bytes: u64,
}

/// One item of a `ProcessList` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessDetails {
    /// The process id.
    pub process_id: u32,
    /// The executable's name.
    pub image_name: String,
    /// When it was created.
    pub create_timestamp: String,
    /// User time, in 100 ns units.
    pub user_time_100ns: u64,
    /// Kernel time, in 100 ns units.
    pub kernel_time_100ns: u64,
    /// Committed memory.
    pub memory_commit_bytes: u64,
    /// Private working set.
    pub memory_working_set_private_bytes: u64,
    /// Shared working set.
    pub memory_working_set_shared_bytes: u64,
}
