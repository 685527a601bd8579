//! The fake's processes: the program language they run, and their streams.

use std::sync::Arc;
use std::time::Duration;

use libctd_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};

use crate::conformance::Program;

/// The command the fake recognises as its own interpreter.
pub const FAKE_COMMAND: &str = "libctd-fake";

/// The command line that makes the fake run `program`.
///
/// ```
/// use libctd_testkit::conformance::Program;
/// use libctd_testkit::fake::program_args;
///
/// assert_eq!(program_args(&Program::Exit(3)), ["libctd-fake", "exit", "3"]);
/// ```
pub fn program_args(program: &Program) -> Vec<String> {
    let mut args = vec![FAKE_COMMAND.to_owned()];
    match program {
        Program::Exit(code) => args.extend(["exit".to_owned(), code.to_string()]),
        Program::Print(text) => args.extend(["print".to_owned(), text.clone()]),
        Program::PrintStderr(text) => args.extend(["print-stderr".to_owned(), text.clone()]),
        Program::Cat => args.push("cat".to_owned()),
        Program::Sleep => args.push("sleep".to_owned()),
        Program::Oom => args.push("oom".to_owned()),
        Program::Output { bytes } => args.extend(["output".to_owned(), bytes.to_string()]),
        Program::Missing => return vec!["/nonexistent/libctd-missing".to_owned()],
    }
    args
}

/// Parses a command line into a program. `Ok(None)`: not the fake's command
/// (the caller runs its default program). An error: a command that cannot run.
pub(crate) fn parse_args(args: &[String]) -> Result<Option<Program>> {
    let Some(first) = args.first() else {
        return Err(Error::invalid_argument("the process has no args"));
    };
    if first.starts_with("/nonexistent") {
        return Err(Error::system(format!(
            "exec: {first:?}: stat {first}: no such file or directory"
        )));
    }
    if first != FAKE_COMMAND {
        return Ok(None);
    }
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let bad = || {
        Error::system(format!(
            "exec: {FAKE_COMMAND}: unknown program {rest:?}: use exit N, print TEXT, \
             print-stderr TEXT, cat, sleep, oom or output N"
        ))
    };
    let program = match rest.as_slice() {
        ["exit", code] => Program::Exit(code.parse().map_err(|_| bad())?),
        ["print", text] => Program::Print((*text).to_owned()),
        ["print-stderr", text] => Program::PrintStderr((*text).to_owned()),
        ["cat"] => Program::Cat,
        ["sleep"] => Program::Sleep,
        ["oom"] => Program::Oom,
        ["output", n] => Program::Output {
            bytes: n.parse().map_err(|_| bad())?,
        },
        _ => return Err(bad()),
    };
    Ok(Some(program))
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// It exited with the code.
    Exit(u32),
    /// A signal ended it.
    Signal(i32),
    /// The OOM killer ended it.
    Oom,
}

/// A message to a process's standard input.
#[derive(Debug)]
pub(crate) enum StdinMsg {
    Data(Vec<u8>),
    Eof,
}

/// Where a process writes one output stream; the engine's end can be
/// replaced (on restore).
pub(crate) type OutSink = Arc<tokio::sync::Mutex<Option<DuplexStream>>>;

/// The pipe capacity of the fake's streams.
pub(crate) const PIPE_SIZE: usize = 64 * 1024;

/// Everything a running program touches.
pub(crate) struct ProcessIo {
    pub stdin: Option<mpsc::UnboundedReceiver<StdinMsg>>,
    pub stdout: OutSink,
    /// `None` on a terminal: stderr goes to stdout.
    pub stderr: Option<OutSink>,
    /// A signal or a forced exit ends the program.
    pub control: watch::Receiver<Option<End>>,
    /// Set while the container is paused.
    pub frozen: watch::Receiver<bool>,
}

/// Scripted changes to what a program does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tweaks {
    pub run_for: Option<Duration>,
    pub stdout: Option<Vec<u8>>,
    pub exit_code: Option<u32>,
}

/// Runs `program` to its end; closes its output streams.
pub(crate) async fn run(program: Program, mut io: ProcessIo, tweaks: Tweaks) -> End {
    let mut control = io.control.clone();
    let end = tokio::select! {
        biased;
        end = control.wait_for(Option::is_some) => match end {
            Ok(end) => end.unwrap_or(End::Signal(9)),
            // The process's owner is gone: it was deleted.
            Err(_) => End::Signal(9),
        },
        end = body(&program, &mut io, &tweaks) => end,
    };
    close(&io.stdout).await;
    if let Some(err) = &io.stderr {
        close(err).await;
    }
    match (end, tweaks.exit_code) {
        (End::Exit(_), Some(code)) => End::Exit(code),
        (end, _) => end,
    }
}

