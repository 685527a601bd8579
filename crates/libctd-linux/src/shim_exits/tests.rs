//! The watch around a daemon start, over shim doubles that speak ttrpc.

use std::path::Path;

use super::shim::double::{Told, bundle, fake_shim};
use super::*;

const RUNNING: i32 = 2;
const STOPPED: i32 = 3;

#[tokio::test]
async fn exits_before_and_during_a_start_are_kept_and_lost_ones_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    let told = Told::default();
    let tell = |id: &str, state: Option<(i32, u32)>| {
        let mut told = told.lock().unwrap();
        match state {
            Some(s) => told.insert(id.to_owned(), s),
            None => told.remove(id),
        };
    };
    tell("dead", Some((STOPPED, 137)));
    for id in ["alive", "late", "kept"] {
        tell(id, Some((RUNNING, 0)));
    }
    let shim = fake_shim(&socket, told.clone());
    let state = dir.path().join("state");
    for id in ["dead", "alive", "late", "kept"] {
        bundle(&state, "ns", id, &socket);
    }
    // Two bundles whose shim died: one had started its init, one had not.
    let gone = bundle(&state, "ns", "gone", Path::new("/nonexistent.sock"));
    std::fs::write(gone.join("init.pid"), "99\n").unwrap();
    bundle(&state, "ns", "never", Path::new("/nonexistent.sock"));

    let exits = ShimExits::new(dir.path().join("exits"));
    let mut watch = exits.before_start(&state).await;
    let exited = |pid, code| Some((pid, KeptStatus::Exited(code)));
    let lost = |pid, why| Some((pid, KeptStatus::Lost(why)));
    let kept = |id: &str| exits.find("ns", id).map(|e| (e.pid, e.status));
    assert_eq!(kept("dead"), exited(42, 137));
    assert_eq!(kept("gone"), lost(99, Lost::ShimDied));
    assert_eq!(kept("never"), None);
    assert_eq!(kept("alive"), None);
    assert_eq!(watch.waits.len(), 3, "the running ones are waited on");
    assert!(watch.running.is_empty());

    // While the daemon starts, one stops: its wait answers...
    tell("alive", Some((STOPPED, 3)));
    look_until(&exits, &mut watch, || kept("alive").is_some()).await;
    assert_eq!(kept("alive"), exited(42, 3));
    assert_eq!(watch.waits.len(), 2);
    // ... and one's shim goes without answering (containerd deleted it).
    tell("late", None);
    look_until(&exits, &mut watch, || kept("late").is_some()).await;
    assert_eq!(kept("late"), lost(42, Lost::Escaped));
    exits.after_start(watch).await;
    assert_eq!(kept("kept"), None, "containerd kept it: it knows the task");
    shim.abort();

    // The records are the disk's: a new engine process sees them.
    let again = ShimExits::new(dir.path().join("exits"));
    assert_eq!(again.get("ns", "dead", 41), None, "another task's pid");
    assert_eq!(
        again.get("ns", "dead", 42).map(|e| e.status),
        Some(KeptStatus::Exited(137))
    );
    assert_eq!(again.take("ns", "dead", Some(41)), None);
    assert!(
        again.find("ns", "dead").is_some(),
        "a wrong pid takes nothing"
    );
    assert_eq!(
        again.take("ns", "dead", Some(42)).map(|e| e.status),
        Some(KeptStatus::Exited(137))
    );
    assert_eq!(again.take("ns", "dead", None), None, "taken once");
    assert!(exits.find("ns", "dead").is_none());
    assert!(again.take("ns", "gone", None).is_some());
    again.forget("ns", "alive");
    assert_eq!(exits.find("ns", "alive"), None);
    assert_eq!(exits.find("other", "late"), None);
}

/// Looks again (as the supervisor does while the daemon starts) until
/// `done`, within ten seconds.
async fn look_until(exits: &ShimExits, watch: &mut Watch, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "no answer came");
        exits.look_again(watch).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn shims_beyond_the_wait_budget_are_asked_every_round() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    let told = Told::default();
    let n = 10;
    for i in 0..n {
        told.lock().unwrap().insert(format!("c{i}"), (RUNNING, 0));
    }
    let shim = fake_shim(&socket, told.clone());
    let state = dir.path().join("state");
    for i in 0..n {
        bundle(&state, "ns", &format!("c{i}"), &socket);
    }
    let mut exits = ShimExits::new(dir.path().join("exits"));
    exits.wait_budget = n - 2;
    let mut watch = exits.before_start(&state).await;
    assert_eq!(watch.waits.len(), n - 2);
    assert_eq!(watch.running.len(), 2);
    // Every one stops: the waited and the polled alike are recorded.
    for i in 0..n {
        told.lock()
            .unwrap()
            .insert(format!("c{i}"), (STOPPED, i as u32));
    }
    let all = || (0..n).all(|i| exits.find("ns", &format!("c{i}")).is_some());
    look_until(&exits, &mut watch, all).await;
    exits.after_start(watch).await;
    for i in 0..n {
        let kept = exits.find("ns", &format!("c{i}")).map(|e| e.status);
        assert_eq!(kept, Some(KeptStatus::Exited(i as u32)), "c{i}");
    }
    shim.abort();
}

