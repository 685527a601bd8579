//! The gRPC transport: one HTTP/2 connection to containerd's socket, which
//! every call of every client of a remote uses directly, through h2.
//!
//! tonic's `Channel` (tower's `Buffer` over hyper's HTTP/2 client) costs,
//! per call, a hop through the buffer's worker task and, because hyper
//! streams the request body from a task of its own once the stream has no
//! send capacity yet, a second write on the socket: the request's HEADERS
//! frame went out alone, its DATA frames after (seen with strace). Here a
//! call hands its whole request to h2 in the caller's task: the HEADERS and
//! the one DATA frame (gRPC's unary and server-streaming requests are one
//! message) are queued together and leave in one write.
//!
//! What the channel did besides is kept, and its failures are the same
//! error types, so that tonic turns them into the same `Status` as before
//! (`convert::status_error` reads them): the socket is dialled on first use
//! and again when the connection has closed (a daemon restart); a failed
//! dial is a `tonic::ConnectError` (Unavailable); the request's
//! `grpc-timeout` is enforced here too, until the answer's headers, as a
//! `tonic::TimeoutExpired` (the deadline also travels to containerd, which
//! then gives up as well). Dropping a call resets its stream.
//!
//! As hyper's client does, it refuses server push and header lists over
//! 16 KiB, and keeps to the daemon's limit on concurrent streams (calls past
//! it wait their turn, first come first served, within their deadline); it
//! also keeps the connection alive (`link`), so that a hung daemon fails
//! even the calls without a deadline.
//!
//! A client-streaming or bidirectional call (`request`: a body that is not
//! ready whole at once) sends its HEADERS alone, then its body's frames as
//! they come, from a task of its own, within the daemon's flow control;
//! the stream ends with the body. The call's deadline then covers the whole
//! stream, the request's body and the answer's: past it, the stream is
//! reset and the answer fails as `TimeoutExpired`; a dropped answer resets
//! it too.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{PathAndQuery, Uri};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::{ConnectError, TimeoutExpired};

use crate::config::Keepalive;
use crate::sync::lock;

mod link;
mod request;
mod streamed;

pub(crate) use link::Answer;
use link::Link;
use request::Taken;
use streamed::Streamed;

/// An error of the transport, as tonic's client reads it.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The authority every request names; containerd does not read it.
const AUTHORITY: &str = "[::]:50051";

/// A cloneable gRPC transport to the containerd socket at one path.
#[derive(Clone)]
pub(crate) struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    socket: PathBuf,
    keepalive: Keepalive,
    /// The runtime the transport was made in (the remote's), where the
    /// connection's task runs, as tonic's channel's worker did: a client
    /// called from another runtime (each test has its own) then does not
    /// take the connection down when that runtime ends.
    runtime: Option<tokio::runtime::Handle>,
    /// The live connection's handle, if one is open.
    sender: Mutex<Option<(SendRequest<Bytes>, Arc<Link>)>>,
    /// Held while dialling, so that callers who find no connection make one,
    /// not one each.
    dialling: tokio::sync::Mutex<()>,
    /// Cancelled when the transport is dropped: the connection's keepalive
    /// stops, and the connection ends with its last stream.
    gone: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.gone.cancel();
    }
}

impl Transport {
    /// A transport that dials `socket` lazily and again after the
    /// connection closes, and keeps each connection alive with `keepalive`.
    pub(crate) fn lazy(socket: &Path, keepalive: Keepalive) -> Self {
        Self {
            inner: Arc::new(Inner {
                socket: socket.to_path_buf(),
                keepalive,
                runtime: tokio::runtime::Handle::try_current().ok(),
                sender: Mutex::new(None),
                dialling: tokio::sync::Mutex::new(()),
                gone: CancellationToken::new(),
            }),
        }
    }
}

impl Inner {
    /// A handle to the live connection, dialling one if there is none (or
    /// the last one has closed).
    async fn sender(&self) -> Result<(SendRequest<Bytes>, Arc<Link>), BoxError> {
        if let Some(s) = self.open() {
            return Ok(s);
        }
        let _dialling = self.dialling.lock().await;
        // Another caller may have dialled while this one waited.
        if let Some(s) = self.open() {
            return Ok(s);
        }
        let dialled = self
            .dial()
            .await
            .map_err(|e| -> BoxError { Box::new(ConnectError(e)) })?;
        *lock(&self.sender) = Some(dialled.clone());
        Ok(dialled)
    }

