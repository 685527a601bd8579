//! The real Host Compute Service: computecore.dll, bound at run time.
//!
//! The `windows` crate declares the HCS functions as load-time imports, so a
//! binary calling them would not start where computecore.dll is missing (a
//! Windows without the Containers feature). Here only the crate's types are
//! used; every function is resolved with `LoadLibraryExW` (System32 only) and
//! `GetProcAddress`, and a missing DLL or function is an `Unavailable` error
//! naming the Windows Containers feature.
//!
//! Operations run on blocking threads: create an operation, issue the call,
//! wait for its result with a timeout; on a wait timeout (only
//! HCS_E_OPERATION_TIMEOUT) the operation is cancelled and closed without a
//! second wait, as hcsshim does, and a system or process HCS handed back is
//! terminated and closed. Result documents are freed with `LocalFree`.
//! Every call holds a lease on its handle, and a close waits for them. Exit
//! notifications arrive through callbacks registered before anything can
//! exit, with a registry key (never a pointer) as context; the callbacks never
//! block nor unwind.
//!
//! ```no_run
//! use libctd_core::ErrorKind;
//! use libctd_windows::hcs::ffi::Computecore;
//!
//! match Computecore::load() {
//!     Ok(_hcs) => println!("HCS is available"),
//!     Err(e) if e.kind() == ErrorKind::Unavailable => println!("{e}"),
//!     Err(e) => panic!("{e}"),
//! }
//! ```

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::io;
use std::os::windows::io::{FromRawHandle, RawHandle};
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::{Error, OutputStream, StdinStream};
use tokio::io::AsyncWrite;
use tokio::sync::watch;
use windows::Win32::Foundation::{
    FARPROC, HANDLE, HLOCAL, HMODULE, INVALID_HANDLE_VALUE, LocalFree,
};
use windows::Win32::Security::SECURITY_DESCRIPTOR;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT, HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_OPERATION_COMPLETION,
    HCS_PROCESS, HCS_PROCESS_INFORMATION, HCS_SYSTEM, HcsEventOptionNone, HcsEventProcessExited,
    HcsEventServiceDisconnect, HcsEventSystemExited,
};
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{GUID, HRESULT, HSTRING, PCSTR, PCWSTR, PWSTR};

use super::{Hcs, HcsResult, ProcessExit, ProcessInfo, SystemExit};
use crate::error::{HcsError, Hresult, win32};

/// What to tell users when HCS is missing.
const FEATURE_HINT: &str = "the Windows Containers feature is not installed or this Windows \
     is older than Windows Server 2019 / 1809 (enable it with \
     `Install-WindowsFeature Containers` or `Enable-WindowsOptionalFeature -Online \
     -FeatureName Containers`)";

/// `INFINITE` for the wait functions.
const INFINITE: u32 = u32::MAX;
/// `GENERIC_ALL`, the access asked when opening systems and processes.
const GENERIC_ALL: u32 = 0x1000_0000;

type CreateOperationFn =
    unsafe extern "system" fn(*const c_void, HCS_OPERATION_COMPLETION) -> HCS_OPERATION;
type CloseOperationFn = unsafe extern "system" fn(HCS_OPERATION);
type CancelOperationFn = unsafe extern "system" fn(HCS_OPERATION) -> HRESULT;
type WaitForOperationResultFn =
    unsafe extern "system" fn(HCS_OPERATION, u32, *mut PWSTR) -> HRESULT;
type WaitForOperationResultAndProcessInfoFn = unsafe extern "system" fn(
    HCS_OPERATION,
    u32,
    *mut HCS_PROCESS_INFORMATION,
    *mut PWSTR,
) -> HRESULT;
type CreateComputeSystemFn = unsafe extern "system" fn(
    PCWSTR,
    PCWSTR,
    HCS_OPERATION,
    *const SECURITY_DESCRIPTOR,
    *mut HCS_SYSTEM,
) -> HRESULT;
type OpenComputeSystemFn = unsafe extern "system" fn(PCWSTR, u32, *mut HCS_SYSTEM) -> HRESULT;
type SystemOpFn = unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
type ModifyComputeSystemFn =
    unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR, HANDLE) -> HRESULT;
type CloseComputeSystemFn = unsafe extern "system" fn(HCS_SYSTEM);
type SetComputeSystemCallbackFn = unsafe extern "system" fn(
    HCS_SYSTEM,
    HCS_EVENT_OPTIONS,
    *const c_void,
    HCS_EVENT_CALLBACK,
) -> HRESULT;
type CreateProcessFn = unsafe extern "system" fn(
    HCS_SYSTEM,
    PCWSTR,
    HCS_OPERATION,
    *const SECURITY_DESCRIPTOR,
    *mut HCS_PROCESS,
) -> HRESULT;
type OpenProcessFn = unsafe extern "system" fn(HCS_SYSTEM, u32, u32, *mut HCS_PROCESS) -> HRESULT;
type ProcessOpFn = unsafe extern "system" fn(HCS_PROCESS, HCS_OPERATION, PCWSTR) -> HRESULT;
type GetProcessInfoFn = unsafe extern "system" fn(HCS_PROCESS, HCS_OPERATION) -> HRESULT;
type CloseProcessFn = unsafe extern "system" fn(HCS_PROCESS);
type SetProcessCallbackFn = unsafe extern "system" fn(
    HCS_PROCESS,
    HCS_EVENT_OPTIONS,
    *const c_void,
    HCS_EVENT_CALLBACK,
) -> HRESULT;
type NameToGuidFn = unsafe extern "system" fn(PCWSTR, *mut GUID) -> HRESULT;

