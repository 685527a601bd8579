//! Events delivered to the engine's [`Backend`](crate::Backend).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Error;

/// What happened to a container or one of its processes.
///
/// `Display` and `FromStr` use exactly the strings below and round-trip.
///
/// ```
/// use libctd_core::EventType;
///
/// assert_eq!(EventType::ExecAdded.to_string(), "exec-added");
/// assert_eq!("oom".parse::<EventType>().unwrap(), EventType::Oom);
/// ```
///
/// New kinds may be added: a `match` needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// `unknown`: an event libctd could not classify.
    Unknown,
    /// `exit`: a process exited.
    Exit,
    /// `oom`: the container hit its memory limit and a process was killed.
    Oom,
    /// `create`: the container's task was created.
    Create,
    /// `start`: the init process started.
    Start,
    /// `exec-added`: an exec process was added.
    ExecAdded,
    /// `exec-started`: an exec process started.
    ExecStarted,
    /// `paused`: the task was frozen.
    Paused,
    /// `resumed`: the task was thawed.
    Resumed,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 9] = [
        EventType::Unknown,
        EventType::Exit,
        EventType::Oom,
        EventType::Create,
        EventType::Start,
        EventType::ExecAdded,
        EventType::ExecStarted,
        EventType::Paused,
        EventType::Resumed,
    ];

    /// The event type's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Unknown => "unknown",
            EventType::Exit => "exit",
            EventType::Oom => "oom",
            EventType::Create => "create",
            EventType::Start => "start",
            EventType::ExecAdded => "exec-added",
            EventType::ExecStarted => "exec-started",
            EventType::Paused => "paused",
            EventType::Resumed => "resumed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| Error::invalid_argument(format!("unknown event type {s:?}")))
    }
}

/// The details of an event.
///
/// Backends, fakes and engines' tests make one with [`EventInfo::new`] and
/// the `with_*` setters; its fields are public to read (and to change). New
/// fields may be added, so it cannot be written as a struct literal outside
/// this crate.
///
/// ```
/// use libctd_core::{EventInfo, INIT_PROCESS_ID};
///
/// let info = EventInfo::new("web", INIT_PROCESS_ID)
///     .with_pid(4242)
///     .with_exit_code(137)
///     .with_oom_killed(true);
/// assert_eq!(info.exit_status(), Some(137));
/// assert!(info.error.is_none());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EventInfo {
    /// The container the event concerns.
    pub container_id: String,
    /// The process: [`INIT_PROCESS_ID`](crate::INIT_PROCESS_ID) for the init
    /// process, else the exec id.
    pub process_id: String,
    /// The process's pid, where known (0 otherwise).
    pub pid: u32,
    /// The exit code of an `exit` event. 4294967295 (`u32` of -1) when the
    /// backend could not obtain it (see `error`).
    pub exit_code: u32,
    /// When the process exited, for `exit` events.
    pub exited_at: Option<SystemTime>,
    /// Whether the container was killed for lack of memory (set on `oom` and on
    /// every following event of the container until it is started again).
    pub oom_killed: bool,
    /// Windows: the container exited cleanly and Windows updates are pending.
    /// Only a host that answers HCS's `PendingUpdates` query can set it;
    /// hosts since Windows Server 2019 (HCS v2) refuse that query, so there
    /// it is always false.
    pub update_pending: bool,
    /// A system failure met while reaping the process (Windows), shared so the
    /// event stays cheap to clone.
    pub error: Option<Arc<Error>>,
}

/// The exit code of a process whose real exit status could not be obtained
/// (`u32` of -1, as Moby reports it); [`EventInfo::error`] then says why.
pub const UNKNOWN_EXIT_CODE: u32 = u32::MAX;

impl EventInfo {
    /// The details of an event of `process_id` in `container_id`, every
    /// other field at its default (pid 0, exit code 0, no error).
    pub fn new(container_id: impl Into<String>, process_id: impl Into<String>) -> Self {
        Self {
            container_id: container_id.into(),
            process_id: process_id.into(),
            ..Self::default()
        }
    }

    /// Sets the pid.
    #[must_use]
    pub fn with_pid(mut self, pid: u32) -> Self {
        self.pid = pid;
        self
    }

    /// Sets the exit code ([`UNKNOWN_EXIT_CODE`] when it could not be
    /// obtained).
    #[must_use]
    pub fn with_exit_code(mut self, exit_code: u32) -> Self {
        self.exit_code = exit_code;
        self
    }

    /// Sets when the process exited.
    #[must_use]
    pub fn with_exited_at(mut self, exited_at: Option<SystemTime>) -> Self {
        self.exited_at = exited_at;
        self
    }

    /// Sets whether the container was OOM-killed.
    #[must_use]
    pub fn with_oom_killed(mut self, oom_killed: bool) -> Self {
        self.oom_killed = oom_killed;
        self
    }

    /// Sets whether Windows updates are pending.
    #[must_use]
    pub fn with_update_pending(mut self, update_pending: bool) -> Self {
        self.update_pending = update_pending;
        self
    }

    /// Sets the system failure met while reaping the process.
    #[must_use]
    pub fn with_error(mut self, error: Option<Arc<Error>>) -> Self {
        self.error = error;
        self
    }

    /// The exit code of an `exit` event, or `None` when the backend could not
    /// obtain it ([`UNKNOWN_EXIT_CODE`]; `error` says why).
    ///
    /// ```
    /// use libctd_core::{EventInfo, UNKNOWN_EXIT_CODE};
    /// let known = EventInfo::new("web", "init").with_exit_code(137);
    /// assert_eq!(known.exit_status(), Some(137));
    /// let lost = EventInfo::new("web", "init").with_exit_code(UNKNOWN_EXIT_CODE);
    /// assert_eq!(lost.exit_status(), None);
    /// ```
    pub fn exit_status(&self) -> Option<u32> {
        (self.exit_code != UNKNOWN_EXIT_CODE).then_some(self.exit_code)
    }

    /// The process's pid, or `None` where it is not known (pid 0).
    pub fn pid(&self) -> Option<u32> {
        (self.pid != 0).then_some(self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exact_strings() {
        let names = [
            "unknown",
            "exit",
            "oom",
            "create",
            "start",
            "exec-added",
            "exec-started",
            "paused",
            "resumed",
        ];
        for (ev, name) in EventType::ALL.into_iter().zip(names) {
            assert_eq!(ev.to_string(), name);
            assert_eq!(name.parse::<EventType>().unwrap(), ev);
        }
    }

    #[test]
    fn rejects_other_strings() {
        for s in ["", "Exit", "exec_added", "died"] {
            assert!(s.parse::<EventType>().is_err(), "{s}");
        }
    }

    #[test]
    fn error_is_shared_between_clones() {
        let info = EventInfo {
            error: Some(Arc::new(Error::system(
                "The compute system exited unexpectedly.",
            ))),
            ..EventInfo::default()
        };
        let copy = info.clone();
        assert!(Arc::ptr_eq(
            info.error.as_ref().unwrap(),
            copy.error.as_ref().unwrap()
        ));
    }
}
