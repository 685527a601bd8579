//! What a failed test leaves in its namespace is removed: a
//! [`NamespaceGuard`] empties the namespace when it is dropped (as when a
//! panic unwinds through the test) and when it is created.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use libctd_core::{Client, ErrorKind, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::RecordingBackend;
use libctd_testkit::containerd::{Containerd, SLEEP_ARGS};
use libctd_testkit::namespace::NamespaceGuard;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_guard_kills_and_removes_what_its_namespace_holds() {
    let ctd = Containerd::shared().await.unwrap();
    let backend = Arc::new(RecordingBackend::new());
    let client = ctd.client(backend.clone()).await.unwrap();
    let socket = ctd.remote().socket();
    let guard = NamespaceGuard::new(socket.clone(), client.namespace());
    assert_eq!(guard.namespace(), client.namespace());
    for id in ["left-running", "left-created"] {
        client
            .create(id, &ctd.spec(SLEEP_ARGS, false), Default::default())
            .await
            .unwrap();
    }
    client
        .start("left-running", None, false, discard_stdio())
        .await
        .unwrap();

    // The test "fails" here: its guard unwinds with it.
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("a failing test");
    }));
    assert!(unwound.is_err());

    // The running task was killed (its exit is seen) and everything removed.
    let exit = backend
        .next_process_event("left-running", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    for id in ["left-running", "left-created"] {
        let err = client.status(id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{id}: {err}");
    }
    // A new guard on the same namespace finds nothing left to remove.
    let again = NamespaceGuard::new(socket, client.namespace());
    assert_eq!(again.clean(), 0);
}