/// The resolved entry points.
struct Fns {
    create_operation: CreateOperationFn,
    close_operation: CloseOperationFn,
    cancel_operation: CancelOperationFn,
    wait_for_operation_result: WaitForOperationResultFn,
    wait_for_operation_result_and_process_info: WaitForOperationResultAndProcessInfoFn,
    create_compute_system: CreateComputeSystemFn,
    open_compute_system: OpenComputeSystemFn,
    start_compute_system: SystemOpFn,
    shutdown_compute_system: SystemOpFn,
    terminate_compute_system: SystemOpFn,
    pause_compute_system: SystemOpFn,
    resume_compute_system: SystemOpFn,
    get_compute_system_properties: SystemOpFn,
    modify_compute_system: ModifyComputeSystemFn,
    close_compute_system: CloseComputeSystemFn,
    set_compute_system_callback: SetComputeSystemCallbackFn,
    create_process: CreateProcessFn,
    open_process: OpenProcessFn,
    signal_process: ProcessOpFn,
    terminate_process: ProcessOpFn,
    modify_process: ProcessOpFn,
    get_process_properties: ProcessOpFn,
    get_process_info: GetProcessInfoFn,
    close_process: CloseProcessFn,
    set_process_callback: SetProcessCallbackFn,
}

/// Loads `dll` from System32 only.
fn load_library(dll: &str) -> Result<HMODULE, Error> {
    let name = HSTRING::from(dll);
    // SAFETY: `name` is a valid NUL-terminated wide string that outlives the call.
    unsafe { LoadLibraryExW(&name, None, LOAD_LIBRARY_SEARCH_SYSTEM32) }.map_err(|e| {
        let hr = Hresult::from(e.code());
        Error::unavailable(format!("{dll} cannot be loaded ({hr}): {FEATURE_HINT}"))
            .with_source(HcsError::new(hr))
    })
}

/// Resolves `name` in `module`.
fn symbol(
    module: HMODULE,
    dll: &str,
    name: &str,
) -> Result<unsafe extern "system" fn() -> isize, Error> {
    let cname: Vec<u8> = name.bytes().chain(std::iter::once(0)).collect();
    // SAFETY: `module` is a loaded module and `cname` a NUL-terminated string.
    let proc: FARPROC = unsafe { GetProcAddress(module, PCSTR(cname.as_ptr())) };
    proc.ok_or_else(|| {
        Error::unavailable(format!("{dll} has no function {name}: {FEATURE_HINT}"))
            .with_source(HcsError::new(Hresult::from_win32(win32::PROC_NOT_FOUND)))
    })
}

macro_rules! resolve {
    ($module:expr, $dll:expr, $name:literal as $ty:ty) => {{
        let f = symbol($module, $dll, $name)?;
        // SAFETY: the documented signature of the exported function is `$ty`.
        unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, $ty>(f) }
    }};
}

impl Fns {
    /// Resolves every function in `DLL` (computecore.dll) from System32.
    fn load(dll: &str) -> Result<Self, Error> {
        let m = load_library(dll)?;
        Ok(Self {
            create_operation: resolve!(m, dll, "HcsCreateOperation" as CreateOperationFn),
            close_operation: resolve!(m, dll, "HcsCloseOperation" as CloseOperationFn),
            cancel_operation: resolve!(m, dll, "HcsCancelOperation" as CancelOperationFn),
            wait_for_operation_result: resolve!(
                m,
                dll,
                "HcsWaitForOperationResult" as WaitForOperationResultFn
            ),
            wait_for_operation_result_and_process_info: resolve!(
                m,
                dll,
                "HcsWaitForOperationResultAndProcessInfo" as WaitForOperationResultAndProcessInfoFn
            ),
            create_compute_system: resolve!(
                m,
                dll,
                "HcsCreateComputeSystem" as CreateComputeSystemFn
            ),
            open_compute_system: resolve!(m, dll, "HcsOpenComputeSystem" as OpenComputeSystemFn),
            start_compute_system: resolve!(m, dll, "HcsStartComputeSystem" as SystemOpFn),
            shutdown_compute_system: resolve!(m, dll, "HcsShutDownComputeSystem" as SystemOpFn),
            terminate_compute_system: resolve!(m, dll, "HcsTerminateComputeSystem" as SystemOpFn),
            pause_compute_system: resolve!(m, dll, "HcsPauseComputeSystem" as SystemOpFn),
            resume_compute_system: resolve!(m, dll, "HcsResumeComputeSystem" as SystemOpFn),
            get_compute_system_properties: resolve!(
                m,
                dll,
                "HcsGetComputeSystemProperties" as SystemOpFn
            ),
            modify_compute_system: resolve!(
                m,
                dll,
                "HcsModifyComputeSystem" as ModifyComputeSystemFn
            ),
            close_compute_system: resolve!(m, dll, "HcsCloseComputeSystem" as CloseComputeSystemFn),
            set_compute_system_callback: resolve!(
                m,
                dll,
                "HcsSetComputeSystemCallback" as SetComputeSystemCallbackFn
            ),
            create_process: resolve!(m, dll, "HcsCreateProcess" as CreateProcessFn),
            open_process: resolve!(m, dll, "HcsOpenProcess" as OpenProcessFn),
            signal_process: resolve!(m, dll, "HcsSignalProcess" as ProcessOpFn),
            terminate_process: resolve!(m, dll, "HcsTerminateProcess" as ProcessOpFn),
            modify_process: resolve!(m, dll, "HcsModifyProcess" as ProcessOpFn),
            get_process_properties: resolve!(m, dll, "HcsGetProcessProperties" as ProcessOpFn),
            get_process_info: resolve!(m, dll, "HcsGetProcessInfo" as GetProcessInfoFn),
            close_process: resolve!(m, dll, "HcsCloseProcess" as CloseProcessFn),
            set_process_callback: resolve!(m, dll, "HcsSetProcessCallback" as SetProcessCallbackFn),
        })
    }
}

impl From<HRESULT> for Hresult {
    /// The bits of a Windows `HRESULT` (an `i32`), as HCS documents them.
    fn from(hr: HRESULT) -> Self {
        Hresult(hr.0.cast_unsigned())
    }
}

// ---- the callback registry ----

/// What a callback publishes: an exit, or the service going away.
type Notice<T> = Option<Result<T, Hresult>>;

enum Registered {
    System(watch::Sender<Notice<SystemExit>>),
    Process(watch::Sender<Notice<ProcessExit>>),
}

fn registry() -> MutexGuard<'static, HashMap<usize, Registered>> {
    static REGISTRY: OnceLock<Mutex<HashMap<usize, Registered>>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn next_key() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Reads an event's data; `None` when absent or not UTF-16.
