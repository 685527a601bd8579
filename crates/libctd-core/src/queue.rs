//! The per-container ordered event queue.
//!
//! Every event of one container runs in arrival order, one at a time; events
//! of different containers run concurrently, so a slow or stuck handler delays
//! only its own container. Nothing is dropped (the queue is unbounded: events
//! are small and bounded by what the daemon produces), and an idle container
//! costs nothing: its entry and its worker task exist only while it has
//! events to run.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::event::{EventInfo, EventType};
use crate::metrics::{self, QueueDepth};

type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs jobs in order per container, containers concurrently.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use libctd_core::EventQueue;
///
/// # #[tokio::main] async fn main() {
/// let queue = EventQueue::new().unwrap();
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// for i in 0..3 {
///     let seen = seen.clone();
///     queue.append("web", async move { seen.lock().unwrap().push(i) });
/// }
/// queue.wait_idle().await;
/// assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
/// # }
/// ```
#[derive(Clone)]
pub struct EventQueue {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Handle,
    /// Containers with a running worker, and the jobs waiting behind it.
    queues: Mutex<HashMap<String, VecDeque<Job>>>,
    /// Signalled whenever a worker finds its container's queue empty.
    drained: Notify,
}

impl EventQueue {
    /// A queue whose workers run on the current tokio runtime.
    ///
    /// Fails with `FailedPrecondition` outside a tokio runtime.
    pub fn new() -> Result<Self> {
        let runtime = Handle::try_current().map_err(|e| {
            Error::failed_precondition("the event queue needs a tokio runtime").with_source(e)
        })?;
        Ok(Self::with_runtime(runtime))
    }

    /// A queue whose workers run on `runtime`.
    pub fn with_runtime(runtime: Handle) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                queues: Mutex::new(HashMap::new()),
                drained: Notify::new(),
            }),
        }
    }

    /// Queues `job` behind every job already queued for `container_id`.
    ///
    /// A job that panics is logged; the jobs behind it still run.
    pub fn append<F>(&self, container_id: &str, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let job: Job = Box::pin(job);
        let mut queues = self.inner.lock();
        if let Some(waiting) = queues.get_mut(container_id) {
            waiting.push_back(job);
            return;
        }
        queues.insert(container_id.to_owned(), VecDeque::new());
        drop(queues);
        // The worker is built before it is spawned: if the runtime drops the
        // task unpolled (it shut down), the worker's drop still cleans up.
        let worker = Worker {
            inner: self.inner.clone(),
            container_id: container_id.to_owned(),
            finished: false,
        };
        self.inner.runtime.spawn(worker.run(job));
    }

    /// How many containers have events running or waiting.
    pub fn active_containers(&self) -> usize {
        self.inner.lock().len()
    }

    /// How many jobs wait behind the running one for `container_id`.
    pub fn waiting(&self, container_id: &str) -> usize {
        self.inner.lock().get(container_id).map_or(0, VecDeque::len)
    }

    /// Resolves once no container has events running or waiting.
    pub async fn wait_idle(&self) {
        loop {
            let drained = self.inner.drained.notified();
            if self.inner.lock().is_empty() {
                return;
            }
            drained.await;
        }
    }

    /// Resolves once `container_id` has no events running or waiting.
    pub async fn wait_container_idle(&self, container_id: &str) {
        loop {
            let drained = self.inner.drained.notified();
            if !self.inner.lock().contains_key(container_id) {
                return;
            }
            drained.await;
        }
    }
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("active_containers", &self.active_containers())
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Job>>> {
        // Jobs never run under this lock, so a poisoned lock holds consistent data.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets a container whose worker will never run again.
    fn abandon(&self, container_id: &str) {
        let removed = self.lock().remove(container_id);
        // The jobs are dropped here, outside the lock.
        let dropped = removed.map_or(0, |q| q.len());
        if dropped > 0 {
            tracing::warn!(
                container_id,
                dropped,
                "the runtime shut down: queued events were not delivered"
            );
        }
        self.drained.notify_waiters();
    }
}

/// A container's worker. If its task is dropped before the queue drains (the
/// runtime shut down, or the worker could not even be spawned), it removes the
/// container's entry so that waiters and later appends are not stuck behind a
/// worker that no longer exists.
struct Worker {
    inner: Arc<Inner>,
    container_id: String,
    finished: bool,
}

