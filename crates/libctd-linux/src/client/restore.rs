//! Restore: re-attaching to a container (and its task) that containerd
//! still knows, after the engine restarted.

use std::sync::Arc;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::validate_container_id;
use libctd_core::{ErrorKind, INIT_PROCESS_ID, Restored, Result, Status, StdioCallback};

use crate::client::exec::attach_process;
use crate::client::lifecycle::drop_task_state;
use crate::convert::{self, status_error};
use crate::events::{self, TaskEvent};
use crate::fifo::FifoSet;
use crate::session::Session;
use crate::state::{Container, RootSnapshot};

/// Tracks container `id` again, and its task's init process if it has one.
pub(crate) async fn restore(
    s: Arc<Session>,
    id: String,
    attach: StdioCallback,
) -> Result<Restored> {
    validate_container_id(&id)?;
    let proto = s.conn.api.get_container(&id).await.map_err(|st| {
        let e = status_error(st);
        match e.kind() {
            ErrorKind::NotFound => e.with_message("no such container"),
            _ => e,
        }
    })?;
    let terminal = proto
        .spec
        .as_ref()
        .and_then(|s| serde_json::from_slice::<Spec>(&s.value).ok())
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false);
    let runc = proto
        .runtime
        .as_ref()
        .and_then(|r| r.options.as_ref())
        .and_then(convert::decode_any)
        .unwrap_or_default();
    let c = {
        let mut map = s.lock_containers();
        map.entry(id.clone())
            .or_insert_with(|| {
                let snapshot = RootSnapshot::of_record(&proto.snapshotter, &proto.snapshot_key);
                Arc::new(
                    Container::new(id.clone(), s.fifo_dir(), terminal, runc)
                        .with_snapshot(snapshot),
                )
            })
            .clone()
    };
    let _guard = c.lifecycle.lock().await;
    // Register first, then read: an init exit that arrives from here on,
    // before the process is tracked, is kept and delivered below.
    c.lock().begin_restore();
    let restored = restore_task(&s, &c, attach).await;
    let missed = c.lock().end_restore();
    let restored = restored?;
    if let Some(exit) = missed
        && restored.alive
    {
        events::handle(&s, TaskEvent::Exit(exit));
    }
    Ok(restored)
}

/// Reads the task of a registered container and tracks its init process.
async fn restore_task(
    s: &Arc<Session>,
    c: &Arc<Container>,
    attach: StdioCallback,
) -> Result<Restored> {
    let process = match s.conn.api.get(&c.id, "").await {
        Ok(r) => r.process.unwrap_or_default(),
        Err(st) if st.code() == tonic::Code::NotFound => {
            drop_task_state(s, c).await;
            // A task that 1.7 and 2.x dropped as its process died while
            // they were down: its exit was kept, and is delete_task's answer.
            let pid = s
                .kept_exits()
                .and_then(|k| k.find(s.namespace(), &c.id))
                .map(|exit| exit.pid);
            return Ok(Restored::new(false, pid));
        }
        Err(st) => return Err(status_error(st)),
    };
    let status = convert::status_from_proto(process.status);
    let fifos = FifoSet::from_paths(
        &process.stdin,
        &process.stdout,
        &process.stderr,
        process.terminal,
    );
    // Streams of a previous attachment (a second restore) are replaced;
    // an exit it already delivered is not delivered again.
    let old = c.lock().detach_init();
    let (delivered, exit) = old.map_or((false, None), |p| p.let_go());
    let proc = attach_process(s, c, INIT_PROCESS_ID, fifos, attach, true)?.restored(
        process.pid,
        delivered || status == Status::Stopped,
        exit,
    );
    c.lock().track_restored_init(proc);
    Ok(Restored::new(
        status != Status::Stopped && status != Status::Unknown,
        Some(process.pid),
    ))
}
