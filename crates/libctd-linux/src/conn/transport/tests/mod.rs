//! The transport against an h2 server that speaks gRPC as containerd's
//! does, and that can behave as a daemon in trouble does.

use super::*;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{PublishRequest, SubscribeRequest, VersionResponse};
use containerd_client::types::Envelope;
use prost::Message;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

mod calls;
mod keepalive;
mod limits;
mod streams;
#[cfg(feature = "otel")]
mod trace;

/// How the test daemon behaves; the default answers Version and streams no
/// event.
#[derive(Clone, Default)]
struct Daemon {
    /// Subscribe streams this many envelopes of 8 KiB, then ends.
    events: usize,
    /// Subscribe, after its events, stays open instead of ending.
    hold_subscriptions: bool,
    /// Each connection closes (GOAWAY) after its first call: a restart.
    one_call_per_connection: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    max_streams: Option<u32>,
    /// Each answer waits this long before it ends.
    answer_after: Duration,
    /// The Version answer's version string is this long (else "test").
    version_len: usize,
    /// Each answer's headers carry an `x-pad` header this long.
    header_len: usize,
    /// Each answer tries a server push first.
    push: bool,
    /// Content.Write reads slowly: a pause of 1 ms after each 256 KiB.
    slow_writes: bool,
    /// Content.Write resets its stream once it has read this many bytes.
    reset_writes_after: Option<usize>,
}

/// What the daemon saw, and its controls.
struct Seen {
    accepted: AtomicUsize,
    versions: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    /// The length of each Publish's event value.
    published: Mutex<Vec<usize>>,
    /// A push was tried and h2 refused it (the client disabled push).
    push_refused: AtomicBool,
    /// Subscribe requests received.
    subscribes: AtomicUsize,
    /// The `x-seq` header of each request that has one, in order of arrival.
    order: Mutex<Vec<usize>>,
    /// Each request's headers, in order of arrival.
    headers: Mutex<Vec<http::HeaderMap>>,
    /// What Publish received, sent on to every open subscription that
    /// [`Daemon::hold_subscriptions`] holds, as containerd does.
    published_events: tokio::sync::broadcast::Sender<Envelope>,
    /// Cancelled: every connection stops reading and writing, holding its
    /// socket (a hung daemon), later ones too.
    hang: CancellationToken,
    /// Cancelled by [`Seen::hang_open`]: only the connections open then
    /// hang (a connection lost on the way).
    hang_open: Mutex<CancellationToken>,
    /// Cancelled by [`Seen::goaway`]: the connections open then send GOAWAY
    /// and close at once.
    goaway: Mutex<CancellationToken>,
    /// Bytes of Content.Write requests read, all streams together.
    written: AtomicUsize,
    /// Content.Write streams that the client reset.
    writes_reset: AtomicUsize,
    /// Content.Write streams that the client ended.
    writes_ended: AtomicUsize,
}

