//! The fault plan: one vocabulary for both faces. The simulation edits it
//! through `Sim`'s methods; the double's control export deserialises it
//! from JSON (`{"Faults":{"System":id,"Plan":{...}}}`), field for field:
//!
//! | field                      | effect                                                        |
//! |----------------------------|---------------------------------------------------------------|
//! | `Fail: {"HcsX": hr}`       | every `HcsX` fails with `hr`; a pending `hr` still acts        |
//! | `FailOnce: {"HcsX": hr}`   | the next `HcsX` fails with `hr`                                |
//! | `Slow: {"HcsX": ms}`       | `HcsX` takes effect `ms` late (a stop is answered pending)     |
//! | `Late: {"HcsX": ms}`       | `HcsX` takes effect at once, completes `ms` late               |
//! | `UnexpectedExitOnShutdown` | a shutdown or terminate ends in `UnexpectedExit`               |
//! | `LastWaitResult: hr`       | processes exit with this `LastWaitResult` (no exit code)       |
//! | `HoldExitNotices`          | ProcessExited notices wait for a release                       |
//! | `LoseExitNotices`          | no ProcessExited, no SystemExited: a hung HCS (all else ends)  |
//! | `PendingUpdates: bool`     | answer `PendingUpdates` queries (refused by default)           |
//! | `Disconnected`             | every call fails with HCS_E_SERVICE_DISCONNECT                 |
//! | `IgnoreCancel`             | a cancel succeeds and changes nothing (operations: the double) |
//! | `CreateProcessQuirk`       | WS2022: the create's wait fails though the process runs        |
//!
//! Operations are named as computecore.dll names them ([`HcsOp::name`](crate::hcs::HcsOp::name)).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{HcsError, Hresult};

/// The fault plan of one compute system (or of all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Plan {
    /// Every call of the operation fails with the HRESULT.
    #[serde(default)]
    pub fail: HashMap<String, i64>,
    /// The next call of the operation fails with the HRESULT.
    #[serde(default)]
    pub fail_once: HashMap<String, i64>,
    /// A later call of the operation fails once with the HRESULT: `[n,
    /// hr]` lets `n` calls through first (a failure at the n+1th step).
    #[serde(default)]
    pub fail_later: HashMap<String, (u32, i64)>,
    /// Milliseconds before the operation takes effect.
    #[serde(default)]
    pub slow: HashMap<String, u64>,
    /// Milliseconds the operation completes after taking effect.
    #[serde(default)]
    pub late: HashMap<String, u64>,
    /// A shutdown or terminate ends in `UnexpectedExit`.
    #[serde(default)]
    pub unexpected_exit_on_shutdown: bool,
    /// The `LastWaitResult` of every process exit (0: the code is known).
    #[serde(default)]
    pub last_wait_result: i64,
    /// ProcessExited notifications are held until released.
    #[serde(default)]
    pub hold_exit_notices: bool,
    /// Neither ProcessExited nor SystemExited is ever sent (a hung HCS):
    /// the system and its processes still stop, and calls answer so.
    #[serde(default)]
    pub lose_exit_notices: bool,
    /// The answer to `PendingUpdates` queries; `None` refuses them.
    #[serde(default)]
    pub pending_updates: Option<bool>,
    /// The service is lost: every call fails with HCS_E_SERVICE_DISCONNECT.
    #[serde(default)]
    pub disconnected: bool,
    /// A cancel changes nothing.
    #[serde(default)]
    pub ignore_cancel: bool,
    /// HcsCreateProcess's wait fails (E_INVALIDARG), the process runs.
    #[serde(default)]
    pub create_process_quirk: bool,
}

/// What the fault plan does to one call.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// Wait this long before acting.
    pub slow: Duration,
    /// Wait this long after acting, before answering.
    pub late: Duration,
    /// Fail without acting.
    pub fail: Option<HcsError>,
    /// Act, then answer with this (a pending HRESULT).
    pub then: Option<HcsError>,
}

impl Gate {
    /// The answer once the call acted with `result`.
    pub fn answer<T>(self, result: Result<T, HcsError>) -> Result<T, HcsError> {
        let value = result?;
        self.then.map_or(Ok(value), Err)
    }
}

/// The plans: one for every system, and one per compute system id.
#[derive(Debug, Default)]
pub(super) struct Plans {
    any: Plan,
    per: HashMap<String, Plan>,
}

impl Plans {
    /// The plan of `system` (`None`: of every system), to edit.
    pub(super) fn edit(&mut self, system: Option<&str>) -> &mut Plan {
        match system {
            None => &mut self.any,
            Some(id) => self.per.entry(id.to_owned()).or_default(),
        }
    }

    /// Replaces the plan of `system`.
    pub(super) fn set(&mut self, system: &str, plan: Plan) {
        self.per.insert(system.to_owned(), plan);
    }

