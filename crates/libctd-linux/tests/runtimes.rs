//! Runtimes other than runc, run by containerd's runc shim (selected with
//! `RuncOptions`): the conformance suite on gVisor's `runsc`, with what it
//! does differently asserted; runtimes that refuse the host, refuse to
//! start, or do not exist fail with a typed error and leave nothing.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::{Client, CreateOptions, ErrorKind, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_linux::{LinuxClient, RuncOptions};
use libctd_testkit::conformance::{Capabilities, Support};
use libctd_testkit::containerd::{self, Containerd, SLEEP_ARGS};
use libctd_testkit::{RecordingBackend, capture_stdio};
use support::assert_nothing_left;
use support::fixture::LinuxFixture;

const T: Duration = Duration::from_secs(30);

/// gVisor as the shim's binary; it needs `--network=none` here, the
/// containers having no network namespace of their own.
fn runsc() -> RuncOptions {
    RuncOptions::binary("runsc").with_runtime_args(["--network=none"])
}

/// What runsc (Debian's 20221219 release) does differently from runc,
/// each asserted by the suite: `update` is not one of its commands, and it
/// lists the pids its own kernel gives (the init is 1), and libctd refuses
/// its checkpoints (`checkpoint --leave-running` never returns). It pauses,
/// resumes, and reports OOM kills and stats as runc does.
fn runsc_capabilities() -> Capabilities {
    let mut caps = Capabilities::new();
    caps.update_resources = Support::not_implemented("runsc");
    caps.checkpoint = Support::not_implemented("runsc");
    caps.sandbox_pids = true;
    caps
}

async fn fixture() -> LinuxFixture {
    let mut fixture = LinuxFixture::runc().await;
    fixture.options = CreateOptions::new().with_runtime_options(runsc());
    fixture.capabilities = runsc_capabilities();
    fixture
}

/// The conformance suite with every container on runsc, one case after
/// another: runsc names its sandbox's control socket after the container
/// id alone, and the cases use the same ids, each in its own namespace
/// (see `runsc_ids_are_unique_on_the_host`).
#[tokio::test(flavor = "multi_thread")]
async fn the_conformance_suite_passes_on_runsc() {
    for case in libctd_testkit::conformance::CASES {
        libctd_testkit::conformance::run_case(&fixture, case.name).await;
    }
}

async fn setup() -> (&'static Containerd, Arc<LinuxClient>, Arc<RecordingBackend>) {
    let ctd = Containerd::shared().await.expect("containerd harness");
    let backend = Arc::new(RecordingBackend::new());
    let client = ctd.client(backend.clone()).await.expect("client");
    (ctd, client, backend)
}

/// Starts `id`, which must fail with `kind` saying `says`, leaving no task;
/// then deletes the container.
async fn start_is_refused(client: &LinuxClient, id: &str, kind: ErrorKind, says: &str) {
    let e = client
        .start(id, None, false, discard_stdio())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.to_string().contains(says), "{e}");
    let e = client.status(id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "no task is left: {e}");
    client.delete(id).await.unwrap();
}

