//! [`LinuxRemote`]: a containerd to talk to, embedded and supervised by
//! default, and the options that configure it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use libctd_core::{
    Backend, Client, Error, ErrorKind, RemoteConfig, RemoteOption, Result, config_mut,
    validate_namespace,
};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::client::LinuxClient;
use crate::shim_exits::ShimExits;
use crate::supervisor::{self, Supervisor, version_ok};

/// The default state directory of an embedded containerd.
pub const DEFAULT_STATE_DIR: &str = "/run/libctd";

/// The configuration a [`LinuxRemote`] is built from; [`RemoteOption`]s edit it.
#[derive(Debug, Clone)]
pub struct LinuxConfig {
    /// The socket of an existing containerd; `None` embeds one.
    pub address: Option<PathBuf>,
    /// Where the embedded daemon and the stdio FIFOs live (mode 0700).
    pub state_dir: PathBuf,
    /// The containerd binary to run.
    pub containerd_binary: PathBuf,
    /// containerd's log level.
    pub log_level: Option<String>,
    /// containerd's debug socket.
    pub debug_address: Option<PathBuf>,
    /// containerd's metrics (Prometheus) address.
    pub metrics_address: Option<String>,
    /// Extra `[plugins."<name>"]` sections: (plugin name, TOML body).
    pub plugin_config: Vec<(String, String)>,
    /// containerd's OOM score adjustment.
    pub oom_score: Option<i32>,
    /// Owner of the gRPC socket.
    pub socket_uid: Option<u32>,
    /// Group of the gRPC socket.
    pub socket_gid: Option<u32>,
    /// Containers created through this remote share runc shims of this group.
    pub shim_group: Option<String>,
    /// Let the embedded daemon outlive this process (no PDEATHSIG).
    pub outlive: bool,
    /// Pause between two health checks.
    pub health_interval: Duration,
    /// How long a health check waits for an answer.
    pub health_timeout: Duration,
    /// Consecutive failed checks after which a live but hung daemon is restarted.
    pub health_failures: u32,
    /// The deadline of every call to containerd (the event stream excepted).
    pub rpc_timeout: Duration,
}

/// The default deadline of a call to containerd.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest deadline accepted (gRPC cannot carry an unbounded one).
pub const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn validate_rpc_timeout(t: Duration) -> Result<()> {
    if t.is_zero() || t > MAX_RPC_TIMEOUT {
        return Err(Error::invalid_argument(format!(
            "the RPC timeout {t:?} must be positive and at most {MAX_RPC_TIMEOUT:?}"
        )));
    }
    Ok(())
}

impl Default for LinuxConfig {
    fn default() -> Self {
        Self {
            address: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            containerd_binary: PathBuf::from("containerd"),
            log_level: None,
            debug_address: None,
            metrics_address: None,
            plugin_config: Vec::new(),
            oom_score: None,
            socket_uid: None,
            socket_gid: None,
            shim_group: None,
            outlive: false,
            health_interval: Duration::from_millis(500),
            health_timeout: Duration::from_secs(3),
            health_failures: 3,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
        }
    }
}

impl RemoteConfig for LinuxConfig {
    fn platform(&self) -> &'static str {
        "linux"
    }
}

macro_rules! option {
    ($(#[$doc:meta])* $name:ident($ty:ty), $label:literal, |$cfg:ident, $v:ident| $body:block) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $ty);

        impl RemoteOption for $name {
            fn name(&self) -> &'static str {
                $label
            }
            fn apply(&self, config: &mut dyn RemoteConfig) -> Result<()> {
                let $cfg = config_mut::<LinuxConfig>(config, self.name())?;
                let $v = &self.0;
                $body
                Ok(())
            }
        }
    };
}

