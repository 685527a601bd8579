//! The process functions of computecore.
// Exported names are computecore's own.
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::fs::File;
use std::os::windows::io::FromRawHandle;
use std::sync::{Arc, Condvar, Mutex};

use libctd_windows::convert::split_command_line;
use windows::Win32::Security::SECURITY_DESCRIPTOR;
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_PROCESS, HCS_SYSTEM,
};
use windows::core::{HRESULT, PCWSTR};

use crate::exports::{plan, process_call, put, set_callback, text};
use crate::program::{self, Io, KNOWN};
use crate::world::{
    self, CONTROL_C_EXIT, Kind, OpResult, ProcInfo, ProcState, Process, Status, System,
    TERMINATED_EXIT, enter, hr, issue, leave, lock, world,
};

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

/// Starts process `p` of `s` from its parameters: the pids and the caller's
/// ends of the pipes, or the failure.
fn start(s: &Arc<System>, p: &Arc<Process>, parameters: &str) -> OpResult {
    if lock(&s.state).status != Status::Running {
        return OpResult::fail(hr::INVALID_STATE, "the compute system is not running");
    }
    let params: serde_json::Value = match serde_json::from_str(parameters) {
        Ok(v) => v,
        Err(e) => return OpResult::fail(hr::INVALID_JSON, &e.to_string()),
    };
    let flag = |k: &str| params.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    let line = params
        .get("CommandLine")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let args = split_command_line(line);
    if let Some(unknown) = args
        .split(|a| a == ";")
        .filter_map(|st| st.first())
        .find(|cmd| !KNOWN.contains(&cmd.as_str()))
    {
        return OpResult::fail(hr::FILE_NOT_FOUND, &format!("no program {unknown:?}"));
    }
    let console = flag("EmulateConsole");
    let want = [
        flag("CreateStdInPipe"),
        flag("CreateStdOutPipe"),
        flag("CreateStdErrPipe") && !console,
    ];
    let mut ours = [None, None, None];
    let mut theirs = [0usize; 3];
    for (i, wanted) in want.into_iter().enumerate() {
        if !wanted {
            continue;
        }
        // stdin: the process reads; stdout/stderr: the process writes.
        let Some((mine, caller)) = pipe(i != 0) else {
            return OpResult::fail(hr::INVALID_HANDLE, "creating a pipe failed");
        };
        ours[i] = Some(file(mine));
        theirs[i] = caller;
    }
    let [stdin, stdout, stderr] = ours;
    lock(&s.state).processes.insert(p.pid, p.clone());
    {
        let mut st = lock(&p.ctl);
        st.console_size = params
            .get("ConsoleSize")
            .and_then(|v| serde_json::from_value::<[u16; 2]>(v.clone()).ok());
    }
    program::spawn(
        p.clone(),
        args,
        Io {
            stdin,
            stdout,
            stderr,
            console,
        },
    );
    let info = ProcInfo {
        pid: p.pid,
        stdin: theirs[0],
        stdout: theirs[1],
        stderr: theirs[2],
    };
    if s.faults.create_process_quirk {
        // Windows Server 2022: the wait fails, yet the process runs; its
        // information is there for HcsGetProcessInfo.
        lock(&p.ctl).info = Some(info);
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
    let s = match enter(sh, CALL, |k| match k {
        Kind::System(s) => Some(s.clone()),
        _ => None,
    }) {
        Ok(s) => s,
        Err(e) => return HRESULT(e),
    };
    let parameters = text(process_parameters).unwrap_or_default();
    let (p, h) = {
        let mut w = world();
        let p = Arc::new(Process {
            pid: w.pid(),
            system: s.clone(),
            image: split_command_line(&parameters)
                .first()
                .cloned()
                .unwrap_or_default(),
            ctl: Mutex::new(ProcState::default()),
            cv: Condvar::new(),
        });
        let h = w.alloc(Kind::Process(p.clone()), &s.id);
        (p, h)
    };
    let (timing, fail, ignore) = plan(&s.faults, CALL);
    let proc_ = p.clone();
    let issued = issue(
        operation.0 as usize,
        h,
        CALL,
        timing,
        ignore,
        move |cancelled| {
            let never_started = |r: OpResult| {
                lock(&proc_.ctl).exit = Some(TERMINATED_EXIT);
                r
            };
            if cancelled {
                never_started(OpResult::default())
            } else if let Some(e) = fail {
                never_started(OpResult::fail(e, CALL))
            } else {
                let r = start(&s, &proc_, &parameters);
                if r.hr != 0 && r.info.is_none() && lock(&proc_.ctl).info.is_none() {
                    never_started(r)
                } else {
                    r
                }
            }
        },
    );
    leave(sh);
    if let Err(e) = issued {
        world().entries.remove(&h);
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
    put(process, HCS_PROCESS::default());
    let sh = compute_system.0 as usize;
    let s = match enter(sh, "HcsOpenProcess", |k| match k {
        Kind::System(s) => Some(s.clone()),
        _ => None,
    }) {
        Ok(s) => s,
        Err(e) => return HRESULT(e),
    };
    let found = lock(&s.state).processes.get(&process_id).cloned();
    let answer = match found {
        Some(p) => {
            let h = world().alloc(Kind::Process(p), &s.id);
            put(process, HCS_PROCESS(h as *mut c_void));
            HRESULT(0)
        }
        None => HRESULT(hr::NOT_FOUND),
    };
    leave(sh);
    answer
}

/// Ends a running process with `code`.
fn end(p: &Process, code: u32) -> OpResult {
    if p.exited() {
        return OpResult::fail(hr::PROCESS_ALREADY_STOPPED, "the process has exited");
    }
    p.kill(code);
    OpResult::ok(String::new())
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsSignalProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    options: PCWSTR,
) -> HRESULT {
    let options = text(options).unwrap_or_default();
    process_call(process, operation, "HcsSignalProcess", move |p| {
        let signal = serde_json::from_str::<serde_json::Value>(&options)
            .ok()
            .and_then(|v| v.get("Signal").and_then(|s| s.as_str()).map(str::to_owned));
        match signal.as_deref() {
            Some("CtrlC" | "CtrlBreak" | "CtrlClose" | "CtrlLogOff" | "CtrlShutdown") => {
                end(p, CONTROL_C_EXIT)
            }
            _ => OpResult::fail(hr::INVALID_JSON, "unknown signal"),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsTerminateProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    _options: PCWSTR,
) -> HRESULT {
    process_call(process, operation, "HcsTerminateProcess", |p| {
        // Windows' TerminateProcess on a process that exited already fails
        // with ERROR_ACCESS_DENIED; HCS passes it on (hcsshim ignores it).
        if p.exited() {
            return OpResult::fail(hr::ACCESS_DENIED, "the process has exited");
        }
        end(p, TERMINATED_EXIT)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsModifyProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    settings: PCWSTR,
) -> HRESULT {
    let settings = text(settings).unwrap_or_default();
    process_call(process, operation, "HcsModifyProcess", move |p| {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&settings) else {
            return OpResult::fail(hr::INVALID_JSON, "the request is not JSON");
        };
        if p.exited() {
            return OpResult::fail(hr::PROCESS_ALREADY_STOPPED, "the process has exited");
        }
        let mut st = lock(&p.ctl);
        match v.get("Operation").and_then(|o| o.as_str()) {
            Some("ConsoleSize") => {
                let size = v.get("ConsoleSize");
                let dim = |k: &str| size.and_then(|s| s.get(k)).and_then(|n| n.as_u64());
                match (dim("Height"), dim("Width")) {
                    (Some(h), Some(w)) if st.console_size.is_some() => {
                        st.console_size = Some([h as u16, w as u16]);
                        OpResult::ok(String::new())
                    }
                    (Some(_), Some(_)) => {
                        OpResult::fail(hr::INVALID_HANDLE, "the process has no console")
                    }
                    _ => OpResult::fail(hr::INVALID_JSON, "ConsoleSize needs Height and Width"),
                }
            }
            Some("CloseHandle")
                if v.pointer("/CloseHandle/Handle").and_then(|h| h.as_str()) == Some("StdIn") =>
            {
                st.stdin_closed = true;
                p.cv.notify_all();
                OpResult::ok(String::new())
            }
            _ => OpResult::fail(hr::INVALID_JSON, "unknown modify operation"),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetProcessProperties(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    _query: PCWSTR,
) -> HRESULT {
    process_call(process, operation, "HcsGetProcessProperties", |p| {
        let st = lock(&p.ctl);
        let lwr = if p.system.faults.exit_code_unavailable && st.exit.is_some() {
            hr::INVALID_HANDLE
        } else {
            0
        };
        OpResult::ok(
            serde_json::json!({
                "ProcessId": p.pid,
                "Exited": st.exit.is_some(),
                "ExitCode": st.exit.unwrap_or(0),
                "LastWaitResult": lwr,
            })
            .to_string(),
        )
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetProcessInfo(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
) -> HRESULT {
    process_call(process, operation, "HcsGetProcessInfo", |p| {
        let started = lock(&p.system.state).processes.contains_key(&p.pid);
        let info = lock(&p.ctl).info.take();
        match info {
            Some(info) => OpResult {
                hr: 0,
                doc: String::new(),
                info: Some(info),
            },
            // Started, its handles handed over already.
            None if started => OpResult {
                hr: 0,
                doc: String::new(),
                info: Some(ProcInfo {
                    pid: p.pid,
                    ..ProcInfo::default()
                }),
            },
            None => OpResult::fail(hr::PROCESS_INFO_NOT_AVAILABLE, "the process never started"),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseProcess(process: HCS_PROCESS) {
    world::close(process.0 as usize, "HcsCloseProcess");
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
