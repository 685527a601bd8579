//! One HTTP/2 connection: its dial, the task that drives it and keeps it
//! alive, and the bodies of the answers read from it.
//!
//! Keepalive. While a stream is open (a call, or the event stream, which
//! has no deadline) and containerd has sent nothing for the interval, the
//! connection is probed; a probe unanswered within the timeout closes the
//! connection, which fails every stream on it (with an error that says
//! why) and makes the next call dial again. A probe is an HTTP/2 PING, but
//! not three in a row: containerd's gRPC server (grpc-go with its default
//! enforcement policy) counts a PING that comes within five minutes of the
//! previous one, with no HEADERS or DATA sent by the server in between, as
//! a strike, and ends the connection with GOAWAY ENHANCE_YOUR_CALM after
//! two strikes. So after two PINGs with nothing heard, the probe is a
//! Version call instead, whose answer clears the count.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::client::SendRequest;
use http_body::Frame;
use tokio_util::sync::CancellationToken;

use super::streamed::Streamed;
use super::{AUTHORITY, BoxError};
use crate::config::Keepalive;

/// The receive windows hyper's client (tonic's channel) asks for, so that
/// the event stream is not held to HTTP/2's 64 KiB default.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// The largest header list accepted from containerd (hyper's client's
/// limit, 16 KiB): a peer cannot make the client buffer more.
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// PINGs in a row, with nothing heard from the daemon, before a probe is a
/// Version call (see the module's documentation).
const QUIET_PINGS: u32 = 2;

/// What the calls on one connection and the task driving it share.
pub(super) struct Link {
    /// How many times the daemon sent HEADERS or DATA (any change since a
    /// look is a word from it).
    heard: AtomicU64,
    /// Requests sent whose answer has not been dropped.
    open: AtomicUsize,
    /// Why the keepalive closed the connection, once it has.
    lost: OnceLock<String>,
}

impl Link {
    fn new() -> Self {
        Self {
            heard: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            lost: OnceLock::new(),
        }
    }

    /// Notes that the daemon sent HEADERS or DATA.
    pub(super) fn hear(&self) {
        self.heard.fetch_add(1, Ordering::Relaxed);
    }

