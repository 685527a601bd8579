//! Event order per container, pause/resume, and OOM kills.

use libctd_core::{EventType, INIT_PROCESS_ID, Result, Status};

use super::harness::SIGKILL;
use super::{Harness, Program, Support, expect_err};

fn position(types: &[EventType], t: EventType) -> usize {
    types
        .iter()
        .position(|x| *x == t)
        .unwrap_or_else(|| panic!("no {t} event among {types:?}"))
}

/// A container's events arrive as create < start < exit.
pub(crate) async fn init_event_order(h: &Harness) -> Result<()> {
    let id = "order";
    h.run(id, &Program::Exit(0), false, false).await?;
    h.wait_exit(id).await?;
    let types = h.backend().event_types_of(id);
    let (create, start, exit) = (
        position(&types, EventType::Create),
        position(&types, EventType::Start),
        position(&types, EventType::Exit),
    );
    assert!(create < start && start < exit, "event order {types:?}");
    h.remove(id).await?;
    Ok(())
}

/// An exec's events arrive as exec-added < exec-started < exit, after the
/// container's start.
pub(crate) async fn exec_event_order(h: &Harness) -> Result<()> {
    let id = "order";
    h.run(id, &Program::Sleep, false, false).await?;
    h.exec(id, "e1", &Program::Exit(0), false, false).await?;
    h.next_process_event(id, "e1", EventType::Exit).await?;
    let events = h.backend().events_of(id);
    let of_e1: Vec<EventType> = events
        .iter()
        .filter(|(_, i)| i.process_id == "e1")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        of_e1,
        [
            EventType::ExecAdded,
            EventType::ExecStarted,
            EventType::Exit
        ],
        "events of e1"
    );
    let types: Vec<EventType> = events.iter().map(|(t, _)| *t).collect();
    assert!(
        position(&types, EventType::Start) < position(&types, EventType::ExecAdded),
        "event order {types:?}"
    );
    h.kill_and_remove(id).await
}

/// Events of two containers each name their own container, in each one's order.
pub(crate) async fn events_per_container(h: &Harness) -> Result<()> {
    let ids = ["left", "right"];
    for (i, id) in ids.iter().enumerate() {
        h.run(id, &Program::Exit(i as u8 + 10), false, false)
            .await?;
    }
    for (i, id) in ids.iter().enumerate() {
        let exit = h.wait_exit(id).await?;
        assert_eq!(exit.exit_code, i as u32 + 10, "exit of {id}");
        for (t, info) in h.backend().events_of(id) {
            assert_eq!(info.container_id, *id, "{t} event delivered for {id}");
        }
        let types = h.backend().event_types_of(id);
        assert!(
            position(&types, EventType::Start) < position(&types, EventType::Exit),
            "{id}: {types:?}"
        );
    }
    for id in ids {
        h.remove(id).await?;
    }
    Ok(())
}

/// pause then resume: paused and resumed events and statuses, or the
/// platform's error for each.
pub(crate) async fn pause_resume(h: &Harness) -> Result<()> {
    let id = "freeze";
    h.run(id, &Program::Sleep, false, false).await?;
    let support = h.caps().pause;
    if h.check_support("pause", support, h.client().pause(id).await)
        .is_some()
    {
        let paused = h.next_event(id, EventType::Paused).await?;
        assert_eq!(paused.container_id, id);
        assert_eq!(h.client().status(id).await?, Status::Paused);
        h.client().resume(id).await?;
        h.next_event(id, EventType::Resumed).await?;
        assert_eq!(h.client().status(id).await?, Status::Running);
    } else {
        h.check_support("resume", support, h.client().resume(id).await);
        assert_eq!(h.client().status(id).await?, Status::Running);
    }
    h.kill_and_remove(id).await
}

/// resume of a container that is not paused fails, and it keeps running.
pub(crate) async fn resume_not_paused(h: &Harness) -> Result<()> {
    let id = "awake";
    h.run(id, &Program::Sleep, false, false).await?;
    let r = h.client().resume(id).await;
    match h.caps().pause {
        super::Support::Supported => {
            expect_err(
                "resume when not paused",
                libctd_core::ErrorKind::FailedPrecondition,
                "",
                r,
            );
        }
        super::Support::Fails { kind, contains } => {
            expect_err("resume", kind, contains, r);
        }
    }
    assert_eq!(h.client().status(id).await?, Status::Running);
    h.kill_and_remove(id).await
}

/// An OOM kill: an oom event, then the exit with oom_killed. Where the
/// platform reports no OOM, no oom event arrives and oom_killed stays false.
pub(crate) async fn oom_killed(h: &Harness) -> Result<()> {
    let id = "hungry";
    h.run(id, &Program::Oom, false, false).await?;
    let exit = h.wait_exit(id).await?;
    let types = h.backend().event_types_of(id);
    if h.caps().oom_events {
        let oom = position(&types, EventType::Oom);
        assert!(oom < position(&types, EventType::Exit), "events {types:?}");
        assert!(exit.oom_killed, "exit without oom_killed");
        assert_eq!(exit.exit_code, 137, "exit code of an OOM kill");
    } else {
        assert!(!types.contains(&EventType::Oom), "an oom event: {types:?}");
        assert!(!exit.oom_killed, "oom_killed without OOM support");
    }
    h.remove(id).await?;
    Ok(())
}

/// A container killed normally is not oom_killed.
pub(crate) async fn kill_is_not_oom(h: &Harness) -> Result<()> {
    let id = "plain";
    h.run(id, &Program::Sleep, false, false).await?;
    h.client()
        .signal_process(id, INIT_PROCESS_ID, SIGKILL)
        .await?;
    let exit = h.wait_exit(id).await?;
    assert!(!exit.oom_killed, "oom_killed after a plain SIGKILL");
    assert!(!h.backend().event_types_of(id).contains(&EventType::Oom));
    h.remove(id).await?;
    Ok(())
}

/// pause of a container whose init process exited (its task not yet
/// deleted): FailedPrecondition, or the error of a platform without pause.
pub(crate) async fn pause_stopped(h: &Harness) -> Result<()> {
    let id = "pause-stopped";
    h.run(id, &Program::Exit(0), false, false).await?;
    h.wait_exit(id).await?;
    let result = h.client().pause(id).await;
    match h.caps().pause {
        Support::Fails { kind, contains } => {
            expect_err("pause of a stopped task", kind, contains, result);
        }
        _ => {
            expect_err(
                "pause of a stopped task",
                libctd_core::ErrorKind::FailedPrecondition,
                "",
                result,
            );
        }
    }
    h.remove(id).await?;
    Ok(())
}
