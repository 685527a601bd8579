//! WindowsClient against the simulated HCS: the exit path, events, faults.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    Client, CreateOptions, ErrorKind, EventType, INIT_PROCESS_ID, Status, discard_stdio,
    stdio_callback,
};
use libctd_testkit::backend::RecordingBackend;
use libctd_testkit::capture_stdio;
use libctd_windows::error::Hresult;
use libctd_windows::hcs::HcsOp;
use libctd_windows::hcs::sim::{CONTROL_C_EXIT, Sim, TERMINATED_EXIT};
use libctd_windows::{UNKNOWN_EXIT_CODE, WindowsClient};

// The simulation's environment serves the exit cases too.
#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/sim_env.rs"]
mod sim_env;
use lifecycle::{T, hyperv_spec, process, spec, spec_json};
use sim_env::{env, sys};

#[tokio::test]
async fn unexpected_exit_during_shutdown_fails_the_exit() {
    let e = env();
    e.sim.exit_unexpectedly_on_shutdown(&sys("build"));
    e.run("build", &spec("exit 0")).await;
    let exit = e.exit("build").await;
    assert_eq!(exit.exit_code, 4_294_967_295);
    let err = exit.error.expect("the exit carries the system error");
    let text = err.to_string();
    assert!(
        text.contains("The compute system exited unexpectedly."),
        "{text}"
    );
    assert!(text.contains("0xc0370106"), "{text}");
    assert!(text.contains("failed to shutdown container: "), "{text}");
    assert!(
        text.contains("container build encountered an error during HcsShutDownComputeSystem: failure in a Windows system call"),
        "{text}"
    );
    assert_eq!(err.kind(), ErrorKind::System);
    // delete_task reports the process's own code, recorded before the shutdown.
    assert_eq!(e.client.delete_task("build").await.unwrap().exit_code, 0);
    e.client.delete("build").await.unwrap();
    assert!(e.sim.compute_systems().is_empty());
}

#[tokio::test]
async fn pending_updates_query_failure_is_only_logged() {
    let e = env();
    e.sim.set_pending_updates(&sys("c"), true);
    e.sim.fail(
        HcsOp::GetComputeSystemProperties,
        Some(&sys("c")),
        Hresult(0x8000_4005),
    );
    e.run("c", &spec("exit 0")).await;
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.update_pending);
    assert!(exit.error.is_none());
    e.remove("c").await;
}

#[tokio::test]
async fn start_is_delivered_before_exit() {
    let e = env();
    for i in 0..20 {
        let id = format!("c{i}");
        e.run(&id, &spec("exit 5")).await;
        let exit = e.exit(&id).await;
        assert_eq!(exit.exit_code, 5);
        assert_eq!(
            e.backend.event_types_of(&id),
            vec![EventType::Create, EventType::Start, EventType::Exit]
        );
        e.remove(&id).await;
    }
}

#[tokio::test]
async fn close_failures_chain_in_order() {
    let e = env();
    e.sim
        .fail(HcsOp::CloseProcess, Some(&sys("c")), Hresult::from_win32(6));
    e.sim.fail(
        HcsOp::ShutDownComputeSystem,
        Some(&sys("c")),
        Hresult(0x8037_0105),
    );
    e.sim.fail(
        HcsOp::TerminateComputeSystem,
        Some(&sys("c")),
        Hresult(0x8000_4005),
    );
    e.sim.fail_once(
        HcsOp::CloseComputeSystem,
        Some(&sys("c")),
        Hresult::from_win32(5),
    );
    e.run("c", &spec("exit 0")).await;
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    let text = exit.error.expect("chained error").message().to_owned();
    let close = text.find("hcsProcess.Close() failed ").expect(&text);
    let shutdown = text.find(": failed to shutdown container: ").expect(&text);
    let subsequent = text.find("subsequent terminate failed").expect(&text);
    let terminate = text.find(": failed to terminate container: ").expect(&text);
    assert!(
        close < shutdown && shutdown < subsequent && subsequent < terminate,
        "{text}"
    );
    assert!(
        text.contains("The handle is invalid. (0x80070006)"),
        "{text}"
    );
    assert!(text.contains("(0x80370105)"), "{text}");
    assert!(text.contains("Access is denied. (0x80070005)"), "{text}");
    // A non-zero exit code was forced: no PendingUpdates query.
    assert_eq!(
        e.sim
            .call_count(HcsOp::GetComputeSystemProperties, &sys("c")),
        0
    );
    e.sim.clear_faults();
    e.client.delete_task("c").await.unwrap();
    e.client.delete("c").await.unwrap();
}

