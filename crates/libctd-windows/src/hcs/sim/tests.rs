//! The simulation's own checks, over the trait.
use super::*;
use crate::hcs::{Hcs, ProcessInfo};
use crate::schema::ModifyProcessRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOC: &str = r#"{"Owner":"t","SchemaVersion":{"Major":2,"Minor":1},"ShouldTerminateOnLastHandleClosed":true,
    "Container":{"Storage":{"Path":"C:\\scratch\\"}}}"#;

fn params(line: &str, stdin: bool) -> String {
    serde_json::to_string(&ProcessParameters {
        command_line: line.to_owned(),
        create_std_in_pipe: stdin,
        create_std_out_pipe: true,
        create_std_err_pipe: true,
        ..ProcessParameters::default()
    })
    .unwrap()
}

async fn running(sim: &Sim, id: &str) -> SimSystem {
    let s = sim.create_compute_system(id, DOC).await.unwrap();
    sim.start_compute_system(&s).await.unwrap();
    s
}

/// Starts `script` in `s`, with a stdin pipe when `stdin`.
async fn spawn(sim: &Sim, s: &SimSystem, script: &str, stdin: bool) -> (SimProcess, ProcessInfo) {
    sim.create_process(s, &params(script, stdin)).await.unwrap()
}

/// Everything a stream gives until it closes.
async fn read_all(stream: Option<libctd_core::OutputStream>) -> String {
    let mut text = String::new();
    stream.unwrap().read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn programs_print_and_exit() {
    let sim = Sim::new();
    let s = running(&sim, "c").await;
    let (p, mut info) = spawn(
        &sim,
        &s,
        "echo a b ; echoerr oops ; bytes 10 ; exit 7",
        false,
    )
    .await;
    assert!(info.stdin.is_none());
    let out = read_all(info.stdout.take()).await;
    let err = read_all(info.stderr.take()).await;
    assert_eq!(out, "a b\nabcdefghij");
    assert_eq!(err, "oops\n");
    assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), Some(7));
}

#[tokio::test]
async fn bad_arguments_exit_9009_with_a_message() {
    let sim = Sim::new();
    let s = running(&sim, "c").await;
    for (script, message) in [
        ("exit seven", "bad exit code \"seven\"\n"),
        ("bytes", "bytes needs a count\n"),
    ] {
        let (p, mut info) = spawn(&sim, &s, script, false).await;
        let err = read_all(info.stderr.take()).await;
        assert_eq!(err, message, "{script}");
        assert_eq!(
            sim.wait_process_exit(&p).await.unwrap().code(),
            Some(UNKNOWN_COMMAND_EXIT),
            "{script}"
        );
    }
    // No argument: exit 0.
    let (p, _info) = spawn(&sim, &s, "exit", false).await;
    assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn cat_until_stdin_closed_by_handle() {
    let sim = Sim::new();
    let s = running(&sim, "c").await;
    let (p, mut info) = spawn(&sim, &s, "cat ; exit 4", true).await;
    let mut stdin = info.stdin.take().unwrap();
    stdin.write_all(b"ping").await.unwrap();
    let mut stdout = info.stdout.take().unwrap();
    let mut buf = [0u8; 4];
    stdout.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    sim.modify_process(
        &p,
        &serde_json::to_string(&ModifyProcessRequest::close_stdin()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), Some(4));
}

#[tokio::test]
async fn signals_terminate_and_faults() {
    let sim = Sim::new();
    let s = running(&sim, "c").await;
    let (p, _info) = spawn(&sim, &s, "sleep", false).await;
    sim.signal_process(&p, r#"{"Signal":"CtrlC"}"#)
        .await
        .unwrap();
    assert_eq!(
        sim.wait_process_exit(&p).await.unwrap().exit_code,
        CONTROL_C_EXIT
    );
    // Terminating an exited process is denied, as Windows' TerminateProcess.
    let err = sim.terminate_process(&p).await.unwrap_err();
    assert!(err.hresult.is_access_denied());
    let err = sim
        .signal_process(&p, r#"{"Signal":"CtrlC"}"#)
        .await
        .unwrap_err();
    assert!(err.hresult.is_already_stopped());

    sim.fail_once(HcsOp::CreateProcess, Some("c"), Hresult(0x8000_4005));
    let err = sim
        .create_process(&s, &params("exit", false))
        .await
        .unwrap_err();
    assert_eq!(err.hresult, Hresult(0x8000_4005));
    assert!(sim.create_process(&s, &params("exit", false)).await.is_ok());

    sim.set_last_wait_result("c", 5);
    let (p, _) = spawn(&sim, &s, "exit 0", false).await;
    assert_eq!(sim.wait_process_exit(&p).await.unwrap().code(), None);
}

#[tokio::test]
async fn shutdown_and_unexpected_exit() {
    let sim = Sim::new();
    let s = running(&sim, "c").await;
    let (p, _info) = spawn(&sim, &s, "sleep", false).await;
    sim.exit_unexpectedly_on_shutdown("c");
    sim.shutdown_compute_system(&s).await.unwrap();
    let exit = sim.wait_compute_system_exit(&s).await.unwrap();
    assert!(exit.is_unexpected());
    assert_eq!(exit.error().unwrap().hresult, Hresult(0xC037_0106));
    assert!(sim.wait_process_exit(&p).await.unwrap().exited);
    let err = sim.shutdown_compute_system(&s).await.unwrap_err();
    assert!(err.hresult.is_already_stopped());
    sim.close_compute_system(&s).await.unwrap();
    assert!(sim.compute_systems().is_empty());
    assert!(sim.close_compute_system(&s).await.is_err());
}

#[tokio::test]
async fn disconnect_and_unknown_systems() {
    let sim = Sim::new();
    let err = sim.open_compute_system("nope").await.unwrap_err();
    assert!(err.hresult.is_not_exist());
    sim.set_disconnected(true);
    let err = sim.create_compute_system("c", DOC).await.unwrap_err();
    assert_eq!(err.kind(), libctd_core::ErrorKind::Unavailable);
    sim.set_disconnected(false);
    let err = sim.create_compute_system("c", "{").await.unwrap_err();
    assert!(err.hresult.is_not_supported());
}

#[test]
fn guids_are_stable_and_well_formed() {
    let g = name_to_guid("base");
    assert_eq!(g, name_to_guid("base"));
    assert_ne!(g, name_to_guid("other"));
    assert_eq!(g.len(), 36);
    assert_eq!(g.matches('-').count(), 4);
}
