//! Conversions between libctd's types and containerd's wire types: OCI
//! documents as JSON `Any`s, the runc shim's option messages, cgroup metrics,
//! timestamps, and `tonic::Status` into classified [`Error`]s.
//!
//! Over 600 lines: about half is the hand-written cgroup metrics messages and
//! their tests, which issue 12 replaces with types generated from .proto files.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libctd_core::{
    BlkioEntry, CpuStats, Error, ErrorKind, LinuxStats, MemoryStats, PidsStats, Status,
};
use prost::Message;
use prost_types::{Any, Timestamp};
use serde::Serialize;

/// Type URL of an OCI runtime spec carried as JSON.
pub(crate) const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// Type URL of an OCI process carried as JSON.
pub(crate) const PROCESS_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// Type URL of OCI Linux resources carried as JSON.
pub(crate) const RESOURCES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
/// Type URL of the runc shim's options (bare: a leading `/` breaks task create in 1.6).
pub(crate) const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";
/// Type URL of the runc shim's checkpoint options.
pub(crate) const CHECKPOINT_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.CheckpointOptions";
/// Type URL of the runc shim's per-process details.
pub(crate) const PROCESS_DETAILS_TYPE_URL: &str = "containerd.runc.v1.ProcessDetails";
/// Type URL of cgroup v1 metrics.
pub(crate) const CGROUPS_V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
/// Type URL of cgroup v2 metrics.
pub(crate) const CGROUPS_V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";

/// `containerd.runc.v1.Options`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RuncOptionsProto {
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    #[prost(string, tag = "6")]
    pub binary_name: String,
    #[prost(string, tag = "7")]
    pub root: String,
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
    #[prost(string, tag = "10")]
    pub criu_image_path: String,
    #[prost(string, tag = "11")]
    pub criu_work_path: String,
}

/// `containerd.runc.v1.CheckpointOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CheckpointOptionsProto {
    #[prost(bool, tag = "1")]
    pub exit: bool,
    #[prost(bool, tag = "2")]
    pub open_tcp: bool,
    #[prost(bool, tag = "3")]
    pub external_unix_sockets: bool,
    #[prost(bool, tag = "4")]
    pub terminal: bool,
    #[prost(bool, tag = "5")]
    pub file_locks: bool,
    #[prost(string, repeated, tag = "6")]
    pub empty_namespaces: Vec<String>,
    #[prost(string, tag = "7")]
    pub cgroups_mode: String,
    #[prost(string, tag = "8")]
    pub image_path: String,
    #[prost(string, tag = "9")]
    pub work_path: String,
}

/// `containerd.runc.v1.ProcessDetails`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProcessDetailsProto {
    #[prost(string, tag = "1")]
    pub exec_id: String,
}

