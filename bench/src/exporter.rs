//! `--metrics`: a stand-in for an engine's metrics exporter, installed as
//! the process's recorder before anything runs, so that the lifecycles pay
//! what recording costs (libctd built with its `metrics` feature).
//!
//! It keeps values the way exporters do, in metrics-util's registry of
//! atomics (a handle per name and label set, looked up by hashing the key);
//! it only never exports them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use libctd_core::metrics::OPERATIONS;
use libctd_core::{Error, Result};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// The recorder: every counter, gauge and histogram in an atomic registry.
struct Exporter(Registry<Key, AtomicStorage>);

impl metrics::Recorder for Exporter {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// The installed exporter, to say afterwards what it was given.
pub(crate) struct Installed(Arc<Exporter>);

/// Installs the exporter as the process's recorder.
pub(crate) fn install() -> Result<Installed> {
    let exporter = Arc::new(Exporter(Registry::atomic()));
    metrics::set_global_recorder(exporter.clone())
        .map_err(|_| Error::failed_precondition("a metrics recorder is already installed"))?;
    Ok(Installed(exporter))
}

impl Installed {
    /// How many operation calls were recorded (proof that it recorded).
    pub(crate) fn operations(&self) -> u64 {
        self.0
            .0
            .get_counter_handles()
            .iter()
            .filter(|(key, _)| key.name() == OPERATIONS)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }
}
