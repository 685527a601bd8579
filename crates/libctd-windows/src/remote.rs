//! `WindowsRemote`: hands out [`WindowsClient`]s over one [`Hcs`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::{
    Backend, Client, Error, RemoteConfig, RemoteOption, Result, remote_option, validate_namespace,
};

use crate::client::{ClientSettings, WindowsClient};
use crate::hcs::Hcs;
use crate::hcs::sim::Sim;

/// The configuration a [`WindowsRemote`] is built from; options act on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowsConfig {
    /// Settings given to every client.
    pub client: ClientSettings,
}

impl RemoteConfig for WindowsConfig {
    fn platform(&self) -> &'static str {
        "windows"
    }
}

remote_option!(
    /// How long to wait for a compute system to exit after a shutdown or
    /// terminate request. Must be positive.
    #[derive(Copy)]
    pub ShutdownTimeout(Duration) for WindowsConfig, "shutdown timeout", |config, timeout| {
        if timeout.is_zero() {
            return Err(Error::invalid_argument(
                "the shutdown timeout must be positive",
            ));
        }
        config.client.shutdown_timeout = *timeout;
    }
);

remote_option!(
    /// How long to let the engine consume a deleted process's output.
    #[derive(Copy)]
    pub StdioDrainTimeout(Duration) for WindowsConfig, "stdio drain timeout", |config, timeout| {
        config.client.stdio_drain_timeout = *timeout;
    }
);

/// The Windows remote: HCS runs in-process, so there is no daemon to start;
/// the remote shares one [`Hcs`] among its clients.
///
/// ```
/// use libctd_core::Remote;
/// use libctd_windows::WindowsRemote;
/// use libctd_windows::remote::ShutdownTimeout;
/// # use std::sync::Arc;
/// # use libctd_core::{async_trait, Backend, BoxError, EventInfo, EventType};
/// # struct Quiet;
/// # #[async_trait]
/// # impl Backend for Quiet {
/// #     async fn process_event(&self, _: &str, _: EventType, _: EventInfo) -> Result<(), BoxError> { Ok(()) }
/// # }
///
/// # #[tokio::main] async fn main() {
/// let timeout = ShutdownTimeout(std::time::Duration::from_secs(30));
/// let remote = WindowsRemote::simulated(&[&timeout]).unwrap();
/// let client = remote.new_client("moby", Arc::new(Quiet)).await.unwrap();
/// # drop(client);
/// remote.cleanup().await.unwrap();
/// # }
/// ```
pub struct WindowsRemote<H: Hcs> {
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
    /// A remote over `hcs`, configured by `options` (applied in order).
    pub fn new(hcs: Arc<H>, options: &[&dyn RemoteOption]) -> Result<Self> {
        let mut config = WindowsConfig::default();
        for option in options {
            option
                .apply(&mut config)
                .map_err(|e| e.with_operation("new remote"))?;
        }
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

impl WindowsRemote<Sim> {
    /// A remote over a fresh simulated HCS.
    pub fn simulated(options: &[&dyn RemoteOption]) -> Result<Self> {
        Self::new(Arc::new(Sim::new()), options)
    }
}

#[cfg(windows)]
impl WindowsRemote<crate::hcs::ffi::Computecore> {
    /// A remote over the real computecore.dll. Fails with `Unavailable` when
    /// the Windows Containers feature is not installed.
    pub fn native(options: &[&dyn RemoteOption]) -> Result<Self> {
        let hcs = crate::hcs::ffi::Computecore::load()?;
        Self::new(Arc::new(hcs), options)
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
    use libctd_core::{ErrorKind, Remote, config_mut};

    #[derive(Debug)]
    struct Foreign;
    impl RemoteOption for Foreign {
        fn name(&self) -> &'static str {
            "foreign"
        }
        fn apply(&self, config: &mut dyn RemoteConfig) -> Result<()> {
            struct Other;
            impl RemoteConfig for Other {
                fn platform(&self) -> &'static str {
                    "other"
                }
            }
            config_mut::<Other>(config, self.name()).map(|_| ())
        }
    }

    #[test]
    fn options_apply_or_fail() {
        let remote = WindowsRemote::simulated(&[&ShutdownTimeout(Duration::from_secs(7))]).unwrap();
        assert_eq!(
            remote.config().client.shutdown_timeout,
            Duration::from_secs(7)
        );
        let err = WindowsRemote::simulated(&[&ShutdownTimeout(Duration::ZERO)]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = WindowsRemote::simulated(&[&Foreign]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotImplemented);
        assert!(err.to_string().contains("windows"), "{err}");
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
        let remote = WindowsRemote::simulated(&[]).unwrap();
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