    /// The streams open on the connection.
    pub(super) fn open_streams(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn heard(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    /// A stream counted open until the guard is dropped.
    pub(super) fn open_stream(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenStream(self.clone())
    }

    /// The error a failed stream reports: why the keepalive closed the
    /// connection, if it did, with h2's own error as the source.
    pub(super) fn explain(&self, e: h2::Error) -> BoxError {
        match self.lost.get() {
            Some(why) => Box::new(Lost {
                why: why.clone(),
                source: e,
            }),
            None => Box::new(e),
        }
    }
}

/// A stream counted in [`Link::open`].
pub(super) struct OpenStream(Arc<Link>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream failed because the keepalive found the daemon unresponsive and
/// closed the connection.
#[derive(Debug)]
pub(super) struct Lost {
    why: String,
    source: h2::Error,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for Lost {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Connects to `socket` and starts the HTTP/2 connection's task (on the
/// current runtime), which ends when the socket closes, when the keepalive
/// gives up, or when `gone` (the transport is dropped) and no stream is
/// left.
///
/// The connection is used once the daemon has answered a first PING, within
/// the keepalive's timeout: its SETTINGS come before that answer, so no
/// request is sent before its limit on concurrent streams is known (and
/// none is refused for going past it).
pub(super) async fn dial(
    socket: PathBuf,
    keepalive: Keepalive,
    gone: CancellationToken,
) -> Result<(SendRequest<Bytes>, Arc<Link>), BoxError> {
    let connect = async {
        let stream = tokio::net::UnixStream::connect(&socket).await?;
        let handshake = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST_SIZE)
            // gRPC has no use for server push: a PUSH_PROMISE is an error.
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await?;
        Ok::<_, BoxError>(handshake)
    };
    let no_answer = || {
        format!(
            "containerd did not complete the HTTP/2 handshake within {:?}",
            keepalive.timeout
        )
    };
    let (sender, mut connection) = tokio::time::timeout(keepalive.timeout, connect)
        .await
        .map_err(|_| no_answer())??;
    let link = Arc::new(Link::new());
    let probe = Probe {
        link: link.clone(),
        sender: sender.clone(),
        pings: connection.ping_pong(),
        keepalive,
    };
    let (settled, settling) = tokio::sync::oneshot::channel();
    let driven = link.clone();
    tokio::spawn(async move {
        let outcome = tokio::select! {
            r = &mut connection => Some(r),
            why = probe.run(settled) => {
                tracing::warn!(%why, "closing the connection to containerd");
                let _ = driven.lost.set(why);
                // Dropping the connection fails every stream on it.
                None
            }
            () = gone.cancelled() => Some(connection.await),
        };
        if let Some(Err(e)) = outcome {
            tracing::debug!(error = %e, "the connection to containerd ended");
        }
    });
    settling.await.map_err(|_| no_answer())?;
    Ok((sender, link))
}

/// The keepalive of one connection.
struct Probe {
    link: Arc<Link>,
    sender: SendRequest<Bytes>,
    pings: Option<h2::PingPong>,
    keepalive: Keepalive,
}

impl Probe {
    /// Pings once and answers `settled`, then probes while the daemon
    /// answers; returns why it gave up.
    async fn run(mut self, settled: tokio::sync::oneshot::Sender<()>) -> String {
        let Keepalive { interval, timeout } = self.keepalive;
        let gave_up = || {
            format!(
                "containerd did not answer a keepalive probe within {timeout:?}: the connection is closed"
            )
        };
        match tokio::time::timeout(timeout, self.ping()).await {
            Ok(Ok(())) => {
                let _ = settled.send(());
            }
            Ok(Err(_)) => std::future::pending::<()>().await,
            Err(_) => return gave_up(),
        }
        let mut last_heard = self.link.heard();
        // That PING counts among those unanswered by data.
        let mut quiet_pings = 1;
        loop {
            tokio::time::sleep(interval).await;
            let heard = self.link.heard();
            if heard != last_heard {
                last_heard = heard;
                quiet_pings = 0;
                continue;
            }
            let open = self.link.open_streams();
            if open == 0 {
                continue;
            }
            let at_limit = open >= self.sender.current_max_send_streams();
            let answered = if quiet_pings >= QUIET_PINGS && !at_limit {
                tokio::time::timeout(timeout, self.version()).await
            } else {
                quiet_pings += 1;
                tokio::time::timeout(timeout, self.ping()).await
            };
            match answered {
                Ok(Ok(())) => {}
                // The connection is gone; its own error tells why.
                Ok(Err(_)) => std::future::pending::<()>().await,
                Err(_) => return gave_up(),
            }
        }
    }

    async fn ping(&mut self) -> Result<(), BoxError> {
        match &mut self.pings {
            Some(p) => Ok(p.ping(h2::Ping::opaque()).await.map(drop)?),
            None => std::future::pending().await,
        }
    }

    /// A Version call; its answer's HEADERS and DATA are heard.
    async fn version(&mut self) -> Result<(), BoxError> {
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(AUTHORITY)
            .path_and_query("/containerd.services.version.v1.Version/Version")
            .build()?;
        let head = http::Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        let mut sender = self.sender.clone().ready().await?;
        let (answer, mut stream) = sender.send_request(head, false)?;
        // The empty message: not compressed, zero bytes long.
        stream.send_data(Bytes::from_static(&[0; 5]), true)?;
        let mut body = Answer::new(answer.await?.into_body(), self.link.clone(), None);
        self.link.hear();
        while let Some(frame) =
            std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await
        {
            frame?;
        }
        Ok(())
    }
}

/// An answer's body as tonic reads it: its DATA frames, then its trailers
/// (where gRPC puts the status). Each frame read is given back to the flow
/// control window, so that a long stream (the events) keeps flowing.
pub(crate) struct Answer {
    body: h2::RecvStream,
    data_done: bool,
    link: Arc<Link>,
    _open: Option<OpenStream>,
    /// A streamed request's sending side: its deadline, and its reset
    /// when the answer is dropped.
    streamed: Option<Streamed>,
}

impl Answer {
    pub(super) fn new(body: h2::RecvStream, link: Arc<Link>, open: Option<OpenStream>) -> Self {
        Self {
            body,
            data_done: false,
            link,
            _open: open,
            streamed: None,
        }
    }

    /// The answer to a streamed request, which keeps its sending side.
    pub(super) fn streamed(mut self, sending: Streamed) -> Self {
        self.streamed = Some(sending);
        self
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(sending) = &mut self.streamed
            && let Poll::Ready(expired) = sending.poll_expired(cx)
        {
            return Poll::Ready(expired.map(Err));
        }
        if !self.data_done {
            match ready!(self.body.poll_data(cx)) {
                Some(Ok(data)) => {
                    self.link.hear();
                    // Only fails once the stream is gone, which the next
                    // read reports.
                    let _ = self.body.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(self.link.explain(e)))),
                None => self.data_done = true,
            }
        }
        match ready!(self.body.poll_trailers(cx)) {
            Ok(Some(trailers)) => {
                self.link.hear();
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(self.link.explain(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}