/// cgroup v1 metrics (`io.containerd.cgroups.v1.Metrics`), the fields libctd reads.
pub(crate) mod v1 {
    /// The top-level message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Metrics {
        #[prost(message, optional, tag = "2")]
        pub pids: Option<PidsStat>,
        #[prost(message, optional, tag = "3")]
        pub cpu: Option<CpuStat>,
        #[prost(message, optional, tag = "4")]
        pub memory: Option<MemoryStat>,
        #[prost(message, optional, tag = "5")]
        pub blkio: Option<BlkIoStat>,
    }
    /// Task counts.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct PidsStat {
        #[prost(uint64, tag = "1")]
        pub current: u64,
        #[prost(uint64, tag = "2")]
        pub limit: u64,
    }
    /// CPU accounting.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct CpuStat {
        #[prost(message, optional, tag = "1")]
        pub usage: Option<CpuUsage>,
        #[prost(message, optional, tag = "2")]
        pub throttling: Option<Throttle>,
    }
    /// CPU time.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct CpuUsage {
        #[prost(uint64, tag = "1")]
        pub total: u64,
        #[prost(uint64, tag = "2")]
        pub kernel: u64,
        #[prost(uint64, tag = "3")]
        pub user: u64,
        #[prost(uint64, repeated, tag = "4")]
        pub per_cpu: Vec<u64>,
    }
    /// CFS throttling.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Throttle {
        #[prost(uint64, tag = "1")]
        pub periods: u64,
        #[prost(uint64, tag = "2")]
        pub throttled_periods: u64,
        #[prost(uint64, tag = "3")]
        pub throttled_time: u64,
    }
    /// Memory accounting.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MemoryStat {
        #[prost(uint64, tag = "1")]
        pub cache: u64,
        #[prost(uint64, tag = "2")]
        pub rss: u64,
        // Tags as containerd 1.6 sends them (checked with `protoc --decode_raw`).
        #[prost(message, optional, tag = "33")]
        pub usage: Option<MemoryEntry>,
        #[prost(message, optional, tag = "34")]
        pub swap: Option<MemoryEntry>,
    }
    /// One memory counter.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MemoryEntry {
        #[prost(uint64, tag = "1")]
        pub limit: u64,
        #[prost(uint64, tag = "2")]
        pub usage: u64,
        #[prost(uint64, tag = "3")]
        pub max: u64,
        #[prost(uint64, tag = "4")]
        pub failcnt: u64,
    }
    /// Block I/O.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct BlkIoStat {
        #[prost(message, repeated, tag = "1")]
        pub io_service_bytes_recursive: Vec<BlkIoEntry>,
    }
    /// One block I/O counter.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct BlkIoEntry {
        #[prost(string, tag = "1")]
        pub op: String,
        #[prost(string, tag = "2")]
        pub device: String,
        #[prost(uint64, tag = "3")]
        pub major: u64,
        #[prost(uint64, tag = "4")]
        pub minor: u64,
        #[prost(uint64, tag = "5")]
        pub value: u64,
    }
}

/// cgroup v2 metrics (`io.containerd.cgroups.v2.Metrics`, containerd/cgroups'
/// `cgroup2/stats/metrics.proto`), the fields libctd reads.
pub(crate) mod v2 {
    /// The top-level message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Metrics {
        #[prost(message, optional, tag = "1")]
        pub pids: Option<super::v1::PidsStat>,
        #[prost(message, optional, tag = "2")]
        pub cpu: Option<CpuStat>,
        #[prost(message, optional, tag = "4")]
        pub memory: Option<MemoryStat>,
        #[prost(message, optional, tag = "6")]
        pub io: Option<IoStat>,
    }
    /// CPU accounting, in microseconds.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct CpuStat {
        #[prost(uint64, tag = "1")]
        pub usage_usec: u64,
        #[prost(uint64, tag = "2")]
        pub user_usec: u64,
        #[prost(uint64, tag = "3")]
        pub system_usec: u64,
        #[prost(uint64, tag = "4")]
        pub nr_periods: u64,
        #[prost(uint64, tag = "5")]
        pub nr_throttled: u64,
        #[prost(uint64, tag = "6")]
        pub throttled_usec: u64,
    }
    /// Memory accounting.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MemoryStat {
        #[prost(uint64, tag = "1")]
        pub anon: u64,
        #[prost(uint64, tag = "2")]
        pub file: u64,
        #[prost(uint64, tag = "32")]
        pub usage: u64,
        #[prost(uint64, tag = "33")]
        pub usage_limit: u64,
        #[prost(uint64, tag = "34")]
        pub swap_usage: u64,
        /// Sent by newer containerd versions only.
        #[prost(uint64, tag = "36")]
        pub max_usage: u64,
    }
    /// Block I/O.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct IoStat {
        #[prost(message, repeated, tag = "1")]
        pub usage: Vec<IoEntry>,
    }
    /// One device's I/O counters.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct IoEntry {
        #[prost(uint64, tag = "1")]
        pub major: u64,
        #[prost(uint64, tag = "2")]
        pub minor: u64,
        #[prost(uint64, tag = "3")]
        pub rbytes: u64,
        #[prost(uint64, tag = "4")]
        pub wbytes: u64,
    }
}

/// A protobuf message as an `Any` with a bare type URL.
pub(crate) fn proto_any<M: Message>(type_url: &str, message: &M) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec(),
    }
}

