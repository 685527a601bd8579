//! The fake client's events read as an engine reads them: from an
//! `EventStream`, typed, in order, bounded, and ended by a drop.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libctd_core::{
    Client, CreateOptions, ErrorKind, Event, EventStream, EventType, INIT_PROCESS_ID, Remote,
    Result, discard_stdio,
};
use libctd_testkit::FakeRemote;
use libctd_testkit::conformance::Program;
use libctd_testkit::fake::{ProcessScript, fake_process, fake_spec};

const T: Duration = Duration::from_secs(10);

async fn client(remote: &FakeRemote, capacity: usize) -> (Arc<dyn Client>, EventStream) {
    let (backend, events) = EventStream::channel(capacity).unwrap();
    (remote.new_client("ns", backend).await.unwrap(), events)
}

async fn run(client: &dyn Client, id: &str, program: &Program) -> u32 {
    client
        .create(id, &fake_spec(program, false), CreateOptions::default())
        .await
        .unwrap();
    client
        .start(id, None, false, discard_stdio())
        .await
        .unwrap()
}

async fn next(events: &mut EventStream) -> Event {
    tokio::time::timeout(T, events.next())
        .await
        .expect("no event in time")
        .expect("the stream ended")
}

/// The next `n` events, as (container, kind, process, exit code).
async fn take(events: &mut EventStream, n: usize) -> Vec<(String, EventType, String, u32)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let e = next(events).await;
        got.push((e.container_id, e.kind, e.info.process_id, e.info.exit_code));
    }
    got
}

/// Repeats `op` while it fails with `kind` (the fake's process has not
/// ended yet, or its exec not been cleaned up), within the deadline.
async fn retry_while<R, F, Fut>(kind: ErrorKind, mut op: F) -> Result<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R>>,
{
    let retried = async {
        loop {
            match op().await {
                Err(e) if e.kind() == kind => tokio::task::yield_now().await,
                other => return other,
            }
        }
    };
    tokio::time::timeout(T, retried)
        .await
        .unwrap_or_else(|_| panic!("still {kind} at the deadline"))
}

fn ev(id: &str, kind: EventType, process: &str, code: u32) -> (String, EventType, String, u32) {
    (id.to_owned(), kind, process.to_owned(), code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_arrives_typed_in_order_each_exit_once() {
    let remote = FakeRemote::new();
    let (c, mut events) = client(&remote, 8).await;
    let pid = run(&*c, "web", &Program::Sleep).await;
    c.exec(
        "web",
        "e1",
        &fake_process(&Program::Exit(5), false),
        false,
        discard_stdio(),
    )
    .await
    .unwrap();
    let first = take(&mut events, 5).await;
    assert_eq!(
        first,
        [
            ev("web", EventType::Create, INIT_PROCESS_ID, 0),
            ev("web", EventType::Start, INIT_PROCESS_ID, 0),
            ev("web", EventType::ExecAdded, "e1", 0),
            ev("web", EventType::ExecStarted, "e1", 0),
            ev("web", EventType::Exit, "e1", 5),
        ]
    );
    c.signal_process("web", INIT_PROCESS_ID, 9).await.unwrap();
    let exit = next(&mut events).await;
    assert_eq!((exit.kind, exit.info.exit_code), (EventType::Exit, 137));
    assert_eq!(exit.info.pid, pid);
    assert!(!exit.info.oom_killed);
    assert_eq!(c.delete_task("web").await.unwrap().exit_code, 137);
    c.delete("web").await.unwrap();
    // No second exit: once the client is gone, the stream ends with nothing more.
    drop(c);
    drop(remote);
    let rest: Vec<Event> = tokio::time::timeout(T, events.collect()).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn an_oom_kill_comes_before_its_exit() {
    let remote = FakeRemote::new();
    let (c, mut events) = client(&remote, 8).await;
    remote
        .script()
        .process("hog", INIT_PROCESS_ID, ProcessScript::new().oom());
    run(&*c, "hog", &Program::Sleep).await;
    let got = take(&mut events, 4).await;
    let kinds: Vec<EventType> = got.iter().map(|e| e.1).collect();
    assert_eq!(
        kinds,
        [
            EventType::Create,
            EventType::Start,
            EventType::Oom,
            EventType::Exit
        ]
    );
    assert_eq!(got[3].3, 137);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_holds_events_not_the_clients_operations() {
    let remote = FakeRemote::new();
    let (c, mut events) = client(&remote, 1).await;
    // Nobody reads: after the first event every delivery waits.
    let ids = ["a", "b", "c", "d"];
    for (code, id) in (1u8..).zip(ids) {
        run(&*c, id, &Program::Exit(code)).await;
        let exit = retry_while(ErrorKind::FailedPrecondition, || c.delete_task(id))
            .await
            .unwrap();
        assert_eq!(exit.exit_code, u32::from(code));
        c.delete(id).await.unwrap();
    }
    assert_eq!(events.len(), 1, "the buffer holds its capacity, no more");
    // Now read: every event is there, each container's in order.
    let got = take(&mut events, 12).await;
    for (code, id) in (1u32..).zip(ids) {
        let of_id: Vec<_> = got.iter().filter(|e| e.0 == id).cloned().collect();
        assert_eq!(
            of_id,
            [
                ev(id, EventType::Create, INIT_PROCESS_ID, 0),
                ev(id, EventType::Start, INIT_PROCESS_ID, 0),
                ev(id, EventType::Exit, INIT_PROCESS_ID, code),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_leaves_the_client_working() {
    let remote = FakeRemote::new();
    let (c, events) = client(&remote, 1).await;
    run(&*c, "web", &Program::Sleep).await;
    drop(events);
    // An exec's clean-up follows its exit's delivery, which now fails at
    // once: the id is free again soon, not held forever.
    let process = fake_process(&Program::Exit(0), false);
    c.exec("web", "e", &process, false, discard_stdio())
        .await
        .unwrap();
    retry_while(ErrorKind::AlreadyExists, || {
        c.exec("web", "e", &process, false, discard_stdio())
    })
    .await
    .unwrap();
    c.signal_process("web", INIT_PROCESS_ID, 9).await.unwrap();
    let exit = retry_while(ErrorKind::FailedPrecondition, || c.delete_task("web"))
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
}