    /// Removes every failure and delay, keeping the behaviours.
    pub(super) fn clear_faults(&mut self) {
        for plan in std::iter::once(&mut self.any).chain(self.per.values_mut()) {
            plan.fail.clear();
            plan.fail_once.clear();
            plan.fail_later.clear();
            plan.slow.clear();
            plan.late.clear();
        }
    }

    /// Whether either plan of `system` says so.
    pub(super) fn flag(&self, system: &str, flag: impl Fn(&Plan) -> bool) -> bool {
        flag(&self.any) || self.per.get(system).is_some_and(flag)
    }

    /// A value of the system's plan, else of the plan of all.
    pub(super) fn value<T>(&self, system: &str, get: impl Fn(&Plan) -> Option<T>) -> Option<T> {
        self.per
            .get(system)
            .and_then(&get)
            .or_else(|| get(&self.any))
    }

    /// The plan's effect on `op` of `system`; consumes a once-failure.
    pub(super) fn gate(&mut self, op: &str, system: &str) -> Gate {
        let ms = |m: &HashMap<String, u64>| m.get(op).copied().unwrap_or(0);
        let mut slow = ms(&self.any.slow);
        let mut late = ms(&self.any.late);
        if let Some(p) = self.per.get(system) {
            slow = slow.max(ms(&p.slow));
            late = late.max(ms(&p.late));
        }
        let later = match self.per.get_mut(system) {
            Some(p) if p.fail_later.contains_key(op) => later(p, op),
            _ => later(&mut self.any, op),
        };
        let once = later.or_else(|| {
            self.per
                .get_mut(system)
                .and_then(|p| p.fail_once.remove(op))
                .or_else(|| self.any.fail_once.remove(op))
        });
        let hresult = once.or_else(|| self.value(system, |p| p.fail.get(op).copied()));
        let mut gate = Gate {
            slow: Duration::from_millis(slow),
            late: Duration::from_millis(late),
            ..Gate::default()
        };
        if let Some(hr) = hresult {
            let err = HcsError::new(Hresult::from_i64(hr));
            if err.hresult.is_pending() {
                gate.then = Some(err);
            } else {
                gate.fail = Some(err);
            }
        }
        gate
    }
}

/// Counts a call of `op` against `plan`'s later failure: its HRESULT
/// once the calls to let through are used up.
fn later(plan: &mut Plan, op: &str) -> Option<i64> {
    let (skip, hr) = plan.fail_later.get_mut(op)?;
    if *skip > 0 {
        *skip -= 1;
        return None;
    }
    let hr = *hr;
    plan.fail_later.remove(op);
    Some(hr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcs::HcsOp;

    #[test]
    fn plans_deserialise_from_the_double_s_json() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "Fail": {"HcsShutDownComputeSystem": 0x8007_0005_u32},
            "Slow": {"HcsCreateProcess": 300},
            "HoldExitNotices": true,
            "LoseExitNotices": true,
            "PendingUpdates": false,
        }))
        .unwrap();
        assert!(plan.hold_exit_notices);
        assert!(plan.lose_exit_notices);
        assert_eq!(plan.pending_updates, Some(false));
        let mut plans = Plans::default();
        plans.set("c", plan);
        let gate = plans.gate("HcsShutDownComputeSystem", "c");
        assert_eq!(gate.fail.unwrap().hresult, Hresult(0x8007_0005));
        assert_eq!(
            plans.gate("HcsCreateProcess", "c").slow,
            Duration::from_millis(300)
        );
        assert!(serde_json::from_str::<Plan>(r#"{"Nope":1}"#).is_err());
    }

    #[test]
    fn once_failures_are_consumed_and_pending_ones_act() {
        let mut plans = Plans::default();
        plans
            .edit(None)
            .fail_once
            .insert("HcsStartComputeSystem".into(), 0xC037_0103);
        let gate = plans.gate("HcsStartComputeSystem", "x");
        assert!(gate.fail.is_none());
        assert!(gate.then.unwrap().hresult.is_pending());
        let again = plans.gate("HcsStartComputeSystem", "x");
        assert!(again.fail.is_none() && again.then.is_none());
        assert_eq!(
            HcsOp::from_name("HcsCloseProcess"),
            Some(HcsOp::CloseProcess)
        );
        let plan: Plan = serde_json::from_value(
            serde_json::json!({"FailLater": {"HcsModifyComputeSystem": [1, 5]}}),
        )
        .unwrap();
        plans.set("vm", plan);
        assert!(plans.gate("HcsModifyComputeSystem", "vm").fail.is_none());
        assert!(plans.gate("HcsModifyComputeSystem", "other").fail.is_none());
        assert!(plans.gate("HcsModifyComputeSystem", "vm").fail.is_some());
        assert!(plans.gate("HcsModifyComputeSystem", "vm").fail.is_none());
    }
}
