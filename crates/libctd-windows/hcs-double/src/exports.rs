//! The exported functions, with computecore's signatures (and vmcompute's
//! `NameToGuid`), plus the control export `LibctdDoubleControl`.
// Exported names are computecore's own.
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use windows::Win32::Foundation::{HANDLE, HLOCAL};
use windows::Win32::Security::SECURITY_DESCRIPTOR;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_OPERATION_COMPLETION, HCS_PROCESS,
    HCS_PROCESS_INFORMATION, HCS_SYSTEM, HcsEventProcessExited, HcsEventSystemExited,
};
use windows::Win32::System::Memory::{LMEM_FIXED, LocalAlloc};
use windows::core::{HRESULT, PCWSTR, PWSTR};

use crate::documents::{check_configuration, check_host, vsmb_shares};
use crate::events::{Exit, FORCED_EXIT, GRACEFUL_EXIT, UNEXPECTED_EXIT, stop_system};
use crate::world::{
    self, CONTROL_C_EXIT, Faults, Kind, OpResult, Operation, Process, Status, System, SystemState,
    TERMINATED_EXIT, Timing, enter, hr, issue, leave, lock, world,
};

/// Reads a wide string argument; `None` when null or not UTF-16.
pub(crate) fn text(p: PCWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller passes a NUL-terminated wide string.
    unsafe { p.to_string() }.ok()
}

/// A copy of `s` the caller frees with `LocalFree`; null for "".
pub(crate) fn local_string(s: &str) -> PWSTR {
    if s.is_empty() {
        return PWSTR::null();
    }
    let w: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
    // SAFETY: a plain allocation of the string's size.
    match unsafe { LocalAlloc(LMEM_FIXED, w.len() * 2) } {
        Ok(HLOCAL(p)) if !p.is_null() => {
            // SAFETY: `p` holds `w.len()` u16s.
            unsafe { std::ptr::copy_nonoverlapping(w.as_ptr(), p.cast::<u16>(), w.len()) };
            PWSTR(p.cast())
        }
        _ => PWSTR::null(),
    }
}

/// Writes `v` through `out` unless it is null.
pub(crate) fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: a non-null out-pointer of the caller.
        unsafe { out.write(v) };
    }
}

