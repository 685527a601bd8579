//! Exit notifications: delivered through the registered callbacks, from
//! threads of the double's own, never after the handle is closed.

use std::ffi::c_void;

use libctd_windows::hcs::model::{Notice, Observer};
use libctd_windows::hcs::{ProcessExit, SystemExit};
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT, HCS_EVENT_TYPE, HCS_OPERATION, HcsEventProcessExited, HcsEventSystemExited,
};
use windows::core::PCWSTR;

use crate::world::{Kind, notify, world};

/// Delivers an event of `ty` with `data` to the callback of handle `h`.
pub(crate) fn deliver(h: usize, ty: HCS_EVENT_TYPE, data: &str) {
    let cb = {
        let mut w = world();
        match w.entries.get_mut(&h) {
            Some(e) => match e.callback {
                Some(cb) => {
                    e.delivering += 1;
                    cb
                }
                None => return,
            },
            None => return,
        }
    };
    let wide: Vec<u16> = data.encode_utf16().chain(std::iter::once(0)).collect();
    let event = HCS_EVENT {
        Type: ty,
        EventData: PCWSTR(wide.as_ptr()),
        Operation: HCS_OPERATION::default(),
    };
    // SAFETY: the caller's callback and context; `event` outlives the call.
    unsafe { (cb.0)(&event, cb.1 as *const c_void) };
    if let Some(e) = world().entries.get_mut(&h) {
        e.delivering = e.delivering.saturating_sub(1);
    }
    notify();
}

/// Sends an event to every open handle matching `is_target`, from a thread
/// of the double's own.
pub(crate) fn broadcast(ty: HCS_EVENT_TYPE, data: String, is_target: impl Fn(&Kind) -> bool) {
    let targets: Vec<usize> = world()
        .entries
        .iter()
        .filter(|(_, e)| e.callback.is_some() && is_target(&e.kind))
        .map(|(h, _)| *h)
        .collect();
    if targets.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        for h in targets {
            deliver(h, ty, &data);
        }
    });
}

/// The model's notifications, delivered to the handles' callbacks.
pub(crate) struct Deliver;

impl Observer for Deliver {
    fn notice(&self, notice: Notice) {
        match notice {
            Notice::SystemExited(key, exit) => {
                broadcast(
                    HcsEventSystemExited,
                    system_exited(&exit),
                    move |k| matches!(k, Kind::System(x) if *x == key),
                );
            }
            Notice::ProcessExited(pid, exit) => {
                broadcast(
                    HcsEventProcessExited,
                    process_exited(&exit),
                    move |k| matches!(k, Kind::Process(p) if *p == pid),
                );
            }
        }
    }
}

/// SystemExited's data: `{"Status","ExitType"}`.
pub(crate) fn system_exited(exit: &SystemExit) -> String {
    serde_json::json!({"Status": exit.status, "ExitType": exit.exit_type}).to_string()
}

/// ProcessExited's data: `{"ProcessId","Exited","ExitCode","LastWaitResult"}`.
pub(crate) fn process_exited(exit: &ProcessExit) -> String {
    serde_json::json!({
        "ProcessId": exit.process_id,
        "Exited": exit.exited,
        "ExitCode": exit.exit_code,
        "LastWaitResult": exit.last_wait_result,
    })
    .to_string()
}