///
/// # Safety
/// `data` must be null or a NUL-terminated wide string.
unsafe fn event_data(data: PCWSTR) -> Option<String> {
    if data.is_null() {
        return None;
    }
    // SAFETY: per the contract, `data` is a NUL-terminated wide string.
    unsafe { data.to_string() }.ok()
}

/// The callback of compute systems and processes. Never blocks (the registry
/// lock is held only to publish) and never unwinds.
unsafe extern "system" fn on_event(event: *const HCS_EVENT, context: *const c_void) {
    let key = context as usize;
    let _ = std::panic::catch_unwind(|| {
        if event.is_null() {
            return;
        }
        // SAFETY: HCS passes a valid event for the duration of the callback.
        let event = unsafe { &*event };
        // SAFETY: EventData is null or a NUL-terminated wide string.
        let data = unsafe { event_data(event.EventData) };
        let reg = registry();
        match reg.get(&key) {
            Some(Registered::System(tx)) => {
                if event.Type == HcsEventSystemExited {
                    let exit = data
                        .and_then(|d| serde_json::from_str::<SystemExit>(&d).ok())
                        .unwrap_or_else(|| SystemExit::clean("Unknown"));
                    tx.send_replace(Some(Ok(exit)));
                } else if event.Type == HcsEventServiceDisconnect {
                    tx.send_replace(Some(Err(Hresult::hcs_v2(0x011E))));
                }
            }
            Some(Registered::Process(tx)) => {
                if event.Type == HcsEventProcessExited {
                    let exit = data
                        .and_then(|d| serde_json::from_str::<ProcessExit>(&d).ok())
                        .unwrap_or(ProcessExit {
                            exited: true,
                            last_wait_result: -1,
                            ..ProcessExit::default()
                        });
                    tx.send_replace(Some(Ok(exit)));
                } else if event.Type == HcsEventServiceDisconnect {
                    tx.send_replace(Some(Err(Hresult::hcs_v2(0x011E))));
                }
            }
            None => {}
        }
    });
}

// ---- handles ----

/// The kind of an HCS handle, named by its exit notice: how its events are
/// routed, and its `HcsSet*Callback` and `HcsClose*` calls.
trait HandleKind: Clone + Send + Sync + 'static {
    /// The registry entry that routes the kind's events to `tx`.
    fn registered(tx: watch::Sender<Notice<Self>>) -> Registered;

    /// Registers [`on_event`] for handle `h`, with registry key `key` as
    /// its context.
    ///
    /// # Safety
    /// `h` must be an open handle of this kind.
    unsafe fn set_callback(fns: &Fns, h: usize, key: usize) -> HRESULT;

    /// Calls the kind's `HcsClose*` function.
    ///
    /// # Safety
    /// `h` must be an open handle of this kind, and is closed by this call.
    unsafe fn close(fns: &Fns, h: usize);
}

impl HandleKind for SystemExit {
    fn registered(tx: watch::Sender<Notice<Self>>) -> Registered {
        Registered::System(tx)
    }

    unsafe fn set_callback(fns: &Fns, h: usize, key: usize) -> HRESULT {
        // SAFETY: per the contract, `h` is an open HCS_SYSTEM; the context
        // is a registry key, not a pointer.
        unsafe {
            (fns.set_compute_system_callback)(
                HCS_SYSTEM(h as *mut c_void),
                HcsEventOptionNone,
                key as *const c_void,
                Some(on_event),
            )
        }
    }

    unsafe fn close(fns: &Fns, h: usize) {
        // SAFETY: per the contract, `h` is an open HCS_SYSTEM.
        unsafe { (fns.close_compute_system)(HCS_SYSTEM(h as *mut c_void)) }
    }
}

impl HandleKind for ProcessExit {
    fn registered(tx: watch::Sender<Notice<Self>>) -> Registered {
        Registered::Process(tx)
    }

    unsafe fn set_callback(fns: &Fns, h: usize, key: usize) -> HRESULT {
        // SAFETY: per the contract, `h` is an open HCS_PROCESS; the context
        // is a registry key.
        unsafe {
            (fns.set_process_callback)(
                HCS_PROCESS(h as *mut c_void),
                HcsEventOptionNone,
                key as *const c_void,
                Some(on_event),
            )
        }
    }

    unsafe fn close(fns: &Fns, h: usize) {
        // SAFETY: per the contract, `h` is an open HCS_PROCESS.
        unsafe { (fns.close_process)(HCS_PROCESS(h as *mut c_void)) }
    }
}

/// A registry key whose entry routes `N`'s events to the returned receiver.
fn registration<N: HandleKind>() -> (usize, watch::Receiver<Notice<N>>) {
    let key = next_key();
    let (tx, rx) = watch::channel(None);
    registry().insert(key, N::registered(tx));
    (key, rx)
}

/// An HCS handle of either kind: its address (0 once closed) and the calls
/// in flight on it, the registry key of its callback, and its exit notice.
///
/// computecore faults when a handle is closed while a call on it is in
/// flight, so every call holds a [`Lease`] (a shared lock, as hcsshim's read
/// lock) for the whole operation, and [`close`](Self::close) waits for the
/// leases to end before closing (blocking: run it off the async workers).
/// The address is reachable only through a lease.
struct HandleInner<N: HandleKind> {
    fns: Arc<Fns>,
    state: Mutex<HandleState>,
    idle: Condvar,
    key: usize,
    exit: watch::Receiver<Notice<N>>,
}

/// The address of a handle and its leases.
struct HandleState {
    /// The handle's address; 0 once closed.
    raw: usize,
    /// Leases alive.
    leases: usize,
    /// Set once a close began: no new leases.
    closing: bool,
}

type SystemInner = HandleInner<SystemExit>;
type ProcessInner = HandleInner<ProcessExit>;

/// A shared hold on an open handle: it is not closed while the lease lives.
struct Lease<N: HandleKind> {
    inner: Arc<HandleInner<N>>,
    raw: usize,
}

impl<N: HandleKind> Lease<N> {
    /// The open handle's address, valid while the lease lives.
    fn raw(&self) -> usize {
        self.raw
    }
}

impl<N: HandleKind> Drop for Lease<N> {
    fn drop(&mut self) {
        let mut st = self.inner.lock_state();
        st.leases -= 1;
        if st.leases == 0 {
            self.inner.idle.notify_all();
        }
    }
}

