//! The end-of-run check of `cargo xtask ci`: no containerd, shim or
//! container started by this run's tests survives them.
//!
//! The test commands carry a variable naming the run. Processes inherit it
//! down the chain (test binary, its containerd, the shims containerd
//! starts), so a survivor is found by its environment, even while other
//! runs on the same machine (other checkouts, other users' engines) have
//! daemons and shims of their own, which the check never touches. A
//! container's processes get the environment of their OCI spec instead, so
//! they are found as the children of a marked shim. Survivors are listed,
//! killed (containers first, then shims, then daemons) and fail the run.

use std::path::Path;
use std::process::Command;

use crate::Result;

/// The variable that marks this run's processes.
const MARK_ENV: &str = "LIBCTD_CI_RUN";

/// One run's mark.
pub(crate) struct RunMark {
    token: String,
}

/// A surviving process.
struct Survivor {
    pid: u32,
    comm: String,
    /// A container process (a shim's child) rather than a shim or daemon.
    container: bool,
}

impl RunMark {
    /// A mark no other run uses (this process's pid and start time).
    pub(crate) fn new() -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Self {
            token: format!("{}-{started}", std::process::id()),
        }
    }

    /// Marks the processes `cmd` starts (and everything they start).
    pub(crate) fn mark(&self, cmd: &mut Command) {
        cmd.env(MARK_ENV, &self.token);
    }

    /// Fails, after killing them, when marked daemons or shims, or their
    /// containers, still run.
    pub(crate) fn check(&self) -> Result {
        let survivors = self.survivors();
        if survivors.is_empty() {
            println!("    none");
            return Ok(());
        }
        let list: Vec<String> = survivors
            .iter()
            .map(|s| {
                let what = if s.container { "container" } else { "" };
                format!("{} {} {what}", s.pid, s.comm)
            })
            .collect();
        // Containers first: a killed shim would orphan them.
        for s in survivors.iter().filter(|s| s.container) {
            kill(s.pid);
        }
        for s in survivors.iter().filter(|s| !s.container) {
            kill(s.pid);
        }
        Err(format!(
            "{} processes of this run survived its tests (now killed):\n    {}",
            survivors.len(),
            list.join("\n    ")
        ))
    }

    /// Marked containerd daemons and shims, and the shims' children.
    fn survivors(&self) -> Vec<Survivor> {
        let needle = format!("{MARK_ENV}={}", self.token);
        let mut found = Vec::new();
        for pid in pids() {
            let comm = read(&format!("/proc/{pid}/comm"));
            let comm = comm.trim();
            if !comm.starts_with("containerd") || !marked(pid, &needle) {
                continue;
            }
            if comm.starts_with("containerd-shim") {
                for child in children(pid) {
                    found.push(Survivor {
                        pid: child,
                        comm: read(&format!("/proc/{child}/comm")).trim().to_owned(),
                        container: true,
                    });
                }
            }
            found.push(Survivor {
                pid,
                comm: comm.to_owned(),
                container: false,
            });
        }
        found
    }
}

/// Every pid in /proc.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid`'s environment holds `needle` (`NAME=value`).
fn marked(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
}

/// The children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|t| {
            read(&t.path().join("children").to_string_lossy())
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(path)).unwrap_or_default()
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_process_is_found_by_its_environment() {
        let run = RunMark::new();
        let mut child = Command::new("sleep");
        child.arg("30");
        run.mark(&mut child);
        let mut child = child.spawn().unwrap();
        let needle = format!("{MARK_ENV}={}", run.token);
        // Until it has exec'd, the child shows its parent's environment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !marked(child.id(), &needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "the mark never showed"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!marked(std::process::id(), &needle));
        // `sleep` is not a containerd process: nothing to report.
        assert!(run.check().is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