impl Daemon {
    /// Serves at `path`; returns what it sees.
    fn serve(self, path: &Path) -> Arc<Seen> {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(self.clone().connection(sock, s.clone()));
            }
        });
        seen
    }

    async fn connection(self, sock: tokio::net::UnixStream, seen: Arc<Seen>) {
        let mut builder = h2::server::Builder::new();
        if let Some(n) = self.max_streams {
            builder.max_concurrent_streams(n);
        }
        let mut conn = builder.handshake::<_, Bytes>(sock).await.unwrap();
        let goaway = seen.goaway.lock().unwrap().clone();
        let hang_open = seen.hang_open.lock().unwrap().clone();
        loop {
            tokio::select! {
                biased;
                () = seen.hang.cancelled() => {
                    // Holds the connection, and its socket, unpolled.
                    return std::future::pending().await;
                }
                () = hang_open.cancelled() => return std::future::pending().await,
                () = goaway.cancelled() => {
                    conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                    let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
                    return;
                }
                next = conn.accept() => {
                    let Some(Ok((req, respond))) = next else { return };
                    tokio::spawn(self.clone().answer(req, respond, seen.clone()));
                    if self.one_call_per_connection {
                        // Closes the connection once the answer is out.
                        conn.graceful_shutdown();
                        let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
                        return;
                    }
                }
            }
        }
    }

    async fn answer(
        self,
        req: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
        seen: Arc<Seen>,
    ) {
        let now = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
        seen.max_open.fetch_max(now, Ordering::SeqCst);
        let path = req.uri().path().to_owned();
        if let Some(seq) = req.headers().get("x-seq") {
            let seq = seq.to_str().unwrap().parse().unwrap();
            seen.order.lock().unwrap().push(seq);
        }
        seen.headers.lock().unwrap().push(req.headers().clone());
        let mut body = req.into_body();
        if path.ends_with("/Write") {
            return self.write(body, respond, seen).await;
        }
        let mut message = Vec::new();
        while let Some(Ok(d)) = body.data().await {
            let _ = body.flow_control().release_capacity(d.len());
            message.extend_from_slice(&d);
        }
        if self.push {
            let promise = http::Request::get("http://[::]:50051/pushed")
                .body(())
                .unwrap();
            let refused = respond.push_request(promise).is_err();
            seen.push_refused.store(refused, Ordering::SeqCst);
        }
        let head = http::Response::builder()
            .header("content-type", "application/grpc")
            .header("x-pad", "p".repeat(self.header_len))
            .body(())
            .unwrap();
        let Ok(mut out) = respond.send_response(head, false) else {
            return;
        };
        if path.ends_with("/Version") {
            seen.versions.fetch_add(1, Ordering::SeqCst);
            let version = match self.version_len {
                0 => "test".to_owned(),
                n => "v".repeat(n),
            };
            let v = VersionResponse {
                version,
                revision: "0".into(),
            };
            let _ = out.send_data(framed(&v), false);
        } else if path.ends_with("/Publish") {
            let req = PublishRequest::decode(message.get(5..).unwrap_or_default()).unwrap();
            let len = req.event.as_ref().map_or(0, |e| e.value.len());
            seen.published.lock().unwrap().push(len);
            let _ = seen.published_events.send(Envelope {
                topic: req.topic,
                event: req.event,
                ..Envelope::default()
            });
            // google.protobuf.Empty.
            let _ = out.send_data(Bytes::from_static(&[0; 5]), false);
        } else if path.ends_with("/Subscribe") {
            seen.subscribes.fetch_add(1, Ordering::SeqCst);
            let mut published = seen.published_events.subscribe();
            for i in 0..self.events {
                let e = Envelope {
                    topic: format!("/tasks/{i}"),
                    event: Some(prost_types::Any {
                        type_url: "t".into(),
                        value: vec![7; 8192],
                    }),
                    ..Envelope::default()
                };
                let _ = out.send_data(framed(&e), false);
            }
            if self.hold_subscriptions {
                loop {
                    tokio::select! {
                        _ = std::future::poll_fn(|cx| out.poll_reset(cx)) => break,
                        e = published.recv() => match e {
                            Ok(e) => {
                                let _ = out.send_data(framed(&e), false);
                            }
                            Err(_) => break,
                        },
                    }
                }
            }
        }
        tokio::time::sleep(self.answer_after).await;
        seen.open.fetch_sub(1, Ordering::SeqCst);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = out.send_trailers(trailers);
    }
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            accepted: AtomicUsize::default(),
            versions: AtomicUsize::default(),
            open: AtomicUsize::default(),
            max_open: AtomicUsize::default(),
            published: Mutex::default(),
            push_refused: AtomicBool::default(),
            subscribes: AtomicUsize::default(),
            order: Mutex::default(),
            headers: Mutex::default(),
            published_events: tokio::sync::broadcast::channel(64).0,
            hang: CancellationToken::default(),
            hang_open: Mutex::default(),
            goaway: Mutex::default(),
            written: AtomicUsize::default(),
            writes_reset: AtomicUsize::default(),
            writes_ended: AtomicUsize::default(),
        }
    }
}

impl Seen {
    /// The connections open now hang; later ones do not.
    fn hang_open(&self) {
        std::mem::take(&mut *self.hang_open.lock().unwrap()).cancel();
    }

    /// The connections open now send GOAWAY and close; later ones do not.
    fn goaway(&self) {
        std::mem::take(&mut *self.goaway.lock().unwrap()).cancel();
    }
}

fn framed(m: &impl Message) -> Bytes {
    let body = m.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// A transport (with the default keepalive) to a fresh daemon: its
/// directory (kept alive), the transport, and what the daemon sees.
fn served(daemon: Daemon) -> (tempfile::TempDir, Transport, Arc<Seen>) {
    served_with(daemon, Keepalive::default())
}

fn served_with(daemon: Daemon, keepalive: Keepalive) -> (tempfile::TempDir, Transport, Arc<Seen>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctd.sock");
    let seen = daemon.serve(&path);
    (dir, Transport::lazy(&path, keepalive), seen)
}

async fn version(t: &Transport) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(());
    req.set_timeout(Duration::from_secs(5));
    let mut v: VersionClient<Transport> = crate::conn::client(t);
    Ok(v.version(req).await?.into_inner().version)
}

/// An event stream open on `t`.
async fn subscribe(t: &Transport) -> tonic::Streaming<Envelope> {
    let mut events: EventsClient<Transport> = crate::conn::client(t);
    events
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner()
}
