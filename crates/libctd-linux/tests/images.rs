//! Images on a real containerd (the test binary's embedded daemon, a
//! namespace per test): archives made offline (OCI layout and `docker
//! save`) imported, unpacked on `overlayfs` and `native`, and run, with
//! whiteouts, opaque directories, symlinks, hard links and modes checked
//! from inside the container; every bad archive refused with its kind and
//! nothing left in the store; layers that try to reach outside the root
//! filesystem kept inside it, nothing outside changed.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use libctd_core::{
    Archive, Client, CreateOptions, ErrorKind, EventType, IMAGE_ROOTFS_PATH, INIT_PROCESS_ID,
    ImageRootfs, Images, ImportOptions, ImportProgress,
};
use libctd_linux::{ImageStore, LinuxClient};
use libctd_testkit::containerd::Containerd;
use libctd_testkit::image::{Fault, ImageArchive, Layer, refused_faults};
use libctd_testkit::namespace::NamespaceGuard;
use libctd_testkit::{RecordingBackend, capture_stdio};
use tokio::io::{AsyncRead, ReadBuf};

const T: Duration = Duration::from_secs(30);
const NAME: &str = "example.com/test/image:1";
const SNAPSHOTTERS: [&str; 2] = ["overlayfs", "native"];

struct Env {
    ctd: &'static Containerd,
    client: Arc<LinuxClient>,
    backend: Arc<RecordingBackend>,
    store: ImageStore,
    _guard: NamespaceGuard,
}

async fn env() -> Env {
    let ctd = Containerd::shared().await.expect("containerd harness");
    let backend = Arc::new(RecordingBackend::new());
    let client = ctd.client(backend.clone()).await.expect("client");
    let store = ctd.remote().image_store(client.namespace()).unwrap();
    let guard = NamespaceGuard::new(ctd.remote().socket(), client.namespace());
    Env {
        ctd,
        client,
        backend,
        store,
        _guard: guard,
    }
}

fn images(env: &Env) -> &dyn Images {
    env.client.images().expect("the Linux client keeps images")
}

fn archive(bytes: Vec<u8>) -> Archive {
    Box::pin(std::io::Cursor::new(bytes))
}

fn busybox(env: &Env) -> Layer {
    static BUSYBOX: std::sync::OnceLock<Layer> = std::sync::OnceLock::new();
    BUSYBOX
        .get_or_init(|| Layer::from_dir(env.ctd.rootfs()).unwrap())
        .clone()
}

/// Runs `script` in container `id` on image `image` in `snapshotter`; its
/// output and exit code. The container is deleted afterwards.
async fn run(env: &Env, id: &str, image: &str, snapshotter: &str, script: &str) -> (String, i64) {
    let mut spec = env.ctd.spec(&["sh", "-c", script], false);
    let mut root = spec.root().clone().unwrap();
    root.set_path(IMAGE_ROOTFS_PATH.into());
    spec.set_root(Some(root));
    let options =
        CreateOptions::new().with_image(ImageRootfs::new(image).with_snapshotter(snapshotter));
    env.client.create(id, &spec, options).await.unwrap();
    let (cb, out) = capture_stdio();
    env.client.start(id, None, false, cb).await.unwrap();
    let exit = env
        .backend
        .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    let stdout = String::from_utf8(out.wait_stdout(T).await.unwrap()).unwrap();
    env.client.delete_task(id).await.unwrap();
    env.client.delete(id).await.unwrap();
    (stdout, i64::from(exit.exit_code))
}

/// Fails listing what the store holds in the namespace: leases, blobs,
/// writes in progress, image records, snapshots.
async fn assert_store_empty(store: &ImageStore, after: &str) {
    let left = leftovers(store).await;
    assert!(left.is_empty(), "after {after}, left: {left:?}");
}

