//! What libctd records through the `metrics` crate's facade: the names,
//! the labels and the one place each is recorded.
//!
//! Every backend calls [`measured`] from its per-operation wrapper, the
//! [`EventDispatcher`](crate::EventDispatcher) records deliveries and its
//! queue's depth, and the Linux backend reports daemon restarts and
//! resubscriptions here; the table of names and labels is in the crate's
//! documentation. Without the crate feature `metrics` every function is
//! empty and nothing depends on the `metrics` crate.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::event::EventType;

/// Counter: calls of a [`Client`](crate::Client) or
/// [`Images`](crate::Images) operation (label [`OPERATION`]).
pub const OPERATIONS: &str = "libctd_operations_total";
/// Counter: calls that failed (labels [`OPERATION`], [`KIND`]).
pub const OPERATION_ERRORS: &str = "libctd_operation_errors_total";
/// Histogram: how long a call took, in seconds, failed ones included
/// (label [`OPERATION`]).
pub const OPERATION_DURATION: &str = "libctd_operation_duration_seconds";
/// Counter: events handed to the engine's [`Backend`](crate::Backend)
/// (label [`EVENT`]).
pub const EVENTS_DELIVERED: &str = "libctd_events_delivered_total";
/// Gauge: events a client's dispatcher holds that the engine has not yet
/// handled (label [`NAMESPACE`]).
pub const EVENT_QUEUE_DEPTH: &str = "libctd_event_queue_depth";
/// Counter: restarts of an embedded daemon by its supervisor.
pub const DAEMON_RESTARTS: &str = "libctd_daemon_restarts_total";
/// Counter: event subscriptions that became live again after the stream
/// broke (label [`NAMESPACE`]).
pub const EVENT_RESUBSCRIPTIONS: &str = "libctd_event_resubscriptions_total";

/// Label: the operation's name, as the [`Client`](crate::Client) or
/// [`Images`](crate::Images) method (`create`, `delete_task`, `import`, ...).
pub const OPERATION: &str = "operation";
/// Label: the error's kind, [`ErrorKind::as_str`](crate::ErrorKind::as_str)
/// (`not found`, `invalid argument`, ...).
pub const KIND: &str = "kind";
/// Label: the event's type, [`EventType::as_str`] (`exit`, `exec-added`, ...).
pub const EVENT: &str = "event";
/// Label: the namespace of the client.
pub const NAMESPACE: &str = "namespace";

/// Runs one call of `operation` and records it ([`record_operation`]).
/// A call dropped before it finished has no outcome and is not recorded.
///
/// ```
/// use libctd_core::{Error, metrics::measured};
///
/// # #[tokio::main] async fn main() {
/// let r: libctd_core::Result<()> = measured("status", async { Err(Error::not_found("no such container")) }).await;
/// assert!(r.is_err());
/// # }
/// ```
pub async fn measured<T, F>(operation: &'static str, call: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    #[cfg(feature = "metrics")]
    {
        let start = std::time::Instant::now();
        let result = call.await;
        record_operation(operation, &result, start.elapsed());
        result
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = operation;
        call.await
    }
}

/// Records one finished call of `operation`: its count, its error by kind,
/// its latency.
pub fn record_operation<T>(operation: &'static str, result: &Result<T>, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(OPERATIONS, OPERATION => operation).increment(1);
        if let Err(e) = result {
            ::metrics::counter!(OPERATION_ERRORS, OPERATION => operation, KIND => e.kind().as_str())
                .increment(1);
        }
        ::metrics::histogram!(OPERATION_DURATION, OPERATION => operation).record(elapsed);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, result, elapsed);
}

/// Records that an embedded daemon was restarted by its supervisor.
pub fn daemon_restarted() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(DAEMON_RESTARTS).increment(1);
}

