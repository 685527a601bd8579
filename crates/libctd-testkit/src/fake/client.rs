//! The fake's client: the 18 operations over an in-memory state machine.
//!
//! This file holds the client and the frame every operation runs in; the
//! operations themselves live by concern in `client/`: the state and its
//! rules (`state.rs`), the container lifecycle (`lifecycle.rs`), processes
//! and their streams (`process.rs`), and queries (`queries.rs`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use libctd_core::metrics::measured;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Client, CreateOptions, Error, EventDispatcher, Images, Resources, Restored, Result, Stats,
    Status, StdioCallback, Summary, TaskExit, Version,
};

use super::{Op, Shared, check_ids, lock};

mod lifecycle;
mod process;
mod queries;
mod state;

pub use lifecycle::FAKE_RUNTIME_OPTIONS_TYPE;
use state::Containers;
pub(crate) use state::Namespace;

/// The fake's [`Client`]. Made by [`FakeRemote::new_client`](super::FakeRemote).
pub struct FakeClient {
    shared: Arc<Shared>,
    namespace: String,
    ns: Arc<Namespace>,
    events: EventDispatcher,
}

impl std::fmt::Debug for FakeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeClient")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl FakeClient {
    /// The state of the client's namespace, shared with its other clients.
    pub(crate) fn namespace_state(&self) -> &Namespace {
        &self.ns
    }

    pub(crate) fn new(
        shared: Arc<Shared>,
        namespace: String,
        ns: Arc<Namespace>,
        events: EventDispatcher,
    ) -> Self {
        Self {
            shared,
            namespace,
            ns,
            events,
        }
    }

    /// The client's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The event queue of the client (to wait until events were delivered).
    pub fn events(&self) -> &EventDispatcher {
        &self.events
    }

    /// The common start of every operation: the remote is up, scripted
    /// faults and delays. Nothing has changed when this fails or is cancelled.
    async fn enter(&self, op: Op, container_id: Option<&str>) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::unavailable("the fake remote was cleaned up"));
        }
        if self.shared.config.unsupported.contains(&op) {
            return Err(Error::not_implemented(format!(
                "{} is not supported by the fake",
                op.as_str()
            )));
        }
        if let Some(delay) = self.shared.script.delay_for(op, container_id) {
            tokio::time::sleep(delay).await;
        }
        if let Some(err) = self.shared.script.fault(op, container_id) {
            return Err(err);
        }
        Ok(())
    }

    /// The frame of every per-container operation: the ids (then `checks`)
    /// are validated, the remote is entered (faults, delays), then `f` runs on
    /// the namespace's containers under their lock. Every error names the
    /// operation, the container and the process. Cancel-safe: the only await
    /// comes before anything changes.
    async fn operate<R>(
        &self,
        op: Op,
        container_id: &str,
        process_id: Option<&str>,
        checks: Result<()>,
        f: impl FnOnce(&mut Containers) -> Result<R>,
    ) -> Result<R> {
        measured(op.as_str(), async {
            check_ids(op, container_id, process_id)?;
            let ctx = |e: Error| {
                let e = e.with_operation(op.as_str()).with_container(container_id);
                match process_id {
                    Some(p) => e.with_process(p),
                    None => e,
                }
            };
            checks.map_err(ctx)?;
            self.enter(op, Some(container_id)).await.map_err(ctx)?;
            let mut cs = lock(&self.ns.containers);
            f(&mut cs).map_err(ctx)
        })
        .await
    }
}

#[async_trait]
impl Client for FakeClient {
    fn images(&self) -> Option<&dyn Images> {
        Some(self)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn version(&self) -> Result<Version> {
        lifecycle::version(self).await
    }

    #[tracing::instrument(level = "debug", skip(self, attach), fields(namespace = %self.namespace))]
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        lifecycle::restore(self, container_id, attach).await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, options), fields(namespace = %self.namespace))]
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        lifecycle::create(self, container_id, spec, options).await
    }

    #[tracing::instrument(level = "debug", skip(self, attach_cb), fields(namespace = %self.namespace))]
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach_cb: StdioCallback,
    ) -> Result<u32> {
        lifecycle::start(self, container_id, checkpoint_dir, with_stdin, attach_cb).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        process::signal_process(self, container_id, process_id, signal).await
    }

    #[tracing::instrument(level = "debug", skip(self, spec, attach_cb), fields(namespace = %self.namespace))]
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach_cb: StdioCallback,
    ) -> Result<u32> {
        process::exec(self, container_id, process_id, spec, with_stdin, attach_cb).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        process::resize_terminal(self, container_id, process_id, width, height).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        process::close_stdin(self, container_id, process_id).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn pause(&self, container_id: &str) -> Result<()> {
        self.freeze(Op::Pause, container_id, true).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn resume(&self, container_id: &str) -> Result<()> {
        self.freeze(Op::Resume, container_id, false).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        queries::stats(self, container_id).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        queries::list_pids(self, container_id).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        queries::summary(self, container_id).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        lifecycle::delete_task(self, container_id).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn delete(&self, container_id: &str) -> Result<()> {
        lifecycle::delete(self, container_id).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn status(&self, container_id: &str) -> Result<Status> {
        queries::status(self, container_id).await
    }

    #[tracing::instrument(level = "debug", skip(self, resources), fields(namespace = %self.namespace))]
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        queries::update_resources(self, container_id, resources).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.namespace))]
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        lifecycle::create_checkpoint(self, container_id, checkpoint_dir, exit).await
    }
}
