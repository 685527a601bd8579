//! One error type for every operation of every backend.
//!
//! Callers branch on [`ErrorKind`], never on the message text. Each backend maps
//! its native failures (gRPC codes, HRESULTs, OS errors) into these kinds, and
//! records which container, process and operation the error concerns.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed error from outside libctd (an engine's handler, a transport, the OS).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The classification of an [`Error`], modelled on containerd's `errdefs`.
///
/// ```
/// use libctd_core::{Error, ErrorKind};
///
/// let err = Error::not_found("no such container").with_container("web");
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert!(err.is(ErrorKind::NotFound));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The container, task, process or exec does not exist.
    NotFound,
    /// The object already exists, or the operation conflicts with its state
    /// (for example starting a container twice).
    AlreadyExists,
    /// The caller passed something malformed: an id, a spec, a signal, a size.
    InvalidArgument,
    /// The object is not in a state that allows the operation (for example
    /// deleting the task of a running container).
    FailedPrecondition,
    /// The platform or backend does not implement the operation.
    NotImplemented,
    /// The daemon or system service cannot be reached or is not installed.
    Unavailable,
    /// The operation was cancelled.
    Cancelled,
    /// The operation did not finish before its deadline.
    DeadlineExceeded,
    /// The caller lacks the privileges the operation needs.
    PermissionDenied,
    /// The operating system or the runtime failed (a system call, the shim, HCS).
    System,
    /// Anything that could not be classified.
    Unknown,
}

