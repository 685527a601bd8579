//! What `/proc` tells about the host's processes: whether one runs and who
//! it is, its cgroups and unix sockets, and the runc shims serving a socket (killed
//! when an embedded daemon's state goes away at process exit).
//!
//! A pid read from `/proc` may be reused by the time it is signalled. So a
//! process is signalled through a pidfd opened first, after checking that
//! the pid still names the process that was read (its start time, and its
//! parent for a shim's child): the pidfd then holds that very process, and
//! the signal cannot reach another one.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Who a process is, as `/proc/<pid>/stat` says: its start time (clock
/// ticks after boot), which differs for a process that reuses the pid, and
/// its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    start: u64,
    parent: i32,
}

impl Identity {
    /// The identity of `pid` now; `None` when it is gone (or a zombie,
    /// whose pid can be reused as soon as it is reaped).
    pub(crate) fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Self::parse(&stat)
    }

    /// Whether `pid` still names this process.
    pub(crate) fn still(self, pid: u32) -> bool {
        i32::try_from(pid).ok().and_then(Self::of) == Some(self)
    }

    /// Reads a `stat` line: the fields after the command's closing
    /// parenthesis (the command may hold spaces and parentheses) are state,
    /// parent, ..., start time (the 22nd field of the line).
    fn parse(stat: &str) -> Option<Self> {
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if *fields.first()? == "Z" {
            return None;
        }
        Some(Self {
            parent: fields.get(1)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }
}

/// What [`signal_checked`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signalled {
    /// The process was signalled.
    Yes,
    /// No process has the pid any more.
    Gone,
    /// The pid now names another process, which was left alone.
    Reused,
}

/// Sends `signal` to `pid` if it is still the process `expected` describes.
///
/// A pidfd is opened first, then the identity checked: if the pid still
/// names that process after the pidfd was opened, the pidfd holds it, and
/// the signal goes through the pidfd. On a kernel without pidfds (before
/// Linux 5.3) the signal goes to the pid after the same check, which leaves
/// a reuse in the moment between them possible; that is logged once.
pub(crate) fn signal_checked(pid: i32, expected: Identity, signal: Signal) -> Signalled {
    let fd = match pidfd_open(pid) {
        Ok(fd) => Some(fd),
        Err(Errno::ESRCH) => return Signalled::Gone,
        Err(e) => {
            no_pidfd(e);
            None
        }
    };
    match Identity::of(pid) {
        None => return Signalled::Gone,
        Some(now) if now != expected => return Signalled::Reused,
        Some(_) => {}
    }
    let sent = match &fd {
        Some(fd) => pidfd_send_signal(fd, signal),
        None => kill(Pid::from_raw(pid), signal),
    };
    match sent {
        Ok(()) => Signalled::Yes,
        // It ended after the check.
        Err(_) => Signalled::Gone,
    }
}

/// Says, once per process, that pids are signalled without a pidfd.
fn no_pidfd(e: Errno) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(error = %e, "no pidfd (Linux 5.3+): processes are signalled by pid after an identity check");
    });
}

/// `pidfd_open(2)`.
fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: the syscall takes a pid and flags and returns a new file
    // descriptor, or -1 with errno set.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`, with no siginfo.
fn pidfd_send_signal(fd: &OwnedFd, signal: Signal) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: the syscall reads a live pidfd, a signal number, a null
    // siginfo and no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Whether `pid` is a running containerd started with `config` (its
/// `--config` argument): what the supervisor checks before it signals a
/// daemon it did not start itself. A pid is reused once its process is
/// reaped (32768 pids go round quickly on a busy host), so a pid read
/// earlier may name a container's process by now.
pub(crate) fn is_daemon_with_config(pid: u32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let config = config.as_os_str().as_encoded_bytes();
    let mut args = cmdline.split(|b| *b == 0);
    let is_containerd = args
        .next()
        .is_some_and(|a| a.rsplit(|b| *b == b'/').next() == Some(b"containerd".as_slice()));
    // A zombie's cmdline is empty: it is no containerd here either.
    is_containerd && args.any(|a| a == config)
}

