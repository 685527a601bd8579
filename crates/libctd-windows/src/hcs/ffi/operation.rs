//! HCS operations run on blocking threads.

use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use windows::Win32::Foundation::{HLOCAL, LocalFree};
use windows::Win32::System::HostComputeSystem::{HCS_OPERATION, HCS_PROCESS_INFORMATION};
use windows::core::{HRESULT, PWSTR};

use crate::error::codes::HCS_E_OPERATION_TIMEOUT;
use crate::error::{HcsError, Hresult};
use crate::hcs::HcsResult;

use super::fns::*;

// ---- operations ----

/// Converts and frees a result document.
///
/// # Safety
/// `doc` must be null or a document HCS allocated with `LocalAlloc`.
pub(super) unsafe fn take_document(doc: PWSTR) -> String {
    if doc.is_null() {
        return String::new();
    }
    // SAFETY: HCS documents are NUL-terminated wide strings.
    let text = unsafe { doc.to_string() }.unwrap_or_default();
    // SAFETY: the document was allocated by HCS with LocalAlloc and is freed once.
    unsafe { LocalFree(Some(HLOCAL(doc.0.cast()))) };
    text
}

/// Whether `hr` says the wait timed out: only HCS_E_OPERATION_TIMEOUT
/// does (HCS_E_CONNECTION_TIMEOUT and ERROR_TIMEOUT are failures of the
/// operation itself).
pub(super) fn is_wait_timeout(hr: HRESULT) -> bool {
    Hresult::from(hr) == HCS_E_OPERATION_TIMEOUT
}

/// An operation in flight that its caller may give up on: the caller's
/// [`CancelOnDrop`] cancels it, the thread waiting for it closes it.
#[derive(Default)]
pub(super) struct OpSlot(Mutex<SlotState>);

#[derive(Default)]
struct SlotState {
    /// The live operation, 0 before it exists and once it was waited for.
    op: usize,
    /// The caller gave up.
    abandoned: bool,
}

impl OpSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the live operation; false when the caller gave up already.
    fn begin(&self, op: HCS_OPERATION) -> bool {
        let mut st = self.lock();
        st.op = op.0 as usize;
        !st.abandoned
    }

    /// The wait returned: the operation can no longer be cancelled from
    /// outside (its closing is next).
    fn end(&self) {
        self.lock().op = 0;
    }
}

/// Held by the caller of a cancellable operation: dropped before the
/// operation was waited for (the caller gave up, e.g. on its own timeout),
/// it cancels the operation, so the waiting thread, its lease on the
/// handle and the operation are released at once.
pub(super) struct CancelOnDrop {
    pub(super) fns: Arc<Fns>,
    pub(super) slot: Arc<OpSlot>,
    pub(super) armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut st = self.slot.lock();
        st.abandoned = true;
        if st.op != 0 {
            // SAFETY: the operation is live: its waiting thread closes it
            // only after `end`, which needs the lock held here.
            let _ = unsafe { (self.fns.cancel_operation)(HCS_OPERATION(st.op as *mut c_void)) };
        }
    }
}

/// Runs one HCS operation on the current (blocking) thread: create, issue,
/// wait with `timeout_ms`; on a wait timeout cancel it (as hcsshim does, no
/// second wait: the timeout is a bound); free; close. With a `slot`, the
/// caller may cancel it while it is waited for (see [`CancelOnDrop`]).
///
/// # Safety
/// `issue` must pass the operation to exactly one HCS call and return its HRESULT.
pub(super) unsafe fn blocking_operation(
    fns: &Fns,
    timeout_ms: u32,
    want_process_info: bool,
    slot: Option<&OpSlot>,
    issue: impl FnOnce(HCS_OPERATION) -> HRESULT,
) -> HcsResult<(String, HCS_PROCESS_INFORMATION)> {
    // SAFETY: no context and no completion callback: the operation is waited on.
    let op = unsafe { (fns.create_operation)(std::ptr::null(), None) };
    if op.is_invalid() {
        return Err(HcsError::new(Hresult(0x8007_000E))); // E_OUTOFMEMORY
    }
    if slot.is_some_and(|s| !s.begin(op)) {
        // Given up before it was issued: nothing to undo.
        // SAFETY: `op` is live, never issued, and closed once.
        unsafe { (fns.close_operation)(op) };
        return Err(HcsError::new(Hresult::from_win32(
            crate::error::win32::OPERATION_ABORTED,
        )));
    }
    let issued = issue(op);
    let mut info = HCS_PROCESS_INFORMATION::default();
    let mut doc = PWSTR::null();
    let hr = if issued.is_err() {
        issued
    } else if want_process_info {
        // SAFETY: `op` is a live operation; `info` and `doc` are valid out-pointers.
        unsafe {
            (fns.wait_for_operation_result_and_process_info)(op, timeout_ms, &mut info, &mut doc)
        }
    } else {
        // SAFETY: as above.
        unsafe { (fns.wait_for_operation_result)(op, timeout_ms, &mut doc) }
    };
    if let Some(slot) = slot {
        slot.end();
    }
    if issued.is_ok() && is_wait_timeout(hr) {
        // Cancel the operation in flight; closing it below is then safe.
        // What HCS creates after the cancel is the caller's to undo.
        // SAFETY: `op` is live.
        let _ = unsafe { (fns.cancel_operation)(op) };
        info = HCS_PROCESS_INFORMATION::default();
    }
    // SAFETY: `doc` is null or an HCS document, freed once.
    let text = unsafe { take_document(doc) };
    // SAFETY: `op` is live and closed once.
    unsafe { (fns.close_operation)(op) };
    if hr.is_ok() {
        Ok((text, info))
    } else {
        Err(HcsError::with_document(Hresult::from(hr), &text))
    }
}

/// How long a shutdown or terminate is waited for before it counts as
/// submitted (pending).
pub(super) const SUBMIT_WAIT: Duration = Duration::from_secs(1);
