//! Property answers, vmcompute's `NameToGuid`, and the double's control
//! export.
// Exported names are Windows' own.
#![allow(non_snake_case)]

use std::sync::Arc;

use windows::core::{GUID, HRESULT, PCWSTR, PWSTR};

use crate::events::{crash_system, release_exit_notices};
use crate::exports::{put, text};
use crate::world::{Faults, OpResult, Status, System, hr, lock, world};

/// Answers a compute system property query.
pub(crate) fn answer(s: &Arc<System>, query: &str) -> OpResult {
    let Ok(query) = serde_json::from_str::<serde_json::Value>(query) else {
        return OpResult::fail(hr::INVALID_JSON, "the query is not JSON");
    };
    let st = lock(&s.state);
    if st.status == Status::Stopped {
        return OpResult::fail(hr::ALREADY_STOPPED, "the system has stopped");
    }
    let mut answer = serde_json::json!({"Id": s.id});
    let kinds = query
        .get("PropertyTypes")
        .and_then(|t| t.as_array())
        .cloned()
        .unwrap_or_default();
    for kind in kinds {
        match kind.as_str() {
            Some("Statistics") => {
                let uptime = st.started.map_or(0, |t| {
                    u64::try_from(t.elapsed().as_nanos() / 100).unwrap_or(0)
                });
                answer["Statistics"] = serde_json::json!({
                    "Timestamp": "2026-01-01T00:00:00Z",
                    "ContainerStartTime": "2026-01-01T00:00:00Z",
                    "Uptime100ns": uptime,
                    "Processor": {"TotalRuntime100ns": uptime / 2,
                                  "RuntimeUser100ns": uptime / 3,
                                  "RuntimeKernel100ns": uptime / 2 - uptime / 3},
                    "Memory": {"MemoryUsageCommitBytes": 16u64 << 20,
                               "MemoryUsageCommitPeakBytes": 24u64 << 20,
                               "MemoryUsagePrivateWorkingSetBytes": 8u64 << 20},
                    "Storage": {"ReadCountNormalized": 0, "ReadSizeBytes": 0,
                                "WriteCountNormalized": 0, "WriteSizeBytes": 0},
                });
            }
            Some("ProcessList") => {
                let mut list: Vec<_> = st.processes.values().filter(|p| !p.exited()).collect();
                list.sort_by_key(|p| p.pid);
                answer["ProcessList"] = list
                    .into_iter()
                    .map(|p| {
                        serde_json::json!({
                            "ProcessId": p.pid,
                            "ImageName": p.image,
                            "CreateTimestamp": "2026-01-01T00:00:00Z",
                            "UserTime100ns": 0,
                            "KernelTime100ns": 0,
                            "MemoryCommitBytes": 4u64 << 20,
                            "MemoryWorkingSetPrivateBytes": 2u64 << 20,
                            "MemoryWorkingSetSharedBytes": 1u64 << 20,
                        })
                    })
                    .collect();
            }
            // Not a property type of schema 2: hosts since Windows Server
            // 2019 refuse it (hcsshim never asks).
            Some("PendingUpdates") => {
                return OpResult::fail(hr::INVALID_JSON, "PendingUpdates is not a property type");
            }
            _ => {
                return OpResult::fail(hr::INVALID_JSON, &format!("unknown property type {kind}"));
            }
        }
    }
    OpResult::ok(answer.to_string())
}

/// vmcompute's `NameToGuid`: the layer id of a layer folder's name (here
/// the simulation's stable hash, not Windows' algorithm).
#[unsafe(no_mangle)]
pub extern "system" fn NameToGuid(name: PCWSTR, guid: *mut GUID) -> HRESULT {
    let Some(name) = text(name) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let hex: String = libctd_windows::hcs::sim::name_to_guid(&name)
        .chars()
        .filter(|c| *c != '-')
        .collect();
    match u128::from_str_radix(&hex, 16) {
        Ok(v) => {
            put(guid, GUID::from_u128(v));
            HRESULT(0)
        }
        Err(_) => HRESULT(hr::INVALID_ARG),
    }
}

/// The double's control: a JSON request, a JSON answer (freed with
/// `LocalFree`). `{"Faults":{"System":id,"Plan":{...}}}`, `{"Crash":id}`,
/// `{"ReleaseExitNotices":id}`, `{"Report":pattern}`.
#[unsafe(no_mangle)]
pub extern "system" fn LibctdDoubleControl(request: PCWSTR, response: *mut PWSTR) -> HRESULT {
    put(response, PWSTR::null());
    let Some(request) = text(request) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let Ok(request) = serde_json::from_str::<serde_json::Value>(&request) else {
        return HRESULT(hr::INVALID_JSON);
    };
    let answer = if let Some(f) = request.get("Faults") {
        let Some(id) = f.get("System").and_then(|s| s.as_str()) else {
            return HRESULT(hr::INVALID_ARG);
        };
        let plan = Faults::parse(f.get("Plan").unwrap_or(&serde_json::Value::Null));
        world().plans.insert(id.to_owned(), plan);
        serde_json::json!({})
    } else if let Some(id) = request.get("Crash").and_then(|s| s.as_str()) {
        let system = world().systems.get(id).cloned();
        let crashed = system.is_some_and(|s| crash_system(&s));
        serde_json::json!({"Crashed": crashed})
    } else if let Some(id) = request.get("ReleaseExitNotices").and_then(|s| s.as_str()) {
        let system = world().systems.get(id).cloned();
        let released = system.is_some_and(|s| release_exit_notices(&s));
        serde_json::json!({"Released": released})
    } else if let Some(pattern) = request.get("Report").and_then(|s| s.as_str()) {
        world().report(pattern)
    } else {
        return HRESULT(hr::INVALID_ARG);
    };
    put(response, crate::exports::local_string(&answer.to_string()));
    HRESULT(0)
}
