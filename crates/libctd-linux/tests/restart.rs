//! The embedded containerd dies or hangs while containers run: it is
//! restarted, the clients keep working, and exits that happened during the
//! outage are delivered exactly once. Its own daemon, so the other test
//! binaries' daemons are never disturbed.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::{EventType, INIT_PROCESS_ID, Remote, discard_stdio};
use libctd_linux::{HealthCheck, LinuxRemote};
use libctd_testkit::RecordingBackend;
use libctd_testkit::containerd::{
    SLEEP_ARGS, build_busybox_rootfs, busybox_spec, containerd_binary, wait_sigterm_caught,
};
use libctd_testkit::namespace::NamespaceGuard;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const T: Duration = Duration::from_secs(30);

async fn wait_restarted(remote: &LinuxRemote, before: u64, old_pid: u32) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        if remote.restarts() > before
            && remote.daemon_pid().is_some_and(|p| p != old_pid)
            && remote.is_healthy(Duration::from_secs(1)).await
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "containerd was not restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_and_hung_daemons_are_restarted_and_no_exit_is_lost_or_doubled() {
    libctd_testkit::containerd::require_root();
    let dir = PathBuf::from(format!("/tmp/libctd-k{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let remote = LinuxRemote::builder()
        .state_dir(&dir)
        .containerd_binary(containerd_binary())
        .health_check(HealthCheck {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(500),
            failures: 3,
        })
        .build()
        .await
        .unwrap();
    let rootfs = dir.join("rootfs");
    build_busybox_rootfs(&rootfs).unwrap();
    let backend = Arc::new(RecordingBackend::new());
    // Whatever a failure leaves in the namespace is removed when it unwinds.
    let _guard = NamespaceGuard::new(remote.socket(), "restart");
    let client = remote.new_client("restart", backend.clone()).await.unwrap();

    let ids: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let mut pids = Vec::new();
    for id in &ids {
        let spec = busybox_spec(&rootfs, SLEEP_ARGS, false, None);
        client.create(id, &spec, Default::default()).await.unwrap();
        let pid = client
            .start(id, None, false, discard_stdio())
            .await
            .unwrap();
        // Half of them end by SIGTERM later: it must find the trap set.
        wait_sigterm_caught(pid, T).await.unwrap();
        pids.push(pid);
    }

    // One more container whose shim dies with containerd.
    let spec = busybox_spec(&rootfs, SLEEP_ARGS, false, None);
    client
        .create("orphan", &spec, Default::default())
        .await
        .unwrap();
    let orphan = client
        .start("orphan", None, false, discard_stdio())
        .await
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{orphan}/stat")).unwrap();
    let shim: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    // containerd dies; half of the containers exit while it is down.
    let old = remote.daemon_pid().unwrap();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    for pid in &pids[..5] {
        kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).unwrap();
    }
    let shim_sockets = shim_sockets(shim);
    kill(Pid::from_raw(orphan as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    wait_restarted(&remote, 0, old).await;
    // The orphan's exit arrives once: from containerd's dead-shim cleanup
    // (255) or from reconciliation (status unknown).
    let exit = backend
        .next_process_event("orphan", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert!(
        exit.exit_code == 255 || exit.exit_code == u32::MAX || exit.exit_code == 137,
        "{exit:?}"
    );
    for id in &ids[..5] {
        let exit = backend
            .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, T)
            .await
            .unwrap();
        assert_eq!(exit.exit_code, 137);
    }
    // The client's handles still work on the new daemon.
    for id in &ids[5..] {
        client
            .signal_process(id, INIT_PROCESS_ID, 15)
            .await
            .unwrap();
        let exit = backend
            .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, T)
            .await
            .unwrap();
        assert_eq!(exit.exit_code, 143);
    }

    // A hung daemon (SIGSTOP) is restarted too.
    let before = remote.restarts();
    let hung = remote.daemon_pid().unwrap();
    kill(Pid::from_raw(hung as i32), Signal::SIGSTOP).unwrap();
    wait_restarted(&remote, before, hung).await;
    client.version().await.unwrap();

    for id in &ids {
        client.delete_task(id).await.unwrap();
        client.delete(id).await.unwrap();
    }
    client.delete("orphan").await.unwrap();
    for id in ids.iter().chain([&"orphan".to_owned()]) {
        let exits = backend
            .event_types_of(id)
            .into_iter()
            .filter(|t| *t == EventType::Exit)
            .count();
        assert_eq!(exits, 1, "{id}: {:?}", backend.event_types_of(id));
    }
    remote.cleanup().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // A killed shim leaves its socket behind.
    for path in shim_sockets {
        let _ = std::fs::remove_file(path);
    }
}

/// The socket files a shim listens on (from /proc).
fn shim_sockets(pid: i32) -> Vec<PathBuf> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (inode, path) = (cols.get(6)?, cols.get(7)?);
            (inodes.iter().any(|i| i == inode) && path.starts_with('/'))
                .then(|| PathBuf::from(path))
        })
        .collect()
}