fn system_of(k: &Kind) -> Option<Arc<System>> {
    match k {
        Kind::System(s) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn process_of(k: &Kind) -> Option<Arc<Process>> {
    match k {
        Kind::Process(p) => Some(p.clone()),
        _ => None,
    }
}

/// Issues `call` on compute system handle `system`, `work` running later on
/// the double's thread (unless the operation was cancelled).
fn system_call(
    system: HCS_SYSTEM,
    op: HCS_OPERATION,
    call: &'static str,
    work: impl FnOnce(&Arc<System>) -> OpResult + Send + 'static,
) -> HRESULT {
    let h = system.0 as usize;
    let s = match enter(h, call, system_of) {
        Ok(s) => s,
        Err(e) => return HRESULT(e),
    };
    let (timing, fail, ignore) = plan(&s.faults, call);
    let issued = issue(op.0 as usize, h, call, timing, ignore, move |cancelled| {
        if cancelled {
            OpResult::default()
        } else if let Some(e) = fail {
            OpResult::fail(e, call)
        } else {
            work(&s)
        }
    });
    leave(h);
    HRESULT(issued.err().unwrap_or(0))
}

/// The same for process handles.
pub(crate) fn process_call(
    process: HCS_PROCESS,
    op: HCS_OPERATION,
    call: &'static str,
    work: impl FnOnce(&Arc<Process>) -> OpResult + Send + 'static,
) -> HRESULT {
    let h = process.0 as usize;
    let p = match enter(h, call, process_of) {
        Ok(p) => p,
        Err(e) => return HRESULT(e),
    };
    let (timing, fail, ignore) = plan(&p.system.faults, call);
    let issued = issue(op.0 as usize, h, call, timing, ignore, move |cancelled| {
        if cancelled {
            OpResult::default()
        } else if let Some(e) = fail {
            OpResult::fail(e, call)
        } else if lock(&p.system.state).status == Status::Stopped {
            // The process's compute system has exited.
            OpResult::fail(hr::INVALID_STATE, "the compute system has exited")
        } else {
            work(&p)
        }
    });
    leave(h);
    HRESULT(issued.err().unwrap_or(0))
}

pub(crate) fn plan(f: &Faults, call: &str) -> (Timing, Option<i32>, bool) {
    (f.timing(call), f.fail.get(call).copied(), f.ignore_cancel)
}

// ---- operations ----

#[unsafe(no_mangle)]
pub extern "system" fn HcsCreateOperation(
    context: *const c_void,
    callback: HCS_OPERATION_COMPLETION,
) -> HCS_OPERATION {
    let op = Arc::new(Operation {
        completion: callback.map(|cb| (cb, context as usize)),
        state: Mutex::default(),
        cv: Condvar::new(),
    });
    HCS_OPERATION(world().alloc(Kind::Operation(op), "") as *mut c_void)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseOperation(operation: HCS_OPERATION) {
    world::close(operation.0 as usize, "HcsCloseOperation");
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCancelOperation(operation: HCS_OPERATION) -> HRESULT {
    let h = operation.0 as usize;
    let op = match enter(h, "HcsCancelOperation", |k| match k {
        Kind::Operation(o) => Some(o.clone()),
        _ => None,
    }) {
        Ok(op) => op,
        Err(e) => return HRESULT(e),
    };
    let target = lock(&op.state).target;
    let ignore = world().entries.get(&target).is_some_and(|e| match &e.kind {
        Kind::System(s) => s.faults.ignore_cancel,
        Kind::Process(p) => p.system.faults.ignore_cancel,
        Kind::Operation(_) => false,
    });
    world::cancel(&op, ignore);
    leave(h);
    HRESULT(0)
}

fn wait(
    operation: HCS_OPERATION,
    timeout_ms: u32,
    info: Option<*mut HCS_PROCESS_INFORMATION>,
    document: *mut PWSTR,
) -> HRESULT {
    put(document, PWSTR::null());
    let h = operation.0 as usize;
    let op = match enter(h, "HcsWaitForOperationResult", |k| match k {
        Kind::Operation(o) => Some(o.clone()),
        _ => None,
    }) {
        Ok(op) => op,
        Err(e) => return HRESULT(e),
    };
    let mut st = lock(&op.state);
    if !st.issued {
        drop(st);
        leave(h);
        return HRESULT(hr::NOT_STARTED);
    }
    let pending = |s: &mut world::OpState| s.result.is_none();
    st = if timeout_ms == u32::MAX {
        op.cv
            .wait_while(st, pending)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    } else {
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        op.cv
            .wait_timeout_while(st, timeout, pending)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    };
    let answer = match st.result.as_mut() {
        None => HRESULT(hr::OPERATION_TIMEOUT),
        Some(r) => {
            put(document, local_string(&r.doc));
            if let Some(out) = info {
                let given = r.info.take().unwrap_or_default();
                let handle = |v: usize| HANDLE(v as *mut c_void);
                put(
                    out,
                    HCS_PROCESS_INFORMATION {
                        ProcessId: given.pid,
                        Reserved: 0,
                        StdInput: handle(given.stdin),
                        StdOutput: handle(given.stdout),
                        StdError: handle(given.stderr),
                    },
                );
            }
            HRESULT(r.hr)
        }
    };
    drop(st);
    leave(h);
    answer
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsWaitForOperationResult(
    operation: HCS_OPERATION,
    timeout_ms: u32,
    result_document: *mut PWSTR,
) -> HRESULT {
    wait(operation, timeout_ms, None, result_document)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsWaitForOperationResultAndProcessInfo(
    operation: HCS_OPERATION,
    timeout_ms: u32,
    process_information: *mut HCS_PROCESS_INFORMATION,
    result_document: *mut PWSTR,
) -> HRESULT {
    wait(
        operation,
        timeout_ms,
        Some(process_information),
        result_document,
    )
}

// ---- compute systems ----

#[unsafe(no_mangle)]
pub extern "system" fn HcsCreateComputeSystem(
    id: PCWSTR,
    configuration: PCWSTR,
    operation: HCS_OPERATION,
    _security_descriptor: *const SECURITY_DESCRIPTOR,
    compute_system: *mut HCS_SYSTEM,
) -> HRESULT {
    put(compute_system, HCS_SYSTEM::default());
    let (Some(id), Some(config)) = (text(id), text(configuration)) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let doc = serde_json::from_str::<serde_json::Value>(&config);
    let hyperv = doc
        .as_ref()
        .is_ok_and(|d| d.get("VirtualMachine").is_some() || d.get("HostingSystemId").is_some());
    let hosted_by = doc.as_ref().ok().and_then(|d| {
        d.get("HostingSystemId")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    });
    let shares = doc.as_ref().map(vsmb_shares).unwrap_or_default();
    let (system, h) = {
        let mut w = world();
        if w.systems.contains_key(&id) {
            return HRESULT(hr::ALREADY_EXISTS);
        }
        let faults = w.plans.get(&id).cloned().unwrap_or_default();
        let system = Arc::new(System {
            id: id.clone(),
            hyperv,
            hosted_by: hosted_by.clone(),
            shares,
            state: Mutex::new(SystemState {
                status: Status::Creating,
                started: None,
                processes: Default::default(),
                exit: None,
                held_notices: faults.hold_exit_notices.then(Vec::new),
            }),
            faults,
        });
        w.systems.insert(id.clone(), system.clone());
        let h = w.alloc(Kind::System(system.clone()), &id);
        (system, h)
    };
    let call = "HcsCreateComputeSystem";
    let (timing, fail, ignore) = plan(&system.faults, call);
    let s = system.clone();
    let issued = issue(
        operation.0 as usize,
        h,
        call,
        timing,
        ignore,
        move |cancelled| {
            let checked = match (&doc, fail) {
                _ if cancelled => Err((hr::CANCELLED, "cancelled".to_owned())),
                (_, Some(e)) => Err((e, call.to_owned())),
                (Err(e), _) => Err((hr::INVALID_JSON, e.to_string())),
                (Ok(d), _) => check_configuration(d)
                    .map_err(|m| (hr::INVALID_JSON, m))
                    .and_then(|()| hosted_by.as_deref().map_or(Ok(()), |h| check_host(d, h))),
            };
            match checked {
                Ok(()) => {
                    let mut st = lock(&s.state);
                    if st.status == Status::Creating {
                        st.status = Status::Created;
                    }
                    OpResult::ok(String::new())
                }
                Err((e, message)) => {
                    lock(&s.state).status = Status::Stopped;
                    let mut w = world();
                    if w.systems.get(&s.id).is_some_and(|x| Arc::ptr_eq(x, &s)) {
                        w.systems.remove(&s.id);
                    }
                    OpResult::fail(e, &message)
                }
            }
        },
    );
    if let Err(e) = issued {
        let mut w = world();
        w.entries.remove(&h);
        w.systems.remove(&system.id);
        return HRESULT(e);
    }
    put(compute_system, HCS_SYSTEM(h as *mut c_void));
    HRESULT(0)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsOpenComputeSystem(
    id: PCWSTR,
    _requested_access: u32,
    compute_system: *mut HCS_SYSTEM,
) -> HRESULT {
    put(compute_system, HCS_SYSTEM::default());
    let Some(id) = text(id) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let mut w = world();
    let Some(system) = w.systems.get(&id).cloned() else {
        return HRESULT(hr::SYSTEM_NOT_FOUND);
    };
    let h = w.alloc(Kind::System(system), &id);
    put(compute_system, HCS_SYSTEM(h as *mut c_void));
    HRESULT(0)
}

/// Moves a system from `from` to `to`.
fn transition(s: &System, from: Status, to: Status) -> OpResult {
    let mut st = lock(&s.state);
    match st.status {
        current if current == from => {
            st.status = to;
            if to == Status::Running && st.started.is_none() {
                st.started = Some(Instant::now());
            }
            OpResult::ok(String::new())
        }
        Status::Stopped => OpResult::fail(hr::ALREADY_STOPPED, "the system has stopped"),
        _ => OpResult::fail(hr::INVALID_STATE, "the system is not in the required state"),
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsStartComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsStartComputeSystem", |s| {
        transition(s, Status::Created, Status::Running)
    })
}

/// Stops a system on request: `code` for its processes, then `exit` (or
/// an unexpected one when the plan says so).
fn stop(s: &Arc<System>, code: u32, exit: Exit) -> OpResult {
    let stopped = if s.faults.unexpected_exit_on_shutdown {
        stop_system(s, TERMINATED_EXIT, UNEXPECTED_EXIT)
    } else {
        stop_system(s, code, exit)
    };
    if stopped {
        OpResult::ok(String::new())
    } else {
        OpResult::fail(hr::ALREADY_STOPPED, "the system has stopped")
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsShutDownComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsShutDownComputeSystem", |s| {
        stop(s, CONTROL_C_EXIT, GRACEFUL_EXIT)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsTerminateComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsTerminateComputeSystem", |s| {
        stop(s, TERMINATED_EXIT, FORCED_EXIT)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsPauseComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsPauseComputeSystem", |s| {
        if !s.hyperv {
            return OpResult::fail(hr::NOT_SUPPORTED, "only Hyper-V isolated systems pause");
        }
        transition(s, Status::Running, Status::Paused)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsResumeComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsResumeComputeSystem", |s| {
        transition(s, Status::Paused, Status::Running)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetComputeSystemProperties(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    query: PCWSTR,
) -> HRESULT {
    let query = text(query).unwrap_or_default();
    system_call(
        system,
        operation,
        "HcsGetComputeSystemProperties",
        move |s| crate::properties::answer(s, &query),
    )
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsModifyComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    configuration: PCWSTR,
    _identity: HANDLE,
) -> HRESULT {
    let request = text(configuration).unwrap_or_default();
    system_call(
        system,
        operation,
        "HcsModifyComputeSystem",
        move |_| match serde_json::from_str::<serde_json::Value>(&request) {
            Err(e) => OpResult::fail(hr::INVALID_JSON, &e.to_string()),
            Ok(_) => OpResult::fail(hr::NOT_SUPPORTED, "the double modifies nothing"),
        },
    )
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseComputeSystem(system: HCS_SYSTEM) {
    world::close(system.0 as usize, "HcsCloseComputeSystem");
}

/// Registers `callback` on handle `h`; an exit that already happened is
/// delivered at once (assumed: HCS reports the state to late registrations).
pub(crate) fn set_callback(
    h: usize,
    call: &str,
    context: *const c_void,
    callback: HCS_EVENT_CALLBACK,
) -> HRESULT {
    let kind = match enter(h, call, |k| Some(k.clone())) {
        Ok(k) => k,
        Err(e) => return HRESULT(e),
    };
    if let Some(e) = world().entries.get_mut(&h) {
        e.callback = callback.map(|cb| (cb, context as usize));
    }
    let past = match &kind {
        Kind::System(s) => lock(&s.state)
            .exit
            .clone()
            .map(|d| (HcsEventSystemExited, d)),
        Kind::Process(p) => lock(&p.ctl)
            .exit_data
            .clone()
            .map(|d| (HcsEventProcessExited, d)),
        Kind::Operation(_) => None,
    };
    leave(h);
    if let Some((ty, data)) = past {
        std::thread::spawn(move || crate::events::deliver(h, ty, &data));
    }
    HRESULT(0)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsSetComputeSystemCallback(
    system: HCS_SYSTEM,
    _options: HCS_EVENT_OPTIONS,
    context: *const c_void,
    callback: HCS_EVENT_CALLBACK,
) -> HRESULT {
    set_callback(
        system.0 as usize,
        "HcsSetComputeSystemCallback",
        context,
        callback,
    )
}
