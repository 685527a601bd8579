//! How [`Computecore`] issues a call: as an operation on a blocking thread
//! (finished even when the caller gives up), cancelled with its caller
//! for calls that hand nothing back, or, for a shutdown or terminate,
//! submitted with the exit notification telling how it ended.

use std::ffi::c_void;
use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;
use windows::Win32::System::HostComputeSystem::{
    HCS_OPERATION, HCS_PROCESS, HCS_PROCESS_INFORMATION, HCS_SYSTEM,
};
use windows::core::{HRESULT, HSTRING, PCWSTR};

use super::fns::*;
use super::operation::*;
use super::{Computecore, FfiProcess, FfiSystem};
use crate::error::codes::HCS_E_OPERATION_PENDING;
use crate::error::{HcsError, Hresult, win32};
use crate::hcs::HcsResult;

/// HCS's "no options": a null string for empty `options`, else `options`
/// (valid while `options` lives).
fn optional(options: &HSTRING) -> PCWSTR {
    if options.is_empty() {
        PCWSTR::null()
    } else {
        PCWSTR(options.as_ptr())
    }
}

impl Computecore {
    /// Runs an operation on a blocking thread; the thread finishes it (and
    /// frees it) even when the caller's future is dropped.
    /// `lease` keeps the handle the operation is issued on open until the
    /// operation is finished.
    pub(super) async fn operation<F, L>(
        &self,
        lease: L,
        want_process_info: bool,
        issue: F,
    ) -> HcsResult<(String, HCS_PROCESS_INFORMATION)>
    where
        F: FnOnce(&Fns, HCS_OPERATION) -> HRESULT + Send + 'static,
        L: Send + 'static,
    {
        self.run_operation(lease, want_process_info, false, issue)
            .await
    }

    /// [`operation`](Self::operation), cancelled when the caller's future is
    /// dropped before it completes (for calls that hand nothing back to
    /// undo: queries, signals, modifications).
    fn cancellable<F, L>(
        &self,
        lease: L,
        issue: F,
    ) -> impl Future<Output = HcsResult<String>> + Send + 'static
    where
        F: FnOnce(&Fns, HCS_OPERATION) -> HRESULT + Send + 'static,
        L: Send + 'static,
    {
        let run = self.run_operation(lease, false, true, issue);
        async move { run.await.map(|(doc, _)| doc) }
    }

