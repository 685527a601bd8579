//! OpenTelemetry trace propagation (feature `otel`) against a real
//! containerd, embedded with its OTLP/HTTP exporter pointed at a receiver
//! in this test: the engine's span -> libctd's operation span -> the
//! `traceparent` of each call -> containerd's server spans.
//!
//! What is asserted depends on the daemon's line (its Version answer), as
//! Debian builds them:
//! - 2.x loads its OTLP processor from the standard `OTEL_*` environment,
//!   and its server spans for a create/start carry the engine's trace id and
//!   name libctd's operation span as parent.
//! - 1.7 loads the OTLP processor from that environment too, but Debian's
//!   build has no gRPC server instrumentation (no otelgrpc): its server makes
//!   no spans, an incoming `traceparent` is not read, and nothing of the
//!   engine's trace is exported, up to the daemon's exit.
//! - 1.6 has no tracing processor at all.
//!
//! On every line the traced lifecycle works with the headers on; that they
//! are sent is the unit tests' (conn/transport/tests/trace.rs).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use containerd_client::services::v1::PluginsRequest;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use libctd_core::{EventType, INIT_PROCESS_ID, Remote, discard_stdio};
use libctd_testkit::backend::RecordingBackend;
use libctd_testkit::containerd::{SLEEP_ARGS, build_busybox_rootfs, busybox_spec};
use libctd_testkit::namespace::NamespaceGuard;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// How long containerd may take to export a span (it batches).
const T: Duration = Duration::from_secs(30);

/// containerd's OTLP trace processor plugin type.
const TRACING_PROCESSOR: &str = "io.containerd.tracing.processor.v1";

/// The spans this process ended (the engine's and libctd's), kept by the
/// tracer provider's exporter.
#[derive(Debug, Clone, Default)]
struct Ended(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Ended {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

impl Ended {
    /// The id of the one ended span named `name` in `trace`.
    fn span_id(&self, trace: TraceId, name: &str) -> SpanId {
        let all = self.0.lock().unwrap();
        let ids: Vec<SpanId> = all
            .iter()
            .filter(|s| s.span_context.trace_id() == trace && s.name == name)
            .map(|s| s.span_context.span_id())
            .collect();
        assert_eq!(ids.len(), 1, "one {name:?} span in the trace: {all:?}");
        ids[0]
    }
}

/// This process's tracing: a tracing-opentelemetry layer over an SDK
/// tracer provider that samples every span, set once for the binary.
fn tracing_ended() -> &'static Ended {
    static ENDED: OnceLock<Ended> = OnceLock::new();
    ENDED.get_or_init(|| {
        let ended = Ended::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(ended.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("engine"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the test binary's only subscriber");
        ended
    })
}

/// A minimal OTLP/HTTP trace receiver: answers `POST /v1/traces` (HTTP/1.1,
/// a protobuf `ExportTraceServiceRequest` of `Content-Length` bytes, not
/// compressed) with 200 and keeps every span received.
async fn otlp_receiver() -> (u16, Arc<Mutex<Vec<Span>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve_otlp(sock, kept.clone()));
        }
    });
    (port, spans)
}

/// One connection's requests, in turn (the exporter keeps it alive).
async fn serve_otlp(sock: tokio::net::TcpStream, spans: Arc<Mutex<Vec<Span>>>) {
    let mut sock = BufReader::new(sock);
    loop {
        let mut request_line = String::new();
        if sock.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = None;
        loop {
            let mut line = String::new();
            sock.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>().unwrap()),
                "content-encoding" => assert_eq!(value, "identity", "an uncompressed export"),
                "content-type" => assert_eq!(value, "application/x-protobuf"),
                _ => {}
            }
        }
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line:?}"
        );
        let mut body = vec![0; length.expect("a Content-Length")];
        sock.read_exact(&mut body).await.unwrap();
        let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        spans.lock().unwrap().extend(
            export
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans),
        );
        // An empty ExportTraceServiceResponse: everything accepted.
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        sock.get_mut().write_all(answer.as_bytes()).await.unwrap();
    }
}

/// `(major, minor)` of a containerd release such as `1.7.24~ds1` or `v2.1.9`.
fn line_of(version: &str) -> (u32, u32) {
    let mut parts = version.trim_start_matches('v').split(['.', '~', '-', '+']);
    let mut next = || parts.next().and_then(|p| p.parse().ok());
    (
        next().unwrap_or_else(|| panic!("version {version:?}")),
        next().unwrap_or_else(|| panic!("version {version:?}")),
    )
}

