//! A [`Backend`] that records events, and a stdio callback that captures output.
//!
//! Both are meant for tests: every wait takes a deadline and fails with a
//! `DeadlineExceeded` error that says what was seen instead, so a test never
//! hangs and never sleeps in place of synchronisation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::{
    Backend, BoxError, DirectIo, Error, EventInfo, EventType, OutputStream, Result, StdinStream,
    StdioAttachment, StdioCallback, stdio_callback,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one holds consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `check` gives a value, re-checking whenever `notify` fires,
/// until `deadline`. `check` runs under no lock of the caller.
async fn wait_until<T>(
    notify: &Notify,
    deadline: Instant,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        let changed = notify.notified();
        if let Some(v) = check() {
            return Some(v);
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return check();
        }
    }
}

/// One event as the backend received it.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The container the event was delivered for.
    pub container_id: String,
    /// What happened.
    pub event: EventType,
    /// The details.
    pub info: EventInfo,
}

impl fmt::Display for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} (pid {}, exit {}{})",
            self.container_id,
            self.event,
            self.info.process_id,
            self.info.pid,
            self.info.exit_code,
            if self.info.oom_killed { ", oom" } else { "" }
        )
    }
}

#[derive(Default)]
struct Recorded {
    events: Vec<RecordedEvent>,
    /// Parallel to `events`: taken by `next_event`.
    consumed: Vec<bool>,
    /// Handlers currently held, per container.
    blocked: HashMap<String, usize>,
}

/// Handler scripting: holds and failures per container.
#[derive(Default)]
struct Script {
    holds: HashMap<String, watch::Receiver<bool>>,
    delays: HashMap<String, Duration>,
    failures: HashMap<String, Option<EventType>>,
}

/// A [`Backend`] that records every event in arrival order and lets a test
/// await them with a deadline.
///
/// Its handler can be scripted: [`hold`](RecordingBackend::hold) blocks the
/// handler of one container until released (to show that a stuck handler
/// delays only its own container), and [`fail`](RecordingBackend::fail) makes
/// it return an error (to show that errors do not stop delivery).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use libctd_core::{Backend, EventInfo, EventType};
/// use libctd_testkit::RecordingBackend;
///
/// # #[tokio::main] async fn main() {
/// let backend = Arc::new(RecordingBackend::new());
/// let info = EventInfo::new("web", libctd_core::INIT_PROCESS_ID).with_exit_code(3);
/// backend.process_event("web", EventType::Exit, info).await.unwrap();
/// let exit = backend
///     .next_event("web", EventType::Exit, Duration::from_secs(1))
///     .await
///     .unwrap();
/// assert_eq!(exit.exit_code, 3);
/// # }
/// ```
#[derive(Default)]
pub struct RecordingBackend {
    recorded: Mutex<Recorded>,
    script: Mutex<Script>,
    changed: Notify,
}

/// Keeps the handler of one container blocked until released or dropped.
/// From [`RecordingBackend::hold`].
#[derive(Debug)]
pub struct Hold {
    release: watch::Sender<bool>,
}

impl Hold {
    /// Lets the held handler (and the ones behind it) run.
    pub fn release(self) {
        let _ = self.release.send(true);
    }
}

impl RecordingBackend {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event received so far, in arrival order.
    pub fn events(&self) -> Vec<RecordedEvent> {
        lock(&self.recorded).events.clone()
    }

    /// The events received for `container_id`, in arrival order.
    pub fn events_of(&self, container_id: &str) -> Vec<(EventType, EventInfo)> {
        lock(&self.recorded)
            .events
            .iter()
            .filter(|e| e.container_id == container_id)
            .map(|e| (e.event, e.info.clone()))
            .collect()
    }

