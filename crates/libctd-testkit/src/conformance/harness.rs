//! What a case works with: the fixture, a tracked client, its recorder, and
//! helpers that wait with the fixture's deadline. The runner deletes whatever
//! a case left behind, even when the case failed.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{
    Backend, Client, CreateOptions, Error, ErrorKind, EventInfo, EventType, INIT_PROCESS_ID,
    Images, Resources, Restored, Result, Stats, Status, StdioCallback, Summary, TaskExit, Version,
};
use tokio::time::Instant;

use super::{Capabilities, Case, Fixture, Program, Support};
use crate::backend::{CapturedStdio, RecordingBackend, capture_stdio};

/// SIGKILL.
pub(crate) const SIGKILL: i32 = 9;

/// A started process: its pid and its captured streams.
#[derive(Debug, Clone)]
pub struct Started {
    /// The pid the operation returned.
    pub pid: u32,
    /// The process's streams.
    pub stdio: CapturedStdio,
}

/// A client that remembers the containers it created and did not delete.
struct Tracked {
    inner: Arc<dyn Client>,
    live: Mutex<BTreeSet<String>>,
}

impl Tracked {
    fn live(&self) -> Vec<String> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Client for Tracked {
    async fn version(&self) -> Result<Version> {
        self.inner.version().await
    }
    fn images(&self) -> Option<&dyn Images> {
        self.inner.images()
    }
    async fn restore(&self, container_id: &str, attach: StdioCallback) -> Result<Restored> {
        self.inner.restore(container_id, attach).await
    }
    async fn create(&self, container_id: &str, spec: &Spec, options: CreateOptions) -> Result<()> {
        // Tracked before the call, so a create that is cut short is cleaned too.
        let new = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(container_id.to_owned());
        let r = self.inner.create(container_id, spec, options).await;
        if r.is_err() && new {
            self.live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(container_id);
        }
        r
    }
    async fn start(
        &self,
        container_id: &str,
        checkpoint_dir: Option<&Path>,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        self.inner
            .start(container_id, checkpoint_dir, with_stdin, attach)
            .await
    }
    async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        self.inner
            .signal_process(container_id, process_id, signal)
            .await
    }
    async fn exec(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &Process,
        with_stdin: bool,
        attach: StdioCallback,
    ) -> Result<u32> {
        self.inner
            .exec(container_id, process_id, spec, with_stdin, attach)
            .await
    }
    async fn resize_terminal(
        &self,
        container_id: &str,
        process_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        self.inner
            .resize_terminal(container_id, process_id, width, height)
            .await
    }
    async fn close_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        self.inner.close_stdin(container_id, process_id).await
    }
    async fn pause(&self, container_id: &str) -> Result<()> {
        self.inner.pause(container_id).await
    }
    async fn resume(&self, container_id: &str) -> Result<()> {
        self.inner.resume(container_id).await
    }
    async fn stats(&self, container_id: &str) -> Result<Stats> {
        self.inner.stats(container_id).await
    }
    async fn list_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        self.inner.list_pids(container_id).await
    }
    async fn summary(&self, container_id: &str) -> Result<Vec<Summary>> {
        self.inner.summary(container_id).await
    }
    async fn delete_task(&self, container_id: &str) -> Result<TaskExit> {
        self.inner.delete_task(container_id).await
    }
    async fn delete(&self, container_id: &str) -> Result<()> {
        let r = self.inner.delete(container_id).await;
        if r.is_ok() || r.as_ref().is_err_and(|e| e.is(ErrorKind::NotFound)) {
            self.live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(container_id);
        }
        r
    }
    async fn status(&self, container_id: &str) -> Result<Status> {
        self.inner.status(container_id).await
    }
    async fn update_resources(&self, container_id: &str, resources: &Resources) -> Result<()> {
        self.inner.update_resources(container_id, resources).await
    }
    async fn create_checkpoint(
        &self,
        container_id: &str,
        checkpoint_dir: &Path,
        exit: bool,
    ) -> Result<()> {
        self.inner
            .create_checkpoint(container_id, checkpoint_dir, exit)
            .await
    }
}

