//! Direct tests of the fake's scripting, options and remote, and of the
//! recording backend through the fake's event queue.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use libctd_core::{
    Client, CreateOptions, ErrorKind, EventType, INIT_PROCESS_ID, Remote, Result, Status, Version,
    discard_stdio,
};
use libctd_testkit::conformance::Program;
use libctd_testkit::fake::{Op, ProcessScript, fake_process, fake_spec, output_pattern};
use libctd_testkit::{FakeRemote, RecordingBackend, capture_stdio};

const T: Duration = Duration::from_secs(10);

async fn client(remote: &FakeRemote, ns: &str) -> (Arc<dyn Client>, Arc<RecordingBackend>) {
    let backend = Arc::new(RecordingBackend::new());
    let client = remote.new_client(ns, backend.clone()).await.unwrap();
    (client, backend)
}

async fn run(client: &dyn Client, id: &str, program: &Program) -> Result<u32> {
    client
        .create(id, &fake_spec(program, false), CreateOptions::default())
        .await?;
    client.start(id, None, false, discard_stdio()).await
}

#[tokio::test]
async fn injected_fault_reaches_the_caller_with_its_kind() {
    let remote = FakeRemote::new();
    let (c, _) = client(&remote, "ns").await;
    remote.script().fail(
        Some(Op::Start),
        Some("victim"),
        ErrorKind::Unavailable,
        "shim went away",
    );
    let err = run(&*c, "victim", &Program::Exit(0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.operation(), Some("start"));
    assert_eq!(err.container_id(), Some("victim"));
    assert!(err.to_string().contains("shim went away"), "{err}");
    // Other containers are not affected.
    run(&*c, "bystander", &Program::Exit(0)).await.unwrap();
    // Until cleared, the fault stays; then start works.
    let again = c.start("victim", None, false, discard_stdio()).await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Unavailable);
    remote.script().clear();
    c.start("victim", None, false, discard_stdio())
        .await
        .unwrap();
}

