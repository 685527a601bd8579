//! The exit rules: how HCS's answers and notifications about ending
//! processes and compute systems become libctd's exits.
//!
//! hcsshim's reading of HCS (its v2 computecore path) is the reference:
//!
//! - `HcsTerminateProcess` on a process that exited already fails with
//!   ERROR_ACCESS_DENIED (Windows' `TerminateProcess`) or "already stopped";
//!   both mean the process is gone, and its exit is reported as usual.
//! - `PendingUpdates` is not a property type of schema 2: hosts since
//!   Windows Server 2019 (the only ones computecore.dll exists on) refuse
//!   the query, and hcsshim never asks. It is still asked after a clean
//!   exit, bounded in time, and any refusal or silence means "no updates
//!   pending", never an exit error: only a host that answers it can make
//!   `update_pending` true.

use std::time::Duration;

use crate::convert;
use crate::error::Hresult;
use crate::hcs::Hcs;
use crate::schema::PropertyQuery;

/// Whether a failed terminate of a process (an exec) still leaves it ending
/// or ended: pending, already stopped, or denied because it exited.
pub(crate) fn terminate_leaves_it_ended(hresult: Hresult) -> bool {
    hresult.is_pending() || hresult.is_already_stopped() || hresult.is_access_denied()
}

/// Whether `system` (of container `ctr_id`) has Windows updates pending,
/// asked for at most `timeout`: false when the host refuses, does not
/// answer in time, or answers something unreadable (each only logged).
pub(crate) async fn update_pending<H: Hcs>(
    hcs: &H,
    system: &H::System,
    ctr_id: &str,
    timeout: Duration,
) -> bool {
    let Ok(query) = serde_json::to_string(&PropertyQuery::new(&["PendingUpdates"])) else {
        return false;
    };
    let asked = tokio::time::timeout(timeout, hcs.get_compute_system_properties(system, &query));
    match asked.await {
        Ok(Ok(doc)) => match convert::parse_properties(&doc) {
            Ok(props) => props.are_updates_pending.unwrap_or(false),
            Err(e) => {
                tracing::warn!(container_id = ctr_id, error = %e.report(), "unreadable PendingUpdates answer");
                false
            }
        },
        Ok(Err(e)) => {
            tracing::debug!(container_id = ctr_id, error = %e, "the host refused the PendingUpdates query");
            false
        }
        Err(_) => {
            tracing::warn!(
                container_id = ctr_id,
                ?timeout,
                "no PendingUpdates answer in time"
            );
            false
        }
    }
}
