//! Image import + unpack + first run: libctd (import through its streaming
//! transport, unpack, a container on a snapshot of the image running
//! `/bin/true`, delete) against `ctr images import` + `ctr run --rm` on the
//! same daemon, alternating. Each round imports an archive no round before
//! it did (a layer of its own), so both sides write and unpack every layer:
//! the previous round's image is removed with a synchronous garbage
//! collection, untimed.

use std::path::Path;
use std::time::Instant;

use libctd_core::{Client, CreateOptions, Error, ImportOptions, Result, discard_stdio};
use libctd_testkit::image::{ImageArchive, Layer};
use serde_json::json;

use crate::measure::{cpu_children, cpu_self, ms};
use crate::ours::{await_exit, within};
use crate::run::Bench;
use crate::stats::Dist;

/// Which side a round measures.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ours,
    Ctr,
}

/// An archive of the busybox rootfs (gzip), a data layer of `mib` MiB and
/// a small layer unique to `tag`, running `/bin/true`.
fn archive(rootfs: &Path, name: &str, tag: &str, mib: u64) -> Result<Vec<u8>> {
    let mut data = vec![0u8; usize::try_from(mib << 20).unwrap_or(0)];
    // Incompressible, different per round: a xorshift stream seeded by the tag.
    let mut x = tag.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    ImageArchive::new(name)
        .layer(Layer::from_dir(rootfs)?.gzip())
        .layer(
            Layer::new()
                .dir("data", 0o755)
                .file("data/blob", &data, 0o644),
        )
        .layer(Layer::new().file("etc/bench-round", tag.as_bytes(), 0o644))
        .cmd(["/bin/true"])
        .oci()
}

/// libctd: import the archive file, create from the image, start, the exit
/// event, delete_task, delete. Returns wall and CPU milliseconds.
async fn ours(b: &Bench, path: &Path, id: &str) -> Result<(f64, f64, String)> {
    let o = &b.off;
    let images = o
        .client
        .images()
        .ok_or_else(|| Error::not_implemented("the Linux client keeps no images"))?;
    let (t0, c0) = (Instant::now(), cpu_self());
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::system("cannot open the archive").with_source(e))?;
    let imported = within(
        "import",
        id,
        images.import(Box::pin(file), ImportOptions::new()),
    )
    .await?;
    let image = imported
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("the archive holds no image"))?;
    let mut spec = b.spec(&["/bin/true"]);
    image.config.apply(&mut spec, None)?;
    let options = CreateOptions::new().with_image(image.name.as_str());
    within("create", id, o.client.create(id, &spec, options)).await?;
    o.track(id, true);
    let exit = o.recorder.expect_exit(id);
    within(
        "start",
        id,
        o.client.start(id, None, false, discard_stdio()),
    )
    .await?;
    let info = await_exit(id, exit).await?;
    within("delete_task", id, o.client.delete_task(id)).await?;
    within("delete", id, o.client.delete(id)).await?;
    o.track(id, false);
    let took = (ms(t0.elapsed()), ms(cpu_self().saturating_sub(c0)));
    if info.exit_code != 0 {
        return Err(Error::system(format!(
            "/bin/true exited with {}",
            info.exit_code
        )));
    }
    Ok((took.0, took.1, image.name))
}

/// `b.args.images` rounds per side, alternating which goes first.
pub(super) async fn import_and_run(b: &Bench) -> Result<()> {
    let n = b.args.images;
    let mib = b.args.image_mib;
    println!("bench: {n} image imports (busybox + {mib} MiB) + unpack + first run per side");
    let dir = b.ctr.fifo_dir.join("images");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::system("cannot make a scratch dir").with_source(e))?;
    let (mut wall, mut cpu, mut ctr_wall, mut ctr_cpu) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let order = if i % 2 == 0 {
            [Side::Ours, Side::Ctr]
        } else {
            [Side::Ctr, Side::Ours]
        };
        for side in order {
            let label = if side == Side::Ours { "ours" } else { "ctr" };
            let tag = format!("{label}-{i}");
            let name = format!("bench.local/image-{tag}:1");
            let path = dir.join(format!("{tag}.tar"));
            let bytes = archive(&b.ctr.rootfs, &name, &tag, mib)?;
            std::fs::write(&path, bytes)
                .map_err(|e| Error::system("cannot write the archive").with_source(e))?;
            let id = format!("img-{tag}");
            match side {
                Side::Ours => {
                    let (w, c, name) = ours(b, &path, &id).await?;
                    wall.push(w);
                    cpu.push(c);
                    let images = b.off.client.images();
                    if let Some(images) = images {
                        images.remove_image(&name).await?;
                    }
                }
                Side::Ctr => {
                    let c0 = cpu_children();
                    let import = b.ctr.import(&path).await?;
                    let run = b.ctr.run_image(&name, &id, &["/bin/true"]).await?;
                    ctr_cpu.push(ms(cpu_children() - c0));
                    ctr_wall.push(ms(import + run));
                    b.ctr.remove_image(&name).await?;
                }
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir(&dir);
    let (d, r) = (Dist::of(&wall), Dist::of(&ctr_wall));
    let (dc, rc) = (Dist::of(&cpu), Dist::of(&ctr_cpu));
    b.report.record(
        "image_ms",
        json!({
            "layer_mib": mib,
            "wall": { "libctd": d.json(&wall), "ctr": r.json(&ctr_wall) },
            "cpu": { "libctd": dc.json(&cpu), "ctr_process": rc.json(&ctr_cpu) },
        }),
    );
    b.report.row(
        format!("import+run p50 ms ({mib} MiB)"),
        format!("{:.0}", d.p50),
        format!("ctr {:.0}", r.p50),
        Some(d.p50 / r.p50),
        "",
        None,
    );
    b.report.row(
        "  client CPU p50 ms",
        format!("{:.1}", dc.p50),
        format!("ctr {:.1}", rc.p50),
        Some(dc.p50 / rc.p50),
        "",
        None,
    );
    Ok(())
}
