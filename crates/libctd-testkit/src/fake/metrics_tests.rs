//! What the fake records (feature `metrics`), each test with a recorder of
//! its own on its current-thread runtime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::metrics::{
    EVENT_QUEUE_DEPTH, EVENTS_DELIVERED, OPERATION_DURATION, OPERATION_ERRORS, OPERATIONS,
};
use libctd_core::{Client, CreateOptions, ErrorKind, EventType, Remote, discard_stdio};

use super::{FakeRemote, Op, fake_spec};
use crate::RecordingBackend;
use crate::conformance::Program;
use crate::metrics::{MetricsRecorder, Recorded};

const WAIT: Duration = Duration::from_secs(5);

fn map<V: Copy>(entries: &[(&str, V)]) -> BTreeMap<String, V> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn samples(recorded: &Recorded, name: &str) -> BTreeMap<String, u64> {
    recorded
        .histograms(name)
        .into_iter()
        .map(|(labels, v)| (labels, v.len() as u64))
        .collect()
}

/// A client of namespace `metrics`, and its container `job` created and
/// started with `program`, once `before_start` ran.
async fn start_job(
    program: Program,
    before_start: impl FnOnce(&RecordingBackend),
) -> (FakeRemote, Arc<RecordingBackend>, Arc<dyn Client>) {
    let remote = FakeRemote::new();
    let events = Arc::new(RecordingBackend::new());
    let client = remote.new_client("metrics", events.clone()).await.unwrap();
    let spec = fake_spec(&program, false);
    before_start(&events);
    client
        .create("job", &spec, CreateOptions::default())
        .await
        .unwrap();
    client
        .start("job", None, false, discard_stdio())
        .await
        .unwrap();
    (remote, events, client)
}

#[tokio::test]
async fn a_lifecycle_and_its_errors_are_counted_per_operation_and_kind() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let (remote, events, client) = start_job(Program::Exit(3), |_| {}).await;
    events
        .next_event("job", EventType::Exit, WAIT)
        .await
        .unwrap();
    client.delete_task("job").await.unwrap();
    client.delete("job").await.unwrap();
    // Errors: an unknown container, bad input, a daemon fault.
    let gone = client.start("job", None, false, discard_stdio()).await;
    assert_eq!(gone.unwrap_err().kind(), ErrorKind::NotFound);
    let spec = fake_spec(&Program::Exit(3), false);
    let bad = client.create("a/b", &spec, CreateOptions::default()).await;
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidArgument);
    remote
        .script()
        .fail(Some(Op::Version), None, ErrorKind::Unavailable, "down");
    assert!(client.version().await.is_err());

    let recorded = recorder.read();
    let calls = map(&[
        ("operation=create", 2),
        ("operation=delete", 1),
        ("operation=delete_task", 1),
        ("operation=start", 2),
        ("operation=version", 1),
    ]);
    assert_eq!(recorded.counters(OPERATIONS), calls);
    assert_eq!(
        recorded.counters(OPERATION_ERRORS),
        map(&[
            ("operation=create,kind=invalid argument", 1),
            ("operation=start,kind=not found", 1),
            ("operation=version,kind=unavailable", 1),
        ])
    );
    // A latency per call, failed ones included.
    assert_eq!(samples(&recorded, OPERATION_DURATION), calls);
}

#[tokio::test]
async fn events_are_counted_by_type_and_the_queue_holds_the_unhandled_ones() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let mut hold = None;
    let (_remote, events, _client) =
        start_job(Program::Exit(0), |events| hold = Some(events.hold("job"))).await;
    events.wait_blocked("job", WAIT).await.unwrap();
    // create is in the held handler; start and exit wait behind it.
    let held = recorder
        .wait_for(WAIT, |r| {
            r.gauges(EVENT_QUEUE_DEPTH).get("namespace=metrics") == Some(&3.0)
        })
        .await
        .unwrap();
    assert_eq!(held.counters(EVENTS_DELIVERED), BTreeMap::new());

    drop(hold);
    let delivered = map(&[("event=create", 1), ("event=exit", 1), ("event=start", 1)]);
    let done = recorder
        .wait_for(WAIT, |r| r.counters(EVENTS_DELIVERED) == delivered)
        .await
        .unwrap();
    assert_eq!(
        done.gauges(EVENT_QUEUE_DEPTH),
        map(&[("namespace=metrics", 0.0)])
    );
}
