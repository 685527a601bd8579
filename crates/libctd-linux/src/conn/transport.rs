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

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{PathAndQuery, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::{ConnectError, TimeoutExpired};

use crate::sync::lock;

/// An error of the transport, as tonic's client reads it.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The authority every request names; containerd does not read it.
const AUTHORITY: &str = "[::]:50051";

/// The receive windows hyper's client (tonic's channel) asks for, so that
/// the event stream is not held to HTTP/2's 64 KiB default.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// A cloneable gRPC transport to the containerd socket at one path.
#[derive(Clone)]
pub(crate) struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    socket: PathBuf,
    /// The runtime the transport was made in (the remote's), where the
    /// connection's task runs, as tonic's channel's worker did: a client
    /// called from another runtime (each test has its own) then does not
    /// take the connection down when that runtime ends.
    runtime: Option<tokio::runtime::Handle>,
    /// The live connection's handle, if one is open.
    sender: Mutex<Option<SendRequest<Bytes>>>,
    /// Held while dialling, so that callers who find no connection make one,
    /// not one each.
    dialling: tokio::sync::Mutex<()>,
}

impl Transport {
    /// A transport that dials `socket` lazily and again after the
    /// connection closes.
    pub(crate) fn lazy(socket: &Path) -> Self {
        Self {
            inner: Arc::new(Inner {
                socket: socket.to_path_buf(),
                runtime: tokio::runtime::Handle::try_current().ok(),
                sender: Mutex::new(None),
                dialling: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

impl Inner {
    /// A handle to the live connection, dialling one if there is none (or
    /// the last one has closed).
    async fn sender(&self) -> Result<SendRequest<Bytes>, BoxError> {
        if let Some(s) = self.open() {
            return Ok(s);
        }
        let _dialling = self.dialling.lock().await;
        // Another caller may have dialled while this one waited.
        if let Some(s) = self.open() {
            return Ok(s);
        }
        let sender = self
            .dial()
            .await
            .map_err(|e| -> BoxError { Box::new(ConnectError(e)) })?;
        *lock(&self.sender) = Some(sender.clone());
        Ok(sender)
    }

    /// The open connection's handle; `None`, and forgotten, once it closed.
    fn open(&self) -> Option<SendRequest<Bytes>> {
        let mut slot = lock(&self.sender);
        let mut s = slot.clone()?;
        // Ready at once unless the connection is gone (or at its stream
        // limit, which `ready` below waits out).
        let waker = std::task::Waker::noop();
        match s.poll_ready(&mut Context::from_waker(waker)) {
            Poll::Ready(Err(_)) => {
                *slot = None;
                None
            }
            _ => Some(s),
        }
    }

    /// Dials on the transport's runtime: the socket belongs to the I/O
    /// driver of the runtime it was opened in, and must not die with the
    /// caller's.
    async fn dial(&self) -> Result<SendRequest<Bytes>, BoxError> {
        let socket = self.socket.clone();
        match &self.runtime {
            Some(rt) => rt.spawn(dial(socket)).await?,
            None => dial(socket).await,
        }
    }

    async fn send(&self, req: http::Request<Body>) -> Result<http::Response<Answer>, BoxError> {
        let (mut head, body) = req.into_parts();
        head.uri = absolute(&head.uri)?;
        // A unary or server-streaming request is one message, ready at once.
        let message = body.collect().await?.to_bytes();
        let mut sender = self.sender().await?.ready().await?;
        let (answer, mut stream) =
            sender.send_request(http::Request::from_parts(head, ()), message.is_empty())?;
        if !message.is_empty() {
            stream.send_data(message, true)?;
        }
        let (head, body) = answer.await?.into_parts();
        Ok(http::Response::from_parts(
            head,
            Answer {
                body,
                data_done: false,
            },
        ))
    }
}

/// Connects to `socket` and starts the HTTP/2 connection's task (on the
/// current runtime).
async fn dial(socket: PathBuf) -> Result<SendRequest<Bytes>, BoxError> {
    let stream = tokio::net::UnixStream::connect(&socket).await?;
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake(stream)
        .await?;
    // It ends when the socket closes or when the last handle (the
    // transport's and its calls') is dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "the connection to containerd ended");
        }
    });
    Ok(sender)
}

/// An answer's body as tonic reads it: its DATA frames, then its trailers
/// (where gRPC puts the status). Each frame read is given back to the flow
/// control window, so that a long stream (the events) keeps flowing.
pub(crate) struct Answer {
    body: h2::RecvStream,
    data_done: bool,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.body.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Only fails once the stream is gone, which the next
                    // read reports.
                    let _ = self.body.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        match ready!(self.body.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
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
                None => inner.send(req).await,
                Some(deadline) => match tokio::time::timeout(deadline, inner.send(req)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(TimeoutExpired(()).into()),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_client::services::v1::events_client::EventsClient;
    use containerd_client::services::v1::version_client::VersionClient;
    use containerd_client::services::v1::{SubscribeRequest, VersionResponse};
    use containerd_client::types::Envelope;
    use prost::Message;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A gRPC server on a unix socket, speaking h2 as containerd's does:
    /// Version answers; Subscribe streams `events` envelopes of 8 KiB.
    /// `one_call_per_connection` closes each connection after its first
    /// call (a daemon restart). Returns the count of connections accepted.
    fn serve(path: &Path, events: usize, one_call_per_connection: bool) -> Arc<AtomicUsize> {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut conn = h2::server::handshake(sock).await.unwrap();
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        tokio::spawn(answer(req, respond, events));
                        if one_call_per_connection {
                            // Closes the connection once the answer is out.
                            conn.graceful_shutdown();
                            let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
                            return;
                        }
                    }
                });
            }
        });
        accepted
    }

    fn framed(m: &impl Message) -> Bytes {
        let body = m.encode_to_vec();
        let mut out = vec![0u8];
        out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&body);
        Bytes::from(out)
    }

    async fn answer(
        req: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
        events: usize,
    ) {
        let path = req.uri().path().to_owned();
        let mut body = req.into_body();
        while let Some(Ok(d)) = body.data().await {
            let _ = body.flow_control().release_capacity(d.len());
        }
        let head = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut out = respond.send_response(head, false).unwrap();
        if path.ends_with("/Version") {
            let v = VersionResponse {
                version: "test".into(),
                revision: "0".into(),
            };
            out.send_data(framed(&v), false).unwrap();
        } else {
            for i in 0..events {
                let e = Envelope {
                    topic: format!("/tasks/{i}"),
                    event: Some(prost_types::Any {
                        type_url: "t".into(),
                        value: vec![7; 8192],
                    }),
                    ..Envelope::default()
                };
                out.send_data(framed(&e), false).unwrap();
            }
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        out.send_trailers(trailers).unwrap();
    }

    /// A transport to a fresh [`serve`]r: its directory (kept alive), the
    /// transport, and the server's count of connections.
    fn served(
        events: usize,
        one_call_per_connection: bool,
    ) -> (tempfile::TempDir, Transport, Arc<AtomicUsize>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctd.sock");
        let accepted = serve(&path, events, one_call_per_connection);
        let t = Transport::lazy(&path);
        (dir, t, accepted)
    }

    async fn version(t: &Transport) -> Result<String, tonic::Status> {
        let mut req = tonic::Request::new(());
        req.set_timeout(Duration::from_secs(5));
        Ok(VersionClient::new(t.clone())
            .version(req)
            .await?
            .into_inner()
            .version)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_longer_than_the_flow_control_windows_keeps_flowing() {
        // 16 MiB: past the stream's 2 MiB and the connection's 5 MiB window.
        let (_dir, t, _) = served(2000, false);
        let mut stream = EventsClient::new(t)
            .subscribe(SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        let read = async {
            while let Some(e) = stream.message().await.unwrap() {
                assert_eq!(e.topic, format!("/tasks/{n}"));
                n += 1;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the stream does not stall");
        assert_eq!(n, 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_connection_outlives_the_runtime_that_dialled_it() {
        let (_dir, t, accepted) = served(0, false);
        let t2 = t.clone();
        // The first call, which dials, comes from a runtime that then ends.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            assert_eq!(rt.block_on(version(&t2)).unwrap(), "test");
        })
        .join()
        .unwrap();
        assert_eq!(version(&t).await.unwrap(), "test");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_connection_is_dialled_again() {
        let (_dir, t, accepted) = served(0, true);
        assert_eq!(version(&t).await.unwrap(), "test");
        // The daemon closed it: once the client has seen that, a call dials.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while t.inner.open().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "the close is seen");
            tokio::task::yield_now().await;
        }
        assert_eq!(version(&t).await.unwrap(), "test");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "dialled again");
    }

    fn headers(timeout: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", timeout.parse().unwrap());
        h
    }

    #[test]
    fn a_grpc_timeout_is_read_in_each_unit() {
        for (v, d) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("30S", Duration::from_secs(30)),
            ("250m", Duration::from_millis(250)),
            ("30000000u", Duration::from_secs(30)),
            ("7n", Duration::from_nanos(7)),
        ] {
            assert_eq!(grpc_timeout(&headers(v)), Some(d), "{v}");
        }
    }

    #[test]
    fn a_malformed_grpc_timeout_is_no_deadline() {
        for v in ["", "S", "123456789S", "10x", "-1S", "1.5S", "１S"] {
            let h = if v == "１S" {
                let mut h = http::HeaderMap::new();
                h.insert(
                    "grpc-timeout",
                    http::HeaderValue::from_bytes("\u{ff11}S".as_bytes()).unwrap(),
                );
                h
            } else if v.is_empty() {
                let mut h = http::HeaderMap::new();
                h.insert("grpc-timeout", http::HeaderValue::from_static(""));
                h
            } else {
                headers(v)
            };
            assert_eq!(grpc_timeout(&h), None, "{v:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_request_names_scheme_and_authority() {
        let u = absolute(&Uri::from_static(
            "/containerd.services.version.v1.Version/Version",
        ))
        .unwrap();
        assert_eq!(
            u.to_string(),
            "http://[::]:50051/containerd.services.version.v1.Version/Version"
        );
    }

    #[tokio::test]
    async fn no_daemon_is_a_connect_error_tonic_calls_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::lazy(&dir.path().join("no.sock"));
        let mut client = containerd_client::services::v1::version_client::VersionClient::new(t);
        let status = client.version(()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(crate::convert::made_by_transport(&status));
    }

    #[tokio::test]
    async fn a_deaf_daemon_is_a_timeout_tonic_calls_cancelled() {
        // A socket that accepts and never answers: the HTTP/2 handshake hangs.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deaf.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let mut client = containerd_client::services::v1::version_client::VersionClient::new(
            Transport::lazy(&path),
        );
        let mut req = tonic::Request::new(());
        req.set_timeout(Duration::from_millis(100));
        let status = tokio::time::timeout(Duration::from_secs(10), client.version(req))
            .await
            .expect("the deadline bounds the call")
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
        assert!(crate::convert::made_by_transport(&status));
        let e = crate::convert::status_error(status);
        assert_eq!(e.kind(), libctd_core::ErrorKind::DeadlineExceeded, "{e}");
    }
}
