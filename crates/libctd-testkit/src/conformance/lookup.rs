//! Lookups: every operation on a container that does not exist, or has no task.

use libctd_core::{ErrorKind, INIT_PROCESS_ID, Result, discard_stdio};

use super::{Harness, Program, Support, expect_err};

const GHOST: &str = "ghost";

/// `result` is NotFound "no such container", or, for an operation the
/// platform lacks, the error its capability names.
fn not_found_or<T: std::fmt::Debug>(what: &str, support: Support, result: Result<T>) {
    not_found_saying_or(what, "no such container", support, result);
}

/// `result` is NotFound with `says` in its message, or, for an operation
/// the platform lacks, the error its capability names.
fn not_found_saying_or<T: std::fmt::Debug>(
    what: &str,
    says: &str,
    support: Support,
    result: Result<T>,
) {
    match (support, &result) {
        (Support::Fails { kind, contains }, Err(e)) if e.kind() == kind => {
            expect_err(what, kind, contains, result);
        }
        _ => {
            expect_err(what, ErrorKind::NotFound, says, result);
        }
    }
}

/// start, exec and restore of an unknown container: NotFound.
pub(crate) async fn unknown_container_start_exec_restore(h: &Harness) -> Result<()> {
    let c = h.client();
    expect_err(
        "start",
        ErrorKind::NotFound,
        "no such container",
        c.start(GHOST, None, false, discard_stdio()).await,
    );
    let process = h.fixture().process(&Program::Exit(0), false);
    expect_err(
        "exec",
        ErrorKind::NotFound,
        "no such container",
        c.exec(GHOST, "e1", &process, false, discard_stdio()).await,
    );
    expect_err(
        "restore",
        ErrorKind::NotFound,
        "no such container",
        c.restore(GHOST, discard_stdio()).await,
    );
    Ok(())
}

/// Process operations on an unknown container: NotFound.
pub(crate) async fn unknown_container_process_operations(h: &Harness) -> Result<()> {
    let c = h.client();
    for process in [INIT_PROCESS_ID, "e1"] {
        expect_err(
            "signal_process",
            ErrorKind::NotFound,
            "no such container",
            c.signal_process(GHOST, process, 15).await,
        );
        not_found_or(
            "resize_terminal",
            h.caps().terminal,
            c.resize_terminal(GHOST, process, 80, 24).await,
        );
        expect_err(
            "close_stdin",
            ErrorKind::NotFound,
            "no such container",
            c.close_stdin(GHOST, process).await,
        );
    }
    Ok(())
}

/// Task operations on an unknown container: NotFound (or the platform's
/// error for what it lacks).
pub(crate) async fn unknown_container_task_operations(h: &Harness) -> Result<()> {
    let c = h.client();
    let caps = h.caps().clone();
    not_found_or("pause", caps.pause, c.pause(GHOST).await);
    not_found_or("resume", caps.pause, c.resume(GHOST).await);
    not_found_or("stats", caps.stats, c.stats(GHOST).await);
    not_found_or("list_pids", caps.list_pids, c.list_pids(GHOST).await);
    not_found_or("summary", caps.summary, c.summary(GHOST).await);
    expect_err(
        "status",
        ErrorKind::NotFound,
        "no such container",
        c.status(GHOST).await,
    );
    not_found_or(
        "update_resources",
        caps.update_resources,
        c.update_resources(GHOST, &h.fixture().resources()).await,
    );
    let dir = h.fixture().checkpoint_dir();
    not_found_or(
        "create_checkpoint",
        caps.checkpoint,
        c.create_checkpoint(GHOST, &dir, false).await,
    );
    Ok(())
}

/// delete_task and delete of an unknown container: NotFound.
pub(crate) async fn unknown_container_delete(h: &Harness) -> Result<()> {
    let c = h.client();
    expect_err(
        "delete_task",
        ErrorKind::NotFound,
        "no such container",
        c.delete_task(GHOST).await,
    );
    expect_err(
        "delete",
        ErrorKind::NotFound,
        "no such container",
        c.delete(GHOST).await,
    );
    Ok(())
}

