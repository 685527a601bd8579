//! vmcompute's `NameToGuid`, and the double's control export.
// Exported names are Windows' own.
#![allow(non_snake_case)]

use libctd_windows::error::HcsError;
use libctd_windows::hcs::model::{FILE_NOT_FOUND, Plan};
use windows::core::{GUID, HRESULT, PCWSTR, PWSTR};

use crate::exports::{put, text};
use crate::world::{hr, model, world};

/// vmcompute's `NameToGuid`: the layer id of a layer folder's name (here
/// the model's stable hash, not Windows' algorithm).
#[unsafe(no_mangle)]
pub extern "system" fn NameToGuid(name: PCWSTR, guid: *mut GUID) -> HRESULT {
    let Some(name) = text(name) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let hex: String = libctd_windows::hcs::model::name_to_guid(&name)
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

/// computecore's `HcsGrantVmAccess`: the VM `vm_id` may read the file
/// `path`, which must exist (ERROR_FILE_NOT_FOUND otherwise).
#[unsafe(no_mangle)]
pub extern "system" fn HcsGrantVmAccess(vm_id: PCWSTR, path: PCWSTR) -> HRESULT {
    vm_access("HcsGrantVmAccess", vm_id, path, |vm, path| {
        if !std::path::Path::new(path).is_file() {
            return Err(HcsError::new(FILE_NOT_FOUND));
        }
        model().grant_vm_access(vm, path)
    })
}

/// computecore's `HcsRevokeVmAccess`.
#[unsafe(no_mangle)]
pub extern "system" fn HcsRevokeVmAccess(vm_id: PCWSTR, path: PCWSTR) -> HRESULT {
    vm_access("HcsRevokeVmAccess", vm_id, path, |vm, path| {
        model().revoke_vm_access(vm, path)
    })
}

/// A grant or revoke: gated by the plan of the VM, then `act`.
fn vm_access(
    op: &str,
    vm_id: PCWSTR,
    path: PCWSTR,
    act: impl FnOnce(&str, &str) -> Result<(), HcsError>,
) -> HRESULT {
    let (Some(vm_id), Some(path)) = (text(vm_id), text(path)) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let result = model().gate(op, &vm_id).and_then(|gate| match gate.fail {
        Some(err) => Err(err),
        None => act(&vm_id, &path),
    });
    match result {
        Ok(()) => HRESULT(0),
        Err(e) => HRESULT(e.hresult.0.cast_signed()),
    }
}

/// The double's control: a JSON request, a JSON answer (freed with
/// `LocalFree`). `{"Faults":{"System":id,"Plan":{...}}}` (the model's
/// plan, `libctd_windows::hcs::model::Plan`), `{"Crash":id}`,
/// `{"ReleaseExitNotices":id}`,
/// `{"EndProcess":{"System":id,"ProcessId":pid,"ExitCode":code}}`,
/// `{"Calls":id}` (the calls made on it, in order), `{"Report":pattern}`
/// (with the ids of the compute systems that exist, `Systems`),
/// `{"Grants":pattern}` (the disk access grants of VMs whose id contains it),
/// `{"AddEndpoint":id}` (an HNS endpoint exists), `{"Namespaces":null}` (the
/// HNS namespaces and their endpoints), `{"Adapters":pattern}` (the network
/// adapters `[VM, adapter, endpoint]` and guest namespaces `[VM, namespace]`
/// of running VMs whose id contains it).
#[unsafe(no_mangle)]
pub extern "system" fn LibctdDoubleControl(request: PCWSTR, response: *mut PWSTR) -> HRESULT {
    put(response, PWSTR::null());
    let Some(request) = text(request) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let Ok(request) = serde_json::from_str::<serde_json::Value>(&request) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let answer = if let Some(f) = request.get("Faults") {
        let Some(id) = f.get("System").and_then(|s| s.as_str()) else {
            return HRESULT(hr::INVALID_ARG);
        };
        let plan = f
            .get("Plan")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        // A plan the model does not understand is refused, not ignored.
        let Ok(plan) = serde_json::from_value::<Plan>(plan) else {
            return HRESULT(hr::INVALID_ARG);
        };
        model().set_plan(id, plan);
        serde_json::json!({})
    } else if let Some(id) = request.get("Crash").and_then(|s| s.as_str()) {
        serde_json::json!({"Crashed": model().crash(id)})
    } else if let Some(id) = request.get("ReleaseExitNotices").and_then(|s| s.as_str()) {
        serde_json::json!({"Released": model().release_exit_notices(id)})
    } else if let Some(end) = request.get("EndProcess") {
        let id = end.get("System").and_then(|s| s.as_str());
        let pid = end.get("ProcessId").and_then(|p| p.as_u64());
        let code = end.get("ExitCode").and_then(|c| c.as_u64());
        let (Some(id), Some(pid), Some(code)) = (id, pid, code) else {
            return HRESULT(hr::INVALID_ARG);
        };
        let (Ok(pid), Ok(code)) = (u32::try_from(pid), u32::try_from(code)) else {
            return HRESULT(hr::INVALID_ARG);
        };
        serde_json::json!({"Ended": model().end_process(id, pid, code)})
    } else if let Some(id) = request.get("Calls").and_then(|s| s.as_str()) {
        let calls: Vec<String> = model()
            .calls()
            .into_iter()
            .filter(|(_, system)| system == id)
            .map(|(op, _)| op)
            .collect();
        serde_json::json!({"Calls": calls})
    } else if let Some(id) = request.get("AddEndpoint").and_then(|s| s.as_str()) {
        model().add_endpoint(id);
        serde_json::json!({})
    } else if request.get("Namespaces").is_some() {
        serde_json::json!({"Namespaces": model().namespaces()})
    } else if let Some(pattern) = request.get("Adapters").and_then(|s| s.as_str()) {
        let adapters: Vec<[String; 3]> = model()
            .adapters()
            .into_iter()
            .filter(|(vm, _, _)| vm.contains(pattern))
            .map(|(vm, adapter, endpoint)| [vm, adapter, endpoint])
            .collect();
        let namespaces: Vec<[String; 2]> = model()
            .guest_namespaces()
            .into_iter()
            .filter(|(vm, _)| vm.contains(pattern))
            .map(|(vm, ns)| [vm, ns])
            .collect();
        serde_json::json!({"Adapters": adapters, "GuestNamespaces": namespaces})
    } else if let Some(pattern) = request.get("Grants").and_then(|s| s.as_str()) {
        let grants: Vec<[String; 2]> = model()
            .grants()
            .into_iter()
            .filter(|(vm, _)| vm.contains(pattern))
            .map(|(vm, path)| [vm, path])
            .collect();
        serde_json::json!({"Grants": grants})
    } else if let Some(pattern) = request.get("Report").and_then(|s| s.as_str()) {
        let processes = model().all_processes();
        let mut report = world().report(pattern, &processes);
        let systems: Vec<String> = model()
            .compute_systems()
            .into_iter()
            .filter(|id| id.contains(pattern))
            .collect();
        report["Systems"] = serde_json::json!(systems);
        report
    } else {
        return HRESULT(hr::INVALID_ARG);
    };
    put(response, crate::exports::local_string(&answer.to_string()));
    HRESULT(0)
}
