//! What is kept of an init process's exit.

use prost_types::Timestamp;

/// Why an init's exit status could not be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// Its shim was gone when containerd restarted.
    ShimDied,
    /// It exited while containerd restarted, after its shim was last asked,
    /// and containerd dropped its task before it could be asked again.
    Escaped,
}

impl Lost {
    /// What happened, for the error delivered with the exit.
    pub(crate) fn why(self) -> &'static str {
        match self {
            Lost::ShimDied => "its shim died while containerd was down",
            Lost::Escaped => {
                "it exited while containerd restarted, and containerd removed its task before its status could be read"
            }
        }
    }

    pub(super) fn code(self) -> &'static str {
        match self {
            Lost::ShimDied => "shim-died",
            Lost::Escaped => "escaped",
        }
    }

    pub(super) fn from_code(code: &str) -> Option<Self> {
        [Lost::ShimDied, Lost::Escaped]
            .into_iter()
            .find(|l| l.code() == code)
    }
}

/// How an init process ended, as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeptStatus {
    /// With this exit status, as its shim reported it.
    Exited(u32),
    /// Its status is unknown.
    Lost(Lost),
}

/// The exit of an init process, as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShimExit {
    pub pid: u32,
    pub status: KeptStatus,
    pub exited_at: Option<Timestamp>,
}

/// A lost exit of process `pid`, noticed now.
pub(super) fn lost(pid: u32, why: Lost) -> ShimExit {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ShimExit {
        pid,
        status: KeptStatus::Lost(why),
        exited_at: Some(Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
        }),
    }
}
