//! Sequential lifecycles of `/bin/true`, ours (without and with the shim
//! group) interleaved with `ctr run --rm` and `runc run`: wall time, the
//! steps, client CPU, exit-event latency; and the CPU of one bare RPC.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libctd_core::{Client, Result};
use serde_json::{Value, json};

use crate::measure::{Usage, cpu_children, ms};
use crate::ours::{STEPS, lifecycle, within};
use crate::reference::paired_share_ms;
use crate::run::Bench;
use crate::stats::Dist;

/// What the sequential phase compares.
#[derive(Clone, Copy, PartialEq)]
enum Seq {
    Off,
    On,
    Ctr,
    Runc,
}

/// `b.args.lifecycles` lifecycles per variant, the variants interleaved;
/// then the RPC calibration.
pub(super) async fn sequential(b: &Bench) -> Result<()> {
    let n = b.args.lifecycles;
    println!("bench: {n} sequential lifecycles of /bin/true x 4 variants, interleaved");
    let mut wall: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut cpu: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut ctr_cpu = Vec::new();
    let mut step_ms: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    let mut step_cpu: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    let mut seq_ids: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut usage: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    for i in 0..n {
        let mut order = [Seq::Off, Seq::On, Seq::Ctr, Seq::Runc];
        order.rotate_left(i % 4);
        for v in order {
            let id = format!("seq{i}");
            match v {
                Seq::Off | Seq::On => {
                    let o = b.variant(v == Seq::On);
                    let spec = b.spec(&["/bin/true"]);
                    let u0 = Usage::of(libc::RUSAGE_SELF);
                    let suffix = if v == Seq::On { "on" } else { "off" };
                    let cid = format!("{id}-{suffix}");
                    let steps = lifecycle(o, &cid, &spec).await?;
                    seq_ids.entry(o.label).or_default().push(cid);
                    let u = Usage::of(libc::RUSAGE_SELF).since(&u0);
                    let c = u.cpu();
                    let parts = usage.entry(o.label).or_insert_with(|| vec![Vec::new(); 4]);
                    parts[0].push(ms(u.user));
                    parts[1].push(ms(u.sys));
                    parts[2].push(u.vcsw as f64);
                    parts[3].push(u.ivcsw as f64);
                    let took: Duration = steps.iter().map(|s| s.0).sum();
                    let per = step_ms
                        .entry(o.label)
                        .or_insert_with(|| vec![Vec::new(); STEPS.len()]);
                    for (v, d) in per.iter_mut().zip(steps) {
                        v.push(ms(d.0));
                    }
                    let per = step_cpu
                        .entry(o.label)
                        .or_insert_with(|| vec![Vec::new(); STEPS.len()]);
                    for (v, d) in per.iter_mut().zip(steps) {
                        v.push(ms(d.1));
                    }
                    wall.entry(o.label).or_default().push(ms(took));
                    cpu.entry(o.label).or_default().push(ms(c));
                }
                Seq::Ctr => {
                    let c0 = cpu_children();
                    let took = b.ctr.run(&format!("{id}-ctr"), &["/bin/true"]).await?;
                    ctr_cpu.push(ms(cpu_children() - c0));
                    wall.entry("ctr").or_default().push(ms(took));
                }
                Seq::Runc => {
                    let took = b.runc.run(&format!("{id}-runc")).await?;
                    wall.entry("runc").or_default().push(ms(took));
                }
            }
        }
    }
    let get = |m: &HashMap<&'static str, Vec<f64>>, k: &str| m.get(k).cloned().unwrap_or_default();
    let ctr = Dist::of(&get(&wall, "ctr"));
    let runc = Dist::of(&get(&wall, "runc"));
    let mut json_wall = serde_json::Map::new();
    for (k, v) in &wall {
        json_wall.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut json_cpu = serde_json::Map::new();
    for (k, v) in &cpu {
        json_cpu.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    json_cpu.insert("ctr_process".to_owned(), Dist::of(&ctr_cpu).json(&ctr_cpu));
    for (k, parts) in &usage {
        let names = [
            "user_ms",
            "sys_ms",
            "voluntary_switches",
            "involuntary_switches",
        ];
        let split: serde_json::Map<String, Value> = names
            .iter()
            .zip(parts)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        json_cpu.insert(format!("{k} split"), Value::Object(split));
    }
    let mut json_steps = serde_json::Map::new();
    for (k, per) in &step_ms {
        let steps: serde_json::Map<String, Value> = STEPS
            .iter()
            .zip(per)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        json_steps.insert((*k).to_owned(), Value::Object(steps));
    }
    let mut json_step_cpu = serde_json::Map::new();
    for (k, per) in &step_cpu {
        let steps: serde_json::Map<String, Value> = STEPS
            .iter()
            .zip(per)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        json_step_cpu.insert((*k).to_owned(), Value::Object(steps));
    }
    b.report.record(
        "lifecycle_ms",
        json!({
            "wall": json_wall, "cpu": json_cpu, "steps": json_steps,
            "steps_cpu": json_step_cpu,
        }),
    );
    for o in [&b.off, &b.on] {
        let d = Dist::of(&get(&wall, o.label));
        let ratio = d.p50 / ctr.p50;
        b.report.row(
            format!("lifecycle p50 ms, {}", o.label),
            format!("{:.1}", d.p50),
            format!("ctr {:.1}", ctr.p50),
            Some(ratio),
            "<= 0.6x",
            Some(ratio <= 0.6),
        );
        b.report.row(
            format!("  p90 / min ms, {}", o.label),
            format!("{:.1} / {:.1}", d.p90, d.min),
            format!("ctr {:.1} / {:.1}", ctr.p90, ctr.min),
            Some(d.p90 / ctr.p90),
            "",
            None,
        );
        let steps = step_ms.get(o.label).cloned().unwrap_or_default();
        let p50s: Vec<String> = steps
            .iter()
            .map(|v| format!("{:.1}", Dist::of(v).p50))
            .collect();
        b.report.row(
            format!("  steps p50 ms, {}", o.label),
            p50s.join(" / "),
            "create/start/exit/del-task/del",
            None,
            "",
            None,
        );
        let cpu_steps = step_cpu.get(o.label).cloned().unwrap_or_default();
        let p50s: Vec<String> = cpu_steps
            .iter()
            .map(|v| format!("{:.2}", Dist::of(v).p50))
            .collect();
        b.report.row(
            format!("  steps client CPU p50 ms, {}", o.label),
            p50s.join(" / "),
            "create/start/exit/del-task/del",
            None,
            "",
            None,
        );
        b.report.row(
            format!("  vs runc run, {}", o.label),
            format!("{:.1}", d.p50),
            format!("runc {:.1}", runc.p50),
            Some(d.p50 / runc.p50),
            "(floor)",
            None,
        );
    }
    let mut j_lat = serde_json::Map::new();
    for o in [&b.off, &b.on] {
        let ids = seq_ids.get(o.label).cloned().unwrap_or_default();
        let lv = o.recorder.latencies_ms(&ids);
        let rv = b.raw.latencies_ms(&ids);
        let sv = paired_share_ms(o, &b.raw, &ids);
        let (l, r, sh) = (Dist::of(&lv), Dist::of(&rv), Dist::of(&sv));
        j_lat.insert(
            o.label.to_owned(),
            json!({
                "libctd": l.json(&lv), "raw_subscriber": r.json(&rv),
                "libctd_minus_raw": sh.json(&sv),
            }),
        );
        b.report.row(
            format!("event latency ms p50/p99 (sequential), {}", o.label),
            format!("{:.2} / {:.2} (n={})", l.p50, l.p99, l.n),
            format!("raw gRPC {:.2} / {:.2} (n={})", r.p50, r.p99, r.n),
            Some(l.p99 / r.p99),
            "(burst's)",
            None,
        );
        b.report.row(
            "  libctd's share, paired p50/p90/max ms",
            format!("{:.3} / {:.3} / {:.3}", sh.p50, sh.p90, sh.max),
            "libctd minus raw, per event",
            None,
            "",
            None,
        );
    }
    b.report
        .record("sequential_event_latency_ms", Value::Object(j_lat));
    for o in [&b.off, &b.on] {
        let c = Dist::of(&get(&cpu, o.label));
        let parts = usage.get(o.label).cloned().unwrap_or_default();
        let p50 = |i: usize| parts.get(i).map_or(0.0, |v| Dist::of(v).p50);
        b.report.row(
            format!("client CPU ms/lifecycle, {}", o.label),
            format!(
                "{:.2} (p90 {:.2}; usr {:.2} sys {:.2}; {:.0} switches)",
                c.p50,
                c.p90,
                p50(0),
                p50(1),
                p50(2) + p50(3)
            ),
            format!("ctr proc {:.1}", Dist::of(&ctr_cpu).p50),
            None,
            "<= 1.5 ms",
            Some(c.p50 <= 1.5),
        );
    }
    rpc_cost(b).await
}

/// Calibration: the client CPU of one bare gRPC round trip (Version), which
/// a lifecycle makes five of (containers.Create, tasks.Create, tasks.Start,
/// tasks.Delete, containers.Delete) besides receiving three task events
/// (create, start, exit).
async fn rpc_cost(b: &Bench) -> Result<()> {
    const CALLS: u32 = 500;
    let u0 = Usage::of(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    for _ in 0..CALLS {
        within("version", "-", b.off.client.version()).await?;
    }
    let wall = t0.elapsed() / CALLS;
    let u = Usage::of(libc::RUSAGE_SELF).since(&u0);
    let cpu_us = u.cpu().as_secs_f64() * 1e6 / f64::from(CALLS);
    let switches = (u.vcsw + u.ivcsw) as f64 / f64::from(CALLS);
    b.report.record(
        "rpc_calibration",
        json!({
            "calls": CALLS, "cpu_us_per_call": cpu_us,
            "wall_us_per_call": wall.as_secs_f64() * 1e6,
            "switches_per_call": switches,
        }),
    );
    b.report.row(
        "  client CPU us per bare RPC (Version)",
        format!("{cpu_us:.0} ({switches:.1} switches)"),
        format!("wall {:.0} us", wall.as_secs_f64() * 1e6),
        None,
        "",
        None,
    );
    Ok(())
}
