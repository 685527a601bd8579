//! Bad input: malformed ids everywhere, bad specs, and concurrency between
//! clients and cancelled calls.

use std::time::Duration;

use libctd_core::{
    Client, CreateOptions, ErrorKind, INIT_PROCESS_ID, MAX_ID_LEN, Result, RuntimeOptions, Status,
    discard_stdio,
};

use super::{Harness, Program, expect_err};

fn bad_ids() -> Vec<String> {
    vec![
        String::new(),
        "../x".into(),
        "..".into(),
        "a/b".into(),
        "-lead".into(),
        "trail.".into(),
        "with space".into(),
        "nul\0byte".into(),
        "x".repeat(MAX_ID_LEN + 1),
    ]
}

/// Every operation that takes a container id rejects a malformed one with
/// InvalidArgument.
pub(crate) async fn invalid_container_ids(h: &Harness) -> Result<()> {
    let c: &dyn Client = h.client();
    let spec = h.fixture().spec(&Program::Exit(0), false);
    let process = h.fixture().process(&Program::Exit(0), false);
    let resources = h.fixture().resources();
    let dir = h.fixture().checkpoint_dir();
    for id in bad_ids() {
        let id = id.as_str();
        let inv = |what: &str| format!("{what} with container id {id:?}");
        let k = ErrorKind::InvalidArgument;
        expect_err(
            &inv("create"),
            k,
            "",
            c.create(id, &spec, CreateOptions::default()).await,
        );
        expect_err(
            &inv("start"),
            k,
            "",
            c.start(id, None, false, discard_stdio()).await,
        );
        expect_err(&inv("restore"), k, "", c.restore(id, discard_stdio()).await);
        expect_err(
            &inv("signal_process"),
            k,
            "",
            c.signal_process(id, INIT_PROCESS_ID, 9).await,
        );
        expect_err(
            &inv("exec"),
            k,
            "",
            c.exec(id, "e1", &process, false, discard_stdio()).await,
        );
        expect_err(
            &inv("resize_terminal"),
            k,
            "",
            c.resize_terminal(id, INIT_PROCESS_ID, 80, 24).await,
        );
        expect_err(
            &inv("close_stdin"),
            k,
            "",
            c.close_stdin(id, INIT_PROCESS_ID).await,
        );
        expect_err(&inv("pause"), k, "", c.pause(id).await);
        expect_err(&inv("resume"), k, "", c.resume(id).await);
        expect_err(&inv("stats"), k, "", c.stats(id).await);
        expect_err(&inv("list_pids"), k, "", c.list_pids(id).await);
        expect_err(&inv("summary"), k, "", c.summary(id).await);
        expect_err(&inv("delete_task"), k, "", c.delete_task(id).await);
        expect_err(&inv("delete"), k, "", c.delete(id).await);
        expect_err(&inv("status"), k, "", c.status(id).await);
        expect_err(
            &inv("update_resources"),
            k,
            "",
            c.update_resources(id, &resources).await,
        );
        expect_err(
            &inv("create_checkpoint"),
            k,
            "",
            c.create_checkpoint(id, &dir, false).await,
        );
    }
    // "../x" must not have reached anything called "x".
    expect_err("status of x", ErrorKind::NotFound, "", c.status("x").await);
    assert!(
        !dir.exists(),
        "a checkpoint directory was made for a bad id"
    );
    Ok(())
}

/// Every operation that takes a process id rejects a malformed one with
/// InvalidArgument, on a running container.
pub(crate) async fn invalid_process_ids(h: &Harness) -> Result<()> {
    let id = "target";
    h.run(id, &Program::Sleep, false, false).await?;
    let c = h.client();
    let process = h.fixture().process(&Program::Exit(0), false);
    for p in bad_ids() {
        let p = p.as_str();
        let inv = |what: &str| format!("{what} with process id {p:?}");
        let k = ErrorKind::InvalidArgument;
        expect_err(
            &inv("signal_process"),
            k,
            "",
            c.signal_process(id, p, 9).await,
        );
        expect_err(
            &inv("exec"),
            k,
            "",
            c.exec(id, p, &process, false, discard_stdio()).await,
        );
        expect_err(
            &inv("resize_terminal"),
            k,
            "",
            c.resize_terminal(id, p, 80, 24).await,
        );
        expect_err(&inv("close_stdin"), k, "", c.close_stdin(id, p).await);
    }
    assert_eq!(
        c.status(id).await?,
        Status::Running,
        "bad ids disturbed the container"
    );
    h.kill_and_remove(id).await
}

