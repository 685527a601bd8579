//! computenetwork.dll's namespace functions (and reading an endpoint) (the Host Networking Service),
//! resolved at run time from System32 like computecore.dll; their strings
//! (properties, error records) are freed with ole32's `CoTaskMemFree`.
//! Each call is synchronous and runs on a blocking thread. A namespace's
//! handle is opened, used and closed within one call, as hcsshim does.

use std::ffi::c_void;

use windows::core::{GUID, HRESULT, HSTRING, PCWSTR, PWSTR};

use super::fns::{load_library, resolve, symbol};
use crate::error::{HcsError, Hresult, win32};
use crate::hcs::HcsResult;
use crate::schema::HostComputeNamespace;

type Handle = *mut c_void;
type CreateNamespaceFn =
    unsafe extern "system" fn(*const GUID, PCWSTR, *mut Handle, *mut PWSTR) -> HRESULT;
type OpenNamespaceFn = unsafe extern "system" fn(*const GUID, *mut Handle, *mut PWSTR) -> HRESULT;
type ModifyNamespaceFn = unsafe extern "system" fn(Handle, PCWSTR, *mut PWSTR) -> HRESULT;
type QueryNamespacePropertiesFn =
    unsafe extern "system" fn(Handle, PCWSTR, *mut PWSTR, *mut PWSTR) -> HRESULT;
type CloseNamespaceFn = unsafe extern "system" fn(Handle) -> HRESULT;
type DeleteNamespaceFn = unsafe extern "system" fn(*const GUID, *mut PWSTR) -> HRESULT;
type OpenEndpointFn = OpenNamespaceFn;
type QueryEndpointPropertiesFn = QueryNamespacePropertiesFn;
type CloseEndpointFn = CloseNamespaceFn;
type CoTaskMemFreeFn = unsafe extern "system" fn(*const c_void);

/// The query of a namespace's properties (HNS schema 2.0, no flags).
const QUERY: &str = r#"{"SchemaVersion":{"Major":2,"Minor":0},"Flags":0}"#;

/// The resolved functions.
#[derive(Clone, Copy)]
pub(super) struct Hcn {
    create: CreateNamespaceFn,
    open: OpenNamespaceFn,
    modify: ModifyNamespaceFn,
    query: QueryNamespacePropertiesFn,
    close: CloseNamespaceFn,
    delete: DeleteNamespaceFn,
    open_endpoint: OpenEndpointFn,
    query_endpoint: QueryEndpointPropertiesFn,
    close_endpoint: CloseEndpointFn,
    free: CoTaskMemFreeFn,
}

impl Hcn {
    /// Resolves the functions; the HRESULT of a missing DLL
    /// (ERROR_MOD_NOT_FOUND) or function (ERROR_PROC_NOT_FOUND).
    pub(super) fn load() -> Result<Self, Hresult> {
        let dll = "computenetwork.dll";
        let not_found = |_| Hresult::from_win32(win32::PROC_NOT_FOUND);
        let m = load_library(dll).map_err(|_| Hresult::from_win32(win32::MOD_NOT_FOUND))?;
        let ole =
            load_library("ole32.dll").map_err(|_| Hresult::from_win32(win32::MOD_NOT_FOUND))?;
        Ok(Self {
            create: resolve!(m, dll, "HcnCreateNamespace" as CreateNamespaceFn, not_found),
            open: resolve!(m, dll, "HcnOpenNamespace" as OpenNamespaceFn, not_found),
            modify: resolve!(m, dll, "HcnModifyNamespace" as ModifyNamespaceFn, not_found),
            query: resolve!(
                m,
                dll,
                "HcnQueryNamespaceProperties" as QueryNamespacePropertiesFn,
                not_found
            ),
            close: resolve!(m, dll, "HcnCloseNamespace" as CloseNamespaceFn, not_found),
            delete: resolve!(m, dll, "HcnDeleteNamespace" as DeleteNamespaceFn, not_found),
            open_endpoint: resolve!(m, dll, "HcnOpenEndpoint" as OpenEndpointFn, not_found),
            query_endpoint: resolve!(
                m,
                dll,
                "HcnQueryEndpointProperties" as QueryEndpointPropertiesFn,
                not_found
            ),
            close_endpoint: resolve!(m, dll, "HcnCloseEndpoint" as CloseEndpointFn, not_found),
            free: resolve!(
                ole,
                "ole32.dll",
                "CoTaskMemFree" as CoTaskMemFreeFn,
                not_found
            ),
        })
    }

    /// Takes (and frees) a string HNS returned.
    fn take(&self, s: PWSTR) -> String {
        if s.is_null() {
            return String::new();
        }
        // SAFETY: a NUL-terminated string HNS allocated with CoTaskMemAlloc.
        let text = unsafe { s.to_string() }.unwrap_or_default();
        // SAFETY: freed once, as HNS's strings are.
        unsafe { (self.free)(s.0.cast()) };
        text
    }