/// A created container that was not started has no init process to
/// signal, resize, close or delete.
pub(crate) async fn created_container_has_no_task(h: &Harness) -> Result<()> {
    let id = "created";
    h.create(id, &Program::Sleep, false).await?;
    let c = h.client();
    expect_err(
        "signal_process before start",
        ErrorKind::NotFound,
        "",
        c.signal_process(id, INIT_PROCESS_ID, 9).await,
    );
    expect_err(
        "close_stdin before start",
        ErrorKind::NotFound,
        "",
        c.close_stdin(id, INIT_PROCESS_ID).await,
    );
    expect_err(
        "delete_task before start",
        ErrorKind::NotFound,
        "",
        c.delete_task(id).await,
    );
    let status = c.status(id).await;
    if let Some(status) =
        h.check_support("status before start", h.caps().status_before_start, status)
    {
        assert_eq!(status, libctd_core::Status::Created, "status before start");
    }
    let process = h.fixture().process(&Program::Exit(0), false);
    expect_err(
        "exec before start",
        ErrorKind::NotFound,
        "not running",
        c.exec(id, "e1", &process, false, discard_stdio()).await,
    );
    c.delete(id).await?;
    expect_err(
        "status after delete",
        ErrorKind::NotFound,
        "",
        c.status(id).await,
    );
    Ok(())
}

/// Every operation of the trait's "no task" row, on a container never
/// started and on one whose task was deleted: NotFound "container is not
/// running" (or the error of a capability the platform lacks).
pub(crate) async fn task_less_operations(h: &Harness) -> Result<()> {
    let id = "taskless";
    h.create(id, &Program::Sleep, false).await?;
    task_less(h, id, "never started").await;
    h.client().delete(id).await?;
    h.run(id, &Program::Exit(0), false, false).await?;
    h.wait_exit(id).await?;
    h.client().delete_task(id).await?;
    task_less(h, id, "task deleted").await;
    h.client().delete(id).await?;
    Ok(())
}

async fn task_less(h: &Harness, id: &str, when: &str) {
    const SAYS: &str = "not running";
    let c = h.client();
    let caps = h.caps();
    let what = |op: &str| format!("{op} ({when})");
    let process = h.fixture().process(&Program::Exit(0), false);
    let checkpoint = std::env::temp_dir().join(format!("libctd-taskless-{}", std::process::id()));
    expect_err(
        &what("signal_process"),
        ErrorKind::NotFound,
        SAYS,
        c.signal_process(id, INIT_PROCESS_ID, 9).await,
    );
    expect_err(
        &what("exec"),
        ErrorKind::NotFound,
        SAYS,
        c.exec(id, "e1", &process, false, discard_stdio()).await,
    );
    not_found_saying_or(
        &what("resize_terminal"),
        SAYS,
        caps.terminal,
        c.resize_terminal(id, INIT_PROCESS_ID, 80, 24).await,
    );
    expect_err(
        &what("close_stdin"),
        ErrorKind::NotFound,
        SAYS,
        c.close_stdin(id, INIT_PROCESS_ID).await,
    );
    not_found_saying_or(&what("pause"), SAYS, caps.pause, c.pause(id).await);
    not_found_saying_or(&what("resume"), SAYS, caps.pause, c.resume(id).await);
    not_found_saying_or(&what("stats"), SAYS, caps.stats, c.stats(id).await);
    not_found_saying_or(
        &what("list_pids"),
        SAYS,
        caps.list_pids,
        c.list_pids(id).await,
    );
    not_found_saying_or(&what("summary"), SAYS, caps.summary, c.summary(id).await);
    not_found_saying_or(
        &what("update_resources"),
        SAYS,
        caps.update_resources,
        c.update_resources(id, &h.fixture().resources()).await,
    );
    not_found_saying_or(
        &what("create_checkpoint"),
        SAYS,
        caps.checkpoint,
        c.create_checkpoint(id, &checkpoint, false).await,
    );
    assert!(
        !checkpoint.exists(),
        "{}: a checkpoint was written",
        what("create_checkpoint")
    );
    expect_err(
        &what("delete_task"),
        ErrorKind::NotFound,
        SAYS,
        c.delete_task(id).await,
    );
}
