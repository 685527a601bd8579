//! containerd-style FIFO stdio sets:
//! `<namespace dir>/<container>@<process>-{stdin,stdout,stderr}`.
//!
//! The FIFOs of a namespace share one directory, so a lifecycle costs no
//! mkdir and rmdir (on ext4 a directory's inode allocation was a tenth of
//! the client's CPU per lifecycle). `@` cannot occur in a container id, so
//! the first one ends it and no two processes' names meet.
//!
//! The read ends of stdout and stderr are opened before the task is created
//! (containerd's shim blocks until they are), stdin is opened read-write so the
//! open never blocks, and closing the engine's stdin stream asks for exactly
//! one `CloseIO` once the process exists.
//!
//! Just over 600 lines, a third of them tests: the deferred output streams
//! share `Output` and its drain with the open ones.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use libctd_core::{DirectIo, Error, OutputStream, StdinStream};
use nix::sys::stat::Mode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

/// The FIFO paths of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FifoSet {
    /// Standard input, when requested.
    pub stdin: Option<PathBuf>,
    /// Standard output (always).
    pub stdout: Option<PathBuf>,
    /// Standard error, absent with a terminal.
    pub stderr: Option<PathBuf>,
    /// Whether the process has a terminal.
    pub terminal: bool,
}

impl FifoSet {
    /// The set for `process_id` of `container_id` in `dir`: stdout always,
    /// stdin only `with_stdin`, stderr only without a terminal.
    pub(crate) fn new(
        dir: &Path,
        container_id: &str,
        process_id: &str,
        with_stdin: bool,
        terminal: bool,
    ) -> Self {
        let path = |stream: &str| dir.join(format!("{container_id}@{process_id}-{stream}"));
        Self {
            stdin: with_stdin.then(|| path("stdin")),
            stdout: Some(path("stdout")),
            stderr: (!terminal).then(|| path("stderr")),
            terminal,
        }
    }

    /// No stdio at all: containerd gives the process `/dev/null`.
    pub(crate) fn null() -> Self {
        Self {
            stdin: None,
            stdout: None,
            stderr: None,
            terminal: false,
        }
    }

    /// A set of recorded paths (empty strings mean "none").
    pub(crate) fn from_paths(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Self {
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        Self {
            stdin: path(stdin),
            stdout: path(stdout),
            stderr: path(stderr),
            terminal,
        }
    }

    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.stdin, &self.stdout, &self.stderr]
            .into_iter()
            .flatten()
    }

    /// The path of a stream as containerd wants it ("" for none).
    pub(crate) fn wire(path: &Option<PathBuf>) -> String {
        path.as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Creates the directory and the FIFOs (mode 0700); an existing FIFO is reused.
    pub(crate) fn create(&self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::system(format!(
                "cannot create the stdio directory {}",
                dir.display()
            ))
            .with_source(e)
        })?;
        for path in self.paths() {
            match nix::unistd::mkfifo(path, Mode::S_IRWXU) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => {
                    return Err(Error::system(format!(
                        "cannot create the fifo {}",
                        path.display()
                    ))
                    .with_source(e));
                }
            }
        }
        Ok(())
    }

    /// Opens the engine's ends. `on_stdin_close` fires (once) when the engine
    /// shuts down or drops stdin. Paths that no longer exist give no stream.
    /// The returned slot lets the client close stdin itself.
    pub(crate) fn open(
        &self,
        on_stdin_close: oneshot::Sender<StdinClosed>,
    ) -> Result<(DirectIo, Option<StdinSlot>, DrainFlag), Error> {
        let mut slot = None;
        let stdin: Option<StdinStream> = match &self.stdin {
            Some(p) if p.exists() => {
                let sender = pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(p)
                    .map_err(|e| open_error(p, e))?;
                let shared = Arc::new(Mutex::new(StdinState {
                    sender: Some(sender),
                    on_close: Some(on_stdin_close),
                }));
                slot = Some(shared.clone());
                Some(Box::pin(Stdin { slot: shared }))
            }
            _ => None,
        };
        let drain: DrainFlag = Arc::new(AtomicBool::new(true));
        let receiver = |path: &Option<PathBuf>| -> Result<Option<OutputStream>, Error> {
            match path {
                Some(p) if p.exists() => {
                    let r = open_receiver(p)?;
                    Ok(Some(Box::pin(Output {
                        source: Source::Open(r),
                        eof: false,
                        drain: drain.clone(),
                    }) as OutputStream))
                }
                _ => Ok(None),
            }
        };
        let stdout = receiver(&self.stdout)?;
        let stderr = receiver(&self.stderr)?;
        Ok((
            DirectIo::new(stdin, stdout, stderr, self.terminal),
            slot,
            drain,
        ))
    }

    /// Removes whatever FIFOs of `container_id` are left in `dir` (those of
    /// processes a crashed client never removed).
    pub(crate) fn remove_leftovers(dir: &Path, container_id: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let prefix = format!("{container_id}@");
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a fifo");
                }
            }
        }
    }

    /// Removes the FIFOs (missing ones are fine).
    pub(crate) fn remove(&self) {
        for path in self.paths() {
            if let Err(e) = std::fs::remove_file(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a fifo");
            }
        }
    }
}