async fn body(program: &Program, io: &mut ProcessIo, tweaks: &Tweaks) -> End {
    if let Some(d) = tweaks.run_for {
        tokio::time::sleep(d).await;
    }
    thawed(&mut io.frozen).await;
    if let Some(text) = &tweaks.stdout {
        write(&io.stdout, text, &mut io.frozen).await;
    }
    match program {
        Program::Exit(code) => End::Exit(u32::from(*code)),
        Program::Print(text) => {
            write(&io.stdout, text.as_bytes(), &mut io.frozen).await;
            End::Exit(0)
        }
        Program::PrintStderr(text) => {
            let sink = io.stderr.as_ref().unwrap_or(&io.stdout).clone();
            write(&sink, text.as_bytes(), &mut io.frozen).await;
            End::Exit(0)
        }
        Program::Cat => {
            if let Some(stdin) = io.stdin.as_mut() {
                while let Some(StdinMsg::Data(chunk)) = stdin.recv().await {
                    write(&io.stdout, &chunk, &mut io.frozen).await;
                }
            }
            End::Exit(0)
        }
        Program::Sleep => std::future::pending().await,
        Program::Oom => End::Oom,
        Program::Output { bytes } => {
            let chunk = pattern_chunk();
            let mut left = *bytes;
            while left > 0 {
                let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
                write(&io.stdout, chunk.get(..n).unwrap_or(&chunk), &mut io.frozen).await;
                left -= n as u64;
            }
            End::Exit(0)
        }
        // Parsed programs never include Missing (it fails to start).
        _ => End::Exit(127),
    }
}

/// The bytes [`Program::Output`] writes, repeated: `0123456789abcdef...`.
fn pattern_chunk() -> Vec<u8> {
    // A whole number of alphabets, so that chunks continue the pattern.
    output_pattern(37 * 256)
}

/// The first `len` bytes [`Program::Output`] writes on the fake.
pub fn output_pattern(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz\n";
    ALPHABET.iter().copied().cycle().take(len).collect()
}

async fn thawed(frozen: &mut watch::Receiver<bool>) {
    // A closed channel means the task is gone; nothing to wait for.
    let _ = frozen.wait_for(|f| !*f).await;
}

async fn write(sink: &OutSink, data: &[u8], frozen: &mut watch::Receiver<bool>) {
    for piece in data.chunks(PIPE_SIZE / 4) {
        thawed(frozen).await;
        let mut out = sink.lock().await;
        if let Some(stream) = out.as_mut()
            && stream.write_all(piece).await.is_err()
        {
            // The engine dropped its end: the output is discarded.
            *out = None;
        }
    }
}

async fn close(sink: &OutSink) {
    if let Some(mut stream) = sink.lock().await.take() {
        let _ = stream.shutdown().await;
    }
}

/// Copies what the engine writes to a process's stdin into its channel;
/// EOF (the engine shut its stream down) closes the process's stdin.
pub(crate) async fn relay_stdin(mut from: DuplexStream, to: mpsc::UnboundedSender<StdinMsg>) {
    let mut buf = vec![0u8; PIPE_SIZE / 4];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.send(StdinMsg::Eof);
                return;
            }
            Ok(n) => {
                let chunk = buf.get(..n).unwrap_or_default().to_vec();
                if to.send(StdinMsg::Data(chunk)).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        for p in [
            Program::Exit(7),
            Program::Print("a b".into()),
            Program::PrintStderr("e".into()),
            Program::Cat,
            Program::Sleep,
            Program::Oom,
            Program::Output { bytes: 12345 },
        ] {
            assert_eq!(parse_args(&program_args(&p)).unwrap(), Some(p));
        }
        assert!(parse_args(&program_args(&Program::Missing)).is_err());
        assert_eq!(parse_args(&["sh".into()]).unwrap(), None);
        assert!(parse_args(&[]).is_err());
        assert!(parse_args(&[FAKE_COMMAND.into(), "exit".into(), "x".into()]).is_err());
    }

    #[test]
    fn pattern_is_stable() {
        assert_eq!(&output_pattern(12), b"0123456789ab");
        assert_eq!(output_pattern(100_000).len(), 100_000);
        let chunk = pattern_chunk();
        let twice: Vec<u8> = chunk.iter().chain(chunk.iter()).copied().collect();
        assert_eq!(twice, output_pattern(2 * chunk.len()));
    }
}
