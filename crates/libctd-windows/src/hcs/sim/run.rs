//! Processes of the simulation: their program (the model's script) runs
//! on a tokio task over in-memory duplex pipes.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::Sim;
use crate::hcs::ProcessInfo;
use crate::hcs::model::{self, Program, Step, Stream};

/// The face's ends of a process's pipes.
pub(super) struct Io {
    stdin: Option<DuplexStream>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    console: bool,
}

/// The pipes `spawn` asked for: the process's ends, and the caller's.
pub(super) fn pipes(spawn: &model::Spawn) -> (Io, ProcessInfo) {
    let pipe = |wanted: bool| {
        if wanted {
            let (a, b) = tokio::io::duplex(64 * 1024);
            (Some(a), Some(b))
        } else {
            (None, None)
        }
    };
    let (stdin, stdin_theirs) = pipe(spawn.stdin);
    let (stdout, stdout_theirs) = pipe(spawn.stdout);
    let (stderr, stderr_theirs) = pipe(spawn.stderr);
    let io = Io {
        stdin,
        stdout,
        stderr,
        console: spawn.console,
    };
    let info = ProcessInfo {
        pid: spawn.pid,
        stdin: stdin_theirs.map(|s| Box::pin(s) as libctd_core::StdinStream),
        stdout: stdout_theirs.map(|s| Box::pin(s) as libctd_core::OutputStream),
        stderr: stderr_theirs.map(|s| Box::pin(s) as libctd_core::OutputStream),
    };
    (io, info)
}

/// Runs process `pid`'s program until it exits or is ended; its pipes
/// close, then its end goes to the model.
pub(super) async fn run(sim: Sim, pid: u32, mut program: Program, mut io: Io) {
    let code = tokio::select! {
        code = interpret(&sim, pid, &mut program, &mut io) => code,
        code = sim.until(|| sim.model().control(pid).kill) => code,
    };
    drop(io);
    sim.model().process_exited(pid, code);
}

/// Writes `data` on `stream`; a reader that went away is a closed pipe.
async fn write(stream: &mut Option<DuplexStream>, data: &[u8]) -> bool {
    let written = match stream.as_mut() {
        Some(s) => s.write_all(data).await.is_ok(),
        None => false,
    };
    if !written {
        *stream = None;
    }
    written
}

async fn interpret(sim: &Sim, pid: u32, program: &mut Program, io: &mut Io) -> u32 {
    loop {
        match program.next_step() {
            Step::Exit(code) => return code,
            Step::Write(stream, data) => {
                let target = match stream {
                    Stream::Err if !io.console => &mut io.stderr,
                    _ => &mut io.stdout,
                };
                if !write(target, &data).await {
                    program.stop_filling();
                }
            }
            Step::Cat => cat(sim, pid, io).await,
            Step::Sleep => std::future::pending::<()>().await,
            Step::Pause(time) => tokio::time::sleep(time).await,
        }
    }
}

/// Copies stdin to stdout until EOF or stdin is closed by a request.
async fn cat(sim: &Sim, pid: u32, io: &mut Io) {
    let Some(mut stdin) = io.stdin.take() else {
        return;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        let n = tokio::select! {
            n = stdin.read(&mut buf) => n.unwrap_or(0),
            _ = sim.until(|| sim.model().control(pid).stdin_closed.then_some(())) => return,
        };
        if n == 0 {
            return;
        }
        write(&mut io.stdout, &buf[..n]).await;
    }
}
