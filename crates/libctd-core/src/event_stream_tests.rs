//! The stream's order, backpressure, close and drop rules, through the
//! dispatcher every client delivers with.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::{FutureExt, StreamExt};

use super::*;
use crate::error::ErrorKind;
use crate::id::INIT_PROCESS_ID;
use crate::queue::{EventDispatcher, EventQueue};

const T: Duration = Duration::from_secs(10);

async fn deadline<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"))
}

/// Polls `check` (yielding between tries) until it holds, within the deadline.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    deadline(what, async {
        while !check() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// Event number `n` of `id`: its number is the exit code.
fn numbered(id: &str, n: u32) -> EventInfo {
    EventInfo::new(id, INIT_PROCESS_ID).with_exit_code(n)
}

fn kind_of(err: &BoxError) -> Option<ErrorKind> {
    err.downcast_ref::<Error>().map(Error::kind)
}

/// A stream of `capacity` filled by `count` exits of container `a`
/// dispatched through a client's queue: `capacity` buffered, the next one
/// waiting for room, the rest queued behind it.
async fn full(capacity: usize, count: u32) -> (Arc<dyn Backend>, EventStream, EventQueue) {
    let (backend, events) = EventStream::channel(capacity).unwrap();
    let dispatcher = EventDispatcher::new(backend.clone()).unwrap();
    for n in 0..count {
        dispatcher.dispatch(EventType::Exit, numbered("a", n));
    }
    let queue = dispatcher.queue().clone();
    let behind = count as usize - capacity - 1;
    until("the buffer to fill", || {
        events.len() == capacity && queue.waiting("a") == behind
    })
    .await;
    (backend, events, queue)
}

#[test]
fn refuses_a_capacity_outside_its_range() {
    for capacity in [0, EventStream::MAX_CAPACITY + 1, usize::MAX] {
        let err = EventStream::channel(capacity).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("capacity"), "{err}");
    }
    for capacity in [1, EventStream::MAX_CAPACITY] {
        let (_backend, stream) = EventStream::channel(capacity).unwrap();
        assert_eq!(stream.capacity(), capacity);
        assert!(stream.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_each_containers_order_and_every_event() {
    let (backend, mut events) = EventStream::channel(3).unwrap();
    let dispatcher = EventDispatcher::new(backend).unwrap();
    let ids = ["a", "b", "c"];
    for n in 0..100 {
        for id in ids {
            let kind = EventType::ALL[n as usize % EventType::ALL.len()];
            dispatcher.dispatch(kind, numbered(id, n));
        }
    }
    let mut seen: HashMap<String, Vec<(EventType, u32)>> = HashMap::new();
    for _ in 0..300 {
        let event = deadline("an event", events.next()).await.unwrap();
        assert_eq!(event.container_id, event.info.container_id);
        assert!(events.len() <= 3, "more than the capacity is buffered");
        seen.entry(event.container_id)
            .or_default()
            .push((event.kind, event.info.exit_code));
    }
    for id in ids {
        let expected: Vec<_> = (0..100)
            .map(|n| (EventType::ALL[n as usize % EventType::ALL.len()], n))
            .collect();
        assert_eq!(seen[id], expected, "{id}");
    }
    deadline("the queue to drain", dispatcher.queue().wait_idle()).await;
    assert!(events.is_empty(), "an event was delivered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_holds_deliveries_until_the_consumer_takes_one() {
    // Two buffered, the third waiting for room, seven queued behind it.
    let (backend, mut events, queue) = full(2, 10).await;
    // Any container's delivery now waits for room too: the buffer is shared.
    let mut other = backend.process_event("b", EventType::Start, numbered("b", 0));
    assert!(
        (&mut other).now_or_never().is_none(),
        "sent past a full stream"
    );

    // Taking events lets the held ones through, in order, none lost.
    let mut got = Vec::new();
    for _ in 0..10 {
        let event = deadline("an event", events.next()).await.unwrap();
        assert_eq!(event.container_id, "a");
        got.push(event.info.exit_code);
        assert!(events.len() <= 2, "more than the capacity is buffered");
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    deadline("the held delivery", other).await.unwrap();
    let b = deadline("b's event", events.next()).await.unwrap();
    assert_eq!((b.container_id.as_str(), b.kind), ("b", EventType::Start));
    deadline("the queue to drain", queue.wait_idle()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_releases_every_delivery() {
    let (backend, events, queue) = full(1, 5).await;
    let mut held = backend.process_event("b", EventType::Start, numbered("b", 0));
    assert!(
        (&mut held).now_or_never().is_none(),
        "sent past a full stream"
    );

    drop(events);
    // The delivery that waited for room fails, and so does every later one,
    // at once: the container's queue drains instead of hanging.
    let err = deadline("the held delivery", held).await.unwrap_err();
    assert_eq!(kind_of(&err), Some(ErrorKind::Cancelled), "{err}");
    assert!(err.to_string().contains("b start init"), "{err}");
    deadline("the queue to drain", queue.wait_idle()).await;
    let later = backend
        .process_event("a", EventType::Exit, numbered("a", 9))
        .now_or_never()
        .expect("a delivery after the drop waited");
    assert_eq!(kind_of(&later.unwrap_err()), Some(ErrorKind::Cancelled));
}

#[tokio::test]
async fn a_closed_stream_yields_what_it_holds_then_ends() {
    let (backend, mut events) = EventStream::channel(4).unwrap();
    for n in 0..2 {
        backend
            .process_event("a", EventType::Exit, numbered("a", n))
            .await
            .unwrap();
    }
    events.close();
    events.close();
    let refused = backend
        .process_event("a", EventType::Exit, numbered("a", 2))
        .now_or_never()
        .expect("a delivery after close waited");
    assert_eq!(kind_of(&refused.unwrap_err()), Some(ErrorKind::Cancelled));
    assert_eq!(events.size_hint(), (2, None));
    assert_eq!(events.recv().await.unwrap().info.exit_code, 0);
    assert_eq!(events.recv().await.unwrap().info.exit_code, 1);
    // Ended although `backend` is still alive.
    assert!(deadline("the end", events.recv()).await.is_none());
}

#[tokio::test]
async fn the_stream_ends_when_its_backend_is_gone() {
    let (backend, mut events) = EventStream::channel(4).unwrap();
    backend
        .process_event("a", EventType::Create, numbered("a", 0))
        .await
        .unwrap();
    drop(backend);
    let create = events.next().await.unwrap();
    assert_eq!(create.kind, EventType::Create);
    assert!(deadline("the end", events.next()).await.is_none());
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let (backend, mut events) = EventStream::channel(4).unwrap();
    // A recv dropped while waiting takes nothing.
    assert!(events.recv().now_or_never().is_none());
    backend
        .process_event("a", EventType::Paused, numbered("a", 7))
        .await
        .unwrap();
    let paused = events.recv().await.unwrap();
    assert_eq!((paused.kind, paused.info.exit_code), (EventType::Paused, 7));
}
