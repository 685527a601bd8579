//! The keepalive: a hung daemon is found within its bound, a quiet but
//! healthy one is left alone.

use super::*;
use crate::convert::status_error;
use libctd_core::ErrorKind;

/// Short, for tests (the builder accepts 1 s at the least).
const FAST: Keepalive = Keepalive {
    interval: Duration::from_millis(100),
    timeout: Duration::from_millis(200),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_of_a_hung_daemon_fails_within_the_bound() {
    let (_dir, t, seen) = served_with(
        Daemon {
            events: 1,
            hold_subscriptions: true,
            ..Daemon::default()
        },
        FAST,
    );
    let mut events = subscribe(&t).await;
    assert!(events.message().await.unwrap().is_some(), "the first event");
    // The daemon stops reading and answering, and keeps its socket open.
    seen.hang.cancel();
    let hung_at = tokio::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("the stream does not hang forever");
    let took = hung_at.elapsed();
    let status = end.unwrap_err();
    assert!(status.message().contains("keepalive"), "{status:?}");
    let e = status_error(status);
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // Within 2 × interval + timeout of the daemon's last word, and some
    // slack for a loaded machine.
    let bound = FAST.interval * 2 + FAST.timeout;
    assert!(took < bound + Duration::from_secs(1), "took {took:?}");
    // The next call dials again (and, the daemon being hung, its deadline
    // ends it).
    let mut req = tonic::Request::new(());
    req.set_timeout(Duration::from_millis(300));
    let mut v: VersionClient<Transport> = crate::conn::client(&t);
    assert!(v.version(req).await.is_err());
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2, "dialled again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_unanswered_by_a_hung_daemon_fails_within_the_bound() {
    // containerd answers Subscribe's headers with its first event: a daemon
    // hung before that leaves the call itself waiting, with no deadline.
    let (_dir, t, seen) = served_with(Daemon::default(), FAST);
    assert_eq!(version(&t).await.unwrap(), "test");
    seen.hang.cancel();
    let mut events: EventsClient<Transport> = crate::conn::client(&t);
    let subscribe = events.subscribe(SubscribeRequest::default());
    let status = tokio::time::timeout(Duration::from_secs(10), subscribe)
        .await
        .expect("the subscribe does not hang forever")
        .unwrap_err();
    assert!(status.message().contains("keepalive"), "{status:?}");
    assert_eq!(status_error(status).kind(), ErrorKind::Unavailable);
    // Dialled again, the hung daemon does not finish the handshake: within
    // the keepalive's timeout, that is Unavailable too.
    let subscribe = events.subscribe(SubscribeRequest::default());
    let status = tokio::time::timeout(Duration::from_secs(10), subscribe)
        .await
        .expect("the dial does not hang forever")
        .unwrap_err();
    assert!(status.message().contains("handshake"), "{status:?}");
    assert_eq!(status_error(status).kind(), ErrorKind::Unavailable);
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_at_an_address_resubscribes_when_its_connection_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctd.sock");
    let seen = Daemon {
        hold_subscriptions: true,
        ..Daemon::default()
    }
    .serve(&socket);
    let second = Duration::from_secs(1);
    let remote = crate::LinuxRemote::builder()
        .address(&socket)
        .state_dir(dir.path().join("state"))
        .keepalive(second, second)
        .build()
        .await
        .unwrap();
    let backend = Arc::new(libctd_testkit::RecordingBackend::new());
    // Made once its subscription is live (its sync event came back).
    let _client = remote.new_linux_client("ka", backend).await.unwrap();
    assert_eq!(seen.subscribes.load(Ordering::SeqCst), 1);
    // The connection stops carrying anything; a new one would work.
    seen.hang_open();
    let hung_at = tokio::time::Instant::now();
    let deadline = hung_at + Duration::from_secs(20);
    while seen.subscribes.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never resubscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Within 2 × interval + timeout, the first backoff (100 ms), a dial,
    // and slack for a loaded machine.
    let took = hung_at.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        seen.accepted.load(Ordering::SeqCst),
        2,
        "on a new connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_healthy_daemon_keeps_its_connection() {
    let (_dir, t, seen) = served_with(
        Daemon {
            hold_subscriptions: true,
            ..Daemon::default()
        },
        FAST,
    );
    let mut events: EventsClient<Transport> = crate::conn::client(&t);
    // The stream is open and the daemon sends nothing: it is probed, and
    // after two PINGs unanswered by any data, by a Version call (which
    // clears grpc-go's count of PINGs).
    let subscribe = tokio::spawn(async move {
        let mut s = events
            .subscribe(SubscribeRequest::default())
            .await?
            .into_inner();
        s.message().await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.versions.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no Version probe");
        tokio::time::sleep(FAST.interval).await;
    }
    assert!(!subscribe.is_finished(), "the stream was closed");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1, "one connection");
    assert_eq!(version(&t).await.unwrap(), "test");
    subscribe.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_not_probed() {
    let (_dir, t, seen) = served_with(Daemon::default(), FAST);
    assert_eq!(version(&t).await.unwrap(), "test");
    // Nothing open: no probe in ten intervals (a Version probe would count).
    tokio::time::sleep(FAST.interval * 10).await;
    assert_eq!(seen.versions.load(Ordering::SeqCst), 1);
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
}

/// Against a real containerd (run by hand: `LIBCTD_KEEPALIVE_SOCKET=<its
/// socket> cargo test -p libctd-linux --lib -- --ignored quiet_event`): its
/// gRPC server ends a connection that gets PINGs only (seen after 3 s at a
/// 1 s interval with 1.6.20); the Version probe keeps a quiet one open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a containerd socket in LIBCTD_KEEPALIVE_SOCKET"]
async fn a_quiet_event_stream_of_a_real_containerd_stays_open() {
    let sock = std::env::var("LIBCTD_KEEPALIVE_SOCKET").expect("LIBCTD_KEEPALIVE_SOCKET");
    let second = Duration::from_secs(1);
    let t = Transport::lazy(
        Path::new(&sock),
        Keepalive {
            interval: second,
            timeout: second,
        },
    );
    let mut events: EventsClient<Transport> = crate::conn::client(&t);
    let mut req = tonic::Request::new(SubscribeRequest {
        filters: vec!["topic==\"/libctd/none\"".into()],
    });
    req.metadata_mut()
        .insert("containerd-namespace", "keepalive".parse().unwrap());
    // containerd answers Subscribe with its first event: none comes, so
    // the call stays open as long as the connection does.
    let open = tokio::time::timeout(Duration::from_secs(12), events.subscribe(req)).await;
    assert!(open.is_err(), "the stream ended: {open:?}");
}