fn invalid_handle() -> HcsError {
    HcsError::new(Hresult::from_win32(win32::INVALID_HANDLE))
}

impl<N: HandleKind> HandleInner<N> {
    fn new(fns: Arc<Fns>, raw: usize, key: usize, exit: watch::Receiver<Notice<N>>) -> Self {
        Self {
            fns,
            state: Mutex::new(HandleState {
                raw,
                leases: 0,
                closing: false,
            }),
            idle: Condvar::new(),
            key,
            exit,
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, HandleState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A lease on the open handle; ERROR_INVALID_HANDLE once closed or
    /// closing.
    fn lease(self: &Arc<Self>) -> HcsResult<Lease<N>> {
        let mut st = self.lock_state();
        if st.raw == 0 || st.closing {
            return Err(invalid_handle());
        }
        st.leases += 1;
        Ok(Lease {
            inner: self.clone(),
            raw: st.raw,
        })
    }

    /// Resolves with the handle's exit notice; a lost service is
    /// HCS_E_SERVICE_DISCONNECT.
    async fn wait_exit(&self) -> HcsResult<N> {
        let disconnected = || HcsError::new(Hresult::hcs_v2(0x011E));
        let mut rx = self.exit.clone();
        let notice = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| disconnected())?
            .clone();
        match notice {
            Some(Ok(exit)) => Ok(exit),
            Some(Err(hr)) => Err(HcsError::new(hr)),
            None => Err(disconnected()),
        }
    }

    /// [`close`](Self::close) on a blocking thread, as the `Hcs` trait
    /// answers it: ERROR_INVALID_HANDLE when it was closed already.
    async fn close_async(self: &Arc<Self>) -> HcsResult<()> {
        let inner = self.clone();
        match tokio::task::spawn_blocking(move || inner.close()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(invalid_handle()),
            Err(_) => Err(HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED))),
        }
    }

    /// Closes the handle once the calls in flight on it ended (new calls
    /// fail from now on), and unregisters its callback; false when it was
    /// closed (or being closed) already. Blocks; `HcsClose*` also drains
    /// the handle's callbacks.
    fn close(&self) -> bool {
        let h = {
            let mut st = self.lock_state();
            if st.raw == 0 || st.closing {
                return false;
            }
            st.closing = true;
            while st.leases > 0 {
                st = self.idle.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::take(&mut st.raw)
        };
        // SAFETY: `h` is open, no call is in flight on it, and it was taken
        // above: it is closed exactly once.
        unsafe { N::close(&self.fns, h) };
        registry().remove(&self.key);
        true
    }
}

impl<N: HandleKind> Drop for HandleInner<N> {
    fn drop(&mut self) {
        // No lease is alive (each holds the handle), so this does not block.
        if !self.close() {
            registry().remove(&self.key);
        }
    }
}

/// A compute system handle of computecore.dll.
#[derive(Clone)]
pub struct FfiSystem(Arc<SystemInner>);

impl fmt::Debug for FfiSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FfiSystem")
            .field("key", &self.0.key)
            .finish()
    }
}

/// A process handle of computecore.dll.
#[derive(Clone)]
pub struct FfiProcess(Arc<ProcessInner>);

impl fmt::Debug for FfiProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FfiProcess")
            .field("key", &self.0.key)
            .finish()
    }
}

// ---- operations ----

/// Converts and frees a result document.
///
/// # Safety
/// `doc` must be null or a document HCS allocated with `LocalAlloc`.
unsafe fn take_document(doc: PWSTR) -> String {
    if doc.is_null() {
        return String::new();
    }
    // SAFETY: HCS documents are NUL-terminated wide strings.
    let text = unsafe { doc.to_string() }.unwrap_or_default();
    // SAFETY: the document was allocated by HCS with LocalAlloc and is freed once.
    unsafe { LocalFree(Some(HLOCAL(doc.0.cast()))) };
    text
}

/// HCS_E_OPERATION_TIMEOUT: the only answer meaning "the wait timed out"
/// (HCS_E_CONNECTION_TIMEOUT and ERROR_TIMEOUT are failures of the
/// operation itself).
const OPERATION_TIMEOUT: Hresult = Hresult::hcs_v2(0x0118);

fn is_wait_timeout(hr: HRESULT) -> bool {
    Hresult::from(hr) == OPERATION_TIMEOUT
}

