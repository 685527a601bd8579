//! Conversions between libctd's types and containerd's wire types: OCI
//! documents as JSON `Any`s, the runc shim's option messages, cgroup metrics,
//! timestamps, and `tonic::Status` into classified [`Error`]s.
//!
//! The protobuf messages themselves are declared in `crate::proto`; their
//! type URLs come from their `prost::Name` impls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libctd_core::{BlkioEntry, Error, LinuxStats, Status};
use prost::{Message, Name};
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
/// The runc shim's checkpoint options, `containerd.runc.v1.CheckpointOptions`.
pub(crate) use crate::proto::runc::CheckpointOptions as CheckpointOptionsProto;
/// The runc shim's options, `containerd.runc.v1.Options`.
pub(crate) use crate::proto::runc::Options as RuncOptionsProto;
/// The runc shim's per-process details, `containerd.runc.v1.ProcessDetails`:
/// `ListPids` carries one in each exec process's `info`.
pub(crate) use crate::proto::runc::ProcessDetails as ProcessDetailsProto;
/// cgroup metrics: `io.containerd.cgroups.v1.Metrics` and
/// `io.containerd.cgroups.v2.Metrics`.
pub(crate) use crate::proto::{cgroups_v1 as v1, cgroups_v2 as v2};

mod errors;
pub(crate) use errors::{made_by_transport, status_error};

/// A protobuf message as an `Any` whose type URL is the message's bare full
/// name (`containerd.runc.v1.Options`), as containerd's Go clients send it:
/// containerd 1.6 fails task create on runc options whose type URL has a
/// leading `/`, which [`Name::type_url`] would add.
pub(crate) fn proto_any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::full_name(),
        value: message.encode_to_vec(),
    }
}

/// Whether `type_url` names message `M`: its full name, with or without a
/// leading `/`.
fn is_type<M: Name>(type_url: &str) -> bool {
    type_url.trim_start_matches('/') == M::full_name()
}

/// The protobuf message in `any` when its type URL names `M` (with or
/// without a leading `/`) and it decodes; `None` otherwise.
pub(crate) fn decode_any<M: Message + Name + Default>(any: &Any) -> Option<M> {
    if !is_type::<M>(&any.type_url) {
        return None;
    }
    M::decode(any.value.as_slice()).ok()
}

/// The exec id a `ListPids` answer gives for one process: the runc shim sends
/// [`ProcessDetailsProto`] in `info` for exec processes, nothing for the init
/// process. `None` for the init process and for anything that is not such a
/// message.
pub(crate) fn exec_id_of(info: Option<&Any>) -> Option<String> {
    info.and_then(decode_any::<ProcessDetailsProto>)
        .map(|d| d.exec_id)
        .filter(|e| !e.is_empty())
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
    if is_type::<v1::Metrics>(url) {
        let m = v1::Metrics::decode(data.value.as_slice()).map_err(bad)?;
        Ok(stats_from_v1(m))
    } else if is_type::<v2::Metrics>(url) {
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
        out.cpu.usage_total_ns = usage.total;
        out.cpu.usage_user_ns = usage.user;
        out.cpu.usage_kernel_ns = usage.kernel;
        out.cpu.per_cpu_ns = usage.per_cpu;
        out.cpu.periods = thr.periods;
        out.cpu.throttled_periods = thr.throttled_periods;
        out.cpu.throttled_time_ns = thr.throttled_time;
    }
    if let Some(mem) = m.memory {
        let usage = mem.usage.unwrap_or_default();
        out.memory.usage = usage.usage;
        out.memory.max_usage = usage.max;
        out.memory.limit = usage.limit;
        out.memory.failcnt = usage.failcnt;
        out.memory.cache = mem.cache;
        out.memory.rss = mem.rss;
        out.memory.swap_usage = mem.swap.as_ref().map_or(0, |s| s.usage);
    }
    if let Some(p) = &m.pids {
        out.pids.current = p.current;
        out.pids.limit = p.limit;
    }
    if let Some(b) = m.blkio {
        out.blkio = b
            .io_service_bytes_recursive
            .into_iter()
            .map(|e| BlkioEntry::new(e.major, e.minor, e.op, e.value))
            .collect();
    }
    out
}

