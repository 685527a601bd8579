//! exec: pids, output, events, ids, and execs in stopped containers.

use libctd_core::{ErrorKind, EventType, INIT_PROCESS_ID, Result, discard_stdio};
use tokio::time::Instant;

use super::harness::SIGKILL;
use super::{Harness, Program, expect_err};

/// An exec gets its own pid, exec-added then exec-started, and an exit
/// event with its id and code; the init process keeps running.
pub(crate) async fn exec_pid_and_exit(h: &Harness) -> Result<()> {
    let id = "host";
    let init = h.run(id, &Program::Sleep, false, false).await?;
    let exec = h.exec(id, "e1", &Program::Exit(5), false, false).await?;
    assert!(exec.pid > 0, "exec pid 0");
    assert_ne!(exec.pid, init.pid, "exec and init share a pid");
    let added = h.next_process_event(id, "e1", EventType::ExecAdded).await?;
    assert_eq!(added.container_id, id);
    let started = h
        .next_process_event(id, "e1", EventType::ExecStarted)
        .await?;
    assert_eq!(started.pid, exec.pid, "exec-started pid");
    let exit = h.next_process_event(id, "e1", EventType::Exit).await?;
    assert_eq!(exit.exit_code, 5, "exec exit code");
    assert_eq!(exit.pid, exec.pid, "exec exit pid");
    assert_eq!(h.client().status(id).await?, libctd_core::Status::Running);
    h.kill_and_remove(id).await
}

/// An exec's output arrives whole on its own streams.
pub(crate) async fn exec_output(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    let exec = h
        .exec(
            id,
            "say",
            &Program::Print("hello from exec\n".into()),
            false,
            false,
        )
        .await?;
    let out = exec.stdio.wait_stdout(h.timeout()).await?;
    assert_eq!(String::from_utf8_lossy(&out), "hello from exec\n");
    assert_eq!(
        h.next_process_event(id, "say", EventType::Exit)
            .await?
            .exit_code,
        0
    );
    h.kill_and_remove(id).await
}