impl ErrorKind {
    /// The kind's stable lower-case name, as used in messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::System => "system error",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every libctd operation.
///
/// It carries a [`kind`](Error::kind) to branch on, the container, process and
/// operation it concerns, a message, and optionally the underlying cause
/// (available through [`std::error::Error::source`]). `Error` is cheap to clone:
/// the cause is shared.
///
/// Its `Display` names the operation and the objects, then the message:
///
/// ```
/// use libctd_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::FailedPrecondition, "task is still running")
///     .with_operation("delete_task")
///     .with_container("web");
/// assert_eq!(err.to_string(), "delete_task container web: task is still running");
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    operation: Option<&'static str>,
    container_id: Option<String>,
    process_id: Option<String>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

macro_rules! kind_constructors {
    ($($(#[$doc:meta])* $name:ident => $kind:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Self {
                Self::new(ErrorKind::$kind, message)
            }
        )*
    };
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            operation: None,
            container_id: None,
            process_id: None,
            source: None,
        }
    }

    kind_constructors! {
        /// A [`ErrorKind::NotFound`] error.
        not_found => NotFound,
        /// An [`ErrorKind::AlreadyExists`] error.
        already_exists => AlreadyExists,
        /// An [`ErrorKind::InvalidArgument`] error.
        invalid_argument => InvalidArgument,
        /// A [`ErrorKind::FailedPrecondition`] error.
        failed_precondition => FailedPrecondition,
        /// A [`ErrorKind::NotImplemented`] error.
        not_implemented => NotImplemented,
        /// An [`ErrorKind::Unavailable`] error.
        unavailable => Unavailable,
        /// A [`ErrorKind::Cancelled`] error.
        cancelled => Cancelled,
        /// A [`ErrorKind::DeadlineExceeded`] error.
        deadline_exceeded => DeadlineExceeded,
        /// A [`ErrorKind::PermissionDenied`] error.
        permission_denied => PermissionDenied,
        /// A [`ErrorKind::System`] error.
        system => System,
        /// An [`ErrorKind::Unknown`] error.
        unknown => Unknown,
    }

    /// Records the operation (`"start"`, `"exec"`, ...) the error happened in,
    /// unless one is recorded already (the innermost operation wins).
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation.get_or_insert(operation);
        self
    }

    /// Records the container the error concerns, unless one is recorded already.
    pub fn with_container(mut self, container_id: impl Into<String>) -> Self {
        if self.container_id.is_none() {
            self.container_id = Some(container_id.into());
        }
        self
    }

    /// Records the process the error concerns, unless one is recorded already.
    pub fn with_process(mut self, process_id: impl Into<String>) -> Self {
        if self.process_id.is_none() {
            self.process_id = Some(process_id.into());
        }
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// Replaces the message, keeping kind, context and cause.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The classification to branch on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the error is of `kind`.
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// The message, without the operation and object prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operation the error happened in, if recorded.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// The container the error concerns, if recorded.
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    /// The process the error concerns, if recorded.
    pub fn process_id(&self) -> Option<&str> {
        self.process_id.as_deref()
    }

    /// A `Display` of the error followed by each of its causes, separated by `": "`.
    ///
    /// ```
    /// use libctd_core::Error;
    ///
    /// let io = std::io::Error::other("disk on fire");
    /// let err = Error::system("cannot create fifo").with_source(io);
    /// assert_eq!(err.report().to_string(), "cannot create fifo: disk on fire");
    /// ```
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "<operation> container <c> process <p>: ", each part only if known.
        let mut sep = "";
        if let Some(op) = self.operation {
            f.write_str(op)?;
            sep = " ";
        }
        if let Some(c) = &self.container_id {
            write!(f, "{sep}container {c}")?;
            sep = " ";
        }
        if let Some(p) = &self.process_id {
            write!(f, "{sep}process {p}")?;
            sep = " ";
        }
        if !sep.is_empty() {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(op) = self.operation {
            d.field("operation", &op);
        }
        if let Some(c) = &self.container_id {
            d.field("container_id", c);
        }
        if let Some(p) = &self.process_id {
            d.field("process_id", p);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// The whole causal chain of an [`Error`], from [`Error::report`].
pub struct Report<'a>(&'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = StdError::source(self.0);
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The result of libctd operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to the error of a `Result` in one call.
///
/// ```
/// use libctd_core::{Error, ErrorContext, Result};
///
/// fn pause() -> Result<()> {
///     Err(Error::not_found("no such container"))
/// }
/// let err = pause().context("pause", "web").unwrap_err();
/// assert_eq!(err.to_string(), "pause container web: no such container");
/// ```
pub trait ErrorContext<T> {
    /// Records the operation and container on the error, if there is one.
    fn context(self, operation: &'static str, container_id: &str) -> Result<T>;
}

impl<T> ErrorContext<T> for Result<T> {
    fn context(self, operation: &'static str, container_id: &str) -> Result<T> {
        self.map_err(|e| e.with_operation(operation).with_container(container_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_container_and_process() {
        let e = Error::not_found("no such exec")
            .with_operation("signal_process")
            .with_container("c1")
            .with_process("e1");
        assert_eq!(
            e.to_string(),
            "signal_process container c1 process e1: no such exec"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.container_id(), Some("c1"));
        assert_eq!(e.process_id(), Some("e1"));
        assert_eq!(e.operation(), Some("signal_process"));
    }

    #[test]
    fn bare_message_without_context() {
        assert_eq!(Error::unknown("boom").to_string(), "boom");
    }

    #[test]
    fn partial_context() {
        let e = Error::unknown("boom");
        assert_eq!(e.clone().with_process("e1").to_string(), "process e1: boom");
        assert_eq!(
            e.clone().with_container("c").with_process("e1").to_string(),
            "container c process e1: boom"
        );
        assert_eq!(e.with_operation("exec").to_string(), "exec: boom");
    }

    #[test]
    fn innermost_context_wins() {
        let e = Error::system("x")
            .with_operation("inner")
            .with_container("a")
            .with_operation("outer")
            .with_container("b");
        assert_eq!(e.operation(), Some("inner"));
        assert_eq!(e.container_id(), Some("a"));
    }

    #[test]
    fn source_chain_and_report() {
        let inner = Error::system("inner").with_source(std::io::Error::other("os"));
        let outer = Error::unknown("outer").with_source(inner);
        assert_eq!(outer.report().to_string(), "outer: inner: os");
        assert!(StdError::source(&outer).is_some());
        let cloned = outer.clone();
        assert_eq!(cloned.report().to_string(), "outer: inner: os");
    }

    #[test]
    fn kinds_have_distinct_names() {
        let kinds = [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::InvalidArgument,
            ErrorKind::FailedPrecondition,
            ErrorKind::NotImplemented,
            ErrorKind::Unavailable,
            ErrorKind::Cancelled,
            ErrorKind::DeadlineExceeded,
            ErrorKind::PermissionDenied,
            ErrorKind::System,
            ErrorKind::Unknown,
        ];
        let names: std::collections::HashSet<_> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), kinds.len());
    }
}
