//! The processes' script language: what a process of the model runs.
//!
//! A command line is a tiny script: statements separated by a `;`
//! argument, run in order; the process exits with 0 at the end.
//!
//! | statement          | effect                                                 |
//! |--------------------|--------------------------------------------------------|
//! | `exit N`           | exit with code N (decimal, negative, or `0x` hex)      |
//! | `echo WORDS...`    | print the words and a newline on stdout                |
//! | `echoerr WORDS...` | the same on stderr (stdout with a console)             |
//! | `print TEXT`       | write TEXT (one argument, any characters) on stdout    |
//! | `printerr TEXT`    | the same on stderr (stdout with a console)             |
//! | `cat`              | copy stdin to stdout until EOF or the handle is closed |
//! | `bytes N`          | write N bytes on stdout                                |
//! | `sleep`            | wait until signalled, terminated or shut down          |
//! | `sleepms N`        | wait N milliseconds                                    |
//!
//! A script with an unknown statement cannot be started ([`Program::parse`]
//! fails with `ERROR_FILE_NOT_FOUND`, as for a program that does not exist).
//! Bad arguments print an error on stderr and exit with
//! [`UNKNOWN_COMMAND_EXIT`]. The model parses and steps through a script;
//! each face only moves the bytes ([`Step`]) over its own pipes.

use std::collections::VecDeque;
use std::time::Duration;

use super::FILE_NOT_FOUND;
use super::documents::failure;
use crate::convert::split_command_line;
use crate::error::HcsError;

/// The exit code of a statement with bad arguments.
pub const UNKNOWN_COMMAND_EXIT: u32 = 9009;

/// How much `bytes` writes at once.
const CHUNK: usize = 8192;

/// A stream a process writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error (standard output on a console).
    Err,
}

/// What a face does next for a running script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the bytes on the stream.
    Write(Stream, Vec<u8>),
    /// Copy stdin to stdout until EOF, or until stdin is closed by a
    /// `CloseHandle` request.
    Cat,
    /// Wait until the process is ended (signal, terminate, shutdown).
    Sleep,
    /// Wait this long (or until the process is ended).
    Pause(Duration),
    /// Exit with the code.
    Exit(u32),
}

/// A statement, its arguments checked when it runs.
#[derive(Debug, Clone)]
enum Statement {
    Exit(Option<String>),
    Echo(Stream, String),
    Print(Stream, String),
    Bytes(Option<usize>),
    Cat,
    Sleep,
    SleepMs(u64),
}

/// A parsed script, stepped through by its face.
#[derive(Debug, Clone)]
pub struct Program {
    statements: VecDeque<Statement>,
    /// Bytes still to write for a `bytes` statement.
    filling: usize,
    /// The step after a bad argument's message.
    pending_exit: Option<u32>,
}

impl Program {
    /// Parses a command line. An unknown statement is a program that does
    /// not exist: `ERROR_FILE_NOT_FOUND` with a result document.
    pub fn parse(command_line: &str) -> Result<Self, HcsError> {
        let args = split_command_line(command_line);
        let mut statements = VecDeque::new();
        for statement in args.split(|a| a == ";") {
            let Some((cmd, rest)) = statement.split_first() else {
                continue;
            };
            let words = rest.join(" ");
            statements.push_back(match cmd.as_str() {
                "exit" => Statement::Exit(rest.first().cloned()),
                "echo" => Statement::Echo(Stream::Out, words),
                "echoerr" => Statement::Echo(Stream::Err, words),
                "print" => Statement::Print(Stream::Out, words),
                "printerr" => Statement::Print(Stream::Err, words),
                "bytes" => Statement::Bytes(rest.first().and_then(|n| n.parse().ok())),
                "cat" => Statement::Cat,
                "sleep" => Statement::Sleep,
                "sleepms" => {
                    Statement::SleepMs(rest.first().and_then(|n| n.parse().ok()).unwrap_or(0))
                }
                unknown => {
                    return Err(failure(FILE_NOT_FOUND, &format!("no program {unknown:?}")));
                }
            });
        }
        Ok(Self {
            statements,
            filling: 0,
            pending_exit: None,
        })
    }

