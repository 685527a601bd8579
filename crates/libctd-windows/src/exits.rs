//! The exit rules: how HCS's answers and notifications about ending
//! processes and compute systems become libctd's exits.
//!
//! hcsshim's reading of HCS (its v2 computecore path) is the reference:
//!
//! - `HcsTerminateProcess` on a process that exited already fails with
//!   ERROR_ACCESS_DENIED (Windows' `TerminateProcess`) or "already stopped";
//!   both mean the process is gone, and its exit is reported as usual.
//! - A process's exit comes from its `ProcessExited`, whenever that comes
//!   (before or after its system's `SystemExited`). When the system exits
//!   first, its processes' exits are waited for at most a grace period:
//!   a system that died sends none for them (hcsshim then releases the
//!   wait itself with exit code -1), and the exit is reported unknown.
//!   The system's exit is waited for once per container
//!   ([`SystemExitWatch`]), for all its processes; a failed wait is made
//!   again, so it never hides the exit.
//! - A stop of ours (a kill or shutdown of the init) bounds the wait: when
//!   neither the process's nor its system's exit has come within the
//!   shutdown timeout of it (a hung HCS), every process of the container
//!   exits unknown with a deadline error ([`SystemExitWatch::stop_requested`]),
//!   and the system is closed without a shutdown: closing its last handle
//!   ends it (`ShouldTerminateOnLastHandleClosed`).
//! - Only `ExitType == "UnexpectedExit"` is an exit error (see
//!   [`SystemExit::error`]): the exit is then unknown and carries the
//!   system's error. A forced exit after our own terminate is not one.
//! - `PendingUpdates` is not a property type of schema 2: hosts since
//!   Windows Server 2019 (the only ones computecore.dll exists on) refuse
//!   the query, and hcsshim never asks. It is still asked after a clean
//!   exit, bounded in time, and any refusal or silence means "no updates
//!   pending", never an exit error: only a host that answers it can make
//!   `update_pending` true.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use libctd_core::Error;

use crate::client::UNKNOWN_EXIT_CODE;
use crate::convert::{self, PropertiesError};
use crate::error::{HcsError, Hresult};
use crate::hcs::{Hcs, HcsOp, HcsResult, ProcessExit, SystemExit};
use crate::schema::PropertyQuery;
use tokio::sync::watch;

/// Whether a failed terminate of a process (an exec) still leaves it ending
/// or ended: pending, already stopped, or denied because it exited.
pub(crate) fn terminate_leaves_it_ended(hresult: Hresult) -> bool {
    hresult.is_pending()
        || hresult.is_already_stopped()
        || hresult.is_access_denied()
        // Its compute system is gone (hcsshim: the process is gone too).
        || hresult.is_invalid_state()
        || hresult.is_not_exist()
}

/// Whether a failed shutdown or terminate of a compute system still leaves
/// it ending or ended: pending (submitted; the exit notice follows) or
/// already stopped.
pub(crate) fn system_stop_leaves_it_ended(hresult: Hresult) -> bool {
    hresult.is_pending() || hresult.is_already_stopped()
}

/// How a process ended, as HCS told it.
pub(crate) struct ProcessEnd {
    /// When its end was seen.
    pub(crate) exited_at: SystemTime,
    /// Its exit code, or [`UNKNOWN_EXIT_CODE`] (then `errors` says why).
    pub(crate) exit_code: u32,
    /// Why the exit code is unknown.
    pub(crate) errors: Vec<Error>,
    /// Whether its compute system had exited by then.
    pub(crate) system_exited: bool,
    /// Whether neither exit came within the bound on a stop of ours (a hung
    /// HCS): the system was asked to stop and never said it did.
    pub(crate) unanswered: bool,
}

/// A stop of ours that bounds the wait for the exits: asked by `op`, the
/// exits are awaited until `deadline` (`bound` after it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopRequested {
    op: HcsOp,
    bound: Duration,
    deadline: Instant,
}

/// The first pause before a failed wait for a compute system's exit is
/// made again; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between waits for a compute system's exit.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// A compute system's exit, watched once for the reapers of all its
/// processes: one wait on HCS per container (not one per reaper, each of
/// which could meet a fault meant for another). Dropping it ends the wait.
pub(crate) struct SystemExitWatch {
    exit: watch::Receiver<Option<SystemExit>>,
    task: tokio::task::AbortHandle,
    /// The first stop of ours, which bounds the wait for the exits.
    stop: watch::Sender<Option<StopRequested>>,
}