pub(crate) fn stats_from_v2(m: &v2::Metrics) -> LinuxStats {
    let mut out = LinuxStats::default();
    if let Some(cpu) = &m.cpu {
        out.cpu.usage_total_ns = cpu.usage_usec.saturating_mul(1000);
        out.cpu.usage_user_ns = cpu.user_usec.saturating_mul(1000);
        out.cpu.usage_kernel_ns = cpu.system_usec.saturating_mul(1000);
        out.cpu.periods = cpu.nr_periods;
        out.cpu.throttled_periods = cpu.nr_throttled;
        out.cpu.throttled_time_ns = cpu.throttled_usec.saturating_mul(1000);
    }
    if let Some(mem) = &m.memory {
        out.memory.usage = mem.usage;
        out.memory.max_usage = mem.max_usage;
        out.memory.limit = mem.usage_limit;
        out.memory.cache = mem.file;
        out.memory.rss = mem.anon;
        out.memory.swap_usage = mem.swap_usage;
    }
    if let Some(p) = &m.pids {
        out.pids.current = p.current;
        out.pids.limit = p.limit;
    }
    if let Some(io) = &m.io {
        for e in &io.usage {
            for (op, value) in [("Read", e.rbytes), ("Write", e.wbytes)] {
                out.blkio.push(BlkioEntry::new(e.major, e.minor, op, value));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd 1.6.20's answers, as the client receives them (see
    /// tests/fixtures/README.md).
    const METRICS_RESPONSE: &[u8] =
        include_bytes!("../tests/fixtures/containerd-1.6.20-cgroup1-metrics-response.pb");
    const LIST_PIDS_RESPONSE: &[u8] =
        include_bytes!("../tests/fixtures/containerd-1.6.20-list-pids-response.pb");

    #[test]
    fn type_urls_are_the_bare_names_containerd_uses() {
        // The exact bytes on the wire: containerd 1.6 fails task create on
        // runc options with a leading `/`.
        let options = proto_any(&RuncOptionsProto::default());
        assert_eq!(options.type_url, "containerd.runc.v1.Options");
        let checkpoint = proto_any(&CheckpointOptionsProto::default());
        assert_eq!(checkpoint.type_url, "containerd.runc.v1.CheckpointOptions");
        let details = proto_any(&ProcessDetailsProto::default());
        assert_eq!(details.type_url, "containerd.runc.v1.ProcessDetails");
        assert_eq!(v1::Metrics::full_name(), "io.containerd.cgroups.v1.Metrics");
        assert_eq!(v2::Metrics::full_name(), "io.containerd.cgroups.v2.Metrics");
    }

    #[test]
    fn decode_any_checks_the_type_url() {
        let details = ProcessDetailsProto {
            exec_id: "e1".into(),
        };
        let mut any = proto_any(&details);
        let bare: Option<ProcessDetailsProto> = decode_any(&any);
        assert_eq!(bare.map(|d| d.exec_id).as_deref(), Some("e1"));
        any.type_url = format!("/{}", any.type_url);
        let slashed: Option<ProcessDetailsProto> = decode_any(&any);
        assert_eq!(slashed.map(|d| d.exec_id).as_deref(), Some("e1"));
        let other: Option<RuncOptionsProto> = decode_any(&any);
        assert!(other.is_none());
    }

    #[test]
    fn real_cgroup1_metrics_decode() {
        use containerd_client::services::v1::MetricsResponse;
        let response = MetricsResponse::decode(METRICS_RESPONSE).unwrap();
        assert_eq!(response.metrics.len(), 1);
        let metric = &response.metrics[0];
        assert_eq!(metric.id, "fx");
        let data = metric.data.as_ref().unwrap();
        assert_eq!(data.type_url, "io.containerd.cgroups.v1.Metrics");
        let s = decode_metrics(data).unwrap();
        // The container: 64 MiB and 32 pids limits, sh and an exec'd sleep,
        // 3,000,000 bytes written to its /tmp (page cache), two CPUs.
        assert_eq!(s.memory.limit, 64 << 20);
        assert_eq!(s.memory.usage, 3_866_624);
        assert_eq!(s.memory.max_usage, 3_981_312);
        assert_eq!(s.memory.failcnt, 0);
        assert_eq!(s.memory.cache, 3_002_368);
        assert_eq!(s.memory.rss, 102_400);
        // cgroup v1 reports memory+swap ("memsw") here.
        assert_eq!(s.memory.swap_usage, 3_866_624);
        assert_eq!(s.pids.current, 2);
        assert_eq!(s.pids.limit, 32);
        assert_eq!(s.cpu.usage_total_ns, 48_925_973);
        assert_eq!(s.cpu.usage_user_ns, 30_000_000);
        assert_eq!(s.cpu.usage_kernel_ns, 10_000_000);
        assert_eq!(s.cpu.per_cpu_ns, vec![32_647_854, 16_278_119]);
        assert_eq!(s.cpu.per_cpu_ns.iter().sum::<u64>(), s.cpu.usage_total_ns);
        assert_eq!(s.cpu.periods, 0);
        assert_eq!(s.cpu.throttled_periods, 0);
        assert!(s.blkio.is_empty());
        assert!(time_from_proto(metric.timestamp.as_ref()).is_some());
        // What libctd does not read is there too, and decodes.
        let m = v1::Metrics::decode(data.value.as_slice()).unwrap();
        let mem = m.memory.unwrap();
        assert_eq!(mem.hierarchical_memory_limit, 64 << 20);
        assert_eq!(mem.kernel.map(|k| k.usage), Some(405_504));
    }

    #[test]
    fn real_list_pids_details_decode() {
        use containerd_client::services::v1::ListPidsResponse;
        let response = ListPidsResponse::decode(LIST_PIDS_RESPONSE).unwrap();
        let seen: Vec<(u32, Option<String>)> = response
            .processes
            .iter()
            .map(|p| (p.pid, exec_id_of(p.info.as_ref())))
            .collect();
        // The init process has no details; the exec "sleeper" has its id.
        assert_eq!(seen, [(19_457, None), (19_485, Some("sleeper".to_owned()))]);
        let info = response.processes[1].info.as_ref().unwrap();
        assert_eq!(info.type_url, "containerd.runc.v1.ProcessDetails");
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
                ..Default::default()
            }),
            ..Default::default()
        };
        let any = proto_any(&m);
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
            ..Default::default()
        };
        let s = decode_metrics(&proto_any(&m)).unwrap();
        assert_eq!(s.cpu.usage_total_ns, 2000);
        assert_eq!(s.memory.limit, 1024);
        let err = decode_metrics(&Any {
            type_url: "other".into(),
            value: vec![],
        })
        .unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::NotImplemented);
    }
}
