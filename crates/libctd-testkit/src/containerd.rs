//! A real containerd for tests: one embedded daemon per test binary, started
//! through [`LinuxRemote`] itself, a busybox root filesystem, specs that run
//! busybox commands, and a namespace per test.
//!
//! The daemon runs on a runtime thread of its own that lives as long as the
//! test binary (so its parent-death signal fires only when the binary ends),
//! and an exit handler stops it and removes its state directory.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libctd_core::{discard_stdio, Client};
//! use libctd_testkit::containerd::Containerd;
//! use libctd_testkit::RecordingBackend;
//!
//! # async fn demo() -> libctd_core::Result<()> {
//! let ctd = Containerd::shared().await?;
//! let client = ctd.client(Arc::new(RecordingBackend::new())).await?;
//! client.create("hello", &ctd.spec(&["echo", "hi"], false), Default::default()).await?;
//! client.start("hello", None, false, discard_stdio()).await?;
//! # Ok(()) }
//! # fn main() { let _ = demo; }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libctd_core::oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder, Process, ProcessBuilder, RootBuilder,
    Spec,
};
use libctd_core::{Backend, Client, Error, EventType, INIT_PROCESS_ID, Result};
use libctd_linux::{LinuxClient, LinuxRemote, LogLevel};

use crate::RecordingBackend;
use tokio::sync::OnceCell;

static SHARED: OnceCell<Containerd> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The test binary's containerd, rootfs and helpers.
pub struct Containerd {
    remote: Arc<LinuxRemote>,
    state_dir: PathBuf,
    rootfs: PathBuf,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// The environment variable naming the containerd binary the tests run
/// (`LIBCTD_CONTAINERD=/path/to/containerd cargo test -p libctd-linux`).
pub const CONTAINERD_ENV: &str = "LIBCTD_CONTAINERD";

/// The containerd binary tests run: `$LIBCTD_CONTAINERD` when set and not
/// empty, else the installed `containerd` found in `PATH`.
pub fn containerd_binary() -> PathBuf {
    std::env::var_os(CONTAINERD_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("containerd"), PathBuf::from)
}

/// A busybox command line that runs until SIGTERM (exit 143) or SIGKILL. As
/// pid 1, sh must trap SIGTERM to die of it; `wait` lets the trap run at once.
pub const SLEEP_ARGS: &[&str] = &["sh", "-c", "trap 'exit 143' TERM; sleep 100000 & wait"];

/// Resolves once process `pid` (host pid) catches SIGTERM, as [`SLEEP_ARGS`]
/// does once its trap is set: a SIGTERM sent earlier is ignored by a pid 1
/// without a handler. Reads the kernel's `SigCgt` mask, polling up to `timeout`.
///
/// The process must also have left runc's init: task start returns once runc
/// released the container's init, which may still be `runc:[2:INIT]` (a Go
/// program, whose runtime catches every signal, SIGTERM included) for a
/// moment before it executes the container's program. A SIGTERM sent then is
/// swallowed and the program never sees it: under load this lost about one
/// SIGTERM in ten on every containerd line.
pub async fn wait_sigterm_caught(pid: u32, timeout: std::time::Duration) -> Result<()> {
    const SIGTERM_BIT: u64 = 1 << (15 - 1);
    let status = format!("/proc/{pid}/status");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let caught = std::fs::read_to_string(&status).ok().and_then(|s| {
            let name = s.lines().find_map(|l| l.strip_prefix("Name:"))?;
            if name.trim().starts_with("runc") {
                return None; // still runc's init
            }
            let mask = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        });
        if caught.is_some_and(|mask| mask & SIGTERM_BIT != 0) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::deadline_exceeded(format!(
                "process {pid} did not trap SIGTERM within {timeout:?}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Fails the calling test with one clear line unless it runs as root: the
/// Linux backend's tests start containerd and containers. `cargo xtask test`
/// (as root) runs every test.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        panic!(
            "this test starts containerd and containers and needs root: run `cargo xtask test` as root"
        );
    }
}

/// Whether CRIU can checkpoint on this host (`criu check` succeeds).
pub fn criu_works() -> bool {
    std::process::Command::new("criu")
        .arg("check")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds a busybox root filesystem at `dir`: `/bin/busybox` with a link per
/// applet, and the directories a container needs.
pub fn build_busybox_rootfs(dir: &Path) -> Result<()> {
    let io = |what: &str, e: std::io::Error| {
        Error::system(format!("cannot build the busybox rootfs: {what}")).with_source(e)
    };
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| {
            Error::unavailable(
                "busybox is not installed (install it with `apt-get install busybox-static`)",
            )
        })?;
    let bin = dir.join("bin");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| io(d, e))?;
    }
    std::fs::copy(busybox, bin.join("busybox")).map_err(|e| io("copy busybox", e))?;
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| io("busybox --list", e))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).map_err(|e| io(applet, e))?;
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
        .map_err(|e| io("etc/passwd", e))?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").map_err(|e| io("etc/group", e))?;
    Ok(())
}