/// Records that a client's event subscription in `namespace` became live
/// again after its stream broke.
pub fn event_stream_resubscribed(namespace: &str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(EVENT_RESUBSCRIPTIONS, NAMESPACE => namespace.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = namespace;
}

/// Records that an event was handed to the engine's backend.
pub(crate) fn event_delivered(event: EventType) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(EVENTS_DELIVERED, EVENT => event.as_str()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// One dispatcher's [`EVENT_QUEUE_DEPTH`] gauge, registered once with the
/// recorder current when the dispatcher was made.
#[derive(Clone)]
pub(crate) struct QueueDepth {
    #[cfg(feature = "metrics")]
    gauge: ::metrics::Gauge,
}

impl QueueDepth {
    pub(crate) fn new(namespace: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = namespace;
        Self {
            #[cfg(feature = "metrics")]
            gauge: ::metrics::gauge!(EVENT_QUEUE_DEPTH, NAMESPACE => namespace.to_owned()),
        }
    }

    /// One more event queued; it counts until the returned guard is
    /// dropped (delivered, or dropped undelivered).
    pub(crate) fn queued(&self) -> Queued {
        #[cfg(feature = "metrics")]
        self.gauge.increment(1.0);
        Queued {
            #[cfg(feature = "metrics")]
            gauge: self.gauge.clone(),
        }
    }
}

/// An event counted in its dispatcher's queue depth.
pub(crate) struct Queued {
    #[cfg(feature = "metrics")]
    gauge: ::metrics::Gauge,
}

impl Drop for Queued {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.gauge.decrement(1.0);
    }
}

#[cfg(test)]
#[cfg(feature = "metrics")]
mod tests {
    use super::*;
    use crate::Error;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// Every value recorded, as `name{label=value,...}`, sorted.
    fn recorded(recorder: &DebuggingRecorder) -> Vec<(String, DebugValue)> {
        let mut all: Vec<_> = recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (
                    format!("{}{{{}}}", key.key().name(), labels.join(",")),
                    value,
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    #[test]
    fn an_operation_counts_its_call_its_error_kind_and_its_latency() {
        let recorder = DebuggingRecorder::new();
        metrics::with_local_recorder(&recorder, || {
            let ok: Result<()> = Ok(());
            let failed: Result<()> = Err(Error::not_found("no such container"));
            record_operation("delete", &ok, Duration::from_millis(5));
            record_operation("delete", &failed, Duration::from_millis(7));
        });
        let all = recorded(&recorder);
        let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "libctd_operation_duration_seconds{operation=delete}",
                "libctd_operation_errors_total{operation=delete,kind=not found}",
                "libctd_operations_total{operation=delete}",
            ]
        );
        assert_eq!(all[1].1, DebugValue::Counter(1));
        assert_eq!(all[2].1, DebugValue::Counter(2));
        let DebugValue::Histogram(seconds) = &all[0].1 else {
            panic!("not a histogram: {:?}", all[0].1);
        };
        let seconds: Vec<f64> = seconds.iter().map(|s| s.into_inner()).collect();
        assert_eq!(seconds, [0.005, 0.007]);
    }

    #[test]
    fn queue_depth_counts_until_the_event_is_let_go() {
        let recorder = DebuggingRecorder::new();
        let depth = metrics::with_local_recorder(&recorder, || QueueDepth::new("moby"));
        // A snapshot drains what it reads: the gauge is the sum of them.
        let mut total = 0.0;
        let mut gauge = || match recorded(&recorder).as_slice() {
            [(name, DebugValue::Gauge(v))]
                if name == "libctd_event_queue_depth{namespace=moby}" =>
            {
                total += v.into_inner();
                total
            }
            other => panic!("not the one gauge: {other:?}"),
        };
        let first = depth.queued();
        let second = depth.queued();
        assert_eq!(gauge(), 2.0);
        drop(first);
        assert_eq!(gauge(), 1.0);
        drop(second);
        assert_eq!(gauge(), 0.0);
    }
}
