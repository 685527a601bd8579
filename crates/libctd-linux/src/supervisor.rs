//! Starts, health-checks, restarts and stops an embedded containerd.
//!
//! The state directory's rules live in `state_dir`, what `/proc` tells in
//! `procfs`; the exit-time clean-up stays here, as it reads the
//! supervisor's private state.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use libctd_core::{Error, Result};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::LinuxConfig;
use crate::conn::{Transport, version_ok};
use crate::daemon_config::{self, Binary};
use crate::procfs::{Identity, Signalled, is_daemon_with_config, kill_shims_of, signal_checked};
use crate::shim_exits::{ShimExits, Watch};
use crate::state_dir::{DaemonPaths, remove_state_dir, state_dir_error};

/// How long a started daemon has to answer Version.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// The first pause before a restart attempt.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between two restart attempts.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(5);

/// The daemon process the supervisor is responsible for.
enum Daemon {
    /// Started by us.
    Child(tokio::process::Child),
    /// Found alive through the pid file, and who it was then (its pid may
    /// be reused once it ends: it is not our child).
    Adopted(u32, Identity),
    /// None (stopped).
    None,
}

/// Supervises one embedded containerd.
pub(crate) struct Supervisor {
    config: LinuxConfig,
    /// The daemon binary and its line, probed before the first start.
    binary: tokio::sync::OnceCell<Binary>,
    /// Exits the shims kept, recorded around each daemon start.
    pub(crate) exits: Arc<ShimExits>,
    pub(crate) paths: DaemonPaths,
    transport: Transport,
    daemon: Mutex<Daemon>,
    pid: AtomicU32,
    /// Who the daemon at `pid` is, for the exit-time stop, which cannot
    /// wait for `daemon`'s lock.
    identity: std::sync::Mutex<Option<Identity>>,
    restarts: AtomicU64,
    /// Cancelled when the health loop must end: no restart from then on.
    stop: CancellationToken,
    monitor: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The lock that makes this supervisor the daemon's owner: only the owner
    /// starts, restarts or stops it; other supervisors of the same state
    /// directory adopt the daemon it runs.
    owner: std::sync::Mutex<Option<Flock<std::fs::File>>>,
    /// Set when the remote lets go of the daemon (dropped without cleanup):
    /// ownership is given up once the health loop has ended, not before, so
    /// that a restart in progress cannot overlap another supervisor's.
    let_go: std::sync::atomic::AtomicBool,
}