/// Runs one HCS operation on the current (blocking) thread: create, issue,
/// wait with `timeout_ms`; on a wait timeout cancel it (as hcsshim does, no
/// second wait: the timeout is a bound); free; close.
///
/// # Safety
/// `issue` must pass the operation to exactly one HCS call and return its HRESULT.
unsafe fn blocking_operation(
    fns: &Fns,
    timeout_ms: u32,
    want_process_info: bool,
    issue: impl FnOnce(HCS_OPERATION) -> HRESULT,
) -> HcsResult<(String, HCS_PROCESS_INFORMATION)> {
    // SAFETY: no context and no completion callback: the operation is waited on.
    let op = unsafe { (fns.create_operation)(std::ptr::null(), None) };
    if op.is_invalid() {
        return Err(HcsError::new(Hresult(0x8007_000E))); // E_OUTOFMEMORY
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
const SUBMIT_WAIT: Duration = Duration::from_secs(1);
/// The slices in which a submitted stop is waited for, between looks at the
/// exit notification.
const STOP_SLICE_MS: u32 = 50;

/// Runs a shutdown or terminate (`pick`) of system `raw` on the current
/// (blocking) thread. `answer` gets HCS_E_OPERATION_PENDING once
/// [`SUBMIT_WAIT`] passed; the operation is waited for in slices until it
/// completes (its result is returned), the system has `exited` or `timeout`
/// passed (it is then cancelled), and closed.
///
/// # Safety
/// `raw` must be an open compute system for the whole call.
unsafe fn stop_operation(
    fns: &Fns,
    raw: usize,
    pick: fn(&Fns) -> SystemOpFn,
    timeout: Duration,
    exited: impl Fn() -> bool,
    answer: &mut impl FnMut(HcsResult<()>),
) -> HcsResult<()> {
    // SAFETY: no context and no completion callback: the operation is waited on.
    let op = unsafe { (fns.create_operation)(std::ptr::null(), None) };
    if op.is_invalid() {
        return Err(HcsError::new(Hresult(0x8007_000E))); // E_OUTOFMEMORY
    }
    // SAFETY: `raw` is open; no options.
    let mut hr = unsafe { pick(fns)(HCS_SYSTEM(raw as *mut c_void), op, PCWSTR::null()) };
    let mut doc = PWSTR::null();
    if hr.is_ok() {
        let started = std::time::Instant::now();
        loop {
            // SAFETY: `op` is live; `doc` a valid out-pointer.
            hr = unsafe { (fns.wait_for_operation_result)(op, STOP_SLICE_MS, &mut doc) };
            if !is_wait_timeout(hr) {
                break;
            }
            let waited = started.elapsed();
            if exited() || waited >= timeout {
                // Done by the notification's word (or given up on): cancel.
                // SAFETY: `op` is live.
                let _ = unsafe { (fns.cancel_operation)(op) };
                if exited() {
                    hr = HRESULT(0);
                }
                break;
            }
            if waited >= SUBMIT_WAIT {
                answer(Err(HcsError::new(Hresult::hcs_v2(0x0117))));
            }
        }
    }
    // SAFETY: `doc` is null or an HCS document, freed once.
    let text = unsafe { take_document(doc) };
    // SAFETY: `op` is live and closed once.
    unsafe { (fns.close_operation)(op) };
    if hr.is_ok() {
        Ok(())
    } else {
        Err(HcsError::with_document(Hresult::from(hr), &text))
    }
}

/// Closes the stdio handles of a process that will not be used.
fn close_std_handles(info: &HCS_PROCESS_INFORMATION) {
    for h in [info.StdInput, info.StdOutput, info.StdError] {
        if let Some(h) = handle_value(h) {
            // SAFETY: an open handle HCS handed over, dropped (closed) once.
            drop(unsafe { std::fs::File::from_raw_handle(h as RawHandle) });
        }
    }
}

/// A handle that can cross threads.
fn handle_value(h: HANDLE) -> Option<usize> {
    if h.is_invalid() || h == INVALID_HANDLE_VALUE {
        None
    } else {
        Some(h.0 as usize)
    }
}

/// A write half that closes its handle on shutdown, so the process reads EOF.
struct ClosingWriter(Option<tokio::fs::File>);

impl AsyncWrite for ClosingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(f) => Pin::new(f).poll_write(cx, buf),
            None => Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(f) => Pin::new(f).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = match self.0.as_mut() {
            Some(f) => Pin::new(f).poll_flush(cx),
            None => return Poll::Ready(Ok(())),
        };
        match flushed {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                // Dropping the file closes the pipe: the process reads EOF.
                self.0 = None;
                Poll::Ready(result)
            }
        }
    }
}

/// Wraps an owned pipe handle as a tokio file.
///
/// # Safety
/// `h` must be an open handle owned by nobody else.
unsafe fn file_of(h: usize) -> tokio::fs::File {
    // SAFETY: per the contract, the handle is open and ownership moves here.
    let std_file = unsafe { std::fs::File::from_raw_handle(h as RawHandle) };
    tokio::fs::File::from_std(std_file)
}

/// The real HCS.
pub struct Computecore {
    fns: Arc<Fns>,
    name_to_guid: Option<NameToGuidFn>,
    timeout: Duration,
}

