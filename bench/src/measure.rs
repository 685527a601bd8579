//! Readings of this process (CPU time, context switches, RSS, heap, open
//! descriptors, threads, tokio tasks) and of the shims a namespace uses.

use std::time::Duration;

/// A mebibyte.
pub(crate) const MIB: u64 = 1 << 20;

/// Resource usage of this process, or of its waited-for children.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// CPU time in user mode.
    pub(crate) user: Duration,
    /// CPU time in the kernel.
    pub(crate) sys: Duration,
    /// Voluntary context switches (blocking waits).
    pub(crate) vcsw: i64,
    /// Involuntary context switches (preemptions).
    pub(crate) ivcsw: i64,
}

impl Usage {
    /// The usage of `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`) so far; zero
    /// should getrusage fail.
    pub(crate) fn of(who: libc::c_int) -> Self {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a whole `rusage` into the pointer it is
        // given, which points to a zeroed, properly aligned `rusage` we own.
        let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
        if rc != 0 {
            return Self::default();
        }
        // SAFETY: the struct was zero-initialised (a valid `rusage`) and then
        // filled by a successful getrusage.
        let ru = unsafe { ru.assume_init() };
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        Self {
            user: tv(ru.ru_utime),
            sys: tv(ru.ru_stime),
            vcsw: ru.ru_nvcsw,
            ivcsw: ru.ru_nivcsw,
        }
    }

    /// User and kernel CPU time together.
    pub(crate) fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    /// The usage between `earlier` and this reading.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            vcsw: self.vcsw - earlier.vcsw,
            ivcsw: self.ivcsw - earlier.ivcsw,
        }
    }
}

/// The CPU time of `who` so far.
fn cpu_time(who: libc::c_int) -> Duration {
    Usage::of(who).cpu()
}

/// This process's CPU time so far.
pub(crate) fn cpu_self() -> Duration {
    cpu_time(libc::RUSAGE_SELF)
}

/// The CPU time of this process's waited-for children so far.
pub(crate) fn cpu_children() -> Duration {
    cpu_time(libc::RUSAGE_CHILDREN)
}

/// This process's resident set size in bytes (VmRSS).
pub(crate) fn rss_bytes() -> u64 {
    vm_rss("self")
}

/// The resident set size in bytes of process `pid` (a pid or `self`), 0 if
/// it cannot be read.
fn vm_rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `d` in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Bytes the allocator has handed out and not taken back (mallinfo2).
pub(crate) fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

/// (count, total RSS bytes) of the runc shims serving namespace `ns`.
pub(crate) fn shims_of(ns: &str) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut found = (0, 0);
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|c| *c == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
        let serves = args
            .windows(2)
            .any(|w| w[0] == b"-namespace" && w[1] == ns.as_bytes());
        if is_shim && serves {
            found = (found.0 + 1, found.1 + vm_rss(&pid.to_string()));
        }
    }
    found
}

/// One reading of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// How many lifecycles had run when it was taken.
    pub(crate) lifecycles: usize,
    /// Resident set size, bytes.
    pub(crate) rss: u64,
    /// Heap in use, bytes ([`heap_in_use`]).
    pub(crate) heap: u64,
    /// Open file descriptors.
    pub(crate) fds: usize,
    /// Threads.
    pub(crate) threads: usize,
    /// Tasks alive on the current tokio runtime.
    pub(crate) tasks: usize,
}

impl Sample {
    /// A reading now, after `lifecycles` lifecycles; on a tokio runtime.
    pub(crate) fn now(lifecycles: usize) -> Self {
        let count = |dir: &str| std::fs::read_dir(dir).map_or(0, Iterator::count);
        Self {
            lifecycles,
            rss: rss_bytes(),
            heap: heap_in_use(),
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_this_process() {
        let before = cpu_self();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(std::hint::black_box(x), 1);
        assert!(cpu_self() > before);
        assert!(rss_bytes() > 0);
    }
}
