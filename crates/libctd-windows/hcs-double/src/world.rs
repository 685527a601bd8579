//! The double's own part: handles, operations, and the record of
//! handle-discipline violations. Compute systems, processes, their rules
//! and the fault plan are the model's (`libctd_windows::hcs::model`),
//! shared with the simulation; this face adapts it to computecore's
//! handles and operations.
//!
//! Lock order: the world lock, then an operation's own lock. The model is
//! never called with the world lock held (its observer takes it).

use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use libctd_windows::error::HcsError;
use libctd_windows::hcs::model::{self, Model, SystemKey};
use windows::Win32::Foundation::{CloseHandle, HANDLE};
use windows::Win32::System::HostComputeSystem::{HCS_EVENT, HCS_OPERATION};

/// A registered event callback.
pub(crate) type EventCallback = unsafe extern "system" fn(*const HCS_EVENT, *const c_void);
/// An operation's completion callback.
pub(crate) type Completion = unsafe extern "system" fn(HCS_OPERATION, *const c_void);

/// The HRESULTs of computecore's own machinery (the model's are in
/// `model::hr`), as `HRESULT.0`.
pub(crate) mod hr {
    use libctd_windows::error::Hresult;
    use libctd_windows::error::codes::*;

    /// An HRESULT as `HRESULT.0`.
    pub(crate) const fn i(h: Hresult) -> i32 {
        h.0 as i32
    }
    /// HCS_E_OPERATION_TIMEOUT.
    pub(crate) const OPERATION_TIMEOUT: i32 = i(HCS_E_OPERATION_TIMEOUT);
    /// HCS_E_OPERATION_NOT_STARTED.
    pub(crate) const NOT_STARTED: i32 = i(HCS_E_OPERATION_NOT_STARTED);
    /// HCS_E_OPERATION_ALREADY_STARTED.
    pub(crate) const ALREADY_STARTED: i32 = i(HCS_E_OPERATION_ALREADY_STARTED);
    /// E_HANDLE as HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE), the model's.
    pub(crate) const INVALID_HANDLE: i32 = i(libctd_windows::hcs::model::hr::INVALID_HANDLE);
    /// E_INVALIDARG.
    pub(crate) const INVALID_ARG: i32 = 0x8007_0057_u32 as i32;
    /// HRESULT_FROM_WIN32(ERROR_CANCELLED).
    pub(crate) const CANCELLED: i32 = 0x8007_04C7_u32 as i32;
}

/// The one model behind every handle, reporting to the callbacks.
pub(crate) fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::new(Box::new(crate::events::Deliver)))
}

/// A process's pid and the stdio handles not yet handed to the caller.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcInfo {
    pub pid: u32,
    pub stdin: usize,
    pub stdout: usize,
    pub stderr: usize,
}

impl ProcInfo {
    /// Closes the handles nobody took.
    pub(crate) fn close(&self) {
        for h in [self.stdin, self.stdout, self.stderr] {
            if h != 0 {
                // SAFETY: a pipe handle the double created and still owns.
                let _ = unsafe { CloseHandle(HANDLE(h as *mut c_void)) };
            }
        }
    }
}

/// The outcome of an operation.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpResult {
    pub hr: i32,
    pub doc: String,
    pub info: Option<ProcInfo>,
}

impl OpResult {
    /// Success with a document.
    pub(crate) fn ok(doc: String) -> Self {
        Self {
            hr: 0,
            doc,
            info: None,
        }
    }

    /// A failure with HCS's result document.
    pub(crate) fn err(e: &HcsError) -> Self {
        Self {
            hr: e.hresult.0 as i32,
            doc: model::result_document(e),
            info: None,
        }
    }

    /// The model's answer: success with a document, or its failure.
    pub(crate) fn of(result: Result<String, HcsError>) -> Self {
        result.map_or_else(|e| Self::err(&e), Self::ok)
    }

    /// A failure of the double's own machinery.
    pub(crate) fn fail(hr: i32, detail: &str) -> Self {
        let mut err = HcsError::new(libctd_windows::error::Hresult(hr as u32));
        err.detail = Some(detail.to_owned());
        Self::err(&err)
    }
}

/// An HCS operation.
pub(crate) struct Operation {
    pub completion: Option<(Completion, usize)>,
    pub state: Mutex<OpState>,
    pub cv: Condvar,
}

/// An operation's progress.
#[derive(Default)]
pub(crate) struct OpState {
    /// The handle it was issued on (0 when not yet issued).
    pub target: usize,
    pub issued: bool,
    pub result: Option<OpResult>,
    pub cancelled: bool,
}

/// What a handle refers to.
#[derive(Clone)]
pub(crate) enum Kind {
    Operation(Arc<Operation>),
    System(SystemKey),
    /// A process (created, or being created) of a compute system.
    Process(u32),
}

