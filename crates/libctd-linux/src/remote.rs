//! [`LinuxRemote`]: a containerd to talk to, embedded and supervised by
//! default.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::{Backend, Client, Error, ErrorKind, Result, validate_namespace};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::client::LinuxClient;
use crate::config::{LinuxConfig, LinuxRemoteBuilder};
use crate::conn::{Shared, Tonic, Transport, client, version_ok};
use crate::image_store::ImageStore;
use crate::state_dir::{self, DaemonPaths};
use crate::supervisor::{self, Supervisor};

/// containerd, embedded and supervised by default, or at an address.
///
/// Built with [`LinuxRemote::builder`]. The embedded daemon gets a
/// parent-death signal unless [`outlive`](LinuxRemoteBuilder::outlive) is set.
/// Linux ties that signal to the *thread* that started the process, so build
/// the remote on a runtime whose threads live as long as the remote (a
/// multi-threaded runtime, or the main thread's); restarts are spawned from
/// the health-check task on that same runtime.
///
/// ```no_run
/// use std::sync::Arc;
/// use libctd_core::Remote;
/// use libctd_linux::{LinuxRemote, LogLevel};
///
/// # async fn demo(backend: Arc<dyn libctd_core::Backend>) -> libctd_core::Result<()> {
/// let remote = LinuxRemote::builder()
///     .state_dir("/run/my-engine/containerd")
///     .log_level(LogLevel::Info)
///     .build()
///     .await?;
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
    /// Cancels `shared.closed` on cleanup, or when the remote is dropped.
    closed: DropGuard,
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
        None => DaemonPaths::new(&config.state_dir).socket,
    }
}

impl LinuxRemote {
    /// A builder with every setting at its default: an embedded containerd
    /// under [`DEFAULT_STATE_DIR`](crate::DEFAULT_STATE_DIR).
    pub fn builder() -> LinuxRemoteBuilder {
        LinuxRemoteBuilder::default()
    }

    /// Builds a remote from a complete configuration, validated first as
    /// [`LinuxRemoteBuilder::build`] does.
    ///
    /// # Errors
    ///
    /// As [`LinuxRemoteBuilder::build`].
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn with_config(config: LinuxConfig) -> Result<Self> {
        config.validate()?;
        state_dir::prepare_state_dir(&config.state_dir)?;
        let fifo_root = config.state_dir.join("fifo");
        let socket = socket_of(&config);
        if socket.as_os_str().len() >= 108 {
            return Err(Error::invalid_argument(format!(
                "the socket path {} is too long for a unix socket (at most 107 bytes); use a shorter state directory",
                socket.display()
            )));
        }
        let transport = Transport::lazy(&socket, config.keepalive);
        let supervisor = match &config.address {
            None => Some(Supervisor::start(config.clone(), transport.clone()).await?),
            Some(address) => {
                check_external(address, &transport).await?;
                None
            }
        };
        let closed = CancellationToken::new();
        Ok(Self {
            shared: Arc::new(Shared {
                transport,
                fifo_root,
                runc_root: config.state_dir.join("runc"),
                runtime_dir: config.state_dir.join("runtimes"),
                shim_group: config.shim_group.clone(),
                rpc_timeout: config.rpc_timeout,
                bundle_root: config.address.is_none().then(|| {
                    DaemonPaths::new(&config.state_dir)
                        .state
                        .join("io.containerd.runtime.v2.task")
                }),
                closed: closed.clone(),
                shim_exits: supervisor.as_ref().map(|s| s.exits.clone()),
            }),
            config,
            supervisor,
            closed: closed.drop_guard(),
            cleaned: tokio::sync::Mutex::new(false),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &LinuxConfig {
        &self.config
    }

    /// The content store, leases and snapshotters of `namespace`: the parts
    /// an image's import and unpack are made of.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an invalid namespace.
    pub fn image_store(&self, namespace: &str) -> Result<ImageStore> {
        validate_namespace(namespace).map_err(|e| e.with_operation("image_store"))?;
        let api = Tonic::new(
            self.shared.transport.clone(),
            namespace,
            self.shared.rpc_timeout,
        )?;
        Ok(ImageStore::new(api, self.shared.rpc_timeout))
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
        version_ok(&self.shared.transport, timeout).await
    }

    /// A [`LinuxClient`] of `namespace`, with its concrete type.
    pub async fn new_linux_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<LinuxClient>> {
        validate_namespace(namespace).map_err(|e| e.with_operation("new_client"))?;
        if self.closed.token().is_cancelled() {
            return Err(Error::failed_precondition("the remote was cleaned up")
                .with_operation("new_client"));
        }
        LinuxClient::connect(self.shared.clone(), namespace, backend).await
    }
}

impl LinuxRemoteBuilder {
    /// Validates the configuration and starts (or reuses) an embedded
    /// containerd under the state directory, or connects to the
    /// [`address`](Self::address).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a bad setting (see [`LinuxConfig::validate`]);
    /// `InvalidArgument`/`PermissionDenied` when the state directory cannot
    /// be used; `Unavailable` when containerd or runc is not installed, when
    /// the daemon does not come up, or when the address is not a containerd.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while an embedded daemon starts leaves that
    /// daemon running; the next remote on the same state directory reuses it.
    pub async fn build(self) -> Result<LinuxRemote> {
        LinuxRemote::with_config(self.config).await
    }
}

/// Checks that `address` is a containerd socket.
async fn check_external(address: &Path, transport: &Transport) -> Result<()> {
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
    let mut v: containerd_client::services::v1::version_client::VersionClient<Transport> =
        client(transport);
    match tokio::time::timeout(Duration::from_secs(5), v.version(())).await {
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
        self.closed.token().cancel();
        if let Some(s) = &self.supervisor {
            s.stop().await;
        }
        *cleaned = true;
        Ok(())
    }
}
