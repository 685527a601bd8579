//! What the transport refuses and respects: server push, header lists,
//! the daemon's stream limit, flow control, message sizes, GOAWAY.

use super::*;
use crate::convert::status_error;
use libctd_core::ErrorKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_push_is_refused() {
    let (_dir, t, seen) = served(Daemon {
        push: true,
        ..Daemon::default()
    });
    assert_eq!(version(&t).await.unwrap(), "test");
    assert!(seen.push_refused.load(Ordering::SeqCst), "push was allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_list_over_16_kib_is_refused() {
    let (_dir, t, _) = served(Daemon {
        header_len: 8 * 1024,
        ..Daemon::default()
    });
    assert_eq!(version(&t).await.unwrap(), "test");
    let (_dir, t, _) = served(Daemon {
        header_len: 20 * 1024,
        ..Daemon::default()
    });
    let status = version(&t).await.unwrap_err();
    assert!(crate::convert::made_by_transport(&status), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_stream_limit_wait_their_turn() {
    let (_dir, t, seen) = served(Daemon {
        max_streams: Some(2),
        answer_after: Duration::from_millis(20),
        ..Daemon::default()
    });
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { version(&t).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), "test");
    }
    assert_eq!(seen.versions.load(Ordering::SeqCst), 24);
    assert_eq!(seen.max_open.load(Ordering::SeqCst), 2, "at most 2 at once");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1, "one connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_at_the_stream_limit_go_in_the_order_they_came() {
    let (_dir, t, seen) = served(Daemon {
        max_streams: Some(1),
        hold_subscriptions: true,
        ..Daemon::default()
    });
    // The only stream the daemon allows, held open.
    let events = subscribe(&t).await;
    let open = || t.inner.open().map_or(0, |(_, link)| link.open_streams());
    let mut calls = Vec::new();
    for seq in 0..8 {
        let t2 = t.clone();
        calls.push(tokio::spawn(async move {
            let mut req = tonic::Request::new(());
            req.metadata_mut().insert("x-seq", seq.into());
            req.set_timeout(Duration::from_secs(10));
            let mut v: VersionClient<Transport> = crate::conn::client(&t2);
            v.version(req).await
        }));
        // Queued before the next one starts.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while open() < seq + 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "call {seq} not queued"
            );
            tokio::task::yield_now().await;
        }
    }
    drop(events);
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(*seen.order.lock().unwrap(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_at_the_stream_limit_is_bounded_by_its_deadline() {
    let (_dir, t, seen) = served(Daemon {
        max_streams: Some(1),
        hold_subscriptions: true,
        ..Daemon::default()
    });
    // The only stream the daemon allows, held open.
    let events = subscribe(&t).await;
    let mut req = tonic::Request::new(());
    req.set_timeout(Duration::from_millis(200));
    let mut v: VersionClient<Transport> = crate::conn::client(&t);
    let status = tokio::time::timeout(Duration::from_secs(10), v.version(req))
        .await
        .expect("the deadline bounds the wait")
        .unwrap_err();
    assert_eq!(
        status_error(status).kind(),
        ErrorKind::DeadlineExceeded,
        "a local deadline"
    );
    // Once the stream closes, the next call goes through, and the one that
    // gave up never reached the daemon.
    drop(events);
    assert_eq!(version(&t).await.unwrap(), "test");
    assert_eq!(seen.versions.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_daemons_window_goes_through() {
    // h2's default window, which the daemon keeps, is 64 KiB: the message
    // leaves as the daemon gives capacity back (also past h2's 400 KiB
    // send buffer).
    let (_dir, t, seen) = served(Daemon::default());
    let mut events: EventsClient<Transport> = crate::conn::client(&t);
    let sizes = [300 * 1024, 5 * 1024 * 1024];
    for size in sizes {
        let mut req = tonic::Request::new(PublishRequest {
            topic: "/big".into(),
            event: Some(prost_types::Any {
                type_url: "t".into(),
                value: vec![1; size],
            }),
        });
        req.set_timeout(Duration::from_secs(10));
        events.publish(req).await.unwrap();
    }
    assert_eq!(*seen.published.lock().unwrap(), sizes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_of_5_mib_decodes() {
    let (_dir, t, _) = served(Daemon {
        version_len: 5 * 1024 * 1024,
        ..Daemon::default()
    });
    assert_eq!(version(&t).await.unwrap().len(), 5 * 1024 * 1024);
    // tonic's own limit (4 MiB) would have refused it.
    let status = VersionClient::new(t).version(()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_fails_the_open_stream_as_unavailable_and_the_next_call_dials() {
    let (_dir, t, seen) = served(Daemon {
        events: 1,
        hold_subscriptions: true,
        ..Daemon::default()
    });
    let mut events = subscribe(&t).await;
    assert!(events.message().await.unwrap().is_some(), "the first event");
    seen.goaway();
    let end = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("the stream ends");
    if let Err(status) = end {
        let e = status_error(status);
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
    assert_eq!(version(&t).await.unwrap(), "test");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2, "dialled again");
}
