//! Cancel safety without a task per call: an operation runs in the caller's
//! task, and only if the caller drops it before it finishes does the rest
//! move to a task of its own, so that a change is never left half-way.
//!
//! Spawning every state-changing operation did the same, at the price of a
//! task and its cross-thread wake-ups on every call (on a multi-threaded
//! runtime a spawn unparks an idle worker); most callers never give up.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use libctd_core::{Error, Result};

/// Polls the operation inline; finishes it on a task of its own if dropped
/// while pending.
pub(crate) struct Detached<F: Future + Send + 'static> {
    op: Option<Pin<Box<F>>>,
}

/// Runs `op` cancel-safely: dropping the returned future before it is ready
/// lets `op` run to its end in the background (its result is discarded).
/// A panic in `op` becomes a `System` error instead of unwinding into the
/// caller.
pub(crate) fn detached<T, F>(op: F) -> Detached<F>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    Detached {
        op: Some(Box::pin(op)),
    }
}

impl<T, F> Future for Detached<F>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let Some(op) = self.op.as_mut() else {
            return Poll::Ready(Err(Error::system(
                "an operation was polled after it finished (a bug in libctd)",
            )));
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| op.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                self.op = None;
                Poll::Ready(out)
            }
            Err(_) => {
                self.op = None;
                Poll::Ready(Err(Error::system(
                    "libctd's operation panicked (a bug in libctd)",
                )))
            }
        }
    }
}

impl<F: Future + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        let Some(op) = self.op.take() else { return };
        // Outside a runtime (it is shutting down) there is nowhere to finish.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = op.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn an_operation_runs_in_the_callers_task() {
        let (caller, inside) = tokio::spawn(async {
            let inside = detached(async { Ok(tokio::task::id()) }).await.unwrap();
            (tokio::task::id(), inside)
        })
        .await
        .unwrap();
        assert_eq!(inside, caller, "no task of its own");
    }

    #[tokio::test]
    async fn a_dropped_operation_runs_to_its_end() {
        let (release, wait) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let op = detached(async move {
            let _ = wait.await;
            flag.store(true, Ordering::SeqCst);
            let _ = done_tx.send(());
            Ok(())
        });
        // The caller gives up while the operation is half-way.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), op)
                .await
                .is_err()
        );
        assert!(!finished.load(Ordering::SeqCst));
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("the operation finished in the background")
            .unwrap();
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panic_is_a_system_error() {
        let e = detached(async {
            if true {
                panic!("boom");
            }
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), libctd_core::ErrorKind::System);
        assert!(e.to_string().contains("panicked"), "{e}");
    }
}
