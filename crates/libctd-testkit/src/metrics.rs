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
use libctd_core::{Error, Result};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

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