/// An open handle.
pub(crate) struct Entry {
    pub kind: Kind,
    /// The compute system it concerns ("" for an unissued operation).
    pub owner: String,
    pub callback: Option<(EventCallback, usize)>,
    /// Calls on the handle in progress.
    pub calls: u32,
    /// Uncancelled operations issued on it, not complete.
    pub pending: u32,
    /// Callbacks being delivered for it.
    pub delivering: u32,
}

/// When an operation takes effect, and when it completes after that.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timing {
    pub before: Duration,
    pub after: Duration,
}

/// Everything the double knows.
#[derive(Default)]
pub(crate) struct World {
    next: usize,
    pub entries: HashMap<usize, Entry>,
    closed: HashMap<usize, String>,
    violations: Vec<(String, String)>,
    /// Stdio of processes whose create's wait failed (`CreateProcessQuirk`),
    /// for HcsGetProcessInfo.
    pub stashed: HashMap<u32, ProcInfo>,
}

/// Locks ignoring poison: the double must keep answering.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn cell() -> &'static (Mutex<World>, Condvar) {
    static WORLD: OnceLock<(Mutex<World>, Condvar)> = OnceLock::new();
    WORLD.get_or_init(|| (Mutex::new(World::default()), Condvar::new()))
}

/// The world, locked.
pub(crate) fn world() -> MutexGuard<'static, World> {
    lock(&cell().0)
}

/// Wakes threads waiting for a handle's calls or callbacks to finish.
pub(crate) fn notify() {
    cell().1.notify_all();
}

impl World {
    /// A new handle for `kind`; values are never reused.
    pub(crate) fn alloc(&mut self, kind: Kind, owner: &str) -> usize {
        self.next += 1;
        let h = 0x1_0000 + self.next * 16;
        self.entries.insert(
            h,
            Entry {
                kind,
                owner: owner.to_owned(),
                callback: None,
                calls: 0,
                pending: 0,
                delivering: 0,
            },
        );
        h
    }

    /// Records a violation against compute system `owner`.
    pub(crate) fn violation(&mut self, owner: &str, what: String) {
        self.violations.push((owner.to_owned(), what));
    }

    /// Records a call on a handle that is not open.
    fn bad_handle(&mut self, h: usize, call: &str) -> i32 {
        match self.closed.get(&h).cloned() {
            Some(owner) => self.violation(&owner, format!("{call} on closed handle {h:#x}")),
            None => self.violation("", format!("{call} on unknown handle {h:#x}")),
        }
        hr::INVALID_HANDLE
    }

    /// The report of systems whose id contains `pattern` (all for ""),
    /// given the model's processes (system id, pid, ended).
    pub(crate) fn report(
        &self,
        pattern: &str,
        all_processes: &[(String, u32, bool)],
    ) -> serde_json::Value {
        let mine = |owner: &str| {
            if pattern.is_empty() {
                true
            } else {
                !owner.is_empty() && owner.contains(pattern)
            }
        };
        let violations: Vec<&String> = self
            .violations
            .iter()
            .filter(|(o, _)| mine(o))
            .map(|(_, v)| v)
            .collect();
        let mut open: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| mine(&e.owner))
            .map(|(h, e)| {
                let what = match e.kind {
                    Kind::Operation(_) => "operation",
                    Kind::System(_) => "compute system",
                    Kind::Process(..) => "process",
                };
                format!("{what} handle {h:#x} of {:?}", e.owner)
            })
            .collect();
        open.sort();
        let handled: HashSet<u32> = self
            .entries
            .values()
            .filter_map(|e| match &e.kind {
                Kind::Process(pid) => Some(*pid),
                _ => None,
            })
            .collect();
        let mut orphans = Vec::new();
        let mut processes = Vec::new();
        for (id, pid, exited) in all_processes.iter().filter(|(id, ..)| mine(id)) {
            if !exited && !handled.contains(pid) {
                orphans.push(format!("process {pid} of {id:?}"));
            }
            processes.push(serde_json::json!({"System": id, "ProcessId": pid, "Exited": exited}));
        }
        serde_json::json!({"Violations": violations, "OpenHandles": open, "Orphans": orphans,
                           "Processes": processes})
    }
}

/// Begins call `call` on handle `h`, which must be open and satisfy `want`;
/// `Err(hr)` (and a recorded violation) otherwise. End it with [`leave`].
pub(crate) fn enter<T>(
    h: usize,
    call: &str,
    want: impl FnOnce(&Kind, &str) -> Option<T>,
) -> Result<T, i32> {
    let mut w = world();
    let found = w.entries.get_mut(&h).map(|e| (want(&e.kind, &e.owner), e));
    match found {
        Some((Some(t), e)) => {
            e.calls += 1;
            Ok(t)
        }
        Some((None, _)) => {
            w.violation("", format!("{call} on handle {h:#x} of another kind"));
            Err(hr::INVALID_HANDLE)
        }
        None => Err(w.bad_handle(h, call)),
    }
}

/// Ends a call begun with [`enter`].
pub(crate) fn leave(h: usize) {
    if let Some(e) = world().entries.get_mut(&h) {
        e.calls = e.calls.saturating_sub(1);
    }
    notify();
}