    fn run_operation<F, L>(
        &self,
        lease: L,
        want_process_info: bool,
        cancellable: bool,
        issue: F,
    ) -> impl Future<Output = HcsResult<(String, HCS_PROCESS_INFORMATION)>> + Send + 'static
    where
        F: FnOnce(&Fns, HCS_OPERATION) -> HRESULT + Send + 'static,
        L: Send + 'static,
    {
        let fns = self.fns.clone();
        let timeout_ms = self.timeout_ms();
        async move {
            // The blocking thread works inside the caller's span (the client
            // operation), in a span of its own.
            let span = tracing::debug_span!(parent: &tracing::Span::current(), "hcs_operation", timeout_ms);
            let slot = Arc::new(OpSlot::default());
            let mut guard = CancelOnDrop {
                fns: fns.clone(),
                slot: slot.clone(),
                armed: cancellable,
            };
            let joined = tokio::task::spawn_blocking(move || {
                let _entered = span.enter();
                let slot = cancellable.then_some(&*slot);
                // SAFETY: `issue` hands the operation to exactly one HCS call.
                let result = unsafe {
                    blocking_operation(&fns, timeout_ms, want_process_info, slot, |op| {
                        issue(&fns, op)
                    })
                };
                drop(lease);
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "HCS operation failed");
                }
                result.map(|(doc, info)| (doc, SendInfo(info)))
            })
            .await;
            guard.armed = false;
            match joined {
                Ok(Ok((doc, SendInfo(info)))) => Ok((doc, info)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED))),
            }
        }
    }

    pub(super) async fn system_op(
        &self,
        system: &FfiSystem,
        pick: fn(&Fns) -> SystemOpFn,
        options: &str,
    ) -> HcsResult<String> {
        let lease = system.0.lease()?;
        let raw = lease.raw();
        let options = HSTRING::from(options);
        self.cancellable(lease, move |fns, op| {
            // SAFETY: `raw` is an open compute system, the options null or a valid string.
            unsafe { pick(fns)(HCS_SYSTEM(raw as *mut c_void), op, optional(&options)) }
        })
        .await
    }

    pub(super) async fn process_op(
        &self,
        process: &FfiProcess,
        pick: fn(&Fns) -> ProcessOpFn,
        options: &str,
    ) -> HcsResult<String> {
        let lease = process.0.lease()?;
        let raw = lease.raw();
        let options = HSTRING::from(options);
        self.cancellable(lease, move |fns, op| {
            // SAFETY: `raw` is an open process, the options null or a valid string.
            unsafe { pick(fns)(HCS_PROCESS(raw as *mut c_void), op, optional(&options)) }
        })
        .await
    }

    /// A shutdown or terminate, submitted: its answer when it completes
    /// within [`SUBMIT_WAIT`], else HCS_E_OPERATION_PENDING, and the caller
    /// relies on the exit notification (as hcsshim does). A task keeps the
    /// operation (and its lease on the system) until it completes or the
    /// system's exit notice comes, which cancels it at once. A failure after
    /// the pending answer is published for the system's exit waiters: no
    /// exit follows it, and the caller can escalate at once. A close of
    /// the system cancels the stop too (its lease would hold the close for
    /// as long as the stop takes, forever on a hung HCS), and counts as
    /// done: closing the last handle ends the system.
    pub(super) async fn stop_system(
        &self,
        system: &FfiSystem,
        pick: fn(&Fns) -> SystemOpFn,
    ) -> HcsResult<()> {
        let lease = system.0.lease()?;
        let raw = lease.raw();
        system.0.stop_failure.send_replace(None);
        let stop = self.cancellable(lease, move |fns, op| {
            // SAFETY: the lease keeps `raw` open; no options.
            unsafe { pick(fns)(HCS_SYSTEM(raw as *mut c_void), op, PCWSTR::null()) }
        });
        let inner = system.0.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let span = tracing::debug_span!(parent: &tracing::Span::current(), "hcs_stop");
        tokio::spawn(
            async move {
                let mut exit = inner.exit.clone();
                let mut closing = inner.close_begun.subscribe();
                // The stop's own answer first, then the notice, then a close.
                let result = tokio::select! {
                    biased;
                    result = stop => result.map(drop),
                    // Done by the notification's word: the operation is
                    // dropped, i.e. cancelled.
                    _ = exit.wait_for(Option::is_some) => Ok(()),
                    // Given up for a close, which ends the system (its last
                    // handle; on a hung HCS no notice ever says so): done
                    // too, and dropped (cancelled) so the close goes on.
                    _ = closing.wait_for(|begun| *begun) => Ok(()),
                };
                if let Err(Err(e)) = tx.send(result)
                    && !e.hresult.is_already_stopped()
                {
                    tracing::debug!(error = %e, "a submitted stop failed");
                    inner.stop_failure.send_replace(Some(e));
                }
            }
            .instrument(span),
        );
        match tokio::time::timeout(SUBMIT_WAIT, &mut rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(HcsError::new(Hresult::from_win32(win32::OPERATION_ABORTED))),
            Err(_) => {
                late_answer(&mut rx).unwrap_or_else(|| Err(HcsError::new(HCS_E_OPERATION_PENDING)))
            }
        }
    }
}

/// A stop's answer that came after its wait timed out, if any. The channel
/// is closed first: an answer sent before that is taken here, and one sent
/// after it fails to send (its sender publishes it to the exit waiters), so
/// none is lost in between. `None`: the stop is pending.
fn late_answer<T>(rx: &mut tokio::sync::oneshot::Receiver<T>) -> Option<T> {
    rx.close();
    rx.try_recv().ok()
}

/// `HCS_PROCESS_INFORMATION` holds handles (raw pointers); the values are
/// plain data owned by the receiver, so they may cross threads.
pub(super) struct SendInfo(pub(super) HCS_PROCESS_INFORMATION);
// SAFETY: the handles are owned values, used by one thread at a time.
unsafe impl Send for SendInfo {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stop's answer sent after the submit wait timed out, but before the
    /// caller looked, is taken, never dropped; once the caller has looked,
    /// a later answer fails to send, so its sender publishes it instead.
    #[test]
    fn a_stop_answer_after_the_submit_wait_is_not_lost() {
        let (tx, mut rx) = tokio::sync::oneshot::channel::<u32>();
        tx.send(5).unwrap();
        assert_eq!(late_answer(&mut rx), Some(5));

        let (tx, mut rx) = tokio::sync::oneshot::channel::<u32>();
        assert_eq!(late_answer(&mut rx), None);
        assert_eq!(tx.send(6), Err(6));
    }
}