impl fmt::Debug for Computecore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Computecore")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Computecore {
    /// Loads computecore.dll and resolves every function. `Unavailable`
    /// (naming the Windows Containers feature) when the DLL or a function is
    /// missing.
    pub fn load() -> Result<Self, Error> {
        let fns =
            Fns::load("computecore.dll").map_err(|e| e.with_operation("load computecore.dll"))?;
        // vmcompute.dll's NameToGuid computes layer ids; without it only
        // layer-less documents can be built.
        let name_to_guid = load_library("vmcompute.dll")
            .and_then(|m| Ok(resolve!(m, "vmcompute.dll", "NameToGuid" as NameToGuidFn)))
            .ok();
        Ok(Self {
            fns: Arc::new(fns),
            name_to_guid,
            timeout: Duration::from_secs(240),
        })
    }

    /// Sets how long an operation may take before it is cancelled.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn timeout_ms(&self) -> u32 {
        u32::try_from(self.timeout.as_millis()).unwrap_or(INFINITE - 1)
    }

    /// Runs an operation on a blocking thread; the thread finishes it (and
    /// frees it) even when the caller's future is dropped.
    /// `lease` keeps the handle the operation is issued on open until the
    /// operation is finished.
    async fn operation<F, L>(
        &self,
        lease: L,
        want_process_info: bool,
        issue: F,
    ) -> HcsResult<(String, HCS_PROCESS_INFORMATION)>
    where
        F: FnOnce(&Fns, HCS_OPERATION) -> HRESULT + Send + 'static,
        L: Send + 'static,
    {
        let fns = self.fns.clone();
        let timeout_ms = self.timeout_ms();
        // The blocking thread works inside the caller's span (the client
        // operation), in a span of its own.
        let span =
            tracing::debug_span!(parent: &tracing::Span::current(), "hcs_operation", timeout_ms);
        let joined = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // SAFETY: `issue` hands the operation to exactly one HCS call.
            let result = unsafe {
                blocking_operation(&fns, timeout_ms, want_process_info, |op| issue(&fns, op))
            };
            drop(lease);
            if let Err(e) = &result {
                tracing::debug!(error = %e, "HCS operation failed");
            }
            result.map(|(doc, info)| (doc, SendInfo(info)))
        })
        .await;
        match joined {
            Ok(Ok((doc, SendInfo(info)))) => Ok((doc, info)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED))),
        }
    }

    async fn system_op(
        &self,
        system: &FfiSystem,
        pick: fn(&Fns) -> SystemOpFn,
        options: &str,
    ) -> HcsResult<String> {
        let lease = system.0.lease()?;
        let raw = lease.raw();
        let options = HSTRING::from(options);
        self.operation(lease, false, move |fns, op| {
            let wide = if options.is_empty() {
                PCWSTR::null()
            } else {
                PCWSTR(options.as_ptr())
            };
            // SAFETY: `raw` is an open compute system, `wide` null or a valid string.
            unsafe { pick(fns)(HCS_SYSTEM(raw as *mut c_void), op, wide) }
        })
        .await
        .map(|(doc, _)| doc)
    }

    async fn process_op(
        &self,
        process: &FfiProcess,
        pick: fn(&Fns) -> ProcessOpFn,
        options: &str,
    ) -> HcsResult<String> {
        let lease = process.0.lease()?;
        let raw = lease.raw();
        let options = HSTRING::from(options);
        self.operation(lease, false, move |fns, op| {
            let wide = if options.is_empty() {
                PCWSTR::null()
            } else {
                PCWSTR(options.as_ptr())
            };
            // SAFETY: `raw` is an open process, `wide` null or a valid string.
            unsafe { pick(fns)(HCS_PROCESS(raw as *mut c_void), op, wide) }
        })
        .await
        .map(|(doc, _)| doc)
    }

    /// A shutdown or terminate, submitted: its answer when it completes
    /// within [`SUBMIT_WAIT`], else HCS_E_OPERATION_PENDING, and the caller
    /// relies on the exit notification (as hcsshim does). A blocking thread
    /// keeps the operation (and a lease on the system) until it completes,
    /// the system has exited (then it is cancelled), or the timeout.
    async fn stop_system(&self, system: &FfiSystem, pick: fn(&Fns) -> SystemOpFn) -> HcsResult<()> {
        let lease = system.0.lease()?;
        let exit = system.0.exit.clone();
        let fns = self.fns.clone();
        let timeout = self.timeout;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::debug_span!(parent: &tracing::Span::current(), "hcs_stop");
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut tx = Some(tx);
            let mut answer = |r: HcsResult<()>| {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(r);
                }
            };
            let exited = || exit.borrow().is_some();
            // SAFETY: the lease keeps the system open until this returns.
            let result =
                unsafe { stop_operation(&fns, lease.raw(), pick, timeout, exited, &mut answer) };
            drop(lease);
            if let Err(e) = &result {
                tracing::debug!(error = %e, "HCS stop operation failed");
            }
            answer(result);
        });
        rx.await
            .unwrap_or_else(|_| Err(HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED))))
    }

    /// The information of a process whose creation's wait failed, through
    /// HcsGetProcessInfo; `None` when HCS has none (it never started).
    async fn recover_process_info(&self, process: &Arc<ProcessInner>) -> Option<SendInfo> {
        let lease = process.lease().ok()?;
        let raw = lease.raw();
        let recovered = self
            .operation(lease, true, move |fns, op| {
                // SAFETY: the leased process is open.
                unsafe { (fns.get_process_info)(HCS_PROCESS(raw as *mut c_void), op) }
            })
            .await;
        match recovered {
            Ok((_, info)) if info.ProcessId != 0 => Some(SendInfo(info)),
            Ok((_, info)) => {
                close_std_handles(&info);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "HcsGetProcessInfo failed");
                None
            }
        }
    }

    /// Registers the exit callback of a new (opened) handle of kind `N`.
    fn register<N: HandleKind>(&self, raw: usize) -> HcsResult<HandleInner<N>> {
        let (key, rx) = registration::<N>();
        let inner = HandleInner::new(self.fns.clone(), raw, key, rx);
        // SAFETY: `raw` is an open handle of kind `N`.
        let hr = unsafe { N::set_callback(&self.fns, raw, key) };
        if hr.is_err() {
            // Dropping `inner` closes the handle and unregisters.
            drop(inner);
            return Err(HcsError::new(Hresult::from(hr)));
        }
        Ok(inner)
    }
}

/// `HCS_PROCESS_INFORMATION` holds handles (raw pointers); the values are
/// plain data owned by the receiver, so they may cross threads.
struct SendInfo(HCS_PROCESS_INFORMATION);
// SAFETY: the handles are owned values, used by one thread at a time.
unsafe impl Send for SendInfo {}

fn format_guid(g: &GUID) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g.data1,
        g.data2,
        g.data3,
        g.data4[0],
        g.data4[1],
        g.data4[2],
        g.data4[3],
        g.data4[4],
        g.data4[5],
        g.data4[6],
        g.data4[7]
    )
}

#[async_trait]
impl Hcs for Computecore {
    type System = FfiSystem;
    type Process = FfiProcess;

    async fn create_compute_system(&self, id: &str, configuration: &str) -> HcsResult<FfiSystem> {
        let id = HSTRING::from(id);
        let configuration = HSTRING::from(configuration);
        // The exit callback is registered as soon as the handle exists, before
        // the operation completes, so no exit can be missed.
        let (key, rx) = registration::<SystemExit>();
        let created = Arc::new(AtomicUsize::new(0));
        let callback = Arc::new(AtomicI32::new(0));
        let (out, cb) = (created.clone(), callback.clone());
        let result = self
            .operation((), false, move |fns, op| {
                let mut system = HCS_SYSTEM::default();
                // SAFETY: valid strings; a null security descriptor means the default.
                let hr = unsafe {
                    (fns.create_compute_system)(
                        PCWSTR(id.as_ptr()),
                        PCWSTR(configuration.as_ptr()),
                        op,
                        std::ptr::null(),
                        &mut system,
                    )
                };
                if hr.is_ok() && !system.0.is_null() {
                    // SAFETY: `system` is open.
                    let registered =
                        unsafe { SystemExit::set_callback(fns, system.0 as usize, key) };
                    cb.store(registered.0, Ordering::SeqCst);
                }
                out.store(system.0 as usize, Ordering::SeqCst);
                hr
            })
            .await;
        let raw = created.load(Ordering::SeqCst);
        let registered = HRESULT(callback.load(Ordering::SeqCst));
        let inner = SystemInner::new(self.fns.clone(), raw, key, rx);
        // Dropping `inner` on any failure closes the handle and unregisters.
        match result.map(drop) {
            Ok(()) if raw == 0 => {
                drop(inner);
                Err(HcsError::new(Hresult::from_win32(win32::INVALID_HANDLE)))
            }
            Ok(()) if registered.is_err() => {
                drop(inner);
                Err(HcsError::new(Hresult::from(registered)))
            }
            Ok(()) => Ok(FfiSystem(Arc::new(inner))),
            Err(e) if raw != 0 && e.hresult == OPERATION_TIMEOUT => {
                // HCS may still create it: terminate (bounded), then close.
                let system = FfiSystem(Arc::new(inner));
                let _ = self.terminate_compute_system(&system).await;
                let _ = system.0.close_async().await;
                Err(e)
            }
            Err(e) => {
                drop(inner);
                Err(e)
            }
        }
    }

