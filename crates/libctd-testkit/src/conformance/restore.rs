//! restore: running, stopped, created and unknown containers.

use libctd_core::{ErrorKind, Result, discard_stdio};

use crate::backend::capture_stdio;

use super::{Harness, Program, expect_err};

/// restore of a running container: alive with its pid and fresh streams
/// (where the platform re-attaches), else not alive.
pub(crate) async fn restore_running(h: &Harness) -> Result<()> {
    let id = "alive";
    let started = h.run(id, &Program::Sleep, false, false).await?;
    let (callback, stdio) = capture_stdio();
    let restored = h.client().restore(id, callback).await?;
    if h.caps().restore_reattaches {
        assert!(restored.alive, "a running container restored as not alive");
        assert_eq!(restored.pid, Some(started.pid), "restored pid");
        assert!(stdio.attached(), "restore did not call the stdio callback");
    } else {
        assert!(
            !restored.alive,
            "restore re-attached where the platform cannot"
        );
    }
    h.discard(id).await
}

/// restore of a stopped container: not alive.
pub(crate) async fn restore_stopped(h: &Harness) -> Result<()> {
    let id = "stopped";
    h.run(id, &Program::Exit(0), false, false).await?;
    h.wait_exit(id).await?;
    let restored = h.client().restore(id, discard_stdio()).await?;
    assert!(!restored.alive, "a stopped container restored as alive");
    h.discard(id).await
}

/// restore of a created container without a task: not alive, no pid, and
/// the stdio callback is not called.
pub(crate) async fn restore_created(h: &Harness) -> Result<()> {
    let id = "created";
    h.create(id, &Program::Sleep, false).await?;
    let (callback, stdio) = capture_stdio();
    let restored = h.client().restore(id, callback).await?;
    assert!(!restored.alive, "a created container restored as alive");
    assert_eq!(restored.pid, None, "a pid without a task");
    assert!(!stdio.attached(), "stdio callback called without a task");
    h.discard(id).await
}

/// restore of a container that does not exist: NotFound.
pub(crate) async fn restore_unknown(h: &Harness) -> Result<()> {
    let (callback, stdio) = capture_stdio();
    expect_err(
        "restore of an unknown container",
        ErrorKind::NotFound,
        "",
        h.client().restore("nobody-here", callback).await,
    );
    assert!(!stdio.attached());
    Ok(())
}