impl Supervisor {
    /// Prepares the state directory, then reuses the live containerd named by
    /// the pid file or starts a new one, and waits until it answers.
    #[tracing::instrument(level = "debug", skip_all, fields(state_dir = %config.state_dir.display()))]
    pub(crate) async fn start(config: LinuxConfig, transport: Transport) -> Result<Arc<Self>> {
        let paths = DaemonPaths::new(&config.state_dir);
        let sup = Arc::new(Self {
            config,
            binary: tokio::sync::OnceCell::new(),
            exits: Arc::new(ShimExits::new(paths.exits.clone())),
            paths,
            transport,
            daemon: Mutex::new(Daemon::None),
            pid: AtomicU32::new(0),
            identity: std::sync::Mutex::new(None),
            restarts: AtomicU64::new(0),
            stop: CancellationToken::new(),
            monitor: std::sync::Mutex::new(None),
            owner: std::sync::Mutex::new(None),
            let_go: std::sync::atomic::AtomicBool::new(false),
        });
        {
            let mut daemon = sup.daemon.lock().await;
            let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
            loop {
                let owner = sup.try_own();
                if let Some((pid, id)) = sup.live_daemon_from_pid_file().await {
                    tracing::info!(pid, owner, "reusing the containerd named by the pid file");
                    sup.record(pid, Some(id));
                    *daemon = Daemon::Adopted(pid, id);
                    break;
                }
                if owner {
                    let line = sup.binary().await?.line;
                    daemon_config::write_config(&sup.config, &sup.paths, line)?;
                    *daemon = sup.spawn().await?;
                    break;
                }
                // Another supervisor owns the directory and is (re)starting its daemon.
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::unavailable(format!(
                        "another process supervises the containerd of {} (it holds {}), but no containerd answered there within {READY_TIMEOUT:?}",
                        sup.config.state_dir.display(),
                        sup.paths.lock_file.display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let span = tracing::info_span!("containerd_health", socket = %sup.paths.socket.display());
        let watched = sup.clone();
        let monitor = tokio::spawn(tracing::Instrument::instrument(
            async move {
                watched.clone().monitor().await;
                if watched.let_go.load(Ordering::SeqCst) {
                    watched.release();
                }
            },
            span,
        ));
        if let Ok(mut slot) = sup.monitor.lock() {
            *slot = Some(monitor);
        }
        Ok(sup)
    }

    /// The daemon's pid (0 when none).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// How many times the daemon was restarted.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Whether this supervisor owns the daemon, taking the state directory's
    /// lock if it is free (its holder is gone or let go).
    fn try_own(&self) -> bool {
        let Ok(mut owner) = self.owner.lock() else {
            return false;
        };
        if owner.is_some() {
            return true;
        }
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.paths.lock_file)
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, lock = %self.paths.lock_file.display(), "cannot open the supervisor lock");
                return false;
            }
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                *owner = Some(lock);
                true
            }
            Err((_, errno)) => {
                if errno != nix::errno::Errno::EWOULDBLOCK {
                    tracing::warn!(%errno, "cannot lock the supervisor lock");
                }
                false
            }
        }
    }

    /// Whether this supervisor holds the state directory's lock.
    fn owns(&self) -> bool {
        self.owner.lock().is_ok_and(|o| o.is_some())
    }

    /// The daemon binary, probed on first use.
    async fn binary(&self) -> Result<&Binary> {
        self.binary
            .get_or_try_init(|| Binary::probe(&self.config))
            .await
    }

    /// A live containerd recorded in the pid file, answering on our socket,
    /// and who it is.
    async fn live_daemon_from_pid_file(&self) -> Option<(u32, Identity)> {
        let text = std::fs::read_to_string(&self.paths.pid_file).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        // Read first: if it still holds after the checks, they were made of
        // this process.
        let id = Identity::of(i32::try_from(pid).ok()?)?;
        // A containerd of this state directory's config, not any.
        if !is_daemon_with_config(pid, &self.paths.config_file) || !self.paths.socket.exists() {
            return None;
        }
        let answers = version_ok(&self.transport, Duration::from_secs(3)).await;
        (answers && id.still(pid)).then_some((pid, id))
    }

    /// Records the daemon's pid and who it is (0 and `None`: no daemon).
    fn record(&self, pid: u32, id: Option<Identity>) {
        self.pid.store(pid, Ordering::SeqCst);
        if let Ok(mut slot) = self.identity.lock() {
            *slot = id;
        }
    }

    /// Starts a containerd child and waits for it to answer.
    async fn spawn(&self) -> Result<Daemon> {
        if self.stop.is_cancelled() {
            return Err(Error::failed_precondition("the supervisor is stopping"));
        }
        for stale in [&self.paths.socket, &self.paths.ttrpc_socket] {
            let _ = std::fs::remove_file(stale);
        }
        // 1.7 and 2.x drop the tasks whose processes died meanwhile as they
        // start: their shims are asked first, and again until it answers.
        let mut watch = self.exits.before_start(&self.paths.state).await;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.paths.log_file)
            .map_err(|e| {
                state_dir_error(&self.config.state_dir, "cannot open the containerd log", e)
            })?;
        let log2 = log.try_clone().map_err(|e| {
            state_dir_error(&self.config.state_dir, "cannot open the containerd log", e)
        })?;
        let binary = self.binary().await?;
        tracing::debug!(binary = %binary.path.display(), line = %binary.line, "starting containerd");
        let mut cmd = tokio::process::Command::new(&binary.path);
        cmd.arg("--config").arg(&self.paths.config_file);
        cmd.envs(self.config.daemon_env.iter().map(|(k, v)| (k, v)));
        // The shim containerd starts is looked up in its PATH: its own line's.
        cmd.env("PATH", binary.search_path());
        if let Some(level) = &self.config.log_level {
            cmd.arg("--log-level").arg(level.as_str());
        }
        cmd.env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(false);
        let outlive = self.config.outlive;
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls are made
        // (setsid, prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if !outlive {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    // The parent may have died before prctl took effect.
                    if u32::try_from(libc::getppid()).ok() != Some(parent) {
                        libc::_exit(1);
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                "is not installed"
            } else {
                "cannot be started"
            };
            Error::unavailable(format!(
                "containerd {kind}: {} (install it with `apt-get install containerd`)",
                binary.path.display()
            ))
            .with_source(e)
        })?;
        let ready = self.until_ready(child, &mut watch).await;
        // What the shims said while it tried is kept however the start
        // ended: it may have dropped their tasks before it died.
        self.exits.after_start(watch).await;
        ready
    }

    /// Records the started child and waits for it to answer, asking the
    /// watched shims again meanwhile; a child that does not answer in time
    /// is killed.
    async fn until_ready(
        &self,
        mut child: tokio::process::Child,
        watch: &mut Watch,
    ) -> Result<Daemon> {
        let pid = child.id().unwrap_or(0);
        let id = i32::try_from(pid).ok().and_then(Identity::of);
        self.record(pid, id);
        if let Err(e) = std::fs::write(&self.paths.pid_file, format!("{pid}\n")) {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(state_dir_error(
                &self.config.state_dir,
                "cannot write the pid file",
                e,
            ));
        }
        tracing::info!(pid, socket = %self.paths.socket.display(), "started containerd");
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::unavailable(format!(
                    "containerd exited during start-up with {status}; its log {} ends with: {}",
                    self.paths.log_file.display(),
                    log_tail(&self.paths.log_file)
                )));
            }
            if version_ok(&self.transport, Duration::from_millis(500)).await {
                return Ok(Daemon::Child(child));
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(Error::unavailable(format!(
                    "containerd did not answer on {} within {READY_TIMEOUT:?}; its log ends with: {}",
                    self.paths.socket.display(),
                    log_tail(&self.paths.log_file)
                )));
            }
            self.exits.look_again(watch).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Health loop: every interval a Version call with a timeout; a dead
    /// daemon is restarted at once, a hung one after consecutive failures.
    async fn monitor(self: Arc<Self>) {
        let mut failures = 0u32;
        let mut restart_delay = Backoff::new(FIRST_RESTART_DELAY, MAX_RESTART_DELAY);
        loop {
            let interval = tokio::time::sleep(self.config.health_check.interval);
            if self.stop.run_until_cancelled(interval).await.is_none() {
                return;
            }
            let dead = self.daemon_exited().await;
            if !dead && version_ok(&self.transport, self.config.health_check.timeout).await {
                failures = 0;
                restart_delay.reset();
                continue;
            }
            failures += 1;
            if !dead && failures < self.config.health_check.failures {
                tracing::warn!(failures, "containerd did not answer a health check");
                continue;
            }
            if !self.try_own() {
                // Its owner restarts it: adopt the daemon the pid file names.
                if let Some((pid, id)) = self.live_daemon_from_pid_file().await
                    && pid != self.pid()
                {
                    tracing::info!(
                        pid,
                        "adopting the containerd restarted by the state directory's owner"
                    );
                    *self.daemon.lock().await = Daemon::Adopted(pid, id);
                    self.record(pid, Some(id));
                    failures = 0;
                }
                continue;
            }
            let delay = restart_delay.next();
            tracing::warn!(dead, failures, ?delay, "restarting containerd");
            if self
                .stop
                .run_until_cancelled(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
            let mut daemon = self.daemon.lock().await;
            if self.stop.is_cancelled() {
                return;
            }
            kill_daemon(&mut daemon, Signal::SIGKILL, Duration::from_secs(5)).await;
            match self.spawn().await {
                Ok(d) => {
                    *daemon = d;
                    self.restarts.fetch_add(1, Ordering::SeqCst);
                    libctd_core::metrics::daemon_restarted();
                    failures = 0;
                }
                Err(e) => tracing::error!(error = %e.report(), "cannot restart containerd"),
            }
        }
    }

    /// Whether the daemon process is gone.
    async fn daemon_exited(&self) -> bool {
        let mut daemon = self.daemon.lock().await;
        match &mut *daemon {
            Daemon::Child(child) => !matches!(child.try_wait(), Ok(None)),
            Daemon::Adopted(pid, id) => !id.still(*pid),
            Daemon::None => true,
        }
    }

    /// Stops the health loop, leaving the daemon running, and gives up
    /// ownership so that another supervisor may take the daemon over.
    pub(crate) fn stop_monitoring(&self) {
        self.let_go.store(true, Ordering::SeqCst);
        self.stop.cancel();
        // No restart in progress (it holds the daemon's lock): let go now,
        // so that the next remote on the directory owns it at once; else the
        // health loop lets go when that restart is over.
        if let Ok(_idle) = self.daemon.try_lock() {
            self.release();
        }
    }

    /// Gives up ownership of the daemon.
    fn release(&self) {
        if let Ok(mut owner) = self.owner.lock() {
            *owner = None;
        }
    }

    /// Stops the health loop and, when this supervisor owns the daemon, the
    /// daemon (SIGTERM, grace period, SIGKILL), then removes the pid file and
    /// sockets; a daemon owned by another supervisor is left to it. Idempotent.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let monitor = self.monitor.lock().ok().and_then(|mut m| m.take());
        if let Some(m) = monitor {
            let _ = m.await;
        }
        let mut daemon = self.daemon.lock().await;
        self.record(0, None);
        if !self.owns() {
            *daemon = Daemon::None;
            return;
        }
        kill_daemon(&mut daemon, Signal::SIGTERM, STOP_GRACE).await;
        for path in [
            &self.paths.pid_file,
            &self.paths.socket,
            &self.paths.ttrpc_socket,
        ] {
            let _ = std::fs::remove_file(path);
        }
        self.release();
    }
}

