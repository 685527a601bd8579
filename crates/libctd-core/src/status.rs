//! The status of a container's task.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The state of a container's init process, as the backend reports it.
///
/// `Display` and `FromStr` use exactly the strings below and round-trip.
///
/// ```
/// use libctd_core::Status;
///
/// let s: Status = "paused".parse().unwrap();
/// assert_eq!(s, Status::Paused);
/// assert_eq!(s.to_string(), "paused");
/// assert!("sleeping".parse::<Status>().is_err());
/// ```
///
/// New states may be added: a `match` needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// `running`: the init process runs.
    Running,
    /// `created`: the task exists but was not started.
    Created,
    /// `stopped`: the init process exited.
    Stopped,
    /// `paused`: the task is frozen.
    Paused,
    /// `pausing`: the task is being frozen.
    Pausing,
    /// `unknown`: the backend cannot tell.
    Unknown,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 6] = [
        Status::Running,
        Status::Created,
        Status::Stopped,
        Status::Paused,
        Status::Pausing,
        Status::Unknown,
    ];

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Created => "created",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
            Status::Pausing => "pausing",
            Status::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid_argument(format!("unknown status {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exact_strings() {
        let names = [
            "running", "created", "stopped", "paused", "pausing", "unknown",
        ];
        for (st, name) in Status::ALL.into_iter().zip(names) {
            assert_eq!(st.to_string(), name);
            assert_eq!(name.parse::<Status>().unwrap(), st);
        }
    }

    #[test]
    fn rejects_other_strings() {
        for s in ["", "Running", " running", "exited"] {
            let err = s.parse::<Status>().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        }
    }
}