    /// The types of the events received for `container_id`, in arrival order.
    pub fn event_types_of(&self, container_id: &str) -> Vec<EventType> {
        self.events_of(container_id)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    /// Forgets every event received so far.
    pub fn clear(&self) {
        let mut r = lock(&self.recorded);
        r.events.clear();
        r.consumed.clear();
    }

    /// Waits for the next event of type `event` for `container_id` that no
    /// earlier call returned, and marks it returned.
    ///
    /// Fails with `DeadlineExceeded`, listing the container's events, when
    /// none arrives within `timeout`.
    pub async fn next_event(
        &self,
        container_id: &str,
        event: EventType,
        timeout: Duration,
    ) -> Result<EventInfo> {
        self.next_event_where(container_id, event, timeout, |_| true)
            .await
    }

    /// Like [`next_event`](Self::next_event), for an event of a given process.
    pub async fn next_process_event(
        &self,
        container_id: &str,
        process_id: &str,
        event: EventType,
        timeout: Duration,
    ) -> Result<EventInfo> {
        self.next_event_where(container_id, event, timeout, |i| i.process_id == process_id)
            .await
            .map_err(|e| e.with_process(process_id))
    }

    async fn next_event_where(
        &self,
        container_id: &str,
        event: EventType,
        timeout: Duration,
        pred: impl Fn(&EventInfo) -> bool,
    ) -> Result<EventInfo> {
        let deadline = Instant::now() + timeout;
        let found = wait_until(&self.changed, deadline, || {
            let mut r = lock(&self.recorded);
            let Recorded {
                events, consumed, ..
            } = &mut *r;
            let i = events.iter().zip(consumed.iter()).position(|(e, taken)| {
                !taken && e.container_id == container_id && e.event == event && pred(&e.info)
            })?;
            consumed[i] = true;
            Some(events[i].info.clone())
        })
        .await;
        found.ok_or_else(|| {
            Error::deadline_exceeded(format!(
                "no {event} event within {timeout:?}; seen: [{}]",
                self.describe(container_id)
            ))
            .with_container(container_id)
        })
    }

    /// Waits until `pred` holds for the list of every event received.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[RecordedEvent]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<RecordedEvent>> {
        let deadline = Instant::now() + timeout;
        let found = wait_until(&self.changed, deadline, || {
            let r = lock(&self.recorded);
            pred(&r.events).then(|| r.events.clone())
        })
        .await;
        found.ok_or_else(|| {
            let seen: Vec<String> = self.events().iter().map(ToString::to_string).collect();
            Error::deadline_exceeded(format!(
                "the condition did not hold within {timeout:?}; seen: [{}]",
                seen.join("; ")
            ))
        })
    }

    /// Blocks the handler for `container_id` (from its next event on) until
    /// the returned [`Hold`] is released or dropped.
    pub fn hold(&self, container_id: &str) -> Hold {
        let (tx, rx) = watch::channel(false);
        lock(&self.script).holds.insert(container_id.to_owned(), rx);
        Hold { release: tx }
    }

    /// Makes the handler for `container_id` take `delay` per event (a slow
    /// engine), before recording it.
    pub fn delay(&self, container_id: &str, delay: Duration) {
        lock(&self.script)
            .delays
            .insert(container_id.to_owned(), delay);
    }

    /// Waits until a handler for `container_id` is blocked by a [`Hold`].
    pub async fn wait_blocked(&self, container_id: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_until(&self.changed, deadline, || {
            let r = lock(&self.recorded);
            (r.blocked.get(container_id).copied().unwrap_or(0) > 0).then_some(())
        })
        .await
        .ok_or_else(|| {
            Error::deadline_exceeded(format!("no handler was blocked within {timeout:?}"))
                .with_container(container_id)
        })
    }

    /// Makes the handler return an error (after recording) for events of
    /// `container_id`: of type `event`, or of every type when `None`.
    pub fn fail(&self, container_id: &str, event: Option<EventType>) {
        lock(&self.script)
            .failures
            .insert(container_id.to_owned(), event);
    }

    fn describe(&self, container_id: &str) -> String {
        let r = lock(&self.recorded);
        let seen: Vec<String> = r
            .events
            .iter()
            .filter(|e| e.container_id == container_id)
            .map(ToString::to_string)
            .collect();
        seen.join("; ")
    }