/// The daemon's tracing processor plugins: `(id, init error)` each.
async fn tracing_processors(socket: &std::path::Path) -> Vec<(String, String)> {
    let channel = containerd_client::connect(socket).await.unwrap();
    let plugins = IntrospectionClient::new(channel)
        .plugins(PluginsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .plugins;
    plugins
        .into_iter()
        .filter(|p| p.r#type == TRACING_PROCESSOR)
        .map(|p| (p.id, p.init_err.map(|e| e.message).unwrap_or_default()))
        .collect()
}

/// containerd's span named `…/<method>` in `trace`, once received.
async fn containerd_span(spans: &Mutex<Vec<Span>>, trace: TraceId, method: &str) -> Span {
    let trace = trace.to_bytes();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.trace_id == trace && s.name.ends_with(method))
            .cloned();
        if let Some(span) = found {
            return span;
        }
        let names: Vec<String> = spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "containerd exported no {method} span in the trace within {T:?}; it sent {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn containerd_spans_join_the_engines_trace() {
    libctd_testkit::containerd::require_root();
    let ended = tracing_ended();
    let (port, received) = otlp_receiver().await;
    let dir = std::path::PathBuf::from(format!("/tmp/libctd-o{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let remote = support::embedded(&dir)
        .daemon_env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .daemon_env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .daemon_env("OTEL_TRACES_SAMPLER", "always_on")
        .daemon_env("OTEL_SERVICE_NAME", "libctd-otel-test")
        // Exports every 100 ms instead of every 5 s.
        .daemon_env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .build()
        .await
        .unwrap();
    let rootfs = dir.join("rootfs");
    build_busybox_rootfs(&rootfs).unwrap();
    let _guard = NamespaceGuard::new(remote.socket(), "otel");
    let backend = Arc::new(RecordingBackend::new());
    let client = remote.new_client("otel", backend.clone()).await.unwrap();
    let version = client.version().await.unwrap().version;
    let line = line_of(&version);
    let processors = tracing_processors(&remote.socket()).await;

    // The engine's operation: its span is the parent of libctd's.
    let engine = tracing::info_span!("engine_run");
    let trace = engine.context().span().span_context().trace_id();
    assert_ne!(trace, TraceId::INVALID, "the engine's span is recorded");
    async {
        let spec = busybox_spec(&rootfs, SLEEP_ARGS, false, None);
        client
            .create("c1", &spec, Default::default())
            .await
            .unwrap();
        client
            .start("c1", None, false, discard_stdio())
            .await
            .unwrap();
    }
    .instrument(engine)
    .await;
    let created = ended.span_id(trace, "create");
    let started = ended.span_id(trace, "start");

    if line >= (1, 7) {
        assert_eq!(processors.len(), 1, "{version}: {processors:?}");
        assert_eq!(processors[0].1, "", "{version}: the OTLP processor loads");
    } else {
        assert_eq!(line, (1, 6), "{version}");
        assert!(processors.is_empty(), "{version}: {processors:?}");
    }
    if line >= (2, 0) {
        // Each call's server span names the operation span current at the
        // call as its parent: libctd's.
        for (method, parent) in [
            ("Containers/Create", created),
            ("Tasks/Create", started),
            ("Tasks/Start", started),
        ] {
            let span = containerd_span(&received, trace, method).await;
            assert_eq!(
                span.parent_span_id,
                parent.to_bytes(),
                "{version}: {method}'s parent is libctd's span"
            );
        }
    }

    client
        .signal_process("c1", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let exit = backend.next_event("c1", EventType::Exit, T).await.unwrap();
    assert_eq!(exit.exit_code, 137);
    client.delete_task("c1").await.unwrap();
    client.delete("c1").await.unwrap();
    // The daemon's exit shuts its tracer down, which exports what it held.
    remote.cleanup().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if line < (2, 0) {
        let trace = trace.to_bytes();
        let ours: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace)
            .map(|s| s.name.clone())
            .collect();
        assert!(
            ours.is_empty(),
            "{version} exported spans of the engine's trace: {ours:?} (update the line's rule)"
        );
    }
}

#[test]
fn containerd_lines_are_read_from_their_versions() {
    assert_eq!(line_of("1.6.20~ds1"), (1, 6));
    assert_eq!(line_of("v1.7.24"), (1, 7));
    assert_eq!(line_of("2.1.9+unknown"), (2, 1));
}
