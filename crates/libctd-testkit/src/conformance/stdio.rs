//! Standard streams: whole output, separate stderr, stdin, EOF, terminals.

use libctd_core::{ErrorKind, EventType, INIT_PROCESS_ID, Result};

use super::harness::SIGKILL;
use super::{Harness, Program, expect_err};

/// The size of the large output case: over a MiB, not a power of two.
const LARGE: u64 = 1024 * 1024 + 4099;

/// Printed text arrives whole on stdout; stderr stays empty.
pub(crate) async fn stdout_whole(h: &Harness) -> Result<()> {
    let id = "print";
    let text = "hello, world\nsecond line\n";
    let started = h
        .run(id, &Program::Print(text.into()), false, false)
        .await?;
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert_eq!(String::from_utf8_lossy(&out), text);
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    let err = started.stdio.wait_stderr(h.timeout()).await?;
    assert!(
        err.is_empty(),
        "unexpected stderr {:?}",
        String::from_utf8_lossy(&err)
    );
    h.remove(id).await?;
    Ok(())
}

/// A large output arrives complete.
pub(crate) async fn large_output_whole(h: &Harness) -> Result<()> {
    let id = "flood";
    let started = h
        .run(id, &Program::Output { bytes: LARGE }, false, false)
        .await?;
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert_eq!(out.len() as u64, LARGE, "stdout length");
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    h.remove(id).await?;
    Ok(())
}

/// stderr arrives on its own stream, not on stdout.
pub(crate) async fn stderr_separate(h: &Harness) -> Result<()> {
    let id = "complain";
    let started = h
        .run(id, &Program::PrintStderr("oops\n".into()), false, false)
        .await?;
    assert!(
        started.stdio.had_stderr(),
        "no stderr stream without a terminal"
    );
    let err = started.stdio.wait_stderr(h.timeout()).await?;
    assert_eq!(String::from_utf8_lossy(&err), "oops\n");
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert!(
        out.is_empty(),
        "stderr leaked to stdout: {:?}",
        String::from_utf8_lossy(&out)
    );
    h.wait_exit(id).await?;
    h.remove(id).await?;
    Ok(())
}

/// What the engine writes to stdin reaches the process; close_stdin ends it.
pub(crate) async fn stdin_reaches_process(h: &Harness) -> Result<()> {
    let id = "echo";
    let started = h.run(id, &Program::Cat, false, true).await?;
    assert!(started.stdio.had_stdin(), "no stdin stream with with_stdin");
    started.stdio.write_stdin(b"ping\n").await?;
    started
        .stdio
        .wait_stdout_contains(b"ping\n", h.timeout())
        .await?;
    started.stdio.write_stdin(b"pong\n").await?;
    started
        .stdio
        .wait_stdout_contains(b"pong\n", h.timeout())
        .await?;
    h.client().close_stdin(id, INIT_PROCESS_ID).await?;
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert_eq!(String::from_utf8_lossy(&out), "ping\npong\n");
    h.remove(id).await?;
    Ok(())
}

/// close_stdin on a process that reads stdin gives it EOF at once.
pub(crate) async fn close_stdin_gives_eof(h: &Harness) -> Result<()> {
    let id = "eof";
    let started = h.run(id, &Program::Cat, false, true).await?;
    h.client().close_stdin(id, INIT_PROCESS_ID).await?;
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert!(
        out.is_empty(),
        "unexpected output {:?}",
        String::from_utf8_lossy(&out)
    );
    h.remove(id).await?;
    Ok(())
}

/// Shutting down the engine's stdin stream gives the process EOF, after
/// everything written before.
pub(crate) async fn direct_stdin_shutdown_gives_eof(h: &Harness) -> Result<()> {
    let id = "shut";
    let started = h.run(id, &Program::Cat, false, true).await?;
    started.stdio.write_stdin(b"last words").await?;
    started.stdio.close_stdin().await?;
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert_eq!(String::from_utf8_lossy(&out), "last words");
    h.remove(id).await?;
    Ok(())
}

/// Without with_stdin there is no stdin stream and the process reads EOF.
pub(crate) async fn no_stdin_reads_eof(h: &Harness) -> Result<()> {
    let id = "nostdin";
    let started = h.run(id, &Program::Cat, false, false).await?;
    assert!(
        !started.stdio.had_stdin(),
        "a stdin stream without with_stdin"
    );
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    h.remove(id).await?;
    Ok(())
}

