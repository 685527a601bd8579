//! Runs a process's script (the model's language,
//! `libctd_windows::hcs::model::program`) on a thread of the double over
//! real pipes (the double's ends synchronous).

use std::fs::File;
use std::io::{Read, Write};
use std::os::windows::io::AsRawHandle;
use std::time::Duration;

use libctd_windows::hcs::model::{Program, Step, Stream};
use windows::Win32::Foundation::HANDLE;
use windows::Win32::System::Pipes::PeekNamedPipe;

use crate::world::model;

/// How often `cat` looks at its pipe (a synchronous pipe cannot be read
/// with a timeout).
const CAT_POLL: Duration = Duration::from_millis(5);

/// The double's ends of a process's pipes.
pub(crate) struct Io {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    pub console: bool,
}

impl Io {
    /// Writes on `stream` (stderr goes to stdout on a console); false when
    /// its reader went away.
    fn write(&mut self, stream: Stream, data: &[u8]) -> bool {
        let target = match stream {
            Stream::Err if !self.console => &mut self.stderr,
            _ => &mut self.stdout,
        };
        let written = target.as_mut().is_some_and(|f| f.write_all(data).is_ok());
        if !written {
            *target = None;
        }
        written
    }
}

/// Runs process `pid`'s program on a new thread; its pipes close, then its
/// end goes to the model.
pub(crate) fn spawn(pid: u32, program: Program, io: Io) {
    std::thread::spawn(move || {
        let code = run(pid, program, io);
        model().process_exited(pid, code);
    });
}

/// The kill request, if any.
fn killed(pid: u32) -> Option<u32> {
    model().control(pid).kill
}

fn run(pid: u32, mut program: Program, mut io: Io) -> u32 {
    loop {
        if let Some(code) = killed(pid) {
            return code;
        }
        match program.next_step() {
            Step::Exit(code) => return code,
            Step::Write(stream, data) => {
                if !io.write(stream, &data) {
                    program.stop_filling();
                }
            }
            Step::Cat => cat(pid, &mut io),
            Step::Sleep => {
                model().wait_process(pid, None, |c| c.kill.is_some());
            }
            Step::Pause(time) => {
                model().wait_process(pid, Some(time), |c| c.kill.is_some());
            }
        }
    }
}

/// Copies stdin to stdout until EOF, stdin closed by the caller, or a kill.
fn cat(pid: u32, io: &mut Io) {
    let Some(mut stdin) = io.stdin.take() else {
        return;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        let control = model().control(pid);
        if control.kill.is_some() || control.stdin_closed {
            return;
        }
        let mut avail = 0u32;
        let h = HANDLE(stdin.as_raw_handle());
        // SAFETY: `h` is the open read end of the stdin pipe.
        let peeked = unsafe { PeekNamedPipe(h, None, 0, None, Some(&mut avail), None) };
        if peeked.is_err() {
            return; // the writer closed: EOF
        }
        if avail == 0 {
            model().wait_process(pid, Some(CAT_POLL), |c| c.kill.is_some() || c.stdin_closed);
            continue;
        }
        let want = (avail as usize).min(buf.len());
        match stdin.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                io.write(Stream::Out, &buf[..n]);
            }
        }
    }
}
