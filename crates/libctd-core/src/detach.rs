//! Cancel safety without a task per call, for implementers of [`Client`].
//!
//! [`Client`]: crate::Client

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Instrument;

use crate::{Error, Result};

/// An operation that runs in its caller's task and moves to a task of its
/// own only if the caller drops it before it finishes. Made by [`detached`].
#[must_use = "an operation does nothing until it is awaited"]
pub struct Detached<F: Future + Send + 'static> {
    op: Option<Pin<Box<F>>>,
    span: tracing::Span,
}

/// Runs `op` cancel-safely, the way every state-changing operation of a
/// backend must: dropping the returned future before it is ready lets `op`
/// run to its end on a task of its own (its result is discarded), so a
/// change is never left half-way. A panic in `op` becomes a
/// [`System`](crate::ErrorKind::System) error instead of unwinding into the
/// caller.
///
/// Spawning every operation gives the same guarantee at the price of a task
/// and its cross-thread wake-ups on every call; most callers never give up,
/// so here only a dropped operation pays. Outside a tokio runtime (one
/// shutting down) a dropped operation is dropped too: there is nowhere to
/// finish it.
///
/// The background task keeps the tracing span current when `detached` was
/// called.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use libctd_core::{Result, detached};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (done_tx, done) = tokio::sync::oneshot::channel();
/// let op = detached(async move {
///     tokio::time::sleep(Duration::from_millis(20)).await;
///     let _ = done_tx.send("finished");
///     Result::Ok(())
/// });
/// // The caller gives up half-way...
/// assert!(tokio::time::timeout(Duration::from_millis(1), op).await.is_err());
/// // ...and the operation still runs to its end.
/// assert_eq!(done.await.unwrap(), "finished");
/// # }
/// ```
pub fn detached<T, F>(op: F) -> Detached<F>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    Detached {
        op: Some(Box::pin(op)),
        span: tracing::Span::current(),
    }
}

impl<F: Future + Send + 'static> std::fmt::Debug for Detached<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detached")
            .field("finished", &self.op.is_none())
            .finish_non_exhaustive()
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
                    "the operation panicked (a bug in the backend)",
                )))
            }
        }
    }
}

impl<F: Future + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        let Some(op) = self.op.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let span = std::mem::replace(&mut self.span, tracing::Span::none());
            rt.spawn(
                async move {
                    let _ = op.await;
                }
                .instrument(span),
            );
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
        assert_eq!(e.kind(), crate::ErrorKind::System);
        assert!(e.to_string().contains("panicked"), "{e}");
    }
}
