//! A streamed request's sending side: the task that forwards its body, and
//! what its answer keeps of it (the deadline, and the reset when dropped).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::{Reason, SendStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::TimeoutExpired;
use tonic::body::Body;

use super::BoxError;
use super::request::forward;

/// The sending side of a streamed request, held by the call and then by
/// its answer: dropped, it resets the stream if the body is not sent yet.
pub(super) struct Streamed {
    _stop: DropGuard,
    deadline: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

/// The stream a body is forwarded on: reset if dropped before the body
/// ended (a failure, the call's deadline, a dropped answer, or the
/// runtime of the forwarding task shutting down).
struct Sending {
    stream: SendStream<Bytes>,
    ended: bool,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if !self.ended {
            self.stream.send_reset(Reason::CANCEL);
        }
    }
}

impl Streamed {
    /// Forwards `read` then `rest` on `stream` from a task of its own,
    /// until the body ends, the daemon resets the stream, `deadline`
    /// passes, or what this returns is dropped.
    pub(super) fn start(
        stream: SendStream<Bytes>,
        read: Vec<Bytes>,
        rest: Body,
        deadline: Option<Instant>,
    ) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let mut sending = Sending {
                stream,
                ended: false,
            };
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                sent = forward(&mut sending.stream, read, rest) => sending.ended = sent.is_ok(),
                () = stopped.cancelled() => {}
                () = until_deadline => {}
            }
        });
        Self {
            _stop: stop.drop_guard(),
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            expired: false,
        }
    }

    /// Whether the call's deadline has passed: its answer then fails as
    /// `TimeoutExpired` (once; it ends after that).
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Option<BoxError>> {
        if self.expired {
            return Poll::Ready(None);
        }
        let Some(deadline) = &mut self.deadline else {
            return Poll::Pending;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expired = true;
        Poll::Ready(Some(Box::new(TimeoutExpired(()))))
    }
}
