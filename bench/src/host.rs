//! The machine the run happens on, and the processes it leaves.

use std::path::Path;
use std::time::SystemTime;

use libctd_core::Client;
use serde_json::{Value, json};

use crate::run::Bench;

/// The type of the filesystem holding `path`, from /proc/self/mounts.
pub(crate) fn fs_type(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map(|(_, kind)| kind)
        .unwrap_or_default()
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first line `cmd arg` prints, or nothing.
fn first_line(cmd: &str, arg: &str) -> String {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The machine, the kernel and the versions of containerd, runc and ctr.
pub(crate) async fn machine(b: &Bench) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    let containerd = b
        .off
        .client
        .version()
        .await
        .map(|v| v.version)
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": mem,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cgroup": if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "v2" } else { "v1" },
        "containerd": containerd,
        "runc": first_line("runc", "--version"),
        "ctr": first_line(&b.ctr.binary.to_string_lossy(), "--version"),
        "unix_time": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })
}

/// The processes naming `dir` that are still running `grace` after the
/// teardown (a shim exits on its own just after containerd answers its
/// last delete, so one seen at once may be on its way out). A real leak
/// stays and is reported: one grouped shim of the ShimGroup check
/// (`group-annotated-1`) outlived its daemon once on 2026-12-02, cause not
/// yet found.
pub(crate) async fn leftovers(dir: &Path, grace: std::time::Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let left = processes_mentioning(dir);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Pids of processes (other than this one) whose command line names `dir`:
/// the daemon and any shim it started.
fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}
