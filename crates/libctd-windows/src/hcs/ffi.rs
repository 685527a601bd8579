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
//! Every call holds a lease on its handle, and a close waits for them.
//! Queries, signals and modifications whose caller gives up are cancelled at
//! once. Shutdown and terminate are submitted; the exit notification tells
//! how they ended (and cancels the operation if it is still in flight); one
//! that fails after it was answered pending fails the system's exit waiters. When the wait for HcsCreateProcess fails although a process
//! handle came back (Windows Server 2022), HcsGetProcessInfo recovers it.
//! A new process's stdio pipes are read and written with overlapped I/O
//! on the runtime's completion port (`stdio`): live streams hold no thread
//! of the blocking pool the operations run on.
//!
//! Under Wine, `cargo xtask windows-test` runs this binding against the
//! computecore.dll double (`crates/libctd-windows/hcs-double`). Exit
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

mod calls;
mod fns;
mod handle;
mod hcn;
mod host;
mod operation;
mod stdio;

use std::ffi::c_void;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::Error;
use windows::Win32::Foundation::HANDLE;
use windows::Win32::System::HostComputeSystem::{HCS_PROCESS, HCS_SYSTEM};
use windows::core::{GUID, HRESULT, HSTRING, PCWSTR};

use super::{Hcs, HcsResult, ProcessExit, ProcessInfo, SystemExit};
use crate::error::codes::HCS_E_OPERATION_TIMEOUT;
use crate::error::{HcsError, Hresult, win32};
use crate::schema::ModifyNamespaceRequest;

use calls::SendInfo;
use fns::*;
use handle::*;
pub use handle::{FfiProcess, FfiSystem};
use stdio::{close_std_handles, streams};

/// `INFINITE` for the wait functions.
const INFINITE: u32 = u32::MAX;
/// `GENERIC_ALL`, the access asked when opening systems and processes.
const GENERIC_ALL: u32 = 0x1000_0000;

/// The real HCS.
pub struct Computecore {
    fns: Arc<Fns>,
    name_to_guid: Option<NameToGuidFn>,
    vm_access: Option<(VmAccessFn, VmAccessFn)>,
    /// computenetwork.dll, or why it cannot be used.
    hcn: Result<hcn::Hcn, Hresult>,
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
        let name_to_guid = name_to_guid_fn();
        Ok(Self {
            fns: Arc::new(fns),
            name_to_guid,
            vm_access: vm_access_fns(),
            hcn: hcn::Hcn::load(),
            timeout: Duration::from_secs(240),
        })
    }

    /// Sets how long an operation may take before it is cancelled.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `call` on computenetwork.dll on a blocking thread; a missing
    /// DLL or function is its HRESULT (`Unavailable`).
    async fn hcn_call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&hcn::Hcn) -> HcsResult<T> + Send + 'static,
    ) -> HcsResult<T> {
        let hcn = self.hcn.map_err(HcsError::new)?;
        tokio::task::spawn_blocking(move || call(&hcn))
            .await
            .map_err(|_| HcsError::new(Hresult::from_win32(win32::INVALID_DATA)))?
    }

    fn timeout_ms(&self) -> u32 {
        u32::try_from(self.timeout.as_millis()).unwrap_or(INFINITE - 1)
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
            Err(e) if raw != 0 && e.hresult == HCS_E_OPERATION_TIMEOUT => {
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
        system.0.wait_system_exit().await
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
            Ok(info) if raw != 0 && registered.is_ok() => info,
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
            Err(e) if raw != 0 && e.hresult == HCS_E_OPERATION_TIMEOUT => {
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
                    Some(info) => {
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
        let pid = info.0.ProcessId;
        let streams = match streams(&info.0) {
            Ok(streams) => streams,
            Err(e) => {
                // Its stdio is lost: the process must not run without it.
                let _ = self.terminate_process(&process).await;
                let _ = process.0.close_async().await;
                return Err(e);
            }
        };
        Ok((
            process,
            ProcessInfo {
                pid,
                stdin: streams.stdin,
                stdout: streams.stdout,
                stderr: streams.stderr,
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

    async fn grant_vm_access(&self, vm_id: &str, path: &str) -> HcsResult<()> {
        host::vm_access(self.vm_access.map(|f| f.0), vm_id, path).await
    }

    async fn revoke_vm_access(&self, vm_id: &str, path: &str) -> HcsResult<()> {
        host::vm_access(self.vm_access.map(|f| f.1), vm_id, path).await
    }

    async fn copy_file(&self, from: &str, to: &str) -> HcsResult<()> {
        host::copy_file(from, to).await
    }

    async fn remove_file(&self, path: &str) -> HcsResult<()> {
        host::remove_file(path).await
    }

    async fn create_namespace(&self, settings: &str) -> HcsResult<String> {
        let settings = settings.to_owned();
        self.hcn_call(move |hcn| hcn.create_namespace(&settings))
            .await
    }

    async fn add_namespace_endpoint(&self, namespace: &str, endpoint: &str) -> HcsResult<()> {
        let request = serde_json::to_string(&ModifyNamespaceRequest::add_endpoint(endpoint))
            .map_err(|_| HcsError::new(Hresult::from_win32(win32::INVALID_DATA)))?;
        let namespace = namespace.to_owned();
        self.hcn_call(move |hcn| hcn.modify_namespace(&namespace, &request))
            .await
    }

    async fn delete_namespace(&self, namespace: &str) -> HcsResult<()> {
        let namespace = namespace.to_owned();
        self.hcn_call(move |hcn| hcn.delete_namespace(&namespace))
            .await
    }

    async fn endpoint_properties(&self, endpoint: &str) -> HcsResult<String> {
        let endpoint = endpoint.to_owned();
        self.hcn_call(move |hcn| hcn.endpoint_properties(&endpoint))
            .await
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
    use super::operation::is_wait_timeout;
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
        if let Err(e) = crate::WindowsRemote::builder().native() {
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
