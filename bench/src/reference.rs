//! The references libctd is compared with, on the same daemon: a bare gRPC
//! event subscriber, `ctr` (the Go containerd client) and `runc` alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use libctd_core::{Error, Result};

use crate::measure::ms;
use crate::ours::{Ours, within};

/// A bare gRPC subscription to the same daemon's exit events, decoded and
/// timed on arrival: the floor of event latency (containerd's publishing and
/// one gRPC hop), against which ours (decode, queue, Backend) is compared.
pub(crate) struct RawExits {
    /// Each container's exit-event latency: from `exited_at` to arrival.
    seen: Arc<Mutex<HashMap<String, Duration>>>,
    /// The subscriber, aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl RawExits {
    /// Subscribes on `socket` to the exits of `namespaces`.
    pub(crate) async fn subscribe(socket: &Path, namespaces: &[&str]) -> Result<Self> {
        use containerd_client::events::TaskExit;
        use containerd_client::services::v1::SubscribeRequest;
        use containerd_client::services::v1::events_client::EventsClient;
        use prost::{Message, Name};

        let channel = containerd_client::connect(socket).await.map_err(|e| {
            Error::unavailable("cannot connect the raw event subscriber").with_source(e)
        })?;
        let filters = namespaces
            .iter()
            .map(|ns| format!("namespace=={ns},topic==\"/tasks/exit\""))
            .collect();
        let seen: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut events = EventsClient::new(channel);
            // containerd answers only with the first event; the request is
            // registered as soon as it arrives.
            let stream = match events.subscribe(SubscribeRequest { filters }).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("bench: the raw event subscription failed: {e}");
                    return;
                }
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(envelope)) = stream.message().await {
                let now = SystemTime::now();
                let Some(any) = envelope.event else { continue };
                if any.type_url != TaskExit::full_name() {
                    continue;
                }
                let Ok(exit) = TaskExit::decode(any.value.as_slice()) else {
                    continue;
                };
                let Some(at) = exit.exited_at else { continue };
                let at = SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(at.seconds).unwrap_or(0))
                    + Duration::from_nanos(u64::try_from(at.nanos).unwrap_or(0));
                if exit.id == exit.container_id {
                    record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            exit.container_id,
                            now.duration_since(at).unwrap_or_default(),
                        );
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// Latencies (ms) of `ids`, those that were seen.
    pub(crate) fn latencies_ms(&self, ids: &[String]) -> Vec<f64> {
        let map = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter()
            .filter_map(|id| map.get(id))
            .map(|d| ms(*d))
            .collect()
    }
}

/// libctd's own share of each exit event's latency: its `Backend` call's
/// latency minus the bare subscriber's, container by container (ms; negative
/// when the bare subscriber happened to be scheduled later).
pub(crate) fn paired_share_ms(o: &Ours, raw: &RawExits, ids: &[String]) -> Vec<f64> {
    let ours = o
        .recorder
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let bare = raw.seen.lock().unwrap_or_else(PoisonError::into_inner);
    ids.iter()
        .filter_map(|id| Some(ms(*ours.get(id)?) - ms(*bare.get(id)?)))
        .collect()
}

impl Drop for RawExits {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `ctr` against the same daemon, in a namespace of its own.
pub(crate) struct Ctr {
    /// The `ctr` binary (of the daemon's line).
    pub(crate) binary: PathBuf,
    /// Where ctr creates its FIFOs: beside ours, on the same filesystem.
    pub(crate) fifo_dir: PathBuf,
    /// The daemon's socket.
    pub(crate) socket: PathBuf,
    /// ctr's own namespace.
    pub(crate) namespace: String,
    /// The rootfs every container runs on.
    pub(crate) rootfs: PathBuf,
}

impl Ctr {
    /// `ctr` with the daemon, the namespace and quiet stdio.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `ctr run --rm --rootfs <rootfs> <id> <args>` with stdout to /dev/null:
    /// the whole process's wall time.
    pub(crate) async fn run(&self, id: &str, args: &[&str]) -> Result<Duration> {
        let mut cmd = self.command();
        cmd.arg("run")
            .arg("--rm")
            .arg("--fifo-dir")
            .arg(&self.fifo_dir)
            .arg("--rootfs")
            .arg(&self.rootfs)
            .arg(id)
            .args(args);
        timed_command("ctr run", id, cmd).await
    }