#[tokio::test]
async fn fault_on_every_operation_and_limited_times() {
    let remote = FakeRemote::new();
    let (c, _) = client(&remote, "ns").await;
    remote
        .script()
        .fail_times(None, None, ErrorKind::PermissionDenied, "nope", 2);
    assert_eq!(
        c.version().await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        c.status("x").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // Used up: the real answer comes back.
    assert_eq!(c.status("x").await.unwrap_err().kind(), ErrorKind::NotFound);
    // Ids are still validated before faults.
    remote
        .script()
        .fail(Some(Op::Status), None, ErrorKind::System, "x");
    assert_eq!(
        c.status("../x").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[tokio::test]
async fn a_cancelled_delayed_start_changes_nothing() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    c.create(
        "slow",
        &fake_spec(&Program::Exit(4), false),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    remote
        .script()
        .delay(Some(Op::Start), Some("slow"), Duration::from_secs(3600));
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        c.start("slow", None, false, discard_stdio()),
    )
    .await;
    assert!(cancelled.is_err(), "the delayed start finished");
    assert_eq!(
        c.status("slow").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(backend.events_of("slow").is_empty());
    remote.script().clear();
    c.start("slow", None, false, discard_stdio()).await.unwrap();
    let exit = backend
        .next_event("slow", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 4);
}

#[tokio::test]
async fn process_script_sets_exit_code_stdout_and_oom() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    remote.script().process(
        "scripted",
        INIT_PROCESS_ID,
        ProcessScript::new()
            .exit_code(42)
            .stdout("scripted output\n")
            .run_for(Duration::from_millis(5)),
    );
    c.create(
        "scripted",
        &fake_spec(&Program::Print("own\n".into()), false),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    let (cb, stdio) = capture_stdio();
    c.start("scripted", None, false, cb).await.unwrap();
    let out = stdio.wait_stdout(T).await.unwrap();
    assert_eq!(out, b"scripted output\nown\n");
    let exit = backend
        .next_event("scripted", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 42);

    remote
        .script()
        .process("hungry", INIT_PROCESS_ID, ProcessScript::new().oom());
    run(&*c, "hungry", &Program::Sleep).await.unwrap();
    let oom = backend
        .next_event("hungry", EventType::Oom, T)
        .await
        .unwrap();
    assert!(oom.oom_killed);
    let exit = backend
        .next_event("hungry", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!((exit.exit_code, exit.oom_killed), (137, true));
}

#[tokio::test]
async fn oom_flag_clears_when_the_container_starts_again() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    run(&*c, "c", &Program::Oom).await.unwrap();
    assert!(
        backend
            .next_event("c", EventType::Exit, T)
            .await
            .unwrap()
            .oom_killed
    );
    backend.next_event("c", EventType::Start, T).await.unwrap();
    c.delete_task("c").await.unwrap();
    c.start("c", None, false, discard_stdio()).await.unwrap();
    let second = backend.next_event("c", EventType::Start, T).await.unwrap();
    assert!(!second.oom_killed, "oom_killed leaked into the new start");
}

#[tokio::test]
async fn exit_process_ends_a_process_with_a_code() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "engine").await;
    run(&*c, "web", &Program::Sleep).await.unwrap();
    remote
        .exit_process("engine", "web", INIT_PROCESS_ID, 3)
        .unwrap();
    let exit = backend.next_event("web", EventType::Exit, T).await.unwrap();
    assert_eq!(exit.exit_code, 3);
    let err = remote
        .exit_process("engine", "web", INIT_PROCESS_ID, 3)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        remote
            .exit_process("nowhere", "web", INIT_PROCESS_ID, 1)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn the_builder_configures_the_fake_and_refuses_bad_values() {
    let version = Version::new("9.9.9", "abc");
    let remote = FakeRemote::builder()
        .version(version.clone())
        .first_pid(5000)
        .default_program(Program::Exit(8))
        .build()
        .unwrap();
    let (c, backend) = client(&remote, "ns").await;
    assert_eq!(c.version().await.unwrap(), version);
    // Not the fake's command: the default program runs.
    let mut process = fake_process(&Program::Sleep, false);
    process.set_args(Some(vec!["sh".into(), "-c".into(), "true".into()]));
    let mut spec = fake_spec(&Program::Sleep, false);
    spec.set_process(Some(process));
    c.create("other", &spec, CreateOptions::default())
        .await
        .unwrap();
    let pid = c
        .start("other", None, false, discard_stdio())
        .await
        .unwrap();
    assert_eq!(pid, 5000);
    assert_eq!(
        backend
            .next_event("other", EventType::Exit, T)
            .await
            .unwrap()
            .exit_code,
        8
    );

    remote
        .script()
        .set_version(Version::new("scripted", String::new()));
    assert_eq!(c.version().await.unwrap().version, "scripted");

    let err = FakeRemote::builder().first_pid(0).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(err.operation(), Some("new remote"), "{err}");
    let err = FakeRemote::builder()
        .version(Version::default())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = FakeRemote::builder()
        .default_program(Program::Missing)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn cleanup_is_idempotent_and_makes_the_remote_unavailable() {
    let remote = FakeRemote::new();
    let (c, _) = client(&remote, "ns").await;
    remote.cleanup().await.unwrap();
    remote.cleanup().await.unwrap();
    assert!(remote.is_cleaned_up());
    assert_eq!(
        c.version().await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let err = remote
        .new_client("ns2", Arc::new(RecordingBackend::new()))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn namespaces_partition_containers() {
    let remote = FakeRemote::new();
    let (a, _) = client(&remote, "a").await;
    let (b, _) = client(&remote, "b").await;
    let (a2, _) = client(&remote, "a").await;
    run(&*a, "one", &Program::Sleep).await.unwrap();
    assert_eq!(remote.containers("a"), ["one"]);
    assert!(remote.containers("b").is_empty());
    assert_eq!(
        b.status("one").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A second client of the same namespace sees the container.
    assert_eq!(a2.status("one").await.unwrap(), Status::Running);
}

#[tokio::test]
async fn restore_from_a_new_client_moves_events_to_it() {
    let remote = FakeRemote::new();
    let (old, old_events) = client(&remote, "engine").await;
    run(&*old, "web", &Program::Sleep).await.unwrap();
    // The engine restarts: a new client restores the container.
    let (new, new_events) = client(&remote, "engine").await;
    let (cb, stdio) = capture_stdio();
    let restored = new.restore("web", cb).await.unwrap();
    assert!(restored.alive);
    assert!(stdio.attached() && !stdio.had_stdin());
    new.signal_process("web", INIT_PROCESS_ID, 9).await.unwrap();
    let exit = new_events
        .next_event("web", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    assert!(
        !old_events.event_types_of("web").contains(&EventType::Exit),
        "the old client still gets events"
    );
    // The reopened stdout ends with the process.
    stdio.wait_stdout(T).await.unwrap();
}

#[tokio::test]
async fn a_held_handler_delays_only_its_own_container() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    let hold = backend.hold("stuck");
    run(&*c, "stuck", &Program::Exit(1)).await.unwrap();
    backend.wait_blocked("stuck", T).await.unwrap();
    run(&*c, "free", &Program::Exit(2)).await.unwrap();
    let exit = backend
        .next_event("free", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 2);
    assert!(backend.events_of("stuck").is_empty());
    hold.release();
    let exit = backend
        .next_event("stuck", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 1);
    assert_eq!(
        backend.event_types_of("stuck"),
        [EventType::Create, EventType::Start, EventType::Exit]
    );
}

#[tokio::test]
async fn a_failing_handler_does_not_stop_delivery() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    backend.fail("c", None);
    run(&*c, "c", &Program::Exit(0)).await.unwrap();
    backend.next_event("c", EventType::Exit, T).await.unwrap();
    assert_eq!(
        backend.event_types_of("c"),
        [EventType::Create, EventType::Start, EventType::Exit]
    );
}

#[tokio::test]
async fn output_program_writes_the_documented_pattern() {
    let remote = FakeRemote::new();
    let (c, _) = client(&remote, "ns").await;
    c.create(
        "out",
        &fake_spec(&Program::Output { bytes: 100_003 }, false),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    let (cb, stdio) = capture_stdio();
    c.start("out", None, false, cb).await.unwrap();
    assert_eq!(stdio.wait_stdout(T).await.unwrap(), output_pattern(100_003));
}

#[tokio::test]
async fn paused_container_makes_no_progress_until_resumed() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    c.create(
        "frozen",
        &fake_spec(&Program::Cat, false),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    let (cb, stdio) = capture_stdio();
    c.start("frozen", None, true, cb).await.unwrap();
    c.pause("frozen").await.unwrap();
    assert_eq!(
        c.pause("frozen").await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    stdio.write_stdin(b"while frozen").await.unwrap();
    // Frozen: nothing is echoed within a short deadline.
    let err = stdio
        .wait_stdout_contains(b"while frozen", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    c.resume("frozen").await.unwrap();
    stdio
        .wait_stdout_contains(b"while frozen", T)
        .await
        .unwrap();
    assert_eq!(
        backend.event_types_of("frozen")[2..],
        [EventType::Paused, EventType::Resumed]
    );
}

#[tokio::test]
async fn checkpoint_then_start_from_it() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    run(&*c, "ck", &Program::Sleep).await.unwrap();
    let dir = std::env::temp_dir().join(format!("libctd-testkit-ck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    c.create_checkpoint("ck", &dir, true).await.unwrap();
    backend.next_event("ck", EventType::Exit, T).await.unwrap();
    c.delete_task("ck").await.unwrap();
    let missing = dir.join("nothing-here");
    assert_eq!(
        c.start("ck", Some(&missing), false, discard_stdio())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    c.start("ck", Some(&dir), false, discard_stdio())
        .await
        .unwrap();
    assert_eq!(c.status("ck").await.unwrap(), Status::Running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_cancelled_delayed_exec_leaves_its_id_free() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    run(&*c, "host", &Program::Sleep).await.unwrap();
    remote
        .script()
        .delay(Some(Op::Exec), Some("host"), Duration::from_secs(3600));
    let process = fake_process(&Program::Exit(2), false);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        c.exec("host", "e1", &process, false, discard_stdio()),
    )
    .await;
    assert!(cancelled.is_err(), "the delayed exec finished");
    assert!(
        !backend
            .event_types_of("host")
            .contains(&EventType::ExecAdded)
    );
    remote.script().clear();
    c.exec("host", "e1", &process, false, discard_stdio())
        .await
        .unwrap();
    let exit = backend
        .next_process_event("host", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 2);
}

#[tokio::test]
async fn exec_is_deleted_after_its_exit_was_delivered() {
    let remote = FakeRemote::new();
    let (c, backend) = client(&remote, "ns").await;
    run(&*c, "host", &Program::Sleep).await.unwrap();
    let process = fake_process(&Program::Exit(0), false);
    c.exec("host", "e1", &process, false, discard_stdio())
        .await
        .unwrap();
    backend
        .next_process_event("host", "e1", EventType::Exit, T)
        .await
        .unwrap();
    // The deletion follows the delivery in the same queue slot: poll for it.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match c.signal_process("host", "e1", 9).await {
            Err(e) if e.message() == "no such exec" => break,
            Err(e) if e.message() == "process already finished" => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the exec was never deleted"
                );
                tokio::task::yield_now().await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
