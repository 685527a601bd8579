//! OCI spec (its `windows` section) to HCS documents, and HCS answers to
//! libctd's types.
//!
//! Every check gives an `InvalidArgument` error naming the offending spec
//! field; a field libctd does not support is refused by name too, never
//! dropped (`unsupported.rs`).
//!
//! ```
//! use libctd_windows::convert::{join_args, split_command_line};
//!
//! let line = join_args(&["cmd".into(), "/c".into(), "echo hi there".into()]);
//! assert_eq!(line, r#"cmd /c "echo hi there""#);
//! assert_eq!(split_command_line(&line), vec!["cmd", "/c", "echo hi there"]);
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{Error, PlatformStats, Result, Stats, Summary, WindowsProcess, WindowsStats};

use crate::error::HcsError;
use crate::hcs::Hcs;
use crate::schema::{
    ComputeSystem, Container, ContainerMemory, ContainerProcessor, GuestOs, HostedSystem, Layer,
    MappedDirectory, MappedPipe, Networking, ProcessDetails, ProcessParameters, Properties,
    SchemaVersion, Storage, StorageQoS,
};

mod command_line;
mod hyperv;
mod network;
mod unsupported;

pub use command_line::{escape_arg, join_args, split_command_line};

pub use hyperv::{
    CONTAINER_SCRATCH_LUN, GUEST_ROOT, Reversible, UtilityVmPlan, normalize_memory_mb,
};

/// How a container is isolated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Sharing the host's kernel.
    Process,
    /// In its own utility VM.
    HyperV,
}

/// A container's compute-system document and what the client needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerConfig {
    /// The container's document for `HcsCreateComputeSystem`: a top-level
    /// `Container` with process isolation; with Hyper-V isolation a
    /// `HostedSystem`, whose `HostingSystemId` is to be set to the utility
    /// VM's id (see [`utility_vm_id`]).
    pub document: ComputeSystem,
    /// With Hyper-V isolation, the utility VM and what is hot-added to it,
    /// all set up before the container is created.
    pub utility_vm: Option<UtilityVmPlan>,
    /// Its isolation.
    pub isolation: Isolation,
    /// A servicing container (Windows update): it emits no events.
    pub servicing: bool,
    /// HNS endpoints to put in a namespace created for the container
    /// (`windows.network.endpointList` without a `networkNamespace`); the
    /// namespace's id goes into `Networking.Namespace`.
    pub endpoints: Vec<String>,
}

/// The compute system id of the utility VM of the container whose compute
/// system id is `system_id` (`@` never occurs in ids).
pub fn utility_vm_id(system_id: &str) -> String {
    format!("{system_id}@uvm")
}

/// The prefix of named-pipe mount destinations.
const PIPE_PREFIX: &str = r"\\.\pipe\";

fn invalid(field: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("invalid spec: {field} {what}"))
}

