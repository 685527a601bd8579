//! libctd's side: a client, the engine's `Backend` that records exit-event
//! latency, and the lifecycles every phase is made of.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    Backend, BoxError, Client, CreateOptions, DirectIo, Error, ErrorContext, EventInfo, EventType,
    INIT_PROCESS_ID, Result, Status, StdioAttachment, discard_stdio, stdio_callback,
};
use libctd_linux::{LinuxClient, SHIM_GROUP_KEY};
use tokio::sync::oneshot;

use crate::measure::{cpu_self, ms};

/// The longest any single operation may take before the run fails.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// The shim group of the "group" variant.
pub(crate) const GROUP: &str = "bench";
/// How many containers are started or stopped at once (memory, shim group
/// and restore phases).
pub(crate) const BATCH: usize = 10;

/// The engine's side: records exit-event latency and wakes whoever waits
/// for a container's exit.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Who waits for which container's init exit.
    waiters: Mutex<HashMap<String, oneshot::Sender<EventInfo>>>,
    /// Each container's exit-event latency: from `exited_at` to the
    /// `Backend` call.
    pub(crate) latency: Mutex<HashMap<String, Duration>>,
}

impl Recorder {
    /// The init exit of `id`, once it arrives.
    pub(crate) fn expect_exit(&self, id: &str) -> oneshot::Receiver<EventInfo> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), tx);
        rx
    }

    /// Exit-event latencies (ms) of `ids`, those that were seen.
    pub(crate) fn latencies_ms(&self, ids: &[String]) -> Vec<f64> {
        let map = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter()
            .filter_map(|id| map.get(id))
            .map(|d| ms(*d))
            .collect()
    }
}

#[libctd_core::async_trait]
impl Backend for Recorder {
    async fn process_event(
        &self,
        container_id: &str,
        event: EventType,
        info: EventInfo,
    ) -> std::result::Result<(), BoxError> {
        if event != EventType::Exit || info.process_id != INIT_PROCESS_ID {
            return Ok(());
        }
        let now = SystemTime::now();
        if let Some(at) = info.exited_at {
            // A clock step backwards would show as zero rather than as a failure.
            let d = now.duration_since(at).unwrap_or_default();
            self.latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(container_id.to_owned(), d);
        }
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(container_id);
        if let Some(tx) = waiter {
            let _ = tx.send(info);
        }
        Ok(())
    }
}

/// One configuration of libctd: a client and what it has left in containerd.
pub(crate) struct Ours {
    /// The variant's name in the table and the results.
    pub(crate) label: &'static str,
    /// The client.
    pub(crate) client: Arc<LinuxClient>,
    /// Its `Backend`.
    pub(crate) recorder: Arc<Recorder>,
    /// The containers it has in containerd, for the teardown.
    pub(crate) live: Mutex<HashSet<String>>,
}

impl Ours {
    /// Records that `id` exists in containerd (`live`) or no longer does.
    pub(crate) fn track(&self, id: &str, live: bool) {
        let mut set = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }
}

/// Awaits `fut`, failing with a typed error naming `op` and `id` after [`OP_TIMEOUT`].
pub(crate) async fn within<T>(
    op: &'static str,
    id: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r.context(op, id),
        Err(_) => Err(Error::deadline_exceeded(format!(
            "no answer within {}s",
            OP_TIMEOUT.as_secs()
        ))
        .with_operation(op)
        .with_container(id)),
    }
}

/// Awaits the exit `rx` promises, within [`OP_TIMEOUT`].
pub(crate) async fn await_exit(id: &str, rx: oneshot::Receiver<EventInfo>) -> Result<EventInfo> {
    within("await the exit event", id, async {
        rx.await
            .map_err(|_| Error::system("the exit waiter was dropped"))
    })
    .await
}

/// The steps of one lifecycle, in order.
pub(crate) const STEPS: [&str; 5] = ["create", "start", "exit event", "delete_task", "delete"];