/// An exec id can be used again once its process exited.
pub(crate) async fn exec_id_reuse_after_exit(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    h.exec(id, "again", &Program::Exit(1), false, false).await?;
    assert_eq!(
        h.next_process_event(id, "again", EventType::Exit)
            .await?
            .exit_code,
        1
    );
    // The exec is deleted right after its exit was delivered: poll for it.
    let deadline = Instant::now() + h.timeout();
    loop {
        match h.exec(id, "again", &Program::Exit(2), false, false).await {
            Ok(_) => break,
            Err(e) if e.is(ErrorKind::AlreadyExists) && Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
    assert_eq!(
        h.next_process_event(id, "again", EventType::Exit)
            .await?
            .exit_code,
        2
    );
    h.kill_and_remove(id).await
}

/// exec with an id in use, by a running exec or by the init process:
/// AlreadyExists.
pub(crate) async fn exec_id_in_use(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    expect_err(
        "exec with the init process's id",
        ErrorKind::AlreadyExists,
        "",
        h.exec(id, INIT_PROCESS_ID, &Program::Exit(0), false, false)
            .await,
    );
    h.exec(id, "busy", &Program::Sleep, false, false).await?;
    expect_err(
        "exec with an id in use",
        ErrorKind::AlreadyExists,
        "",
        h.exec(id, "busy", &Program::Exit(0), false, false).await,
    );
    h.client().signal_process(id, "busy", SIGKILL).await?;
    h.next_process_event(id, "busy", EventType::Exit).await?;
    h.kill_and_remove(id).await
}

/// exec in a container whose init process exited: FailedPrecondition.
pub(crate) async fn exec_in_stopped_container(h: &Harness) -> Result<()> {
    let id = "done";
    h.run(id, &Program::Exit(0), false, false).await?;
    h.wait_exit(id).await?;
    expect_err(
        "exec in a stopped container",
        ErrorKind::FailedPrecondition,
        "",
        h.exec(id, "late", &Program::Exit(0), false, false).await,
    );
    h.remove(id).await?;
    Ok(())
}

/// SIGKILL to an exec ends it alone, with its exit event.
pub(crate) async fn exec_signal(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    h.exec(id, "victim", &Program::Sleep, false, false).await?;
    h.next_process_event(id, "victim", EventType::ExecStarted)
        .await?;
    h.client().signal_process(id, "victim", SIGKILL).await?;
    let exit = h.next_process_event(id, "victim", EventType::Exit).await?;
    assert_eq!(exit.exit_code, h.fixture().signal_exit_code(SIGKILL));
    assert_eq!(h.client().status(id).await?, libctd_core::Status::Running);
    h.kill_and_remove(id).await
}

/// An exec's stdin reaches it, and closing it gives EOF.
pub(crate) async fn exec_stdin(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    let exec = h.exec(id, "cat", &Program::Cat, false, true).await?;
    assert!(
        exec.stdio.had_stdin(),
        "no stdin stream for an exec with stdin"
    );
    exec.stdio.write_stdin(b"exec input\n").await?;
    exec.stdio
        .wait_stdout_contains(b"exec input", h.timeout())
        .await?;
    h.client().close_stdin(id, "cat").await?;
    let exit = h.next_process_event(id, "cat", EventType::Exit).await?;
    assert_eq!(exit.exit_code, 0);
    let out = exec.stdio.wait_stdout(h.timeout()).await?;
    assert_eq!(String::from_utf8_lossy(&out), "exec input\n");
    h.kill_and_remove(id).await
}

/// When the init process dies, its execs die too and their exits arrive.
pub(crate) async fn exec_ends_with_init(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    h.exec(id, "child", &Program::Sleep, false, false).await?;
    h.next_process_event(id, "child", EventType::ExecStarted)
        .await?;
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGKILL)
        .await?;
    h.wait_exit(id).await?;
    h.next_process_event(id, "child", EventType::Exit).await?;
    h.remove(id).await?;
    Ok(())
}

/// Several execs started at once each get their own output and exit.
pub(crate) async fn concurrent_execs(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    let runs = (0..5).map(|i| async move {
        let exec_id = format!("par{i}");
        let text = format!("exec number {i}\n");
        let started = h
            .exec(id, &exec_id, &Program::Print(text.clone()), false, false)
            .await?;
        let out = started.stdio.wait_stdout(h.timeout()).await?;
        assert_eq!(String::from_utf8_lossy(&out), text, "output of {exec_id}");
        let exit = h.next_process_event(id, &exec_id, EventType::Exit).await?;
        assert_eq!(exit.exit_code, 0, "exit of {exec_id}");
        Ok::<u32, libctd_core::Error>(started.pid)
    });
    let pids = futures::future::try_join_all(runs).await?;
    let unique: std::collections::BTreeSet<_> = pids.iter().collect();
    assert_eq!(unique.len(), pids.len(), "execs share pids: {pids:?}");
    h.kill_and_remove(id).await
}

/// A stdio callback that fails aborts the exec, and the exec id stays free.
pub(crate) async fn exec_attach_failure(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    let process = h.fixture().process(&Program::Exit(0), false);
    let failing = libctd_core::stdio_callback(|_| {
        Err(libctd_core::Error::permission_denied(
            "the engine refuses these streams",
        ))
    });
    expect_err(
        "exec with a failing callback",
        ErrorKind::PermissionDenied,
        "refuses",
        h.client().exec(id, "once", &process, false, failing).await,
    );
    h.client()
        .exec(id, "once", &process, false, discard_stdio())
        .await?;
    assert_eq!(
        h.next_process_event(id, "once", EventType::Exit)
            .await?
            .exit_code,
        0
    );
    h.kill_and_remove(id).await
}
