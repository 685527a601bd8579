//! The phases, in the order they run; each measures one thing side by side
//! with its reference and records its figures in the report.

use std::sync::Arc;

use libctd_core::{Client, CreateOptions, Result, discard_stdio};
use tracing::Instrument;

use crate::ours::{self, kill_and_remove, within};
use crate::run::Bench;

mod burst;
mod group;
mod image;
mod lifecycle;
mod memory;
mod restore;
mod soak;
mod stdout;

/// Runs the warm-up, the shim-group check and the phases `--only` selects.
pub(crate) async fn run(b: &Arc<Bench>) -> Result<()> {
    warm_up(b).await?;
    group::group_check(b).await?;
    // First, while this process's heap is still close to an idle engine's.
    if b.args.runs("memory") {
        for group in [false, true] {
            memory::memory(b, group)
                .instrument(tracing::info_span!("memory"))
                .await?;
        }
    }
    if b.args.runs("lifecycle") || b.args.runs("burst") {
        // A long-running container in the shim group, as an engine that runs
        // other containers would have: without one, every grouped lifecycle
        // would start (and stop) the group's shim afresh.
        let keeper = "keeper";
        let spec = b.spec(&["sleep", "100000"]);
        let create = b.on.client.create(keeper, &spec, CreateOptions::new());
        within("create", keeper, create).await?;
        b.on.track(keeper, true);
        let keeper_exit = b.on.recorder.expect_exit(keeper);
        let start = b.on.client.start(keeper, None, false, discard_stdio());
        within("start", keeper, start).await?;
        if b.args.runs("lifecycle") {
            let span = tracing::info_span!("lifecycle");
            lifecycle::sequential(b).instrument(span).await?;
        }
        if b.args.runs("burst") {
            burst::burst(b)
                .instrument(tracing::info_span!("burst"))
                .await?;
        }
        kill_and_remove(&b.on, keeper, keeper_exit).await?;
    }
    if b.args.runs("stdout") {
        stdout::stdout(b)
            .instrument(tracing::info_span!("stdout"))
            .await?;
    }
    if b.args.runs("restore") {
        let span = tracing::info_span!("restore");
        restore::restore_at_scale(b).instrument(span).await?;
    }
    if b.args.runs("image") {
        image::import_and_run(b)
            .instrument(tracing::info_span!("image"))
            .await?;
    }
    if b.args.runs("soak") {
        soak::soak(b)
            .instrument(tracing::info_span!("soak"))
            .await?;
    }

    Ok(())
}

/// One of each, unmeasured: page cache, lazy connections, the first shims.
async fn warm_up(b: &Bench) -> Result<()> {
    println!("bench: warming up");
    ours::lifecycle(&b.off, "warm-off", &b.spec(&["/bin/true"])).await?;
    ours::lifecycle(&b.on, "warm-on", &b.spec(&["/bin/true"])).await?;
    if b.raw.latencies_ms(&["warm-off".to_owned()]).is_empty() {
        eprintln!("bench: the raw event subscriber missed the warm-up exit");
    }
    b.ctr.run("warm-ctr", &["/bin/true"]).await?;
    b.runc.run("warm-runc").await?;
    Ok(())
}
