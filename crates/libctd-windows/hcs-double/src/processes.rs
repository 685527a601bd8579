//! The process functions of computecore.
// Exported names are computecore's own.
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::fs::File;
use std::os::windows::io::FromRawHandle;

use libctd_windows::hcs::model::{Spawn, SystemKey, hr as model_hr};
use windows::Win32::Security::SECURITY_DESCRIPTOR;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_PROCESS, HCS_SYSTEM,
};
use windows::core::{HRESULT, PCWSTR};

use crate::exports::{done, process_call, put, set_callback, system_of, text};
use crate::program::{self, Io};
use crate::world::{Kind, OpResult, ProcInfo, Timing, enter, hr, issue, leave, model, world};

/// A pipe as HCS hands one out: (the double's end, the caller's end). The
/// caller's end supports overlapped I/O (hcsshim binds HCS's stdio handles
/// to an I/O completion port), so it is the client end of a named pipe of
/// a unique name, opened with `FILE_FLAG_OVERLAPPED`; the double's end,
/// the process's side, is the server end, synchronous for the program's
/// thread. `caller_reads`: stdout/stderr; else stdin (the caller writes).
fn pipe(caller_reads: bool) -> Option<(usize, usize)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use windows::Win32::Foundation::{CloseHandle, GENERIC_READ, GENERIC_WRITE};
    use windows::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, FILE_SHARE_NONE,
        OPEN_EXISTING, PIPE_ACCESS_INBOUND, PIPE_ACCESS_OUTBOUND,
    };
    use windows::Win32::System::Pipes::{
        CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_WAIT,
    };
    use windows::core::HSTRING;

    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = HSTRING::from(format!(
        r"\\.\pipe\libctd-hcs-double-{}-{n}",
        std::process::id()
    ));
    let (access, caller_access) = if caller_reads {
        (PIPE_ACCESS_OUTBOUND, GENERIC_READ)
    } else {
        (PIPE_ACCESS_INBOUND, GENERIC_WRITE)
    };
    // SAFETY: a valid name; one instance of a byte pipe, default security.
    let ours = unsafe {
        CreateNamedPipeW(
            &name,
            access | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            65536,
            65536,
            0,
            None,
        )
    };
    if ours.is_invalid() {
        return None;
    }
    // SAFETY: the pipe just created, by name; no security or template.
    let theirs = unsafe {
        CreateFileW(
            &name,
            caller_access.0,
            FILE_SHARE_NONE,
            None,
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED,
            None,
        )
    };
    match theirs {
        Ok(theirs) => Some((ours.0 as usize, theirs.0 as usize)),
        Err(_) => {
            // SAFETY: the double's end, not handed out.
            let _ = unsafe { CloseHandle(ours) };
            None
        }
    }
}

/// A handle the double keeps, as a file.
fn file(h: usize) -> File {
    // SAFETY: a pipe end the double created and owns from here on.
    unsafe { File::from_raw_handle(h as *mut c_void) }
}

/// The pipes `spawn` asked for: the process's ends, and the caller's.
fn pipes(spawn: &Spawn) -> Option<(Io, ProcInfo)> {
    let want = [spawn.stdin, spawn.stdout, spawn.stderr];
    let mut ours = [None, None, None];
    let mut theirs = [0usize; 3];
    for (i, wanted) in want.into_iter().enumerate() {
        if !wanted {
            continue;
        }
        // stdin: the process reads; stdout/stderr: the process writes.
        let Some((mine, caller)) = pipe(i != 0) else {
            // The double's ends close as `ours` drops.
            ProcInfo {
                pid: spawn.pid,
                stdin: theirs[0],
                stdout: theirs[1],
                stderr: theirs[2],
            }
            .close();
            return None;
        };
        ours[i] = Some(file(mine));
        theirs[i] = caller;
    }
    let [stdin, stdout, stderr] = ours;
    let io = Io {
        stdin,
        stdout,
        stderr,
        console: spawn.console,
    };
    let info = ProcInfo {
        pid: spawn.pid,
        stdin: theirs[0],
        stdout: theirs[1],
        stderr: theirs[2],
    };
    Some((io, info))
}