    /// `ctr images import <archive>` (which unpacks into the default
    /// snapshotter): the whole process's wall time.
    pub(crate) async fn import(&self, archive: &Path) -> Result<Duration> {
        let mut cmd = self.command();
        cmd.arg("images").arg("import").arg(archive);
        timed_command("ctr images import", "-", cmd).await
    }

    /// `ctr run --rm <image> <id> <args>`: the whole process's wall time.
    pub(crate) async fn run_image(&self, image: &str, id: &str, args: &[&str]) -> Result<Duration> {
        let mut cmd = self.command();
        cmd.arg("run")
            .arg("--rm")
            .arg("--fifo-dir")
            .arg(&self.fifo_dir)
            .arg(image)
            .arg(id)
            .args(args);
        timed_command("ctr run", id, cmd).await
    }

    /// `ctr images rm --sync <image>`: the image and what only it used go.
    pub(crate) async fn remove_image(&self, image: &str) -> Result<()> {
        let mut cmd = self.command();
        cmd.arg("images").arg("rm").arg("--sync").arg(image);
        timed_command("ctr images rm", "-", cmd).await.map(drop)
    }

    /// Removes the empty directories ctr's containers leave behind: the
    /// namespace's cgroup parents (`/<namespace>/<id>` by default) and its
    /// runc state root.
    pub(crate) fn remove_traces(&self) {
        let mut dirs = vec![
            Path::new("/sys/fs/cgroup").join(&self.namespace),
            Path::new("/run/containerd/runc").join(&self.namespace),
        ];
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(
                controllers
                    .flatten()
                    .map(|c| c.path().join(&self.namespace)),
            );
        }
        for dir in dirs {
            // Only empty directories go; anything else stays for a human to see.
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Best effort: removes whatever an interrupted `ctr run` left.
    pub(crate) async fn sweep(&self) {
        let mut ls = self.command();
        ls.args(["containers", "list", "--quiet"])
            .stdout(Stdio::piped());
        let Ok(out) = ls.output().await else { return };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let mut kill = self.command();
            kill.args(["task", "delete", "--force", id]);
            let _ = kill.status().await;
            let mut rm = self.command();
            rm.args(["containers", "delete", id]);
            let _ = rm.status().await;
        }
    }
}

/// `runc run` of a bundle holding the same spec: the floor without containerd.
pub(crate) struct Runc {
    /// runc's own state root.
    pub(crate) root: PathBuf,
    /// The bundle: the rootfs's spec as `config.json`.
    pub(crate) bundle: PathBuf,
}

impl Runc {
    /// `runc` with its root and quiet stdio.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("runc");
        cmd.arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `runc run` of the bundle as `id`: the whole process's wall time.
    pub(crate) async fn run(&self, id: &str) -> Result<Duration> {
        let mut cmd = self.command();
        cmd.arg("run").arg("--bundle").arg(&self.bundle).arg(id);
        timed_command("runc run", id, cmd).await
    }

    /// Best effort: removes whatever an interrupted `runc run` left.
    pub(crate) async fn sweep(&self) {
        let mut ls = self.command();
        ls.args(["list", "--quiet"]).stdout(Stdio::piped());
        let Ok(out) = ls.output().await else { return };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let mut rm = self.command();
            rm.args(["delete", "--force", id]);
            let _ = rm.status().await;
        }
    }
}

/// Runs `cmd` to completion; its wall time, or an error with its stderr.
async fn timed_command(
    what: &'static str,
    id: &str,
    mut cmd: tokio::process::Command,
) -> Result<Duration> {
    let t0 = Instant::now();
    let out = within(what, id, async {
        cmd.output()
            .await
            .map_err(|e| Error::unavailable(format!("cannot run {what}")).with_source(e))
    })
    .await?;
    let took = t0.elapsed();
    if !out.status.success() {
        return Err(Error::system(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_container(id));
    }
    Ok(took)
}
