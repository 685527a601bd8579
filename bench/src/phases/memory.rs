//! The client's memory with N running containers attached, and the shims
//! serving them.

use libctd_core::Result;
use libctd_core::oci_spec::runtime::Spec;
use serde_json::json;

use crate::measure::{MIB, heap_in_use, rss_bytes, shims_of};
use crate::ours::{remove_all, start_all};
use crate::run::Bench;

/// The client's RSS and heap before, with and after `b.args.attached`
/// running containers attached, without or with the shim group.
pub(super) async fn memory(b: &Bench, group: bool) -> Result<()> {
    let n = b.args.attached;
    let o = b.variant(group);
    println!(
        "bench: memory with {n} running containers attached, {}",
        o.label
    );
    let (idle, heap_idle) = (rss_bytes(), heap_in_use());
    let ids: Vec<String> = (0..n)
        .map(|k| format!("mem-{}-{k}", if group { "on" } else { "off" }))
        .collect();
    let specs: Vec<Spec> = ids.iter().map(|_| b.spec(&["sleep", "100000"])).collect();
    let exits = start_all(o, &ids, &specs).await?;
    let (loaded, heap_loaded) = (rss_bytes(), heap_in_use());
    let (shims, shim_rss) = shims_of(o.client.namespace());
    remove_all(o, ids, exits).await?;
    let (after, heap_after) = (rss_bytes(), heap_in_use());
    let mib = |v: u64| v as f64 / MIB as f64;
    let delta = loaded.saturating_sub(idle);
    let heap_delta = heap_loaded.saturating_sub(heap_idle);
    let per = |v: u64| v as f64 / 1024.0 / n as f64;
    b.report.record(
        &format!("memory {}", o.label),
        json!({
            "containers": n, "rss_idle_mib": mib(idle), "rss_loaded_mib": mib(loaded),
            "rss_after_mib": mib(after), "rss_delta_mib": mib(delta),
            "rss_delta_kib_per_container": per(delta),
            "heap_idle_mib": mib(heap_idle), "heap_loaded_mib": mib(heap_loaded),
            "heap_after_mib": mib(heap_after), "heap_delta_kib_per_container": per(heap_delta),
            "shims": shims, "shims_rss_mib": mib(shim_rss),
        }),
    );
    b.report.row(
        format!("client RSS +{n} attached, {}", o.label),
        format!(
            "+{:.1} MiB ({:.0} KiB each; heap {:.0} KiB each)",
            mib(delta),
            per(delta),
            per(heap_delta)
        ),
        format!("{shims} shims, {:.0} MiB RSS", mib(shim_rss)),
        None,
        "",
        None,
    );
    Ok(())
}