    /// The failure of `hr` with its error record (freed).
    fn check(&self, hr: HRESULT, record: PWSTR) -> HcsResult<()> {
        let record = self.take(record);
        if hr.is_ok() {
            return Ok(());
        }
        let hresult = Hresult::from(hr);
        Err(if record.is_empty() {
            HcsError::new(hresult)
        } else {
            HcsError::with_document(hresult, &record)
        })
    }

    /// Creates a namespace from `settings`; its id, read from its properties.
    pub(super) fn create_namespace(&self, settings: &str) -> HcsResult<String> {
        let settings = HSTRING::from(settings);
        let id = GUID::zeroed();
        let mut handle: Handle = std::ptr::null_mut();
        let mut record = PWSTR::null();
        // SAFETY: valid strings and out-pointers; HNS assigns the id.
        let hr = unsafe { (self.create)(&id, PCWSTR(settings.as_ptr()), &mut handle, &mut record) };
        self.check(hr, record)?;
        // SAFETY: `handle` is the namespace just created, not used after.
        let properties = unsafe { self.query_and_close(handle, self.query, self.close) }?;
        let ns: HostComputeNamespace = serde_json::from_str(&properties)
            .map_err(|_| HcsError::new(Hresult::from_win32(win32::INVALID_DATA)))?;
        if ns.id.is_empty() {
            return Err(HcsError::new(Hresult::from_win32(win32::INVALID_DATA)));
        }
        Ok(ns.id)
    }

    /// Opens namespace `id`, applies `request`, closes it.
    pub(super) fn modify_namespace(&self, id: &str, request: &str) -> HcsResult<()> {
        let guid = parse(id)?;
        let request = HSTRING::from(request);
        let mut handle: Handle = std::ptr::null_mut();
        let mut record = PWSTR::null();
        // SAFETY: a valid GUID and out-pointers.
        let hr = unsafe { (self.open)(&guid, &mut handle, &mut record) };
        self.check(hr, record)?;
        let mut record = PWSTR::null();
        // SAFETY: an open namespace handle and a valid request.
        let hr = unsafe { (self.modify)(handle, PCWSTR(request.as_ptr()), &mut record) };
        let modified = self.check(hr, record);
        // SAFETY: closed once, after its last use.
        let closed = unsafe { (self.close)(handle) };
        modified?;
        self.check(closed, PWSTR::null())
    }

    /// Deletes namespace `id`.
    pub(super) fn delete_namespace(&self, id: &str) -> HcsResult<()> {
        let guid = parse(id)?;
        let mut record = PWSTR::null();
        // SAFETY: a valid GUID and out-pointer.
        let hr = unsafe { (self.delete)(&guid, &mut record) };
        self.check(hr, record)
    }
}

impl Hcn {
    /// Endpoint `id`'s properties document: opened, queried, closed, as
    /// hcsshim reads an endpoint.
    pub(super) fn endpoint_properties(&self, id: &str) -> HcsResult<String> {
        let guid = parse(id)?;
        let mut handle: Handle = std::ptr::null_mut();
        let mut record = PWSTR::null();
        // SAFETY: a valid GUID and out-pointers.
        let hr = unsafe { (self.open_endpoint)(&guid, &mut handle, &mut record) };
        self.check(hr, record)?;
        // SAFETY: `handle` is the endpoint just opened, not used after.
        unsafe { self.query_and_close(handle, self.query_endpoint, self.close_endpoint) }
    }

    /// The properties of the open namespace or endpoint `handle` (by
    /// [`QUERY`]), then closes it, whether the query failed or not.
    ///
    /// # Safety
    ///
    /// `handle` is open, of the kind `query` and `close` take, and not
    /// used after this call.
    unsafe fn query_and_close(
        &self,
        handle: Handle,
        query: QueryNamespacePropertiesFn,
        close: CloseNamespaceFn,
    ) -> HcsResult<String> {
        let text = HSTRING::from(QUERY);
        let mut properties = PWSTR::null();
        let mut record = PWSTR::null();
        // SAFETY: an open handle (the caller's promise), a valid query and out-pointers.
        let hr = unsafe { query(handle, PCWSTR(text.as_ptr()), &mut properties, &mut record) };
        let properties = self.take(properties);
        let queried = self.check(hr, record);
        // SAFETY: closed once, after its last use.
        let closed = unsafe { close(handle) };
        queried?;
        self.check(closed, PWSTR::null())?;
        Ok(properties)
    }
}

/// A namespace or endpoint id as a GUID; ERROR_NOT_FOUND when it is none (no such
/// namespace can exist).
fn parse(id: &str) -> HcsResult<GUID> {
    GUID::try_from(id).map_err(|_| HcsError::new(Hresult::from_win32(win32::NOT_FOUND)))
}
