//! [`LinuxClient`]: the 18 operations of [`Client`], each a thin wrapper
//! over its group: `lifecycle` (create, start, delete_task, delete),
//! `exec` (exec and stdio), `restore`, `queries` (the rest); and
//! [`Images`] (`images`). They work on a
//! [`Session`] through the [`Containerd`](crate::conn::Containerd) seam and
//! the rules of `state`. Each wrapper is one
//! [`measured`](libctd_core::metrics::measured) call (the `metrics`
//! feature's counts and latencies).

mod exec;
mod images;
mod lifecycle;
mod queries;
mod restore;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Backend, Client, CreateOptions, Error, ErrorContext, Images, Resources, Restored, Result,
    Stats, Status, StdioCallback, Summary, TaskExit, Version, detached, metrics::measured,
    validate_container_id,
};
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;

pub use lifecycle::{DEFAULT_RUNTIME, SHIM_GROUP_KEY};

use crate::conn::{Conn, Shared};
use crate::session::Session;

/// A client of one containerd namespace.
///
/// Obtained from [`LinuxRemote::new_client`](libctd_core::Remote::new_client)
/// (or [`LinuxRemote::new_linux_client`](crate::LinuxRemote::new_linux_client)).
/// It subscribes to the namespace's task events in its own task, delivers them
/// to the engine's [`Backend`] through a per-container queue, and resubscribes
/// and reconciles after any gap. Dropping the last handle stops the
/// subscription.
pub struct LinuxClient {
    inner: Arc<Session>,
    /// The subscription task, stopped when the client is dropped.
    _events: AbortOnDropHandle<()>,
}

impl std::fmt::Debug for LinuxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxClient")
            .field("namespace", &self.inner.namespace())
            .finish()
    }
}

impl LinuxClient {
    /// Builds the client and waits until its event subscription is live.
    pub(crate) async fn connect(
        shared: Arc<Shared>,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<Self>> {
        Self::over(Conn::tonic(shared, namespace)?, backend).await
    }

    /// Builds the client over `conn` and waits until its event subscription
    /// is live.
    pub(crate) async fn over(conn: Conn, backend: Arc<dyn Backend>) -> Result<Arc<Self>> {
        let inner = Arc::new(Session::new(conn, backend)?);
        let (ready_tx, ready_rx) = oneshot::channel();
        // A root: the client's background calls, which go on for its whole
        // life, do not join the trace of the operation that made the client.
        let span = tracing::info_span!(parent: None, "events", namespace = %inner.namespace());
        let events = tokio::spawn(tracing::Instrument::instrument(
            crate::events::run(inner.clone(), ready_tx),
            span,
        ));
        let client = Arc::new(Self {
            inner,
            _events: AbortOnDropHandle::new(events),
        });
        match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
            Ok(Ok(())) => Ok(client),
            _ => Err(Error::unavailable(
                "cannot subscribe to containerd's events (no answer within 20s)",
            )
            .with_operation("new_client")),
        }
    }

    /// The namespace of the client.
    pub fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    /// The event queue, to wait until every delivered event was handled.
    pub fn event_queue(&self) -> &libctd_core::EventQueue {
        self.inner.dispatcher.queue()
    }
}

#[async_trait]
impl Client for LinuxClient {
    fn images(&self) -> Option<&dyn Images> {
        Some(self)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn version(&self) -> Result<Version> {
        measured("version", async {
            queries::version(&self.inner)
                .await
                .map_err(|e| e.with_operation("version"))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.inner.namespace()))]
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        measured("restore", async {
            detached(restore::restore(
                self.inner.clone(),
                container_id.to_owned(),
                attach,
            ))
            .await
            .context("restore", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options), fields(namespace = %self.inner.namespace()))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        measured("create", async {
            validate_container_id(container_id).context("create", container_id)?;
            detached(lifecycle::create(
                self.inner.clone(),
                container_id.to_owned(),
                spec.clone(),
                options,
            ))
            .await
            .context("create", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.inner.namespace()))]
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        measured("start", async {
            detached(lifecycle::start(
                self.inner.clone(),
                container_id.to_owned(),
                checkpoint_dir.map(Path::to_path_buf),
                with_stdin,
                attach,
            ))
            .await
            .context("start", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        measured("signal_process", async {
            exec::signal_process(&self.inner, container_id, process_id, signal)
                .await
                .map_err(|e| e.with_process(process_id))
                .context("signal_process", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, attach), fields(namespace = %self.inner.namespace()))]
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        measured("exec", async {
            detached(exec::exec(
                self.inner.clone(),
                container_id.to_owned(),
                process_id.to_owned(),
                spec.clone(),
                with_stdin,
                attach,
            ))
            .await
            .map_err(|e| e.with_process(process_id))
            .context("exec", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        measured("resize_terminal", async {
            exec::resize_terminal(&self.inner, container_id, process_id, width, height)
                .await
                .map_err(|e| e.with_process(process_id))
                .context("resize_terminal", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        measured("close_stdin", async {
            exec::close_stdin(&self.inner, container_id, process_id)
                .await
                .map_err(|e| e.with_process(process_id))
                .context("close_stdin", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        measured("pause", async {
            queries::pause(&self.inner, container_id)
                .await
                .context("pause", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        measured("resume", async {
            queries::resume(&self.inner, container_id)
                .await
                .context("resume", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        measured("stats", async {
            queries::stats(&self.inner, container_id)
                .await
                .context("stats", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        measured("list_pids", async {
            // Not through self.summary: that would count a summary call too.
            queries::summary(&self.inner, container_id)
                .await
                .map(|v| v.iter().map(Summary::pid).collect())
                .context("list_pids", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        measured("summary", async {
            queries::summary(&self.inner, container_id)
                .await
                .context("summary", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        measured("delete_task", async {
            validate_container_id(container_id).context("delete_task", container_id)?;
            detached(lifecycle::delete_task(
                self.inner.clone(),
                container_id.to_owned(),
            ))
            .await
            .context("delete_task", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        measured("delete", async {
            validate_container_id(container_id).context("delete", container_id)?;
            detached(lifecycle::delete(
                self.inner.clone(),
                container_id.to_owned(),
            ))
            .await
            .context("delete", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        measured("status", async {
            queries::status(&self.inner, container_id)
                .await
                .context("status", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, resources), fields(namespace = %self.inner.namespace()))]
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        measured("update_resources", async {
            queries::update_resources(&self.inner, container_id, resources)
                .await
                .context("update_resources", container_id)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        measured("create_checkpoint", async {
            queries::create_checkpoint(&self.inner, container_id, checkpoint_dir, exit)
                .await
                .context("create_checkpoint", container_id)
        })
        .await
    }
}
