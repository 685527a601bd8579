//! A request's body: sent with its HEADERS in one write when it is ready at
//! once, streamed otherwise.
//!
//! Unary and server-streaming calls have one message, ready when the call
//! is made: the transport hands it to h2 with the HEADERS (one write, no
//! task). A client-streaming or bidirectional call has a body whose
//! messages come later, or more of them than fit in memory: what was read
//! before that showed is sent first, then the rest as it comes, by
//! [`forward`], which waits for the daemon's flow control before it reads
//! on, so that a stream of any length holds at most a frame in memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::SendStream;
use http_body::Body as _;
use tonic::body::Body;

use super::BoxError;

/// A request's body as the transport sends it.
pub(super) enum Taken {
    /// The whole body, ready at once (empty, one message, or several that
    /// fit in one): sent with the HEADERS.
    Whole(Bytes),
    /// A body that goes on: what was read of it (a message at most, and
    /// the frame after it), then `rest`.
    Streamed {
        /// The bytes read before the body showed it goes on.
        read: Vec<Bytes>,
        /// The body's remaining frames.
        rest: Body,
    },
}

/// The length of the first gRPC message in `out`, prefix included, once
/// its 5-byte prefix is there.
fn first_message_len(out: &[u8]) -> Option<usize> {
    let mut prefix = out.get(..5)?;
    prefix.advance(1);
    usize::try_from(prefix.get_u32())
        .ok()
        .and_then(|n| n.checked_add(5))
}

/// Reads what `body` has ready, without waiting: the whole body if it ends
/// by the end of its first message, else what was read and the rest.
///
/// Reading stops at the first message (and the frame after it), so that a
/// ready stream of many messages is not read whole.
pub(super) fn take(mut body: Body) -> Result<Taken, BoxError> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    // One frame is the usual case: its bytes are kept as they are.
    let mut out = Bytes::new();
    while first_message_len(&out).is_none_or(|n| out.len() < n) {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => return Ok(Taken::Whole(out)),
            Poll::Ready(Some(frame)) => {
                if let Ok(data) = frame?.into_data() {
                    out = join(out, data);
                }
            }
            Poll::Pending => return Ok(streamed(vec![out], body)),
        }
    }
    // A message is here: whole if the body ends with it.
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(None) => Ok(Taken::Whole(out)),
        Poll::Ready(Some(frame)) => match frame?.into_data() {
            Ok(data) => Ok(streamed(vec![out, data], body)),
            Err(_) => Ok(streamed(vec![out], body)),
        },
        Poll::Pending => Ok(streamed(vec![out], body)),
    }
}

fn streamed(mut read: Vec<Bytes>, rest: Body) -> Taken {
    read.retain(|b| !b.is_empty());
    Taken::Streamed { read, rest }
}

/// `out` followed by `data` (no copy when `out` is empty).
fn join(out: Bytes, data: Bytes) -> Bytes {
    if out.is_empty() {
        return data;
    }
    let mut joined = BytesMut::from(out);
    joined.extend_from_slice(&data);
    joined.freeze()
}

/// Sends `read`, then `rest`'s frames as they come, each only as far as
/// the daemon's flow control allows, and ends the stream with the body.
/// Fails when the daemon resets the stream or the body fails; the caller
/// then resets the stream.
pub(super) async fn forward(
    stream: &mut SendStream<Bytes>,
    read: Vec<Bytes>,
    mut rest: Body,
) -> Result<(), ()> {
    for data in read {
        send(stream, data).await?;
    }
    loop {
        let frame = std::future::poll_fn(|cx| {
            // A reset by the daemon ends the body's forwarding at once,
            // even while the body has nothing to send.
            if stream.poll_reset(cx).is_ready() {
                return Poll::Ready(Some(Err(())));
            }
            Pin::new(&mut rest)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(drop)))
        })
        .await;
        match frame {
            None => return stream.send_data(Bytes::new(), true).map_err(drop),
            // gRPC requests have no trailers.
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    send(stream, data).await?;
                }
            }
            Some(Err(())) => return Err(()),
        }
    }
}

/// Hands `data` to h2 a window's worth at a time: the next part waits
/// until the daemon's flow control gives capacity for it.
async fn send(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), ()> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx)).await;
        let n = match granted {
            Some(Ok(n)) => n.min(data.len()),
            Some(Err(_)) | None => return Err(()),
        };
        if n > 0 {
            stream.send_data(data.split_to(n), false).map_err(drop)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: usize) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, len));
        v
    }

    fn body(chunks: Vec<Vec<u8>>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(c))));
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    fn whole(b: Body) -> Bytes {
        match take(b).unwrap() {
            Taken::Whole(bytes) => bytes,
            Taken::Streamed { .. } => panic!("streamed"),
        }
    }

    fn read(b: Body) -> Vec<usize> {
        match take(b).unwrap() {
            Taken::Whole(_) => panic!("whole"),
            Taken::Streamed { read, .. } => read.iter().map(Bytes::len).collect(),
        }
    }

    #[test]
    fn one_message_ready_at_once_is_whole() {
        assert_eq!(whole(body(vec![framed(3)])).len(), 8);
        // Split across frames, still one message.
        let m = framed(70_000);
        let (a, b) = m.split_at(10);
        assert_eq!(whole(body(vec![a.to_vec(), b.to_vec()])).len(), 70_005);
        assert!(whole(body(vec![])).is_empty());
        assert!(whole(Body::empty()).is_empty());
        // A body that ends is sent whole, even cut short: the daemon judges it.
        assert_eq!(whole(body(vec![vec![0, 0]])).len(), 2);
    }

    #[test]
    fn a_body_that_goes_on_is_streamed_after_its_first_message() {
        // Ready, but more than one message: read up to the frame after the
        // first, no further.
        let frames = (0..100).map(|_| framed(1000)).collect();
        assert_eq!(read(body(frames)), [1005, 1005]);
        let pending = tokio_stream::pending::<Result<http_body::Frame<Bytes>, tonic::Status>>();
        assert_eq!(
            read(Body::new(http_body_util::StreamBody::new(pending))),
            [0; 0]
        );
    }

    #[test]
    fn a_failed_body_is_an_error() {
        let failed = tokio_stream::iter([Err::<http_body::Frame<Bytes>, _>(
            tonic::Status::internal("encode"),
        )]);
        assert!(take(Body::new(http_body_util::StreamBody::new(failed))).is_err());
    }
}
