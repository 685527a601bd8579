//! LinuxRemote: the embedded daemon's lifecycle, reuse, options and errors.
//! Each test runs its own daemon under a state directory of its own.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libctd_core::{ErrorKind, Remote};
use libctd_linux::{LinuxRemote, LinuxRemoteBuilder, LogLevel};
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

/// A builder of an embedded remote under `dir` running the daemon the tests
/// run (`LIBCTD_CONTAINERD`, else the installed one).
fn at(dir: &Path) -> LinuxRemoteBuilder {
    LinuxRemote::builder()
        .state_dir(dir)
        .containerd_binary(containerd_binary())
}

async fn embedded(dir: &Path) -> LinuxRemote {
    at(dir).build().await.unwrap()
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
    let external = LinuxRemote::builder()
        .address(owner.socket())
        .state_dir(&client_dir)
        .build()
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
    let err = at(&dir)
        .containerd_binary("/nonexistent/containerd")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("not installed"), "{err}");
    // A binary that is not a containerd says so when asked for its version
    // (the config's dialect depends on it), before anything is started.
    let err = at(&dir)
        .containerd_binary("/bin/echo")
        .build()
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
    let err = at(&file).build().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("state directory"), "{err}");
    std::fs::remove_file(&file).unwrap();
    let err = at(Path::new("relative")).build().await.unwrap_err();
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
    let err = at(&dir.join("state"))
        .address(&sock)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("not a containerd"), "{err}");
    server.abort();
    let plain = dir.join("plain");
    std::fs::write(&plain, b"").unwrap();
    let err = at(&dir.join("state"))
        .address(plain)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("not a containerd"), "{err}");
    let err = at(&dir.join("state"))
        .address(dir.join("absent.sock"))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_rejected_before_anything_starts() {
    let dir = state_dir("badopt");
    let bad = [
        at(&dir).oom_score(5000),
        at(&dir).plugin_config("io.containerd.gc.v1.scheduler", "]evil["),
        at(&dir).rpc_timeout(Duration::ZERO),
        at(&dir).address(""),
    ];
    for builder in bad {
        let config = builder.config().clone();
        let err = builder.build().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{config:?}");
        // The same configuration edited by hand is refused the same way.
        let err = LinuxRemote::with_config(config).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    assert!(!dir.exists(), "a refused setting made the state directory");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_dies_at_start_up_reports_its_log() {
    let dir = state_dir("badcfg");
    let err = at(&dir)
        .plugin_config(
            "io.containerd.gc.v1.scheduler",
            "pause_threshold = \"not a number\"",
        )
        .log_level(LogLevel::Debug)
        .oom_score(-500)
        .build()
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
    let err = at(&dir).build().await.unwrap_err();
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
            let remote = at(&dir).outlive(outlive).build().await.unwrap();
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