/// Whether this host's cgroups are v1 with a v2 hierarchy beside them.
fn hybrid_cgroups() -> bool {
    Path::new("/sys/fs/cgroup/unified").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[tokio::test(flavor = "multi_thread")]
async fn runsc_runs_the_container_in_gvisors_kernel() {
    // The suite passing proves nothing if runc ran it: gVisor's kernel
    // says a version of its own, not the host's.
    let (ctd, client, backend) = setup().await;
    let spec = ctd.spec(&["uname", "-r"], false);
    let options = CreateOptions::new().with_runtime_options(runsc());
    client.create("rt-uname", &spec, options).await.unwrap();
    let (cb, out) = capture_stdio();
    client.start("rt-uname", None, false, cb).await.unwrap();
    let exit = backend
        .next_process_event("rt-uname", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    let guest = String::from_utf8(out.wait_stdout(T).await.unwrap()).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(guest.trim(), "4.4.0", "gVisor's kernel");
    assert_ne!(guest.trim(), host.trim());
    client.delete_task("rt-uname").await.unwrap();
    client.delete("rt-uname").await.unwrap();
    assert_nothing_left(ctd.remote(), client.namespace(), &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runsc_start_it_refuses_leaves_nothing_and_the_id_can_start_again() {
    // Without --network=none runsc creates its sandbox, then refuses to
    // start in the host's network namespace: the task is left created, and
    // runsc will not kill a created container.
    let (ctd, client, backend) = setup().await;
    let spec = ctd.spec(SLEEP_ARGS, false);
    let cgroup = support::cgroup_of(&spec);
    let bare = CreateOptions::new().with_runtime_options(RuncOptions::binary("runsc"));
    client.create("rt-refused", &spec, bare).await.unwrap();
    start_is_refused(&client, "rt-refused", ErrorKind::System, "network").await;
    assert_nothing_left(
        ctd.remote(),
        client.namespace(),
        std::slice::from_ref(&cgroup),
    )
    .await;

    // The id is free: created again with the flag, it runs.
    let options = CreateOptions::new().with_runtime_options(runsc());
    client.create("rt-refused", &spec, options).await.unwrap();
    client
        .start("rt-refused", None, false, discard_stdio())
        .await
        .unwrap();
    // The scan below sees gVisor's processes while they run.
    let root = ctd.state_dir().join("runc").join(client.namespace());
    let running = support::runtime_processes(&root);
    for name in ["runsc-sandbox", "runsc-gofer"] {
        assert!(
            running.iter().any(|(_, p)| p == name),
            "{name} not in {running:?}"
        );
    }
    containerd::kill_and_remove(client.as_ref(), &backend, "rt-refused", T)
        .await
        .unwrap();
    assert_nothing_left(ctd.remote(), client.namespace(), &[cgroup]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_that_refuses_the_host_fails_start_and_leaves_nothing() {
    // Debian's crun 1.8 refuses a cgroup v1 host with a v2 hierarchy
    // mounted beside ("hybrid"); elsewhere it runs.
    let (ctd, client, backend) = setup().await;
    let spec = ctd.spec(SLEEP_ARGS, false);
    let cgroup = support::cgroup_of(&spec);
    let crun = CreateOptions::new().with_runtime_options(RuncOptions::binary("crun"));
    client.create("rt-crun", &spec, crun).await.unwrap();
    if hybrid_cgroups() {
        start_is_refused(&client, "rt-crun", ErrorKind::System, "hybrid").await;
    } else {
        client
            .start("rt-crun", None, false, discard_stdio())
            .await
            .unwrap();
        containerd::kill_and_remove(client.as_ref(), &backend, "rt-crun", T)
            .await
            .unwrap();
    }
    assert_nothing_left(ctd.remote(), client.namespace(), &[cgroup]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_binary_that_does_not_exist_is_invalid_argument() {
    let (ctd, client, _backend) = setup().await;
    let spec = ctd.spec(SLEEP_ARGS, false);
    let cgroup = support::cgroup_of(&spec);
    // A path is checked at create.
    for options in [
        RuncOptions::binary("/nonexistent/runsc"),
        RuncOptions::binary("/nonexistent/runsc").with_runtime_args(["--network=none"]),
        // With flags, a name is looked up at create too (the script
        // libctd writes needs its path).
        RuncOptions::binary("no-such-runtime").with_runtime_args(["--network=none"]),
        RuncOptions::binary("bin/runc"),
    ] {
        let e = client
            .create(
                "rt-missing",
                &spec,
                CreateOptions::new().with_runtime_options(options),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("runtime binary"), "{e}");
        let e = client.status("rt-missing").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    // A name alone is the shim's to find, in its PATH: start fails.
    let options = CreateOptions::new().with_runtime_options(RuncOptions::binary("no-such-runtime"));
    client.create("rt-missing", &spec, options).await.unwrap();
    start_is_refused(
        &client,
        "rt-missing",
        ErrorKind::InvalidArgument,
        "no-such-runtime",
    )
    .await;
    assert_nothing_left(ctd.remote(), client.namespace(), &[cgroup]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runsc_ids_are_unique_on_the_host() {
    // Two namespaces, one id: runsc's second sandbox cannot take the
    // control socket named after the id, and its create fails with
    // nothing left; once the first is gone, the id runs again.
    let (ctd, first, first_events) = setup().await;
    let (_, second, second_events) = setup().await;
    let spec = ctd.spec(SLEEP_ARGS, false);
    let id = "rt-same-id";
    let runsc = || CreateOptions::new().with_runtime_options(runsc());
    first.create(id, &spec, runsc()).await.unwrap();
    first.start(id, None, false, discard_stdio()).await.unwrap();
    second.create(id, &spec, runsc()).await.unwrap();
    start_is_refused(&second, id, ErrorKind::System, "address already in use").await;
    assert_nothing_left(ctd.remote(), second.namespace(), &[]).await;
    containerd::kill_and_remove(first.as_ref(), &first_events, id, T)
        .await
        .unwrap();
    assert_nothing_left(ctd.remote(), first.namespace(), &[]).await;
    second.create(id, &spec, runsc()).await.unwrap();
    second
        .start(id, None, false, discard_stdio())
        .await
        .unwrap();
    containerd::kill_and_remove(second.as_ref(), &second_events, id, T)
        .await
        .unwrap();
    assert_nothing_left(ctd.remote(), second.namespace(), &[]).await;
}
