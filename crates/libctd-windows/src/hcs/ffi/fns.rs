//! computecore.dll's functions, resolved at run time from System32.

use std::ffi::c_void;

use libctd_core::Error;
use windows::Win32::Foundation::{FARPROC, HANDLE, HMODULE};
use windows::Win32::Security::SECURITY_DESCRIPTOR;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_OPERATION_COMPLETION, HCS_PROCESS,
    HCS_PROCESS_INFORMATION, HCS_SYSTEM,
};
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{GUID, HRESULT, HSTRING, PCSTR, PCWSTR, PWSTR};

use crate::error::{HcsError, Hresult, win32};

pub(super) const FEATURE_HINT: &str = "the Windows Containers feature is not installed or this Windows \
     is older than Windows Server 2019 / 1809 (enable it with \
     `Install-WindowsFeature Containers` or `Enable-WindowsOptionalFeature -Online \
     -FeatureName Containers`)";

/// `INFINITE` for the wait functions.
pub(super) type CreateOperationFn =
    unsafe extern "system" fn(*const c_void, HCS_OPERATION_COMPLETION) -> HCS_OPERATION;
pub(super) type CloseOperationFn = unsafe extern "system" fn(HCS_OPERATION);
pub(super) type CancelOperationFn = unsafe extern "system" fn(HCS_OPERATION) -> HRESULT;
pub(super) type WaitForOperationResultFn =
    unsafe extern "system" fn(HCS_OPERATION, u32, *mut PWSTR) -> HRESULT;
pub(super) type WaitForOperationResultAndProcessInfoFn = unsafe extern "system" fn(
    HCS_OPERATION,
    u32,
    *mut HCS_PROCESS_INFORMATION,
    *mut PWSTR,
) -> HRESULT;
pub(super) type CreateComputeSystemFn = unsafe extern "system" fn(
    PCWSTR,
    PCWSTR,
    HCS_OPERATION,
    *const SECURITY_DESCRIPTOR,
    *mut HCS_SYSTEM,
) -> HRESULT;
pub(super) type OpenComputeSystemFn =
    unsafe extern "system" fn(PCWSTR, u32, *mut HCS_SYSTEM) -> HRESULT;
pub(super) type SystemOpFn =
    unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
pub(super) type ModifyComputeSystemFn =
    unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR, HANDLE) -> HRESULT;
pub(super) type CloseComputeSystemFn = unsafe extern "system" fn(HCS_SYSTEM);
pub(super) type SetComputeSystemCallbackFn = unsafe extern "system" fn(
    HCS_SYSTEM,
    HCS_EVENT_OPTIONS,
    *const c_void,
    HCS_EVENT_CALLBACK,
) -> HRESULT;
pub(super) type CreateProcessFn = unsafe extern "system" fn(
    HCS_SYSTEM,
    PCWSTR,
    HCS_OPERATION,
    *const SECURITY_DESCRIPTOR,
    *mut HCS_PROCESS,
) -> HRESULT;
pub(super) type OpenProcessFn =
    unsafe extern "system" fn(HCS_SYSTEM, u32, u32, *mut HCS_PROCESS) -> HRESULT;
pub(super) type ProcessOpFn =
    unsafe extern "system" fn(HCS_PROCESS, HCS_OPERATION, PCWSTR) -> HRESULT;
pub(super) type GetProcessInfoFn = unsafe extern "system" fn(HCS_PROCESS, HCS_OPERATION) -> HRESULT;
pub(super) type CloseProcessFn = unsafe extern "system" fn(HCS_PROCESS);
pub(super) type SetProcessCallbackFn = unsafe extern "system" fn(
    HCS_PROCESS,
    HCS_EVENT_OPTIONS,
    *const c_void,
    HCS_EVENT_CALLBACK,
) -> HRESULT;
pub(super) type NameToGuidFn = unsafe extern "system" fn(PCWSTR, *mut GUID) -> HRESULT;

