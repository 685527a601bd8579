//! The image store on a real containerd (the test binary's embedded daemon,
//! a namespace per test): blobs streamed into the content store under a
//! lease and verified by containerd, refused when their digest or size is
//! wrong (nothing left behind), collected with their lease; snapshots
//! prepared, mounted, committed and removed on `native` and `overlayfs`.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use libctd_core::ErrorKind;
use libctd_linux::{BlobWritten, ImageStore, Lease};
use libctd_testkit::containerd::Containerd;

const MIB: usize = 1024 * 1024;

async fn store(prefix: &str) -> ImageStore {
    let ctd = Containerd::shared().await.expect("containerd harness");
    ctd.remote()
        .image_store(&ctd.unique_namespace(prefix))
        .expect("image store")
}

/// Bytes that differ from chunk to chunk.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// `sha256:` and the hex digest of `bytes` (sha256sum's).
fn digest(bytes: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", hex.split_whitespace().next().unwrap())
}

async fn lease(store: &ImageStore, id: &str) -> Lease {
    store
        .create_lease(id, Some(Duration::from_secs(3600)))
        .await
        .expect("lease")
}

/// Writes `bytes` as `digest`/`size`; the outcome and the progress heard.
async fn write(
    store: &ImageStore,
    lease: &Lease,
    reference: &str,
    digest: &str,
    size: u64,
    bytes: &[u8],
) -> (libctd_core::Result<BlobWritten>, Vec<u64>) {
    let mut heard = Vec::new();
    let mut reader = bytes;
    let labels = HashMap::from([("test".to_owned(), "content".to_owned())]);
    let outcome = store
        .write_blob(
            lease,
            reference,
            digest,
            size,
            labels,
            &mut reader,
            &mut |n| heard.push(n),
        )
        .await;
    (outcome, heard)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_of_several_mib_is_streamed_verified_and_collected_with_its_lease() {
    let store = store("blob").await;
    let bytes = data(5 * MIB + 123, 1);
    let d = digest(&bytes);
    let size = bytes.len() as u64;
    let lease = lease(&store, "import-1").await;

    let (outcome, heard) = write(&store, &lease, "layer-1", &d, size, &bytes).await;
    assert_eq!(outcome.unwrap(), BlobWritten::Stored);
    // In chunks of 1 MiB, each heard.
    assert_eq!(heard.len(), 6, "{heard:?}");
    assert_eq!(heard.last(), Some(&size));
    let info = store.content_info(&d).await.unwrap();
    assert_eq!((info.digest.as_str(), info.size), (d.as_str(), size));
    assert_eq!(info.labels.get("test").map(String::as_str), Some("content"));

    // Again: already there, nothing written.
    let (outcome, heard) = write(&store, &lease, "layer-1b", &d, size, &bytes).await;
    assert_eq!(outcome.unwrap(), BlobWritten::AlreadyPresent);
    assert!(heard.is_empty(), "{heard:?}");
    assert!(store.writes_in_progress().await.unwrap().is_empty());

    // Only the lease held it: deleted with sync, the blob is collected.
    store.delete_lease(&lease, true).await.unwrap();
    let gone = store.content_info(&d).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
    let again = store.delete_lease(&lease, true).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NotFound, "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_whose_digest_or_size_is_wrong_is_refused_and_leaves_nothing() {
    let store = store("mismatch").await;
    let bytes = data(2 * MIB + 7, 2);
    let right = digest(&bytes);
    let wrong = digest(b"something else");
    let size = bytes.len() as u64;
    let lease = lease(&store, "import-2").await;

    let cases = [
        ("wrong-digest", wrong.as_str(), size),
        ("short", right.as_str(), size + 1),
        ("long", right.as_str(), size - 1),
    ];
    for (reference, d, size) in cases {
        let (outcome, _) = write(&store, &lease, reference, d, size, &bytes).await;
        let e = outcome.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{reference}: {e}");
        assert!(e.message().contains(d), "{reference}: {e}");
        for d in [&right, &wrong] {
            let gone = store.content_info(d).await.unwrap_err();
            assert_eq!(gone.kind(), ErrorKind::NotFound, "{reference}: {gone}");
        }
        let left = store.writes_in_progress().await.unwrap();
        assert!(left.is_empty(), "{reference}: {left:?}");
    }

    // A digest that is none, and an empty ref: refused before any write.
    for (reference, d) in [("bad", "sha256:xyz"), ("", right.as_str())] {
        let (outcome, _) = write(&store, &lease, reference, d, size, &bytes).await;
        let e = outcome.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }

    // The store is still usable: the right blob goes in.
    let (outcome, _) = write(&store, &lease, "right", &right, size, &bytes).await;
    assert_eq!(outcome.unwrap(), BlobWritten::Stored);
    store.delete_lease(&lease, true).await.unwrap();
    assert!(store.content_info(&right).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_id_no_header_can_carry_is_refused() {
    let store = store("lease").await;
    for id in ["", "bad\nid"] {
        let e = store.create_lease(id, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?}: {e}");
    }
}

async fn snapshot_round_trip(snapshotter: &str) {
    let store = store(snapshotter).await;
    let lease = lease(&store, "unpack").await;
    let mounts = store
        .prepare_snapshot(Some(&lease), snapshotter, "layer-1-extract", "")
        .await
        .unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].kind, "bind", "{mounts:?}");
    assert_eq!(
        store
            .snapshot_mounts(snapshotter, "layer-1-extract")
            .await
            .unwrap(),
        mounts
    );
    let e = store
        .prepare_snapshot(Some(&lease), snapshotter, "layer-1-extract", "")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    store
        .commit_snapshot(Some(&lease), snapshotter, "layer-1", "layer-1-extract")
        .await
        .unwrap();

    // An active snapshot over the committed one: the container's rootfs.
    let top = store
        .prepare_snapshot(Some(&lease), snapshotter, "rootfs", "layer-1")
        .await
        .unwrap();
    let expected = if snapshotter == "overlayfs" {
        "overlay"
    } else {
        "bind"
    };
    assert_eq!(top[0].kind, expected, "{top:?}");
    let mut names = store.snapshots(snapshotter).await.unwrap();
    names.sort();
    assert_eq!(names, ["layer-1", "rootfs"]);

    // A parent of another is not removed; the child first, then it.
    let e = store
        .remove_snapshot(snapshotter, "layer-1")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    store.remove_snapshot(snapshotter, "rootfs").await.unwrap();
    store.remove_snapshot(snapshotter, "layer-1").await.unwrap();
    let e = store
        .snapshot_mounts(snapshotter, "rootfs")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = store
        .prepare_snapshot(None, snapshotter, "orphan", "no-such-parent")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(store.snapshots(snapshotter).await.unwrap().is_empty());
    store.delete_lease(&lease, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_round_trip_on_native() {
    snapshot_round_trip("native").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_round_trip_on_overlayfs() {
    snapshot_round_trip("overlayfs").await;
}
