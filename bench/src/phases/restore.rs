//! Engine restart at scale: running containers with attached stdio, the
//! client dropped as an engine that restarts drops it, and a new client
//! that restores every one. Measures the time and this process's CPU to
//! restore them all, then kills them and checks that each exit reaches the
//! new client exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use libctd_core::{
    Backend, BoxError, Client, CreateOptions, Error, EventInfo, EventType, INIT_PROCESS_ID, Result,
};
use libctd_linux::LinuxClient;
use serde_json::json;
use tokio::sync::Notify;

use crate::measure::{cpu_self, ms};
use crate::ours::{BATCH, OP_TIMEOUT, sink_stdio, within};
use crate::run::Bench;

/// How many restores run at once, as an engine restoring its containers would.
const CONCURRENT_RESTORES: usize = 50;

/// Counts init exits per container.
#[derive(Default)]
struct Exits {
    seen: Mutex<HashMap<String, usize>>,
    changed: Notify,
}

impl Exits {
    fn total(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

#[libctd_core::async_trait]
impl Backend for Exits {
    async fn process_event(
        &self,
        container_id: &str,
        event: EventType,
        info: EventInfo,
    ) -> std::result::Result<(), BoxError> {
        if event == EventType::Exit && info.process_id == INIT_PROCESS_ID {
            *self
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(container_id.to_owned())
                .or_default() += 1;
            self.changed.notify_waiters();
        }
        Ok(())
    }
}

/// Runs `f` over `ids` with at most `width` at once; the first error wins.
async fn each<F, Fut>(ids: &[String], width: usize, f: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for chunk in ids.chunks(width) {
        for r in futures::future::join_all(chunk.iter().cloned().map(&f)).await {
            r?;
        }
    }
    Ok(())
}

/// Starts `b.args.restore` attached containers, drops their client, restores
/// them all in a new one, then kills them and checks every exit arrives once.
pub(super) async fn restore_at_scale(b: &Bench) -> Result<()> {
    let n = b.args.restore;
    println!("bench: engine restart with {n} running containers attached");
    let ns = format!("bench-restore-{}", std::process::id());
    let ids: Vec<String> = (0..n).map(|i| format!("rs-{i}")).collect();
    let spec = b.spec(&["sleep", "100000"]);
    let before = b
        .remote
        .new_linux_client(&ns, Arc::new(Exits::default()))
        .await?;
    each(&ids, BATCH, |id| {
        let before = before.clone();
        let spec = spec.clone();
        async move {
            within(
                "create",
                &id,
                before.create(&id, &spec, CreateOptions::new()),
            )
            .await?;
            within("start", &id, before.start(&id, None, false, sink_stdio())).await?;
            Ok(())
        }
    })
    .await?;
    // The engine goes away.
    drop(before);

    let exits = Arc::new(Exits::default());
    let (t0, cpu0) = (Instant::now(), cpu_self());
    let after: Arc<LinuxClient> = b.remote.new_linux_client(&ns, exits.clone()).await?;
    each(&ids, CONCURRENT_RESTORES, |id| {
        let after = after.clone();
        async move {
            let r = within("restore", &id, after.restore(&id, sink_stdio())).await?;
            if r.alive {
                Ok(())
            } else {
                Err(
                    Error::system("a running container was restored as not alive")
                        .with_container(id),
                )
            }
        }
    })
    .await?;
    let (wall, cpu) = (t0.elapsed(), cpu_self().saturating_sub(cpu0));

    each(&ids, BATCH, |id| {
        let after = after.clone();
        async move { within("kill", &id, after.signal_process(&id, INIT_PROCESS_ID, 9)).await }
    })
    .await?;
    let deadline = tokio::time::Instant::now() + OP_TIMEOUT;
    while exits.total() < n {
        let wait = exits.changed.notified();
        if exits.total() >= n {
            break;
        }
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            return Err(Error::deadline_exceeded(format!(
                "only {} of {n} exits reached the restored client",
                exits.total()
            )));
        }
    }
    each(&ids, BATCH, |id| {
        let after = after.clone();
        async move {
            within("delete_task", &id, after.delete_task(&id)).await?;
            within("delete", &id, after.delete(&id)).await
        }
    })
    .await?;
    let _ = tokio::time::timeout(Duration::from_secs(10), after.event_queue().wait_idle()).await;
    let seen = exits
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let once = ids.iter().all(|id| seen.get(id) == Some(&1));
    b.report.record(
        "restore",
        json!({
            "containers": n, "wall_ms": ms(wall), "cpu_ms": ms(cpu),
            "cpu_ms_per_container": ms(cpu) / n as f64,
            "exits_exactly_once": once,
        }),
    );
    b.report.row(
        format!("engine restart: restore {n} attached"),
        format!("{:.0} ms, CPU {:.2} ms each", ms(wall), ms(cpu) / n as f64),
        "",
        None,
        "every exit once",
        Some(once),
    );
    if !once {
        return Err(Error::system(format!(
            "exits after restore were not delivered exactly once: {seen:?}"
        )));
    }
    Ok(())
}
