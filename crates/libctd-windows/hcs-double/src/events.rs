//! Exit notifications: delivered through the registered callbacks, from
//! threads of the double's own, never after the handle is closed.

use std::ffi::c_void;
use std::sync::Arc;

use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT, HCS_EVENT_TYPE, HCS_OPERATION, HcsEventProcessExited, HcsEventSystemExited,
};
use windows::core::PCWSTR;

use crate::world::{Kind, Process, Status, System, hr, lock, notify, world};

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

/// How a compute system exits: its SystemExited `ExitType` and `Status`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exit {
    pub exit_type: &'static str,
    pub status: i32,
}

/// A shutdown's exit.
pub(crate) const GRACEFUL_EXIT: Exit = Exit {
    exit_type: "GracefulExit",
    status: 0,
};
/// A terminate's exit: it may carry HCS_E_TERMINATED, still not a crash.
pub(crate) const FORCED_EXIT: Exit = Exit {
    exit_type: "ForcedExit",
    status: hr::TERMINATED,
};
/// The exit of a system that died.
pub(crate) const UNEXPECTED_EXIT: Exit = Exit {
    exit_type: "UnexpectedExit",
    status: hr::UNEXPECTED_EXIT,
};

/// Stops `system`: its processes end with `code`, then its `exit` is
/// published. False when it was stopped already.
pub(crate) fn stop_system(system: &Arc<System>, code: u32, exit: Exit) -> bool {
    let processes: Vec<Arc<Process>> = {
        let mut st = lock(&system.state);
        if st.status == Status::Stopped {
            return false;
        }
        st.status = Status::Stopped;
        let doc = serde_json::json!({"Status": exit.status, "ExitType": exit.exit_type});
        st.exit = Some(doc.to_string());
        st.processes.values().cloned().collect()
    };
    for p in processes {
        p.kill(code);
    }
    let data = lock(&system.state).exit.clone().unwrap_or_default();
    let s = system.clone();
    broadcast(
        HcsEventSystemExited,
        data,
        move |k| matches!(k, Kind::System(x) if Arc::ptr_eq(x, &s)),
    );
    // The containers a utility VM hosts die with it.
    let hosted: Vec<Arc<System>> = world()
        .systems
        .values()
        .filter(|h| h.hosted_by.as_deref() == Some(system.id.as_str()))
        .cloned()
        .collect();
    for h in hosted {
        stop_system(&h, code, exit);
    }
    true
}

/// Makes `system` die, as HCS reports it: `UnexpectedExit`, and its
/// processes end without any ProcessExited (hcsshim releases their waits
/// itself). False when it was stopped already.
pub(crate) fn crash_system(system: &Arc<System>) -> bool {
    let processes: Vec<Arc<Process>> = lock(&system.state).processes.values().cloned().collect();
    for p in processes {
        lock(&p.ctl).silent = true;
    }
    stop_system(system, crate::world::TERMINATED_EXIT, UNEXPECTED_EXIT)
}

/// Publishes a process's exit with `code` (only records it for a process
/// whose system died).
pub(crate) fn process_exited(p: &Arc<Process>, code: u32) {
    let last_wait_result = if p.system.faults.exit_code_unavailable {
        hr::INVALID_HANDLE
    } else {
        0
    };
    let data = serde_json::json!({
        "ProcessId": p.pid,
        "Exited": true,
        "ExitCode": code,
        "LastWaitResult": last_wait_result,
    })
    .to_string();
    {
        let mut st = lock(&p.ctl);
        st.exit = Some(code);
        p.cv.notify_all();
        if st.silent {
            return;
        }
    }
    if let Some(held) = lock(&p.system.state).held_notices.as_mut() {
        held.push((p.clone(), data));
        return;
    }
    notify_exited(p, data);
}

/// Sends a process's ProcessExited notification.
fn notify_exited(p: &Arc<Process>, data: String) {
    lock(&p.ctl).exit_data = Some(data.clone());
    let me = p.clone();
    broadcast(
        HcsEventProcessExited,
        data,
        move |k| matches!(k, Kind::Process(x) if Arc::ptr_eq(x, &me)),
    );
}

/// Sends the ProcessExited notifications `system` held back, and holds no
/// more. False when it held none (its plan does not hold them).
pub(crate) fn release_exit_notices(system: &Arc<System>) -> bool {
    let Some(held) = lock(&system.state).held_notices.take() else {
        return false;
    };
    for (p, data) in held {
        notify_exited(&p, data);
    }
    true
}
