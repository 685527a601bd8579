//! The steps of a container's life that the Windows tests over the
//! simulation and over the double share.

// Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::time::Duration;

use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{Client, CreateOptions, EventInfo, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::backend::RecordingBackend;

/// How long a test waits for an event.
pub(crate) const T: Duration = Duration::from_secs(10);

/// Creates and starts `id` running `spec`; its pid.
pub(crate) async fn run(client: &dyn Client, id: &str, spec: &Spec) -> u32 {
    client
        .create(id, spec, CreateOptions::default())
        .await
        .unwrap();
    client
        .start(id, None, false, discard_stdio())
        .await
        .unwrap()
}

/// The exit event of `id`'s init process.
pub(crate) async fn exit(backend: &RecordingBackend, id: &str) -> EventInfo {
    backend
        .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap()
}

/// Deletes `id`'s task, then the container.
pub(crate) async fn remove(client: &dyn Client, id: &str) {
    client.delete_task(id).await.unwrap();
    client.delete(id).await.unwrap();
}

/// A spec's JSON: `script` in a container of two layers.
pub(crate) fn spec_json(script: &str, extra_windows: &str) -> serde_json::Value {
    let args: Vec<&str> = script.split(' ').collect();
    let windows: serde_json::Value = serde_json::from_str(&format!(
        r#"{{"layerFolders":["C:\\layers\\base","C:\\layers\\scratch"]{extra_windows}}}"#
    ))
    .unwrap();
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": args, "cwd": "C:\\", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "\\\\?\\Volume{0b8e5fd4-1111}\\"},
        "windows": windows,
    })
}

/// A process-isolated container running `script` (the doubles' language).
pub(crate) fn spec(script: &str) -> Spec {
    serde_json::from_value(spec_json(script, "")).unwrap()
}

/// A Hyper-V isolated container running `script`.
pub(crate) fn hyperv_spec(script: &str) -> Spec {
    // The utility VM comes from the first layer holding one (see `Env::run`).
    let mut v = spec_json(script, r#","hyperv":{}"#);
    v["root"]["path"] = "".into();
    serde_json::from_value(v).unwrap()
}

/// An exec running `script`.
pub(crate) fn process(script: &str) -> Process {
    let args: Vec<&str> = script.split(' ').collect();
    serde_json::from_value(
        serde_json::json!({"args": args, "cwd": "C:\\", "user": {"uid": 0, "gid": 0}}),
    )
    .unwrap()
}

/// What a container `id` whose compute system died (with exec `e1`
/// running, `started` when it died) must show: exits of both with
/// 4294967295 and the system's error, soon; the init gone (SIGKILL is
/// NotFound); delete_task with 4294967295; delete.
pub(crate) async fn assert_died(
    client: &dyn Client,
    backend: &RecordingBackend,
    id: &str,
    started: std::time::Instant,
) {
    let init = exit(backend, id).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(init.exit_code, u32::MAX);
    let text = init.error.expect("the system's error").to_string();
    assert!(
        text.contains("The compute system exited unexpectedly. (0xc0370106)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("container {id} encountered an error")),
        "{text}"
    );
    let exec = backend
        .next_process_event(id, "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exec.exit_code, u32::MAX);
    assert!(exec.error.is_some());
    let err = client
        .signal_process(id, INIT_PROCESS_ID, 9)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        libctd_core::ErrorKind::NotFound,
        "{}",
        err.report()
    );
    assert_eq!(client.delete_task(id).await.unwrap().exit_code, u32::MAX);
    client.delete(id).await.unwrap();
}