/// The protobuf message in `any` when it has `type_url` (with or without a
/// leading `/`) and decodes; `None` otherwise.
pub(crate) fn decode_any<M: Message + Default>(any: &Any, type_url: &str) -> Option<M> {
    if any.type_url.trim_start_matches('/') != type_url {
        return None;
    }
    M::decode(any.value.as_slice()).ok()
}

/// A serde value as an `Any` carrying JSON, as containerd stores OCI documents.
pub(crate) fn json_any<T: Serialize>(type_url: &str, value: &T) -> Result<Any, Error> {
    let value = serde_json::to_vec(value).map_err(|e| {
        Error::invalid_argument(format!("cannot encode {type_url} as JSON")).with_source(e)
    })?;
    Ok(Any {
        type_url: type_url.to_owned(),
        value,
    })
}

/// The runc shim options for libctd's [`RuncOptions`](crate::RuncOptions).
pub(crate) fn runc_options(o: &crate::RuncOptions) -> RuncOptionsProto {
    RuncOptionsProto {
        binary_name: o.binary_name.clone().unwrap_or_default(),
        root: o.root.clone().unwrap_or_default(),
        systemd_cgroup: o.systemd_cgroup,
        no_pivot_root: o.no_pivot_root,
        no_new_keyring: o.no_new_keyring,
        io_uid: o.io_uid,
        io_gid: o.io_gid,
        ..RuncOptionsProto::default()
    }
}

