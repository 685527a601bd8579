//! Stdout throughput: `dd` of N MiB to stdout read through `DirectIo`,
//! against `ctr run` with its stdout to /dev/null.

use std::time::{Duration, Instant};

use libctd_core::{
    Client, CreateOptions, DirectIo, Error, Result, StdioAttachment, stdio_callback,
};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::measure::MIB;
use crate::ours::{await_exit, within};
use crate::run::Bench;
use crate::stats::Dist;

/// One of our throughput runs: (end-to-end wall, stream wall, bytes).
async fn our_stdout(b: &Bench, id: &str) -> Result<(Duration, Duration, u64)> {
    let o = &b.off;
    let count = b.args.stdout_mib.to_string();
    let spec = b.spec(&[
        "/bin/dd",
        "if=/dev/zero",
        "bs=1M",
        &format!("count={count}"),
    ]);
    let (tx, rx) = oneshot::channel::<(u64, Instant)>();
    let attach = stdio_callback(move |io: DirectIo| {
        let mut out = io.stdout;
        let mut err = io.stderr;
        let reader = tokio::spawn(async move {
            let mut total = 0u64;
            if let Some(out) = out.as_mut() {
                let mut buf = vec![0u8; MIB as usize];
                while let Ok(k) = out.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    total += k as u64;
                }
            }
            let _ = tx.send((total, Instant::now()));
        });
        let errors = tokio::spawn(async move {
            if let Some(err) = err.as_mut() {
                let _ = tokio::io::copy(err, &mut tokio::io::sink()).await;
            }
        });
        Ok(Box::new(vec![reader, errors]) as Box<dyn StdioAttachment>)
    });
    let t0 = Instant::now();
    within(
        "create",
        id,
        o.client.create(id, &spec, CreateOptions::new()),
    )
    .await?;
    o.track(id, true);
    let exit = o.recorder.expect_exit(id);
    let t_start = Instant::now();
    within("start", id, o.client.start(id, None, false, attach)).await?;
    let info = await_exit(id, exit).await?;
    let (bytes, t_eof) = within("read stdout", id, async {
        rx.await
            .map_err(|_| Error::system("the stdout reader was dropped"))
    })
    .await?;
    within("delete_task", id, o.client.delete_task(id)).await?;
    within("delete", id, o.client.delete(id)).await?;
    o.track(id, false);
    let expected = b.args.stdout_mib * MIB;
    if info.exit_code != 0 || bytes != expected {
        return Err(Error::system(format!(
            "dd exited with {} after {bytes} bytes of stdout, expected 0 and {expected}",
            info.exit_code
        ))
        .with_container(id));
    }
    Ok((t0.elapsed(), t_eof.duration_since(t_start), bytes))
}

/// `b.args.stdout_runs` throughput runs per variant, interleaved.
pub(super) async fn stdout(b: &Bench) -> Result<()> {
    let mib = b.args.stdout_mib;
    println!(
        "bench: {mib} MiB to stdout x {} runs x 2 variants, interleaved",
        b.args.stdout_runs
    );
    let count = format!("count={mib}");
    let bytes = (mib * MIB) as f64;
    let mb_s = |d: Duration| bytes / 1e6 / d.as_secs_f64();
    let (mut ours, mut stream, mut ctr) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..b.args.stdout_runs {
        for first_ours in [r % 2 == 0, r % 2 != 0] {
            if first_ours {
                let (total, streaming, _) = our_stdout(b, &format!("dd-{r}")).await?;
                ours.push(mb_s(total));
                stream.push(mb_s(streaming));
            } else {
                let took = b
                    .ctr
                    .run(
                        &format!("dd-ctr-{r}"),
                        &["/bin/dd", "if=/dev/zero", "bs=1M", &count],
                    )
                    .await?;
                ctr.push(mb_s(took));
            }
        }
    }
    let (o, s, c) = (Dist::of(&ours), Dist::of(&stream), Dist::of(&ctr));
    b.report.record(
        "stdout_mb_per_s",
        json!({
            "bytes": bytes, "libctd_end_to_end": o.json(&ours),
            "libctd_streaming": s.json(&stream), "ctr_end_to_end": c.json(&ctr),
        }),
    );
    let ratio = o.p50 / c.p50;
    b.report.row(
        format!("stdout MB/s ({mib} MiB), end to end"),
        format!("{:.0} [{:.0}..{:.0}]", o.p50, o.min, o.max),
        format!("ctr {:.0} [{:.0}..{:.0}]", c.p50, c.min, c.max),
        Some(ratio),
        ">= 1.2x",
        Some(ratio >= 1.2),
    );
    b.report.row(
        "  stdout MB/s, streaming only",
        format!("{:.0}", s.p50),
        "",
        Some(s.p50 / c.p50),
        "",
        None,
    );
    Ok(())
}
