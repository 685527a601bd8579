//! What is kept of an init process's exit.

use prost_types::Timestamp;
use serde::{Deserialize, Serialize};

/// Why an init's exit status could not be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
}

/// How an init process ended, as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum KeptStatus {
    /// With this exit status, as its shim reported it.
    Exited(u32),
    /// Its status is unknown.
    Lost(Lost),
}

impl KeptStatus {
    /// The exit code to report: [`UNKNOWN_EXIT_CODE`] when it is lost.
    ///
    /// [`UNKNOWN_EXIT_CODE`]: libctd_core::UNKNOWN_EXIT_CODE
    pub(crate) fn exit_code(self) -> u32 {
        match self {
            KeptStatus::Exited(code) => code,
            KeptStatus::Lost(_) => libctd_core::UNKNOWN_EXIT_CODE,
        }
    }

    /// Why the status is unknown, when it is.
    pub(crate) fn lost_why(self) -> Option<&'static str> {
        match self {
            KeptStatus::Exited(_) => None,
            KeptStatus::Lost(lost) => Some(lost.why()),
        }
    }
}

/// The exit of an init process, as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShimExit {
    pub pid: u32,
    pub status: KeptStatus,
    pub exited_at: Option<Timestamp>,
}

impl ShimExit {
    /// What `delete_task` answers for it.
    pub(crate) fn task_exit(&self) -> libctd_core::TaskExit {
        libctd_core::TaskExit::new(
            self.status.exit_code(),
            crate::convert::time_from_proto(self.exited_at.as_ref())
                .unwrap_or_else(std::time::SystemTime::now),
        )
    }
}

/// A lost exit of process `pid`, noticed now.
pub(super) fn lost(pid: u32, why: Lost) -> ShimExit {
    ShimExit {
        pid,
        status: KeptStatus::Lost(why),
        exited_at: Some(std::time::SystemTime::now().into()),
    }
}
