//! A client's events as a `Stream`: the typed alternative to implementing
//! [`Backend`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::error::{BoxError, Error, Result};
use crate::event::{EventInfo, EventType};

/// One event of a container, as an [`EventStream`] yields it: what a
/// [`Backend`] would have been called with.
///
/// ```
/// use libctd_core::{Event, EventInfo, EventType, INIT_PROCESS_ID};
///
/// let exit = Event::new(
///     "web",
///     EventType::Exit,
///     EventInfo::new("web", INIT_PROCESS_ID).with_exit_code(3),
/// );
/// assert_eq!(exit.info.exit_status(), Some(3));
/// assert_eq!(exit.to_string(), "web exit init");
/// ```
///
/// New fields may be added, so it cannot be written as a struct literal
/// outside this crate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Event {
    /// The container the event was delivered for.
    pub container_id: String,
    /// What happened.
    pub kind: EventType,
    /// The details (the process, its pid, exit code, OOM flag, ...).
    pub info: EventInfo,
}

impl Event {
    /// An event of `kind` for `container_id`.
    pub fn new(container_id: impl Into<String>, kind: EventType, info: EventInfo) -> Self {
        Self {
            container_id: container_id.into(),
            kind,
            info,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.container_id, self.kind, self.info.process_id
        )
    }
}

/// A client's events as a [`Stream`] of [`Event`]s.
///
/// [`EventStream::channel`] gives a [`Backend`] to hand to
/// [`Remote::new_client`](crate::Remote::new_client) (any platform's, or the
/// testkit's fake) and the stream that backend feeds. The stream has the
/// Backend path's guarantees, because it is that path: each container's
/// events arrive in the order the client delivers them, every exit once, with
/// the same exec and OOM rules; events of different containers interleave.
///
/// ```
/// use futures::StreamExt;
/// use libctd_core::{EventDispatcher, EventInfo, EventStream, EventType, INIT_PROCESS_ID};
///
/// # #[tokio::main] async fn main() -> libctd_core::Result<()> {
/// let (backend, mut events) = EventStream::channel(64)?;
/// // An engine passes `backend` to `Remote::new_client`; here a dispatcher,
/// // which every client delivers through, stands in for the client.
/// let client_side = EventDispatcher::new(backend)?;
/// client_side.dispatch(EventType::Start, EventInfo::new("web", INIT_PROCESS_ID).with_pid(42));
/// client_side.dispatch(EventType::Exit, EventInfo::new("web", INIT_PROCESS_ID).with_exit_code(3));
///
/// let start = events.next().await.unwrap();
/// assert_eq!((start.container_id.as_str(), start.kind), ("web", EventType::Start));
/// let exit = events.next().await.unwrap();
/// assert_eq!(exit.info.exit_status(), Some(3));
///
/// // The stream ends once the client (every holder of `backend`) is gone.
/// drop(client_side);
/// assert!(events.next().await.is_none());
/// # Ok(()) }
/// ```
///
/// # A slow consumer
///
/// The stream buffers at most `capacity` events (its memory bound). When it
/// is full, the delivery that would add one waits until the consumer takes
/// one, and so do the deliveries of every other container that has an event
/// to deliver meanwhile, since they share the buffer: a slow consumer slows
/// the delivery of all of its client's events. Nothing is dropped while the
/// stream is alive: the waiting events stay in the client's per-container
/// queue (as for a slow `Backend`), which grows only with what the containers
/// produce. The client's operations never wait for a delivery, so they go on;
/// only what follows a delivery waits with it (an exited exec's id is free
/// again once its exit was delivered, as with a slow `Backend`).
/// An engine that must not let one container's burst delay the others reads
/// the stream promptly and hands events to per-container work of its own.
///
/// # A dropped consumer
///
/// Dropping the stream, or [`close`](EventStream::close), ends the
/// subscription: every later delivery, and every delivery then waiting for
/// room, returns at once with a `Cancelled` error naming the event, which
/// the client logs and goes on (its clean-up after an exit still runs); those
/// events are not kept. The client itself keeps working.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    capacity: usize,
}

impl EventStream {
    /// The largest capacity [`channel`](EventStream::channel) accepts.
    pub const MAX_CAPACITY: usize = 1 << 20;

    /// A [`Backend`] and the stream of the events it receives, which buffers
    /// at most `capacity` of them.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when `capacity` is 0 or above
    /// [`MAX_CAPACITY`](EventStream::MAX_CAPACITY).
    pub fn channel(capacity: usize) -> Result<(Arc<dyn Backend>, EventStream)> {
        if capacity == 0 || capacity > Self::MAX_CAPACITY {
            return Err(Error::invalid_argument(format!(
                "event stream capacity {capacity} is outside 1..={}",
                Self::MAX_CAPACITY
            )));
        }
        let (tx, rx) = mpsc::channel(capacity);
        Ok((Arc::new(StreamBackend { tx }), EventStream { rx, capacity }))
    }

    /// The next event, or `None` once the stream has ended: every holder of
    /// its backend (the client and its tasks) is gone, or the stream was
    /// [closed](EventStream::close) and its buffer drained. The same as
    /// `StreamExt::next`.
    ///
    /// Cancel safe: an event is taken only when it is returned.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Ends the subscription but keeps the events already buffered, which
    /// [`recv`](EventStream::recv) still returns before `None`. Deliveries
    /// from then on fail as after a drop. Never fails; closing again does
    /// nothing.
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// How many events are buffered, waiting to be taken.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no event is buffered.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The most events the stream buffers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Stream for EventStream {
    type Item = Event;

    /// Cancel safe, as [`EventStream::recv`].
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rx.len(), None)
    }
}

/// The backend side of an [`EventStream`].
struct StreamBackend {
    tx: mpsc::Sender<Event>,
}

#[async_trait]
impl Backend for StreamBackend {
    /// Waits for room in the stream's buffer; fails at once with `Cancelled`
    /// once the stream is dropped or closed. Dropping the call sends nothing.
    async fn process_event(
        &self,
        container_id: &str,
        event: EventType,
        info: EventInfo,
    ) -> std::result::Result<(), BoxError> {
        self.tx
            .send(Event::new(container_id, event, info))
            .await
            .map_err(|lost| {
                Error::cancelled(format!(
                    "the event stream was dropped or closed: event {} not delivered",
                    lost.0
                ))
                .into()
            })
    }
}

#[cfg(test)]
#[path = "event_stream_tests.rs"]
mod tests;