/// A protobuf timestamp as a `SystemTime`; Go's zero time (and anything before
/// the epoch) is "none".
pub(crate) fn time_from_proto(ts: Option<&Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    if ts.seconds <= 0 {
        return None;
    }
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// A task status from containerd's enum value.
pub(crate) fn status_from_proto(value: i32) -> Status {
    match value {
        1 => Status::Created,
        2 => Status::Running,
        3 => Status::Stopped,
        4 => Status::Paused,
        5 => Status::Pausing,
        _ => Status::Unknown,
    }
}

/// Decodes a `Metric.data` of either cgroup version into libctd's figures.
pub(crate) fn decode_metrics(data: &Any) -> Result<LinuxStats, Error> {
    let bad = |e: prost::DecodeError| {
        Error::system(format!("cannot decode metrics of type {}", data.type_url)).with_source(e)
    };
    let url = data.type_url.trim_start_matches('/');
    if url == CGROUPS_V1_METRICS {
        let m = v1::Metrics::decode(data.value.as_slice()).map_err(bad)?;
        Ok(stats_from_v1(m))
    } else if url == CGROUPS_V2_METRICS {
        let m = v2::Metrics::decode(data.value.as_slice()).map_err(bad)?;
        Ok(stats_from_v2(&m))
    } else {
        Err(Error::not_implemented(format!(
            "metrics of type {url:?} are not supported (expected cgroup v1 or v2 metrics)"
        )))
    }
}

pub(crate) fn stats_from_v1(m: v1::Metrics) -> LinuxStats {
    let mut out = LinuxStats::default();
    if let Some(cpu) = m.cpu {
        let usage = cpu.usage.unwrap_or_default();
        let thr = cpu.throttling.unwrap_or_default();
        out.cpu = CpuStats {
            usage_total_ns: usage.total,
            usage_user_ns: usage.user,
            usage_kernel_ns: usage.kernel,
            per_cpu_ns: usage.per_cpu,
            periods: thr.periods,
            throttled_periods: thr.throttled_periods,
            throttled_time_ns: thr.throttled_time,
        };
    }
    if let Some(mem) = m.memory {
        let usage = mem.usage.unwrap_or_default();
        out.memory = MemoryStats {
            usage: usage.usage,
            max_usage: usage.max,
            limit: usage.limit,
            failcnt: usage.failcnt,
            cache: mem.cache,
            rss: mem.rss,
            swap_usage: mem.swap.as_ref().map_or(0, |s| s.usage),
        };
    }
    if let Some(p) = &m.pids {
        out.pids = PidsStats {
            current: p.current,
            limit: p.limit,
        };
    }
    if let Some(b) = m.blkio {
        out.blkio = b
            .io_service_bytes_recursive
            .into_iter()
            .map(|e| BlkioEntry {
                major: e.major,
                minor: e.minor,
                op: e.op,
                value: e.value,
            })
            .collect();
    }
    out
}

pub(crate) fn stats_from_v2(m: &v2::Metrics) -> LinuxStats {
    let mut out = LinuxStats::default();
    if let Some(cpu) = &m.cpu {
        out.cpu = CpuStats {
            usage_total_ns: cpu.usage_usec.saturating_mul(1000),
            usage_user_ns: cpu.user_usec.saturating_mul(1000),
            usage_kernel_ns: cpu.system_usec.saturating_mul(1000),
            per_cpu_ns: Vec::new(),
            periods: cpu.nr_periods,
            throttled_periods: cpu.nr_throttled,
            throttled_time_ns: cpu.throttled_usec.saturating_mul(1000),
        };
    }
    if let Some(mem) = &m.memory {
        out.memory = MemoryStats {
            usage: mem.usage,
            max_usage: mem.max_usage,
            limit: mem.usage_limit,
            failcnt: 0,
            cache: mem.file,
            rss: mem.anon,
            swap_usage: mem.swap_usage,
        };
    }
    if let Some(p) = &m.pids {
        out.pids = PidsStats {
            current: p.current,
            limit: p.limit,
        };
    }
    if let Some(io) = &m.io {
        for e in &io.usage {
            for (op, value) in [("Read", e.rbytes), ("Write", e.wbytes)] {
                out.blkio.push(BlkioEntry {
                    major: e.major,
                    minor: e.minor,
                    op: op.to_owned(),
                    value,
                });
            }
        }
    }
    out
}

/// What an RPC's failure means for the caller: the gRPC code (or, for
/// `Unknown`, containerd's errdefs suffix and runc's well-known failures)
/// mapped to an [`ErrorKind`]. A failure that never reached containerd (no
/// socket, a broken connection, the client-side deadline) says so: it is
/// containerd that cannot be reached, not the container that is wrong.
pub(crate) fn status_error(status: tonic::Status) -> Error {
    let message = status.message().to_owned();
    let lower = message.to_ascii_lowercase();
    let local = made_by_transport(&status);
    let kind = match status.code() {
        tonic::Code::Cancelled if local && lower.contains("timeout expired") => {
            ErrorKind::DeadlineExceeded
        }
        _ if local => ErrorKind::Unavailable,
        tonic::Code::NotFound => ErrorKind::NotFound,
        tonic::Code::AlreadyExists => ErrorKind::AlreadyExists,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorKind::InvalidArgument,
        tonic::Code::FailedPrecondition => ErrorKind::FailedPrecondition,
        tonic::Code::Unimplemented => ErrorKind::NotImplemented,
        tonic::Code::Unavailable => ErrorKind::Unavailable,
        tonic::Code::Cancelled => ErrorKind::Cancelled,
        tonic::Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => ErrorKind::PermissionDenied,
        tonic::Code::Internal
        | tonic::Code::DataLoss
        | tonic::Code::ResourceExhausted
        | tonic::Code::Aborted => ErrorKind::System,
        tonic::Code::Unknown | tonic::Code::Ok => classify_message(&lower),
    };
    let message = match kind {
        ErrorKind::DeadlineExceeded => format!(
            "containerd did not answer within the call's deadline (rpc_timeout): {}",
            if message.is_empty() {
                "no answer"
            } else {
                &message
            }
        ),
        ErrorKind::Unavailable if local => {
            format!("containerd is unreachable: {message}")
        }
        _ if message.is_empty() => format!("containerd answered {}", status.code()),
        _ => message,
    };
    Error::new(kind, message).with_source(status)
}

/// Whether tonic made `status` itself (it attaches the transport's error to
/// those): no answer came from containerd.
pub(crate) fn made_by_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The kind named at the end of a containerd error message, as errdefs writes
/// it (`...: not found`), runc's well-known failures, or a transport failure.
fn classify_message(lower: &str) -> ErrorKind {
    const SUFFIXES: [(&str, ErrorKind); 6] = [
        ("not found", ErrorKind::NotFound),
        ("already exists", ErrorKind::AlreadyExists),
        ("invalid argument", ErrorKind::InvalidArgument),
        ("failed precondition", ErrorKind::FailedPrecondition),
        ("not implemented", ErrorKind::NotImplemented),
        ("unavailable", ErrorKind::Unavailable),
    ];
    // Checked in order: the first phrase found decides.
    const PHRASES: [(&str, ErrorKind); 18] = [
        // runc cannot run what the spec asks for: the spec is wrong.
        ("executable file not found", ErrorKind::InvalidArgument),
        ("exec format error", ErrorKind::InvalidArgument),
        ("invalid rootfs", ErrorKind::InvalidArgument),
        ("chdir to cwd", ErrorKind::InvalidArgument),
        ("permission denied", ErrorKind::PermissionDenied),
        (
            "unable to start container process: exec",
            ErrorKind::InvalidArgument,
        ),
        ("rootfs (", ErrorKind::InvalidArgument),
        ("must not be empty", ErrorKind::InvalidArgument),
        // runc and the shim say what state forbids the operation.
        ("stopped state", ErrorKind::FailedPrecondition),
        ("a running process", ErrorKind::FailedPrecondition),
        ("not paused", ErrorKind::FailedPrecondition),
        ("must be stopped", ErrorKind::FailedPrecondition),
        ("is not running", ErrorKind::FailedPrecondition),
        // The connection itself failed.
        ("transport error", ErrorKind::Unavailable),
        ("h2 protocol error", ErrorKind::Unavailable),
        ("connection reset", ErrorKind::Unavailable),
        ("broken pipe", ErrorKind::Unavailable),
        ("error trying to connect", ErrorKind::Unavailable),
    ];
    if let Some((_, kind)) = SUFFIXES.iter().find(|(s, _)| lower.ends_with(s)) {
        return *kind;
    }
    PHRASES
        .iter()
        .find(|(p, _)| lower.contains(p))
        .map_or(ErrorKind::Unknown, |(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_any_checks_the_type_url() {
        let details = ProcessDetailsProto {
            exec_id: "e1".into(),
        };
        let mut any = proto_any(PROCESS_DETAILS_TYPE_URL, &details);
        let bare: Option<ProcessDetailsProto> = decode_any(&any, PROCESS_DETAILS_TYPE_URL);
        assert_eq!(bare.map(|d| d.exec_id).as_deref(), Some("e1"));
        any.type_url = format!("/{PROCESS_DETAILS_TYPE_URL}");
        let slashed: Option<ProcessDetailsProto> = decode_any(&any, PROCESS_DETAILS_TYPE_URL);
        assert_eq!(slashed.map(|d| d.exec_id).as_deref(), Some("e1"));
        let other: Option<ProcessDetailsProto> = decode_any(&any, RUNC_OPTIONS_TYPE_URL);
        assert!(other.is_none());
    }

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            (tonic::Code::NotFound, ErrorKind::NotFound),
            (tonic::Code::AlreadyExists, ErrorKind::AlreadyExists),
            (tonic::Code::InvalidArgument, ErrorKind::InvalidArgument),
            (
                tonic::Code::FailedPrecondition,
                ErrorKind::FailedPrecondition,
            ),
            (tonic::Code::Unimplemented, ErrorKind::NotImplemented),
            (tonic::Code::Unavailable, ErrorKind::Unavailable),
            (tonic::Code::DeadlineExceeded, ErrorKind::DeadlineExceeded),
            (tonic::Code::PermissionDenied, ErrorKind::PermissionDenied),
            (tonic::Code::Internal, ErrorKind::System),
        ];
        for (code, kind) in cases {
            let e = status_error(tonic::Status::new(code, "boom"));
            assert_eq!(e.kind(), kind, "{code:?}");
            assert!(e.message().ends_with("boom"), "{e}");
        }
    }

    #[test]
    fn unknown_code_uses_the_errdefs_suffix() {
        let e = status_error(tonic::Status::unknown("process exec1: not found"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = status_error(tonic::Status::unknown("h2 protocol error: broken"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = status_error(tonic::Status::unknown("something odd"));
        assert_eq!(e.kind(), ErrorKind::Unknown);
    }

    #[test]
    fn runc_failures_are_classified() {
        for (text, kind) in [
            (
                "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown",
                ErrorKind::InvalidArgument,
            ),
            (
                "OCI runtime create failed: runc create failed: invalid rootfs: stat /nope: no such file or directory: unknown",
                ErrorKind::InvalidArgument,
            ),
            (
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/etc\": permission denied: unknown",
                ErrorKind::PermissionDenied,
            ),
            (
                "cannot exec in a stopped state: unknown",
                ErrorKind::FailedPrecondition,
            ),
        ] {
            assert_eq!(
                status_error(tonic::Status::unknown(text)).kind(),
                kind,
                "{text}"
            );
        }
    }

    #[test]
    fn local_transport_failures_name_containerd() {
        let e = status_error(tonic::Status::from_error(Box::new(tonic::TimeoutExpired(
            (),
        ))));
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
        assert!(e.message().contains("containerd did not answer"), "{e}");
        let e = status_error(tonic::Status::new(
            tonic::Code::DeadlineExceeded,
            "context deadline exceeded",
        ));
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
        assert!(e.message().contains("containerd did not answer"), "{e}");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = status_error(tonic::Status::from_error(Box::new(io)));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("containerd is unreachable"), "{e}");
        // containerd's own Unavailable (a dead shim) is not a transport failure.
        let e = status_error(tonic::Status::unavailable("ttrpc: closed"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.message(), "ttrpc: closed");
    }

    #[test]
    fn zero_time_is_none() {
        let go_zero = Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        };
        assert_eq!(time_from_proto(Some(&go_zero)), None);
        let t = Timestamp {
            seconds: 10,
            nanos: 5,
        };
        assert_eq!(
            time_from_proto(Some(&t)),
            Some(UNIX_EPOCH + Duration::new(10, 5))
        );
    }

    #[test]
    fn v1_metrics_round_trip() {
        let m = v1::Metrics {
            pids: Some(v1::PidsStat {
                current: 3,
                limit: 10,
            }),
            cpu: Some(v1::CpuStat {
                usage: Some(v1::CpuUsage {
                    total: 100,
                    kernel: 40,
                    user: 60,
                    per_cpu: vec![50, 50],
                }),
                throttling: None,
            }),
            memory: Some(v1::MemoryStat {
                cache: 7,
                rss: 8,
                usage: Some(v1::MemoryEntry {
                    limit: 64 << 20,
                    usage: 1 << 20,
                    max: 2 << 20,
                    failcnt: 1,
                }),
                swap: None,
            }),
            blkio: None,
        };
        let any = proto_any(CGROUPS_V1_METRICS, &m);
        let s = decode_metrics(&any).unwrap();
        assert_eq!(s.memory.limit, 64 << 20);
        assert_eq!(s.memory.max_usage, 2 << 20);
        assert_eq!(s.cpu.per_cpu_ns, vec![50, 50]);
        assert_eq!(s.pids.current, 3);
    }

    #[test]
    fn v2_metrics_convert_units() {
        let m = v2::Metrics {
            pids: None,
            cpu: Some(v2::CpuStat {
                usage_usec: 2,
                ..Default::default()
            }),
            memory: Some(v2::MemoryStat {
                usage_limit: 1024,
                ..Default::default()
            }),
            io: None,
        };
        let s = decode_metrics(&proto_any(CGROUPS_V2_METRICS, &m)).unwrap();
        assert_eq!(s.cpu.usage_total_ns, 2000);
        assert_eq!(s.memory.limit, 1024);
        let err = decode_metrics(&Any {
            type_url: "other".into(),
            value: vec![],
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotImplemented);
    }
}