    async fn open_compute_system(&self, id: &str) -> HcsResult<FfiSystem> {
        let id = HSTRING::from(id);
        let fns = self.fns.clone();
        let raw = tokio::task::spawn_blocking(move || {
            let mut system = HCS_SYSTEM::default();
            // SAFETY: valid id string and out-pointer.
            let hr =
                unsafe { (fns.open_compute_system)(PCWSTR(id.as_ptr()), GENERIC_ALL, &mut system) };
            if hr.is_err() {
                Err(HcsError::new(Hresult::from(hr)))
            } else {
                Ok(system.0 as usize)
            }
        })
        .await
        .map_err(|_| HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED)))??;
        self.register(raw).map(|inner| FfiSystem(Arc::new(inner)))
    }

    async fn start_compute_system(&self, system: &FfiSystem) -> HcsResult<()> {
        self.system_op(system, |f| f.start_compute_system, "")
            .await
            .map(drop)
    }

    async fn shutdown_compute_system(&self, system: &FfiSystem) -> HcsResult<()> {
        self.stop_system(system, |f| f.shutdown_compute_system)
            .await
    }

    async fn terminate_compute_system(&self, system: &FfiSystem) -> HcsResult<()> {
        self.stop_system(system, |f| f.terminate_compute_system)
            .await
    }

    async fn pause_compute_system(&self, system: &FfiSystem) -> HcsResult<()> {
        self.system_op(system, |f| f.pause_compute_system, "")
            .await
            .map(drop)
    }

    async fn resume_compute_system(&self, system: &FfiSystem) -> HcsResult<()> {
        self.system_op(system, |f| f.resume_compute_system, "")
            .await
            .map(drop)
    }

    async fn close_compute_system(&self, system: &FfiSystem) -> HcsResult<()> {
        system.0.close_async().await
    }

    async fn get_compute_system_properties(
        &self,
        system: &FfiSystem,
        query: &str,
    ) -> HcsResult<String> {
        self.system_op(system, |f| f.get_compute_system_properties, query)
            .await
    }

    async fn modify_compute_system(&self, system: &FfiSystem, request: &str) -> HcsResult<()> {
        let lease = system.0.lease()?;
        let raw = lease.raw();
        let request = HSTRING::from(request);
        self.operation(lease, false, move |fns, op| {
            // SAFETY: open system, valid string, no identity token.
            unsafe {
                (fns.modify_compute_system)(
                    HCS_SYSTEM(raw as *mut c_void),
                    op,
                    PCWSTR(request.as_ptr()),
                    HANDLE::default(),
                )
            }
        })
        .await
        .map(drop)
    }

    async fn wait_compute_system_exit(&self, system: &FfiSystem) -> HcsResult<SystemExit> {
        system.0.wait_exit().await
    }

    async fn create_process(
        &self,
        system: &FfiSystem,
        parameters: &str,
    ) -> HcsResult<(FfiProcess, ProcessInfo)> {
        let lease = system.0.lease()?;
        let raw_system = lease.raw();
        let parameters = HSTRING::from(parameters);
        // The exit callback is registered as soon as the process handle
        // exists, before the creation completes: a process that exits at once
        // is still seen exiting.
        let (key, rx) = registration::<ProcessExit>();
        let created = Arc::new(AtomicUsize::new(0));
        let callback = Arc::new(AtomicI32::new(0));
        let (out, cb) = (created.clone(), callback.clone());
        let result = self
            .operation(lease, true, move |fns, op| {
                let mut process = HCS_PROCESS::default();
                // SAFETY: open system, valid string, default security.
                let hr = unsafe {
                    (fns.create_process)(
                        HCS_SYSTEM(raw_system as *mut c_void),
                        PCWSTR(parameters.as_ptr()),
                        op,
                        std::ptr::null(),
                        &mut process,
                    )
                };
                if hr.is_ok() && !process.0.is_null() {
                    // SAFETY: `process` is open.
                    let registered =
                        unsafe { ProcessExit::set_callback(fns, process.0 as usize, key) };
                    cb.store(registered.0, Ordering::SeqCst);
                }
                out.store(process.0 as usize, Ordering::SeqCst);
                hr
            })
            .await;
        let raw = created.load(Ordering::SeqCst);
        let registered = HRESULT(callback.load(Ordering::SeqCst));
        // Dropping the last reference to `inner` closes the handle (if any)
        // and unregisters.
        let inner = Arc::new(ProcessInner::new(self.fns.clone(), raw, key, rx));
        // The information holds raw handles: Send only wrapped.
        let info = match result.map(|(_, info)| SendInfo(info)) {
            Ok(SendInfo(info)) if raw != 0 && registered.is_ok() => info,
            Ok(SendInfo(info)) => {
                close_std_handles(&info);
                drop(inner);
                let hr = if raw == 0 {
                    Hresult::from_win32(win32::INVALID_HANDLE)
                } else {
                    Hresult::from(registered)
                };
                return Err(HcsError::new(hr));
            }
            Err(e) if raw != 0 && e.hresult == OPERATION_TIMEOUT => {
                // HCS may still create and start it: terminate (bounded),
                // then close; its stdio never reached us.
                let process = FfiProcess(inner);
                let _ = self.terminate_process(&process).await;
                let _ = process.0.close_async().await;
                return Err(e);
            }
            Err(e) if raw != 0 && registered.is_ok() => {
                // Windows Server 2022: the wait can fail although the
                // process runs; recover its information as hcsshim does.
                match self.recover_process_info(&inner).await {
                    Some(SendInfo(info)) => {
                        tracing::debug!(error = %e, "HcsCreateProcess failed, yet the process runs: recovered");
                        info
                    }
                    None => {
                        drop(inner);
                        return Err(e);
                    }
                }
            }
            Err(e) => {
                drop(inner);
                return Err(e);
            }
        };
        let process = FfiProcess(inner);
        // The handles are fetched once and owned from here on.
        let stdin = handle_value(info.StdInput).map(|h| {
            // SAFETY: HCS handed over this open pipe handle.
            Box::pin(ClosingWriter(Some(unsafe { file_of(h) }))) as StdinStream
        });
        let stdout = handle_value(info.StdOutput).map(|h| {
            // SAFETY: as above.
            Box::pin(unsafe { file_of(h) }) as OutputStream
        });
        let stderr = handle_value(info.StdError).map(|h| {
            // SAFETY: as above.
            Box::pin(unsafe { file_of(h) }) as OutputStream
        });
        Ok((
            process,
            ProcessInfo {
                pid: info.ProcessId,
                stdin,
                stdout,
                stderr,
            },
        ))
    }

    async fn open_process(&self, system: &FfiSystem, pid: u32) -> HcsResult<FfiProcess> {
        let lease = system.0.lease()?;
        let fns = self.fns.clone();
        let raw = tokio::task::spawn_blocking(move || {
            let mut process = HCS_PROCESS::default();
            // SAFETY: the leased system is open; a valid out-pointer.
            let hr = unsafe {
                (fns.open_process)(
                    HCS_SYSTEM(lease.raw() as *mut c_void),
                    pid,
                    GENERIC_ALL,
                    &mut process,
                )
            };
            if hr.is_err() {
                Err(HcsError::new(Hresult::from(hr)))
            } else {
                Ok(process.0 as usize)
            }
        })
        .await
        .map_err(|_| HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED)))??;
        self.register(raw).map(|inner| FfiProcess(Arc::new(inner)))
    }

    async fn signal_process(&self, process: &FfiProcess, options: &str) -> HcsResult<()> {
        self.process_op(process, |f| f.signal_process, options)
            .await
            .map(drop)
    }

    async fn terminate_process(&self, process: &FfiProcess) -> HcsResult<()> {
        self.process_op(process, |f| f.terminate_process, "")
            .await
            .map(drop)
    }

    async fn modify_process(&self, process: &FfiProcess, request: &str) -> HcsResult<()> {
        self.process_op(process, |f| f.modify_process, request)
            .await
            .map(drop)
    }

    async fn get_process_properties(&self, process: &FfiProcess, query: &str) -> HcsResult<String> {
        self.process_op(process, |f| f.get_process_properties, query)
            .await
    }

    async fn wait_process_exit(&self, process: &FfiProcess) -> HcsResult<ProcessExit> {
        process.0.wait_exit().await
    }

    async fn close_process(&self, process: &FfiProcess) -> HcsResult<()> {
        process.0.close_async().await
    }

    fn name_to_guid(&self, name: &str) -> HcsResult<String> {
        let f = self
            .name_to_guid
            .ok_or_else(|| HcsError::new(Hresult::from_win32(win32::PROC_NOT_FOUND)))?;
        let name = HSTRING::from(name);
        let mut guid = GUID::zeroed();
        // SAFETY: valid string and out-pointer.
        let hr = unsafe { f(PCWSTR(name.as_ptr()), &mut guid) };
        if hr.is_err() {
            return Err(HcsError::new(Hresult::from(hr)));
        }
        Ok(format_guid(&guid))
    }

    fn host_cpu_count(&self) -> u32 {
        std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1)
    }

    fn has_utility_vm(&self, layer_folder: &str) -> bool {
        std::path::Path::new(layer_folder)
            .join("UtilityVM")
            .is_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;

    /// Whether this process runs under Wine (ntdll exports `wine_get_version`).
    fn under_wine() -> bool {
        let Ok(ntdll) = load_library("ntdll.dll") else {
            return false;
        };
        symbol(ntdll, "ntdll.dll", "wine_get_version").is_ok()
    }

    /// A missing computecore.dll (Windows without the Containers feature)
    /// is a clear Unavailable error, not a crash.
    #[test]
    fn a_missing_dll_is_unavailable_not_a_crash() {
        let dll = "libctd-no-such-computecore.dll";
        let e = Fns::load(dll)
            .err()
            .expect("a DLL that does not exist loaded");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{}", e.report());
        let text = e.to_string();
        assert!(text.contains("Windows Containers feature"), "{text}");
        assert!(text.contains(dll), "{text}");
        // ERROR_MOD_NOT_FOUND as an HRESULT.
        assert!(text.contains("(0x8007007e)"), "{text}");
    }

    /// A DLL without the HCS functions (an older Windows) is Unavailable too.
    #[test]
    fn a_dll_without_the_functions_is_unavailable() {
        let e = Fns::load("kernel32.dll")
            .err()
            .expect("kernel32.dll is not HCS");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{}", e.report());
        let text = e.to_string();
        assert!(
            text.contains("has no function HcsCreateOperation"),
            "{text}"
        );
    }

    /// Under Wine, `cargo xtask windows-test` installs the computecore.dll
    /// double into System32: the binding and the native remote load it.
    #[test]
    fn under_wine_the_double_loads() {
        if !under_wine() {
            return;
        }
        if let Err(e) = Computecore::load() {
            panic!("the computecore.dll double did not load: {}", e.report());
        }
        if let Err(e) = crate::WindowsRemote::native(&[]) {
            panic!("the native remote did not load: {}", e.report());
        }
    }

    /// Only HCS_E_OPERATION_TIMEOUT means the wait timed out.
    #[test]
    fn only_operation_timeout_is_a_wait_timeout() {
        assert!(is_wait_timeout(HRESULT(0x8037_0118_u32 as i32)));
        // HCS_E_CONNECTION_TIMEOUT, in both encodings, and ERROR_TIMEOUT.
        assert!(!is_wait_timeout(HRESULT(0x8037_0109_u32 as i32)));
        assert!(!is_wait_timeout(HRESULT(0xC037_0109_u32 as i32)));
        assert!(!is_wait_timeout(HRESULT(0x8007_05B4_u32 as i32)));
        assert!(!is_wait_timeout(HRESULT(0)));
    }

    #[test]
    fn guids_format_like_windows() {
        let g = GUID::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(format_guid(&g), "01234567-89ab-cdef-0011-223344556677");
    }
}
