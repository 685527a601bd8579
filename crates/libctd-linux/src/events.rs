//! The client's event subscription: subscribe, decode, deliver through the
//! per-container queue, resubscribe with backoff, reconcile after a gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_client::events::{
    TaskCreate, TaskExecAdded, TaskExecStarted, TaskExit, TaskOom, TaskPaused, TaskResumed,
    TaskStart,
};
use containerd_client::services::v1::PublishRequest;
use containerd_client::types::Envelope;
use containerd_client::types::v1::Process;
use libctd_core::{EventInfo, EventType, INIT_PROCESS_ID, Status};
use prost::{Message, Name};
use prost_types::Any;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use crate::backoff::Backoff;
use crate::conn::wire_exec_id;
use crate::convert;
use crate::session::Session;
use crate::state::{Container, StreamExit};

/// The topic of the private event that proves a subscription is live.
const SYNC_TOPIC: &str = "/tasks/libctd-sync";
/// Its type URL (containerd forwards it without decoding).
const SYNC_TYPE_URL: &str = "libctd.sync";
/// The first pause between two subscription attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

static SYNC_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A decoded task event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskEvent {
    Create(TaskCreate),
    Start(TaskStart),
    Exit(TaskExit),
    Oom(TaskOom),
    ExecAdded(TaskExecAdded),
    ExecStarted(TaskExecStarted),
    Paused(TaskPaused),
    Resumed(TaskResumed),
}

/// Decodes an envelope's event by its bare type URL; `None` for other types.
pub(crate) fn decode(event: &Any) -> Option<TaskEvent> {
    fn is<T: Name>(url: &str) -> bool {
        url == T::full_name()
    }
    let url = event.type_url.trim_start_matches('/');
    let bytes = event.value.as_slice();
    let decoded = if is::<TaskExit>(url) {
        TaskExit::decode(bytes).map(TaskEvent::Exit)
    } else if is::<TaskOom>(url) {
        TaskOom::decode(bytes).map(TaskEvent::Oom)
    } else if is::<TaskCreate>(url) {
        TaskCreate::decode(bytes).map(TaskEvent::Create)
    } else if is::<TaskStart>(url) {
        TaskStart::decode(bytes).map(TaskEvent::Start)
    } else if is::<TaskExecAdded>(url) {
        TaskExecAdded::decode(bytes).map(TaskEvent::ExecAdded)
    } else if is::<TaskExecStarted>(url) {
        TaskExecStarted::decode(bytes).map(TaskEvent::ExecStarted)
    } else if is::<TaskPaused>(url) {
        TaskPaused::decode(bytes).map(TaskEvent::Paused)
    } else if is::<TaskResumed>(url) {
        TaskResumed::decode(bytes).map(TaskEvent::Resumed)
    } else {
        return None;
    };
    match decoded {
        Ok(e) => Some(e),
        Err(err) => {
            tracing::warn!(type_url = url, error = %err, "cannot decode a task event");
            None
        }
    }
}

/// The topics of the events [`decode`] reads, and of the sync event. Only
/// these are asked for: containerd sends nothing else (a lifecycle's
/// `/tasks/delete`, say), which would only be framed, read and dropped.
const TOPICS: [&str; 9] = [
    "/tasks/create",
    "/tasks/start",
    "/tasks/exit",
    "/tasks/oom",
    "/tasks/exec-added",
    "/tasks/exec-started",
    "/tasks/paused",
    "/tasks/resumed",
    SYNC_TOPIC,
];

/// The subscription's filters: one per topic (containerd ORs them).
fn filters(namespace: &str) -> Vec<String> {
    TOPICS
        .iter()
        .map(|topic| format!("namespace=={namespace},topic==\"{topic}\""))
        .collect()
}