/// The engine's end of an output FIFO. Dropped before EOF, it keeps
/// draining the FIFO in the background, so the shim can open its end and the
/// process never blocks on output nobody reads.
struct Output {
    source: Source,
    eof: bool,
    drain: DrainFlag,
}

/// Where an output stream reads from.
enum Source {
    Open(pipe::Receiver),
    /// Its FIFO is made only once the engine's callback kept a stream.
    Deferred(Arc<Mutex<Deferred>>),
    /// At its end (its FIFO could not be made).
    Closed,
}

/// An output stream whose FIFO is not open yet.
#[derive(Default)]
struct Deferred {
    receiver: Option<pipe::Receiver>,
    waker: Option<Waker>,
    /// The engine dropped the stream before its FIFO was open.
    dropped: bool,
    /// No receiver is coming (the FIFO could not be made).
    failed: bool,
}

/// Whether a process's dropped output streams are drained (cleared when the
/// process is re-attached elsewhere, whose streams must get the output).
pub(crate) type DrainFlag = Arc<AtomicBool>;

/// The read end of the FIFO at `path` (it must exist).
fn open_receiver(path: &Path) -> Result<pipe::Receiver, Error> {
    pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: io::Error) -> Error {
    Error::system(format!("cannot open the fifo {}", path.display())).with_source(e)
}

/// Drains `r` unless the process was let go (`flag` cleared).
fn dropped(flag: &DrainFlag, r: pipe::Receiver) {
    if flag.load(Ordering::SeqCst) {
        drain(r);
    }
}

/// Reads `r` to its end on a task of its own (nothing if outside a runtime).
fn drain(mut r: pipe::Receiver) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut r, &mut sink).await;
        });
    }
}

impl Output {
    /// Resolves a deferred source: `false` while its FIFO is not open yet
    /// (the waker is kept and woken once it is).
    fn resolve(&mut self, cx: &Context<'_>) -> bool {
        let Source::Deferred(slot) = &self.source else {
            return true;
        };
        let mut d = crate::sync::lock(slot);
        let next = match d.receiver.take() {
            Some(r) => Source::Open(r),
            None if d.failed => Source::Closed,
            None => {
                d.waker = Some(cx.waker().clone());
                return false;
            }
        };
        drop(d);
        self.source = next;
        true
    }
}

impl AsyncRead for Output {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.resolve(cx) {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let Source::Open(r) = &mut self.source else {
            return Poll::Ready(Ok(()));
        };
        let res = Pin::new(r).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.eof = true;
        }
        res
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if self.eof {
            return;
        }
        match std::mem::replace(&mut self.source, Source::Closed) {
            Source::Open(r) => dropped(&self.drain, r),
            Source::Deferred(slot) => {
                let mut d = crate::sync::lock(&slot);
                match d.receiver.take() {
                    Some(r) => dropped(&self.drain, r),
                    None => d.dropped = true,
                }
            }
            Source::Closed => {}
        }
    }
}

/// The output streams of a new process with neither stdin nor terminal,
/// handed to the engine before their FIFOs exist: should the engine drop
/// them all, no FIFO is ever made and containerd gives the process
/// `/dev/null` (containerd's shim takes every stdio path or none).
pub(crate) struct DeferredOutputs {
    slots: Vec<(PathBuf, Arc<Mutex<Deferred>>)>,
}