/// The cgroup directories of process `pid` (v1 controllers and v2), except the root.
fn cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if rel.is_empty() {
                return None;
            }
            let base = match controllers {
                // cgroup v2, mounted at `unified` on hybrid hosts.
                "" if Path::new("/sys/fs/cgroup/unified").is_dir() => {
                    PathBuf::from("/sys/fs/cgroup/unified")
                }
                "" => PathBuf::from("/sys/fs/cgroup"),
                c => PathBuf::from("/sys/fs/cgroup").join(c.trim_start_matches("name=")),
            };
            Some(base.join(rel))
        })
        .filter(|d| d.is_dir())
        .collect()
}

/// The unix socket files process `pid` has open (a shim's listening socket).
pub(crate) fn unix_socket_paths(pid: i32) -> Vec<PathBuf> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")
                        .and_then(|r| r.strip_suffix(']'))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(unix_socket_line)
        .filter(|(inode, path)| inodes.iter().any(|i| i == inode) && path.starts_with('/'))
        .map(|(_, path)| PathBuf::from(path))
        .collect()
}

/// The inode and path of one line of `/proc/net/unix`: seven columns (the
/// inode, the seventh, padded with spaces), then one space and the path,
/// which is the rest of the line and may hold spaces itself (a state
/// directory is the user's choice). `None` for a socket without a path.
fn unix_socket_line(line: &str) -> Option<(&str, &str)> {
    let mut rest = line;
    let mut inode = "";
    for _ in 0..7 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        inode = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.strip_prefix(' ')?;
    (!inode.is_empty() && !path.is_empty()).then_some((inode, path))
}

/// Every mount point of this process's mount namespace (where containerd,
/// started by this process, mounts too); none when `/proc` cannot be read.
pub(crate) fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

