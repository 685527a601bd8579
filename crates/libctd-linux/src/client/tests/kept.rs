//! Exits kept across a daemon restart (`shim_exits`) for tasks containerd
//! dropped: delivered once to the client that saw the outage, answered by
//! restore and delete_task to a client that came after it.

use std::sync::Arc;

use libctd_core::{
    Client, ErrorKind, EventType, INIT_PROCESS_ID, UNKNOWN_EXIT_CODE, discard_stdio,
};

use super::{DEADLINE, NS, WAIT, fixture_with};
use crate::conn::mem::Mem;
use crate::shim_exits::{KeptStatus, Lost, ShimExit, ShimExits};

fn kept(pid: u32, status: KeptStatus) -> ShimExit {
    ShimExit {
        pid,
        status,
        exited_at: None,
    }
}

fn exits() -> (tempfile::TempDir, Arc<ShimExits>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exits = Arc::new(ShimExits::new(dir.path().join("exits")));
    (dir, exits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_after_the_outage_gets_kept_exits_from_restore_and_delete_task() {
    let (_dir, exits) = exits();
    let mem = Mem::new(DEADLINE);
    let first = fixture_with(mem.clone(), Some(exits.clone())).await;
    let a = first.run("a").await;
    let b = first.run("b").await;
    first.run("c").await;
    // The engine goes down; containerd restarts and drops the three tasks;
    // the daemon's start kept a's status, and that b's was lost.
    drop(first);
    for id in ["a", "b", "c"] {
        mem.lose_task(id);
    }
    exits.keep(NS, "a", kept(a, KeptStatus::Exited(7)));
    exits.keep(NS, "b", kept(b, KeptStatus::Lost(Lost::ShimDied)));

    let second = fixture_with(mem.clone(), Some(exits.clone())).await;
    let c = &second.client;
    let restored = c.restore("a", discard_stdio()).await.expect("restore a");
    assert_eq!((restored.alive, restored.pid), (false, Some(a)));
    assert_eq!(c.delete_task("a").await.expect("a's exit").exit_code, 7);
    assert!(exits.find(NS, "a").is_none(), "claimed once");
    let again = c
        .delete_task("a")
        .await
        .expect_err("nothing left to answer");
    assert_eq!(again.kind(), ErrorKind::NotFound);

    let restored = c.restore("b", discard_stdio()).await.expect("restore b");
    assert_eq!((restored.alive, restored.pid), (false, Some(b)));
    let exit = c.delete_task("b").await.expect("b's exit");
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);

    // Nothing kept: no task, no pid, nothing to answer.
    let restored = c.restore("c", discard_stdio()).await.expect("restore c");
    assert_eq!((restored.alive, restored.pid), (false, None));
    let none = c.delete_task("c").await.expect_err("no exit to answer");
    assert_eq!(none.kind(), ErrorKind::NotFound);

    c.event_queue().wait_idle().await;
    assert!(
        second.backend.events().is_empty(),
        "a restored exit is delete_task's answer, not an event: {:?}",
        second.backend.events()
    );
    for id in ["a", "b", "c"] {
        c.delete(id).await.expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_that_saw_the_outage_gets_each_kept_exit_once() {
    let (_dir, exits) = exits();
    let f = fixture_with(Mem::new(DEADLINE), Some(exits.clone())).await;
    let a = f.run("a").await;
    let b = f.run("b").await;
    let c = f.run("c").await;
    f.mem.set_down(true);
    for id in ["a", "b", "c"] {
        f.mem.lose_task(id);
    }
    exits.keep(NS, "a", kept(a, KeptStatus::Exited(9)));
    exits.keep(NS, "b", kept(b, KeptStatus::Lost(Lost::Escaped)));
    // A record of an earlier task of c's id is not c's.
    exits.keep(NS, "c", kept(c + 1000, KeptStatus::Exited(1)));
    f.mem.set_down(false);

    let exit = f
        .backend
        .next_event("a", EventType::Exit, WAIT)
        .await
        .expect("a's exit");
    assert_eq!((exit.exit_code, exit.error.is_none()), (9, true));
    let exit = f
        .backend
        .next_event("b", EventType::Exit, WAIT)
        .await
        .expect("b's exit");
    assert_eq!(exit.exit_code, UNKNOWN_EXIT_CODE);
    let why = exit.error.expect("a lost exit says why").to_string();
    assert!(why.contains(Lost::Escaped.why()), "{why}");
    let exit = f
        .backend
        .next_event("c", EventType::Exit, WAIT)
        .await
        .expect("c's exit");
    assert_eq!(
        exit.exit_code, UNKNOWN_EXIT_CODE,
        "not the earlier task's status"
    );

    // delete_task answers the same exit, and claims it.
    assert_eq!(
        f.client.delete_task("a").await.expect("delete a").exit_code,
        9
    );
    assert!(exits.find(NS, "a").is_none());
    assert_eq!(f.exits_of("a", "init").await, vec![9]);
    assert_eq!(f.exits_of("b", "init").await, vec![UNKNOWN_EXIT_CODE]);
    // Deleting a container forgets what was kept for its id.
    f.client.delete("c").await.expect("delete c");
    assert!(exits.find(NS, "c").is_none());
}

/// containerd drops the task of a shim that died while it ran, after
/// publishing the exit: delete_task answers the exit the client delivered,
/// once, rather than "not running".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_dropped_after_its_delivered_exit_answers_that_exit() {
    let mem = Mem::new(DEADLINE);
    let f = fixture_with(mem.clone(), None).await;
    f.run("a").await;
    assert!(mem.exit("a", "", 255));
    let exit = f
        .backend
        .next_process_event("a", INIT_PROCESS_ID, EventType::Exit, WAIT)
        .await
        .expect("the exit event");
    mem.lose_task("a");
    let answer = f.client.delete_task("a").await.expect("the delivered exit");
    assert_eq!(answer.exit_code, exit.exit_code);
    assert_eq!(answer.exit_code, 255);
    let again = f.client.delete_task("a").await.expect_err("answered once");
    assert_eq!(again.kind(), ErrorKind::NotFound);
    f.client.delete("a").await.expect("delete");
}

/// Tasks.Delete fails when the task's shim died ("ttrpc: closed") and
/// containerd then drops the task itself: delete_task answers the exit the
/// client delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_meets_a_dead_shim_answers_the_delivered_exit() {
    let mem = Mem::new(DEADLINE);
    let f = fixture_with(mem.clone(), None).await;
    f.run("a").await;
    assert!(mem.exit("a", "", 3));
    f.backend
        .next_process_event("a", INIT_PROCESS_ID, EventType::Exit, WAIT)
        .await
        .expect("the exit event");
    mem.fail("delete_task", crate::conn::mem::Fault::ShimGone);
    let answer = f.client.delete_task("a").await.expect("the delivered exit");
    assert_eq!(answer.exit_code, 3);
    f.client.delete("a").await.expect("delete");
}

/// The daemon restarted while it deleted a task whose exit this client had
/// delivered: the watch found the shim gone and kept the init as lost.
/// delete_task answers the delivered status, and the record is claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_exit_outranks_a_record_of_a_shim_gone() {
    let (_dir, exits) = exits();
    let mem = Mem::new(DEADLINE);
    let f = fixture_with(mem.clone(), Some(exits.clone())).await;
    let pid = f.run("a").await;
    assert!(mem.exit("a", "", 34));
    f.backend
        .next_process_event("a", INIT_PROCESS_ID, EventType::Exit, WAIT)
        .await
        .expect("the exit event");
    mem.lose_task("a");
    exits.keep(NS, "a", kept(pid, KeptStatus::Lost(Lost::ShimDied)));
    let answer = f.client.delete_task("a").await.expect("the delivered exit");
    assert_eq!(answer.exit_code, 34);
    assert!(exits.find(NS, "a").is_none(), "the record is claimed");
    f.client.delete("a").await.expect("delete");
}

/// A signal racing the task's deletion after the init's exit meets a shim
/// shutting down ("ttrpc: closed"): the process has finished, NotFound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_an_exited_init_whose_shim_goes_is_not_found() {
    let mem = Mem::new(DEADLINE);
    let f = fixture_with(mem.clone(), None).await;
    f.run("a").await;
    assert!(mem.exit("a", "", 0));
    f.backend
        .next_process_event("a", libctd_core::INIT_PROCESS_ID, EventType::Exit, WAIT)
        .await
        .expect("the exit event");
    mem.fail("kill", crate::conn::mem::Fault::ShimGone);
    let e = f
        .client
        .signal_process("a", libctd_core::INIT_PROCESS_ID, 15)
        .await
        .expect_err("finished");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}