option!(
    /// Connect to the containerd at this socket instead of embedding one; it is
    /// never restarted.
    Address(PathBuf), "address", |c, v| {
        if v.as_os_str().is_empty() {
            return Err(Error::invalid_argument("the containerd address must not be empty"));
        }
        c.address = Some(v.clone());
    }
);
option!(
    /// The state directory (default [`DEFAULT_STATE_DIR`]).
    StateDir(PathBuf), "state dir", |c, v| {
        if !v.is_absolute() {
            return Err(Error::invalid_argument(format!(
                "the state directory {} must be an absolute path", v.display()
            )));
        }
        c.state_dir = v.clone();
    }
);
option!(
    /// The containerd binary (a name looked up in PATH, or a path).
    ContainerdBinary(PathBuf), "containerd binary", |c, v| {
        c.containerd_binary = v.clone();
    }
);
option!(
    /// containerd's log level: trace, debug, info, warn, error, fatal or panic.
    LogLevel(String), "log level", |c, v| {
        const LEVELS: [&str; 7] = ["trace", "debug", "info", "warn", "error", "fatal", "panic"];
        if !LEVELS.contains(&v.as_str()) {
            return Err(Error::invalid_argument(format!(
                "log level {v:?} is not one of {}", LEVELS.join(", ")
            )));
        }
        c.log_level = Some(v.clone());
    }
);
option!(
    /// containerd's debug socket.
    DebugAddress(PathBuf), "debug address", |c, v| {
        c.debug_address = Some(v.clone());
    }
);
option!(
    /// containerd's metrics address (`host:port`).
    MetricsAddress(String), "metrics address", |c, v| {
        if !v.contains(':') {
            return Err(Error::invalid_argument(format!(
                "metrics address {v:?} is not host:port"
            )));
        }
        c.metrics_address = Some(v.clone());
    }
);
option!(
    /// containerd's OOM score adjustment, -1000 to 1000.
    OomScore(i32), "OOM score", |c, v| {
        if !(-1000..=1000).contains(v) {
            return Err(Error::invalid_argument(format!(
                "OOM score {v} is out of range -1000..=1000"
            )));
        }
        c.oom_score = Some(*v);
    }
);
option!(
    /// Owner (uid, gid) of containerd's gRPC socket.
    SocketOwner((u32, u32)), "socket uid/gid", |c, v| {
        c.socket_uid = Some(v.0);
        c.socket_gid = Some(v.1);
    }
);
option!(
    /// Containers created through the remote share runc shims labelled with
    /// this group (`io.containerd.runc.v2.group`).
    ShimGroup(String), "shim group", |c, v| {
        validate_namespace(v)
            .map_err(|e| e.with_message(format!("shim group {v:?} is not a valid name")))?;
        c.shim_group = Some(v.clone());
    }
);
option!(
    /// The deadline of every call to containerd (default
    /// [`DEFAULT_RPC_TIMEOUT`]): a daemon that does not answer in time fails
    /// the call with `DeadlineExceeded`, and a change it may have half made
    /// is rolled back. The event stream has none.
    RpcTimeout(Duration), "RPC timeout", |c, v| {
        validate_rpc_timeout(*v)?;
        c.rpc_timeout = *v;
    }
);
option!(
    /// Let the embedded containerd outlive this process.
    Outlive(bool), "outlive", |c, v| {
        c.outlive = *v;
    }
);

/// A configuration section for one containerd plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The plugin's name, such as `io.containerd.runtime.v1.linux`.
    pub plugin: String,
    /// The body of its `[plugins."<plugin>"]` TOML section.
    pub toml: String,
}

impl RemoteOption for PluginConfig {
    fn name(&self) -> &'static str {
        "plugin config"
    }
    fn apply(&self, config: &mut dyn RemoteConfig) -> Result<()> {
        let c = config_mut::<LinuxConfig>(config, self.name())?;
        if self.plugin.is_empty() || self.toml.lines().any(|l| l.trim_start().starts_with('[')) {
            return Err(Error::invalid_argument(format!(
                "plugin config for {:?} must name a plugin and hold keys only, no [sections]",
                self.plugin
            )));
        }
        c.plugin_config
            .push((self.plugin.clone(), self.toml.clone()));
        Ok(())
    }
}

/// The health-check timing of an embedded daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// Pause between checks (default 500 ms).
    pub interval: Duration,
    /// How long a check waits (default 3 s).
    pub timeout: Duration,
    /// Failed checks before a hung daemon is restarted (default 3).
    pub failures: u32,
}

impl RemoteOption for HealthCheck {
    fn name(&self) -> &'static str {
        "health check"
    }
    fn apply(&self, config: &mut dyn RemoteConfig) -> Result<()> {
        let c = config_mut::<LinuxConfig>(config, self.name())?;
        if self.interval.is_zero() || self.timeout.is_zero() || self.failures == 0 {
            return Err(Error::invalid_argument(
                "health check interval, timeout and failures must be positive",
            ));
        }
        c.health_interval = self.interval;
        c.health_timeout = self.timeout;
        c.health_failures = self.failures;
        Ok(())
    }
}

