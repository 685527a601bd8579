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
    assert_eq!(watch.running.len(), 3);

    // While the daemon starts, one stops...
    tell("alive", Some((STOPPED, 3)));
    exits.look_again(&mut watch).await;
    assert_eq!(kept("alive"), exited(42, 3));
    assert_eq!(watch.running.len(), 2);
    // ... and one is deleted by containerd before it is asked again.
    tell("late", None);
    exits.after_start(watch).await;
    assert_eq!(kept("late"), lost(42, Lost::Escaped));
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