/// Builds the compute-system document of a container owned by `owner`.
pub fn compute_system<H: Hcs>(hcs: &H, owner: &str, spec: &Spec) -> Result<ContainerConfig> {
    let windows = spec
        .windows()
        .as_ref()
        .ok_or_else(|| invalid("windows", "is required for a Windows container"))?;
    unsupported::refuse_unsupported(windows)?;
    let layer_folders = windows.layer_folders().clone().unwrap_or_default();
    if layer_folders.len() < 2 {
        return Err(invalid(
            "windows.layerFolders",
            format!(
                "needs at least two entries (parent layers, then the scratch layer), got {}",
                layer_folders.len()
            ),
        ));
    }
    for (i, folder) in layer_folders.iter().enumerate() {
        if folder.trim().is_empty() {
            return Err(invalid(&format!("windows.layerFolders[{i}]"), "is empty"));
        }
    }
    let parents = &layer_folders[..layer_folders.len() - 1];
    let mut layers = Vec::with_capacity(parents.len());
    for folder in parents {
        let name = base_name(folder);
        let id = hcs.name_to_guid(name).map_err(|e| {
            Error::new(
                e.kind(),
                format!("cannot compute the layer id of {folder:?}"),
            )
            .with_source(e)
        })?;
        layers.push(Layer {
            id,
            path: folder.clone(),
        });
    }

    let isolation = if windows.hyperv().is_some() {
        Isolation::HyperV
    } else {
        Isolation::Process
    };

    let root = spec.root().as_ref();
    if root.and_then(|r| r.readonly()).unwrap_or(false) {
        return Err(invalid(
            "root.readonly",
            "is not supported: a Windows container's root is always writable",
        ));
    }
    let root_path = root
        .map(|r| r.path().to_string_lossy().into_owned())
        .unwrap_or_default();

    let storage_path = match isolation {
        Isolation::Process => {
            if root_path.is_empty() {
                return Err(invalid(
                    "root.path",
                    "must name the mounted scratch volume for process isolation",
                ));
            }
            let mut path = root_path;
            if !path.ends_with('\\') {
                path.push('\\');
            }
            Some(path)
        }
        Isolation::HyperV => {
            if !root_path.is_empty() {
                return Err(invalid("root.path", "must be empty with Hyper-V isolation"));
            }
            // The scratch mounted in the utility VM, its layers combined there.
            Some(GUEST_ROOT.to_owned())
        }
    };

    // oci-spec 0.10 has no getters for these fields: read them through serde.
    let resources: Option<OciResources> = mirror(&windows.resources(), "windows.resources")?;
    let resources = resources.as_ref();
    let qos = resources.and_then(|r| r.storage.as_ref()).and_then(|s| {
        let qos = StorageQoS {
            iops_maximum: s.iops.filter(|v| *v > 0),
            bandwidth_maximum: s.bps.filter(|v| *v > 0),
        };
        (qos != StorageQoS::default()).then_some(qos)
    });

    let mut processor = None;
    if let Some(cpu) = resources.and_then(|r| r.cpu.as_ref()) {
        let set = [
            cpu.count.is_some(),
            cpu.shares.is_some(),
            cpu.maximum.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set > 1 {
            return Err(invalid(
                "windows.resources.cpu",
                "may set only one of count, shares and maximum",
            ));
        }
        if let Some(count) = cpu.count {
            if count == 0 {
                return Err(invalid("windows.resources.cpu.count", "must be at least 1"));
            }
            let host = u64::from(hcs.host_cpu_count().max(1));
            processor = Some(ContainerProcessor {
                count: Some(u32::try_from(count.min(host)).unwrap_or(u32::MAX)),
                ..ContainerProcessor::default()
            });
        }
        if let Some(shares) = cpu.shares {
            processor = Some(ContainerProcessor {
                weight: Some(u32::from(shares)),
                ..ContainerProcessor::default()
            });
        }
        if let Some(maximum) = cpu.maximum {
            if maximum == 0 || maximum > 10_000 {
                return Err(invalid(
                    "windows.resources.cpu.maximum",
                    format!("{maximum} is out of range 1..=10000"),
                ));
            }
            processor = Some(ContainerProcessor {
                maximum: Some(u32::from(maximum)),
                ..ContainerProcessor::default()
            });
        }
    }

    let memory = match resources
        .and_then(|r| r.memory.as_ref())
        .and_then(|m| m.limit)
    {
        Some(limit) => {
            let mb = limit / 1024 / 1024;
            if mb == 0 {
                return Err(invalid(
                    "windows.resources.memory.limit",
                    format!("{limit} bytes is less than 1 MiB"),
                ));
            }
            Some(ContainerMemory { size_in_mb: mb })
        }
        None => None,
    };

    let mut mapped_directories = Vec::new();
    let mut mapped_pipes = Vec::new();
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        if mount.typ().as_deref().is_some_and(|t| !t.is_empty()) {
            return Err(invalid(
                &format!("mounts[{i}].type"),
                "is not supported on Windows: only bind mounts of host paths",
            ));
        }
        let destination = mount.destination().to_string_lossy().into_owned();
        if destination.is_empty() {
            return Err(invalid(&format!("mounts[{i}].destination"), "is empty"));
        }
        let source = mount
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if source.is_empty() {
            return Err(invalid(&format!("mounts[{i}].source"), "is empty"));
        }
        let read_only = mount
            .options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|opt| opt == "ro"));
        if let Some(pipe) = strip_prefix_ignore_case(&destination, PIPE_PREFIX) {
            if isolation == Isolation::HyperV {
                return Err(invalid(
                    &format!("mounts[{i}].destination"),
                    "names a pipe: mapped pipes are not supported with Hyper-V isolation",
                ));
            }
            if pipe.is_empty() {
                return Err(invalid(
                    &format!("mounts[{i}].destination"),
                    "names no pipe",
                ));
            }
            mapped_pipes.push(MappedPipe {
                container_pipe_name: pipe.to_owned(),
                host_path: source,
            });
        } else {
            mapped_directories.push(MappedDirectory {
                host_path: source,
                container_path: destination,
                read_only,
            });
        }
    }

    let network: Option<OciNetwork> = mirror(windows.network(), "windows.network")?;
    let networking = windows.network().as_ref().map(|n| Networking {
        allow_unqualified_dns_query: network
            .as_ref()
            .and_then(|m| m.allow_unqualified_dns_query)
            .unwrap_or(false),
        dns_search_list: n.dns_search_list().clone().unwrap_or_default().join(","),
        network_shared_container_name: n
            .network_shared_container_name()
            .clone()
            .unwrap_or_default(),
        namespace: n.network_namespace().clone().unwrap_or_default(),
    });
    let endpoints = network::endpoints(windows)?;

    // With Hyper-V isolation the container sees its layers and mounted
    // directories through the utility VM's shares.
    let utility_vm = match isolation {
        Isolation::Process => None,
        Isolation::HyperV => {
            let uvm = utility_vm_path(hcs, spec, parents)?;
            let scratch = layer_folders.last().cloned().unwrap_or_default();
            let plan = hyperv::plan(
                owner,
                &uvm,
                &scratch,
                &layers,
                &mut mapped_directories,
                memory.as_ref().map(|m| m.size_in_mb),
                processor.as_ref().and_then(|p| p.count),
            )?;
            layers.clone_from(&plan.guest_layers);
            Some(plan)
        }
    };

    let container = Container {
        guest_os: spec
            .hostname()
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| GuestOs {
                host_name: h.clone(),
            }),
        storage: Some(Storage {
            path: storage_path,
            layers,
            qos,
        }),
        mapped_directories,
        mapped_pipes,
        processor,
        memory,
        networking,
    };
    let (container, hosted_system) = match isolation {
        Isolation::Process => (Some(container), None),
        Isolation::HyperV => (
            None,
            Some(HostedSystem {
                schema_version: SchemaVersion::V2_1,
                container,
            }),
        ),
    };
    let document = ComputeSystem {
        owner: owner.to_owned(),
        schema_version: SchemaVersion::V2_1,
        should_terminate_on_last_handle_closed: true,
        hosting_system_id: None,
        container,
        hosted_system,
        virtual_machine: None,
    };

    Ok(ContainerConfig {
        document,
        utility_vm,
        isolation,
        servicing: windows.servicing().unwrap_or(false),
        endpoints,
    })
}

