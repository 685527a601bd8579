//! A container from an image over containerd in memory (`conn::mem` and
//! `conn::mem_store`): whatever containerd stops answering at, a create
//! leaves no snapshot, lease or record once it answers again, and the id
//! can be used again.

use std::sync::Arc;

use libctd_core::oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec};
use libctd_core::{
    Client, CreateOptions, ErrorKind, IMAGE_ROOTFS_PATH, ImageRootfs, discard_stdio,
};
use libctd_testkit::RecordingBackend;

use super::{DEADLINE, Fixture, conn_with, poll};
use crate::client::LinuxClient;
use crate::conn::mem::{Fault, Mem};
use crate::conn::mem_store::MemStore;

const IMAGE: &str = "example.com/mem/image:1";
const SNAPSHOTTER: &str = "overlayfs";

/// A client of containerd in memory holding image [`IMAGE`], unpacked.
async fn fixture() -> (Fixture, Arc<MemStore>) {
    let mem = Mem::new(DEADLINE);
    let store = MemStore::new(mem.clone());
    store.add_image(IMAGE, b"a layer", SNAPSHOTTER);
    let (dir, mut conn, closed) = conn_with(&mem, None);
    conn.store = Some(store.clone());
    let backend = Arc::new(RecordingBackend::new());
    let client = LinuxClient::over(conn, backend.clone())
        .await
        .expect("the client subscribes");
    let f = Fixture {
        mem,
        client,
        backend,
        dir,
        _closed: closed,
    };
    (f, store)
}

fn spec() -> Spec {
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(vec!["true".to_owned()])
        .build()
        .expect("a process");
    spec.set_process(Some(process));
    let root = RootBuilder::default()
        .path(IMAGE_ROOTFS_PATH)
        .build()
        .expect("a root");
    spec.set_root(Some(root));
    spec
}

fn from_image() -> CreateOptions {
    CreateOptions::new().with_image(ImageRootfs::new(IMAGE))
}

/// What containerd holds for container `id`: its record, its snapshot,
/// any lease.
fn left(f: &Fixture, store: &MemStore, id: &str) -> Vec<String> {
    let mut left: Vec<String> = store.lease_ids();
    left.extend(store.active(SNAPSHOTTER));
    if f.mem.has_container(id) {
        left.push(format!("container {id}"));
    }
    left
}

/// containerd dies at `call` of a create from the image (having done it):
/// once it is back, nothing of that create stays, though the id is never
/// used again; and creating it again works, deleting it leaves nothing.
async fn dies_at(call: &'static str) {
    let (f, store) = fixture().await;
    f.mem.fail(call, Fault::Dies);
    let e = f
        .client
        .create("c", &spec(), from_image())
        .await
        .expect_err(call);
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{call}: {e}");
    assert!(
        e.message().contains(IMAGE) || call == "create_container",
        "{e}"
    );
    f.mem.set_down(false);
    // The client resubscribes, and runs the remembered rollbacks.
    poll(|| left(&f, &store, "c").is_empty()).await;
    f.client
        .create("c", &spec(), from_image())
        .await
        .unwrap_or_else(|e| panic!("after containerd died at {call}, create again: {e}"));
    assert_eq!(store.active(SNAPSHOTTER), ["c"], "{call}");
    assert!(
        store.lease_ids().is_empty(),
        "{call}: {:?}",
        store.lease_ids()
    );
    f.client.delete("c").await.expect("delete");
    assert!(f.mem.calls("delete_container") > 0);
    assert!(
        left(&f, &store, "c").is_empty(),
        "{call}: {:?}",
        left(&f, &store, "c")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_dies_as_it_creates_the_lease() {
    dies_at("lease_create").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_dies_as_it_prepares_the_snapshot() {
    dies_at("snapshot_prepare").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_dies_between_the_snapshot_and_the_record() {
    dies_at("create_container").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_containerd_did_not_delete_goes_before_the_id_is_used() {
    let (f, store) = fixture().await;
    // The record holds the snapshot; the create's lease is not deleted.
    f.mem.fail("lease_delete", Fault::Unavailable);
    f.client
        .create("c", &spec(), from_image())
        .await
        .expect("create");
    f.client
        .start("c", None, false, discard_stdio())
        .await
        .expect("start");
    assert!(store.lease_ids().is_empty(), "{:?}", store.lease_ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_record_is_refused_leaves_nothing() {
    let (f, store) = fixture().await;
    f.mem.fail("create_container", Fault::Unavailable);
    f.mem.fail("snapshot_remove", Fault::Unavailable);
    let e = f
        .client
        .create("c", &spec(), from_image())
        .await
        .expect_err("containerd is not reached");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // The snapshot's removal is remembered: done before the id is used.
    f.client
        .create("c", &spec(), from_image())
        .await
        .expect("create again");
    f.client.delete("c").await.expect("delete");
    assert!(store.active(SNAPSHOTTER).is_empty());
    assert!(store.lease_ids().is_empty(), "{:?}", store.lease_ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_errors_name_the_image() {
    let (f, _store) = fixture().await;
    f.mem.fail("snapshot_prepare", Fault::Unavailable);
    let e = f
        .client
        .create("c", &spec(), from_image())
        .await
        .expect_err("containerd is not reached");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains(IMAGE), "{e}");
    let e = f
        .client
        .create(
            "c",
            &spec(),
            CreateOptions::new().with_image(ImageRootfs::new("example.com/none:1")),
        )
        .await
        .expect_err("no such image");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("example.com/none:1"), "{e}");
}