/// What clients of one remote share.
pub(crate) struct Shared {
    /// The one gRPC channel (reconnects by itself after a daemon restart).
    pub channel: Channel,
    /// Where per-container FIFOs live.
    pub fifo_root: PathBuf,
    /// runc's state root for containers created through this remote.
    pub runc_root: PathBuf,
    /// The shim group label, if any.
    pub shim_group: Option<String>,
    /// The deadline of each call.
    pub rpc_timeout: Duration,
    /// Where an embedded daemon keeps its task bundles (`None` at an
    /// address): a bundle left by a task containerd lost is removed there.
    pub bundle_root: Option<PathBuf>,
    /// Becomes true on cleanup: event streams stop.
    pub closed: watch::Receiver<bool>,
    /// Exits the shims kept across restarts of an embedded daemon.
    pub shim_exits: Option<Arc<ShimExits>>,
}

/// containerd, embedded and supervised by default, or at an address.
///
/// The embedded daemon gets a parent-death signal unless [`Outlive`] is set.
/// Linux ties that signal to the *thread* that started the process, so build
/// the remote on a runtime whose threads live as long as the remote (a
/// multi-threaded runtime, or the main thread's); restarts are spawned from
/// the health-check task on that same runtime.
///
/// ```no_run
/// use std::sync::Arc;
/// use libctd_core::{Remote, RemoteOption};
/// use libctd_linux::{LinuxRemote, LogLevel, StateDir};
///
/// # async fn demo(backend: Arc<dyn libctd_core::Backend>) -> libctd_core::Result<()> {
/// let remote = LinuxRemote::new(&[
///     &StateDir("/run/my-engine/containerd".into()) as &dyn RemoteOption,
///     &LogLevel("info".into()),
/// ])
/// .await?;
/// let client = remote.new_client("my-engine", backend).await?;
/// println!("containerd {}", client.version().await?.version);
/// remote.cleanup().await?;
/// # Ok(()) }
/// # fn main() { let _ = demo; }
/// ```
pub struct LinuxRemote {
    config: LinuxConfig,
    shared: Arc<Shared>,
    supervisor: Option<Arc<Supervisor>>,
    closed: watch::Sender<bool>,
    cleaned: tokio::sync::Mutex<bool>,
}

impl std::fmt::Debug for LinuxRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxRemote")
            .field("socket", &self.socket())
            .field("embedded", &self.supervisor.is_some())
            .finish()
    }
}

/// The socket a configuration talks to: its address, else the embedded
/// daemon's socket under the state directory.
fn socket_of(config: &LinuxConfig) -> PathBuf {
    match &config.address {
        Some(a) => a.clone(),
        None => supervisor::DaemonPaths::new(&config.state_dir).socket,
    }
}

/// A channel that dials `socket` lazily and again after each failure.
fn lazy_channel(socket: &Path) -> Result<Channel> {
    let path = socket.to_path_buf();
    let endpoint = Endpoint::try_from("http://[::]:50051")
        .map_err(|e| Error::system("cannot build the gRPC endpoint").with_source(e))?;
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })),
    )
}

