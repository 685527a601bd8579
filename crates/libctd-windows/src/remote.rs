//! `WindowsRemote`: hands out [`WindowsClient`]s over one [`Hcs`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::{Backend, Client, Error, Result, validate_namespace};

use crate::client::{ClientSettings, WindowsClient};
use crate::hcs::Hcs;
use crate::hcs::sim::Sim;

/// The configuration a [`WindowsRemote`] is built from; write it with
/// [`WindowsRemote::builder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowsConfig {
    /// Settings given to every client.
    pub client: ClientSettings,
}

impl WindowsConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a zero shutdown timeout or a relative state
    /// directory.
    pub fn validate(&self) -> Result<()> {
        if self
            .client
            .state_dir
            .as_ref()
            .is_some_and(|d| !d.is_absolute())
        {
            return Err(
                Error::invalid_argument("the state directory must be an absolute path")
                    .with_operation("new remote"),
            );
        }
        if self.client.shutdown_timeout.is_zero() {
            return Err(
                Error::invalid_argument("the shutdown timeout must be positive")
                    .with_operation("new remote"),
            );
        }
        Ok(())
    }
}

/// The HCS a [`WindowsRemote`] uses unless told otherwise: the real
/// computecore.dll on Windows, the simulator elsewhere.
#[cfg(windows)]
pub type PlatformHcs = crate::hcs::ffi::Computecore;
/// The HCS a [`WindowsRemote`] uses unless told otherwise: the real
/// computecore.dll on Windows, the simulator elsewhere.
#[cfg(not(windows))]
pub type PlatformHcs = Sim;

/// Writes a [`WindowsConfig`] setting by setting; [`build`](Self::build),
/// [`simulated`](Self::simulated) or (on Windows) `native` validate it once
/// and make the remote. Made by [`WindowsRemote::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until it builds a remote"]
pub struct WindowsRemoteBuilder {
    config: WindowsConfig,
}

impl WindowsRemoteBuilder {
    /// How long to wait for a compute system to exit after a shutdown or
    /// terminate request (default 5 minutes, as libcontainerd). Must be
    /// positive.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.client.shutdown_timeout = timeout;
        self
    }

    /// How long to let the engine consume a deleted process's output before
    /// its copies are cancelled (default 2 s; zero cancels at once).
    pub fn stdio_drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.client.stdio_drain_timeout = timeout;
        self
    }

    /// Where clients record what a restore after an engine restart must
    /// release (an absolute path; see [`ClientSettings::state_dir`]).
    pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.client.state_dir = Some(dir.into());
        self
    }

    /// The configuration written so far (not yet validated).
    pub fn config(&self) -> &WindowsConfig {
        &self.config
    }

    /// A remote over `hcs`.
    ///
    /// # Errors
    ///
    /// As [`WindowsConfig::validate`].
    pub fn build<H: Hcs>(self, hcs: Arc<H>) -> Result<WindowsRemote<H>> {
        WindowsRemote::with_config(hcs, self.config)
    }

    /// A remote over a fresh simulated HCS.
    ///
    /// # Errors
    ///
    /// As [`WindowsConfig::validate`].
    pub fn simulated(self) -> Result<WindowsRemote<Sim>> {
        self.build(Arc::new(Sim::new()))
    }

    /// A remote over the real computecore.dll.
    ///
    /// # Errors
    ///
    /// `Unavailable` when the Windows Containers feature is not installed;
    /// otherwise as [`WindowsConfig::validate`].
    #[cfg(windows)]
    pub fn native(self) -> Result<WindowsRemote<crate::hcs::ffi::Computecore>> {
        let hcs = crate::hcs::ffi::Computecore::load()?;
        self.build(Arc::new(hcs))
    }
}

/// The Windows remote: HCS runs in-process, so there is no daemon to start;
/// the remote shares one [`Hcs`] among its clients.
///
/// ```
/// use libctd_core::Remote;
/// use libctd_windows::WindowsRemote;
/// # use std::sync::Arc;
/// # use libctd_core::{async_trait, Backend, BoxError, EventInfo, EventType};
/// # struct Quiet;
/// # #[async_trait]
/// # impl Backend for Quiet {
/// #     async fn process_event(&self, _: &str, _: EventType, _: EventInfo) -> Result<(), BoxError> { Ok(()) }
/// # }
///
/// # #[tokio::main] async fn main() {
/// let remote = WindowsRemote::builder()
///     .shutdown_timeout(std::time::Duration::from_secs(30))
///     .simulated()
///     .unwrap();
/// let client = remote.new_client("moby", Arc::new(Quiet)).await.unwrap();
/// # drop(client);
/// remote.cleanup().await.unwrap();
/// # }
/// ```
pub struct WindowsRemote<H: Hcs = PlatformHcs> {
    hcs: Arc<H>,
    config: WindowsConfig,
    closed: AtomicBool,
}