    fn set_blocked(&self, container_id: &str, delta: isize) {
        {
            let mut r = lock(&self.recorded);
            let n = r.blocked.entry(container_id.to_owned()).or_insert(0);
            *n = n.saturating_add_signed(delta);
        }
        self.changed.notify_waiters();
    }
}

impl fmt::Debug for RecordingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingBackend")
            .field("events", &lock(&self.recorded).events.len())
            .finish()
    }
}

#[async_trait]
impl Backend for RecordingBackend {
    #[tracing::instrument(level = "debug", skip(self, info))]
    async fn process_event(
        &self,
        container_id: &str,
        event: EventType,
        info: EventInfo,
    ) -> Result<(), BoxError> {
        let (hold, delay) = {
            let script = lock(&self.script);
            (
                script.holds.get(container_id).cloned(),
                script.delays.get(container_id).copied(),
            )
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(mut rx) = hold {
            self.set_blocked(container_id, 1);
            // A dropped Hold releases too.
            let _ = rx.wait_for(|released| *released).await;
            self.set_blocked(container_id, -1);
        }
        {
            let mut r = lock(&self.recorded);
            r.events.push(RecordedEvent {
                container_id: container_id.to_owned(),
                event,
                info,
            });
            r.consumed.push(false);
        }
        self.changed.notify_waiters();
        let fail = lock(&self.script).failures.get(container_id).copied();
        match fail {
            Some(None) => Err(format!("scripted failure for {container_id}").into()),
            Some(Some(t)) if t == event => {
                Err(format!("scripted failure for {container_id} {event}").into())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Default)]
struct Captured {
    attached: bool,
    terminal: bool,
    had_stdout: bool,
    had_stderr: bool,
    had_stdin: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_done: bool,
    stderr_done: bool,
    /// Why reading stdout stopped, when it was not EOF.
    stdout_error: Option<String>,
    /// Why reading stderr stopped, when it was not EOF.
    stderr_error: Option<String>,
}

struct CaptureInner {
    state: Mutex<Captured>,
    changed: Notify,
    stdin: tokio::sync::Mutex<Option<StdinStream>>,
}

/// The streams of one process as a test sees them: its output collected into
/// buffers, and its stdin to write to and close. From [`capture_stdio`].
///
/// Output is "complete" when its stream reached EOF (the process and the
/// backend closed it).
#[derive(Clone)]
pub struct CapturedStdio {
    inner: Arc<CaptureInner>,
}

/// A [`StdioCallback`] that collects a process's stdout and stderr, and the
/// handle through which a test reads them and drives stdin.
///
/// ```
/// use libctd_core::DirectIo;
/// use libctd_testkit::capture_stdio;
/// use std::time::Duration;
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main] async fn main() {
/// let (callback, captured) = capture_stdio();
/// let (mut process_side, engine_side) = tokio::io::duplex(64);
/// let _attachment = callback(DirectIo::new(None, Some(Box::pin(engine_side)), None, false)).unwrap();
/// process_side.write_all(b"hello").await.unwrap();
/// drop(process_side);
/// let out = captured.wait_stdout(Duration::from_secs(5)).await.unwrap();
/// assert_eq!(out, b"hello");
/// # }
/// ```
pub fn capture_stdio() -> (StdioCallback, CapturedStdio) {
    let captured = CapturedStdio {
        inner: Arc::new(CaptureInner {
            state: Mutex::new(Captured::default()),
            changed: Notify::new(),
            stdin: tokio::sync::Mutex::new(None),
        }),
    };
    let inner = captured.inner.clone();
    let callback = stdio_callback(move |io: DirectIo| {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            Error::failed_precondition("capture_stdio needs a tokio runtime").with_source(e)
        })?;
        {
            let mut s = lock(&inner.state);
            s.attached = true;
            s.terminal = io.terminal;
            s.had_stdin = io.stdin.is_some();
            s.had_stdout = io.stdout.is_some();
            s.had_stderr = io.stderr.is_some();
            s.stdout_done = io.stdout.is_none();
            s.stderr_done = io.stderr.is_none();
        }
        if let Some(stdin) = io.stdin {
            match inner.stdin.try_lock() {
                Ok(mut slot) => *slot = Some(stdin),
                Err(_) => return Err(Error::failed_precondition("stdin is in use")),
            }
        }
        inner.changed.notify_waiters();
        let mut tasks = Vec::new();
        if let Some(out) = io.stdout {
            tasks.push(runtime.spawn(copy_into(inner.clone(), out, false)));
        }
        if let Some(err) = io.stderr {
            tasks.push(runtime.spawn(copy_into(inner.clone(), err, true)));
        }
        Ok(Box::new(tasks) as Box<dyn StdioAttachment>)
    });
    (callback, captured)
}

async fn copy_into(inner: Arc<CaptureInner>, mut stream: OutputStream, stderr: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = stream.read(&mut buf).await;
        let n = read.as_ref().map_or(0, |n| *n);
        {
            let mut s = lock(&inner.state);
            if n == 0 {
                if stderr {
                    s.stderr_done = true;
                } else {
                    s.stdout_done = true;
                }
                // A broken stream ends the output too, but is no EOF:
                // the waits report it instead of a truncated output.
                if let Err(e) = read {
                    let (name, slot) = if stderr {
                        ("stderr", &mut s.stderr_error)
                    } else {
                        ("stdout", &mut s.stdout_error)
                    };
                    *slot = Some(format!("reading {name} failed: {e}"));
                }
            } else if let Some(chunk) = buf.get(..n) {
                if stderr {
                    s.stderr.extend_from_slice(chunk);
                } else {
                    s.stdout.extend_from_slice(chunk);
                }
            }
        }
        inner.changed.notify_waiters();
        if n == 0 {
            return;
        }
    }
}

