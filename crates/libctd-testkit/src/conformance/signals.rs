//! Signals: exit codes, bad numbers, unknown and finished processes.

use libctd_core::{ErrorKind, INIT_PROCESS_ID, Result, Status};

use super::harness::SIGKILL;
use super::{Harness, Program, expect_err};

const SIGTERM: i32 = 15;

/// SIGTERM ends a sleeping container with the platform's code for it.
pub(crate) async fn sigterm_exit_code(h: &Harness) -> Result<()> {
    let id = "term";
    h.run(id, &Program::Sleep, false, false).await?;
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGTERM)
        .await?;
    let exit = h.wait_exit(id).await?;
    assert_eq!(exit.exit_code, h.fixture().signal_exit_code(SIGTERM));
    h.remove(id).await?;
    Ok(())
}

/// SIGKILL ends a sleeping container with the platform's code for it.
pub(crate) async fn sigkill_exit_code(h: &Harness) -> Result<()> {
    let id = "kill";
    h.run(id, &Program::Sleep, false, false).await?;
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGKILL)
        .await?;
    let exit = h.wait_exit(id).await?;
    assert_eq!(exit.exit_code, h.fixture().signal_exit_code(SIGKILL));
    assert_eq!(h.remove(id).await?.exit_code, exit.exit_code);
    Ok(())
}

/// Signal numbers out of range: InvalidArgument, and nothing is sent.
pub(crate) async fn invalid_signal_numbers(h: &Harness) -> Result<()> {
    let id = "calm";
    h.run(id, &Program::Sleep, false, false).await?;
    for sig in [0, -1, -9, 65, 1000, i32::MAX, i32::MIN] {
        expect_err(
            &format!("signal {sig}"),
            ErrorKind::InvalidArgument,
            "",
            h.client().signal_process(id, INIT_PROCESS_ID, sig).await,
        );
    }
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.kill_and_remove(id).await
}

/// A signal to an exec id that does not exist: NotFound "no such exec".
pub(crate) async fn signal_unknown_process(h: &Harness) -> Result<()> {
    let id = "calm";
    h.run(id, &Program::Sleep, false, false).await?;
    expect_err(
        "signal an unknown exec",
        ErrorKind::NotFound,
        "no such exec",
        h.client().signal_process(id, "nobody", SIGTERM).await,
    );
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.kill_and_remove(id).await
}

/// A signal to a process that already exited: NotFound.
pub(crate) async fn signal_finished_process(h: &Harness) -> Result<()> {
    let id = "gone";
    h.run(id, &Program::Exit(0), false, false).await?;
    h.wait_exit(id).await?;
    expect_err(
        "signal a finished process",
        ErrorKind::NotFound,
        "",
        h.client()
            .signal_process(id, INIT_PROCESS_ID, SIGKILL)
            .await,
    );
    h.remove(id).await?;
    Ok(())
}