impl<H: Hcs> std::fmt::Debug for WindowsRemote<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowsRemote")
            .field("config", &self.config)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

impl<H: Hcs> WindowsRemote<H> {
    /// A remote over `hcs` with a complete configuration, validated first.
    ///
    /// # Errors
    ///
    /// As [`WindowsConfig::validate`].
    pub fn with_config(hcs: Arc<H>, config: WindowsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            hcs,
            config,
            closed: AtomicBool::new(false),
        })
    }

    /// The HCS shared by the remote's clients.
    pub fn hcs(&self) -> &Arc<H> {
        &self.hcs
    }

    /// The remote's configuration.
    pub fn config(&self) -> &WindowsConfig {
        &self.config
    }

    /// A concrete client (the [`Remote`](libctd_core::Remote) trait gives it
    /// as `Arc<dyn Client>`).
    pub fn client(&self, namespace: &str, backend: Arc<dyn Backend>) -> Result<WindowsClient<H>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(
                Error::unavailable("the remote was cleaned up").with_operation("new_client")
            );
        }
        validate_namespace(namespace).map_err(|e| e.with_operation("new_client"))?;
        WindowsClient::with_settings(
            self.hcs.clone(),
            namespace,
            backend,
            self.config.client.clone(),
        )
        .map_err(|e| e.with_operation("new_client"))
    }
}

impl WindowsRemote {
    /// A builder with every setting at its default.
    pub fn builder() -> WindowsRemoteBuilder {
        WindowsRemoteBuilder::default()
    }
}

#[async_trait]
impl<H: Hcs> libctd_core::Remote for WindowsRemote<H> {
    #[tracing::instrument(level = "debug", skip(self, backend))]
    async fn new_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<dyn Client>> {
        Ok(Arc::new(self.client(namespace, backend)?))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn cleanup(&self) -> Result<()> {
        // HCS runs in-process: nothing to stop. Compute systems belong to the
        // engine's containers and outlive the remote, as with libcontainerd.
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::{ErrorKind, Remote};

    #[test]
    fn settings_apply_or_fail() {
        let remote = WindowsRemote::builder()
            .shutdown_timeout(Duration::from_secs(7))
            .stdio_drain_timeout(Duration::ZERO)
            .simulated()
            .unwrap();
        assert_eq!(
            remote.config().client.shutdown_timeout,
            Duration::from_secs(7)
        );
        assert_eq!(remote.config().client.stdio_drain_timeout, Duration::ZERO);
        let err = WindowsRemote::builder()
            .shutdown_timeout(Duration::ZERO)
            .simulated()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("shutdown timeout"), "{err}");
        let mut config = WindowsConfig::default();
        config.client.shutdown_timeout = Duration::ZERO;
        let err = WindowsRemote::with_config(Arc::new(Sim::new()), config).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidArgument,
            "nothing bypasses validation"
        );
        let err = WindowsRemote::builder()
            .state_dir("relative")
            .simulated()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("state directory"), "{err}");
        let dir = std::env::temp_dir();
        let remote = WindowsRemote::builder()
            .state_dir(&dir)
            .simulated()
            .unwrap();
        assert_eq!(remote.config().client.state_dir, Some(dir));
    }

    #[tokio::test]
    async fn cleanup_is_idempotent_and_closes() {
        struct Quiet;
        #[async_trait]
        impl Backend for Quiet {
            async fn process_event(
                &self,
                _: &str,
                _: libctd_core::EventType,
                _: libctd_core::EventInfo,
            ) -> std::result::Result<(), libctd_core::BoxError> {
                Ok(())
            }
        }
        let remote = WindowsRemote::builder().simulated().unwrap();
        let err = remote
            .new_client("bad/ns", Arc::new(Quiet))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(remote.new_client("ns", Arc::new(Quiet)).await.is_ok());
        remote.cleanup().await.unwrap();
        remote.cleanup().await.unwrap();
        let err = remote
            .new_client("ns", Arc::new(Quiet))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