/// `System` with the read error of a stream that ended without EOF.
fn check_read(error: &Option<String>) -> Result<()> {
    match error {
        Some(e) => Err(Error::system(e.clone())),
        None => Ok(()),
    }
}

impl CapturedStdio {
    fn state(&self) -> MutexGuard<'_, Captured> {
        lock(&self.inner.state)
    }

    async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Captured) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_until(&self.inner.changed, deadline, || {
            check(&self.state()).then_some(())
        })
        .await
        .ok_or_else(|| {
            let s = self.state();
            Error::deadline_exceeded(format!(
                "{what} within {timeout:?}: attached {}, stdout {} bytes{}, stderr {} bytes{}; stdout starts {:?}",
                s.attached,
                s.stdout.len(),
                if s.stdout_done { " (EOF)" } else { "" },
                s.stderr.len(),
                if s.stderr_done { " (EOF)" } else { "" },
                String::from_utf8_lossy(s.stdout.get(..s.stdout.len().min(200)).unwrap_or_default()),
            ))
        })
    }

    /// Whether the callback was called.
    pub fn attached(&self) -> bool {
        self.state().attached
    }

    /// Whether the process runs on a terminal (as the callback was told).
    pub fn terminal(&self) -> bool {
        self.state().terminal
    }

    /// Whether the callback received a stdin stream.
    pub fn had_stdin(&self) -> bool {
        self.state().had_stdin
    }

    /// Whether the callback received a stdout stream.
    pub fn had_stdout(&self) -> bool {
        self.state().had_stdout
    }

    /// Whether the callback received a stderr stream.
    pub fn had_stderr(&self) -> bool {
        self.state().had_stderr
    }

    /// The stdout collected so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.state().stdout.clone()
    }

    /// The stderr collected so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.state().stderr.clone()
    }

    /// Waits until the callback was called.
    pub async fn wait_attached(&self, timeout: Duration) -> Result<()> {
        self.wait(timeout, "the stdio callback was not called", |s| s.attached)
            .await
    }

    /// Waits until stdout reached EOF, and returns all of it. `System` when
    /// reading it failed instead.
    pub async fn wait_stdout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.wait(timeout, "stdout did not reach EOF", |s| {
            s.attached && s.stdout_done
        })
        .await?;
        check_read(&self.state().stdout_error)?;
        Ok(self.stdout())
    }

    /// Waits until stderr reached EOF (or there is none), and returns all of
    /// it. `System` when reading it failed instead.
    pub async fn wait_stderr(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.wait(timeout, "stderr did not reach EOF", |s| {
            s.attached && s.stderr_done
        })
        .await?;
        check_read(&self.state().stderr_error)?;
        Ok(self.stderr())
    }

    /// Waits until stdout contains `needle`, and returns all of it so far.
    pub async fn wait_stdout_contains(&self, needle: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let what = format!("stdout did not show {:?}", String::from_utf8_lossy(needle));
        self.wait(timeout, &what, |s| {
            needle.is_empty() || s.stdout.windows(needle.len()).any(|w| w == needle)
        })
        .await?;
        Ok(self.stdout())
    }

    /// Writes `data` to the process's stdin. `FailedPrecondition` without a
    /// stdin stream (or after [`close_stdin`](Self::close_stdin)).
    pub async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        let mut slot = self.inner.stdin.lock().await;
        let Some(stdin) = slot.as_mut() else {
            return Err(Error::failed_precondition("the process has no open stdin"));
        };
        stdin
            .write_all(data)
            .await
            .map_err(|e| Error::system("cannot write stdin").with_source(e))?;
        stdin
            .flush()
            .await
            .map_err(|e| Error::system("cannot flush stdin").with_source(e))
    }

    /// Shuts the stdin stream down and drops it, so the process reads EOF.
    /// `FailedPrecondition` without a stdin stream.
    pub async fn close_stdin(&self) -> Result<()> {
        let mut slot = self.inner.stdin.lock().await;
        let Some(mut stdin) = slot.take() else {
            return Err(Error::failed_precondition("the process has no open stdin"));
        };
        stdin
            .shutdown()
            .await
            .map_err(|e| Error::system("cannot shut stdin down").with_source(e))
    }
}

