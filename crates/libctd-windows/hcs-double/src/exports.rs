//! The exported functions, with computecore's signatures (and vmcompute's
//! `NameToGuid`), plus the control export `LibctdDoubleControl`.
// Exported names are computecore's own.
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use libctd_windows::error::HcsError;
use libctd_windows::hcs::model::{Gate, Stop, SystemKey};

use windows::Win32::Foundation::{HANDLE, HLOCAL};
use windows::Win32::Security::SECURITY_DESCRIPTOR;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_OPERATION_COMPLETION, HCS_PROCESS,
    HCS_PROCESS_INFORMATION, HCS_SYSTEM, HcsEventProcessExited, HcsEventSystemExited,
};
use windows::Win32::System::Memory::{LMEM_FIXED, LocalAlloc};
use windows::core::{HRESULT, PCWSTR, PWSTR};

use crate::events::{process_exited, system_exited};
use crate::world::{
    self, Kind, OpResult, Operation, Timing, enter, hr, issue, leave, lock, model, world,
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

/// A compute system handle's system and id.
pub(crate) fn system_of(k: &Kind, owner: &str) -> Option<(SystemKey, String)> {
    match k {
        Kind::System(key) => Some((*key, owner.to_owned())),
        _ => None,
    }
}

/// A process handle's pid and compute system id.
fn process_of(k: &Kind, owner: &str) -> Option<(u32, String)> {
    match k {
        Kind::Process(pid) => Some((*pid, owner.to_owned())),
        _ => None,
    }
}

/// Issues `call` on handle `h` (its compute system `id`): the plan's gate
/// now, `work` later on the double's thread, or `undo` when the operation
/// was cancelled or the plan fails it.
fn gated_call(
    h: usize,
    op: HCS_OPERATION,
    id: &str,
    call: &'static str,
    work: impl FnOnce() -> OpResult + Send + 'static,
    undo: impl FnOnce() + Send + 'static,
) -> HRESULT {
    let gate = match model().gate(call, id) {
        Ok(gate) => gate,
        Err(e) => return HRESULT(e.hresult.0 as i32),
    };
    let ignore = model().plan_flag(id, |p| p.ignore_cancel);
    let timing = Timing {
        before: gate.slow,
        after: gate.late,
    };
    let issued = issue(op.0 as usize, h, call, timing, ignore, move |cancelled| {
        if cancelled {
            undo();
            OpResult::default()
        } else if let Some(e) = &gate.fail {
            undo();
            OpResult::err(e)
        } else {
            acted(gate, work)
        }
    });
    HRESULT(issued.err().unwrap_or(0))
}

/// `work`'s result; a pending failure of the plan comes after the work.
fn acted(gate: Gate, work: impl FnOnce() -> OpResult) -> OpResult {
    let result = work();
    match gate.then {
        Some(e) if result.hr == 0 => OpResult::err(&e),
        _ => result,
    }
}

/// Issues `call` on compute system handle `system`.
fn system_call(
    system: HCS_SYSTEM,
    op: HCS_OPERATION,
    call: &'static str,
    work: impl FnOnce(SystemKey) -> OpResult + Send + 'static,
) -> HRESULT {
    handle_call(system.0 as usize, op, call, system_of, work)
}

/// Issues `call` on process handle `process`.
pub(crate) fn process_call(
    process: HCS_PROCESS,
    op: HCS_OPERATION,
    call: &'static str,
    work: impl FnOnce(u32) -> OpResult + Send + 'static,
) -> HRESULT {
    handle_call(process.0 as usize, op, call, process_of, work)
}

/// Issues `call` on handle `h`, which `of` reads as what `work` acts on.
fn handle_call<T: Send + 'static>(
    h: usize,
    op: HCS_OPERATION,
    call: &'static str,
    of: fn(&Kind, &str) -> Option<(T, String)>,
    work: impl FnOnce(T) -> OpResult + Send + 'static,
) -> HRESULT {
    let (target, id) = match enter(h, call, of) {
        Ok(t) => t,
        Err(e) => return HRESULT(e),
    };
    let answer = gated_call(h, op, &id, call, move || work(target), || {});
    leave(h);
    answer
}

/// An answer without a document.
pub(crate) fn done(result: Result<(), HcsError>) -> OpResult {
    OpResult::of(result.map(|()| String::new()))
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
    let (op, owner) = match enter(h, "HcsCancelOperation", |k, owner| match k {
        Kind::Operation(o) => Some((o.clone(), owner.to_owned())),
        _ => None,
    }) {
        Ok(op) => op,
        Err(e) => return HRESULT(e),
    };
    let ignore = model().plan_flag(&owner, |p| p.ignore_cancel);
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
    let op = match enter(h, "HcsWaitForOperationResult", |k, _| match k {
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
    const CALL: &str = "HcsCreateComputeSystem";
    put(compute_system, HCS_SYSTEM::default());
    let (Some(id), Some(config)) = (text(id), text(configuration)) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let key = match model().begin_create(&id) {
        Ok(key) => key,
        Err(e) => return HRESULT(e.hresult.0 as i32),
    };
    let h = world().alloc(Kind::System(key), &id);
    let answer = gated_call(
        h,
        operation,
        &id,
        CALL,
        move || done(model().finish_create(key, &config)),
        move || model().abandon_create(key),
    );
    if answer.is_err() {
        // Nothing was issued: no handle, no system.
        world().entries.remove(&h);
        model().abandon_create(key);
        model().close_system(key);
        return answer;
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
    const CALL: &str = "HcsOpenComputeSystem";
    put(compute_system, HCS_SYSTEM::default());
    let Some(id) = text(id) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let opened = model()
        .gate(CALL, &id)
        .and_then(|gate| gate.fail.map_or(Ok(()), Err))
        .and_then(|()| model().open_system(&id));
    match opened {
        Ok(key) => {
            let h = world().alloc(Kind::System(key), &id);
            put(compute_system, HCS_SYSTEM(h as *mut c_void));
            HRESULT(0)
        }
        Err(e) => HRESULT(e.hresult.0 as i32),
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsStartComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsStartComputeSystem", |key| {
        done(model().start(key))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsShutDownComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsShutDownComputeSystem", |key| {
        done(model().stop(key, Stop::Shutdown))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsTerminateComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsTerminateComputeSystem", |key| {
        done(model().stop(key, Stop::Terminate))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsPauseComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsPauseComputeSystem", |key| {
        done(model().pause(key))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsResumeComputeSystem(
    system: HCS_SYSTEM,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    system_call(system, operation, "HcsResumeComputeSystem", |key| {
        done(model().resume(key))
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
        move |key| OpResult::of(model().properties(key, &query)),
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
    system_call(system, operation, "HcsModifyComputeSystem", move |key| {
        done(model().modify_system(key, &request))
    })
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
    let kind = match enter(h, call, |k, _| Some(k.clone())) {
        Ok(k) => k,
        Err(e) => return HRESULT(e),
    };
    if let Some(e) = world().entries.get_mut(&h) {
        e.callback = callback.map(|cb| (cb, context as usize));
    }
    let past = match &kind {
        Kind::System(key) => model()
            .system_exit(*key)
            .map(|e| (HcsEventSystemExited, system_exited(&e))),
        Kind::Process(pid) => model()
            .process_notice(*pid)
            .map(|e| (HcsEventProcessExited, process_exited(&e))),
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
