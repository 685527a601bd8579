//! The steps of a container's life that the Windows tests over the
//! simulation (`client.rs`) and over the double (`ffi_faults.rs`) share.

use std::time::Duration;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Client, CreateOptions, EventInfo, EventType, INIT_PROCESS_ID, discard_stdio};
use libctd_testkit::backend::RecordingBackend;

/// How long a test waits for an event.
pub(crate) const T: Duration = Duration::from_secs(10);

/// Creates and starts `id` running `spec`; its pid.
pub(crate) async fn run(client: &dyn Client, id: &str, spec: &Spec) -> u32 {
    client
        .create(id, spec, CreateOptions::default())
        .await
        .unwrap();
    client
        .start(id, None, false, discard_stdio())
        .await
        .unwrap()
}

/// The exit event of `id`'s init process.
pub(crate) async fn exit(backend: &RecordingBackend, id: &str) -> EventInfo {
    backend
        .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap()
}

/// Deletes `id`'s task, then the container.
pub(crate) async fn remove(client: &dyn Client, id: &str) {
    client.delete_task(id).await.unwrap();
    client.delete(id).await.unwrap();
}