impl fmt::Debug for CapturedStdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("CapturedStdio")
            .field("attached", &s.attached)
            .field("terminal", &s.terminal)
            .field("stdout", &s.stdout.len())
            .field("stderr", &s.stderr.len())
            .field("stdout_done", &s.stdout_done)
            .field("stderr_done", &s.stderr_done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(c: &str, p: &str) -> EventInfo {
        EventInfo::new(c, p)
    }

    #[tokio::test]
    async fn next_event_takes_each_event_once_in_order() {
        let b = RecordingBackend::new();
        for (i, p) in ["a", "b"].iter().enumerate() {
            let mut inf = info("c", p);
            inf.exit_code = i as u32;
            b.process_event("c", EventType::Exit, inf).await.unwrap();
        }
        let t = Duration::from_secs(1);
        assert_eq!(
            b.next_event("c", EventType::Exit, t)
                .await
                .unwrap()
                .process_id,
            "a"
        );
        assert_eq!(
            b.next_event("c", EventType::Exit, t)
                .await
                .unwrap()
                .process_id,
            "b"
        );
        let err = b
            .next_event("c", EventType::Exit, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::DeadlineExceeded);
        assert!(err.to_string().contains("c exit b"), "{err}");
    }

    #[tokio::test]
    async fn next_event_waits_for_a_later_event() {
        let b = Arc::new(RecordingBackend::new());
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                b.next_process_event("c", "e1", EventType::Start, Duration::from_secs(10))
                    .await
            })
        };
        b.process_event("c", EventType::Start, info("c", "other"))
            .await
            .unwrap();
        b.process_event("c", EventType::Start, info("c", "e1"))
            .await
            .unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.process_id, "e1");
    }

    #[tokio::test]
    async fn hold_blocks_one_container_only() {
        let b = Arc::new(RecordingBackend::new());
        let hold = b.hold("slow");
        let slow = {
            let b = b.clone();
            tokio::spawn(async move {
                b.process_event("slow", EventType::Exit, info("slow", "init"))
                    .await
            })
        };
        b.wait_blocked("slow", Duration::from_secs(10))
            .await
            .unwrap();
        b.process_event("fast", EventType::Exit, info("fast", "init"))
            .await
            .unwrap();
        assert!(b.events_of("slow").is_empty());
        assert_eq!(b.events_of("fast").len(), 1);
        hold.release();
        slow.await.unwrap().unwrap();
        assert_eq!(b.events_of("slow").len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_slows_one_container() {
        let b = Arc::new(RecordingBackend::new());
        b.delay("slow", Duration::from_secs(60));
        let slow = {
            let b = b.clone();
            tokio::spawn(async move {
                b.process_event("slow", EventType::Exit, info("slow", "init"))
                    .await
            })
        };
        b.process_event("fast", EventType::Exit, info("fast", "init"))
            .await
            .unwrap();
        assert!(b.events_of("slow").is_empty());
        // Paused time: the deadline is virtual, the delay elapses by auto-advance.
        b.next_event("slow", EventType::Exit, Duration::from_secs(120))
            .await
            .unwrap();
        slow.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn scripted_failure_still_records() {
        let b = RecordingBackend::new();
        b.fail("c", Some(EventType::Oom));
        assert!(
            b.process_event("c", EventType::Oom, info("c", "init"))
                .await
                .is_err()
        );
        assert!(
            b.process_event("c", EventType::Exit, info("c", "init"))
                .await
                .is_ok()
        );
        assert_eq!(b.event_types_of("c"), vec![EventType::Oom, EventType::Exit]);
    }

    #[tokio::test]
    async fn capture_collects_streams_and_drives_stdin() {
        let (cb, cap) = capture_stdio();
        let (mut out_w, out_r) = tokio::io::duplex(16);
        let (mut err_w, err_r) = tokio::io::duplex(16);
        let (in_w, mut in_r) = tokio::io::duplex(16);
        let mut attachment = cb(DirectIo::new(
            Some(Box::pin(in_w)),
            Some(Box::pin(out_r)),
            Some(Box::pin(err_r)),
            false,
        ))
        .unwrap();
        assert!(cap.attached() && cap.had_stdin() && cap.had_stderr());
        cap.write_stdin(b"ping").await.unwrap();
        cap.close_stdin().await.unwrap();
        let mut got = Vec::new();
        in_r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        assert_eq!(
            cap.write_stdin(b"x").await.unwrap_err().kind(),
            libctd_core::ErrorKind::FailedPrecondition
        );
        out_w.write_all(&[7u8; 1000]).await.unwrap();
        err_w.write_all(b"oops").await.unwrap();
        drop(out_w);
        drop(err_w);
        assert_eq!(
            cap.wait_stdout(Duration::from_secs(5)).await.unwrap(),
            vec![7u8; 1000]
        );
        assert_eq!(
            cap.wait_stderr(Duration::from_secs(5)).await.unwrap(),
            b"oops"
        );
        attachment.wait().await;
    }

    /// A stream that fails after some output.
    struct Broken(bool);

    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if std::mem::replace(&mut self.0, true) {
                std::task::Poll::Ready(Err(std::io::Error::other("pipe broke")))
            } else {
                buf.put_slice(b"partial");
                std::task::Poll::Ready(Ok(()))
            }
        }
    }

    #[tokio::test]
    async fn capture_reports_a_broken_stream_not_eof() {
        let (cb, cap) = capture_stdio();
        let _a = cb(DirectIo::new(
            None,
            Some(Box::pin(Broken(false))),
            None,
            false,
        ))
        .unwrap();
        let err = cap.wait_stdout(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::System);
        assert!(err.to_string().contains("pipe broke"), "{err}");
        assert_eq!(cap.stdout(), b"partial");
    }

    #[tokio::test]
    async fn capture_reports_missing_eof() {
        let (cb, cap) = capture_stdio();
        let (mut w, r) = tokio::io::duplex(16);
        let _a = cb(DirectIo::new(None, Some(Box::pin(r)), None, true)).unwrap();
        w.write_all(b"partial").await.unwrap();
        cap.wait_stdout_contains(b"partial", Duration::from_secs(5))
            .await
            .unwrap();
        let err = cap
            .wait_stdout(Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), libctd_core::ErrorKind::DeadlineExceeded);
        assert!(err.to_string().contains("partial"), "{err}");
        assert!(cap.terminal() && !cap.had_stderr());
    }
}
