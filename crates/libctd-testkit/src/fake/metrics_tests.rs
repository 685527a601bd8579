//! What the fake records (feature `metrics`), each test with a recorder of
//! its own on its current-thread runtime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::metrics::{EVENT_QUEUE_DEPTH, EVENTS_DELIVERED, OPERATION_ERRORS, OPERATIONS};
use libctd_core::{CreateOptions, ErrorKind, Remote, discard_stdio};

use super::{FakeRemote, Op, fake_spec};
use crate::RecordingBackend;
use crate::conformance::Program;
use crate::metrics::{
    MetricsRecorder, assert_every_operation_recorded, assert_lifecycle_recorded, series_of,
};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_lifecycle_and_its_errors_are_counted_per_operation_and_kind() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let remote = FakeRemote::new();
    let events = Arc::new(RecordingBackend::new());
    let client = remote.new_client("metrics", events.clone()).await.unwrap();
    let spec = fake_spec(&Program::Exit(3), false);
    assert_lifecycle_recorded(&*client, &events, &spec, &recorder, "metrics", WAIT)
        .await
        .unwrap();

    // A daemon's fault is counted by its kind too.
    remote
        .script()
        .fail(Some(Op::Version), None, ErrorKind::Unavailable, "down");
    assert!(client.version().await.is_err());
    let recorded = recorder.read();
    assert_eq!(recorded.counters(OPERATIONS)["operation=version"], 1);
    assert_eq!(
        recorded.counters(OPERATION_ERRORS)["operation=version,kind=unavailable"],
        1
    );
}

#[tokio::test]
async fn events_are_counted_by_type_and_the_queue_holds_the_unhandled_ones() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let remote = FakeRemote::new();
    let events = Arc::new(RecordingBackend::new());
    let client = remote.new_client("metrics", events.clone()).await.unwrap();
    let hold = events.hold("job");
    let spec = fake_spec(&Program::Exit(0), false);
    client
        .create("job", &spec, CreateOptions::default())
        .await
        .unwrap();
    client
        .start("job", None, false, discard_stdio())
        .await
        .unwrap();
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
    let delivered = series_of(&[("event=create", 1), ("event=exit", 1), ("event=start", 1)]);
    let done = recorder
        .wait_for(WAIT, |r| r.counters(EVENTS_DELIVERED) == delivered)
        .await
        .unwrap();
    assert_eq!(
        done.gauges(EVENT_QUEUE_DEPTH),
        series_of(&[("namespace=metrics", 0.0)])
    );
}

#[tokio::test]
async fn every_operation_is_recorded_under_its_name() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let remote = FakeRemote::new();
    let client = remote
        .new_client("metrics", Arc::new(RecordingBackend::new()))
        .await
        .unwrap();
    assert_every_operation_recorded(&*client, &recorder).await;
}

#[tokio::test]
async fn image_operations_are_recorded_once_each() {
    let recorder = MetricsRecorder::new();
    let _local = recorder.local();
    let remote = FakeRemote::new();
    let client = remote
        .new_client("metrics", Arc::new(RecordingBackend::new()))
        .await
        .unwrap();
    let images = client.images().unwrap();
    let name = "example.com/metrics/image:1";
    let archive = crate::image::ImageArchive::new(name)
        .layer(crate::image::Layer::new().file("hello", b"hi", 0o644))
        .oci()
        .unwrap();
    images
        .import(Box::pin(std::io::Cursor::new(archive)), Default::default())
        .await
        .unwrap();
    images.image(name).await.unwrap();
    assert_eq!(images.list_images().await.unwrap().len(), 1);
    images.remove_image(name).await.unwrap();
    assert_eq!(
        images.remove_image(name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let recorded = recorder.read();
    assert_eq!(
        recorded.counters(OPERATIONS),
        series_of(&[
            ("operation=image", 1),
            ("operation=import", 1),
            ("operation=list_images", 1),
            ("operation=remove_image", 2),
        ])
    );
    assert_eq!(
        recorded.counters(OPERATION_ERRORS),
        series_of(&[("operation=remove_image,kind=not found", 1)])
    );
}