/// What a case works with.
pub struct Harness {
    name: &'static str,
    fixture: Arc<dyn Fixture>,
    caps: Capabilities,
    client: Arc<dyn Client>,
    backend: Arc<RecordingBackend>,
    clients: Mutex<Vec<(Arc<Tracked>, Arc<RecordingBackend>)>>,
}

impl Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("case", &self.name).finish()
    }
}

impl Harness {
    async fn new(fixture: Arc<dyn Fixture>, name: &'static str) -> Result<Self> {
        let caps = fixture.capabilities();
        let (tracked, backend) = Self::make_client(&fixture).await?;
        Ok(Self {
            name,
            fixture,
            caps,
            client: tracked.clone(),
            backend: backend.clone(),
            clients: Mutex::new(vec![(tracked, backend)]),
        })
    }

    async fn make_client(
        fixture: &Arc<dyn Fixture>,
    ) -> Result<(Arc<Tracked>, Arc<RecordingBackend>)> {
        let backend = Arc::new(RecordingBackend::new());
        let inner = fixture.client(backend.clone() as Arc<dyn Backend>).await?;
        let tracked = Arc::new(Tracked {
            inner,
            live: Mutex::new(BTreeSet::new()),
        });
        Ok((tracked, backend))
    }

    /// The case's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The fixture.
    pub fn fixture(&self) -> &dyn Fixture {
        &*self.fixture
    }

    /// The platform's capabilities.
    pub fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// The case's client.
    pub fn client(&self) -> &dyn Client {
        &*self.client
    }

    /// The recorder of the case's client's events.
    pub fn backend(&self) -> &RecordingBackend {
        &self.backend
    }

    /// How long to wait for an event or output.
    pub fn timeout(&self) -> Duration {
        self.fixture.timeout()
    }

    /// Another client (in a namespace of its own) with its own recorder; its
    /// containers are cleaned up too.
    pub async fn new_client(&self) -> Result<(Arc<dyn Client>, Arc<RecordingBackend>)> {
        let (tracked, backend) = Self::make_client(&self.fixture).await?;
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((tracked.clone(), backend.clone()));
        Ok((tracked, backend))
    }

    /// Creates container `id` running `program`.
    pub async fn create(&self, id: &str, program: &Program, terminal: bool) -> Result<()> {
        let spec = self.fixture.spec(program, terminal);
        self.client
            .create(id, &spec, self.fixture.create_options())
            .await
    }

    /// Starts container `id`, capturing its streams.
    pub async fn start(&self, id: &str, with_stdin: bool) -> Result<Started> {
        let (callback, stdio) = capture_stdio();
        let pid = self.client.start(id, None, with_stdin, callback).await?;
        Ok(Started { pid, stdio })
    }

    /// Creates and starts container `id` running `program`.
    pub async fn run(
        &self,
        id: &str,
        program: &Program,
        terminal: bool,
        with_stdin: bool,
    ) -> Result<Started> {
        self.create(id, program, terminal).await?;
        let started = self.start(id, with_stdin).await?;
        self.fixture.ready(program, started.pid).await?;
        Ok(started)
    }

    /// Runs `program` as exec `process_id` in container `id`, capturing its streams.
    pub async fn exec(
        &self,
        id: &str,
        process_id: &str,
        program: &Program,
        terminal: bool,
        with_stdin: bool,
    ) -> Result<Started> {
        let (callback, stdio) = capture_stdio();
        let spec = self.fixture.process(program, terminal);
        let pid = self
            .client
            .exec(id, process_id, &spec, with_stdin, callback)
            .await?;
        Ok(Started { pid, stdio })
    }

    /// The next `event` of container `id` (any process).
    pub async fn next_event(&self, id: &str, event: EventType) -> Result<EventInfo> {
        self.backend.next_event(id, event, self.timeout()).await
    }

    /// The next `event` of process `process_id` of container `id`.
    pub async fn next_process_event(
        &self,
        id: &str,
        process_id: &str,
        event: EventType,
    ) -> Result<EventInfo> {
        self.backend
            .next_process_event(id, process_id, event, self.timeout())
            .await
    }

    /// The next exit event of the init process of container `id`.
    pub async fn wait_exit(&self, id: &str) -> Result<EventInfo> {
        self.next_process_event(id, INIT_PROCESS_ID, EventType::Exit)
            .await
    }