/// A mountinfo field with its octal escapes (`\040` for a space, as the
/// kernel writes space, tab, newline and backslash) undone.
fn unescape_octal(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// SIGKILLs the processes of every runc shim serving `socket`, then the
/// shims, and removes their sockets.
pub(crate) fn kill_shims_of(socket: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let needle = socket.as_os_str().as_encoded_bytes();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Read before the command line: an identity that still holds after
        // the pidfd is opened is the one whose command line was read.
        let Some(shim) = Identity::of(pid) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let is_shim = cmdline
            .split(|b| *b == 0)
            .any(|a| a.ends_with(b"containerd-shim-runc-v2"))
            && cmdline.split(|b| *b == 0).any(|a| a == needle);
        if !is_shim {
            continue;
        }
        let mut cgroups = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                for child in children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok())
                {
                    let Some(id) = Identity::of(child).filter(|c| c.parent == pid) else {
                        continue;
                    };
                    cgroups.extend(cgroup_dirs(child));
                    signal_checked(child, id, Signal::SIGKILL);
                }
            }
        }
        let sockets = unix_socket_paths(pid);
        if signal_checked(pid, shim, Signal::SIGKILL) != Signalled::Yes {
            // Gone, or someone else's now: its sockets are not the shim's.
            continue;
        }
        for path in sockets {
            let _ = std::fs::remove_file(path);
        }
        // The containers' cgroups empty as their processes die.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for dir in cgroups {
            while std::fs::remove_dir(&dir).is_err()
                && dir.exists()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap()
    }

    fn pid_of(child: &std::process::Child) -> i32 {
        i32::try_from(child.id()).unwrap()
    }

    #[test]
    fn a_checked_process_is_signalled_through_its_pidfd() {
        let mut child = sleeper();
        let pid = pid_of(&child);
        let id = Identity::of(pid).unwrap();
        assert_eq!(id.parent, i32::try_from(std::process::id()).unwrap());
        assert!(id.still(child.id()));
        assert_eq!(signal_checked(pid, id, Signal::SIGKILL), Signalled::Yes);
        let status = child.wait().unwrap();
        assert!(!id.still(child.id()));
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        // Reaped: the pid names no process (or, reused, another one).
        let after = signal_checked(pid, id, Signal::SIGKILL);
        assert!(
            matches!(after, Signalled::Gone | Signalled::Reused),
            "{after:?}"
        );
    }

    #[test]
    fn a_pid_naming_another_process_is_left_alone() {
        let mut child = sleeper();
        let pid = pid_of(&child);
        let id = Identity::of(pid).unwrap();
        // As if the process read had ended and its pid been reused.
        let other = Identity {
            start: id.start + 1,
            ..id
        };
        assert_eq!(
            signal_checked(pid, other, Signal::SIGKILL),
            Signalled::Reused
        );
        assert!(child.try_wait().unwrap().is_none(), "it was killed");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_zombie_has_no_identity() {
        let mut child = sleeper();
        let pid = pid_of(&child);
        let id = Identity::of(pid).unwrap();
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        // Unreaped, it is a zombie: gone as far as signals go.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Identity::of(pid).is_some() {
            assert!(std::time::Instant::now() < deadline, "never a zombie");
            std::thread::yield_now();
        }
        assert_eq!(signal_checked(pid, id, Signal::SIGKILL), Signalled::Gone);
        child.wait().unwrap();
    }

    #[test]
    fn stat_lines_are_read_past_odd_commands() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 2 3";
        assert_eq!(
            Identity::parse(line),
            Some(Identity {
                start: 98765,
                parent: 7
            })
        );
        assert_eq!(Identity::parse("42 (z) Z 7 0 0"), None);
        assert_eq!(Identity::parse("42 (short) S 7"), None);
        assert_eq!(Identity::parse("garbage"), None);
    }

    #[test]
    fn a_daemon_is_known_by_its_name_and_config_not_its_pid_alone() {
        let dir = tempfile::tempdir().unwrap();
        // A process named containerd with a --config argument: bash under
        // that name, running a command it does not exec into.
        let fake = dir.path().join("containerd");
        std::os::unix::fs::symlink("/bin/bash", &fake).unwrap();
        let config = dir.path().join("containerd.toml");
        let mut child = std::process::Command::new(&fake)
            .args(["-c", "sleep 100; true", "--config"])
            .arg(&config)
            .spawn()
            .unwrap();
        let pid = child.id();
        // spawn can return while the exec is still under way (the command
        // line is empty until the new program's is in place).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty()) {
            assert!(std::time::Instant::now() < deadline, "the exec never ended");
            std::thread::yield_now();
        }
        assert!(is_daemon_with_config(pid, &config));
        assert!(!is_daemon_with_config(pid, &dir.path().join("other.toml")));
        assert!(
            !is_daemon_with_config(std::process::id(), &config),
            "not containerd"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !is_daemon_with_config(pid, &config),
            "gone (or another process now)"
        );
    }

    #[test]
    fn mount_points_are_read_with_their_escapes_undone() {
        assert_eq!(unescape_octal(r"/a\040b\011c\134d"), "/a b\tc\\d");
        // Not an escape: kept as it is.
        assert_eq!(unescape_octal(r"/x\09y\"), r"/x\09y\");
        let points = mount_points();
        assert!(points.iter().any(|p| p == Path::new("/")), "{points:?}");
    }

    #[test]
    fn unix_socket_paths_keep_their_spaces() {
        let table = [
            "0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/a b/shim.sock",
            "0000000000000000: 00000002 00000000 00010000 0001 01  2345 /tmp/x",
            "0000000000000000: 00000003 00000000 00000000 0001 03 99999",
            "0000000000000000: 00000002 00000000 00010000 0001 01 777 @abstract",
        ];
        let parsed: Vec<_> = table.iter().map(|l| unix_socket_line(l)).collect();
        assert_eq!(
            parsed,
            [
                Some(("12345", "/run/a b/shim.sock")),
                Some(("2345", "/tmp/x")),
                None,
                Some(("777", "@abstract")),
            ]
        );
    }
}
