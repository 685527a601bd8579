//! The trace context `conn::Tonic` puts on each request (feature `otel`),
//! as the daemon receives it.

use super::*;
use crate::conn::{Containerd, Tonic};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing::subscriber::DefaultGuard;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// An engine's tracing: a tracing-opentelemetry layer over an SDK tracer
/// (sampling everything), this thread's subscriber while the guard lives.
fn traced() -> (SdkTracerProvider, DefaultGuard) {
    let provider = SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("libctd-test"));
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (provider, guard)
}

/// The calls of namespace "ns" on a fresh daemon, and what it sees.
fn api() -> (tempfile::TempDir, Tonic, Arc<Seen>) {
    let (dir, t, seen) = served(Daemon::default());
    let api = Tonic::new(t, "ns", Duration::from_secs(5)).unwrap();
    (dir, api, seen)
}

/// The headers of the one request the daemon received.
fn received(seen: &Seen) -> http::HeaderMap {
    let mut all = seen.headers.lock().unwrap();
    assert_eq!(all.len(), 1, "one request");
    all.remove(0)
}

// Current-thread runtimes: the subscriber is the test thread's, and the
// calls run on it.
#[tokio::test(flavor = "current_thread")]
async fn a_call_carries_the_trace_context_of_the_current_span() {
    let (_provider, _guard) = traced();
    let (_dir, api, seen) = api();
    let span = tracing::info_span!("operation");
    let sc = span.context().span().span_context().clone();
    assert!(sc.is_valid() && sc.is_sampled());
    api.version().instrument(span).await.unwrap();
    let h = received(&seen);
    assert_eq!(
        h["traceparent"],
        format!("00-{}-{}-01", sc.trace_id(), sc.span_id()).as_str()
    );
    assert!(
        h.get("tracestate").is_none(),
        "an empty trace state is not sent"
    );
    assert_eq!(h["containerd-namespace"], "ns", "beside the namespace");
}

#[tokio::test(flavor = "current_thread")]
async fn a_callers_trace_state_and_unsampled_flag_are_forwarded() {
    let (_provider, _guard) = traced();
    let (_dir, api, seen) = api();
    // The engine continues a trace that reached it from elsewhere, not
    // sampled there: its span inherits the remote parent's flags and state.
    let state = TraceState::from_key_value([("engine", "e1"), ("edge", "x")]).unwrap();
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::default(),
        true,
        state,
    );
    let span = tracing::info_span!("operation");
    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
        .unwrap();
    let sc = span.context().span().span_context().clone();
    api.version().instrument(span).await.unwrap();
    let h = received(&seen);
    assert_eq!(
        h["traceparent"],
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-00", sc.span_id()).as_str()
    );
    assert_ne!(
        sc.span_id().to_string(),
        "00f067aa0ba902b7",
        "the engine's own span"
    );
    assert_eq!(h["tracestate"], "engine=e1,edge=x");
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_is_added_outside_a_recorded_span() {
    let (_dir, api, seen) = api();
    // No OpenTelemetry layer: the span has no OpenTelemetry context.
    api.version()
        .instrument(tracing::info_span!("untraced"))
        .await
        .unwrap();
    // The layer, but no current span.
    let (_provider, _guard) = traced();
    api.version().await.unwrap();
    let all = std::mem::take(&mut *seen.headers.lock().unwrap());
    assert_eq!(all.len(), 2);
    for h in all {
        assert!(h.get("traceparent").is_none(), "{h:?}");
        assert!(h.get("tracestate").is_none(), "{h:?}");
        assert_eq!(h["containerd-namespace"], "ns");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_kind_of_request_is_traced() {
    // The unbounded requests (the event stream, CRIU's calls) too.
    let (_provider, _guard) = traced();
    let (_dir, api, seen) = api();
    let span = tracing::info_span!("operation");
    let trace_id = span.context().span().span_context().trace_id();
    async {
        api.publish(PublishRequest::default()).await.unwrap();
        let _stream = api.subscribe(Vec::new()).await.unwrap();
    }
    .instrument(span)
    .await;
    let all = std::mem::take(&mut *seen.headers.lock().unwrap());
    assert_eq!(all.len(), 2);
    for h in all {
        let parent = h["traceparent"].to_str().unwrap();
        assert!(parent.contains(&trace_id.to_string()), "{parent}");
    }
}