impl LinuxRemote {
    /// Builds a remote from `options`: starts (or reuses) an embedded
    /// containerd under the state directory, or connects to `Address`.
    ///
    /// Errors: `InvalidArgument`/`PermissionDenied` when the state directory
    /// cannot be used; `Unavailable` when containerd or runc is not installed,
    /// when the daemon does not come up, or when the address is not a
    /// containerd.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn new(options: &[&dyn RemoteOption]) -> Result<Self> {
        let mut config = LinuxConfig::default();
        for option in options {
            option
                .apply(&mut config)
                .map_err(|e| e.with_operation("new remote"))?;
        }
        Self::with_config(config).await
    }

    /// Builds a remote from a complete configuration.
    pub async fn with_config(config: LinuxConfig) -> Result<Self> {
        validate_rpc_timeout(config.rpc_timeout).map_err(|e| e.with_operation("new remote"))?;
        supervisor::prepare_state_dir(&config.state_dir)?;
        let fifo_root = config.state_dir.join("fifo");
        let socket = socket_of(&config);
        if socket.as_os_str().len() >= 108 {
            return Err(Error::invalid_argument(format!(
                "the socket path {} is too long for a unix socket (at most 107 bytes); use a shorter state directory",
                socket.display()
            )));
        }
        let channel = lazy_channel(&socket)?;
        let supervisor = match &config.address {
            None => Some(Supervisor::start(config.clone(), channel.clone()).await?),
            Some(address) => {
                check_external(address, &channel).await?;
                None
            }
        };
        let (closed, closed_rx) = watch::channel(false);
        Ok(Self {
            shared: Arc::new(Shared {
                channel,
                fifo_root,
                runc_root: config.state_dir.join("runc"),
                shim_group: config.shim_group.clone(),
                rpc_timeout: config.rpc_timeout,
                bundle_root: config.address.is_none().then(|| {
                    supervisor::DaemonPaths::new(&config.state_dir)
                        .state
                        .join("io.containerd.runtime.v2.task")
                }),
                closed: closed_rx,
                shim_exits: supervisor.as_ref().map(|s| s.exits.clone()),
            }),
            config,
            supervisor,
            closed,
            cleaned: tokio::sync::Mutex::new(false),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &LinuxConfig {
        &self.config
    }

    /// The containerd socket.
    pub fn socket(&self) -> PathBuf {
        socket_of(&self.config)
    }

    /// The pid of the embedded containerd (`None` for an external one or after cleanup).
    pub fn daemon_pid(&self) -> Option<u32> {
        self.supervisor
            .as_ref()
            .map(|s| s.pid())
            .filter(|p| *p != 0)
    }

    /// How many times the embedded containerd was restarted.
    pub fn restarts(&self) -> u64 {
        self.supervisor.as_ref().map_or(0, |s| s.restarts())
    }

    /// Arranges for the embedded daemon to be stopped when this process exits
    /// normally (`std::process::exit` or the end of `main`): SIGTERM, up to
    /// 15 s, SIGKILL, then the pid file and sockets (and, with
    /// `remove_state_dir`, the whole state directory) are removed. For test
    /// binaries and tools that cannot call [`cleanup`](libctd_core::Remote::cleanup).
    pub fn stop_at_exit(&self, remove_state_dir: bool) {
        let Some(sup) = &self.supervisor else { return };
        let state_dir = remove_state_dir.then(|| self.config.state_dir.clone());
        supervisor::stop_at_exit(sup.clone(), state_dir);
    }

    /// Whether containerd answers a Version call within `timeout`.
    pub async fn is_healthy(&self, timeout: Duration) -> bool {
        version_ok(&self.shared.channel, timeout).await
    }

    /// A [`LinuxClient`] of `namespace`, with its concrete type.
    pub async fn new_linux_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<LinuxClient>> {
        validate_namespace(namespace).map_err(|e| e.with_operation("new_client"))?;
        if *self.closed.borrow() {
            return Err(Error::failed_precondition("the remote was cleaned up")
                .with_operation("new_client"));
        }
        LinuxClient::connect(self.shared.clone(), namespace, backend).await
    }
}

/// Checks that `address` is a containerd socket.
async fn check_external(address: &Path, channel: &Channel) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(address).map_err(|e| {
        Error::unavailable(format!("no containerd socket at {}", address.display())).with_source(e)
    })?;
    if !meta.file_type().is_socket() {
        return Err(Error::invalid_argument(format!(
            "{} is not a containerd socket: it is not a socket at all",
            address.display()
        )));
    }
    let mut client =
        containerd_client::services::v1::version_client::VersionClient::new(channel.clone());
    match tokio::time::timeout(Duration::from_secs(5), client.version(())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(Error::unavailable(format!(
            "{} is not a containerd socket: Version failed: {}",
            address.display(),
            status.message()
        ))
        .with_source(status)),
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "{} is not a containerd socket: no answer to Version within 5s",
                address.display()
            ),
        )),
    }
}

impl Drop for LinuxRemote {
    /// Stops health checks (clients keep working, without restarts); a daemon
    /// still running (no [`cleanup`](libctd_core::Remote::cleanup)) is left
    /// for the next remote on the same state directory to reuse.
    fn drop(&mut self) {
        if let Some(s) = &self.supervisor {
            s.stop_monitoring();
        }
    }
}

#[async_trait]
impl libctd_core::Remote for LinuxRemote {
    #[tracing::instrument(level = "debug", skip(self, backend))]
    async fn new_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<dyn Client>> {
        let client: Arc<dyn Client> = self.new_linux_client(namespace, backend).await?;
        Ok(client)
    }

    #[tracing::instrument(level = "info", skip(self))]
    async fn cleanup(&self) -> Result<()> {
        let mut cleaned = self.cleaned.lock().await;
        if *cleaned {
            return Ok(());
        }
        self.closed.send_replace(true);
        if let Some(s) = &self.supervisor {
            s.stop().await;
        }
        *cleaned = true;
        Ok(())
    }
}