/// Closes handle `h` with `call`, recording misuse; waits for callbacks
/// being delivered for it (as computecore drains them). Returns the closed
/// entry's kind.
pub(crate) fn close(h: usize, call: &str) -> Option<Kind> {
    let mut w = world();
    let Some(e) = w.entries.get(&h) else {
        let _ = w.bad_handle(h, call);
        return None;
    };
    let (owner, calls, pending) = (e.owner.clone(), e.calls, e.pending);
    if calls > 0 {
        w.violation(
            &owner,
            format!("{call} of {h:#x} while a call on it is in flight"),
        );
    }
    if pending > 0 {
        w.violation(
            &owner,
            format!("{call} of {h:#x} while an operation on it is in flight"),
        );
    }
    while w.entries.get(&h).is_some_and(|e| e.delivering > 0) {
        w = cell().1.wait(w).unwrap_or_else(PoisonError::into_inner);
    }
    let e = w.entries.remove(&h)?;
    w.closed.insert(h, owner.clone());
    match &e.kind {
        Kind::System(key) => {
            // The model terminates the system when its last handle goes
            // (ShouldTerminateOnLastHandleClosed).
            let key = *key;
            drop(w);
            model().close_system(key);
            return Some(e.kind);
        }
        Kind::Operation(op) => {
            let mut st = lock(&op.state);
            if st.issued && st.result.is_none() && !st.cancelled {
                w.violation(
                    &owner,
                    format!("{call} of {h:#x} still in flight, not cancelled"),
                );
            }
            if let Some(info) = st.result.as_mut().and_then(|r| r.info.take()) {
                info.close();
            }
        }
        Kind::Process(..) => {}
    }
    Some(e.kind)
}

/// Issues operation `op_h` on handle `target`; `work` runs on the double's
/// own thread after `delay`, and is told whether the operation was cancelled
/// (it then must undo what the call began). Fails when `op_h` is not an
/// open operation or was issued before.
pub(crate) fn issue(
    op_h: usize,
    target: usize,
    call: &str,
    timing: Timing,
    ignore_cancel: bool,
    work: impl FnOnce(bool) -> OpResult + Send + 'static,
) -> Result<(), i32> {
    let op = {
        let mut w = world();
        let owner = w.entries.get(&target).map(|e| e.owner.clone());
        let op = match w.entries.get_mut(&op_h) {
            Some(Entry {
                kind: Kind::Operation(op),
                owner: op_owner,
                ..
            }) => {
                *op_owner = owner.unwrap_or_default();
                op.clone()
            }
            _ => return Err(w.bad_handle(op_h, call)),
        };
        {
            let mut st = lock(&op.state);
            if st.issued {
                return Err(hr::ALREADY_STARTED);
            }
            st.issued = true;
            st.target = target;
        }
        if let Some(e) = w.entries.get_mut(&target) {
            e.pending += 1;
        }
        op
    };
    std::thread::spawn(move || {
        std::thread::sleep(timing.before);
        let cancelled = {
            let st = lock(&op.state);
            st.cancelled && !ignore_cancel
        };
        let result = work(cancelled);
        std::thread::sleep(timing.after);
        complete(op_h, &op, result);
    });
    Ok(())
}

/// Stores an operation's result (unless cancelled first), releases its
/// target and calls its completion callback.
fn complete(op_h: usize, op: &Arc<Operation>, result: OpResult) {
    {
        // The target is released before the result is visible: a caller
        // that saw the result may close the target at once.
        let mut w = world();
        let alive = w.entries.contains_key(&op_h);
        let mut st = lock(&op.state);
        if !st.cancelled
            && let Some(e) = w.entries.get_mut(&st.target)
        {
            e.pending = e.pending.saturating_sub(1);
        }
        if st.result.is_none() && alive {
            st.result = Some(result);
        } else if let Some(info) = result.info {
            // Nobody can take the handles any more.
            info.close();
        }
        op.cv.notify_all();
    }
    if let Some((cb, ctx)) = op.completion
        && world().entries.contains_key(&op_h)
    {
        // SAFETY: the caller's completion callback, with its context.
        unsafe { cb(HCS_OPERATION(op_h as *mut c_void), ctx as *const c_void) };
    }
}

/// Cancels an operation: it completes with ERROR_CANCELLED at once and has
/// no effect, unless its system's plan ignores cancels.
pub(crate) fn cancel(op: &Operation, ignore: bool) {
    let mut w = world();
    let mut st = lock(&op.state);
    if !st.issued || st.result.is_some() || st.cancelled {
        return;
    }
    st.cancelled = true;
    if !ignore {
        st.result = Some(OpResult::fail(hr::CANCELLED, "the operation was cancelled"));
        op.cv.notify_all();
    }
    if let Some(e) = w.entries.get_mut(&st.target) {
        e.pending = e.pending.saturating_sub(1);
    }
}
