//! LinuxRemote: the embedded daemon's lifecycle, reuse, options and errors.
//! Each test runs its own daemon under a state directory of its own.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libctd_core::{ErrorKind, Remote, RemoteOption};
use libctd_linux::{
    Address, ContainerdBinary, LinuxRemote, LogLevel, OomScore, PluginConfig, StateDir,
};
use libctd_testkit::RecordingBackend;
use libctd_testkit::containerd::containerd_binary;

fn state_dir(name: &str) -> PathBuf {
    libctd_testkit::containerd::require_root();
    let dir = PathBuf::from(format!("/tmp/libctd-r{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().unwrap().trim_start().starts_with('Z'))
        .unwrap_or(true)
}

/// The daemon the tests run (`LIBCTD_CONTAINERD`, else the installed one).
fn binary() -> ContainerdBinary {
    ContainerdBinary(containerd_binary())
}

async fn embedded(dir: &Path) -> LinuxRemote {
    LinuxRemote::new(&[&StateDir(dir.into()) as &dyn RemoteOption, &binary()])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_daemon_lifecycle_reuse_and_idempotent_cleanup() {
    let dir = state_dir("life");
    let first = embedded(&dir).await;
    let pid = first.daemon_pid().unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let pid_file = std::fs::read_to_string(dir.join("containerd.pid")).unwrap();
    assert_eq!(pid_file.trim(), pid.to_string());
    let config = std::fs::read_to_string(dir.join("containerd.toml")).unwrap();
    assert!(config.contains("\"io.containerd.grpc.v1.cri\""), "{config}");
    assert!(first.is_healthy(Duration::from_secs(3)).await);
    let client = first
        .new_client("life", Arc::new(RecordingBackend::new()))
        .await
        .unwrap();
    assert!(!client.version().await.unwrap().version.is_empty());
    drop(client);

    // A second remote on the same state dir reuses the live daemon.
    drop(first);
    let second = embedded(&dir).await;
    assert_eq!(second.daemon_pid(), Some(pid));
    let socket = second.socket();
    second.cleanup().await.unwrap();
    assert!(gone(pid), "containerd {pid} still runs after cleanup");
    assert!(!dir.join("containerd.pid").exists());
    assert!(!socket.exists());
    second.cleanup().await.unwrap(); // idempotent
    let err = second
        .new_linux_client("late", Arc::new(RecordingBackend::new()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn external_address_is_used_and_never_stopped() {
    let dir = state_dir("ext");
    let owner = embedded(&dir).await;
    let pid = owner.daemon_pid().unwrap();
    let client_dir = state_dir("ext-client");
    let external = LinuxRemote::new(&[
        &Address(owner.socket()) as &dyn RemoteOption,
        &StateDir(client_dir.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(external.daemon_pid(), None);
    let client = external
        .new_client("ext", Arc::new(RecordingBackend::new()))
        .await
        .unwrap();
    client.version().await.unwrap();
    external.cleanup().await.unwrap();
    assert!(
        !gone(pid),
        "cleanup of an external remote stopped the daemon"
    );
    assert!(owner.is_healthy(Duration::from_secs(3)).await);
    owner.cleanup().await.unwrap();
    assert!(gone(pid));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&client_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_containerd_is_a_clear_error() {
    let dir = state_dir("missing");
    let err = LinuxRemote::new(&[
        &StateDir(dir.clone()) as &dyn RemoteOption,
        &ContainerdBinary("/nonexistent/containerd".into()),
    ])
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("not installed"), "{err}");
    // A binary that is not a containerd says so when asked for its version
    // (the config's dialect depends on it), before anything is started.
    let err = LinuxRemote::new(&[
        &StateDir(dir.clone()) as &dyn RemoteOption,
        &ContainerdBinary("/bin/echo".into()),
    ])
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("is not a containerd"), "{err}");
    assert!(!dir.join("containerd.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_state_dir_is_a_clear_error() {
    let file = state_dir("file");
    std::fs::write(&file, b"not a dir").unwrap();
    let err = LinuxRemote::new(&[&StateDir(file.clone()) as &dyn RemoteOption])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("state directory"), "{err}");
    std::fs::remove_file(&file).unwrap();
    let err = LinuxRemote::new(&[&StateDir("relative".into()) as &dyn RemoteOption])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_is_not_containerd_is_a_clear_error() {
    let dir = state_dir("notctd");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"HTTP/1.0 400 nope\r\n\r\n").await;
        }
    });
    let err = LinuxRemote::new(&[
        &Address(sock.clone()) as &dyn RemoteOption,
        &StateDir(dir.join("state")),
    ])
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("not a containerd"), "{err}");
    server.abort();
    let plain = dir.join("plain");
    std::fs::write(&plain, b"").unwrap();
    let err = LinuxRemote::new(&[
        &Address(plain) as &dyn RemoteOption,
        &StateDir(dir.join("state")),
    ])
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("not a containerd"), "{err}");
    let err = LinuxRemote::new(&[
        &Address(dir.join("absent.sock")) as &dyn RemoteOption,
        &StateDir(dir.join("state")),
    ])
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_options_are_rejected() {
    let bad: [&dyn RemoteOption; 3] = [
        &LogLevel("loud".into()),
        &OomScore(5000),
        &PluginConfig {
            plugin: "io.containerd.gc.v1.scheduler".into(),
            toml: "[evil]".into(),
        },
    ];
    for option in bad {
        let err = LinuxRemote::new(&[option]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{option:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_dies_at_start_up_reports_its_log() {
    let dir = state_dir("badcfg");
    let err = LinuxRemote::new(&[
        &StateDir(dir.clone()) as &dyn RemoteOption,
        &binary(),
        &PluginConfig {
            plugin: "io.containerd.gc.v1.scheduler".into(),
            toml: "pause_threshold = \"not a number\"".into(),
        },
        &LogLevel("debug".into()),
        &OomScore(-500),
    ])
    .await
    .unwrap_err();
    // containerd rejects the value; the error quotes its log, which says why.
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let message = err.to_string();
    assert!(message.contains("exited during start-up"), "{message}");
    // Its last line says why, in each line's own words: 1.6 and 1.7 "Can't
    // convert not a number(string) to float64", 2.x "cannot decode TOML
    // string into struct field scheduler.config.PauseThreshold of type
    // float64". Both name the type the value needed.
    assert!(message.contains("containerd: "), "{message}");
    assert!(message.contains("float64"), "{message}");
    // The options reached the configuration it was given.
    let config = std::fs::read_to_string(dir.join("containerd.toml")).unwrap();
    assert!(config.contains("oom_score = -500"), "{config}");
    assert!(config.contains("pause_threshold"), "{config}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_dir_too_long_for_a_socket_is_rejected() {
    let dir = PathBuf::from(format!(
        "/tmp/libctd-r{}-{}",
        std::process::id(),
        "x".repeat(100)
    ));
    let err = LinuxRemote::new(&[&StateDir(dir.clone()) as &dyn RemoteOption])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("too long"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts an embedded daemon on a thread of its own, which then ends.
fn start_on_a_thread(dir: PathBuf, outlive: bool) -> u32 {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let remote = LinuxRemote::new(&[
                &StateDir(dir) as &dyn RemoteOption,
                &binary(),
                &libctd_linux::Outlive(outlive),
            ])
            .await
            .unwrap();
            remote.daemon_pid().unwrap()
        })
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_dies_with_its_parent_unless_told_to_outlive_it() {
    let dir = state_dir("pdeath");
    let pid = start_on_a_thread(dir.clone(), false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "containerd {pid} outlived the thread that started it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    let dir = state_dir("outlive");
    let pid = start_on_a_thread(dir.clone(), true);
    // Still alive and answering: the next remote reuses it.
    let again = embedded(&dir).await;
    assert_eq!(again.daemon_pid(), Some(pid));
    again.cleanup().await.unwrap();
    assert!(gone(pid));
    let _ = std::fs::remove_dir_all(&dir);
}
