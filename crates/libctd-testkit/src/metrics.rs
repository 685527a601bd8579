//! (feature `metrics`) A recording recorder, to assert what a client
//! records through the `metrics` facade (see `libctd_core::metrics`).
//!
//! A test either sets it as its thread's recorder ([`MetricsRecorder::local`]:
//! on a current-thread runtime it then sees everything the client's tasks
//! record, and tests do not see each other's values) or installs it for the
//! whole test binary ([`MetricsRecorder::install`]: what a multi-threaded
//! runtime needs; one test binary of its own, so no other test adds to it).
//!
//! ```
//! use libctd_core::metrics::{OPERATIONS, OPERATION_ERRORS, measured};
//! use libctd_core::Error;
//! use libctd_testkit::metrics::MetricsRecorder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let recorder = MetricsRecorder::new();
//! let _local = recorder.local();
//! let _ = measured("pause", async { Err::<(), _>(Error::not_found("no such container")) }).await;
//! let recorded = recorder.read();
//! assert_eq!(recorded.counters(OPERATIONS), [("operation=pause".to_owned(), 1)].into());
//! assert_eq!(
//!     recorded.counters(OPERATION_ERRORS),
//!     [("operation=pause,kind=not found".to_owned(), 1)].into()
//! );
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::metrics::LocalRecorderGuard;
use libctd_core::metrics::{
    EVENT_QUEUE_DEPTH, EVENTS_DELIVERED, OPERATION_DURATION, OPERATION_ERRORS, OPERATIONS,
};
use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    Client, CreateOptions, Error, ErrorKind, EventType, INIT_PROCESS_ID, Resources, Result,
    discard_stdio,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::RecordingBackend;

/// How often [`MetricsRecorder::wait_for`] reads the recorder.
const POLL: Duration = Duration::from_millis(10);

/// A recorder that keeps every value recorded to it.
#[derive(Clone)]
pub struct MetricsRecorder {
    recorder: Arc<DebuggingRecorder>,
    /// What earlier reads drained from the recorder.
    seen: Arc<Mutex<Recorded>>,
}

impl std::fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRecorder").finish_non_exhaustive()
    }
}

impl Default for MetricsRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRecorder {
    /// A recorder, not yet set anywhere.
    pub fn new() -> Self {
        Self {
            recorder: Arc::new(DebuggingRecorder::new()),
            seen: Arc::new(Mutex::new(Recorded::default())),
        }
    }