/// Starts process `pid` of `key` from its parameters (the model's
/// create); the caller's ends of the pipes, or the failure.
fn start(key: SystemKey, id: &str, pid: u32, parameters: &str) -> OpResult {
    let spawn = match model().create_process(key, pid, parameters) {
        Ok(spawn) => spawn,
        Err(e) => {
            model().abandon_process(key, pid);
            return OpResult::err(&e);
        }
    };
    let Some((io, info)) = pipes(&spawn) else {
        // The process cannot run without its pipes.
        model().process_exited(pid, libctd_windows::hcs::model::TERMINATED_EXIT);
        return OpResult::fail(hr::INVALID_HANDLE, "creating a pipe failed");
    };
    program::spawn(pid, spawn.program, io);
    if model().plan_flag(id, |p| p.create_process_quirk) {
        // Windows Server 2022: the wait fails, yet the process runs; its
        // information is there for HcsGetProcessInfo.
        world().stashed.insert(pid, info);
        return OpResult::fail(hr::INVALID_ARG, "The parameter is incorrect.");
    }
    OpResult {
        hr: 0,
        doc: String::new(),
        info: Some(info),
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCreateProcess(
    compute_system: HCS_SYSTEM,
    process_parameters: PCWSTR,
    operation: HCS_OPERATION,
    _security_descriptor: *const SECURITY_DESCRIPTOR,
    process: *mut HCS_PROCESS,
) -> HRESULT {
    const CALL: &str = "HcsCreateProcess";
    put(process, HCS_PROCESS::default());
    let sh = compute_system.0 as usize;
    let (key, id) = match enter(sh, CALL, system_of) {
        Ok(s) => s,
        Err(e) => return HRESULT(e),
    };
    let gate = match model().gate(CALL, &id) {
        Ok(gate) => gate,
        Err(e) => {
            leave(sh);
            return HRESULT(e.hresult.0 as i32);
        }
    };
    let parameters = text(process_parameters).unwrap_or_default();
    let pid = model().reserve_process(key);
    let h = world().alloc(Kind::Process(pid), &id);
    let ignore = model().plan_flag(&id, |p| p.ignore_cancel);
    let timing = Timing {
        before: gate.slow,
        after: gate.late,
    };
    let issued = issue(
        operation.0 as usize,
        h,
        CALL,
        timing,
        ignore,
        move |cancelled| {
            if cancelled {
                model().abandon_process(key, pid);
                OpResult::default()
            } else if let Some(e) = &gate.fail {
                model().abandon_process(key, pid);
                OpResult::err(e)
            } else {
                start(key, &id, pid, &parameters)
            }
        },
    );
    leave(sh);
    if let Err(e) = issued {
        world().entries.remove(&h);
        model().abandon_process(key, pid);
        return HRESULT(e);
    }
    put(process, HCS_PROCESS(h as *mut c_void));
    HRESULT(0)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsOpenProcess(
    compute_system: HCS_SYSTEM,
    process_id: u32,
    _requested_access: u32,
    process: *mut HCS_PROCESS,
) -> HRESULT {
    const CALL: &str = "HcsOpenProcess";
    put(process, HCS_PROCESS::default());
    let sh = compute_system.0 as usize;
    let (key, id) = match enter(sh, CALL, system_of) {
        Ok(s) => s,
        Err(e) => return HRESULT(e),
    };
    let opened = model()
        .gate(CALL, &id)
        .and_then(|gate| gate.fail.map_or(Ok(()), Err))
        .and_then(|()| model().open_process(key, process_id));
    let answer = match opened {
        Ok(()) => {
            let h = world().alloc(Kind::Process(process_id), &id);
            put(process, HCS_PROCESS(h as *mut c_void));
            HRESULT(0)
        }
        Err(e) => HRESULT(e.hresult.0 as i32),
    };
    leave(sh);
    answer
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsSignalProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    options: PCWSTR,
) -> HRESULT {
    let options = text(options).unwrap_or_default();
    process_call(process, operation, "HcsSignalProcess", move |pid| {
        done(model().signal_process(pid, &options))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsTerminateProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    process_call(process, operation, "HcsTerminateProcess", |pid| {
        done(model().terminate_process(pid))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsModifyProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    settings: PCWSTR,
) -> HRESULT {
    let settings = text(settings).unwrap_or_default();
    process_call(process, operation, "HcsModifyProcess", move |pid| {
        done(model().modify_process(pid, &settings))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetProcessProperties(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    query: PCWSTR,
) -> HRESULT {
    let query = text(query).unwrap_or_default();
    process_call(process, operation, "HcsGetProcessProperties", move |pid| {
        OpResult::of(model().process_properties(pid, &query))
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetProcessInfo(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
) -> HRESULT {
    process_call(process, operation, "HcsGetProcessInfo", |pid| {
        let stashed = world().stashed.remove(&pid);
        match stashed {
            Some(info) => OpResult {
                hr: 0,
                doc: String::new(),
                info: Some(info),
            },
            // Started, its handles handed over already.
            None if model().process_started(pid) => OpResult {
                hr: 0,
                doc: String::new(),
                info: Some(ProcInfo {
                    pid,
                    ..ProcInfo::default()
                }),
            },
            None => OpResult::err(&libctd_windows::error::HcsError::new(
                model_hr::PROCESS_INFO_NOT_AVAILABLE,
            )),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseProcess(process: HCS_PROCESS) {
    crate::world::close(process.0 as usize, "HcsCloseProcess");
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsSetProcessCallback(
    process: HCS_PROCESS,
    _options: HCS_EVENT_OPTIONS,
    context: *const c_void,
    callback: HCS_EVENT_CALLBACK,
) -> HRESULT {
    set_callback(
        process.0 as usize,
        "HcsSetProcessCallback",
        context,
        callback,
    )
}