impl FifoSet {
    /// The engine's streams, before any FIFO is made, of a set with neither
    /// stdin nor terminal (`None` for others: those need their FIFOs);
    /// [`DeferredOutputs::settle`] makes what they need.
    pub(crate) fn defer(&self) -> Option<(DirectIo, DrainFlag, DeferredOutputs)> {
        if self.stdin.is_some() || self.terminal {
            return None;
        }
        let drain: DrainFlag = Arc::new(AtomicBool::new(true));
        let mut slots = Vec::new();
        let mut stream = |path: &Option<PathBuf>| -> Option<OutputStream> {
            let path = path.clone()?;
            let slot = Arc::new(Mutex::new(Deferred::default()));
            slots.push((path, slot.clone()));
            Some(Box::pin(Output {
                source: Source::Deferred(slot),
                eof: false,
                drain: drain.clone(),
            }))
        };
        let stdout = stream(&self.stdout);
        let stderr = stream(&self.stderr);
        let io = DirectIo::new(None, stdout, stderr, false);
        Some((io, drain, DeferredOutputs { slots }))
    }
}

impl DeferredOutputs {
    /// After the engine's callback: with every stream dropped, the null set
    /// (no FIFO made); otherwise makes `fifos` in `dir`, opens the kept
    /// streams' ends and drains the dropped ones'. The set containerd is to
    /// be given.
    pub(crate) fn settle(self, fifos: &FifoSet, dir: &Path) -> Result<FifoSet, Error> {
        let all_dropped = self
            .slots
            .iter()
            .all(|(_, slot)| crate::sync::lock(slot).dropped);
        if all_dropped {
            return Ok(FifoSet::null());
        }
        let opened = fifos.create(dir).and_then(|()| {
            self.slots
                .iter()
                .map(|(path, _)| open_receiver(path))
                .collect::<Result<Vec<_>, Error>>()
        });
        let receivers = match opened {
            Ok(r) => r,
            Err(e) => {
                for (_, slot) in &self.slots {
                    let mut d = crate::sync::lock(slot);
                    d.failed = true;
                    if let Some(w) = d.waker.take() {
                        w.wake();
                    }
                }
                fifos.remove();
                return Err(e);
            }
        };
        for ((_, slot), r) in self.slots.iter().zip(receivers) {
            let mut d = crate::sync::lock(slot);
            if d.dropped {
                drop(d);
                drain(r);
                continue;
            }
            d.receiver = Some(r);
            if let Some(w) = d.waker.take() {
                w.wake();
            }
        }
        Ok(fifos.clone())
    }
}

pub(crate) type StdinSlot = Arc<Mutex<StdinState>>;

/// The write end and the close notification.
pub(crate) struct StdinState {
    sender: Option<pipe::Sender>,
    on_close: Option<oneshot::Sender<StdinClosed>>,
}

/// The engine closed stdin. The write end travels with the notification:
/// the client drops it only once the process started, because a FIFO whose
/// last descriptor closes before the shim opened it loses what was written.
pub(crate) struct StdinClosed(#[allow(dead_code)] Option<pipe::Sender>);

impl StdinState {
    /// Closed by the engine: hand the fd over with the notification (once).
    fn close_by_engine(&mut self) {
        let sender = self.sender.take();
        if let Some(tx) = self.on_close.take() {
            let _ = tx.send(StdinClosed(sender));
        }
    }

    /// Closed by the client, which sends CloseIO itself: no notification.
    pub(crate) fn close_by_client(&mut self) {
        self.sender = None;
        self.on_close = None;
    }
}

/// Locks a stdin slot.
pub(crate) fn lock(slot: &StdinSlot) -> std::sync::MutexGuard<'_, StdinState> {
    crate::sync::lock(slot)
}

/// The engine's stdin: writes go to the FIFO; shutdown or drop closes it and
/// fires the close notification once.
struct Stdin {
    slot: StdinSlot,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "stdin is closed")
}