    /// Sets this recorder as the current thread's until the guard is
    /// dropped. Handles registered meanwhile (such as a client's queue-depth
    /// gauge) keep recording here after that.
    pub fn local(&self) -> LocalRecorderGuard<'_> {
        ::metrics::set_default_local_recorder(&*self.recorder)
    }

    /// Installs this recorder for the whole process (once per process).
    ///
    /// # Errors
    ///
    /// `FailedPrecondition` when a global recorder is already installed.
    pub fn install(&self) -> Result<()> {
        ::metrics::set_global_recorder(self.recorder.clone()).map_err(|_| {
            Error::failed_precondition("a global metrics recorder is already installed")
        })
    }

    /// Everything recorded so far.
    pub fn read(&self) -> Recorded {
        // The recorder's snapshot drains counters, gauges and histograms:
        // what it hands over is added to what earlier reads took.
        let snapshot = self.recorder.snapshotter().snapshot().into_vec();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, _, _, value) in snapshot {
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let series = (key.key().name().to_owned(), labels.join(","));
            match value {
                DebugValue::Counter(n) => *seen.counters.entry(series).or_default() += n,
                DebugValue::Gauge(v) => *seen.gauges.entry(series).or_default() += v.into_inner(),
                DebugValue::Histogram(vs) => seen
                    .histograms
                    .entry(series)
                    .or_default()
                    .extend(vs.into_iter().map(|v| v.into_inner())),
            }
        }
        seen.clone()
    }

    /// Polls what was recorded until `done` holds (values recorded on other
    /// tasks, such as event deliveries, arrive after the call that caused
    /// them), and returns it.
    ///
    /// # Errors
    ///
    /// `DeadlineExceeded` naming what was recorded when `done` still does not
    /// hold after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&Recorded) -> bool,
    ) -> Result<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let recorded = self.read();
            if done(&recorded) {
                return Ok(recorded);
            }
            if Instant::now() >= deadline {
                return Err(Error::deadline_exceeded(format!(
                    "the metrics did not reach the expected values within {timeout:?}: {recorded:?}"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// What a [`MetricsRecorder`] holds, per metric name and label set. The
/// label set reads `key=value,key=value`, in the order the metric is
/// recorded with (empty without labels).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    counters: BTreeMap<(String, String), u64>,
    /// Gauges sum their increments and decrements (libctd sets none).
    gauges: BTreeMap<(String, String), f64>,
    histograms: BTreeMap<(String, String), Vec<f64>>,
}

fn series<T: Clone>(all: &BTreeMap<(String, String), T>, name: &str) -> BTreeMap<String, T> {
    all.iter()
        .filter(|((n, _), _)| n == name)
        .map(|((_, labels), v)| (labels.clone(), v.clone()))
        .collect()
}

impl Recorded {
    /// The counter `name`'s value per label set.
    pub fn counters(&self, name: &str) -> BTreeMap<String, u64> {
        series(&self.counters, name)
    }

    /// The gauge `name`'s value per label set.
    pub fn gauges(&self, name: &str) -> BTreeMap<String, f64> {
        series(&self.gauges, name)
    }

    /// The histogram `name`'s samples per label set.
    pub fn histograms(&self, name: &str) -> BTreeMap<String, Vec<f64>> {
        series(&self.histograms, name)
    }
}

/// `entries` as a map, to compare with a series of [`Recorded`].
pub fn series_of<V: Copy>(entries: &[(&str, V)]) -> BTreeMap<String, V> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// What every backend records for the same calls: a client of `namespace`
/// (delivering to `events`, recording to `recorder` and nothing else
/// before) runs container `m1` with `spec`, a program that exits with 3,
/// through create, start, its exit, delete_task and delete, then fails
/// three calls (start of the deleted container, create with a bad id,
/// status of an unknown container). Asserts the exact counts, error kinds,
/// latency samples, deliveries by type and the queue depth back at 0, and
/// returns what was recorded.
///
/// # Errors
///
/// An operation of the lifecycle failed, or an event or a recorded value
/// did not arrive in `timeout`.
pub async fn assert_lifecycle_recorded(
    client: &dyn Client,
    events: &RecordingBackend,
    spec: &Spec,
    recorder: &MetricsRecorder,
    namespace: &str,
    timeout: Duration,
) -> Result<Recorded> {
    client.create("m1", spec, CreateOptions::default()).await?;
    client.start("m1", None, false, discard_stdio()).await?;
    let exit = events
        .next_process_event("m1", INIT_PROCESS_ID, EventType::Exit, timeout)
        .await?;
    assert_eq!(exit.exit_code, 3, "the exit code of m1");
    assert_eq!(client.delete_task("m1").await?.exit_code, 3);
    client.delete("m1").await?;
    let failed = [
        client.start("m1", None, false, discard_stdio()).await.err(),
        client
            .create("a/b", spec, CreateOptions::default())
            .await
            .err(),
        client.status("m2").await.err(),
    ];
    let kinds = failed.map(|e| e.map(|e| e.kind()));
    assert_eq!(
        kinds,
        [
            ErrorKind::NotFound,
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound
        ]
        .map(Some)
    );

    // The deliveries are recorded on the client's event tasks.
    let delivered = series_of(&[("event=create", 1), ("event=exit", 1), ("event=start", 1)]);
    let recorded = recorder
        .wait_for(timeout, |r| r.counters(EVENTS_DELIVERED) == delivered)
        .await?;
    assert_eq!(
        recorded.gauges(EVENT_QUEUE_DEPTH),
        series_of(&[(&format!("namespace={namespace}"), 0.0)])
    );
    let calls = series_of(&[
        ("operation=create", 2),
        ("operation=delete", 1),
        ("operation=delete_task", 1),
        ("operation=start", 2),
        ("operation=status", 1),
    ]);
    assert_eq!(recorded.counters(OPERATIONS), calls);
    assert_eq!(
        recorded.counters(OPERATION_ERRORS),
        series_of(&[
            ("operation=create,kind=invalid argument", 1),
            ("operation=start,kind=not found", 1),
            ("operation=status,kind=not found", 1),
        ])
    );
    // A latency per call, failed ones included.
    let samples: BTreeMap<String, u64> = recorded
        .histograms(OPERATION_DURATION)
        .into_iter()
        .map(|(labels, v)| (labels, v.len() as u64))
        .collect();
    assert_eq!(samples, calls);
    Ok(recorded)
}

/// Calls each of the 18 operations once, on container `none` that does not
/// exist (create with a bad id instead, so that nothing is made), and, when
/// the client keeps images, each of the 4 [`Images`] operations (an archive
/// that is not one, image `none`, which does not exist), and asserts that
/// each is recorded under its own name (one call, one latency sample) and
/// each failure under its operation and kind: what catches a wrapper that is
/// not measured or is measured under another name. `recorder` may hold
/// earlier values: only what these calls add counts.
///
/// [`Images`]: libctd_core::Images
pub async fn assert_every_operation_recorded(client: &dyn Client, recorder: &MetricsRecorder) {
    let before = recorder.read();
    let id = "none";
    let dir = std::env::temp_dir();
    let spec = Spec::default();
    let process = libctd_core::oci_spec::runtime::Process::default();
    let resources = Resources::Linux(Default::default());
    let kind = |r: Result<()>| r.err().map(|e| e.kind());
    let mut outcomes: Vec<(&str, Option<ErrorKind>)> = vec![
        ("version", kind(client.version().await.map(drop))),
        (
            "restore",
            kind(client.restore(id, discard_stdio()).await.map(drop)),
        ),
        (
            "create",
            kind(client.create("a/b", &spec, CreateOptions::default()).await),
        ),
        (
            "start",
            kind(
                client
                    .start(id, None, false, discard_stdio())
                    .await
                    .map(drop),
            ),
        ),
        (
            "signal_process",
            kind(client.signal_process(id, INIT_PROCESS_ID, 15).await),
        ),
        (
            "exec",
            kind(
                client
                    .exec(id, "e1", &process, false, discard_stdio())
                    .await
                    .map(drop),
            ),
        ),
        (
            "resize_terminal",
            kind(client.resize_terminal(id, INIT_PROCESS_ID, 80, 24).await),
        ),
        (
            "close_stdin",
            kind(client.close_stdin(id, INIT_PROCESS_ID).await),
        ),
        ("pause", kind(client.pause(id).await)),
        ("resume", kind(client.resume(id).await)),
        ("stats", kind(client.stats(id).await.map(drop))),
        ("list_pids", kind(client.list_pids(id).await.map(drop))),
        ("summary", kind(client.summary(id).await.map(drop))),
        ("delete_task", kind(client.delete_task(id).await.map(drop))),
        ("delete", kind(client.delete(id).await)),
        ("status", kind(client.status(id).await.map(drop))),
        (
            "update_resources",
            kind(client.update_resources(id, &resources).await),
        ),
        (
            "create_checkpoint",
            kind(client.create_checkpoint(id, &dir, false).await),
        ),
    ];
    if let Some(images) = client.images() {
        let not_an_archive: libctd_core::Archive = Box::pin(&b"not an image archive"[..]);
        outcomes.extend([
            (
                "import",
                kind(
                    images
                        .import(not_an_archive, libctd_core::ImportOptions::new())
                        .await
                        .map(drop),
                ),
            ),
            ("image", kind(images.image(id).await.map(drop))),
            ("list_images", kind(images.list_images().await.map(drop))),
            ("remove_image", kind(images.remove_image(id).await)),
        ]);
    }
    let after = recorder.read();
    let added = |name: &str| -> BTreeMap<String, u64> {
        let was = before.counters(name);
        after
            .counters(name)
            .into_iter()
            .map(|(labels, n)| {
                let n = n - was.get(&labels).copied().unwrap_or(0);
                (labels, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    let calls: BTreeMap<String, u64> = outcomes
        .iter()
        .map(|(op, _)| (format!("operation={op}"), 1))
        .collect();
    assert_eq!(added(OPERATIONS), calls, "the calls recorded");
    let failures: BTreeMap<String, u64> = outcomes
        .iter()
        .filter_map(|(op, kind)| kind.map(|k| (format!("operation={op},kind={}", k.as_str()), 1)))
        .collect();
    assert_eq!(added(OPERATION_ERRORS), failures, "the failures recorded");
    let samples: BTreeMap<String, u64> = calls
        .keys()
        .map(|labels| {
            let was = before
                .histograms(OPERATION_DURATION)
                .get(labels)
                .map_or(0, Vec::len);
            let now = after
                .histograms(OPERATION_DURATION)
                .get(labels)
                .map_or(0, Vec::len);
            (labels.clone(), (now - was) as u64)
        })
        .collect();
    assert_eq!(samples, calls, "a latency per call");
}
