//! Streaming requests (Content.Write, containerd's one bidirectional call):
//! interleaved messages, flow control over a long stream, a reset from
//! either side, the deadline.

use super::*;
use crate::convert::status_error;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{WriteAction, WriteContentRequest, WriteContentResponse};
use libctd_core::ErrorKind;
use tokio_stream::StreamExt;

const MIB: usize = 1024 * 1024;

impl Daemon {
    /// Content.Write as containerd's content service answers it: each
    /// request message gets an answer with the writer's offset after it;
    /// the stream ends with the client's end of stream.
    pub(super) async fn write(
        self,
        mut body: h2::RecvStream,
        mut respond: h2::server::SendResponse<Bytes>,
        seen: Arc<Seen>,
    ) {
        let head = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut out = respond.send_response(head, false).unwrap();
        let mut buf = Vec::new();
        let mut offset = 0i64;
        let mut paced = 0;
        loop {
            match body.data().await {
                None => break,
                Some(Err(_)) => {
                    seen.writes_reset.fetch_add(1, Ordering::SeqCst);
                    seen.open.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                Some(Ok(d)) => {
                    let read = seen.written.fetch_add(d.len(), Ordering::SeqCst) + d.len();
                    buf.extend_from_slice(&d);
                    if self.reset_writes_after.is_some_and(|n| read >= n) {
                        out.send_reset(h2::Reason::CANCEL);
                        seen.open.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    paced += d.len();
                    if self.slow_writes && paced >= 256 * 1024 {
                        paced = 0;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let _ = body.flow_control().release_capacity(d.len());
                }
            }
            while let Some(len) = buf
                .get(1..5)
                .map(|p| u32::from_be_bytes(p.try_into().unwrap()) as usize)
                .filter(|len| buf.len() >= 5 + len)
            {
                let req = WriteContentRequest::decode(&buf[5..5 + len]).unwrap();
                buf.drain(..5 + len);
                offset += i64::try_from(req.data.len()).unwrap();
                let answer = WriteContentResponse {
                    action: req.action,
                    offset,
                    total: req.total,
                    ..WriteContentResponse::default()
                };
                let _ = out.send_data(framed(&answer), false);
            }
        }
        seen.writes_ended.fetch_add(1, Ordering::SeqCst);
        seen.open.fetch_sub(1, Ordering::SeqCst);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = out.send_trailers(trailers);
    }
}

fn chunk(len: usize) -> WriteContentRequest {
    WriteContentRequest {
        action: WriteAction::Write.into(),
        r#ref: "r".into(),
        data: vec![3; len],
        ..WriteContentRequest::default()
    }
}

/// A Content.Write fed through a channel, its first message of 10 bytes
/// sent; the call bounded by `timeout`.
async fn fed_write(
    t: &Transport,
    timeout: Option<Duration>,
) -> (
    tokio::sync::mpsc::Sender<WriteContentRequest>,
    tonic::Streaming<WriteContentResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(chunk(10)).await.unwrap();
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(timeout) = timeout {
        req.set_timeout(timeout);
    }
    let answers = ContentClient::new(t.clone()).write(req).await.unwrap();
    (tx, answers.into_inner())
}

/// Polls `done` until it holds, failing after 10 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_call_interleaves_its_messages() {
    let (_dir, t, seen) = served(Daemon::default());
    let (tx, mut answers) = fed_write(&t, None).await;
    // Each message goes out before the next exists: the body is streamed,
    // not collected.
    for i in 1..=10 {
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!(answer.offset, i * 10);
        if i < 10 {
            tx.send(chunk(10)).await.unwrap();
        }
    }
    drop(tx);
    assert!(answers.message().await.unwrap().is_none(), "ended");
    assert_eq!(seen.writes_ended.load(Ordering::SeqCst), 1);
    // The unary calls still work beside it.
    assert_eq!(version(&t).await.unwrap(), "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_client_stream_is_held_to_the_daemons_flow_control() {
    // 32 MiB to a daemon that reads slowly: the caller's messages are made
    // only as the daemon takes them (a frame, h2's granted capacity and
    // tonic's encoding buffer ahead), never buffered whole.
    let (_dir, t, seen) = served(Daemon {
        slow_writes: true,
        ..Daemon::default()
    });
    let made = Arc::new(AtomicUsize::new(0));
    let lead = Arc::new(AtomicUsize::new(0));
    let (m, l, s) = (made.clone(), lead.clone(), seen.clone());
    let chunks = tokio_stream::iter(0..32).map(move |_| {
        let made = m.fetch_add(MIB, Ordering::SeqCst) + MIB;
        let ahead = made.saturating_sub(s.written.load(Ordering::SeqCst));
        l.fetch_max(ahead, Ordering::SeqCst);
        chunk(MIB)
    });
    let mut req = tonic::Request::new(chunks);
    req.set_timeout(Duration::from_secs(60));
    let mut answers = ContentClient::new(t).write(req).await.unwrap().into_inner();
    let mut last = 0;
    while let Some(a) = answers.message().await.unwrap() {
        last = a.offset;
    }
    assert_eq!(last, 32 * 1024 * 1024);
    let lead = lead.load(Ordering::SeqCst);
    assert!(lead <= 4 * MIB, "the caller ran {lead} bytes ahead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_resetting_mid_stream_fails_the_call_and_stops_the_body() {
    let (_dir, t, seen) = served(Daemon {
        reset_writes_after: Some(MIB),
        ..Daemon::default()
    });
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    // 1 GiB, were it all read.
    let chunks = tokio_stream::iter(0..1024).map(move |_| {
        m.fetch_add(MIB, Ordering::SeqCst);
        chunk(MIB)
    });
    let mut req = tonic::Request::new(chunks);
    req.set_timeout(Duration::from_secs(30));
    let outcome = async {
        let mut answers = ContentClient::new(t.clone()).write(req).await?.into_inner();
        while answers.message().await?.is_some() {}
        Ok::<_, tonic::Status>(())
    };
    let status = tokio::time::timeout(Duration::from_secs(10), outcome)
        .await
        .expect("the reset ends the call")
        .unwrap_err();
    let e = status_error(status);
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let made = made.load(Ordering::SeqCst);
    assert!(made <= 8 * MIB, "{made} bytes made after the reset");
    // The connection serves other calls.
    assert_eq!(version(&t).await.unwrap(), "test");
    assert_eq!(seen.writes_ended.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropping_its_answer_mid_stream_resets_the_stream() {
    let (_dir, t, seen) = served(Daemon::default());
    let (tx, mut answers) = fed_write(&t, None).await;
    assert_eq!(answers.message().await.unwrap().unwrap().offset, 10);
    // The request's sender is kept: only the answer goes.
    drop(answers);
    eventually("the daemon sees the reset", || {
        seen.writes_reset.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(tx.is_closed(), "the body is dropped with the stream");
    assert_eq!(seen.writes_ended.load(Ordering::SeqCst), 0);
    assert_eq!(version(&t).await.unwrap(), "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_past_its_deadline_is_reset_and_fails_as_deadline_exceeded() {
    let (_dir, t, seen) = served(Daemon::default());
    let (tx, mut answers) = fed_write(&t, Some(Duration::from_millis(300))).await;
    assert_eq!(answers.message().await.unwrap().unwrap().offset, 10);
    // Nothing more is sent: the deadline ends the call.
    let status = tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .expect("the deadline bounds the stream")
        .unwrap_err();
    let e = status_error(status);
    assert_eq!(e.kind(), ErrorKind::DeadlineExceeded, "{e}");
    eventually("the daemon sees the reset", || {
        seen.writes_reset.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(tx);
    assert_eq!(version(&t).await.unwrap(), "test");
}