    /// The open connection's handle; `None`, and forgotten, once it closed.
    fn open(&self) -> Option<(SendRequest<Bytes>, Arc<Link>)> {
        let mut slot = lock(&self.sender);
        let (mut s, link) = slot.clone()?;
        // Ready at once unless the connection is gone: each call has its
        // own handle, and h2 queues a stream past the daemon's limit on
        // concurrent streams until one closes (see `send`).
        let waker = std::task::Waker::noop();
        match s.poll_ready(&mut Context::from_waker(waker)) {
            Poll::Ready(Err(_)) => {
                *slot = None;
                None
            }
            _ => Some((s, link)),
        }
    }

    /// Dials on the transport's runtime: the socket belongs to the I/O
    /// driver of the runtime it was opened in, and must not die with the
    /// caller's.
    async fn dial(&self) -> Result<(SendRequest<Bytes>, Arc<Link>), BoxError> {
        let dial = link::dial(self.socket.clone(), self.keepalive, self.gone.clone());
        match &self.runtime {
            Some(rt) => rt.spawn(dial).await?,
            None => dial.await,
        }
    }

    /// Sends a request and waits for its answer's headers.
    ///
    /// At the daemon's limit on concurrent streams, h2 keeps the stream
    /// (its HEADERS and DATA) queued, first in first out, until a stream
    /// closes: the wait is fair, and bounded by the call's deadline, which
    /// covers all of this function (a call dropped while queued never
    /// opens its stream).
    async fn send(
        &self,
        req: http::Request<Body>,
        deadline: Option<Instant>,
    ) -> Result<http::Response<Answer>, BoxError> {
        let (mut head, body) = req.into_parts();
        head.uri = absolute(&head.uri)?;
        let taken = request::take(body)?;
        let (sender, link) = self.sender().await?;
        let mut sender = sender.ready().await?;
        let open = link.open_stream();
        let head = http::Request::from_parts(head, ());
        let (answer, stream) = match taken {
            Taken::Whole(message) => {
                let (answer, mut stream) = sender.send_request(head, message.is_empty())?;
                if !message.is_empty() {
                    // Queued whole: h2 sends it as the daemon's flow
                    // control window allows.
                    stream.send_data(message, true)?;
                }
                (answer, None)
            }
            Taken::Streamed { read, rest } => {
                let (answer, stream) = sender.send_request(head, false)?;
                // Dropped with this call before its answer comes: the
                // stream is reset.
                (answer, Some(Streamed::start(stream, read, rest, deadline)))
            }
        };
        let (head, body) = answer.await.map_err(|e| link.explain(e))?.into_parts();
        link.hear();
        let body = Answer::new(body, link, Some(open));
        Ok(http::Response::from_parts(
            head,
            match stream {
                None => body,
                Some(s) => body.streamed(s),
            },
        ))
    }
}

/// The request's URI with the scheme and authority HTTP/2 needs.
fn absolute(uri: &Uri) -> Result<Uri, BoxError> {
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Ok(Uri::builder()
        .scheme("http")
        .authority(AUTHORITY)
        .path_and_query(path)
        .build()?)
}

/// The deadline a `grpc-timeout` header asks for (the gRPC over HTTP/2
/// spec: at most eight digits and a unit). A malformed one is no deadline,
/// as with tonic's channel; containerd sees the same header.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let unit_at = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..unit_at)?, value.get(unit_at..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl tower::Service<http::Request<Body>> for Transport {
    type Response = http::Response<Answer>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is the connection's, found (or made) in the call itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            match grpc_timeout(req.headers()) {
                None => inner.send(req, None).await,
                Some(timeout) => {
                    let deadline = Instant::now() + timeout;
                    match tokio::time::timeout_at(deadline, inner.send(req, Some(deadline))).await {
                        Ok(answer) => answer,
                        Err(_) => Err(TimeoutExpired(()).into()),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
