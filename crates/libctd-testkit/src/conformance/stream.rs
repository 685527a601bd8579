//! The suite with an [`EventStream`] between a client and the suite's
//! recorder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{Backend, Client, CreateOptions, EventStream, Resources, Result};

use super::{Capabilities, Fixture, Program};

/// A [`Fixture`] whose clients deliver their events into an [`EventStream`]
/// of `capacity`, which a task reads, handing each event to the suite's
/// recorder as an engine reading the stream would. The suite's order, exit
/// and OOM cases then hold for the stream, on any platform's fixture.
///
/// ```
/// // tests/stream_conformance.rs; a capacity of 1 makes every delivery but
/// // the first wait for the reader.
/// libctd_testkit::conformance_suite!(|| async {
///     libctd_testkit::conformance::StreamFixture::new(libctd_testkit::FakeFixture::new(), 1)
/// });
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct StreamFixture<F> {
    inner: F,
    capacity: usize,
}

impl<F: Fixture> StreamFixture<F> {
    /// `inner`'s clients, their events through a stream of `capacity`
    /// (which [`EventStream::channel`] checks when a client is made).
    pub fn new(inner: F, capacity: usize) -> Self {
        Self { inner, capacity }
    }

    /// The fixture the clients come from.
    pub fn inner(&self) -> &F {
        &self.inner
    }
}

#[async_trait]
impl<F: Fixture> Fixture for StreamFixture<F> {
    /// # Errors
    ///
    /// `InvalidArgument` for a capacity [`EventStream::channel`] refuses;
    /// else the inner fixture's.
    async fn client(&self, backend: Arc<dyn Backend>) -> Result<Arc<dyn Client>> {
        let (feed, mut events) = EventStream::channel(self.capacity)?;
        let client = self.inner.client(feed).await?;
        // Ends with the stream, once the client is gone.
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let delivered = backend
                    .process_event(&event.container_id, event.kind, event.info)
                    .await;
                if let Err(error) = delivered {
                    tracing::warn!(%error, "the recorder refused an event from the stream");
                }
            }
        });
        Ok(client)
    }

    fn spec(&self, program: &Program, terminal: bool) -> Spec {
        self.inner.spec(program, terminal)
    }

    fn process(&self, program: &Program, terminal: bool) -> Process {
        self.inner.process(program, terminal)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn signal_exit_code(&self, signal: i32) -> u32 {
        self.inner.signal_exit_code(signal)
    }

    fn resources(&self) -> Resources {
        self.inner.resources()
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.inner.checkpoint_dir()
    }

    fn create_options(&self) -> CreateOptions {
        self.inner.create_options()
    }

    fn image(&self, name: &str) -> Option<crate::image::ImageArchive> {
        self.inner.image(name)
    }

    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }

    async fn ready(&self, program: &Program, pid: u32) -> Result<()> {
        self.inner.ready(program, pid).await
    }
}
