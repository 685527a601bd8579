//! The exit rules: how HCS's answers and notifications about ending
//! processes and compute systems become libctd's exits.
//!
//! hcsshim's reading of HCS (its v2 computecore path) is the reference:
//!
//! - `HcsTerminateProcess` on a process that exited already fails with
//!   ERROR_ACCESS_DENIED (Windows' `TerminateProcess`) or "already stopped";
//!   both mean the process is gone, and its exit is reported as usual.
use crate::error::Hresult;

/// Whether a failed terminate of a process (an exec) still leaves it ending
/// or ended: pending, already stopped, or denied because it exited.
pub(crate) fn terminate_leaves_it_ended(hresult: Hresult) -> bool {
    hresult.is_pending() || hresult.is_already_stopped() || hresult.is_access_denied()
}