impl SystemExitWatch {
    /// Starts the one wait for `system`'s exit (of container `ctr_id`). A
    /// failed wait is made again after a pause: a stop that failed after
    /// it was submitted fails the waits until the next stop, and the exit
    /// after that must still be seen.
    pub(crate) fn start<H: Hcs>(hcs: Arc<H>, system: H::System, ctr_id: String) -> Self {
        let (tx, exit) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut pause = FIRST_RETRY_PAUSE;
            loop {
                match hcs.wait_compute_system_exit(&system).await {
                    Ok(exit) => {
                        tx.send_replace(Some(exit));
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(container_id = %ctr_id, error = %e, ?pause, "waiting for the compute system's exit failed, waiting again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                }
            }
        });
        Self {
            exit,
            task: task.abort_handle(),
            stop: watch::Sender::new(None),
        }
    }

    /// A stop (`op`: shutdown or terminate) of the system was asked for:
    /// the exits of its processes are awaited at most `bound` from now.
    /// The first stop sets the bound; later ones do not move it.
    pub(crate) fn stop_requested(&self, op: HcsOp, bound: Duration) {
        self.stop.send_if_modified(|stop| {
            if stop.is_some() {
                return false;
            }
            *stop = Some(StopRequested {
                op,
                bound,
                deadline: Instant::now() + bound,
            });
            true
        });
    }

    /// Resolves once the bound of a stop of ours has passed.
    async fn stop_unanswered(&self) -> StopRequested {
        let mut rx = self.stop.subscribe();
        let stop = match rx.wait_for(Option::is_some).await {
            Ok(stop) => *stop,
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        let Some(stop) = stop else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(stop.deadline).await;
        stop
    }

    /// The system's exit, if it has come.
    fn get(&self) -> Option<SystemExit> {
        self.exit.borrow().clone()
    }

    /// Resolves with the system's exit once it has come.
    async fn exited(&self) -> SystemExit {
        let mut rx = self.exit.clone();
        if let Ok(exit) = rx.wait_for(Option::is_some).await
            && let Some(exit) = exit.clone()
        {
            return exit;
        }
        // The wait ended without an exit: only when aborted, with the
        // container.
        std::future::pending().await
    }
}

impl Drop for SystemExitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A process of a compute system: its handle, and its system's exit.
pub(crate) struct Watched<'a, H: Hcs> {
    pub(crate) ctr_id: &'a str,
    pub(crate) process_id: &'a str,
    pub(crate) system: &'a SystemExitWatch,
    pub(crate) process: &'a H::Process,
}

/// Which exit came first.
enum Race {
    /// The process's; its system's too if that had come by then.
    ProcessFirst(HcsResult<ProcessExit>, Option<SystemExit>),
    /// The system's; the process's if it came within the grace.
    SystemFirst(SystemExit, Option<HcsResult<ProcessExit>>),
    /// Neither, within the bound of a stop of ours.
    Unanswered(StopRequested),
}

/// Waits for a process's end by the rules above: its own exit whenever it
/// comes, or, once its system has exited, at most `grace` more; after a
/// stop of ours, at most its bound.
pub(crate) async fn process_end<H: Hcs>(hcs: &H, w: Watched<'_, H>, grace: Duration) -> ProcessEnd {
    let raced = race(hcs, w.system, w.process, grace).await;
    let exited_at = SystemTime::now();
    let system = match &raced {
        Race::ProcessFirst(_, system) => system.as_ref(),
        Race::SystemFirst(system, _) => Some(system),
        Race::Unanswered(_) => None,
    };
    let unanswered = matches!(raced, Race::Unanswered(_));
    let system_exited = system.is_some();
    let system_error = system.and_then(SystemExit::error);
    let mut errors = Vec::new();
    let mut exit_code = match raced {
        Race::ProcessFirst(process, _) | Race::SystemFirst(_, Some(process)) => {
            exit_code(process, &w, &mut errors)
        }
        Race::SystemFirst(system, None) => {
            tracing::warn!(
                container_id = w.ctr_id,
                process_id = w.process_id,
                ?grace,
                "the compute system exited without the process's exit"
            );
            if system_error.is_none() {
                errors.push(
                    Error::system(format!(
                        "the compute system exited ({}) and the exit of the process \
                         was not reported within {grace:?}",
                        system.exit_type
                    ))
                    .with_container(w.ctr_id),
                );
            }
            UNKNOWN_EXIT_CODE
        }
        Race::Unanswered(stop) => {
            tracing::warn!(
                container_id = w.ctr_id,
                process_id = w.process_id,
                bound = ?stop.bound,
                "HCS reported neither the process's nor the compute system's exit after a stop"
            );
            errors.push(
                Error::deadline_exceeded(format!(
                    "neither the process's nor the compute system's exit was reported \
                     within {:?} of {}",
                    stop.bound,
                    stop.op.name()
                ))
                .with_container(w.ctr_id),
            );
            UNKNOWN_EXIT_CODE
        }
    };
    if let Some(e) = system_error {
        exit_code = UNKNOWN_EXIT_CODE;
        errors.push(e.into_error(w.ctr_id, HcsOp::WaitForComputeSystemExit.name()));
    }
    ProcessEnd {
        exited_at,
        exit_code,
        errors,
        system_exited,
        unanswered,
    }
}

/// The exit code a process's exit (or its failed wait) gives; what made it
/// unknown goes to `errors`.
fn exit_code<H: Hcs>(
    process: HcsResult<ProcessExit>,
    w: &Watched<'_, H>,
    errors: &mut Vec<Error>,
) -> u32 {
    const WAIT: HcsOp = HcsOp::WaitForProcessExit;
    match process {
        Ok(exit) => exit.code().unwrap_or_else(|| {
            tracing::warn!(
                container_id = w.ctr_id,
                process_id = w.process_id,
                last_wait_result = exit.last_wait_result,
                "the exit code of the process is not available"
            );
            let hr = Hresult(exit.last_wait_result.cast_unsigned());
            errors.push(HcsError::new(hr).into_error(w.ctr_id, WAIT.name()));
            UNKNOWN_EXIT_CODE
        }),
        Err(e) => {
            tracing::warn!(container_id = w.ctr_id, process_id = w.process_id, error = %e, "waiting for the process failed");
            errors.push(e.into_error(w.ctr_id, WAIT.name()));
            UNKNOWN_EXIT_CODE
        }
    }
}

/// Which of the process's and its system's exits comes first, and the
/// other's if it follows in time (the system's: already come; the
/// process's: within `grace`); or neither, by the bound of a stop of ours.
async fn race<H: Hcs>(
    hcs: &H,
    system: &SystemExitWatch,
    process: &H::Process,
    grace: Duration,
) -> Race {
    let process_exit = hcs.wait_process_exit(process);
    tokio::pin!(process_exit);
    tokio::select! {
        biased;
        exit = &mut process_exit => Race::ProcessFirst(exit, system.get()),
        exit = system.exited() => {
            let exit_of_process = tokio::time::timeout(grace, process_exit).await.ok();
            Race::SystemFirst(exit, exit_of_process)
        }
        stop = system.stop_unanswered() => Race::Unanswered(stop),
    }
}

/// Whether `system` (of container `ctr_id`) has Windows updates pending,
/// asked for at most `timeout`: false when the host refuses, does not
/// answer in time, or answers something unreadable (each only logged).
pub(crate) async fn update_pending<H: Hcs>(
    hcs: &H,
    system: &H::System,
    ctr_id: &str,
    timeout: Duration,
) -> bool {
    let query = PropertyQuery::PENDING_UPDATES;
    let asked = tokio::time::timeout(timeout, convert::system_properties(hcs, system, query));
    match asked.await {
        Ok(Ok(props)) => props.are_updates_pending.unwrap_or(false),
        Ok(Err(PropertiesError::Unreadable(e))) => {
            tracing::warn!(container_id = ctr_id, error = %e.report(), "unreadable PendingUpdates answer");
            false
        }
        Ok(Err(PropertiesError::Refused(e))) => {
            tracing::debug!(container_id = ctr_id, error = %e, "the host refused the PendingUpdates query");
            false
        }
        Err(_) => {
            tracing::warn!(
                container_id = ctr_id,
                ?timeout,
                "no PendingUpdates answer in time"
            );
            false
        }
    }
}