/// Waits (within [`T`]) until the store holds nothing in the namespace.
async fn wait_store_empty(store: &ImageStore, after: &str) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let left = leftovers(store).await;
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{T:?} after {after}, left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the store holds in the namespace: leases, blobs, writes in
/// progress, image records, snapshots.
async fn leftovers(store: &ImageStore) -> Vec<String> {
    let mut left = Vec::new();
    let leases = store.leases().await.unwrap();
    if !leases.is_empty() {
        left.push(format!("leases {leases:?}"));
    }
    let blobs: Vec<String> = store
        .contents()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.digest)
        .collect();
    if !blobs.is_empty() {
        left.push(format!("blobs {blobs:?}"));
    }
    let ingests = store.writes_in_progress().await.unwrap();
    if !ingests.is_empty() {
        left.push(format!("ingests {ingests:?}"));
    }
    let names = store.image_names().await.unwrap();
    if !names.is_empty() {
        left.push(format!("images {names:?}"));
    }
    for snapshotter in SNAPSHOTTERS {
        let snapshots = store.snapshots(snapshotter).await.unwrap();
        if !snapshots.is_empty() {
            left.push(format!("{snapshotter} snapshots {snapshots:?}"));
        }
    }
    left
}

/// An image of busybox and two layers that exercise what a layer can do.
fn rich_image(env: &Env) -> ImageArchive {
    let data = Layer::new()
        .dir("data", 0o755)
        .file("data/keep", b"kept\n", 0o644)
        .file("data/gone", b"x", 0o644)
        .file("data/exec", b"#!/bin/sh\n", 0o751)
        .symlink("data/rel", "keep")
        .symlink("data/abs", "/data/keep")
        .hardlink("data/hard", "data/keep")
        .dir("opq", 0o755)
        .file("opq/old", b"old", 0o644)
        .gzip();
    let upper = Layer::new()
        .whiteout("data/gone")
        .opaque("opq")
        .file("opq/new", b"new", 0o600);
    ImageArchive::new(NAME)
        .layer(busybox(env))
        .layer(data)
        .layer(upper)
        .cmd(["sh"])
}

/// What the container sees of the rich image.
const CHECK: &str = "cd /data && ls -a /data | tr '\\n' ' ' && echo && ls -a /opq | tr '\\n' ' ' \
    && echo && stat -c '%n %a %h %i' keep hard exec /opq/new && readlink rel && readlink abs && cat abs hard";