impl AsyncWrite for Stdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = lock(&self.slot);
        match st.sender.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.slot);
        match st.sender.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.slot).close_by_engine();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        lock(&self.slot).close_by_engine();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn layout_follows_stdin_and_terminal() {
        let dir = Path::new("/x");
        let s = FifoSet::new(dir, "web", "init", false, false);
        assert_eq!(s.stdin, None);
        assert_eq!(s.stdout, Some(PathBuf::from("/x/web@init-stdout")));
        assert_eq!(s.stderr, Some(PathBuf::from("/x/web@init-stderr")));
        let t = FifoSet::new(dir, "web", "e1", true, true);
        assert_eq!(t.stdin, Some(PathBuf::from("/x/web@e1-stdin")));
        assert_eq!(t.stderr, None);
        assert!(t.terminal);
        // Container "a-b" process "c" and container "a" process "b-c" differ.
        let one = FifoSet::new(dir, "a-b", "c", false, false);
        let two = FifoSet::new(dir, "a", "b-c", false, false);
        assert_ne!(one.stdout, two.stdout);
    }

    #[test]
    fn leftovers_of_one_container_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mine = FifoSet::new(dir.path(), "a", "init", true, false);
        let other = FifoSet::new(dir.path(), "ab", "init", false, false);
        mine.create(dir.path()).unwrap();
        other.create(dir.path()).unwrap();
        FifoSet::remove_leftovers(dir.path(), "a");
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|n| n.starts_with("ab@")), "{left:?}");
    }

    #[tokio::test]
    async fn data_flows_and_stdin_close_fires_once() {
        let dir = tempfile::tempdir().unwrap();
        let set = FifoSet::new(dir.path(), "c", "p", true, false);
        set.create(dir.path()).unwrap();
        set.create(dir.path()).unwrap(); // idempotent
        let (tx, rx) = oneshot::channel();
        let (io, slot, _drain) = set.open(tx).unwrap();
        assert!(slot.is_some());
        let mut stdin = io.stdin.unwrap();
        // Play the shim: read stdin, write stdout.
        let mut shim_in = pipe::OpenOptions::new()
            .open_receiver(set.stdin.as_ref().unwrap())
            .unwrap();
        let mut shim_out = pipe::OpenOptions::new()
            .open_sender(set.stdout.as_ref().unwrap())
            .unwrap();
        stdin.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        shim_in.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        shim_out.write_all(b"pong").await.unwrap();
        drop(shim_out);
        let mut out = String::new();
        io.stdout.unwrap().read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "pong");
        stdin.shutdown().await.unwrap();
        let closed = rx.await.unwrap();
        assert!(closed.0.is_some());
        drop(closed);
        assert!(stdin.write_all(b"x").await.is_err());
        set.remove();
        assert!(!set.stdout.as_ref().unwrap().exists());
    }

    #[tokio::test]
    async fn deferred_outputs_all_dropped_make_no_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let set = FifoSet::new(dir.path(), "c", "init", false, false);
        let (io, _drain, deferred) = set.defer().unwrap();
        drop(io);
        assert_eq!(deferred.settle(&set, dir.path()).unwrap(), FifoSet::null());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Stdin and terminals need their FIFOs from the start.
        assert!(
            FifoSet::new(dir.path(), "c", "init", true, false)
                .defer()
                .is_none()
        );
        assert!(
            FifoSet::new(dir.path(), "c", "init", false, true)
                .defer()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_kept_deferred_output_reads_once_its_fifo_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let set = FifoSet::new(dir.path(), "c", "init", false, false);
        let (mut io, _drain, deferred) = set.defer().unwrap();
        let mut stdout = io.stdout.take().unwrap();
        drop(io); // stderr dropped: drained
        // A read that starts before the FIFO exists waits for it.
        let reader = tokio::spawn(async move {
            let mut out = String::new();
            stdout.read_to_string(&mut out).await.map(|_| out)
        });
        let settled = deferred.settle(&set, dir.path()).unwrap();
        assert_eq!(settled, set);
        let mut shim_out = pipe::OpenOptions::new()
            .open_sender(set.stdout.as_ref().unwrap())
            .unwrap();
        let mut shim_err = pipe::OpenOptions::new()
            .open_sender(set.stderr.as_ref().unwrap())
            .unwrap();
        // More than a pipe holds on the dropped stream: someone reads it.
        shim_err.write_all(&vec![b'x'; 256 * 1024]).await.unwrap();
        shim_out.write_all(b"kept").await.unwrap();
        drop((shim_out, shim_err));
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(out, "kept");
        set.remove();
    }

    #[tokio::test]
    async fn deferred_outputs_end_when_their_fifo_cannot_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let set = FifoSet::new(&not_a_dir, "c", "init", false, false);
        let (mut io, _drain, deferred) = set.defer().unwrap();
        let mut stdout = io.stdout.take().unwrap();
        let e = deferred.settle(&set, &not_a_dir).unwrap_err();
        assert_eq!(e.kind(), libctd_core::ErrorKind::System);
        let mut out = Vec::new();
        assert_eq!(stdout.read_to_end(&mut out).await.unwrap(), 0, "at its end");
    }
}
