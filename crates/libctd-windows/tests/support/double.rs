//! The computecore.dll double's control export, for tests under Wine
//! (`cargo xtask windows-test` installs the double into System32).

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use windows::Win32::Foundation::{HLOCAL, LocalFree};
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{HRESULT, HSTRING, PCSTR, PCWSTR, PWSTR};

type ControlFn = unsafe extern "system" fn(PCWSTR, *mut PWSTR) -> HRESULT;

/// An export's address, to transmute to its signature.
pub(crate) type Export = unsafe extern "system" fn() -> isize;

/// The address of computecore.dll's export `name` (NUL-terminated).
pub(crate) fn export(name: &[u8]) -> Export {
    export_of("computecore.dll", name)
}

/// The address of `dll`'s export `name` (NUL-terminated).
fn export_of(dll: &str, name: &[u8]) -> Export {
    assert_eq!(name.last(), Some(&0), "export names are NUL-terminated");
    // SAFETY: loading a DLL from System32 by name.
    let module = unsafe { LoadLibraryExW(&HSTRING::from(dll), None, LOAD_LIBRARY_SEARCH_SYSTEM32) }
        .unwrap_or_else(|e| {
            panic!("the {dll} double is not installed (run cargo xtask windows-test): {e}")
        });
    // SAFETY: a loaded module and a NUL-terminated name.
    unsafe { GetProcAddress(module, PCSTR(name.as_ptr())) }
        .expect("computecore.dll lacks the export")
}

/// Sends a control request to the double; its JSON answer.
pub(crate) fn control(request: serde_json::Value) -> serde_json::Value {
    control_of("computecore.dll", request)
}

/// Sends a control request to the double loaded as computenetwork.dll
/// (its own copy, with its own model: HNS endpoints and namespaces).
pub(crate) fn network_control(request: serde_json::Value) -> serde_json::Value {
    control_of("computenetwork.dll", request)
}

fn control_of(dll: &str, request: serde_json::Value) -> serde_json::Value {
    // SAFETY: the control export's signature.
    let f = unsafe {
        std::mem::transmute::<Export, ControlFn>(export_of(dll, b"LibctdDoubleControl\0"))
    };
    let request = HSTRING::from(request.to_string());
    let mut answer = PWSTR::null();
    // SAFETY: a valid string and out-pointer.
    let hr = unsafe { f(PCWSTR(request.as_ptr()), &mut answer) };
    assert!(hr.is_ok(), "LibctdDoubleControl failed: {hr:?}");
    // SAFETY: the answer is a NUL-terminated string from LocalAlloc.
    let text = unsafe { answer.to_string() }.unwrap();
    // SAFETY: freed once, as HCS documents are.
    unsafe { LocalFree(Some(HLOCAL(answer.0.cast()))) };
    serde_json::from_str(&text).unwrap()
}

/// Sets the fault plan of compute system `system_id` (before it is created).
pub(crate) fn faults(system_id: &str, plan: serde_json::Value) {
    control(serde_json::json!({"Faults": {"System": system_id, "Plan": plan}}));
}

/// Makes a running compute system exit unexpectedly.
pub(crate) fn crash(system_id: &str) -> bool {
    control(serde_json::json!({"Crash": system_id}))["Crashed"] == true
}

/// Sends the ProcessExited notifications held for `system_id` (its plan's
/// `HoldExitNotices`).
pub(crate) fn release_exit_notices(system_id: &str) -> bool {
    control(serde_json::json!({"ReleaseExitNotices": system_id}))["Released"] == true
}

/// Ends process `pid` of `system_id` with `exit_code`, as if it exited
/// by itself; false when no such process runs.
pub(crate) fn end_process(system_id: &str, pid: u32, exit_code: u32) -> bool {
    let request = serde_json::json!({"EndProcess":
        {"System": system_id, "ProcessId": pid, "ExitCode": exit_code}});
    control(request)["Ended"] == true
}

/// The calls made on compute system `system_id`, in order.
pub(crate) fn calls(system_id: &str) -> Vec<String> {
    list(&control(serde_json::json!({"Calls": system_id})), "Calls")
}

/// The double's report on compute systems whose id contains `pattern`.
pub(crate) fn report(pattern: &str) -> serde_json::Value {
    control(serde_json::json!({"Report": pattern}))
}

/// The handle-discipline violations recorded against `pattern`'s systems.
pub(crate) fn violations(pattern: &str) -> Vec<String> {
    list(&report(pattern), "Violations")
}

/// The strings under `key`; panics when the double's answer has no such
/// list (an empty list must mean "none", never "not answered").
fn list(report: &serde_json::Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("the double answered no {key} list: {report}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{key} holds a non-string: {v}"))
                .to_owned()
        })
        .collect()
}

/// The disk access grants held by VMs whose id contains `pattern`.
pub(crate) fn grants(pattern: &str) -> Vec<serde_json::Value> {
    let answer = control(serde_json::json!({"Grants": pattern}));
    answer["Grants"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("the double answered no Grants list: {answer}"))
}

/// Asserts that, within `deadline`, no VM of `pattern` holds a disk grant.
pub(crate) fn assert_no_grants(pattern: &str, deadline: Duration) {
    poll(deadline, || {
        let held = grants(pattern);
        match held.is_empty() {
            true => Ok(()),
            false => Err(format!("grants left after {deadline:?}: {held:?}")),
        }
    });
}

/// Asks `check` again every 5 ms until it answers `Ok`; panics with its
/// last answer once `deadline` has passed.
pub(crate) fn poll(deadline: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let until = Instant::now() + deadline;
    loop {
        let Err(why) = check() else {
            return;
        };
        assert!(Instant::now() < until, "{why}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that `pattern`'s systems saw no violation and, within
/// `deadline`, hold no open handle and no orphaned process.
pub(crate) fn assert_clean(pattern: &str, deadline: Duration) {
    poll(deadline, || {
        let r = report(pattern);
        let violations = list(&r, "Violations");
        assert!(
            violations.is_empty(),
            "handle discipline violated: {violations:#?}"
        );
        let open = list(&r, "OpenHandles");
        let orphans = list(&r, "Orphans");
        if open.is_empty() && orphans.is_empty() {
            return Ok(());
        }
        Err(format!(
            "leaked after {deadline:?}: handles {open:#?}, orphaned processes {orphans:#?}"
        ))
    });
}
