//! Calls over the transport: streams, deadlines, redials.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_the_flow_control_windows_keeps_flowing() {
    // 16 MiB: past the stream's 2 MiB and the connection's 5 MiB window.
    let (_dir, t, _) = served(Daemon {
        events: 2000,
        ..Daemon::default()
    });
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
    let (_dir, t, seen) = served(Daemon::default());
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
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1, "one connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_dialled_again() {
    let (_dir, t, seen) = served(Daemon {
        one_call_per_connection: true,
        ..Daemon::default()
    });
    assert_eq!(version(&t).await.unwrap(), "test");
    // The daemon closed it: once the client has seen that, a call dials.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t.inner.open().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the close is seen");
        tokio::task::yield_now().await;
    }
    assert_eq!(version(&t).await.unwrap(), "test");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2, "dialled again");
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
    let t = Transport::lazy(&dir.path().join("no.sock"), Keepalive::default());
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
        Transport::lazy(&path, Keepalive::default()),
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
