//! Layers that try to reach outside the root filesystem, imported and
//! unpacked by a real containerd (`native` and `overlayfs`): a `../` entry,
//! a file written through a symlink that points outside, a hard link to a
//! file outside. containerd's applier resolves every path (and symlink and
//! hard link target) inside the snapshot's root: the `../` entry and the
//! file written through the symlink land inside the container, where the
//! test finds them; a hard link to a path that is not in the layers fails
//! the unpack (nothing left behind). Outside, a marker directory of the
//! host whose absolute path the layers aim at is unchanged.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::{
    Archive, Client, CreateOptions, ErrorKind, EventType, IMAGE_ROOTFS_PATH, INIT_PROCESS_ID,
    ImageRootfs, ImportOptions,
};
use libctd_testkit::containerd::Containerd;
use libctd_testkit::image::{ImageArchive, Layer};
use libctd_testkit::namespace::NamespaceGuard;
use libctd_testkit::{RecordingBackend, capture_stdio};

const T: Duration = Duration::from_secs(30);
const NAME: &str = "example.com/test/hostile:1";

/// A script run in the container, and its output.
type Inside = (String, String);

/// The marker directory's entries, the secret's content and link count.
fn outside(dir: &Path) -> (Vec<String>, String, u64) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let secret = dir.join("secret");
    (
        names,
        std::fs::read_to_string(&secret).unwrap(),
        std::fs::metadata(&secret).unwrap().nlink(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_cannot_reach_outside_the_root_filesystem() {
    let ctd = Containerd::shared().await.expect("containerd harness");
    let backend = Arc::new(RecordingBackend::new());
    let client = ctd.client(backend.clone()).await.unwrap();
    let _guard = NamespaceGuard::new(ctd.remote().socket(), client.namespace());
    let store = ctd.remote().image_store(client.namespace()).unwrap();
    let images = client.images().unwrap();
    let marker = ctd.scratch_dir("hostile");
    std::fs::write(marker.join("secret"), "secret\n").unwrap();
    let before = outside(&marker);
    let abs = marker.to_str().unwrap().to_owned();
    let up = "../".repeat(12);
    let busybox = Layer::from_dir(ctd.rootfs()).unwrap();
    // (what, layer, Some(script and its output) if it unpacks, else None)
    let cases: Vec<(&str, Layer, Option<Inside>)> = vec![
        (
            "a ../ entry",
            Layer::new().raw_file(
                &format!("{up}{}/dotdot", abs.trim_start_matches('/')),
                b"in\n",
            ),
            Some((format!("cat {abs}/dotdot"), "in\n".to_owned())),
        ),
        (
            "a file through a symlink pointing outside",
            Layer::new()
                .symlink("escape", &abs)
                .file("escape/through", b"through\n", 0o644),
            Some((
                format!("cat {abs}/through && readlink /escape"),
                format!("through\n{abs}\n"),
            )),
        ),
        (
            "a relative symlink climbing out, then a file through it",
            Layer::new()
                .symlink("climb", &format!("{up}{}", abs.trim_start_matches('/')))
                .file("climb/climbed", b"climbed\n", 0o644),
            Some((format!("cat {abs}/climbed"), "climbed\n".to_owned())),
        ),
        (
            "a hard link to a file outside",
            Layer::new().hardlink("stolen", &format!("{abs}/secret")),
            None,
        ),
        (
            "a hard link climbing out",
            Layer::new().hardlink(
                "stolen",
                &format!("{up}{}/secret", abs.trim_start_matches('/')),
            ),
            None,
        ),
    ];
    for snapshotter in ["native", "overlayfs"] {
        for (what, layer, expect) in &cases {
            let image = ImageArchive::new(NAME)
                .layer(busybox.clone())
                .layer(layer.clone());
            let archive: Archive = Box::pin(std::io::Cursor::new(image.oci().unwrap()));
            let options = ImportOptions::new().with_snapshotter(snapshotter);
            let imported = images.import(archive, options).await;
            match (expect, imported) {
                (Some((script, output)), Ok(_)) => {
                    let mut spec = ctd.spec(&["sh", "-c", script], false);
                    let mut root = spec.root().clone().unwrap();
                    root.set_path(IMAGE_ROOTFS_PATH.into());
                    spec.set_root(Some(root));
                    let image = ImageRootfs::new(NAME).with_snapshotter(snapshotter);
                    let options = CreateOptions::new().with_image(image);
                    client.create("h", &spec, options).await.unwrap();
                    let (cb, out) = capture_stdio();
                    client.start("h", None, false, cb).await.unwrap();
                    let exit = backend
                        .next_process_event("h", INIT_PROCESS_ID, EventType::Exit, T)
                        .await
                        .unwrap();
                    let got = String::from_utf8(out.wait_stdout(T).await.unwrap()).unwrap();
                    assert_eq!(
                        (exit.exit_code, got.as_str()),
                        (0, output.as_str()),
                        "{snapshotter}, {what}: kept inside the container"
                    );
                    client.delete_task("h").await.unwrap();
                    client.delete("h").await.unwrap();
                    images.remove_image(NAME).await.unwrap();
                }
                (None, Err(e)) => {
                    assert_eq!(
                        e.kind(),
                        ErrorKind::InvalidArgument,
                        "{snapshotter}, {what}: {e}"
                    );
                    assert!(e.message().contains("layer"), "{snapshotter}, {what}: {e}");
                }
                (expect, outcome) => panic!(
                    "{snapshotter}, {what}: expected {}, got {outcome:?}",
                    if expect.is_some() {
                        "an import"
                    } else {
                        "a refusal"
                    }
                ),
            }
            assert_eq!(
                outside(&marker),
                before,
                "{snapshotter}, {what}: outside changed"
            );
            assert!(store.image_names().await.unwrap().is_empty());
            assert!(store.leases().await.unwrap().is_empty(), "{what}");
            assert!(store.contents().await.unwrap().is_empty(), "{what}");
            assert!(
                store.snapshots(snapshotter).await.unwrap().is_empty(),
                "{what}"
            );
        }
    }
}