/// Sends `signal`, waits up to `grace`, then SIGKILL; leaves `Daemon::None`.
async fn kill_daemon(daemon: &mut Daemon, signal: Signal, grace: Duration) {
    match std::mem::replace(daemon, Daemon::None) {
        Daemon::Child(mut child) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), signal);
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    tracing::warn!(pid, "containerd ignored {signal}; killing it");
                    let _ = child.kill().await;
                }
            }
        }
        Daemon::Adopted(pid, id) => {
            let Ok(raw) = i32::try_from(pid) else { return };
            if signal_checked(raw, id, signal) != Signalled::Yes {
                return;
            }
            let deadline = tokio::time::Instant::now() + grace;
            while id.still(pid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            signal_checked(raw, id, Signal::SIGKILL);
        }
        Daemon::None => {}
    }
}

/// The last lines of the daemon log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Daemons to stop when the process exits: (pid, paths, state dir to remove).
type ExitEntry = (Arc<Supervisor>, Option<PathBuf>);
static AT_EXIT: std::sync::Mutex<Vec<ExitEntry>> = std::sync::Mutex::new(Vec::new());
static AT_EXIT_REGISTERED: std::sync::Once = std::sync::Once::new();

/// Registers a daemon to stop at process exit.
pub(crate) fn stop_at_exit(sup: Arc<Supervisor>, state_dir: Option<PathBuf>) {
    if let Ok(mut list) = AT_EXIT.lock() {
        list.push((sup, state_dir));
    }
    AT_EXIT_REGISTERED.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()` that only makes system calls.
        unsafe {
            libc::atexit(run_at_exit);
        }
    });
}

extern "C" fn run_at_exit() {
    let list = match AT_EXIT.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(_) => return,
    };
    for (sup, state_dir) in list {
        // No restart from here on.
        sup.stop.cancel();
        // A daemon this process merely adopted is its owner's to stop.
        if !sup.owns() {
            continue;
        }
        if state_dir.is_some() {
            // The state goes away: containers left behind would be orphans.
            kill_shims_of(&sup.paths.socket);
        }
        let pid = sup.pid();
        let paths = &sup.paths;
        let id = sup.identity.lock().ok().and_then(|id| *id);
        if let (Ok(raw), Some(id)) = (i32::try_from(pid), id)
            && pid != 0
            && signal_checked(raw, id, Signal::SIGTERM) == Signalled::Yes
        {
            let deadline = std::time::Instant::now() + STOP_GRACE;
            while id.still(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            signal_checked(raw, id, Signal::SIGKILL);
        }
        for path in [&paths.pid_file, &paths.socket, &paths.ttrpc_socket] {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = state_dir {
            remove_state_dir(&dir);
        }
    }
}
