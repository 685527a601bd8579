//! Lifecycle: create, start, exit, delete_task, delete, and status on the way.

use std::time::SystemTime;

use libctd_core::{ErrorKind, EventType, INIT_PROCESS_ID, Result, Status};

use super::harness::SIGKILL;
use super::{Harness, Program, expect_err};

/// A container that exits with 3: the exit event, the stopped status,
/// delete_task's exit code and time, then delete.
pub(crate) async fn create_start_exit(h: &Harness) -> Result<()> {
    let id = "exit3";
    let before = SystemTime::now();
    let started = h.run(id, &Program::Exit(3), false, false).await?;
    assert!(started.pid > 0, "start returned pid 0");
    let exit = h.wait_exit(id).await?;
    assert_eq!(exit.exit_code, 3, "exit code");
    assert_eq!(exit.process_id, INIT_PROCESS_ID, "exit process id");
    assert_eq!(exit.container_id, id);
    assert_eq!(exit.pid, started.pid, "exit pid");
    assert!(!exit.oom_killed);
    assert_eq!(h.client().status(id).await?, Status::Stopped);
    let task = h.client().delete_task(id).await?;
    assert_eq!(task.exit_code, 3, "delete_task exit code");
    assert!(task.exited_at >= before, "exited_at precedes the start");
    assert!(
        task.exited_at <= SystemTime::now(),
        "exited_at is in the future"
    );
    h.client().delete(id).await?;
    expect_err(
        "status after delete",
        ErrorKind::NotFound,
        "",
        h.client().status(id).await,
    );
    Ok(())
}

/// Status: (created) -> running -> stopped.
pub(crate) async fn status_transitions(h: &Harness) -> Result<()> {
    let id = "status";
    h.create(id, &Program::Sleep, false).await?;
    let before = h.client().status(id).await;
    if let Some(s) = h.check_support("status before start", h.caps().status_before_start, before) {
        assert_eq!(s, Status::Created);
    }
    h.start(id, false).await?;
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGKILL)
        .await?;
    h.wait_exit(id).await?;
    assert_eq!(h.client().status(id).await?, Status::Stopped);
    h.remove(id).await?;
    Ok(())
}

/// Exit codes 0, 1 and 255 arrive unchanged.
pub(crate) async fn exit_codes(h: &Harness) -> Result<()> {
    for code in [0u8, 1, 255] {
        let id = format!("code{code}");
        h.run(&id, &Program::Exit(code), false, false).await?;
        let exit = h.wait_exit(&id).await?;
        assert_eq!(exit.exit_code, u32::from(code), "exit code of {id}");
        assert_eq!(h.remove(&id).await?.exit_code, u32::from(code));
    }
    Ok(())
}

/// The start event carries the pid start returned, after a create event.
pub(crate) async fn start_event_carries_pid(h: &Harness) -> Result<()> {
    let id = "pid";
    let started = h.run(id, &Program::Sleep, false, false).await?;
    h.next_event(id, EventType::Create).await?;
    let start = h.next_event(id, EventType::Start).await?;
    assert_eq!(start.pid, started.pid, "start event pid");
    assert_eq!(start.container_id, id);
    h.kill_and_remove(id).await
}

/// delete_task of a running task: FailedPrecondition, and the task still runs.
pub(crate) async fn delete_task_while_running(h: &Harness) -> Result<()> {
    let id = "busy";
    h.run(id, &Program::Sleep, false, false).await?;
    expect_err(
        "delete_task while running",
        ErrorKind::FailedPrecondition,
        "",
        h.client().delete_task(id).await,
    );
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.kill_and_remove(id).await
}

/// delete of a running container: FailedPrecondition, and it still runs.
pub(crate) async fn delete_while_running(h: &Harness) -> Result<()> {
    let id = "busy";
    h.run(id, &Program::Sleep, false, false).await?;
    expect_err(
        "delete while running",
        ErrorKind::FailedPrecondition,
        "",
        h.client().delete(id).await,
    );
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.kill_and_remove(id).await
}

/// A container created and never started can be deleted.
pub(crate) async fn delete_created_container(h: &Harness) -> Result<()> {
    let id = "unstarted";
    h.create(id, &Program::Exit(0), false).await?;
    h.client().delete(id).await?;
    expect_err(
        "delete again",
        ErrorKind::NotFound,
        "",
        h.client().delete(id).await,
    );
    Ok(())
}

/// After delete, the same id can be created and started again.
pub(crate) async fn recreate_after_delete(h: &Harness) -> Result<()> {
    let id = "again";
    for code in [4u8, 5] {
        h.run(id, &Program::Exit(code), false, false).await?;
        assert_eq!(h.wait_exit(id).await?.exit_code, u32::from(code));
        h.remove(id).await?;
    }
    Ok(())
}

/// start of a container whose task exists (running, or stopped and not
/// deleted): AlreadyExists.
pub(crate) async fn double_start(h: &Harness) -> Result<()> {
    let id = "twice";
    h.run(id, &Program::Sleep, false, false).await?;
    expect_err(
        "start while running",
        ErrorKind::AlreadyExists,
        "",
        h.start(id, false).await,
    );
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGKILL)
        .await?;
    h.wait_exit(id).await?;
    expect_err(
        "start of a stopped task",
        ErrorKind::AlreadyExists,
        "",
        h.start(id, false).await,
    );
    h.remove(id).await?;
    Ok(())
}

/// create with an id in use: AlreadyExists, and the first container is untouched.
pub(crate) async fn double_create(h: &Harness) -> Result<()> {
    let id = "dup";
    h.create(id, &Program::Exit(7), false).await?;
    expect_err(
        "create twice",
        ErrorKind::AlreadyExists,
        "",
        h.create(id, &Program::Exit(0), false).await,
    );
    h.start(id, false).await?;
    assert_eq!(h.wait_exit(id).await?.exit_code, 7, "the first spec runs");
    h.remove(id).await?;
    Ok(())
}