impl Worker {
    /// Runs the container's jobs until its queue is empty, then removes the
    /// entry (under the lock, so an append either lands before the removal and
    /// is run, or after it and starts a new worker).
    async fn run(mut self, first: Job) {
        let mut job = first;
        loop {
            if CatchUnwind(job).await.is_err() {
                tracing::error!(
                    container_id = self.container_id,
                    "an event job panicked; continuing"
                );
            }
            let next = {
                let mut queues = self.inner.lock();
                match queues
                    .get_mut(&self.container_id)
                    .and_then(VecDeque::pop_front)
                {
                    Some(next) => next,
                    None => {
                        queues.remove(&self.container_id);
                        self.finished = true;
                        drop(queues);
                        self.inner.drained.notify_waiters();
                        return;
                    }
                }
            };
            job = next;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.finished {
            self.inner.abandon(&self.container_id);
        }
    }
}

/// Polls a job, turning a panic into `Err`.
struct CatchUnwind(Job);

impl Future for CatchUnwind {
    type Output = std::result::Result<(), ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let job = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| job.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// Delivers events to a [`Backend`] through an [`EventQueue`].
///
/// Backends build one per client ([`EventDispatcher::for_client`]). Each
/// delivery runs in a tracing span naming the container, process and event;
/// an error returned by the handler is logged and delivery goes on. With the
/// `metrics` feature it records each delivery and the events not yet
/// handled (see [`metrics`](crate::metrics)).
#[derive(Clone)]
pub struct EventDispatcher {
    queue: EventQueue,
    backend: Arc<dyn Backend>,
    depth: QueueDepth,
}

impl EventDispatcher {
    /// A dispatcher to `backend` on the current tokio runtime, its queue
    /// depth recorded under an empty namespace.
    pub fn new(backend: Arc<dyn Backend>) -> Result<Self> {
        Self::for_client(backend, "")
    }

    /// The dispatcher of a client of `namespace`: its queue depth is
    /// recorded under that namespace.
    pub fn for_client(backend: Arc<dyn Backend>, namespace: &str) -> Result<Self> {
        Ok(Self {
            queue: EventQueue::new()?,
            backend,
            depth: QueueDepth::new(namespace),
        })
    }

    /// The queue the dispatcher uses, to add other jobs in order with events.
    pub fn queue(&self) -> &EventQueue {
        &self.queue
    }

    /// Queues delivery of one event of `info.container_id`.
    pub fn dispatch(&self, event: EventType, info: EventInfo) {
        self.dispatch_then(event, info, async {});
    }

    /// Queues delivery of one event, then `after` in the same queue slot (for
    /// cleanup that must follow the delivery, such as deleting an exited exec).
    pub fn dispatch_then<F>(&self, event: EventType, info: EventInfo, after: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let backend = self.backend.clone();
        let container_id = info.container_id.clone();
        let span = tracing::debug_span!(
            "process_event",
            container_id = %info.container_id,
            process_id = %info.process_id,
            event = %event,
        );
        // Counted from here until handled, or dropped undelivered.
        let queued = self.depth.queued();
        // The job owns one copy of the id; `info` itself goes to the backend
        // uncloned.
        self.queue.append(
            &info.container_id.clone(),
            async move {
                if let Err(e) = backend.process_event(&container_id, event, info).await {
                    tracing::warn!(error = %e, "the backend failed to process an event");
                }
                metrics::event_delivered(event);
                drop(queued);
                after.await;
            }
            .instrument(span),
        );
    }
}

impl std::fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDispatcher")
            .field("queue", &self.queue)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::oneshot;

    type Log = Arc<Mutex<Vec<(String, usize)>>>;

    fn push(log: &Log, id: &str, i: usize) {
        log.lock().unwrap().push((id.to_owned(), i));
    }

    fn per_container(log: &Log) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (id, i) in log.lock().unwrap().iter() {
            map.entry(id.clone()).or_default().push(*i);
        }
        map
    }

