//! OpenTelemetry trace propagation (feature `otel`): a request to
//! containerd carries the OpenTelemetry context of the current `tracing`
//! span as W3C Trace Context metadata (`traceparent`, and `tracestate` when
//! it has entries), so containerd's server spans join the engine's trace.
//!
//! The context is the one tracing-opentelemetry's layer keeps for the span
//! (`OpenTelemetrySpanExt::context`). Without that layer, or outside any
//! span it records, the span context is not valid and nothing is added.

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Adds the current span's trace context to `metadata`; nothing when the
/// current span has no valid OpenTelemetry span context.
pub(super) fn inject(metadata: &mut MetadataMap) {
    let cx = tracing::Span::current().context();
    // The propagator writes nothing for a context whose span is not valid.
    TraceContextPropagator::new().inject_context(&cx, &mut Metadata(metadata));
}

/// gRPC metadata as the propagator's carrier.
struct Metadata<'a>(&'a mut MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` says nothing: it is left out. The
        // propagator's keys and values are ASCII by the W3C format; one
        // that were not could not be sent and is left out too.
        if value.is_empty() {
            return;
        }
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) else {
            return;
        };
        self.0.insert(key, value);
    }
}
