//! Linux-specific behaviour on a real containerd + runc + busybox rootfs.

use std::sync::Arc;
use std::time::Duration;

use libctd_core::{Client, EventType, INIT_PROCESS_ID};
use libctd_linux::LinuxClient;
use libctd_testkit::containerd::Containerd;
use libctd_testkit::{RecordingBackend, capture_stdio};

const T: Duration = Duration::from_secs(20);

async fn setup() -> (&'static Containerd, Arc<LinuxClient>, Arc<RecordingBackend>) {
    let ctd = Containerd::shared().await.expect("containerd harness");
    let backend = Arc::new(RecordingBackend::new());
    let client = ctd.client(backend.clone()).await.expect("client");
    (ctd, client, backend)
}

#[tokio::test(flavor = "multi_thread")]
async fn print_exec_and_delete() {
    let (ctd, client, backend) = setup().await;
    client
        .create(
            "p1",
            &ctd.spec(&["sh", "-c", "echo hello; sleep 1000"], false),
            Default::default(),
        )
        .await
        .unwrap();
    let (cb, out) = capture_stdio();
    let pid = client.start("p1", None, false, cb).await.unwrap();
    assert!(pid > 0);
    out.wait_stdout_contains(b"hello", T).await.unwrap();
    let (cb2, out2) = capture_stdio();
    let spec = libctd_testkit::containerd::busybox_process(&["echo", "from-exec"], false);
    client.exec("p1", "e1", &spec, false, cb2).await.unwrap();
    let exit = backend
        .next_process_event("p1", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(out2.wait_stdout(T).await.unwrap(), b"from-exec\n");
    client
        .signal_process("p1", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let exit = backend
        .next_process_event("p1", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    let te = client.delete_task("p1").await.unwrap();
    assert_eq!(te.exit_code, 137);
    client.delete("p1").await.unwrap();
    println!("{:?}", backend.event_types_of("p1"));
}