fn check_rich(out: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 10, "{out}");
    assert_eq!(lines[0], ". .. abs exec hard keep rel ", "whiteout: {out}");
    assert_eq!(lines[1], ". .. new ", "opaque directory: {out}");
    let stat = |line: &str| -> (String, String, String) {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[1].to_owned(), f[2].to_owned(), f[3].to_owned())
    };
    let (keep, hard, exec, new) = (
        stat(lines[2]),
        stat(lines[3]),
        stat(lines[4]),
        stat(lines[5]),
    );
    assert_eq!((keep.0.as_str(), keep.1.as_str()), ("644", "2"), "{out}");
    assert_eq!(keep, hard, "a hard link is the same inode: {out}");
    assert_eq!(exec.0, "751", "{out}");
    assert_eq!(new.0, "600", "{out}");
    assert_eq!(&lines[6..8], ["keep", "/data/keep"], "symlinks: {out}");
    assert_eq!(&lines[8..], ["kept", "kept"], "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_are_intact_on_every_format_and_snapshotter() {
    let env = env().await;
    let image = rich_image(&env);
    let digests = image.layer_digests().unwrap();
    for (format, snapshotter) in [("oci", "overlayfs"), ("docker", "native")] {
        let bytes = match format {
            "oci" => image.oci().unwrap(),
            _ => image.docker().unwrap(),
        };
        let heard = Arc::new(Mutex::new(Vec::<ImportProgress>::new()));
        let sink = heard.clone();
        let options = ImportOptions::new()
            .with_snapshotter(snapshotter)
            .with_progress(move |p| sink.lock().unwrap().push(p.clone()));
        let imported = images(&env).import(archive(bytes), options).await.unwrap();
        assert_eq!(imported.len(), 1, "{imported:?}");
        assert_eq!(imported[0].name, NAME);
        assert_eq!(imported[0].config.cmd, ["sh"]);
        // Progress per blob: never backwards, every layer whole at the end.
        let heard = heard.lock().unwrap().clone();
        let mut blobs: Vec<&str> = heard.iter().map(|p| p.blob.as_str()).collect();
        blobs.dedup();
        for blob in &blobs {
            let reports: Vec<&ImportProgress> = heard.iter().filter(|p| p.blob == *blob).collect();
            assert!(
                reports.windows(2).all(|w| w[0].done <= w[1].done),
                "{reports:?}"
            );
            let last = reports.last().unwrap();
            assert_eq!(last.done, last.total, "{format}: {reports:?}");
        }
        if format == "oci" {
            for digest in &digests {
                assert!(
                    blobs.contains(&digest.as_str()),
                    "{format}: no progress for {digest}"
                );
            }
        }
        // The unpacked layers are a chain of three committed snapshots.
        let snapshots = env.store.snapshots(snapshotter).await.unwrap();
        assert_eq!(snapshots.len(), 3, "{snapshots:?}");
        let mut parents = Vec::new();
        for key in &snapshots {
            parents.push(env.store.snapshot_parent(snapshotter, key).await.unwrap());
        }
        parents.sort();
        assert_eq!(parents[0], "", "one bottom layer: {parents:?}");
        assert!(
            parents[1..].iter().all(|p| snapshots.contains(p)) && parents[1] != parents[2],
            "each above another: {parents:?} of {snapshots:?}"
        );
        // Twice with the same id: the first container's snapshot went with it.
        for round in 0..2 {
            let (out, code) = run(&env, "rich", NAME, snapshotter, CHECK).await;
            assert_eq!(code, 0, "{format} round {round}: {out}");
            check_rich(&out);
        }
        assert_eq!(env.store.snapshots(snapshotter).await.unwrap().len(), 3);
        images(&env).remove_image(NAME).await.unwrap();
        assert_store_empty(&env.store, &format!("removing the {format} image")).await;
    }
}

/// The labels containerd's own client sets on an imported, unpacked
/// image hold: the manifest names its config and each layer, each layer
/// its diff id, the config the top snapshot in `snapshotter`.
async fn assert_gc_labels(store: &ImageStore, manifest: &str, snapshotter: &str) {
    let labels = store.content_info(manifest).await.unwrap().labels;
    let config = &labels["containerd.io/gc.ref.content.config"];
    let layers: Vec<&String> = (0..)
        .map_while(|i| labels.get(&format!("containerd.io/gc.ref.content.l.{i}")))
        .collect();
    assert!(!layers.is_empty(), "{labels:?}");
    for layer in layers {
        let info = store.content_info(layer).await.unwrap();
        assert!(
            info.labels.contains_key("containerd.io/uncompressed"),
            "layer {layer}: {:?}",
            info.labels
        );
    }
    let config = store.content_info(config).await.unwrap().labels;
    let top = &config[&format!("containerd.io/gc.ref.snapshot.{snapshotter}")];
    store.snapshot_parent(snapshotter, top).await.unwrap();
}

/// An archive that fails after `good` bytes.
struct Failing {
    data: std::io::Cursor<Vec<u8>>,
    good: u64,
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.data.position() >= self.good {
            return Poll::Ready(Err(std::io::Error::other("the disk went away")));
        }
        let room = usize::try_from(self.good - self.data.position()).unwrap();
        let mut limited = buf.take(room.min(buf.remaining()));
        let r = Pin::new(&mut self.data).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        buf.advance(n);
        r
    }
}

/// An archive whose reading stalls for good after `good` bytes, saying
/// so through `stalled`.
struct Stalling {
    data: std::io::Cursor<Vec<u8>>,
    good: u64,
    stalled: Option<tokio::sync::oneshot::Sender<()>>,
}