    /// The image name a process list shows: the first word.
    pub fn image(command_line: &str) -> String {
        split_command_line(command_line)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The next step; [`Step::Exit`] once the script is done.
    pub fn next_step(&mut self) -> Step {
        if let Some(code) = self.pending_exit {
            return Step::Exit(code);
        }
        if self.filling > 0 {
            let k = self.filling.min(CHUNK);
            self.filling -= k;
            return Step::Write(Stream::Out, filler(k));
        }
        let Some(statement) = self.statements.pop_front() else {
            return Step::Exit(0);
        };
        match statement {
            Statement::Exit(None) => Step::Exit(0),
            Statement::Exit(Some(arg)) => match parse_code(&arg) {
                Some(code) => Step::Exit(code),
                None => self.bad(format!("bad exit code {arg:?}\n")),
            },
            Statement::Echo(stream, words) => Step::Write(stream, format!("{words}\n").into()),
            Statement::Print(stream, text) => Step::Write(stream, text.into()),
            Statement::Bytes(None) => self.bad("bytes needs a count\n".to_owned()),
            Statement::Bytes(Some(n)) => {
                self.filling = n;
                self.next_step()
            }
            Statement::Cat => Step::Cat,
            Statement::Sleep => Step::Sleep,
            Statement::SleepMs(ms) => Step::Pause(Duration::from_millis(ms)),
        }
    }

    /// Gives up the rest of a `bytes` statement (its reader went away).
    pub fn stop_filling(&mut self) {
        self.filling = 0;
    }

    /// A bad argument: its message on stderr, then exit 9009.
    fn bad(&mut self, message: String) -> Step {
        self.pending_exit = Some(UNKNOWN_COMMAND_EXIT);
        Step::Write(Stream::Err, message.into_bytes())
    }
}

/// `n` bytes of the alphabet, over and over.
fn filler(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// An exit code: decimal, negative decimal (two's complement) or `0x` hex.
fn parse_code(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    s.parse::<u32>()
        .ok()
        .or_else(|| s.parse::<i32>().ok().map(|v| v as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Hresult, win32};

    fn steps(line: &str) -> Vec<Step> {
        let mut p = Program::parse(line).unwrap();
        let mut out = Vec::new();
        loop {
            let s = p.next_step();
            let done = matches!(s, Step::Exit(_));
            out.push(s);
            if done {
                return out;
            }
        }
    }

    #[test]
    fn statements_step_in_order() {
        assert_eq!(
            steps("echo a b ; printerr x ; bytes 10 ; sleepms 5 ; exit 0x10"),
            vec![
                Step::Write(Stream::Out, b"a b\n".to_vec()),
                Step::Write(Stream::Err, b"x".to_vec()),
                Step::Write(Stream::Out, b"abcdefghij".to_vec()),
                Step::Pause(Duration::from_millis(5)),
                Step::Exit(16),
            ]
        );
        assert_eq!(steps("exit -1"), vec![Step::Exit(u32::MAX)]);
        assert_eq!(steps(""), vec![Step::Exit(0)]);
        let big = steps("bytes 20000");
        assert_eq!(big.len(), 4, "three chunks and the exit");
    }

    #[test]
    fn bad_arguments_print_and_exit_9009() {
        assert_eq!(
            steps("exit seven ; echo never"),
            vec![
                Step::Write(Stream::Err, b"bad exit code \"seven\"\n".to_vec()),
                Step::Exit(UNKNOWN_COMMAND_EXIT),
            ]
        );
        assert_eq!(steps("bytes")[1], Step::Exit(UNKNOWN_COMMAND_EXIT));
    }

    #[test]
    fn unknown_programs_do_not_start() {
        let err = Program::parse("echo a ; frobnicate").unwrap_err();
        assert_eq!(err.hresult, Hresult::from_win32(win32::FILE_NOT_FOUND));
        assert!(err.text().contains("frobnicate") || err.detail.is_some());
    }
}