    async fn deadline<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("the queue did not finish in time")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn keeps_order_per_container_under_yields() {
        let queue = EventQueue::new().unwrap();
        let log: Log = Arc::default();
        for i in 0..200 {
            let log = log.clone();
            // Later jobs are quicker than earlier ones: only ordering keeps them in line.
            let yields = 200 - i;
            queue.append("c", async move {
                for _ in 0..yields % 7 {
                    tokio::task::yield_now().await;
                }
                push(&log, "c", i);
            });
        }
        deadline(queue.wait_idle()).await;
        assert_eq!(per_container(&log)["c"], (0..200).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stuck_container_does_not_block_others() {
        let queue = EventQueue::new().unwrap();
        let (_never_tx, never_rx) = oneshot::channel::<()>();
        queue.append("stuck", async move {
            let _ = never_rx.await;
        });
        let log: Log = Arc::default();
        for i in 0..50 {
            let log = log.clone();
            queue.append("free", async move { push(&log, "free", i) });
        }
        deadline(queue.wait_container_idle("free")).await;
        assert_eq!(per_container(&log)["free"].len(), 50);
        assert_eq!(queue.active_containers(), 1, "only the stuck one is active");
        // The stuck container's later events wait behind its stuck one.
        queue.append("stuck", async {});
        assert_eq!(queue.waiting("stuck"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_event_at_a_time_per_container() {
        let queue = EventQueue::new().unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let (running, max_seen) = (running.clone(), max_seen.clone());
            queue.append("c", async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        deadline(queue.wait_idle()).await;
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containers_run_concurrently() {
        // Two containers each wait for the other: only concurrent processing finishes.
        let queue = EventQueue::new().unwrap();
        let (a_tx, a_rx) = oneshot::channel::<()>();
        let (b_tx, b_rx) = oneshot::channel::<()>();
        queue.append("a", async move {
            a_tx.send(()).unwrap();
            b_rx.await.unwrap();
        });
        queue.append("b", async move {
            b_tx.send(()).unwrap();
            a_rx.await.unwrap();
        });
        deadline(queue.wait_idle()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn nothing_dropped_under_concurrent_appends() {
        let queue = EventQueue::new().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let mut producers = Vec::new();
        for p in 0..8 {
            let (queue, count) = (queue.clone(), count.clone());
            producers.push(tokio::spawn(async move {
                for i in 0..500 {
                    let count = count.clone();
                    let id = format!("c{}", (p * 7 + i) % 13);
                    queue.append(&id, async move {
                        count.fetch_add(1, Ordering::SeqCst);
                    });
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for p in producers {
            p.await.unwrap();
        }
        deadline(queue.wait_idle()).await;
        assert_eq!(count.load(Ordering::SeqCst), 8 * 500);
    }

    #[tokio::test]
    async fn idle_container_costs_nothing() {
        let queue = EventQueue::new().unwrap();
        let metrics = Handle::current().metrics();
        for i in 0..100 {
            queue.append(&format!("c{i}"), async {});
        }
        deadline(queue.wait_idle()).await;
        assert_eq!(queue.active_containers(), 0);
        // Workers exit once their queue is empty: no task per idle container.
        deadline(async {
            while metrics.num_alive_tasks() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_does_not_stop_the_queue() {
        let queue = EventQueue::new().unwrap();
        let log: Log = Arc::default();
        queue.append("c", async { panic!("handler bug") });
        let l = log.clone();
        queue.append("c", async move { push(&l, "c", 1) });
        deadline(queue.wait_idle()).await;
        assert_eq!(per_container(&log)["c"], vec![1]);
    }

    #[test]
    fn a_shut_down_runtime_leaves_no_stuck_entry() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let queue = EventQueue::with_runtime(rt.handle().clone());
        drop(rt);
        queue.append("c", async {});
        assert_eq!(queue.active_containers(), 0);
        // A later append is not parked behind a worker that never ran.
        queue.append("c", async {});
        assert_eq!(queue.waiting("c"), 0);
        assert_eq!(queue.active_containers(), 0);
    }

    #[test]
    fn new_outside_a_runtime_is_an_error() {
        let err = EventQueue::new().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition);
    }

    struct Recorder(Log, bool);

    #[async_trait::async_trait]
    impl Backend for Recorder {
        async fn process_event(
            &self,
            container_id: &str,
            _event: EventType,
            info: EventInfo,
        ) -> std::result::Result<(), crate::BoxError> {
            push(&self.0, container_id, info.pid as usize);
            if self.1 {
                return Err("engine refused the event".into());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn dispatcher_delivers_in_order_even_when_the_backend_fails() {
        let log: Log = Arc::default();
        let dispatcher = EventDispatcher::new(Arc::new(Recorder(log.clone(), true))).unwrap();
        let after = Arc::new(AtomicUsize::new(0));
        for pid in 0..10 {
            let info = EventInfo {
                container_id: "c".into(),
                pid,
                ..EventInfo::default()
            };
            let after = after.clone();
            dispatcher.dispatch_then(EventType::Exit, info, async move {
                after.fetch_add(1, Ordering::SeqCst);
            });
        }
        deadline(dispatcher.queue().wait_idle()).await;
        assert_eq!(per_container(&log)["c"], (0..10).collect::<Vec<_>>());
        assert_eq!(after.load(Ordering::SeqCst), 10);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random interleavings of appends across containers, with random
        /// per-job delays: every container sees exactly its own sequence.
        #[test]
        fn ordering_under_random_interleavings(
            plan in proptest::collection::vec((0usize..5, 0u8..4), 1..120)
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(3)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let queue = EventQueue::new().unwrap();
                let log: Log = Arc::default();
                let mut expected: HashMap<String, Vec<usize>> = HashMap::new();
                for (seq, (container, delay)) in plan.iter().enumerate() {
                    let id = format!("c{container}");
                    expected.entry(id.clone()).or_default().push(seq);
                    let log = log.clone();
                    let delay = *delay;
                    let id2 = id.clone();
                    queue.append(&id, async move {
                        for _ in 0..delay {
                            tokio::task::yield_now().await;
                        }
                        if delay == 3 {
                            tokio::time::sleep(Duration::from_micros(50)).await;
                        }
                        push(&log, &id2, seq);
                    });
                    if delay == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                deadline(queue.wait_idle()).await;
                assert_eq!(per_container(&log), expected);
            });
        }
    }
}