/// An exec process running `args` in a busybox container.
pub fn busybox_process(args: &[&str], terminal: bool) -> Process {
    let mut p = ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec![
            "PATH=/bin:/sbin:/usr/bin:/usr/sbin".to_owned(),
            "TERM=xterm".to_owned(),
        ])
        .cwd("/")
        .terminal(terminal)
        .build()
        .unwrap_or_default();
    p.set_no_new_privileges(Some(true));
    p
}

/// A container spec whose init runs `args` on the busybox `rootfs`, in a
/// cgroup of its own (unique per call), optionally with a memory limit.
pub fn busybox_spec(
    rootfs: &Path,
    args: &[&str],
    terminal: bool,
    memory_limit: Option<i64>,
) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("libctd".to_owned()));
    spec.set_process(Some(busybox_process(args, terminal)));
    if let Ok(root) = RootBuilder::default()
        .path(rootfs.to_path_buf())
        .readonly(false)
        .build()
    {
        spec.set_root(Some(root));
    }
    let mut linux = spec
        .linux()
        .clone()
        .unwrap_or_else(|| LinuxBuilder::default().build().unwrap_or_default());
    linux.set_cgroups_path(Some(PathBuf::from(format!(
        "/libctd-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))));
    if let Some(limit) = memory_limit {
        let memory = LinuxMemoryBuilder::default().limit(limit).build().ok();
        let mut resources = linux
            .resources()
            .clone()
            .unwrap_or_else(|| LinuxResourcesBuilder::default().build().unwrap_or_default());
        resources.set_memory(memory);
        linux.set_resources(Some(resources));
    }
    spec.set_linux(Some(linux));
    spec
}

impl Containerd {
    /// The test binary's daemon, started on first use.
    pub async fn shared() -> Result<&'static Containerd> {
        require_root();
        SHARED.get_or_try_init(Self::start).await
    }

    async fn start() -> Result<Containerd> {
        let state_dir = PathBuf::from(format!("/tmp/libctd-t{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let rootfs = state_dir.join("rootfs");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir = state_dir.clone();
        std::thread::Builder::new()
            .name("libctd-containerd".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ =
                            tx.send(Err(Error::system("cannot build a runtime").with_source(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let remote = LinuxRemote::builder()
                        .state_dir(dir)
                        .containerd_binary(containerd_binary())
                        .log_level(LogLevel::Warn)
                        .build()
                        .await;
                    let _ = tx.send(remote.map(Arc::new));
                    std::future::pending::<()>().await;
                });
            })
            .map_err(|e| Error::system("cannot start the harness thread").with_source(e))?;
        let remote = rx
            .await
            .map_err(|_| Error::system("the harness thread died"))??;
        build_busybox_rootfs(&rootfs)?;
        remote.stop_at_exit(true);
        Ok(Containerd {
            remote,
            state_dir,
            rootfs,
        })
    }

    /// The remote (an embedded containerd).
    pub fn remote(&self) -> &Arc<LinuxRemote> {
        &self.remote
    }

    /// The state directory of the daemon.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The busybox root filesystem.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// A namespace name no other test of this binary uses.
    pub fn unique_namespace(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A client in a fresh namespace.
    pub async fn client(&self, backend: Arc<dyn Backend>) -> Result<Arc<LinuxClient>> {
        let ns = self.unique_namespace("t");
        self.remote.new_linux_client(&ns, backend).await
    }

    /// A busybox container spec running `args`.
    pub fn spec(&self, args: &[&str], terminal: bool) -> Spec {
        busybox_spec(&self.rootfs, args, terminal, None)
    }

    /// A fresh directory under the state directory.
    pub fn scratch_dir(&self, prefix: &str) -> PathBuf {
        let dir = self.state_dir.join(format!(
            "{prefix}-{}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}

/// The pids of the runc shims serving namespace `ns` (their command line
/// names it).
pub fn shims_of(ns: &str) -> Vec<u32> {
    shims_where(|args| names(args, b"-namespace", ns))
}

/// The pid of the runc shim serving container `id` of namespace `ns` (its
/// command line names both), if one runs.
pub fn shim_of_container(ns: &str, id: &str) -> Option<u32> {
    shims_where(|args| names(args, b"-namespace", ns) && names(args, b"-id", id))
        .into_iter()
        .next()
}

/// The pids of the runc shims whose arguments `matches` accepts.
fn shims_where(matches: impl Fn(&[&[u8]]) -> bool) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let shim = args
                .first()
                .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
            (shim && matches(&args)).then_some(pid)
        })
        .collect()
}

/// Whether `args` hold `flag` followed by `value`.
fn names(args: &[&[u8]], flag: &[u8], value: &str) -> bool {
    args.windows(2)
        .any(|w| w[0] == flag && w[1] == value.as_bytes())
}

/// SIGKILLs container `id`'s init process, waits (up to `timeout`) for its
/// exit event at `backend`, then deletes its task and the container.
pub async fn kill_and_remove(
    client: &dyn Client,
    backend: &RecordingBackend,
    id: &str,
    timeout: std::time::Duration,
) -> Result<()> {
    client.signal_process(id, INIT_PROCESS_ID, 9).await?;
    backend
        .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, timeout)
        .await?;
    client.delete_task(id).await?;
    client.delete(id).await
}
