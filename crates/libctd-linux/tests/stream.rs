//! A container's events on a real containerd + runc + busybox rootfs, read
//! from an `EventStream` instead of a `Backend` (the test binary's embedded
//! daemon, a namespace of its own).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use libctd_core::{Client, Event, EventStream, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::containerd::{Containerd, SLEEP_ARGS, busybox_process};

const T: Duration = Duration::from_secs(30);

async fn next(events: &mut EventStream) -> Event {
    tokio::time::timeout(T, events.recv())
        .await
        .expect("no event in time")
        .expect("the stream ended")
}

#[tokio::test(flavor = "multi_thread")]
async fn create_start_exec_and_exit_arrive_through_the_stream() {
    let ctd = Containerd::shared().await.expect("containerd harness");
    // Capacity 1: every delivery but one waits for this reader.
    let (backend, mut events) = EventStream::channel(1).unwrap();
    let client = ctd.client(backend).await.expect("client");
    let spec = ctd.spec(SLEEP_ARGS, false);
    client
        .create("s1", &spec, Default::default())
        .await
        .unwrap();
    let pid = client
        .start("s1", None, false, discard_stdio())
        .await
        .unwrap();
    let exec = busybox_process(&["sh", "-c", "exit 5"], false);
    client
        .exec("s1", "e1", &exec, false, discard_stdio())
        .await
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..5 {
        let e = next(&mut events).await;
        assert_eq!(e.container_id, "s1");
        got.push((e.kind, e.info.process_id, e.info.exit_code));
    }
    assert_eq!(
        got,
        [
            (EventType::Create, INIT_PROCESS_ID.to_owned(), 0),
            (EventType::Start, INIT_PROCESS_ID.to_owned(), 0),
            (EventType::ExecAdded, "e1".to_owned(), 0),
            (EventType::ExecStarted, "e1".to_owned(), 0),
            (EventType::Exit, "e1".to_owned(), 5),
        ]
    );

    client
        .signal_process("s1", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let exit = next(&mut events).await;
    assert_eq!(
        (
            exit.kind,
            exit.info.process_id.as_str(),
            exit.info.exit_code
        ),
        (EventType::Exit, INIT_PROCESS_ID, 137)
    );
    assert_eq!(exit.info.pid, pid);
    assert_eq!(client.delete_task("s1").await.unwrap().exit_code, 137);
    client.delete("s1").await.unwrap();

    // The client gone, the stream ends, with no second exit before its end.
    drop(client);
    let drain = async {
        let mut rest = Vec::new();
        while let Some(e) = events.recv().await {
            rest.push(e);
        }
        rest
    };
    let rest: Vec<Event> = tokio::time::timeout(T, drain)
        .await
        .expect("the stream did not end with its client");
    assert!(rest.is_empty(), "{rest:?}");
}
