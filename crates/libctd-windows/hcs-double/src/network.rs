//! computenetwork.dll's namespace functions (and reading an endpoint) over the model's HNS
//! (`libctd_windows::hcs::model`), with HNS's signatures: a namespace
//! handle is the namespace's id boxed, strings are allocated with ole32's
//! `CoTaskMemAlloc` (the caller frees them with `CoTaskMemFree`), failures
//! come with an error record. `xtask windows-test` also installs this DLL
//! as `computenetwork.dll`: that copy is a module of its own, with its own
//! model, so HNS's endpoints and namespaces live apart from the compute
//! systems (as HNS is a service apart from HCS); tests control it through
//! that copy's `LibctdDoubleControl`.
// Exported names are computenetwork's own.
#![allow(non_snake_case)]

use std::ffi::c_void;

use libctd_windows::error::HcsError;
use libctd_windows::hcs::model::result_document;
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{GUID, HRESULT, HSTRING, PCSTR, PCWSTR, PWSTR};

use crate::exports::{put, text};
use crate::world::{hr, model};

type Handle = *mut c_void;
type CoTaskMemAllocFn = unsafe extern "system" fn(usize) -> *mut c_void;

/// A copy of `s` allocated with `CoTaskMemAlloc`; null when it cannot be.
fn co_string(s: &str) -> PWSTR {
    // SAFETY: loading a system DLL by name and resolving a NUL-terminated name.
    let alloc = unsafe {
        LoadLibraryExW(
            &HSTRING::from("ole32.dll"),
            None,
            LOAD_LIBRARY_SEARCH_SYSTEM32,
        )
        .ok()
        .and_then(|m| GetProcAddress(m, PCSTR(c"CoTaskMemAlloc".as_ptr().cast())))
    };
    let Some(alloc) = alloc else {
        return PWSTR::null();
    };
    // SAFETY: CoTaskMemAlloc's signature.
    let alloc: CoTaskMemAllocFn = unsafe { std::mem::transmute(alloc) };
    let w: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
    // SAFETY: a plain allocation of the string's size.
    let p = unsafe { alloc(w.len() * 2) };
    if p.is_null() {
        return PWSTR::null();
    }
    // SAFETY: `p` holds `w.len()` u16s.
    unsafe { std::ptr::copy_nonoverlapping(w.as_ptr(), p.cast::<u16>(), w.len()) };
    PWSTR(p.cast())
}

/// The HRESULT of `result`, its failure's record written to `record`.
fn answer(result: Result<(), HcsError>, record: *mut PWSTR) -> HRESULT {
    match result {
        Ok(()) => HRESULT(0),
        Err(e) => {
            put(record, co_string(&result_document(&e)));
            HRESULT(e.hresult.0.cast_signed())
        }
    }
}

/// A namespace id as HNS writes it (lowercase, hyphenated).
fn guid_text(id: *const GUID) -> Option<String> {
    if id.is_null() {
        return None;
    }
    // SAFETY: a non-null GUID of the caller.
    let id = unsafe { *id };
    Some(format!("{id:?}").to_lowercase())
}

/// The id behind a namespace handle.
fn id_of(handle: Handle) -> Option<String> {
    if handle.is_null() {
        return None;
    }
    // SAFETY: handles are boxed ids this module made and not yet closed.
    Some(unsafe { &*handle.cast::<String>() }.clone())
}

fn handle_of(id: String) -> Handle {
    Box::into_raw(Box::new(id)).cast()
}

/// Gates `op` on the plan (of every system: namespaces are no system).
fn gate(op: &str, id: &str) -> Result<(), HcsError> {
    model()
        .gate(op, id)
        .and_then(|g| g.fail.map_or(Ok(()), Err))
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnCreateNamespace(
    _id: *const GUID,
    settings: PCWSTR,
    namespace: *mut Handle,
    record: *mut PWSTR,
) -> HRESULT {
    put(namespace, std::ptr::null_mut());
    put(record, PWSTR::null());
    let Some(settings) = text(settings) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let created = gate("HcnCreateNamespace", "").and_then(|()| model().create_namespace(&settings));
    answer(created.map(|id| put(namespace, handle_of(id))), record)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnOpenNamespace(
    id: *const GUID,
    namespace: *mut Handle,
    record: *mut PWSTR,
) -> HRESULT {
    open(id, namespace, record, |id| model().open_namespace(id))
}

/// Opens the namespace or endpoint `id` if `exists` says it does.
fn open(
    id: *const GUID,
    handle: *mut Handle,
    record: *mut PWSTR,
    exists: impl FnOnce(&str) -> Result<(), HcsError>,
) -> HRESULT {
    put(handle, std::ptr::null_mut());
    put(record, PWSTR::null());
    let Some(id) = guid_text(id) else {
        return HRESULT(hr::INVALID_ARG);
    };
    if let Err(e) = exists(&id) {
        return answer(Err(e), record);
    }
    put(handle, handle_of(id));
    HRESULT(0)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnModifyNamespace(
    namespace: Handle,
    settings: PCWSTR,
    record: *mut PWSTR,
) -> HRESULT {
    put(record, PWSTR::null());
    let (Some(id), Some(settings)) = (id_of(namespace), text(settings)) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let modified =
        gate("HcnModifyNamespace", &id).and_then(|()| model().modify_namespace(&id, &settings));
    answer(modified, record)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnQueryNamespaceProperties(
    namespace: Handle,
    _query: PCWSTR,
    properties: *mut PWSTR,
    record: *mut PWSTR,
) -> HRESULT {
    put(properties, PWSTR::null());
    put(record, PWSTR::null());
    let Some(id) = id_of(namespace) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let doc = serde_json::json!({"ID": id, "SchemaVersion": {"Major": 2, "Minor": 0}});
    put(properties, co_string(&doc.to_string()));
    HRESULT(0)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnCloseNamespace(namespace: Handle) -> HRESULT {
    if namespace.is_null() {
        return HRESULT(hr::INVALID_ARG);
    }
    // SAFETY: a boxed id this module made, closed once.
    drop(unsafe { Box::from_raw(namespace.cast::<String>()) });
    HRESULT(0)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnDeleteNamespace(id: *const GUID, record: *mut PWSTR) -> HRESULT {
    put(record, PWSTR::null());
    let Some(id) = guid_text(id) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let deleted = gate("HcnDeleteNamespace", &id).and_then(|()| model().delete_namespace(&id));
    answer(deleted, record)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnOpenEndpoint(
    id: *const GUID,
    endpoint: *mut Handle,
    record: *mut PWSTR,
) -> HRESULT {
    open(id, endpoint, record, |id| {
        model().endpoint_properties(id).map(drop)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnQueryEndpointProperties(
    endpoint: Handle,
    _query: PCWSTR,
    properties: *mut PWSTR,
    record: *mut PWSTR,
) -> HRESULT {
    put(properties, PWSTR::null());
    put(record, PWSTR::null());
    let Some(id) = id_of(endpoint) else {
        return HRESULT(hr::INVALID_ARG);
    };
    let queried =
        gate("HcnQueryEndpointProperties", &id).and_then(|()| model().endpoint_properties(&id));
    answer(queried.map(|doc| put(properties, co_string(&doc))), record)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnCloseEndpoint(endpoint: Handle) -> HRESULT {
    HcnCloseNamespace(endpoint)
}