/// The subscription loop of one client. `ready` is answered once the first
/// subscription is live.
pub(crate) async fn run(inner: Arc<Session>, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let closed = inner.conn.shared.closed.clone();
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        let Some(live) = closed
            .run_until_cancelled(subscribe_once(&inner, &mut ready))
            .await
        else {
            return;
        };
        if live {
            backoff.reset();
        }
        let delay = backoff.next();
        tracing::debug!(namespace = %inner.namespace(), backoff = ?delay, "event stream ended; resubscribing");
        if closed
            .run_until_cancelled(tokio::time::sleep(delay))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// One subscription, until its stream breaks. Returns whether it became live.
async fn subscribe_once(inner: &Arc<Session>, ready: &mut Option<oneshot::Sender<()>>) -> bool {
    let token = format!(
        "{}-{}-{}",
        std::process::id(),
        inner.namespace(),
        SYNC_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let filters = filters(inner.namespace());
    // containerd answers Subscribe only with its first event: publish private
    // sync events until one comes back through this subscription.
    let publisher =
        AbortOnDropHandle::new(tokio::spawn(publish_sync(inner.clone(), token.clone())));
    let mut stream = match inner.conn.api.subscribe(filters).await {
        Ok(s) => s,
        Err(status) => {
            tracing::debug!(error = %status, "subscribe failed");
            return false;
        }
    };
    let mut live = false;
    loop {
        let envelope: Envelope = match stream.next().await {
            Some(Ok(e)) => e,
            Some(Err(status)) => {
                tracing::warn!(namespace = %inner.namespace(), error = %status.message(), "the event stream broke");
                return live;
            }
            None => return live,
        };
        let Some(event) = envelope.event else {
            continue;
        };
        if event.type_url == SYNC_TYPE_URL {
            if !live && event.value == token.as_bytes() {
                live = true;
                publisher.abort();
                match ready.take() {
                    Some(tx) => {
                        let _ = tx.send(());
                    }
                    None => {
                        libctd_core::metrics::event_stream_resubscribed(inner.namespace());
                        reconcile(inner).await;
                    }
                }
            }
            continue;
        }
        if let Some(e) = decode(&event) {
            handle(inner, e);
        }
    }
}

/// Publishes the sync event every 100 ms until aborted.
async fn publish_sync(inner: Arc<Session>, token: String) {
    loop {
        let req = PublishRequest {
            topic: SYNC_TOPIC.to_owned(),
            event: Some(Any {
                type_url: SYNC_TYPE_URL.to_owned(),
                value: token.clone().into_bytes(),
            }),
        };
        if let Err(e) = inner.conn.api.publish(req).await {
            tracing::debug!(error = %e, "publishing the sync event failed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Translates one event and queues it for the engine.
pub(crate) fn handle(inner: &Arc<Session>, event: TaskEvent) {
    let container_id = match &event {
        TaskEvent::Create(e) => &e.container_id,
        TaskEvent::Start(e) => &e.container_id,
        TaskEvent::Exit(e) => &e.container_id,
        TaskEvent::Oom(e) => &e.container_id,
        TaskEvent::ExecAdded(e) => &e.container_id,
        TaskEvent::ExecStarted(e) => &e.container_id,
        TaskEvent::Paused(e) => &e.container_id,
        TaskEvent::Resumed(e) => &e.container_id,
    };
    let Some(c) = inner.container(container_id) else {
        return; // not ours: nothing allocated for it
    };
    let mut info = EventInfo::new(container_id.as_str(), INIT_PROCESS_ID);
    let kind = {
        let mut st = c.lock();
        let kind = match event {
            TaskEvent::Create(e) => {
                info.pid = e.pid;
                EventType::Create
            }
            TaskEvent::Start(e) => {
                info.pid = e.pid;
                EventType::Start
            }
            TaskEvent::Oom(_) => {
                if !st.mark_oom() {
                    return; // one kill, many events: delivered once
                }
                EventType::Oom
            }
            TaskEvent::ExecAdded(e) => {
                info.process_id = e.exec_id;
                EventType::ExecAdded
            }
            TaskEvent::ExecStarted(e) => {
                info.process_id = e.exec_id;
                info.pid = e.pid;
                EventType::ExecStarted
            }
            TaskEvent::Paused(_) => EventType::Paused,
            TaskEvent::Resumed(_) => EventType::Resumed,
            TaskEvent::Exit(e) => match st.exit_from_stream(&c.id, e) {
                StreamExit::Deliver(exit) => {
                    info = exit;
                    EventType::Exit
                }
                StreamExit::Ignore => return,
            },
        };
        info.oom_killed = st.oom();
        kind
    };
    deliver(inner, kind, info);
}

/// Queues one event; an exec's exit is followed, in the same slot, by its
/// cleanup; the init's exit by a check that every exec gets its exit too.
fn deliver(inner: &Arc<Session>, kind: EventType, info: EventInfo) {
    if kind == EventType::Exit && info.process_id == INIT_PROCESS_ID {
        if let Some(c) = inner.container(&info.container_id)
            && c.lock().exec_exit_undelivered()
        {
            tokio::spawn(execs_after_init_exit(inner.clone(), c));
        }
        inner.dispatcher.dispatch(kind, info);
    } else if kind == EventType::Exit {
        let inner2 = inner.clone();
        let cid = info.container_id.clone();
        let exec_id = info.process_id.clone();
        inner.dispatcher.dispatch_then(kind, info, async move {
            cleanup_exec(&inner2, &cid, &exec_id).await;
        });
    } else {
        inner.dispatcher.dispatch(kind, info);
    }
}

/// The bound on an exec's cleanup after its exit was delivered.
const EXEC_CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Deletes an exec in containerd and forgets it (after its exit was delivered).
async fn cleanup_exec(inner: &Session, container_id: &str, exec_id: &str) {
    // Its exit was delivered after its start answered (`state` holds an
    // exit that comes before), so containerd's Tasks.Start, which asks the
    // shim for the pid after starting it, is done with it.
    let deleted = inner.conn.api.delete_process(container_id, exec_id);
    match tokio::time::timeout(EXEC_CLEANUP_TIMEOUT, deleted).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(container_id, exec_id, error = %e, "deleting an exited exec failed")
        }
        Err(_) => tracing::warn!(container_id, exec_id, "deleting an exited exec timed out"),
    }
    let proc = inner
        .container(container_id)
        .and_then(|c| c.lock().forget(exec_id));
    if let Some(kept) = inner.kept_exits() {
        kept.untrack_exec(inner.namespace(), container_id, exec_id);
    }
    if let Some(p) = proc {
        let _ = tokio::time::timeout(EXEC_CLEANUP_TIMEOUT, p.release()).await;
    }
}

/// How long, after the init exit, the execs of a task are watched for exits
/// their shim may never report.
const EXEC_EXIT_WATCH: Duration = Duration::from_secs(10);

/// After the init process exited, the kernel kills every other process of
/// the container; their exits normally come from the shim, but not when the
/// shim itself died. Until each exec's exit is delivered (by the stream or
/// here), asks containerd for it; an exec whose task is gone gets an exit
/// with an unknown status.
async fn execs_after_init_exit(inner: Arc<Session>, c: Arc<Container>) {
    let deadline = tokio::time::Instant::now() + EXEC_EXIT_WATCH;
    // The shim normally reports the execs' exits right after the init's:
    // ask only about those it has not reported after a moment.
    let mut pause = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
    loop {
        tokio::time::sleep(pause.next()).await;
        let undelivered = reconcile_container(&inner, &c, |id| id != INIT_PROCESS_ID).await;
        if undelivered == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

/// After a gap: completes rollbacks that could not reach containerd, then
/// asks containerd for every started process whose exit was not delivered,
/// and delivers the exits that happened meanwhile, once.
async fn reconcile(inner: &Arc<Session>) {
    // On its own task: a rollback can take a deadline or two, and the
    // stream must go on being read meanwhile.
    let settling = inner.clone();
    tokio::spawn(async move { settling.rollbacks.settle_all().await });
    for c in inner.all_containers() {
        reconcile_container(inner, &c, |_| true).await;
    }
}

/// Delivers the exits of the container's started processes (those `which`
/// selects) that containerd reports stopped or gone; returns how many of
/// them are still running or could not be asked about.
pub(crate) async fn reconcile_container(
    inner: &Arc<Session>,
    c: &Arc<Container>,
    which: impl Fn(&str) -> bool,
) -> usize {
    let pending = c.lock().owed_exits(which);
    let mut undelivered = 0;
    {
        for process_id in pending {
            // A process that vanished (its shim died, someone deleted it)
            // exited too: its exit is delivered with an unknown status.
            let got = inner.conn.api.get(&c.id, &wire_exec_id(&process_id)).await;
            let (process, vanished) = match got {
                Ok(r) => (r.process.unwrap_or_default(), None),
                Err(e) if e.code() == tonic::Code::NotFound => {
                    exit_kept_by_shim(inner, &c.id, &process_id).unwrap_or((
                        Process::default(),
                        Some("the process is gone from containerd without a reported exit (its shim died, or it was deleted)"),
                    ))
                }
                Err(e) => {
                    tracing::debug!(container_id = %c.id, process_id, error = %e, "reconcile: cannot get the process");
                    undelivered += 1;
                    continue;
                }
            };
            if vanished.is_none() && convert::status_from_proto(process.status) != Status::Stopped {
                undelivered += 1;
                continue;
            }
            let info = c.lock().take_exit(&process_id, |pid, oom| match vanished {
                Some(why) => lost_exit(&c.id, &process_id, pid, oom, why),
                None => EventInfo::new(c.id.as_str(), process_id.as_str())
                    .with_pid(process.pid)
                    .with_exit_code(process.exit_status)
                    .with_exited_at(convert::time_from_proto(process.exited_at.as_ref()))
                    .with_oom_killed(oom),
            });
            let Some(info) = info else {
                continue;
            };
            tracing::info!(container_id = %c.id, process_id, "delivering an exit the event stream did not bring");
            deliver(inner, EventType::Exit, info);
        }
    }
    undelivered
}

/// The exit of a process whose real status cannot be known: exit code
/// 4294967295 and an error saying why.
pub(crate) fn lost_exit(
    container_id: &str,
    process_id: &str,
    pid: u32,
    oom_killed: bool,
    why: &str,
) -> EventInfo {
    EventInfo::new(container_id, process_id)
        .with_pid(pid)
        .with_exit_code(libctd_core::UNKNOWN_EXIT_CODE)
        .with_exited_at(Some(std::time::SystemTime::now()))
        .with_oom_killed(oom_killed)
        .with_error(Some(Arc::new(
            libctd_core::Error::not_found(format!("{why}; its exit status is unknown"))
                .with_container(container_id)
                .with_process(process_id),
        )))
}

/// When containerd no longer knows a process (`NotFound`), the exit kept for
/// it across the embedded daemon's restart (1.7 and 2.x drop the tasks whose
/// processes died while they were down: see `shim_exits`): shaped as the
/// stopped process `Tasks.Get` would have returned, with why its status is
/// unknown when it is lost.
fn exit_kept_by_shim(
    inner: &Session,
    container_id: &str,
    process_id: &str,
) -> Option<(Process, Option<&'static str>)> {
    let pid = inner
        .container(container_id)
        .and_then(|c| c.lock().pid_of(process_id))?;
    let kept = inner.kept_exits()?;
    let exit = if process_id == INIT_PROCESS_ID {
        kept.get(inner.namespace(), container_id, pid)?
    } else {
        kept.exec_exit(inner.namespace(), container_id, process_id, pid)?
    };
    tracing::debug!(container_id, status = ?exit.status, "reconcile: the exit was kept across the daemon's restart");
    let process = Process {
        id: container_id.to_owned(),
        pid: exit.pid,
        status: containerd_client::types::v1::Status::Stopped as i32,
        exit_status: exit.status.exit_code(),
        exited_at: exit.exited_at,
        ..Process::default()
    };
    let why = exit.status.lost_why();
    Some((process, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribes_to_exactly_the_topics_it_reads() {
        let f = filters("ns1");
        assert_eq!(f.len(), TOPICS.len());
        assert!(f.contains(&"namespace==ns1,topic==\"/tasks/exit\"".to_owned()));
        assert!(f.iter().any(|f| f.ends_with(&format!("\"{SYNC_TOPIC}\""))));
        assert!(!f.iter().any(|f| f.contains("/tasks/delete")), "{f:?}");
        assert!(f.iter().all(|f| f.starts_with("namespace==ns1,")));
    }

    #[test]
    fn decodes_by_bare_type_url() {
        let exit = TaskExit {
            container_id: "c".into(),
            id: "e1".into(),
            pid: 7,
            exit_status: 3,
            exited_at: None,
        };
        let any = Any {
            type_url: "containerd.events.TaskExit".into(),
            value: exit.encode_to_vec(),
        };
        assert_eq!(decode(&any), Some(TaskEvent::Exit(exit)));
        let oom = Any {
            type_url: "containerd.events.TaskOOM".into(),
            value: TaskOom {
                container_id: "c".into(),
            }
            .encode_to_vec(),
        };
        assert!(matches!(decode(&oom), Some(TaskEvent::Oom(_))));
        let other = Any {
            type_url: "containerd.events.ContainerCreate".into(),
            value: vec![],
        };
        assert_eq!(decode(&other), None);
    }
}