impl AsyncRead for Stalling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.data.position() >= self.good {
            if let Some(stalled) = self.stalled.take() {
                let _ = stalled.send(());
            }
            return Poll::Pending;
        }
        let room = usize::try_from(self.good - self.data.position()).unwrap();
        let mut limited = buf.take(room.min(buf.remaining()));
        let r = Pin::new(&mut self.data).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        buf.advance(n);
        r
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_import_leaves_nothing_behind() {
    let env = env().await;
    let image = ImageArchive::new(NAME)
        .layer(busybox(&env).gzip())
        .layer(Layer::new().file("x", b"x", 0o644));
    let good = image.oci().unwrap();
    // Stalled part-way through the archive: blobs written, one being
    // written (an ingest open under the lease).
    for at in [good.len() / 3, good.len() * 2 / 3] {
        let (tx, stalled) = tokio::sync::oneshot::channel();
        let reader = Stalling {
            data: std::io::Cursor::new(good.clone()),
            good: at as u64,
            stalled: Some(tx),
        };
        let import = images(&env).import(Box::pin(reader), ImportOptions::new());
        tokio::select! {
            r = import => panic!("the import ended on a stalled archive: {r:?}"),
            r = stalled => r.unwrap(),
        }
        // The import's future is dropped here, half-way: its clean-up
        // runs on its own.
        wait_store_empty(&env.store, &format!("an import dropped at byte {at}")).await;
    }
    // The store is usable.
    images(&env)
        .import(archive(good), ImportOptions::new())
        .await
        .unwrap();
    images(&env).remove_image(NAME).await.unwrap();
    assert_store_empty(&env.store, "the good import's removal").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_archives_leave_nothing_behind() {
    let env = env().await;
    let image = ImageArchive::new(NAME)
        .layer(busybox(&env).gzip())
        .layer(Layer::new().file("x", b"x", 0o644));
    let good = image.oci().unwrap();
    let mut cases: Vec<(String, Archive, ErrorKind, &str)> = Vec::new();
    for (fault, kind, contains) in refused_faults(good.len()) {
        let bytes = image.clone().fault(fault.clone()).oci().unwrap();
        cases.push((format!("{fault:?}"), archive(bytes), kind, contains));
    }
    let corrupt_docker = image.clone().fault(Fault::MissingBlob).docker().unwrap();
    cases.push((
        "docker MissingBlob".into(),
        archive(corrupt_docker),
        ErrorKind::InvalidArgument,
        "",
    ));
    cases.push((
        "garbage".into(),
        archive(vec![0x55; 3000]),
        ErrorKind::InvalidArgument,
        "",
    ));
    let failing = Failing {
        data: std::io::Cursor::new(good.clone()),
        good: good.len() as u64 * 2 / 3,
    };
    cases.push((
        "a failing reader".into(),
        Box::pin(failing),
        ErrorKind::System,
        "went away",
    ));
    for (what, bad, kind, contains) in cases {
        let e = images(&env)
            .import(bad, ImportOptions::new())
            .await
            .expect_err(&what);
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(e.message().contains(contains), "{what}: {e}");
        assert_store_empty(&env.store, &what).await;
    }
    // Unpacking into a snapshotter containerd does not have fails after
    // every blob was written: still nothing left.
    let r = images(&env)
        .import(
            archive(good.clone()),
            ImportOptions::new().with_snapshotter("nosuch"),
        )
        .await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("nosuch"), "{e}");
    assert_store_empty(&env.store, "a missing snapshotter").await;
    let e = images(&env)
        .import(
            archive(good.clone()),
            ImportOptions::new().with_snapshotter("no/such"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The store is usable.
    images(&env)
        .import(archive(good), ImportOptions::new())
        .await
        .unwrap();
    images(&env).remove_image(NAME).await.unwrap();
    assert_store_empty(&env.store, "the good import's removal").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_from_an_image_checks_its_input_and_leaves_nothing() {
    let env = env().await;
    let image = ImageArchive::new(NAME).layer(busybox(&env));
    let imported = images(&env)
        .import(
            archive(image.oci().unwrap()),
            ImportOptions::new().with_snapshotter("native"),
        )
        .await
        .unwrap();
    assert_gc_labels(&env.store, &imported[0].digest, "native").await;
    let mut spec = env.ctd.spec(&["true"], false);
    imported[0]
        .config
        .apply(&mut spec, Some(&["true".to_owned()]))
        .unwrap();
    // Not unpacked in overlayfs.
    let e = env
        .client
        .create("c", &spec, CreateOptions::new().with_image(NAME))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.message().contains("overlayfs"), "{e}");
    // The root is the image's snapshot, nothing else.
    let mut absolute = spec.clone();
    absolute.set_root(env.ctd.spec(&["true"], false).root().clone());
    let native =
        || CreateOptions::new().with_image(ImageRootfs::new(NAME).with_snapshotter("native"));
    let e = env
        .client
        .create("c", &absolute, native())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(env.store.snapshots("native").await.unwrap().len() == 1);
    // A container record taken: the snapshot goes again.
    env.client.create("c", &spec, native()).await.unwrap();
    let e = env.client.create("c", &spec, native()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    env.client.delete("c").await.unwrap();
    assert_eq!(env.store.snapshots("native").await.unwrap().len(), 1);
    // containerd refuses the record (another client of the namespace has
    // a container of that id): the snapshot prepared for it goes.
    let other = env
        .ctd
        .remote()
        .new_linux_client(env.client.namespace(), Arc::new(RecordingBackend::new()))
        .await
        .unwrap();
    let plain = env.ctd.spec(&["true"], false);
    other
        .create("taken", &plain, CreateOptions::new())
        .await
        .unwrap();
    let e = env
        .client
        .create("taken", &spec, native())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        env.store.snapshots("native").await.unwrap().len(),
        1,
        "the failed create's snapshot is gone"
    );
    assert!(env.store.leases().await.unwrap().is_empty());
    other.delete("taken").await.unwrap();
    images(&env).remove_image(NAME).await.unwrap();
    assert_store_empty(&env.store, "the image's removal").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_client_runs_and_deletes_an_image_container() {
    let env = env().await;
    let image = ImageArchive::new(NAME).layer(busybox(&env));
    let options = ImportOptions::new().with_snapshotter("native");
    images(&env)
        .import(archive(image.oci().unwrap()), options)
        .await
        .unwrap();
    let mut spec = env.ctd.spec(&["echo", "restored"], false);
    let mut root = spec.root().clone().unwrap();
    root.set_path(IMAGE_ROOTFS_PATH.into());
    spec.set_root(Some(root));
    let native = CreateOptions::new().with_image(ImageRootfs::new(NAME).with_snapshotter("native"));
    env.client.create("r", &spec, native).await.unwrap();
    // The engine restarts: a new client knows the container from its record.
    let backend = Arc::new(RecordingBackend::new());
    let after = env
        .ctd
        .remote()
        .new_linux_client(env.client.namespace(), backend.clone())
        .await
        .unwrap();
    let restored = after
        .restore("r", libctd_core::discard_stdio())
        .await
        .unwrap();
    assert!(!restored.alive);
    let (cb, out) = capture_stdio();
    after.start("r", None, false, cb).await.unwrap();
    assert_eq!(out.wait_stdout(T).await.unwrap(), b"restored\n");
    backend
        .next_process_event("r", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    after.delete_task("r").await.unwrap();
    after.delete("r").await.unwrap();
    assert_eq!(
        env.store.snapshots("native").await.unwrap().len(),
        1,
        "only the image's"
    );
    images(&env).remove_image(NAME).await.unwrap();
    assert_store_empty(&env.store, "the image's removal").await;
}
