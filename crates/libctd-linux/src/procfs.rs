//! What `/proc` tells about the host's processes: whether one runs, its
//! cgroups and unix sockets, and the runc shims serving a socket (killed
//! when an embedded daemon's state goes away at process exit).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Whether `pid` runs (a zombie counts as gone).
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|rest| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
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
    is_containerd && args.any(|a| a == config) && process_alive(pid)
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
                    cgroups.extend(cgroup_dirs(child));
                    let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
                }
            }
        }
        let sockets = unix_socket_paths(pid);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
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
