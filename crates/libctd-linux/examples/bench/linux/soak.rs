//! The soak phase: thousands of sequential lifecycles through one client,
//! sampling this process's memory, descriptors, threads and tokio tasks at
//! fixed intervals. Heap in use (what the allocator handed out and did not
//! get back) against RSS tells real growth from allocator retention: a
//! flat heap under a rising RSS is the allocator keeping freed pages.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use super::{Bench, Ours, Recorder, Result, heap_in_use, lifecycle, rss_bytes};

/// One reading of the process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    lifecycles: usize,
    rss: u64,
    heap: u64,
    fds: usize,
    threads: usize,
    tasks: usize,
}

impl Sample {
    fn now(lifecycles: usize) -> Self {
        let count = |dir: &str| std::fs::read_dir(dir).map_or(0, Iterator::count);
        Self {
            lifecycles,
            rss: rss_bytes(),
            heap: heap_in_use(),
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        }
    }
}

/// Least-squares slope of `y` over `x` (per unit of `x`).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

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
    b.record(
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
    b.row(
        format!("soak {n}: heap / RSS per lifecycle"),
        format!("{heap_per:+.0} B / {rss_per:+.0} B"),
        format!(
            "RSS {:.1} MiB after malloc_trim",
            trimmed as f64 / super::MIB as f64
        ),
        None,
        verdict,
        None,
    );
    b.row(
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
