//! The fake's image model beyond the conformance suite: records shared by a
//! namespace's clients and isolated between namespaces, a snapshot per
//! container that goes with it, names found in their short form.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use libctd_core::{Client, CreateOptions, ErrorKind, ImportOptions, Remote};
use libctd_testkit::RecordingBackend;
use libctd_testkit::conformance::Program;
use libctd_testkit::fake::{FAKE_COMMAND, FakeRemote, fake_spec};
use libctd_testkit::image::{ImageArchive, Layer};

fn archive(name: &str) -> libctd_core::Archive {
    let layer = Layer::new().file(&format!("bin/{FAKE_COMMAND}"), b"", 0o755);
    let bytes = ImageArchive::new(name)
        .layer(layer)
        .cmd(["x"])
        .docker()
        .unwrap();
    Box::pin(std::io::Cursor::new(bytes))
}

async fn client(remote: &FakeRemote, ns: &str) -> Arc<dyn Client> {
    remote
        .new_client(ns, Arc::new(RecordingBackend::new()))
        .await
        .unwrap()
}

#[tokio::test]
async fn records_are_per_namespace_and_snapshots_per_container() {
    let remote = FakeRemote::new();
    let a = client(&remote, "a").await;
    let a2 = client(&remote, "a").await;
    let b = client(&remote, "b").await;
    let imported = a
        .images()
        .unwrap()
        .import(archive("busybox"), ImportOptions::new())
        .await
        .unwrap();
    // A short name is normalised as docker does.
    assert_eq!(imported[0].name, "docker.io/library/busybox:latest");
    assert_eq!(
        a2.images().unwrap().image("busybox").await.unwrap(),
        imported[0]
    );
    let err = b.images().unwrap().image("busybox").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let mut spec = fake_spec(&Program::Exit(0), false);
    imported[0].config.apply(&mut spec, None).unwrap();
    let options = CreateOptions::new().with_image("busybox");
    a.create("c1", &spec, options.clone()).await.unwrap();
    a2.create("c2", &spec, options.clone()).await.unwrap();
    let err = b.create("c1", &spec, options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let name = imported[0].name.clone();
    assert_eq!(
        remote.snapshots("a"),
        [
            ("c1".to_string(), name.clone()),
            ("c2".to_string(), name.clone())
        ]
    );
    // Removing the image leaves the containers' snapshots; deleting a
    // container takes its snapshot.
    a.images().unwrap().remove_image(&name).await.unwrap();
    a.delete("c1").await.unwrap();
    assert_eq!(remote.snapshots("a"), [("c2".to_string(), name)]);
    a.delete("c2").await.unwrap();
    assert!(remote.snapshots("a").is_empty());
    assert!(remote.snapshots("b").is_empty());
}

#[tokio::test]
async fn progress_reaches_the_caller_and_a_bad_snapshotter_is_refused() {
    let remote = FakeRemote::new();
    let a = client(&remote, "a").await;
    let images = a.images().unwrap();
    let err = images
        .import(
            archive("x.io/y:1"),
            ImportOptions::new().with_snapshotter("zfs"),
        )
        .await
        .unwrap_err();
    // containerd: "snapshotter not loaded", InvalidArgument.
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("zfs"), "{err}");
    let mut spec = fake_spec(&Program::Exit(0), false);
    spec.set_root(Some(
        libctd_core::oci_spec::runtime::RootBuilder::default()
            .path(libctd_core::IMAGE_ROOTFS_PATH)
            .build()
            .unwrap(),
    ));
    let options = CreateOptions::new()
        .with_image(libctd_core::ImageRootfs::new("x.io/y:1").with_snapshotter("zfs"));
    let err = a.create("c", &spec, options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(images.list_images().await.unwrap().is_empty());
    let seen = Arc::new(std::sync::Mutex::new(0u64));
    let count = seen.clone();
    let options = ImportOptions::new().with_progress(move |p| {
        assert!(p.done <= p.total, "{p:?}");
        *count.lock().unwrap() += 1;
    });
    images.import(archive("x.io/y:1"), options).await.unwrap();
    assert!(*seen.lock().unwrap() >= 3, "layer, config, manifest");
}

/// An archive whose images have no name imports nothing, as containerd
/// records no image without a name (and as the Linux backend answers).
#[tokio::test]
async fn an_archive_that_names_no_image_records_none() {
    let remote = FakeRemote::new();
    let a = client(&remote, "a").await;
    let images = a.images().unwrap();
    let layer = Layer::new().file(&format!("bin/{FAKE_COMMAND}"), b"", 0o755);
    let unnamed = ImageArchive::new("").layer(layer);
    for bytes in [unnamed.oci().unwrap(), unnamed.docker().unwrap()] {
        let archive: libctd_core::Archive = Box::pin(std::io::Cursor::new(bytes));
        let imported = images.import(archive, ImportOptions::new()).await.unwrap();
        assert!(imported.is_empty(), "{imported:?}");
    }
    assert!(images.list_images().await.unwrap().is_empty());
}
