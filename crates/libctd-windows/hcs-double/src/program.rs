//! The processes' script language (the statements of
//! `libctd_windows::hcs::sim`), run on a thread of the double over real
//! pipes (the double's ends synchronous).

use std::fs::File;
use std::io::{Read, Write};
use std::os::windows::io::AsRawHandle;
use std::sync::Arc;
use std::time::Duration;

use windows::Win32::Foundation::HANDLE;
use windows::Win32::System::Pipes::PeekNamedPipe;

use crate::events::process_exited;
use crate::world::{Process, lock};

/// The statements a script may use.
pub(crate) const KNOWN: &[&str] = &[
    "exit", "echo", "echoerr", "print", "printerr", "cat", "bytes", "sleep", "sleepms",
];
/// The exit code of a statement with bad arguments.
const BAD_ARGUMENTS_EXIT: u32 = 9009;

/// The double's ends of a process's pipes.
pub(crate) struct Io {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    pub console: bool,
}

impl Io {
    fn out(&mut self, data: &[u8]) {
        write(&mut self.stdout, data);
    }

    fn err(&mut self, data: &[u8]) {
        if self.console {
            write(&mut self.stdout, data);
        } else {
            write(&mut self.stderr, data);
        }
    }
}

fn write(stream: &mut Option<File>, data: &[u8]) {
    if let Some(f) = stream
        && f.write_all(data).is_err()
    {
        *stream = None;
    }
}

/// Runs `args` as process `p` on a new thread; its pipes close and its exit
/// is published when the script ends or the process is killed.
pub(crate) fn spawn(p: Arc<Process>, args: Vec<String>, io: Io) {
    std::thread::spawn(move || {
        let code = run(&p, &args, io);
        process_exited(&p, code);
    });
}

/// The kill request, if any.
fn killed(p: &Process) -> Option<u32> {
    lock(&p.ctl).kill
}

fn run(p: &Process, args: &[String], mut io: Io) -> u32 {
    for statement in args.split(|a| a == ";") {
        if let Some(code) = killed(p) {
            return code;
        }
        let Some((cmd, rest)) = statement.split_first() else {
            continue;
        };
        match cmd.as_str() {
            "exit" => {
                return match rest.first().map(|a| parse_code(a)) {
                    None => 0,
                    Some(Some(code)) => code,
                    Some(None) => {
                        io.err(b"double: bad exit code\n");
                        BAD_ARGUMENTS_EXIT
                    }
                };
            }
            "echo" => io.out(format!("{}\n", rest.join(" ")).as_bytes()),
            "echoerr" => io.err(format!("{}\n", rest.join(" ")).as_bytes()),
            "print" => io.out(rest.join(" ").as_bytes()),
            "printerr" => io.err(rest.join(" ").as_bytes()),
            "bytes" => {
                let Some(n) = rest.first().and_then(|n| n.parse::<usize>().ok()) else {
                    io.err(b"double: bytes needs a count\n");
                    return BAD_ARGUMENTS_EXIT;
                };
                let chunk: Vec<u8> = (0..8192u32).map(|i| b'a' + (i % 26) as u8).collect();
                let mut left = n;
                while left > 0 && io.stdout.is_some() && killed(p).is_none() {
                    let k = left.min(chunk.len());
                    io.out(&chunk[..k]);
                    left -= k;
                }
            }
            "cat" => cat(p, &mut io),
            "sleep" => {
                let mut st = lock(&p.ctl);
                while st.kill.is_none() {
                    st =
                        p.cv.wait(st)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            "sleepms" => {
                let ms = rest
                    .first()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                let st = lock(&p.ctl);
                let _ =
                    p.cv.wait_timeout_while(st, Duration::from_millis(ms), |s| s.kill.is_none());
            }
            other => {
                io.err(format!("'{other}' is not recognized\n").as_bytes());
                return BAD_ARGUMENTS_EXIT;
            }
        }
    }
    killed(p).unwrap_or(0)
}

/// Copies stdin to stdout until EOF, stdin closed by the caller, or a kill.
/// Polls the pipe (a synchronous pipe cannot be read with a timeout).
fn cat(p: &Process, io: &mut Io) {
    let Some(mut stdin) = io.stdin.take() else {
        return;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        {
            let st = lock(&p.ctl);
            if st.kill.is_some() || st.stdin_closed {
                return;
            }
        }
        let mut avail = 0u32;
        let h = HANDLE(stdin.as_raw_handle());
        // SAFETY: `h` is the open read end of the stdin pipe.
        let peeked = unsafe { PeekNamedPipe(h, None, 0, None, Some(&mut avail), None) };
        if peeked.is_err() {
            return; // the writer closed: EOF
        }
        if avail == 0 {
            let st = lock(&p.ctl);
            let _ = p.cv.wait_timeout_while(st, Duration::from_millis(5), |s| {
                s.kill.is_none() && !s.stdin_closed
            });
            continue;
        }
        let want = (avail as usize).min(buf.len());
        match stdin.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => io.out(&buf[..n]),
        }
    }
}

fn parse_code(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    s.parse::<u32>()
        .ok()
        .or_else(|| s.parse::<i32>().ok().map(|v| v as u32))
}
