//! The binding (`hcs::ffi`) and `WindowsClient` over it against the
//! computecore.dll double's fault plan under Wine: one test per defect of
//! issue 8. Runs where `cargo xtask windows-test` installed the double.
#![cfg(windows)]
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/double.rs"]
mod double;
// The binding's environment serves the exit cases too.
#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/ffi_env.rs"]
mod ffi_env;
#[path = "support/lifecycle.rs"]
mod lifecycle;

use std::time::{Duration, Instant};

use libctd_core::{Client, CreateOptions, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::capture_stdio;
use libctd_windows::hcs::Hcs;
use libctd_windows::hcs::ffi::Computecore;
use libctd_windows::{ClientSettings, UNKNOWN_EXIT_CODE};

use ffi_env::{env, env_with, env_with_settings, unique_id};
use lifecycle::{T, spec};

const PROCESS_ISOLATED: &str = r#"{"Owner":"test","SchemaVersion":{"Major":2,"Minor":1},
    "ShouldTerminateOnLastHandleClosed":true,
    "Container":{"Storage":{"Layers":[],"Path":"\\\\?\\Volume{0b8e5fd4-1}\\"}}}"#;

/// Polls the double until `pattern`'s systems have an operation in flight.
fn wait_operation_in_flight(pattern: &str) {
    double::poll(T, || {
        let in_flight = double::report(pattern)["OpenHandles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().starts_with("operation"));
        match in_flight {
            true => Ok(()),
            false => Err("no operation in flight".to_owned()),
        }
    });
}

/// Defect 1: closing a compute system handle while a call on it is in
/// flight faults inside computecore. Close must wait for the call, and a
/// call after close must fail without reaching computecore.
#[tokio::test(flavor = "multi_thread")]
async fn close_waits_for_calls_in_flight() {
    let hcs = std::sync::Arc::new(Computecore::load().unwrap());
    let (id, tag) = unique_id("lifetime");
    double::faults(
        &id,
        serde_json::json!({"Slow": {"HcsGetComputeSystemProperties": 500}}),
    );
    let system = hcs
        .create_compute_system(&id, PROCESS_ISOLATED)
        .await
        .unwrap();
    hcs.start_compute_system(&system).await.unwrap();

    let (h, s) = (hcs.clone(), system.clone());
    let query = tokio::spawn(async move {
        h.get_compute_system_properties(&s, r#"{"PropertyTypes":["Statistics"]}"#)
            .await
    });
    let pattern = tag.clone();
    tokio::task::spawn_blocking(move || wait_operation_in_flight(&pattern))
        .await
        .unwrap();
    hcs.close_compute_system(&system).await.unwrap();
    let answer = query.await.unwrap().unwrap();
    assert!(answer.contains("Statistics"), "{answer}");

    // The handle is closed: calls fail as invalid handles, in the binding.
    let err = hcs.start_compute_system(&system).await.unwrap_err();
    assert_eq!(err.hresult.0, 0x8007_0006, "{err}");
    let err = hcs.close_compute_system(&system).await.unwrap_err();
    assert_eq!(err.hresult.0, 0x8007_0006, "{err}");
    double::assert_clean(&tag, T);
}

/// Defect 2: an exit code HCS could not read is 4294967295 with an error
/// saying why, never 4294967295 alone.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_exit_code_carries_an_error() {
    let e = env();
    double::faults(
        &e.sys("c"),
        serde_json::json!({"LastWaitResult": 0x8007_0006_u32}),
    );
    double::faults(
        &e.sys("x"),
        serde_json::json!({"LastWaitResult": 0x8007_0006_u32}),
    );
    e.run("c", &spec("exit 3")).await;
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    let text = exit
        .error
        .expect("an unknown exit code has an error")
        .to_string();
    assert!(text.contains("HcsWaitForProcessExit"), "{text}");
    assert!(text.contains("(0x80070006)"), "{text}");
    e.remove("c").await;

    // The same for an exec.
    e.run("x", &spec("sleep")).await;
    let process = serde_json::from_value(serde_json::json!(
        {"args": ["exit", "4"], "cwd": "C:\\", "user": {"uid": 0, "gid": 0}}
    ))
    .unwrap();
    e.client
        .exec("x", "e1", &process, false, discard_stdio())
        .await
        .unwrap();
    let exit = e
        .backend
        .next_process_event("x", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    assert!(exit.error.is_some(), "an unknown exit code has an error");
    e.client
        .signal_process("x", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    e.exit("x").await;
    e.remove("x").await;
    e.assert_clean().await;
}

/// Polls the double until `pattern`'s systems have a process and every
/// process exited (none orphaned); panics after [`T`].
fn wait_processes_ended(pattern: &str) {
    double::poll(T, || {
        let r = double::report(pattern);
        let procs = r["Processes"].as_array().unwrap().clone();
        let orphans = r["Orphans"].as_array().unwrap().len();
        if !procs.is_empty() && orphans == 0 && procs.iter().all(|p| p["Exited"] == true) {
            return Ok(());
        }
        Err(format!(
            "processes did not end: {procs:?}, orphans {orphans}"
        ))
    });
}

/// Defect 4: a timeout is a bound. A 300 ms timeout against a 3 s process
/// creation that ignores the cancel returns in about 300 ms (no second,
/// infinite wait), and the process HCS creates after the cancel is
/// terminated and closed, not left running without a handle.
#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_is_a_bound_and_leaves_no_orphan() {
    let hcs = Computecore::load()
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let e = env_with(hcs);
    double::faults(
        &e.sys("c"),
        serde_json::json!({"Slow": {"HcsCreateProcess": 3000}, "IgnoreCancel": true}),
    );
    e.client
        .create("c", &spec("sleep"), CreateOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    let err = e
        .client
        .start("c", None, false, discard_stdio())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}: {err}");
    assert!(err.to_string().contains("0x80370118"), "{err}");
    // The creation completes in the double 3 s later: the process must end.
    let pattern = format!("@{}", e.namespace);
    tokio::task::spawn_blocking(move || wait_processes_ended(&pattern))
        .await
        .unwrap();
    e.client.delete("c").await.unwrap();
    e.assert_clean().await;
}

/// Defect 3: on Windows Server 2022 the wait for HcsCreateProcess can fail
/// although HCS handed back a valid process handle and the process runs.
/// The binding recovers its information with HcsGetProcessInfo instead of
/// closing the handle and orphaning the process.
#[tokio::test(flavor = "multi_thread")]
async fn ws2022_create_process_quirk_recovers_the_process() {
    let e = env();
    double::faults(&e.sys("c"), serde_json::json!({"CreateProcessQuirk": true}));
    e.client
        .create(
            "c",
            &spec("cat ; echo done ; exit 3"),
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let (attach, io) = capture_stdio();
    let pid = e.client.start("c", None, true, attach).await.unwrap();
    assert_ne!(pid, 0);
    io.write_stdin(b"hello\n").await.unwrap();
    io.close_stdin().await.unwrap();
    let out = io.wait_stdout_contains(b"done", T).await.unwrap();
    assert_eq!(out, b"hello\ndone\n");
    let exit = e.exit("c").await;
    assert_eq!(exit.exit_code, 3);
    assert!(exit.error.is_none(), "{:?}", exit.error);
    e.remove("c").await;

    // A process that really failed to start is still an error: no
    // information to recover.
    double::faults(&e.sys("m"), serde_json::json!({"CreateProcessQuirk": true}));
    e.client
        .create("m", &spec("no-such-program.exe"), CreateOptions::default())
        .await
        .unwrap();
    let err = e
        .client
        .start("m", None, false, discard_stdio())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("0x80070002"), "{err}");
    e.client.delete("m").await.unwrap();
    e.assert_clean().await;
}

/// Defect 5: a shutdown or terminate is submitted, then the exit
/// notification is relied on: an operation whose completion comes long
/// after the system exited does not hold the exit back.
#[tokio::test(flavor = "multi_thread")]
async fn stop_does_not_wait_for_a_late_operation() {
    let e = env();
    for (id, op) in [
        ("s", "HcsShutDownComputeSystem"),
        ("t", "HcsTerminateComputeSystem"),
    ] {
        double::faults(&e.sys(id), serde_json::json!({"Late": {op: 3000}}));
        e.run(id, &spec("sleep")).await;
    }
    let started = Instant::now();
    // SIGTERM shuts the compute system down; SIGKILL terminates it.
    e.client
        .signal_process("s", INIT_PROCESS_ID, 15)
        .await
        .unwrap();
    e.client
        .signal_process("t", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let s = e.exit("s").await;
    let t = e.exit("t").await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2000), "took {took:?}");
    assert_eq!(s.exit_code, 0xC000_013A, "{:?}", s.error);
    assert_eq!(t.exit_code, 1, "{:?}", t.error);
    e.remove("s").await;
    e.remove("t").await;
    e.assert_clean().await;
}

/// The double itself: handle misuse that a real computecore punishes with an
/// access violation is recorded (so the checks above can fail).
#[test]
fn the_double_records_handle_misuse() {
    use windows::Win32::System::HostComputeSystem::{HCS_OPERATION, HCS_SYSTEM};
    use windows::core::{HRESULT, HSTRING, PCWSTR, PWSTR};
    type CreateOp = unsafe extern "system" fn(*const std::ffi::c_void, usize) -> HCS_OPERATION;
    type CloseOp = unsafe extern "system" fn(HCS_OPERATION);
    type Wait = unsafe extern "system" fn(HCS_OPERATION, u32, *mut PWSTR) -> HRESULT;
    type Create = unsafe extern "system" fn(
        PCWSTR,
        PCWSTR,
        HCS_OPERATION,
        *const std::ffi::c_void,
        *mut HCS_SYSTEM,
    ) -> HRESULT;
    type SystemOp = unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
    type CloseSystem = unsafe extern "system" fn(HCS_SYSTEM);
    // SAFETY: computecore's signatures.
    let (create_op, close_op, wait, create, start, close) = unsafe {
        (
            std::mem::transmute::<double::Export, CreateOp>(double::export(
                b"HcsCreateOperation\0",
            )),
            std::mem::transmute::<double::Export, CloseOp>(double::export(b"HcsCloseOperation\0")),
            std::mem::transmute::<double::Export, Wait>(double::export(
                b"HcsWaitForOperationResult\0",
            )),
            std::mem::transmute::<double::Export, Create>(double::export(
                b"HcsCreateComputeSystem\0",
            )),
            std::mem::transmute::<double::Export, SystemOp>(double::export(
                b"HcsStartComputeSystem\0",
            )),
            std::mem::transmute::<double::Export, CloseSystem>(double::export(
                b"HcsCloseComputeSystem\0",
            )),
        )
    };
    let (id, tag) = unique_id("misuse");
    double::faults(
        &id,
        serde_json::json!({"Slow": {"HcsCreateComputeSystem": 300}}),
    );
    let wide_id = HSTRING::from(id.as_str());
    let doc = HSTRING::from(PROCESS_ISOLATED);
    let mut system = HCS_SYSTEM::default();
    // SAFETY: the double's exports with valid arguments, then misuse on purpose.
    unsafe {
        let op = create_op(std::ptr::null(), 0);
        let hr = create(
            PCWSTR(wide_id.as_ptr()),
            PCWSTR(doc.as_ptr()),
            op,
            std::ptr::null(),
            &mut system,
        );
        assert!(hr.is_ok(), "{hr:?}");
        // The creation is in flight: closing its operation abandons it, and
        // closing the system closes under it.
        close_op(op);
        close(system);
        // A call on, and a close of, the closed handle.
        let op = create_op(std::ptr::null(), 0);
        assert_eq!(start(system, op, PCWSTR::null()).0 as u32, 0x8007_0006);
        close(system);
        let mut result = PWSTR::null();
        // The operation was never issued: HCS_E_OPERATION_NOT_STARTED.
        assert_eq!(wait(op, 0, &mut result).0 as u32, 0x8037_0115);
        close_op(op);
    }
    let violations = double::violations(&tag);
    let expect = [
        "HcsCloseOperation",
        "still in flight, not cancelled",
        "HcsCloseComputeSystem of",
        "while an operation on it is in flight",
        "HcsStartComputeSystem on closed handle",
        "HcsCloseComputeSystem on closed handle",
    ];
    for what in expect {
        assert!(
            violations.iter().any(|v| v.contains(what)),
            "{what:?} not recorded: {violations:#?}"
        );
    }
}

/// A shutdown that does not take effect within the client's shutdown
/// timeout falls back to terminate: the exit arrives after about the submit
/// wait plus the shutdown timeout, not the shutdown's own 3 s, as
/// 4294967295 with the shutdown's failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_shutdown_falls_back_to_terminate() {
    let settings = ClientSettings {
        shutdown_timeout: Duration::from_millis(300),
        ..ClientSettings::default()
    };
    let e = env_with_settings(Computecore::load().unwrap(), settings);
    double::faults(
        &e.sys("c"),
        serde_json::json!({"Slow": {"HcsShutDownComputeSystem": 3000}}),
    );
    let started = Instant::now();
    e.run("c", &spec("exit 0")).await;
    let exit = e.exit("c").await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    let text = exit.error.expect("the shutdown's failure").to_string();
    assert!(text.contains("failed to shutdown container"), "{text}");
    assert!(text.contains("did not exit within 300ms"), "{text}");
    e.remove("c").await;
    e.assert_clean().await;
}

/// A fault of the plan reaches the engine: a shutdown denied access falls
/// back to terminate, and the exit carries "Access is denied." with
/// 4294967295.
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_shutdown_is_reported() {
    let e = env();
    double::faults(
        &e.sys("d"),
        serde_json::json!({"Fail": {"HcsShutDownComputeSystem": 0x8007_0005_u32}}),
    );
    e.run("d", &spec("exit 0")).await;
    let exit = e.exit("d").await;
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    let text = exit
        .error
        .expect("the denied shutdown is reported")
        .to_string();
    assert!(text.contains("failed to shutdown container"), "{text}");
    assert!(text.contains("(0x80070005)"), "{text}");
    e.remove("d").await;
    e.assert_clean().await;
}
