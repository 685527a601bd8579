//! What the fault, restart, chaos and runtime tests share: an embedded
//! daemon that is restarted quickly, the scan for anything a namespace left
//! behind, the containerds of a config, a shim's pid and sockets, and the
//! conformance suite's fixture (`fixture.rs`).

#![allow(dead_code)] // each test binary uses its own part

pub(crate) mod fixture;

use std::path::{Path, PathBuf};
use std::time::Duration;

use libctd_core::oci_spec::runtime::Spec;
use libctd_linux::{HealthCheck, LinuxRemote, LinuxRemoteBuilder};
use libctd_testkit::containerd::{containerd_binary, shims_of};

/// How long the scan waits for what is still being torn down.
const T: Duration = Duration::from_secs(30);

/// An embedded daemon on `dir` whose death or hang is noticed quickly.
pub(crate) fn embedded(dir: &Path) -> LinuxRemoteBuilder {
    LinuxRemote::builder()
        .state_dir(dir)
        .containerd_binary(containerd_binary())
        .health_check(HealthCheck {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(500),
            failures: 3,
        })
}

/// Waits until `remote`'s supervisor restarted its daemon (more than
/// `before` restarts, a pid other than `old_pid`) and the new one answers.
pub(crate) async fn wait_restarted(remote: &LinuxRemote, before: u64, old_pid: u32) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        if remote.restarts() > before
            && remote.daemon_pid().is_some_and(|p| p != old_pid)
            && remote.is_healthy(Duration::from_secs(1)).await
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "containerd was not restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn cgroup_of(spec: &Spec) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .expect("the harness sets a cgroup path")
}

/// The ids of the containers and tasks containerd (at `socket`) holds in `ns`.
pub(crate) async fn containerd_holds(socket: &Path, ns: &str) -> (Vec<String>, Vec<String>) {
    use containerd_client::services::v1::containers_client::ContainersClient;
    use containerd_client::services::v1::tasks_client::TasksClient;
    use containerd_client::services::v1::{ListContainersRequest, ListTasksRequest};
    let channel = containerd_client::connect(socket).await.unwrap();
    fn with_ns<T>(ns: &str, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut()
            .insert("containerd-namespace", ns.parse().unwrap());
        r
    }
    let containers = ContainersClient::new(channel.clone())
        .list(with_ns(ns, ListContainersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .containers;
    let tasks = TasksClient::new(channel)
        .list(with_ns(ns, ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    (
        containers.into_iter().map(|c| c.id).collect(),
        tasks.into_iter().map(|t| t.id).collect(),
    )
}

/// Every process's pid, /proc directory and command line.
fn processes() -> impl Iterator<Item = (u32, PathBuf, Vec<u8>)> {
    std::fs::read_dir("/proc").unwrap().filter_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        Some((pid, e.path(), cmdline))
    })
}

/// The processes whose command line names `root` (a runtime's state root):
/// runc while it runs a command, gVisor's sandbox and gofer for as long as
/// they live (`--root=<dir>`), with their program's name.
pub(crate) fn runtime_processes(root: &Path) -> Vec<(u32, String)> {
    let root = root.as_os_str().as_encoded_bytes();
    processes()
        .filter_map(|(pid, _, cmdline)| {
            let mut args = cmdline.split(|b| *b == 0);
            let first = String::from_utf8_lossy(args.next()?).into_owned();
            let names = std::iter::once(first.as_bytes())
                .chain(args)
                .any(|a| a == root || a.strip_prefix(b"--root=".as_slice()) == Some(root));
            names.then_some((pid, first))
        })
        .collect()
}

/// Waits until nothing of namespace `ns` remains: no container, task,
/// image, lease, blob or snapshot in containerd, no shim, no runtime
/// process (runc, gVisor's sandbox and gofer), no runc state, no bundle, no
/// FIFO, none of `cgroups`; fails listing what is left.
pub(crate) async fn assert_nothing_left(remote: &LinuxRemote, ns: &str, cgroups: &[PathBuf]) {
    let state_dir = &remote.config().state_dir;
    let (containers, tasks) = containerd_holds(&remote.socket(), ns).await;
    assert!(
        containers.is_empty() && tasks.is_empty(),
        "containerd still holds containers {containers:?} and tasks {tasks:?} in {ns}"
    );
    let store = remote.image_store(ns).unwrap();
    let held = (
        store.image_names().await.unwrap(),
        store.leases().await.unwrap(),
        store.contents().await.unwrap(),
        store.snapshots("overlayfs").await.unwrap(),
        store.snapshots("native").await.unwrap(),
    );
    assert!(
        held.0.is_empty()
            && held.1.is_empty()
            && held.2.is_empty()
            && held.3.is_empty()
            && held.4.is_empty(),
        "containerd still holds images, leases, content, overlayfs and native snapshots \
         {held:?} in {ns}"
    );
    let runc = state_dir.join("runc").join(ns);
    let bundles = state_dir
        .join("daemon/state/io.containerd.runtime.v2.task")
        .join(ns);
    let fifos = state_dir.join("fifo").join(ns);
    let kept = state_dir.join("exits").join(ns);
    let left = || {
        let mut left = Vec::new();
        let shims = shims_of(ns);
        if !shims.is_empty() {
            left.push(format!("shims {shims:?}"));
        }
        let runtimes = runtime_processes(&runc);
        if !runtimes.is_empty() {
            left.push(format!("runtime processes {runtimes:?}"));
        }
        for (what, dir) in [
            ("runc state", &runc),
            ("bundles", &bundles),
            ("FIFOs", &fifos),
            ("kept exits", &kept),
        ] {
            let e = entries(dir);
            if !e.is_empty() {
                left.push(format!("{what} {e:?}"));
            }
        }
        for cgroup in cgroups {
            let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
            for controller in entries(Path::new("/sys/fs/cgroup")) {
                let dir = Path::new("/sys/fs/cgroup").join(controller).join(rel);
                if dir.is_dir() {
                    left.push(format!("cgroup {}", dir.display()));
                }
            }
        }
        left
    };
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = left();
        if now.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind in {ns}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// containerd processes whose command line names `config`.
pub(crate) fn daemons_of(config: &Path) -> Vec<u32> {
    let needle = config.as_os_str().as_encoded_bytes();
    processes()
        .filter_map(|(pid, dir, cmdline)| {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let zombie = stat.rsplit(')').next()?.trim_start().starts_with('Z');
            (!zombie && cmdline.split(|b| *b == 0).any(|a| a == needle)).then_some(pid)
        })
        .collect()
}

/// The pid of the shim that is the parent of container process `pid`.
pub(crate) fn shim_of(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// The socket files a shim listens on (from /proc).
pub(crate) fn shim_sockets(pid: i32) -> Vec<PathBuf> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (inode, path) = (cols.get(6)?, cols.get(7)?);
            (inodes.iter().any(|i| i == inode) && path.starts_with('/'))
                .then(|| PathBuf::from(path))
        })
        .collect()
}