    /// Deletes the stopped task of `id`, then the container.
    pub async fn remove(&self, id: &str) -> Result<TaskExit> {
        let exit = self.client.delete_task(id).await?;
        self.client.delete(id).await?;
        Ok(exit)
    }

    /// Kills the init process of `id`, waits for its exit, deletes task and
    /// container.
    pub async fn kill_and_remove(&self, id: &str) -> Result<()> {
        self.client
            .signal_process(id, INIT_PROCESS_ID, SIGKILL)
            .await?;
        self.wait_exit(id).await?;
        self.remove(id).await?;
        Ok(())
    }

    /// Stops (SIGKILL) and deletes container `id` of the case's client,
    /// whatever its state; an unknown container is fine.
    pub async fn discard(&self, id: &str) -> Result<()> {
        self.force_remove(&*self.client, id).await
    }

    /// Checks that `result` is the error `support` describes, or that it is
    /// `Ok` when supported. Returns the value when there is one.
    pub fn check_support<T: Debug>(
        &self,
        what: &str,
        support: Support,
        result: Result<T>,
    ) -> Option<T> {
        match support {
            Support::Supported => match result {
                Ok(v) => Some(v),
                Err(e) => panic!("{what}: expected success, got {}", e.report()),
            },
            Support::Fails { kind, contains } => {
                expect_err(what, kind, contains, result);
                None
            }
        }
    }

    /// Deletes every container the case's clients created and left behind.
    async fn cleanup(&self) -> Result<()> {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut first_error = None;
        for (client, _backend) in clients {
            for id in client.live() {
                if let Err(e) = self.force_remove(&*client, &id).await {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn force_remove(&self, client: &dyn Client, id: &str) -> Result<()> {
        if matches!(
            client.status(id).await,
            Ok(Status::Paused | Status::Pausing)
        ) {
            let _ = client.resume(id).await;
        }
        let deadline = Instant::now() + self.timeout();
        let mut killed = false;
        loop {
            match client.delete_task(id).await {
                Ok(_) => break,
                Err(e) if e.is(ErrorKind::NotFound) => break,
                Err(e) if e.is(ErrorKind::FailedPrecondition) => {
                    if !killed {
                        let _ = client.signal_process(id, INIT_PROCESS_ID, SIGKILL).await;
                        killed = true;
                    }
                    if Instant::now() >= deadline {
                        return Err(e.with_message(format!(
                            "cleanup: the task did not stop within {:?} of SIGKILL",
                            self.timeout()
                        )));
                    }
                    // Polling with a deadline: the exit event may already
                    // have been consumed by the case.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.with_operation("cleanup")),
            }
        }
        match client.delete(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is(ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(e.with_operation("cleanup")),
        }
    }
}

/// Asserts that `result` is an error of `kind` whose `Display` contains
/// `contains`, and returns it.
#[track_caller]
pub fn expect_err<T: Debug>(
    what: &str,
    kind: ErrorKind,
    contains: &str,
    result: Result<T>,
) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected a {kind} error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(
                e.kind(),
                kind,
                "{what}: expected a {kind} error, got {}",
                e.report()
            );
            assert!(
                e.to_string().contains(contains),
                "{what}: the error {:?} does not contain {contains:?}",
                e.to_string()
            );
            e
        }
    }
}

/// Runs `case` with a fresh harness, then cleans up; panics on any failure.
pub(crate) async fn run(fixture: Arc<dyn Fixture>, case: &'static Case) {
    let limit = fixture.timeout().saturating_mul(6);
    let harness = match Harness::new(fixture, case.name).await {
        Ok(h) => Arc::new(h),
        Err(e) => panic!("case {}: no client: {}", case.name, e.report()),
    };
    let body = {
        let harness = harness.clone();
        let run = case.run;
        tokio::spawn(async move { tokio::time::timeout(limit, run(&harness)).await })
    };
    let outcome = body.await;
    let cleanup = harness.cleanup().await;
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("case {} failed: {}", case.name, e.report()),
        Ok(Err(_)) => panic!("case {} did not finish within {limit:?}", case.name),
        Err(join) => match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("case {} was cancelled: {e}", case.name),
        },
    }
    if let Err(e) = cleanup {
        panic!(
            "case {} passed but left containers behind: {}",
            case.name,
            e.report()
        );
    }
}