/// The resolved entry points.
pub(super) struct Fns {
    pub(super) create_operation: CreateOperationFn,
    pub(super) close_operation: CloseOperationFn,
    pub(super) cancel_operation: CancelOperationFn,
    pub(super) wait_for_operation_result: WaitForOperationResultFn,
    pub(super) wait_for_operation_result_and_process_info: WaitForOperationResultAndProcessInfoFn,
    pub(super) create_compute_system: CreateComputeSystemFn,
    pub(super) open_compute_system: OpenComputeSystemFn,
    pub(super) start_compute_system: SystemOpFn,
    pub(super) shutdown_compute_system: SystemOpFn,
    pub(super) terminate_compute_system: SystemOpFn,
    pub(super) pause_compute_system: SystemOpFn,
    pub(super) resume_compute_system: SystemOpFn,
    pub(super) get_compute_system_properties: SystemOpFn,
    pub(super) modify_compute_system: ModifyComputeSystemFn,
    pub(super) close_compute_system: CloseComputeSystemFn,
    pub(super) set_compute_system_callback: SetComputeSystemCallbackFn,
    pub(super) create_process: CreateProcessFn,
    pub(super) open_process: OpenProcessFn,
    pub(super) signal_process: ProcessOpFn,
    pub(super) terminate_process: ProcessOpFn,
    pub(super) modify_process: ProcessOpFn,
    pub(super) get_process_properties: ProcessOpFn,
    pub(super) get_process_info: GetProcessInfoFn,
    pub(super) close_process: CloseProcessFn,
    pub(super) set_process_callback: SetProcessCallbackFn,
}

/// Loads `dll` from System32 only.
pub(super) fn load_library(dll: &str) -> Result<HMODULE, Error> {
    let name = HSTRING::from(dll);
    // SAFETY: `name` is a valid NUL-terminated wide string that outlives the call.
    unsafe { LoadLibraryExW(&name, None, LOAD_LIBRARY_SEARCH_SYSTEM32) }.map_err(|e| {
        let hr = Hresult::from(e.code());
        Error::unavailable(format!("{dll} cannot be loaded ({hr}): {FEATURE_HINT}"))
            .with_source(HcsError::new(hr))
    })
}

/// Resolves `name` in `module`.
pub(super) fn symbol(
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

/// Resolves `$name` in `$module` as a `$ty`, returning early with the
/// error of [`symbol`] (mapped by `$map` when given) when it is missing.
macro_rules! resolve {
    ($module:expr, $dll:expr, $name:literal as $ty:ty $(, $map:expr)?) => {{
        let f = symbol($module, $dll, $name)$(.map_err($map))??;
        // SAFETY: the documented signature of the exported function is `$ty`.
        unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, $ty>(f) }
    }};
}
pub(super) use resolve;

impl Fns {
    /// Resolves every function in `DLL` (computecore.dll) from System32.
    pub(super) fn load(dll: &str) -> Result<Self, Error> {
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

/// `HcsGrantVmAccess` / `HcsRevokeVmAccess`: a VM id and a file path.
pub(super) type VmAccessFn = unsafe extern "system" fn(PCWSTR, PCWSTR) -> HRESULT;

/// computecore.dll's `HcsGrantVmAccess` and `HcsRevokeVmAccess`; `None`
/// where they are missing (then Hyper-V isolation cannot be set up).
pub(super) fn vm_access_fns() -> Option<(VmAccessFn, VmAccessFn)> {
    let dll = "computecore.dll";
    load_library(dll)
        .and_then(|m| {
            Ok((
                resolve!(m, dll, "HcsGrantVmAccess" as VmAccessFn),
                resolve!(m, dll, "HcsRevokeVmAccess" as VmAccessFn),
            ))
        })
        .ok()
}

/// vmcompute.dll's `NameToGuid`, which computes layer ids; `None` where it
/// is missing (then only layer-less documents can be built).
pub(super) fn name_to_guid_fn() -> Option<NameToGuidFn> {
    load_library("vmcompute.dll")
        .and_then(|m| Ok(resolve!(m, "vmcompute.dll", "NameToGuid" as NameToGuidFn)))
        .ok()
}
