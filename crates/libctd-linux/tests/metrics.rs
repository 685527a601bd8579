//! What a Linux client records through the `metrics` facade, on a real
//! containerd + runc + busybox rootfs: a lifecycle, its errors, its events,
//! each of the 18 operations and the 4 of `Images`, then a daemon death (a restart and a resubscription). Events are
//! delivered on the client's tasks and the daemon is restarted by its
//! supervisor's, so the recorder is the process's global one: this binary
//! holds this one test and an embedded daemon of its own.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::Remote;
use libctd_core::metrics::{DAEMON_RESTARTS, EVENT_RESUBSCRIPTIONS};
use libctd_testkit::RecordingBackend;
use libctd_testkit::containerd::{build_busybox_rootfs, busybox_spec};
use libctd_testkit::metrics::{
    MetricsRecorder, assert_every_operation_recorded, assert_lifecycle_recorded, series_of,
};
use libctd_testkit::namespace::NamespaceGuard;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod support;
use support::{embedded, wait_restarted};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_lifecycle_its_errors_events_and_a_daemon_restart_are_recorded() {
    libctd_testkit::containerd::require_root();
    let recorder = MetricsRecorder::new();
    recorder.install().unwrap();
    let dir = PathBuf::from(format!("/tmp/libctd-m{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let remote = embedded(&dir).build().await.unwrap();
    let rootfs = dir.join("rootfs");
    build_busybox_rootfs(&rootfs).unwrap();
    let _guard = NamespaceGuard::new(remote.socket(), "metrics");
    let backend = Arc::new(RecordingBackend::new());
    let client = remote.new_client("metrics", backend.clone()).await.unwrap();

    let spec = busybox_spec(&rootfs, &["sh", "-c", "exit 3"], false, None);
    let recorded = assert_lifecycle_recorded(&*client, &backend, &spec, &recorder, "metrics", T)
        .await
        .unwrap();
    assert_eq!(recorded.counters(DAEMON_RESTARTS), BTreeMap::new());
    assert_eq!(recorded.counters(EVENT_RESUBSCRIPTIONS), BTreeMap::new());

    // Every wrapper, on containers containerd does not have.
    assert_every_operation_recorded(&*client, &recorder).await;

    // The daemon dies: its supervisor restarts it, the client's event
    // stream comes back once.
    let old = remote.daemon_pid().unwrap();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    wait_restarted(&remote, 0, old).await;
    let resubscribed = series_of(&[("namespace=metrics", 1)]);
    let recorded = recorder
        .wait_for(T, |r| r.counters(EVENT_RESUBSCRIPTIONS) == resubscribed)
        .await
        .unwrap();
    assert_eq!(remote.restarts(), 1);
    assert_eq!(recorded.counters(DAEMON_RESTARTS), series_of(&[("", 1)]));

    drop(client);
    remote.cleanup().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
