//! Compute system and process handles: exit callbacks routed through a
//! registry, and leases that keep a handle open while a call is in flight.

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::watch;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT, HCS_PROCESS, HCS_SYSTEM, HcsEventOptionNone, HcsEventProcessExited,
    HcsEventServiceDisconnect, HcsEventSystemExited,
};
use windows::core::{HRESULT, PCWSTR};

use crate::error::codes::HCS_E_SERVICE_DISCONNECT;
use crate::error::{HcsError, Hresult, win32};
use crate::hcs::{HcsResult, ProcessExit, SystemExit};

use super::fns::*;

// ---- the callback registry ----

/// What a callback publishes: an exit, or the service going away.
pub(super) type Notice<T> = Option<Result<T, Hresult>>;

pub(super) enum Registered {
    System(watch::Sender<Notice<SystemExit>>),
    Process(watch::Sender<Notice<ProcessExit>>),
}

pub(super) fn registry() -> MutexGuard<'static, HashMap<usize, Registered>> {
    static REGISTRY: OnceLock<Mutex<HashMap<usize, Registered>>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn next_key() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Reads an event's data; `None` when absent or not UTF-16.
///
/// # Safety
/// `data` must be null or a NUL-terminated wide string.
pub(super) unsafe fn event_data(data: PCWSTR) -> Option<String> {
    if data.is_null() {
        return None;
    }
    // SAFETY: per the contract, `data` is a NUL-terminated wide string.
    unsafe { data.to_string() }.ok()
}

/// The callback of compute systems and processes. Never blocks (the registry
/// lock is held only to publish) and never unwinds.
pub(super) unsafe extern "system" fn on_event(event: *const HCS_EVENT, context: *const c_void) {
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
                    tx.send_replace(Some(Err(HCS_E_SERVICE_DISCONNECT)));
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
                    tx.send_replace(Some(Err(HCS_E_SERVICE_DISCONNECT)));
                }
            }
            None => {}
        }
    });
}

// ---- handles ----

/// The kind of an HCS handle, named by its exit notice: how its events are
/// routed, and its `HcsSet*Callback` and `HcsClose*` calls.
pub(super) trait HandleKind: Clone + Send + Sync + 'static {
    /// Where a shutdown or terminate that failed after it was submitted
    /// leaves its failure: only compute systems are stopped so.
    type StopFailure: Default + Send + Sync;

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
    type StopFailure = watch::Sender<Option<HcsError>>;

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
    type StopFailure = ();

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
pub(super) fn registration<N: HandleKind>() -> (usize, watch::Receiver<Notice<N>>) {
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
pub(super) struct HandleInner<N: HandleKind> {
    pub(super) fns: Arc<Fns>,
    pub(super) state: Mutex<HandleState>,
    pub(super) idle: Condvar,
    pub(super) key: usize,
    pub(super) exit: watch::Receiver<Notice<N>>,
    /// A compute system's: the failure of a shutdown or terminate that
    /// failed after it was submitted (answered pending), which
    /// [`HandleInner::wait_system_exit`] gives, since no exit will follow.
    /// Cleared when another is submitted.
    pub(super) stop_failure: N::StopFailure,
    /// Set once a close began: what is waiting on the handle for long (a
    /// submitted stop) lets go of its lease, so the close does not wait
    /// for it.
    pub(super) close_begun: watch::Sender<bool>,
}

/// The address of a handle and its leases.
pub(super) struct HandleState {
    /// The handle's address; 0 once closed.
    raw: usize,
    /// Leases alive.
    leases: usize,
    /// Set once a close began: no new leases.
    closing: bool,
}

pub(super) type SystemInner = HandleInner<SystemExit>;
pub(super) type ProcessInner = HandleInner<ProcessExit>;

/// A shared hold on an open handle: it is not closed while the lease lives.
pub(super) struct Lease<N: HandleKind> {
    pub(super) inner: Arc<HandleInner<N>>,
    pub(super) raw: usize,
}

impl<N: HandleKind> Lease<N> {
    /// The open handle's address, valid while the lease lives.
    pub(super) fn raw(&self) -> usize {
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

pub(super) fn invalid_handle() -> HcsError {
    HcsError::new(Hresult::from_win32(win32::INVALID_HANDLE))
}

impl<N: HandleKind> HandleInner<N> {
    pub(super) fn new(
        fns: Arc<Fns>,
        raw: usize,
        key: usize,
        exit: watch::Receiver<Notice<N>>,
    ) -> Self {
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
            stop_failure: N::StopFailure::default(),
            close_begun: watch::Sender::new(false),
        }
    }

    pub(super) fn lock_state(&self) -> MutexGuard<'_, HandleState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A lease on the open handle; ERROR_INVALID_HANDLE once closed or
    /// closing.
    pub(super) fn lease(self: &Arc<Self>) -> HcsResult<Lease<N>> {
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
    pub(super) async fn wait_exit(&self) -> HcsResult<N> {
        let disconnected = || HcsError::new(HCS_E_SERVICE_DISCONNECT);
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
    pub(super) async fn close_async(self: &Arc<Self>) -> HcsResult<()> {
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
    pub(super) fn close(&self) -> bool {
        let h = {
            let mut st = self.lock_state();
            if st.raw == 0 || st.closing {
                return false;
            }
            st.closing = true;
            self.close_begun.send_replace(true);
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

impl SystemInner {
    /// [`wait_exit`](HandleInner::wait_exit), or the failure of a submitted
    /// stop that failed (no exit follows it).
    pub(super) async fn wait_system_exit(&self) -> HcsResult<SystemExit> {
        let mut failure = self.stop_failure.subscribe();
        tokio::select! {
            biased;
            exit = self.wait_exit() => exit,
            failed = failure.wait_for(Option::is_some) => {
                let failed = failed.ok().and_then(|f| f.clone());
                Err(failed.unwrap_or_else(|| HcsError::new(HCS_E_SERVICE_DISCONNECT)))
            }
        }
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
pub struct FfiSystem(pub(super) Arc<SystemInner>);

impl fmt::Debug for FfiSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FfiSystem")
            .field("key", &self.0.key)
            .finish()
    }
}

/// A process handle of computecore.dll.
#[derive(Clone)]
pub struct FfiProcess(pub(super) Arc<ProcessInner>);

impl fmt::Debug for FfiProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FfiProcess")
            .field("key", &self.0.key)
            .finish()
    }
}