#[tokio::test]
async fn the_tracked_execs_of_a_task_containerd_drops_keep_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    let told = Told::default();
    {
        let mut t = told.lock().unwrap();
        t.insert("c".into(), (RUNNING, 0));
        t.insert("c/e1".into(), (STOPPED, 7)); // ended while containerd was down
        t.insert("c/e2".into(), (RUNNING, 0));
    }
    let shim = fake_shim(&socket, told.clone());
    let state = dir.path().join("state");
    bundle(&state, "ns", "c", &socket);
    let exits = ShimExits::new(dir.path().join("exits"));
    exits.track_exec("ns", "c", "e1", 50);
    exits.track_exec("ns", "c", "e2", 51);
    exits.track_exec("ns", "c", "e3", 52);
    exits.untrack_exec("ns", "c", "e3");
    let mut watch = exits.before_start(&state).await;
    assert_eq!(watch.waits.len(), 3, "the init and two execs");
    // The init ends, killing e2: both are reaped before containerd loads.
    {
        let mut t = told.lock().unwrap();
        t.insert("c".into(), (STOPPED, 4));
        t.insert("c/e2".into(), (STOPPED, 137));
    }
    let all = || {
        exits.find("ns", "c").is_some()
            && exits.exec_exit("ns", "c", "e1", 50).is_some()
            && exits.exec_exit("ns", "c", "e2", 51).is_some()
    };
    look_until(&exits, &mut watch, all).await;
    exits.after_start(watch).await;
    let status = |e: &str, pid| exits.exec_exit("ns", "c", e, pid).map(|x| x.status);
    assert_eq!(status("e1", 50), Some(KeptStatus::Exited(7)));
    assert_eq!(status("e2", 51), Some(KeptStatus::Exited(137)));
    assert_eq!(status("e2", 99), None, "another process of that id");
    assert_eq!(status("e3", 52), None, "no longer tracked");
    exits.untrack_exec("ns", "c", "e1");
    assert_eq!(status("e1", 50), None);
    exits.forget("ns", "c");
    assert_eq!(status("e2", 51), None);
    assert!(exits.find("ns", "c").is_none());
    shim.abort();
}

#[test]
fn the_wait_budget_follows_the_file_limit_within_bounds() {
    let budget = wait_budget();
    assert!((32..=4096).contains(&budget), "{budget}");
}

#[tokio::test]
async fn a_missing_state_directory_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exits = ShimExits::new(dir.path().join("exits"));
    let watch = exits.before_start(Path::new("/nonexistent")).await;
    assert!(watch.running.is_empty());
    exits.after_start(watch).await;
    assert!(!dir.path().join("exits").exists());
}

#[tokio::test]
async fn many_shims_are_asked_in_rounds_and_all_answer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    let told = Told::default();
    let n = ASK_AT_ONCE * 3 + 1;
    for i in 0..n {
        told.lock()
            .unwrap()
            .insert(format!("c{i}"), (STOPPED, i as u32));
    }
    let shim = fake_shim(&socket, told);
    let state = dir.path().join("state");
    for i in 0..n {
        bundle(&state, "ns", &format!("c{i}"), &socket);
    }
    let exits = ShimExits::new(dir.path().join("exits"));
    let watch = exits.before_start(&state).await;
    assert!(watch.running.is_empty());
    for i in 0..n {
        let kept = exits.find("ns", &format!("c{i}")).map(|e| e.status);
        assert_eq!(kept, Some(KeptStatus::Exited(i as u32)), "c{i}");
    }
    exits.after_start(watch).await;
    shim.abort();
}

#[tokio::test]
async fn a_status_read_at_one_start_is_not_lost_at_the_next() {
    // containerd 2.x, starting, killed the shim of an ended init as leaked,
    // and was killed again before it removed the bundle: the next start
    // finds the shim gone. The status read at the first start stands.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    let told = Told::default();
    told.lock().unwrap().insert("c".to_owned(), (STOPPED, 40));
    let shim = fake_shim(&socket, told.clone());
    let state = dir.path().join("state");
    let b = bundle(&state, "ns", "c", &socket);
    let exits = ShimExits::new(dir.path().join("exits"));
    let first = exits.before_start(&state).await;
    exits.after_start(first).await;
    let kept = |exits: &ShimExits| exits.find("ns", "c").map(|e| (e.pid, e.status));
    assert_eq!(kept(&exits), Some((42, KeptStatus::Exited(40))));
    // The shim goes; its bundle stays, naming the same init.
    drop(shim);
    std::fs::write(b.join("address"), "unix:///nonexistent.sock").unwrap();
    std::fs::write(b.join("init.pid"), "42\n").unwrap();
    let second = exits.before_start(&state).await;
    exits.after_start(second).await;
    assert_eq!(kept(&exits), Some((42, KeptStatus::Exited(40))));
    // Another process of the id (a new task) lost is recorded as lost.
    std::fs::write(b.join("init.pid"), "43\n").unwrap();
    let third = exits.before_start(&state).await;
    exits.after_start(third).await;
    assert_eq!(kept(&exits), Some((43, KeptStatus::Lost(Lost::ShimDied))));
}