/// The parts of OCI's `windows.resources` read here.
#[derive(Debug, Default, serde::Deserialize)]
struct OciResources {
    memory: Option<OciMemory>,
    cpu: Option<OciCpu>,
    storage: Option<OciStorage>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct OciMemory {
    limit: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct OciCpu {
    count: Option<u64>,
    shares: Option<u16>,
    maximum: Option<u16>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct OciStorage {
    iops: Option<u64>,
    bps: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct OciNetwork {
    #[serde(rename = "allowUnqualifiedDNSQuery")]
    allow_unqualified_dns_query: Option<bool>,
}

/// Reads an OCI value through its serde form into a local mirror type.
fn mirror<T: serde::Serialize, M: serde::de::DeserializeOwned>(
    value: &Option<T>,
    field: &str,
) -> Result<Option<M>> {
    let Some(value) = value else {
        return Ok(None);
    };
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map(Some)
        .map_err(|e| invalid(field, format!("cannot be read: {e}")))
}

/// The utility VM: `windows.hyperv.utilityVMPath`, else the `UtilityVM`
/// folder of the first parent layer that holds one.
fn utility_vm_path<H: Hcs>(hcs: &H, spec: &Spec, parents: &[String]) -> Result<String> {
    if let Some(path) = spec
        .windows()
        .as_ref()
        .and_then(|w| w.hyperv().as_ref())
        .and_then(|h| h.utility_vm_path().clone())
        .filter(|p| !p.is_empty())
    {
        return Ok(path);
    }
    parents
        .iter()
        .find(|folder| hcs.has_utility_vm(folder))
        .map(|folder| join_windows(folder, "UtilityVM"))
        .ok_or_else(|| {
            invalid(
                "windows.layerFolders",
                "holds no layer with a UtilityVM folder, needed for Hyper-V isolation",
            )
        })
}

fn join_windows(dir: &str, name: &str) -> String {
    if dir.ends_with('\\') || dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}\\{name}")
    }
}

/// The last component of a Windows or POSIX path.
fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches(['\\', '/']);
    trimmed
        .rsplit(['\\', '/'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(trimmed)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The parameters of a process from its OCI description. Errors name the
/// offending field under `process` (`process.args`, `process.env[2]`...).
pub fn process_parameters(process: &Process, with_stdin: bool) -> Result<ProcessParameters> {
    let field = "process";
    let command_line = match process.command_line().as_ref().filter(|c| !c.is_empty()) {
        Some(line) => line.clone(),
        None => {
            let args = process.args().clone().unwrap_or_default();
            if args.is_empty() {
                return Err(invalid(
                    &format!("{field}.args"),
                    "is empty and no commandLine is set",
                ));
            }
            join_args(&args)
        }
    };
    if command_line.contains('\0') {
        return Err(invalid(
            &format!("{field}.args"),
            "contains a NUL character",
        ));
    }
    let mut environment = BTreeMap::new();
    for (i, entry) in process.env().iter().flatten().enumerate() {
        match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                environment.insert(key.to_owned(), value.to_owned());
            }
            _ => {
                return Err(invalid(
                    &format!("{field}.env[{i}]"),
                    format!("{entry:?} is not of the form KEY=value"),
                ));
            }
        }
    }
    let terminal = process.terminal().unwrap_or(false);
    let console_size = match (terminal, process.console_size()) {
        (true, Some(size)) => {
            let h = u16::try_from(size.height()).ok().filter(|v| *v > 0);
            let w = u16::try_from(size.width()).ok().filter(|v| *v > 0);
            match (h, w) {
                (Some(h), Some(w)) => Some([h, w]),
                _ => {
                    return Err(invalid(
                        &format!("{field}.consoleSize"),
                        "must be 1 to 65535 in each dimension",
                    ));
                }
            }
        }
        _ => None,
    };
    Ok(ProcessParameters {
        command_line,
        working_directory: process.cwd().to_string_lossy().into_owned(),
        environment,
        user: process.user().username().clone().unwrap_or_default(),
        emulate_console: terminal,
        create_std_in_pipe: with_stdin,
        create_std_out_pipe: true,
        create_std_err_pipe: !terminal,
        console_size,
    })
}

/// libctd statistics from a `Statistics` answer.
pub fn stats(properties: &Properties) -> Stats {
    let s = properties.statistics.clone().unwrap_or_default();
    let mut w = WindowsStats::default();
    w.timestamp = s.timestamp;
    w.container_start_time = s.container_start_time;
    w.uptime_100ns = s.uptime_100ns;
    w.processor.total_runtime_100ns = s.processor.total_runtime_100ns;
    w.processor.runtime_user_100ns = s.processor.runtime_user_100ns;
    w.processor.runtime_kernel_100ns = s.processor.runtime_kernel_100ns;
    w.memory.commit_bytes = s.memory.memory_usage_commit_bytes;
    w.memory.commit_peak_bytes = s.memory.memory_usage_commit_peak_bytes;
    w.memory.private_working_set_bytes = s.memory.memory_usage_private_working_set_bytes;
    w.storage.read_count_normalized = s.storage.read_count_normalized;
    w.storage.read_size_bytes = s.storage.read_size_bytes;
    w.storage.write_count_normalized = s.storage.write_count_normalized;
    w.storage.write_size_bytes = s.storage.write_size_bytes;
    Stats::new(SystemTime::now(), PlatformStats::Windows(w))
}

/// libctd summaries from a `ProcessList` answer.
pub fn summary(properties: &Properties) -> Vec<Summary> {
    properties
        .process_list
        .iter()
        .flatten()
        .map(|p: &ProcessDetails| {
            let mut w = WindowsProcess::default();
            w.process_id = p.process_id;
            w.image_name.clone_from(&p.image_name);
            w.create_timestamp.clone_from(&p.create_timestamp);
            w.user_time_100ns = p.user_time_100ns;
            w.kernel_time_100ns = p.kernel_time_100ns;
            w.memory_commit_bytes = p.memory_commit_bytes;
            w.memory_working_set_private_bytes = p.memory_working_set_private_bytes;
            w.memory_working_set_shared_bytes = p.memory_working_set_shared_bytes;
            Summary::Windows(w)
        })
        .collect()
}

/// Parses a properties answer.
pub fn parse_properties(document: &str) -> Result<Properties> {
    serde_json::from_str(document).map_err(|e| {
        Error::system("HCS answered a property query with an unreadable document").with_source(e)
    })
}

/// Why a property query gave no properties.
pub(crate) enum PropertiesError {
    /// HCS refused the query.
    Refused(HcsError),
    /// HCS's answer could not be read.
    Unreadable(Error),
}

/// Asks `system` the property query `query` (one of [`PropertyQuery`](crate::schema::PropertyQuery)'s
/// documents) and reads the answer.
pub(crate) async fn system_properties<H: Hcs>(
    hcs: &H,
    system: &H::System,
    query: &str,
) -> std::result::Result<Properties, PropertiesError> {
    let doc = hcs
        .get_compute_system_properties(system, query)
        .await
        .map_err(PropertiesError::Refused)?;
    parse_properties(&doc).map_err(PropertiesError::Unreadable)
}
