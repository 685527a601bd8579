//! The soak phase: thousands of sequential lifecycles through one client,
//! sampling this process's memory, descriptors, threads and tokio tasks at
//! fixed intervals. Heap in use (what the allocator handed out and did not
//! get back) against RSS tells real growth from allocator retention: a
//! flat heap under a rising RSS is the allocator keeping freed pages.

use std::sync::{Arc, Mutex, PoisonError};

use libctd_core::Result;
use serde_json::json;

use crate::measure::{MIB, Sample, rss_bytes};
use crate::ours::{Ours, Recorder, lifecycle};
use crate::run::Bench;
use crate::stats::slope;

/// Runs `b.args.soak` lifecycles of `/bin/true`, sampling every tenth.
pub(super) async fn soak(b: &Bench) -> Result<()> {
    let n = b.args.soak;
    let every = (n / 10).max(1);
    println!("bench: soak of {n} lifecycles, sampled every {every}");
    let spec = b.spec(&["/bin/true"]);
    // A client of its own, in a namespace nothing else watches, so that
    // only libctd's own memory is measured.
    let recorder = Arc::new(Recorder::default());
    let ns = format!("bench-soak-{}", std::process::id());
    let o = Ours {
        label: "soak",
        client: b.remote.new_linux_client(&ns, recorder.clone()).await?,
        recorder,
        live: Mutex::default(),
    };
    let mut samples = vec![Sample::now(0)];
    for i in 0..n {
        lifecycle(&o, &format!("soak-{i}"), &spec).await?;
        if (i + 1) % every == 0 {
            // The bench's own latency record is not libctd's memory.
            o.recorder
                .latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            samples.push(Sample::now(i + 1));
        }
    }
    // The first interval warms caches and pools: the trend is taken after it.
    let trend = |f: fn(&Sample) -> u64| {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .skip(1)
            .map(|s| (s.lifecycles as f64, f(s) as f64))
            .collect();
        slope(&points)
    };
    let rss_per = trend(|s| s.rss);
    let heap_per = trend(|s| s.heap);
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let trimmed = rss_bytes();
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let verdict = if heap_per.abs() < 16.0 {
        "flat heap: RSS change is the allocator's"
    } else {
        "the heap grows: memory is held per lifecycle"
    };
    b.report.record(
        "soak",
        json!({
            "lifecycles": n,
            "every": every,
            "samples": samples.iter().map(|s| json!({
                "lifecycles": s.lifecycles, "rss": s.rss, "heap": s.heap,
                "fds": s.fds, "threads": s.threads, "tokio_tasks": s.tasks,
            })).collect::<Vec<_>>(),
            "rss_bytes_per_lifecycle": rss_per,
            "heap_bytes_per_lifecycle": heap_per,
            "rss_after_malloc_trim": trimmed,
            "verdict": verdict,
        }),
    );
    b.report.row(
        format!("soak {n}: heap / RSS per lifecycle"),
        format!("{heap_per:+.0} B / {rss_per:+.0} B"),
        format!(
            "RSS {:.1} MiB after malloc_trim",
            trimmed as f64 / MIB as f64
        ),
        None,
        verdict,
        None,
    );
    b.report.row(
        format!("soak {n}: fds, threads, tokio tasks"),
        format!(
            "{}->{}, {}->{}, {}->{}",
            first.fds, last.fds, first.threads, last.threads, first.tasks, last.tasks
        ),
        "",
        None,
        "flat",
        Some(last.fds <= first.fds + 2 && last.tasks <= first.tasks + 2),
    );
    Ok(())
}
