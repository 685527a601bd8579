//! A connection to the platform's container service.
//!
//! Each backend configures its remote with a builder of its own
//! (`LinuxRemote::builder()`, `WindowsRemote::builder()`), so a setting of
//! the wrong platform does not compile.

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::Backend;
use crate::client::Client;
use crate::error::Result;

/// The platform's container service: containerd on Linux, HCS on Windows.
///
/// A remote hands out [`Client`]s, one per namespace (an engine normally uses
/// one). [`cleanup`](Remote::cleanup) stops whatever the remote started; it is
/// idempotent.
#[async_trait]
pub trait Remote: Send + Sync {
    /// A client of `namespace` whose events go to `backend`.
    ///
    /// Fails with `InvalidArgument` for a malformed namespace, and with
    /// `Unavailable` when the service cannot be reached.
    async fn new_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<dyn Client>>;

    /// Stops event streams and anything the remote started. Idempotent.
    async fn cleanup(&self) -> Result<()>;
}