/// A terminal process has no stderr stream; its output arrives on stdout.
pub(crate) async fn terminal_has_no_stderr(h: &Harness) -> Result<()> {
    let id = "tty";
    let run = h
        .run(id, &Program::PrintStderr("on the tty".into()), true, false)
        .await;
    let Some(started) = h.check_support("terminal process", h.caps().terminal, run) else {
        return h.discard(id).await;
    };
    assert!(started.stdio.terminal(), "DirectIo.terminal is false");
    assert!(
        !started.stdio.had_stderr(),
        "a stderr stream with a terminal"
    );
    let out = started.stdio.wait_stdout(h.timeout()).await?;
    assert!(
        String::from_utf8_lossy(&out).contains("on the tty"),
        "terminal output {:?}",
        String::from_utf8_lossy(&out)
    );
    h.wait_exit(id).await?;
    h.remove(id).await?;
    Ok(())
}

/// A stdio callback that fails aborts start, leaves no task behind, and a
/// second start succeeds.
pub(crate) async fn attach_failure_then_retry(h: &Harness) -> Result<()> {
    let id = "retry";
    h.create(id, &Program::Exit(6), false).await?;
    let failing = libctd_core::stdio_callback(|_| {
        Err(libctd_core::Error::permission_denied(
            "the engine refuses these streams",
        ))
    });
    expect_err(
        "start with a failing callback",
        ErrorKind::PermissionDenied,
        "refuses",
        h.client().start(id, None, false, failing).await,
    );
    assert!(
        !h.backend().event_types_of(id).contains(&EventType::Start),
        "a start event after a failed start: {:?}",
        h.backend().event_types_of(id)
    );
    h.start(id, false).await?;
    assert_eq!(h.wait_exit(id).await?.exit_code, 6);
    h.remove(id).await?;
    Ok(())
}

/// A start that fails (the command does not exist) can be retried: it fails
/// the same way instead of finding a leftover task, and delete works.
pub(crate) async fn failed_start_can_be_retried(h: &Harness) -> Result<()> {
    let id = "missing";
    h.create(id, &Program::Missing, false).await?;
    let first = match h.start(id, false).await {
        Ok(s) => panic!("starting a missing command succeeded with pid {}", s.pid),
        Err(e) => e,
    };
    assert_ne!(first.kind(), ErrorKind::AlreadyExists, "{}", first.report());
    let second = expect_err("second start", first.kind(), "", h.start(id, false).await);
    assert_eq!(second.kind(), first.kind());
    assert!(
        !h.backend().event_types_of(id).contains(&EventType::Start),
        "a start event for a failed start"
    );
    h.client().delete(id).await?;
    Ok(())
}

/// Resizing a terminal process works; bad sizes are InvalidArgument.
pub(crate) async fn resize_terminal(h: &Harness) -> Result<()> {
    let id = "resize";
    let run = h.run(id, &Program::Sleep, true, false).await;
    let Some(_started) = h.check_support("terminal process", h.caps().terminal, run) else {
        return h.discard(id).await;
    };
    h.client()
        .resize_terminal(id, INIT_PROCESS_ID, 100, 40)
        .await?;
    for (w, hgt) in [(0, 24), (80, 0), (70_000, 24), (80, 70_000)] {
        expect_err(
            &format!("resize to {w}x{hgt}"),
            ErrorKind::InvalidArgument,
            "",
            h.client()
                .resize_terminal(id, INIT_PROCESS_ID, w, hgt)
                .await,
        );
    }
    expect_err(
        "resize an unknown exec",
        ErrorKind::NotFound,
        "no such exec",
        h.client().resize_terminal(id, "nobody", 80, 24).await,
    );
    let plain = h.fixture().process(&Program::Sleep, false);
    h.client()
        .exec(id, "plain", &plain, false, libctd_core::discard_stdio())
        .await?;
    expect_err(
        "resize a process without a terminal",
        ErrorKind::FailedPrecondition,
        "terminal",
        h.client().resize_terminal(id, "plain", 80, 24).await,
    );
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGKILL)
        .await?;
    h.wait_exit(id).await?;
    h.remove(id).await?;
    Ok(())
}

/// close_stdin of an unknown exec: NotFound "no such exec".
pub(crate) async fn close_stdin_unknown_process(h: &Harness) -> Result<()> {
    let id = "calm";
    h.run(id, &Program::Sleep, false, false).await?;
    expect_err(
        "close_stdin of an unknown exec",
        ErrorKind::NotFound,
        "no such exec",
        h.client().close_stdin(id, "nobody").await,
    );
    h.kill_and_remove(id).await
}
