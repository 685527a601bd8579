//! Bursts: many lifecycles started at once, ours against concurrent
//! `ctr run --rm`: containers per second, steps, exit-event latency.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Error, Result};
use serde_json::{Value, json};

use crate::measure::{cpu_self, ms};
use crate::ours::{STEPS, lifecycle};
use crate::reference::paired_share_ms;
use crate::run::Bench;
use crate::stats::Dist;

/// Starts `n` lifecycles of ours at once; (wall, ids, client CPU).
async fn our_burst(
    b: &Bench,
    group: bool,
    round: usize,
) -> Result<(Duration, Vec<String>, Duration, Vec<Vec<f64>>)> {
    let o = b.variant(group).clone();
    let ids: Vec<String> = (0..b.args.burst)
        .map(|k| format!("burst-{}-{round}-{k}", if group { "on" } else { "off" }))
        .collect();
    let specs: Vec<Spec> = ids.iter().map(|_| b.spec(&["/bin/true"])).collect();
    let c0 = cpu_self();
    let t0 = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .cloned()
        .zip(specs)
        .map(|(id, spec)| {
            let o = o.clone();
            tokio::spawn(async move { lifecycle(&o, &id, &spec).await })
        })
        .collect();
    let mut steps = vec![Vec::new(); STEPS.len()];
    for t in futures::future::join_all(tasks).await {
        let lc = t.map_err(|e| Error::system("a burst task failed").with_source(e))??;
        for (v, (wall, _)) in steps.iter_mut().zip(lc) {
            v.push(ms(wall));
        }
    }
    Ok((t0.elapsed(), ids, cpu_self() - c0, steps))
}

/// Runs `b.args.burst` `ctr run --rm` at once; their wall time.
async fn ctr_burst(b: &Bench, round: usize) -> Result<Duration> {
    let t0 = Instant::now();
    let runs = (0..b.args.burst).map(|k| {
        let id = format!("burst-ctr-{round}-{k}");
        async move { b.ctr.run(&id, &["/bin/true"]).await }
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(t0.elapsed())
}

/// Bursts of `b.args.burst` lifecycles, `b.args.rounds` per variant, the
/// variants interleaved.
pub(super) async fn burst(b: &Bench) -> Result<()> {
    let n = b.args.burst;
    println!(
        "bench: bursts of {n} lifecycles x {} rounds x 3 variants, interleaved",
        b.args.rounds
    );
    let mut rate: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut latency: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut raw_latency: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut step_ms: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    let mut burst_ids: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut cpu: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for round in 0..b.args.rounds {
        let mut order = [0, 1, 2];
        order.rotate_left(round % 3);
        for v in order {
            match v {
                0 | 1 => {
                    let group = v == 1;
                    let label = b.variant(group).label;
                    let (wall, ids, c, steps) = our_burst(b, group, round).await?;
                    let per = step_ms
                        .entry(label)
                        .or_insert_with(|| vec![Vec::new(); STEPS.len()]);
                    for (v, s) in per.iter_mut().zip(steps) {
                        v.extend(s);
                    }
                    rate.entry(label)
                        .or_default()
                        .push(n as f64 / wall.as_secs_f64());
                    cpu.entry(label).or_default().push(ms(c) / n as f64);
                    latency
                        .entry(label)
                        .or_default()
                        .extend(b.variant(group).recorder.latencies_ms(&ids));
                    raw_latency
                        .entry(label)
                        .or_default()
                        .extend(b.raw.latencies_ms(&ids));
                    burst_ids.entry(label).or_default().extend(ids);
                }
                _ => {
                    let wall = ctr_burst(b, round).await?;
                    rate.entry("ctr")
                        .or_default()
                        .push(n as f64 / wall.as_secs_f64());
                }
            }
        }
    }
    let get = |m: &HashMap<&'static str, Vec<f64>>, k: &str| m.get(k).cloned().unwrap_or_default();
    let ctr = Dist::of(&get(&rate, "ctr"));
    let mut j_rate = serde_json::Map::new();
    for (k, v) in &rate {
        j_rate.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut j_lat = serde_json::Map::new();
    for (k, v) in &latency {
        j_lat.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut j_raw = serde_json::Map::new();
    for (k, v) in &raw_latency {
        j_raw.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut j_cpu = serde_json::Map::new();
    for (k, v) in &cpu {
        j_cpu.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    b.report.record(
        "burst",
        json!({
            "containers_per_s": j_rate,
            "event_latency_ms": j_lat,
            "raw_subscriber_event_latency_ms": j_raw,
            "client_cpu_ms_per_lifecycle": j_cpu,
        }),
    );
    for o in [&b.off, &b.on] {
        let d = Dist::of(&get(&rate, o.label));
        let ratio = d.p50 / ctr.p50;
        b.report.row(
            format!("burst containers/s, {}", o.label),
            format!("{:.1} [{:.1}..{:.1}]", d.p50, d.min, d.max),
            format!("ctr {:.1} [{:.1}..{:.1}]", ctr.p50, ctr.min, ctr.max),
            Some(ratio),
            ">= 1.3x",
            Some(ratio >= 1.3),
        );
    }
    let mut j_share = serde_json::Map::new();
    for o in [&b.off, &b.on] {
        let l = Dist::of(&get(&latency, o.label));
        let r = Dist::of(&get(&raw_latency, o.label));
        b.report.row(
            format!("event latency ms p50/p99 (burst), {}", o.label),
            format!("{:.2} / {:.2} (n={})", l.p50, l.p99, l.n),
            format!("raw gRPC {:.2} / {:.2} (n={})", r.p50, r.p99, r.n),
            Some(l.p99 / r.p99),
            "p99 < 2 ms",
            Some(l.n > 0 && l.p99 < 2.0),
        );
        let ids = burst_ids.get(o.label).cloned().unwrap_or_default();
        let sv = paired_share_ms(o, &b.raw, &ids);
        let sh = Dist::of(&sv);
        j_share.insert(o.label.to_owned(), sh.json(&sv));
        b.report.row(
            "  libctd's share, paired p50/p90/p99 ms",
            format!("{:.2} / {:.2} / {:.2}", sh.p50, sh.p90, sh.p99),
            "libctd minus raw, per event",
            None,
            "",
            None,
        );
    }
    b.report.record(
        "burst_event_latency_libctd_minus_raw_ms",
        Value::Object(j_share),
    );
    let mut j_steps = serde_json::Map::new();
    for o in [&b.off, &b.on] {
        let per = step_ms.get(o.label).cloned().unwrap_or_default();
        let steps: serde_json::Map<String, Value> = STEPS
            .iter()
            .zip(&per)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        j_steps.insert(o.label.to_owned(), Value::Object(steps));
        let cells: Vec<String> = per
            .iter()
            .map(|v| {
                let d = Dist::of(v);
                format!("{:.0}/{:.0}", d.p50, d.max)
            })
            .collect();
        b.report.row(
            format!("  burst steps p50/max ms, {}", o.label),
            cells.join(" "),
            "create start exit del-task del",
            None,
            "",
            None,
        );
    }
    b.report.record("burst_steps_ms", Value::Object(j_steps));
    for o in [&b.off, &b.on] {
        let c = Dist::of(&get(&cpu, o.label));
        b.report.row(
            format!("client CPU ms/lifecycle in burst, {}", o.label),
            format!("{:.2}", c.p50),
            "",
            None,
            "",
            None,
        );
    }
    Ok(())
}