/// Bad arguments are InvalidArgument before any lookup: an engine sees the
/// same kind whether or not the container exists.
pub(crate) async fn bad_input_checked_before_lookup(h: &Harness) -> Result<()> {
    let c = h.client();
    let ghost = "ghost";
    let process = h.fixture().process(&Program::Exit(0), false);
    let k = ErrorKind::InvalidArgument;
    for (what, result) in [
        (
            "signal 0",
            c.signal_process(ghost, INIT_PROCESS_ID, 0).await,
        ),
        (
            "signal 65",
            c.signal_process(ghost, INIT_PROCESS_ID, 65).await,
        ),
        (
            "signal a bad process id",
            c.signal_process(ghost, "a/b", 9).await,
        ),
        (
            "resize to 0x24",
            c.resize_terminal(ghost, INIT_PROCESS_ID, 0, 24).await,
        ),
        ("close_stdin of \"\"", c.close_stdin(ghost, "").await),
    ] {
        let err = expect_err(&format!("{what} on an unknown container"), k, "", result);
        assert_eq!(
            err.container_id(),
            Some(ghost),
            "{err} does not name the container"
        );
    }
    expect_err(
        "exec with a bad process id on an unknown container",
        k,
        "",
        c.exec(ghost, "../x", &process, false, discard_stdio())
            .await,
    );
    // With good input, the same calls find no container.
    expect_err(
        "signal on an unknown container",
        ErrorKind::NotFound,
        "no such container",
        c.signal_process(ghost, INIT_PROCESS_ID, 9).await,
    );
    Ok(())
}

/// A 76-byte id, the longest allowed, works end to end.
pub(crate) async fn longest_container_id(h: &Harness) -> Result<()> {
    let id = "L".repeat(MAX_ID_LEN);
    h.run(&id, &Program::Exit(0), false, false).await?;
    assert_eq!(h.wait_exit(&id).await?.exit_code, 0);
    h.remove(&id).await?;
    Ok(())
}

/// A spec without a process is InvalidArgument, and leaves no container.
pub(crate) async fn spec_without_process(h: &Harness) -> Result<()> {
    let id = "hollow";
    let mut spec = h.fixture().spec(&Program::Exit(0), false);
    spec.set_process(None);
    expect_err(
        "create without a process",
        ErrorKind::InvalidArgument,
        "",
        h.client()
            .create(id, &spec, h.fixture().create_options())
            .await,
    );
    expect_err(
        "status",
        ErrorKind::NotFound,
        "",
        h.client().status(id).await,
    );
    h.create(id, &Program::Exit(0), false).await?;
    h.client().delete(id).await?;
    Ok(())
}

/// Runtime options of a type no backend understands are InvalidArgument
/// naming the type, and leave no container: the id can be created at once.
pub(crate) async fn unknown_runtime_options(h: &Harness) -> Result<()> {
    let id = "odd-runtime";
    let spec = h.fixture().spec(&Program::Exit(0), false);
    let odd = RuntimeOptions::new("example.invalid.Options", vec![0x08, 0x01]);
    let err = expect_err(
        "create with unknown runtime options",
        ErrorKind::InvalidArgument,
        "example.invalid.Options",
        h.client()
            .create(
                id,
                &spec,
                h.fixture().create_options().with_runtime_options(odd),
            )
            .await,
    );
    assert_eq!(err.operation(), Some("create"), "{err}");
    expect_err(
        "status",
        ErrorKind::NotFound,
        "",
        h.client().status(id).await,
    );
    h.create(id, &Program::Exit(0), false).await?;
    h.client().delete(id).await?;
    Ok(())
}