/// Create, start, exit event, delete task, delete: the wall time and this
/// process's CPU time of each step.
pub(crate) async fn lifecycle(
    o: &Ours,
    id: &str,
    spec: &Spec,
) -> Result<[(Duration, Duration); 5]> {
    let mut t = (Instant::now(), cpu_self());
    let mut lap = || {
        let now = (Instant::now(), cpu_self());
        let d = (now.0 - t.0, now.1.saturating_sub(t.1));
        t = now;
        d
    };
    let create = o.client.create(id, spec, CreateOptions::new());
    within("create", id, create).await?;
    o.track(id, true);
    let create = lap();
    let exit = o.recorder.expect_exit(id);
    let start = o.client.start(id, None, false, discard_stdio());
    within("start", id, start).await?;
    let start = lap();
    let info = await_exit(id, exit).await?;
    let exited = lap();
    within("delete_task", id, o.client.delete_task(id)).await?;
    let delete_task = lap();
    within("delete", id, o.client.delete(id)).await?;
    let delete = lap();
    o.track(id, false);
    if info.exit_code != 0 {
        return Err(Error::system(format!(
            "/bin/true exited with {} instead of 0",
            info.exit_code
        ))
        .with_container(id));
    }
    Ok([create, start, exited, delete_task, delete])
}

/// Kills a running container of ours and removes it.
pub(crate) async fn kill_and_remove(
    o: &Ours,
    id: &str,
    exit: oneshot::Receiver<EventInfo>,
) -> Result<()> {
    within("kill", id, o.client.signal_process(id, INIT_PROCESS_ID, 9)).await?;
    await_exit(id, exit).await?;
    within("delete_task", id, o.client.delete_task(id)).await?;
    within("delete", id, o.client.delete(id)).await?;
    o.track(id, false);
    Ok(())
}

/// Best effort: kills and removes whatever this client still has.
pub(crate) async fn sweep(o: &Ours) -> usize {
    let ids: Vec<String> = o
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    for id in &ids {
        let _ = o.client.signal_process(id, INIT_PROCESS_ID, 9).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match o.client.status(id).await {
                Ok(Status::Running | Status::Pausing | Status::Paused | Status::Created) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break,
            }
        }
        let _ = o.client.delete_task(id).await;
        if let Err(e) = o.client.delete(id).await {
            eprintln!("bench: could not remove {id} ({}): {}", o.label, e.report());
        }
    }
    ids.len()
}

/// Adds the shim-group annotation to `spec`, as the `shim_group` setting does itself.
pub(crate) fn annotate_group(spec: &mut Spec) {
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(SHIM_GROUP_KEY.to_owned(), GROUP.to_owned());
    spec.set_annotations(Some(annotations));
}

/// Starts `id` running sleep with stdout and stderr read by tasks of ours.
pub(crate) async fn start_attached(
    o: &Ours,
    id: &str,
    spec: &Spec,
) -> Result<oneshot::Receiver<EventInfo>> {
    within(
        "create",
        id,
        o.client.create(id, spec, CreateOptions::new()),
    )
    .await?;
    o.track(id, true);
    let exit = o.recorder.expect_exit(id);
    let start = o.client.start(id, None, false, sink_stdio());
    within("start", id, start).await?;
    Ok(exit)
}

/// Reads the process's output to nowhere, on tasks of ours.
pub(crate) fn sink_stdio() -> libctd_core::StdioCallback {
    stdio_callback(|io: DirectIo| {
        let tasks: Vec<_> = [io.stdout, io.stderr]
            .into_iter()
            .flatten()
            .map(|mut s| {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
                })
            })
            .collect();
        Ok(Box::new(tasks) as Box<dyn StdioAttachment>)
    })
}

/// Starts `specs` (ids `ids`) in batches, attached; their exit receivers.
pub(crate) async fn start_all(
    o: &Ours,
    ids: &[String],
    specs: &[Spec],
) -> Result<Vec<oneshot::Receiver<EventInfo>>> {
    let mut exits = Vec::new();
    for (ids, specs) in ids.chunks(BATCH).zip(specs.chunks(BATCH)) {
        let started = futures::future::join_all(
            ids.iter()
                .zip(specs)
                .map(|(id, spec)| start_attached(o, id, spec)),
        )
        .await;
        for s in started {
            exits.push(s?);
        }
    }
    Ok(exits)
}

/// Kills and removes `ids` in batches.
pub(crate) async fn remove_all(
    o: &Ours,
    ids: Vec<String>,
    exits: Vec<oneshot::Receiver<EventInfo>>,
) -> Result<()> {
    let mut pairs = ids.into_iter().zip(exits);
    loop {
        let batch: Vec<_> = pairs.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            return Ok(());
        }
        let done = futures::future::join_all(
            batch
                .into_iter()
                .map(|(id, exit)| async move { kill_and_remove(o, &id, exit).await }),
        )
        .await;
        for d in done {
            d?;
        }
    }
}
