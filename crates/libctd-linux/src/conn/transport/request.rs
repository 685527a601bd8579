//! A request's body, taken whole before its HEADERS leave.
//!
//! The transport sends a request's HEADERS and its DATA in one write, which
//! needs the whole body at once: it carries unary and server-streaming
//! calls, whose request is one gRPC message, ready when the call is made.
//! A client-streaming or bidirectional call would lose its later messages
//! (or, collected whole, wait for a stream that may never end), so its
//! body is refused here, with an error that says so.

use std::pin::pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body as _;
use tonic::body::Body;

use super::BoxError;

/// A request body that is not one gRPC message ready at once.
#[derive(Debug)]
pub(crate) struct NotOneMessage(&'static str);

impl std::fmt::Display for NotOneMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this transport sends a request of one message only (unary and server-streaming calls), {}: {}",
            crate::convert::STREAMING_REFUSED,
            self.0
        )
    }
}

impl std::error::Error for NotOneMessage {}

/// The body's bytes, if they are exactly one gRPC message (its 5-byte
/// prefix and the length it names) and the body ends right after, without
/// waiting; an empty body is empty.
pub(super) fn one_message(body: Body) -> Result<Bytes, BoxError> {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    // One frame is the usual case: its bytes are kept as they are.
    let mut out = Bytes::new();
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(None) => break,
            Poll::Ready(Some(frame)) => match frame?.into_data() {
                Ok(data) if out.is_empty() => out = data,
                Ok(data) => {
                    let mut joined = BytesMut::from(out);
                    joined.extend_from_slice(&data);
                    out = joined.freeze();
                }
                Err(_) => {}
            },
            Poll::Pending => return Err(NotOneMessage("its body is not ready at once").into()),
        }
    }
    if out.is_empty() {
        return Ok(Bytes::new());
    }
    let mut prefix = out
        .get(..5)
        .ok_or(NotOneMessage("a message is cut short"))?;
    prefix.advance(1);
    let named = usize::try_from(prefix.get_u32()).unwrap_or(usize::MAX);
    match (out.len() - 5).cmp(&named) {
        std::cmp::Ordering::Equal => Ok(out),
        std::cmp::Ordering::Less => Err(NotOneMessage("a message is cut short").into()),
        std::cmp::Ordering::Greater => Err(NotOneMessage("it holds more than one message").into()),
    }
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

    fn refusal(b: Body) -> String {
        let e = one_message(b).unwrap_err();
        assert!(e.downcast_ref::<NotOneMessage>().is_some(), "{e}");
        e.to_string()
    }

    #[test]
    fn one_message_passes_whole() {
        assert_eq!(one_message(body(vec![framed(3)])).unwrap().len(), 8);
        // Split across frames, still one message.
        let m = framed(70_000);
        let (a, b) = m.split_at(10);
        assert_eq!(
            one_message(body(vec![a.to_vec(), b.to_vec()]))
                .unwrap()
                .len(),
            70_005
        );
        assert!(one_message(body(vec![])).unwrap().is_empty());
        assert!(one_message(Body::empty()).unwrap().is_empty());
    }

    #[test]
    fn two_messages_are_refused() {
        let msg = refusal(body(vec![framed(3), framed(4)]));
        assert!(msg.contains("more than one message"), "{msg}");
        assert!(msg.contains("not a streaming request"), "{msg}");
    }

    #[test]
    fn a_short_message_is_refused() {
        let mut m = framed(10);
        m.truncate(8);
        assert!(refusal(body(vec![m])).contains("cut short"));
        assert!(refusal(body(vec![vec![0, 0]])).contains("cut short"));
    }

    #[test]
    fn a_body_not_ready_at_once_is_refused() {
        let pending = tokio_stream::pending::<Result<http_body::Frame<Bytes>, tonic::Status>>();
        let msg = refusal(Body::new(http_body_util::StreamBody::new(pending)));
        assert!(msg.contains("not ready at once"), "{msg}");
    }
}