/// An exec process without args is InvalidArgument.
pub(crate) async fn exec_without_args(h: &Harness) -> Result<()> {
    let id = "host";
    h.run(id, &Program::Sleep, false, false).await?;
    let mut process = h.fixture().process(&Program::Exit(0), false);
    process.set_args(None);
    expect_err(
        "exec without args",
        ErrorKind::InvalidArgument,
        "",
        h.client()
            .exec(id, "empty", &process, false, discard_stdio())
            .await,
    );
    h.kill_and_remove(id).await
}

/// Two clients in different namespaces do not see each other's
/// containers, may use the same ids, and get only their own events.
pub(crate) async fn namespaces_are_isolated(h: &Harness) -> Result<()> {
    let (other, other_events) = h.new_client().await?;
    let id = "same-name";
    h.run(id, &Program::Exit(1), false, false).await?;
    let spec = h.fixture().spec(&Program::Exit(2), false);
    expect_err(
        "status from the other namespace",
        ErrorKind::NotFound,
        "",
        other.status(id).await,
    );
    other
        .create(id, &spec, h.fixture().create_options())
        .await?;
    other.start(id, None, false, discard_stdio()).await?;
    let mine = h.wait_exit(id).await?;
    let theirs = other_events
        .next_process_event(
            id,
            INIT_PROCESS_ID,
            libctd_core::EventType::Exit,
            h.timeout(),
        )
        .await?;
    assert_eq!(
        (mine.exit_code, theirs.exit_code),
        (1, 2),
        "exit codes crossed namespaces"
    );
    assert_eq!(
        h.backend()
            .events_of(id)
            .iter()
            .filter(|(t, _)| *t == libctd_core::EventType::Exit)
            .count(),
        1
    );
    other.delete_task(id).await?;
    other.delete(id).await?;
    expect_err(
        "the other namespace's delete",
        ErrorKind::NotFound,
        "",
        other.status(id).await,
    );
    assert_eq!(
        h.client().status(id).await?,
        Status::Stopped,
        "deleting in one namespace touched the other"
    );
    h.remove(id).await?;
    Ok(())
}

/// Containers started concurrently each get their own exit.
pub(crate) async fn concurrent_containers(h: &Harness) -> Result<()> {
    let runs = (0..6u8).map(|i| async move {
        let id = format!("para{i}");
        h.run(&id, &Program::Exit(20 + i), false, false).await?;
        let exit = h.wait_exit(&id).await?;
        assert_eq!(exit.exit_code, u32::from(20 + i), "exit of {id}");
        h.remove(&id).await?;
        Ok::<(), libctd_core::Error>(())
    });
    futures::future::try_join_all(runs).await?;
    Ok(())
}

/// A start cancelled at once leaves a consistent state: either it happened
/// (the task exists, a second start is AlreadyExists) or it did not (a
/// second start works).
pub(crate) async fn cancelled_start_is_consistent(h: &Harness) -> Result<()> {
    let id = "cancel";
    h.create(id, &Program::Exit(9), false).await?;
    let cancelled = tokio::time::timeout(
        Duration::ZERO,
        h.client().start(id, None, false, discard_stdio()),
    )
    .await;
    match cancelled {
        Ok(result) => {
            result?;
            expect_err(
                "start again",
                ErrorKind::AlreadyExists,
                "",
                h.start(id, false).await,
            );
        }
        Err(_elapsed) => match h.start(id, false).await {
            Ok(_) => {}
            Err(e) if e.is(ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(e),
        },
    }
    assert_eq!(h.wait_exit(id).await?.exit_code, 9);
    h.remove(id).await?;
    Ok(())
}

/// Bad input never hangs: a burst of invalid calls all return at once with
/// typed errors, and the client still works afterwards.
pub(crate) async fn client_survives_bad_input(h: &Harness) -> Result<()> {
    let c = h.client();
    for _ in 0..20 {
        expect_err(
            "bad id",
            ErrorKind::InvalidArgument,
            "",
            c.status("../../etc").await,
        );
        expect_err("unknown", ErrorKind::NotFound, "", c.status("nobody").await);
    }
    let id = "after";
    h.run(id, &Program::Exit(0), false, false).await?;
    assert_eq!(h.wait_exit(id).await?.exit_code, 0);
    h.remove(id).await?;
    Ok(())
}
