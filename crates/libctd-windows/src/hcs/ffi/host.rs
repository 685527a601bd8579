//! The host side of a utility VM: access grants to its disk files
//! (computecore.dll's `HcsGrantVmAccess` / `HcsRevokeVmAccess`, synchronous
//! calls made on a blocking thread) and the files themselves (its scratch
//! copied from the image's template, removed with it).

use std::path::Path;

use windows::core::{HSTRING, PCWSTR};

use super::fns::VmAccessFn;
use crate::error::{HcsError, Hresult, win32};
use crate::hcs::HcsResult;

/// Calls `f` (a grant or a revoke) for `vm_id` and `path` on a blocking
/// thread; PROC_NOT_FOUND where computecore.dll lacks it.
pub(super) async fn vm_access(f: Option<VmAccessFn>, vm_id: &str, path: &str) -> HcsResult<()> {
    let f = f.ok_or_else(|| HcsError::new(Hresult::from_win32(win32::PROC_NOT_FOUND)))?;
    let vm_id = HSTRING::from(vm_id);
    let path = HSTRING::from(path);
    let hr = tokio::task::spawn_blocking(move || {
        // SAFETY: two valid NUL-terminated strings that outlive the call.
        unsafe { f(PCWSTR(vm_id.as_ptr()), PCWSTR(path.as_ptr())) }
    })
    .await
    .map_err(|_| HcsError::new(Hresult::from_win32(win32::INVALID_DATA)))?;
    if hr.is_err() {
        return Err(HcsError::new(Hresult::from(hr)));
    }
    Ok(())
}

fn io_error(e: &std::io::Error) -> HcsError {
    let code = e
        .raw_os_error()
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(win32::INVALID_DATA);
    HcsError::new(Hresult::from_win32(code))
}

/// Copies `from` to a new file `to`, creating its folder; an existing `to`
/// is ERROR_FILE_EXISTS.
pub(super) async fn copy_file(from: &str, to: &str) -> HcsResult<()> {
    let (from, to) = (from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        let to = Path::new(&to);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .map_err(|e| io_error(&e))?;
        std::fs::copy(&from, to).map(drop).map_err(|e| {
            let _ = std::fs::remove_file(to);
            io_error(&e)
        })
    })
    .await
    .map_err(|_| HcsError::new(Hresult::from_win32(win32::INVALID_DATA)))?
}

/// Removes `path` (a missing one is fine) and its folder once empty.
pub(super) async fn remove_file(path: &str) -> HcsResult<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let path = Path::new(&path);
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&e)),
        }
        if let Some(dir) = path.parent() {
            // Only an empty folder goes; one still holding files stays.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    })
    .await
    .map_err(|_| HcsError::new(Hresult::from_win32(win32::INVALID_DATA)))?
}
