//! Raw process streams handed to the engine.
//!
//! When a process is started (or restored), the backend creates its streams and
//! calls the engine's [`StdioCallback`] once with them, as a [`DirectIo`]. The
//! engine typically spawns tasks that copy the streams to its own log drivers
//! and returns a handle to them ([`StdioAttachment`]); the backend keeps that
//! handle and, when the process is deleted, waits (boundedly) for the copies to
//! finish so no output is lost, then cancels whatever is left.

use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use crate::error::Result;

/// A process's input stream, written by the engine.
pub type StdinStream = Pin<Box<dyn AsyncWrite + Send>>;
/// A process's output stream, read by the engine.
pub type OutputStream = Pin<Box<dyn AsyncRead + Send>>;

/// The raw streams of one process.
///
/// `stdin` is present only when the process was started `with_stdin`; shutting
/// it down (or dropping it) closes the process's standard input, exactly once.
/// `stderr` is absent for a process with a terminal, whose output all arrives
/// on `stdout`.
#[non_exhaustive]
pub struct DirectIo {
    /// The process's standard input, if requested.
    pub stdin: Option<StdinStream>,
    /// The process's standard output (the terminal's output when `terminal`).
    pub stdout: Option<OutputStream>,
    /// The process's standard error; `None` with a terminal.
    pub stderr: Option<OutputStream>,
    /// Whether the process runs on a terminal.
    pub terminal: bool,
}

impl DirectIo {
    /// A set of streams.
    pub fn new(
        stdin: Option<StdinStream>,
        stdout: Option<OutputStream>,
        stderr: Option<OutputStream>,
        terminal: bool,
    ) -> Self {
        Self {
            stdin,
            stdout,
            stderr,
            terminal,
        }
    }
}

impl std::fmt::Debug for DirectIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("terminal", &self.terminal)
            .finish()
    }
}

/// What the engine's stdio callback returns: a handle on the work it started
/// to consume the streams.
#[async_trait]
pub trait StdioAttachment: Send + Sync {
    /// Resolves once the engine has consumed all output (the copies ended).
    async fn wait(&mut self);
    /// Stops consuming at once.
    fn cancel(&mut self);
}

/// Nothing to wait for: the engine consumes the streams elsewhere.
#[async_trait]
impl StdioAttachment for () {
    async fn wait(&mut self) {}
    fn cancel(&mut self) {}
}

/// One copy task.
#[async_trait]
impl StdioAttachment for JoinHandle<()> {
    async fn wait(&mut self) {
        // A panicked or aborted copy has nothing more to deliver.
        let _ = self.await;
    }
    fn cancel(&mut self) {
        self.abort();
    }
}

/// Several copy tasks.
#[async_trait]
impl StdioAttachment for Vec<JoinHandle<()>> {
    async fn wait(&mut self) {
        for task in self.iter_mut() {
            let _ = task.await;
        }
    }
    fn cancel(&mut self) {
        for task in self.iter() {
            task.abort();
        }
    }
}

/// The engine's callback that receives a process's streams.
///
/// It is called at most once per process, before the process is started (or
/// when it is restored). An error from it aborts the operation.
///
/// ```
/// use libctd_core::{stdio_callback, DirectIo};
/// use tokio::io::AsyncReadExt;
///
/// let callback = stdio_callback(|io: DirectIo| {
///     let mut stdout = io.stdout;
///     let copy = tokio::spawn(async move {
///         if let Some(out) = stdout.as_mut() {
///             let mut text = String::new();
///             let _ = out.read_to_string(&mut text).await;
///             print!("{text}");
///         }
///     });
///     Ok(Box::new(copy))
/// });
/// # drop(callback);
/// ```
pub type StdioCallback =
    Box<dyn FnOnce(DirectIo) -> Result<Box<dyn StdioAttachment>> + Send + 'static>;

/// Boxes a closure into a [`StdioCallback`].
pub fn stdio_callback<F>(f: F) -> StdioCallback
where
    F: FnOnce(DirectIo) -> Result<Box<dyn StdioAttachment>> + Send + 'static,
{
    Box::new(f)
}

/// A callback that drops every stream: output is discarded, stdin closed.
pub fn discard_stdio() -> StdioCallback {
    stdio_callback(|io| {
        drop(io);
        Ok(Box::new(()))
    })
}