#[tokio::test]
async fn failed_wait_result_gives_minus_one_with_its_error() {
    let e = env();
    e.sim.set_last_wait_result(&sys("c"), 0x102);
    e.run("c", &spec("exit 0")).await;
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    // Never 4294967295 without an error.
    let text = exit
        .error
        .expect("an unknown exit code has an error")
        .to_string();
    assert!(text.contains("HcsWaitForProcessExit"), "{text}");
    assert!(text.contains("(0x00000102)"), "{text}");
    assert!(!exit.update_pending);
    e.remove("c").await;
}

#[tokio::test]
async fn servicing_containers_emit_no_events() {
    let e = env();
    let servicing: Spec =
        serde_json::from_value(spec_json("exit 0", r#","servicing":true"#)).unwrap();
    e.sim.set_pending_updates(&sys("svc"), true);
    e.run("svc", &servicing).await;
    e.run("marker", &spec("exit 0")).await;
    e.exit("marker").await;
    // The servicing container is reaped (stopped) without a single event.
    let deadline = tokio::time::Instant::now() + T;
    while e.client.status("svc").await.unwrap() != Status::Stopped {
        assert!(tokio::time::Instant::now() < deadline, "svc never stopped");
        tokio::task::yield_now().await;
    }
    e.client.delete_task("svc").await.unwrap();
    e.client.delete("svc").await.unwrap();
    e.client.wait_events_idle().await;
    assert!(e.backend.events_of("svc").is_empty());
    assert_eq!(
        e.sim
            .call_count(HcsOp::GetComputeSystemProperties, &sys("svc")),
        0
    );
    e.remove("marker").await;
}

#[tokio::test]
async fn signals_map_to_terminate_and_shutdown() {
    let e = env();
    e.run("k", &spec("sleep")).await;
    e.client
        .signal_process("k", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    assert_eq!(e.exit("k").await.exit_code, TERMINATED_EXIT);
    assert_eq!(
        e.sim.call_count(HcsOp::TerminateComputeSystem, &sys("k")),
        1
    );

    e.run("t", &spec("sleep")).await;
    e.client
        .signal_process("t", INIT_PROCESS_ID, 15)
        .await
        .unwrap();
    let exit = e.exit("t").await;
    assert_eq!(exit.exit_code, CONTROL_C_EXIT);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    assert_eq!(
        e.sim.call_count(HcsOp::TerminateComputeSystem, &sys("t")),
        0
    );

    e.run("x", &spec("sleep")).await;
    let pid = e
        .client
        .exec("x", "e1", &process("sleep"), false, discard_stdio())
        .await
        .unwrap();
    e.client.signal_process("x", "e1", 15).await.unwrap();
    let exit = e
        .backend
        .next_process_event("x", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!((exit.pid, exit.exit_code), (pid, TERMINATED_EXIT));
    assert_eq!(
        e.backend.event_types_of("x"),
        vec![
            EventType::Create,
            EventType::Start,
            EventType::ExecAdded,
            EventType::ExecStarted,
            EventType::Exit
        ]
    );
    let err = e.client.signal_process("x", "nope", 9).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = e
        .client
        .signal_process("x", INIT_PROCESS_ID, 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    e.client
        .signal_process("x", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("x").await;
    for id in ["k", "t", "x"] {
        e.remove(id).await;
    }
}

#[tokio::test]
async fn pause_needs_hyperv() {
    let e = env();
    e.run("p", &spec("sleep")).await;
    let err = e.client.pause("p").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented);
    assert!(err.to_string().contains("Hyper-V"), "{err}");
    let err = e.client.resume("p").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented);

    e.run("h", &hyperv_spec("sleep")).await;
    e.client.pause("h").await.unwrap();
    assert_eq!(e.client.status("h").await.unwrap(), Status::Paused);
    e.backend
        .next_event("h", EventType::Paused, T)
        .await
        .unwrap();
    let err = e.client.pause("h").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    e.client.resume("h").await.unwrap();
    e.backend
        .next_event("h", EventType::Resumed, T)
        .await
        .unwrap();
    assert_eq!(e.client.status("h").await.unwrap(), Status::Running);
    for id in ["p", "h"] {
        e.client
            .signal_process(id, INIT_PROCESS_ID, 9)
            .await
            .unwrap();
        e.exit(id).await;
        e.remove(id).await;
    }
}

#[tokio::test]
async fn failed_start_of_the_compute_system_leaves_nothing() {
    let e = env();
    e.sim.fail_once(
        HcsOp::StartComputeSystem,
        Some(&sys("c")),
        Hresult(0xC037_0100),
    );
    let err = e
        .client
        .create("c", &spec("exit 0"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::System);
    assert_eq!(
        err.message(),
        "container c encountered an error during HcsStartComputeSystem: failure in a Windows \
         system call: The compute system unexpectedly terminated while starting. (0xc0370100)"
    );
    assert!(e.sim.compute_systems().is_empty());
    assert_eq!(
        e.client.status("c").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // And it can be created again.
    e.run("c", &spec("exit 0")).await;
    e.exit("c").await;
    e.remove("c").await;
}

#[tokio::test]
async fn failed_attach_terminates_the_process_and_start_can_be_retried() {
    let e = env();
    e.client
        .create("c", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap();
    let err = e
        .client
        .start(
            "c",
            None,
            false,
            stdio_callback(|_| Err(libctd_core::Error::system("engine said no"))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::System);
    assert_eq!(e.sim.live_pids(&sys("c")), Vec::<u32>::new());
    assert_eq!(e.client.status("c").await.unwrap(), Status::Created);
    let (callback, stdio) = capture_stdio();
    e.client.start("c", None, false, callback).await.unwrap();
    assert!(stdio.attached());
    e.client
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("c").await;
    e.remove("c").await;
}

#[tokio::test]
async fn restore_terminates_and_answers_not_alive() {
    let e = env();
    e.run("c", &spec("sleep")).await;
    let other =
        WindowsClient::new(e.sim.clone(), "test", Arc::new(RecordingBackend::new())).unwrap();
    let restored = other.restore("c", discard_stdio()).await.unwrap();
    assert!(!restored.alive);
    assert_eq!(restored.pid, None);
    assert!(!e.sim.is_running(&sys("c")));
    // The first client sees its container exit.
    e.exit("c").await;
    e.remove("c").await;
    // Unknown to the client and to HCS: not found.
    let err = other.restore("gone", discard_stdio()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Tracked by the client: terminated, not alive, and its exit arrives.
    e.run("mine", &spec("sleep")).await;
    let restored = e.client.restore("mine", discard_stdio()).await.unwrap();
    assert!(!restored.alive);
    assert_eq!(e.exit("mine").await.exit_code, TERMINATED_EXIT);
    e.remove("mine").await;
}

#[tokio::test]
async fn disconnected_service_is_unavailable() {
    let e = env();
    e.sim.set_disconnected(true);
    let err = e
        .client
        .create("c", &spec("exit 0"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("(0x8037011e)"), "{err}");
    e.sim.set_disconnected(false);
}

#[tokio::test]
async fn a_dropped_create_completes_consistently() {
    let e = env();
    e.sim.delay(
        HcsOp::CreateComputeSystem,
        Some(&sys("c")),
        Duration::from_millis(50),
    );
    {
        // Poll the create once (it starts, and cannot finish: the current-thread
        // runtime runs nothing else meanwhile), then drop it.
        let spec = spec("exit 0");
        let create = e.client.create("c", &spec, CreateOptions::default());
        let mut create = std::pin::pin!(create);
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(create.as_mut(), cx))
        })
        .await;
        assert!(first.is_pending(), "the create finished at once");
    }
    // The create went on by itself: the container appears, created, once.
    e.backend
        .next_event("c", EventType::Create, T)
        .await
        .unwrap();
    assert_eq!(e.client.status("c").await.unwrap(), Status::Created);
    assert_eq!(e.sim.compute_systems(), vec![sys("c")]);
    e.client.delete("c").await.unwrap();
    assert!(e.sim.compute_systems().is_empty());
}

#[tokio::test]
async fn lifecycle_errors() {
    let e = env();
    e.run("c", &spec("sleep")).await;
    let err = e
        .client
        .create("c", &spec("exit 0"), CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let err = e
        .client
        .start("c", None, false, discard_stdio())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        e.client.delete_task("c").await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        e.client.delete("c").await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    for err in [
        e.client.version().await.unwrap_err(),
        e.client
            .create_checkpoint("c", std::path::Path::new("C:\\cp"), false)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotImplemented);
    }
    let stats = e.client.stats("c").await.unwrap();
    assert!(matches!(
        stats.platform,
        libctd_core::PlatformStats::Windows(_)
    ));
    let pids = e.client.list_pids("c").await.unwrap();
    assert_eq!(pids, e.sim.live_pids(&sys("c")));
    let err = e
        .client
        .resize_terminal("c", INIT_PROCESS_ID, 80, 24)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    e.client
        .signal_process("c", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("c").await;
    assert_eq!(
        e.client.stats("c").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    e.remove("c").await;
    assert_eq!(
        e.client.delete("c").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn stdio_and_terminal() {
    let e = env();
    let mut s = spec("cat ; echoerr done");
    let p = s.process().clone().map(|mut p| {
        p.set_terminal(Some(true));
        p.set_console_size(Some(
            libctd_core::oci_spec::runtime::BoxBuilder::default()
                .height(30u32)
                .width(100u32)
                .build()
                .unwrap(),
        ));
        p
    });
    s.set_process(p);
    e.client
        .create("c", &s, CreateOptions::default())
        .await
        .unwrap();
    let (callback, stdio) = capture_stdio();
    let pid = e.client.start("c", None, true, callback).await.unwrap();
    assert!(stdio.terminal() && stdio.had_stdin() && !stdio.had_stderr());
    assert_eq!(e.sim.console_size(&sys("c"), pid), Some([30, 100]));
    e.client
        .resize_terminal("c", INIT_PROCESS_ID, 132, 43)
        .await
        .unwrap();
    assert_eq!(e.sim.console_size(&sys("c"), pid), Some([43, 132]));
    stdio.write_stdin(b"hello\n").await.unwrap();
    stdio.wait_stdout_contains(b"hello\n", T).await.unwrap();
    e.client.close_stdin("c", INIT_PROCESS_ID).await.unwrap();
    // With a console, stderr arrives on stdout.
    stdio.wait_stdout_contains(b"done\n", T).await.unwrap();
    assert_eq!(e.exit("c").await.exit_code, 0);
    e.remove("c").await;
}

#[tokio::test]
async fn pending_shutdown_is_waited_for() {
    let e = env();
    // HCS v1 answers a shutdown with "operation pending": the client waits
    // for the exit notification instead of failing.
    e.sim.fail(
        HcsOp::ShutDownComputeSystem,
        Some(&sys("c")),
        Hresult(0xC037_0103),
    );
    e.run("c", &spec("exit 0")).await;
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, 0);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    assert_eq!(
        e.sim.call_count(HcsOp::TerminateComputeSystem, &sys("c")),
        0
    );
    e.remove("c").await;
}

#[tokio::test]
async fn a_shutdown_that_never_completes_times_out_into_the_exit_error() {
    let sim = Arc::new(Sim::new());
    let backend = Arc::new(RecordingBackend::new());
    let settings = libctd_windows::ClientSettings {
        shutdown_timeout: Duration::from_millis(50),
        ..libctd_windows::ClientSettings::default()
    };
    let client =
        WindowsClient::with_settings(sim.clone(), "test", backend.clone(), settings).unwrap();
    // The exit notification never comes in time.
    sim.delay(
        HcsOp::WaitForComputeSystemExit,
        Some(&sys("c")),
        Duration::from_secs(3600),
    );
    client
        .create("c", &spec("exit 0"), CreateOptions::default())
        .await
        .unwrap();
    client
        .start("c", None, false, discard_stdio())
        .await
        .unwrap();
    let exit = backend
        .next_process_event("c", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    let text = exit.error.unwrap().message().to_owned();
    assert!(text.starts_with("failed to shutdown container: "), "{text}");
    assert!(text.contains("did not exit within 50ms"), "{text}");
    // The fallback terminate ran, and found the system stopped already.
    assert_eq!(sim.call_count(HcsOp::TerminateComputeSystem, &sys("c")), 1);
    assert!(!text.contains("subsequent terminate failed"), "{text}");
    sim.clear_faults();
    client.delete_task("c").await.unwrap();
    client.delete("c").await.unwrap();
}

#[tokio::test]
async fn a_failed_attach_whose_process_cannot_be_terminated_does_not_hang_start() {
    let sim = Arc::new(Sim::new());
    let backend = Arc::new(RecordingBackend::new());
    let settings = libctd_windows::ClientSettings {
        shutdown_timeout: Duration::from_millis(50),
        ..libctd_windows::ClientSettings::default()
    };
    let client =
        WindowsClient::with_settings(sim.clone(), "test", backend.clone(), settings).unwrap();
    client
        .create("c", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap();
    // The process survives the terminate that undoes the failed attach.
    sim.fail_once(
        HcsOp::TerminateProcess,
        Some(&sys("c")),
        Hresult(0x8000_4005),
    );
    let start = client.start(
        "c",
        None,
        false,
        stdio_callback(|_| Err(libctd_core::Error::system("engine said no"))),
    );
    let err = tokio::time::timeout(T, start)
        .await
        .expect("start hung on a process that did not exit")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::System);
    assert!(err.to_string().contains("engine said no"), "{err}");
    assert_eq!(client.status("c").await.unwrap(), Status::Created);
    client.delete("c").await.unwrap();
    assert!(sim.compute_systems().is_empty());
}
