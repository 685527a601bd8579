//! The benchmarks proper (Unix only). See the example's crate docs.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    Backend, BoxError, Client, CreateOptions, DirectIo, Error, ErrorContext, EventInfo, EventType,
    INIT_PROCESS_ID, Remote, Result, Status, StdioAttachment, discard_stdio, stdio_callback,
};
use libctd_linux::{LinuxClient, LinuxRemote, LogLevel};
use libctd_testkit::containerd::{build_busybox_rootfs, busybox_spec};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tracing::Instrument;

mod restore;
mod soak;

/// The longest any single operation may take before the run fails.
const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// The shim group of the "group" variant.
const GROUP: &str = "bench";
/// Where containerd's runc shim looks for a container's group.
const SHIM_GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";
/// How many containers are started or stopped at once in the memory phase.
const BATCH: usize = 10;
const MIB: u64 = 1 << 20;
const USAGE: &str = "\
usage: bench [--quick] [--lifecycles N] [--burst N] [--rounds N] [--stdout-mib N]
             [--stdout-runs N] [--attached N] [--soak N] [--restore N] [--only LIST]
             [--state-parent DIR] [--out PATH] [--containerd PATH]

  --quick          small counts for a smoke run (also BENCH_QUICK=1):
                   10 lifecycles, bursts of 10, 1 round, 64 MiB, 1 run, 10 attached,
                   a soak of 200, 20 restored
  --lifecycles N   sequential lifecycles per variant (default 50)
  --burst N        lifecycles started at once per burst (default 50)
  --rounds N       bursts per variant (default 3)
  --stdout-mib N   MiB written to stdout per throughput run (default 1024)
  --stdout-runs N  throughput runs per variant (default 3)
  --attached N     running containers with attached stdio for the memory figure (default 100)
  --soak N         sequential lifecycles of the soak, sampled every N/10 (default 5000)
  --restore N      running attached containers an engine restart restores (default 200)
  --out PATH       where to write the results (default bench/results.json)
  --only LIST      run only these phases (comma-separated:
                   memory,lifecycle,burst,stdout,restore,soak)
  --state-parent D where the daemon's state directory and all FIFOs go, ctr's
                   included (default /run, as libctd's default state dir)
  --containerd P   the containerd binary to run (default: the installed one);
                   the `ctr` next to it (same line) is the reference

Flags may follow --quick to override its counts. BENCH_RUNTIME=current-thread
runs on tokio's current-thread runtime; RUST_LOG enables tracing. Must run as root.";

/// The phases `--only` selects from, in the order they run.
const PHASES: [&str; 6] = ["memory", "lifecycle", "burst", "stdout", "restore", "soak"];

/// What to run.
#[derive(Debug, Clone)]
struct Args {
    lifecycles: usize,
    burst: usize,
    rounds: usize,
    stdout_mib: u64,
    stdout_runs: usize,
    attached: usize,
    soak: usize,
    restore: usize,
    out: PathBuf,
    quick: bool,
    /// The phases to run (all when empty).
    only: Vec<String>,
    /// Where the daemon's state directory (and every FIFO) is created.
    state_parent: PathBuf,
    /// The containerd binary (a name looked up in PATH, or a path).
    containerd: PathBuf,
}

impl Args {
    fn full() -> Self {
        Self {
            lifecycles: 50,
            burst: 50,
            rounds: 3,
            stdout_mib: 1024,
            stdout_runs: 3,
            attached: 100,
            soak: 5000,
            restore: 200,
            out: PathBuf::from("bench/results.json"),
            quick: false,
            only: Vec::new(),
            state_parent: PathBuf::from("/run"),
            containerd: PathBuf::from("containerd"),
        }
    }

    /// The `ctr` of the daemon's line: next to its binary, else from PATH.
    fn ctr(&self) -> PathBuf {
        self.containerd
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join("ctr"))
            .filter(|ctr| ctr.is_file())
            .unwrap_or_else(|| PathBuf::from("ctr"))
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }

    fn quick(self) -> Self {
        Self {
            lifecycles: 10,
            burst: 10,
            rounds: 1,
            stdout_mib: 64,
            stdout_runs: 1,
            attached: 10,
            soak: 200,
            restore: 20,
            quick: true,
            ..self
        }
    }

    /// Parses the command line; `Ok(None)` asks for the usage text.
    fn parse(argv: &[String], quick_env: bool) -> Result<Option<Self>> {
        let mut args = Self::full();
        if quick_env || argv.iter().any(|a| a == "--quick") {
            args = args.quick();
        }
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            if flag == "--quick" {
                continue;
            }
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let value = it.next().ok_or_else(|| {
                Error::invalid_argument(format!("{flag} needs a value\n\n{USAGE}"))
            })?;
            let count = || -> Result<usize> {
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Error::invalid_argument(format!(
                        "{flag} takes a positive whole number, not {value:?}"
                    ))),
                }
            };
            match flag.as_str() {
                "--lifecycles" => args.lifecycles = count()?,
                "--burst" => args.burst = count()?,
                "--rounds" => args.rounds = count()?,
                "--stdout-mib" => args.stdout_mib = count()? as u64,
                "--stdout-runs" => args.stdout_runs = count()?,
                "--attached" => args.attached = count()?,
                "--soak" => args.soak = count()?,
                "--restore" => args.restore = count()?,
                "--out" => args.out = PathBuf::from(value),
                "--containerd" => args.containerd = PathBuf::from(value),
                "--state-parent" => {
                    args.state_parent = PathBuf::from(value);
                    if !args.state_parent.is_absolute() {
                        return Err(Error::invalid_argument(format!(
                            "--state-parent takes an absolute path, not {value:?}"
                        )));
                    }
                }
                "--only" => {
                    args.only = value.split(',').map(str::to_owned).collect();
                    if let Some(p) = args.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
                        return Err(Error::invalid_argument(format!(
                            "unknown phase {p:?}; phases are {}",
                            PHASES.join(", ")
                        )));
                    }
                }
                _ => {
                    return Err(Error::invalid_argument(format!(
                        "unknown flag {flag:?}\n\n{USAGE}"
                    )));
                }
            }
        }
        Ok(Some(args))
    }
}

/// Runs the benchmarks with the process's arguments.
pub(crate) fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let quick_env = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let args = match Args::parse(&argv, quick_env) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {}", e.report());
            return ExitCode::from(2);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // The engine's choice; BENCH_RUNTIME=current-thread measures the other one.
    let mut builder = match std::env::var("BENCH_RUNTIME").as_deref() {
        Ok("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot build a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a worker, as an engine's request handlers would be.
    let outcome = runtime.block_on(async {
        tokio::spawn(run(args))
            .await
            .map_err(|e| Error::system("the benchmark task failed").with_source(e))?
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {}", e.report());
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- measuring

/// Resource usage of this process, or of its waited-for children.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    user: Duration,
    sys: Duration,
    /// Voluntary context switches (blocking waits).
    vcsw: i64,
    /// Involuntary context switches (preemptions).
    ivcsw: i64,
}

impl Usage {
    fn of(who: libc::c_int) -> Self {
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

    fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    fn since(&self, earlier: &Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            vcsw: self.vcsw - earlier.vcsw,
            ivcsw: self.ivcsw - earlier.ivcsw,
        }
    }
}

fn cpu_time(who: libc::c_int) -> Duration {
    Usage::of(who).cpu()
}

fn cpu_self() -> Duration {
    cpu_time(libc::RUSAGE_SELF)
}

fn cpu_children() -> Duration {
    cpu_time(libc::RUSAGE_CHILDREN)
}

/// This process's resident set size in bytes (VmRSS).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Order statistics of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy, Default)]
struct Dist {
    n: usize,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Dist {
    fn of(samples: &[f64]) -> Self {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return Self::default();
        }
        s.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = |q: f64| {
            let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s[i - 1]
        };
        Self {
            n: s.len(),
            min: s[0],
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }

    fn json(&self, samples: &[f64]) -> Value {
        json!({
            "n": self.n, "min": self.min, "p50": self.p50, "p90": self.p90,
            "p99": self.p99, "max": self.max, "mean": self.mean, "samples": samples,
        })
    }
}

// ---------------------------------------------------------------- our side

/// The engine's side: records exit-event latency and wakes whoever waits
/// for a container's exit.
#[derive(Default)]
struct Recorder {
    waiters: Mutex<HashMap<String, oneshot::Sender<EventInfo>>>,
    latency: Mutex<HashMap<String, Duration>>,
}

impl Recorder {
    fn expect_exit(&self, id: &str) -> oneshot::Receiver<EventInfo> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), tx);
        rx
    }

    /// Exit-event latencies (ms) of `ids`, those that were seen.
    fn latencies_ms(&self, ids: &[String]) -> Vec<f64> {
        let map = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter()
            .filter_map(|id| map.get(id))
            .map(|d| ms(*d))
            .collect()
    }
}

#[libctd_core::async_trait]
impl Backend for Recorder {
    async fn process_event(
        &self,
        container_id: &str,
        event: EventType,
        info: EventInfo,
    ) -> std::result::Result<(), BoxError> {
        if event != EventType::Exit || info.process_id != INIT_PROCESS_ID {
            return Ok(());
        }
        let now = SystemTime::now();
        if let Some(at) = info.exited_at {
            // A clock step backwards would show as zero rather than as a failure.
            let d = now.duration_since(at).unwrap_or_default();
            self.latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(container_id.to_owned(), d);
        }
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(container_id);
        if let Some(tx) = waiter {
            let _ = tx.send(info);
        }
        Ok(())
    }
}

/// One configuration of libctd: a client and what it has left in containerd.
struct Ours {
    label: &'static str,
    client: Arc<LinuxClient>,
    recorder: Arc<Recorder>,
    live: Mutex<HashSet<String>>,
}

impl Ours {
    fn track(&self, id: &str, live: bool) {
        let mut set = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }
}

/// Awaits `fut`, failing with a typed error naming `op` and `id` after [`OP_TIMEOUT`].
async fn within<T>(op: &'static str, id: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r.context(op, id),
        Err(_) => Err(Error::deadline_exceeded(format!(
            "no answer within {}s",
            OP_TIMEOUT.as_secs()
        ))
        .with_operation(op)
        .with_container(id)),
    }
}

async fn await_exit(id: &str, rx: oneshot::Receiver<EventInfo>) -> Result<EventInfo> {
    within("await the exit event", id, async {
        rx.await
            .map_err(|_| Error::system("the exit waiter was dropped"))
    })
    .await
}

/// The steps of one lifecycle, in order.
const STEPS: [&str; 5] = ["create", "start", "exit event", "delete_task", "delete"];

/// Create, start, exit event, delete task, delete: the wall time and this
/// process's CPU time of each step.
async fn lifecycle(o: &Ours, id: &str, spec: &Spec) -> Result<[(Duration, Duration); 5]> {
    let mut t = (Instant::now(), cpu_self());
    let mut lap = || {
        let now = (Instant::now(), cpu_self());
        let d = (now.0 - t.0, now.1.saturating_sub(t.1));
        t = now;
        d
    };
    let create = o.client.create(id, spec, CreateOptions::new());
    within("create", id, create).await?;
    o.track(id, true);
    let create = lap();
    let exit = o.recorder.expect_exit(id);
    let start = o.client.start(id, None, false, discard_stdio());
    within("start", id, start).await?;
    let start = lap();
    let info = await_exit(id, exit).await?;
    let exited = lap();
    within("delete_task", id, o.client.delete_task(id)).await?;
    let delete_task = lap();
    within("delete", id, o.client.delete(id)).await?;
    let delete = lap();
    o.track(id, false);
    if info.exit_code != 0 {
        return Err(Error::system(format!(
            "/bin/true exited with {} instead of 0",
            info.exit_code
        ))
        .with_container(id));
    }
    Ok([create, start, exited, delete_task, delete])
}

/// Kills a running container of ours and removes it.
async fn kill_and_remove(o: &Ours, id: &str, exit: oneshot::Receiver<EventInfo>) -> Result<()> {
    within("kill", id, o.client.signal_process(id, INIT_PROCESS_ID, 9)).await?;
    await_exit(id, exit).await?;
    within("delete_task", id, o.client.delete_task(id)).await?;
    within("delete", id, o.client.delete(id)).await?;
    o.track(id, false);
    Ok(())
}

/// Best effort: kills and removes whatever this client still has.
async fn sweep(o: &Ours) -> usize {
    let ids: Vec<String> = o
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    for id in &ids {
        let _ = o.client.signal_process(id, INIT_PROCESS_ID, 9).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match o.client.status(id).await {
                Ok(Status::Running | Status::Pausing | Status::Paused | Status::Created) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break,
            }
        }
        let _ = o.client.delete_task(id).await;
        if let Err(e) = o.client.delete(id).await {
            eprintln!("bench: could not remove {id} ({}): {}", o.label, e.report());
        }
    }
    ids.len()
}

// ---------------------------------------------------------------- references

/// A bare gRPC subscription to the same daemon's exit events, decoded and
/// timed on arrival: the floor of event latency (containerd's publishing and
/// one gRPC hop), against which ours (decode, queue, Backend) is compared.
struct RawExits {
    seen: Arc<Mutex<HashMap<String, Duration>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawExits {
    async fn subscribe(socket: &Path, namespaces: &[&str]) -> Result<Self> {
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
    fn latencies_ms(&self, ids: &[String]) -> Vec<f64> {
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
fn paired_share_ms(o: &Ours, raw: &RawExits, ids: &[String]) -> Vec<f64> {
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
struct Ctr {
    /// The `ctr` binary (of the daemon's line).
    binary: PathBuf,
    /// Where ctr creates its FIFOs: beside ours, on the same filesystem.
    fifo_dir: PathBuf,
    socket: PathBuf,
    namespace: String,
    rootfs: PathBuf,
}

impl Ctr {
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
    async fn run(&self, id: &str, args: &[&str]) -> Result<Duration> {
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

    /// Removes the empty directories ctr's containers leave behind: the
    /// namespace's cgroup parents (`/<namespace>/<id>` by default) and its
    /// runc state root.
    fn remove_traces(&self) {
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
    async fn sweep(&self) {
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
struct Runc {
    root: PathBuf,
    bundle: PathBuf,
}

impl Runc {
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

    async fn run(&self, id: &str) -> Result<Duration> {
        let mut cmd = self.command();
        cmd.arg("run").arg("--bundle").arg(&self.bundle).arg(id);
        timed_command("runc run", id, cmd).await
    }

    async fn sweep(&self) {
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

// ---------------------------------------------------------------- the run

/// Everything the phases share.
struct Bench {
    args: Args,
    /// The embedded daemon's remote, for clients of a phase's own.
    remote: Arc<LinuxRemote>,
    /// The busybox root filesystem every container runs on.
    rootfs: PathBuf,
    off: Arc<Ours>,
    on: Arc<Ours>,
    ctr: Ctr,
    runc: Runc,
    raw: RawExits,
    results: Mutex<serde_json::Map<String, Value>>,
    rows: Mutex<Vec<Row>>,
}

/// One line of the printed table.
struct Row {
    measure: String,
    ours: String,
    reference: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

impl Bench {
    fn record(&self, key: &str, value: Value) {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), value);
    }

    fn row(
        &self,
        measure: impl Into<String>,
        ours: impl Into<String>,
        reference: impl Into<String>,
        ratio: Option<f64>,
        target: impl Into<String>,
        met: Option<bool>,
    ) {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Row {
                measure: measure.into(),
                ours: ours.into(),
                reference: reference.into(),
                ratio: ratio.map_or_else(String::new, |r| format!("{r:.2}x")),
                target: target.into(),
                met,
            });
    }

    fn spec(&self, args: &[&str]) -> Spec {
        busybox_spec(&self.rootfs, args, false, None)
    }

    fn variant(&self, group: bool) -> &Arc<Ours> {
        if group { &self.on } else { &self.off }
    }
}

/// Adds the shim-group annotation to `spec`.
fn annotate_group(spec: &mut Spec) {
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(SHIM_GROUP_ANNOTATION.to_owned(), GROUP.to_owned());
    spec.set_annotations(Some(annotations));
}

/// What the sequential phase compares.
#[derive(Clone, Copy, PartialEq)]
enum Seq {
    Off,
    On,
    Ctr,
    Runc,
}

async fn run(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::permission_denied(
            "the benchmarks start containerd and containers: run them as root",
        ));
    }
    let cpu_start = cpu_self();
    let rss_start = rss_bytes();
    println!(
        "bench: {} lifecycles, bursts of {} x {} rounds, {} MiB x {} stdout runs, {} attached{}",
        args.lifecycles,
        args.burst,
        args.rounds,
        args.stdout_mib,
        args.stdout_runs,
        args.attached,
        if args.quick { " (quick)" } else { "" }
    );
    let load_start = loadavg();
    // The daemon and every channel live on this runtime, as in an engine.
    let state = args
        .state_parent
        .join(format!("libctd-bench-{}", std::process::id()));
    println!(
        "bench: state directory {} ({})",
        state.display(),
        fs_type(&args.state_parent)
    );
    let _ = std::fs::remove_dir_all(&state);
    let remote = Arc::new(
        LinuxRemote::builder()
            .state_dir(&state)
            .containerd_binary(&args.containerd)
            .log_level(LogLevel::Warn)
            .build()
            .await?,
    );
    // Should anything below return early, the daemon stops when this process exits.
    remote.stop_at_exit(true);
    let rootfs = state.join("rootfs");
    build_busybox_rootfs(&rootfs)?;
    let socket = remote.socket();
    let pid = std::process::id();
    let rec_off = Arc::new(Recorder::default());
    let rec_on = Arc::new(Recorder::default());
    let client_off = remote
        .new_linux_client(&format!("bench-off-{pid}"), rec_off.clone())
        .await?;
    // The same daemon through a second remote whose containers share shims.
    let group_remote = LinuxRemote::builder()
        .address(&socket)
        .state_dir(state.join("grp"))
        .shim_group(GROUP)
        .build()
        .await?;
    let client_on = group_remote
        .new_linux_client(&format!("bench-on-{pid}"), rec_on.clone())
        .await?;
    let bundle = state.join("bundle");
    let runc_root = state.join("runc-ref");
    for dir in [&bundle, &runc_root] {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::system(format!("cannot create {}", dir.display())).with_source(e)
        })?;
    }
    let runc_spec = busybox_spec(&rootfs, &["/bin/true"], false, None);
    let config = serde_json::to_vec_pretty(&runc_spec)
        .map_err(|e| Error::system("cannot serialise the runc bundle's spec").with_source(e))?;
    std::fs::write(bundle.join("config.json"), config)
        .map_err(|e| Error::system("cannot write the runc bundle").with_source(e))?;
    let raw =
        RawExits::subscribe(&socket, &[client_off.namespace(), client_on.namespace()]).await?;
    let bench = Arc::new(Bench {
        rootfs: rootfs.clone(),
        off: Arc::new(Ours {
            label: "libctd",
            client: client_off,
            recorder: rec_off,
            live: Mutex::default(),
        }),
        on: Arc::new(Ours {
            label: "libctd+group",
            client: client_on,
            recorder: rec_on,
            live: Mutex::default(),
        }),
        ctr: Ctr {
            binary: args.ctr(),
            fifo_dir: state.join("ctr-fifo"),
            socket: socket.clone(),
            namespace: format!("bench-ctr-{pid}"),
            rootfs: rootfs.clone(),
        },
        runc: Runc {
            root: runc_root,
            bundle,
        },
        raw,
        remote: remote.clone(),
        args: args.clone(),
        results: Mutex::default(),
        rows: Mutex::default(),
    });
    bench.record("machine", machine(&bench).await);
    bench.record(
        "args",
        json!({
            "lifecycles": args.lifecycles, "burst": args.burst, "rounds": args.rounds,
            "stdout_mib": args.stdout_mib, "stdout_runs": args.stdout_runs,
            "attached": args.attached, "quick": args.quick,
            "state_dir": state.display().to_string(),
            "state_fs": fs_type(&state),
        }),
    );

    let outcome = phases(&bench).await;

    // Teardown, whatever happened.
    let left_off = sweep(&bench.off).await;
    let left_on = sweep(&bench.on).await;
    bench.ctr.sweep().await;
    bench.ctr.remove_traces();
    bench.runc.sweep().await;
    let _ = group_remote.cleanup().await;
    let stopped = remote.cleanup().await;
    let leftovers = processes_mentioning(&state);
    let load_end = loadavg();
    bench.record(
        "process",
        json!({
            "cpu_total_s": (cpu_self() - cpu_start).as_secs_f64(),
            "rss_start_mib": rss_start as f64 / MIB as f64,
            "load_start": load_start, "load_end": load_end,
            "swept_containers": left_off + left_on,
            "leftover_processes": leftovers.len(),
        }),
    );
    outcome?;
    stopped?;
    print_table(&bench);
    write_results(&bench)?;
    if !leftovers.is_empty() {
        return Err(Error::system(format!(
            "processes of the benchmark's containerd are still running: pids {leftovers:?}"
        )));
    }
    println!("bench: nothing left running; load average {load_start} at start, {load_end} at end");
    Ok(())
}

async fn phases(b: &Arc<Bench>) -> Result<()> {
    warm_up(b).await?;
    group_check(b).await?;
    // First, while this process's heap is still close to an idle engine's.
    if b.args.runs("memory") {
        for group in [false, true] {
            memory(b, group)
                .instrument(tracing::info_span!("memory"))
                .await?;
        }
    }
    if b.args.runs("lifecycle") || b.args.runs("burst") {
        // A long-running container in the shim group, as an engine that runs
        // other containers would have: without one, every grouped lifecycle
        // would start (and stop) the group's shim afresh.
        let keeper = "keeper";
        let spec = b.spec(&["sleep", "100000"]);
        let create = b.on.client.create(keeper, &spec, CreateOptions::new());
        within("create", keeper, create).await?;
        b.on.track(keeper, true);
        let keeper_exit = b.on.recorder.expect_exit(keeper);
        let start = b.on.client.start(keeper, None, false, discard_stdio());
        within("start", keeper, start).await?;
        if b.args.runs("lifecycle") {
            let span = tracing::info_span!("lifecycle");
            sequential(b).instrument(span).await?;
        }
        if b.args.runs("burst") {
            burst(b).instrument(tracing::info_span!("burst")).await?;
        }
        kill_and_remove(&b.on, keeper, keeper_exit).await?;
    }
    if b.args.runs("stdout") {
        stdout(b).instrument(tracing::info_span!("stdout")).await?;
    }
    if b.args.runs("restore") {
        let span = tracing::info_span!("restore");
        restore::restore_at_scale(b).instrument(span).await?;
    }
    if b.args.runs("soak") {
        soak::soak(b)
            .instrument(tracing::info_span!("soak"))
            .await?;
    }

    Ok(())
}

/// One of each, unmeasured: page cache, lazy connections, the first shims.
async fn warm_up(b: &Bench) -> Result<()> {
    println!("bench: warming up");
    lifecycle(&b.off, "warm-off", &b.spec(&["/bin/true"])).await?;
    lifecycle(&b.on, "warm-on", &b.spec(&["/bin/true"])).await?;
    if b.raw.latencies_ms(&["warm-off".to_owned()]).is_empty() {
        eprintln!("bench: the raw event subscriber missed the warm-up exit");
    }
    b.ctr.run("warm-ctr", &["/bin/true"]).await?;
    b.runc.run("warm-runc").await?;
    Ok(())
}

async fn sequential(b: &Bench) -> Result<()> {
    let n = b.args.lifecycles;
    println!("bench: {n} sequential lifecycles of /bin/true x 4 variants, interleaved");
    let mut wall: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut cpu: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut ctr_cpu = Vec::new();
    let mut step_ms: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    let mut step_cpu: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    let mut seq_ids: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut usage: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    for i in 0..n {
        let mut order = [Seq::Off, Seq::On, Seq::Ctr, Seq::Runc];
        order.rotate_left(i % 4);
        for v in order {
            let id = format!("seq{i}");
            match v {
                Seq::Off | Seq::On => {
                    let o = b.variant(v == Seq::On);
                    let spec = b.spec(&["/bin/true"]);
                    let u0 = Usage::of(libc::RUSAGE_SELF);
                    let suffix = if v == Seq::On { "on" } else { "off" };
                    let cid = format!("{id}-{suffix}");
                    let steps = lifecycle(o, &cid, &spec).await?;
                    seq_ids.entry(o.label).or_default().push(cid);
                    let u = Usage::of(libc::RUSAGE_SELF).since(&u0);
                    let c = u.cpu();
                    let parts = usage.entry(o.label).or_insert_with(|| vec![Vec::new(); 4]);
                    parts[0].push(ms(u.user));
                    parts[1].push(ms(u.sys));
                    parts[2].push(u.vcsw as f64);
                    parts[3].push(u.ivcsw as f64);
                    let took: Duration = steps.iter().map(|s| s.0).sum();
                    let per = step_ms
                        .entry(o.label)
                        .or_insert_with(|| vec![Vec::new(); STEPS.len()]);
                    for (v, d) in per.iter_mut().zip(steps) {
                        v.push(ms(d.0));
                    }
                    let per = step_cpu
                        .entry(o.label)
                        .or_insert_with(|| vec![Vec::new(); STEPS.len()]);
                    for (v, d) in per.iter_mut().zip(steps) {
                        v.push(ms(d.1));
                    }
                    wall.entry(o.label).or_default().push(ms(took));
                    cpu.entry(o.label).or_default().push(ms(c));
                }
                Seq::Ctr => {
                    let c0 = cpu_children();
                    let took = b.ctr.run(&format!("{id}-ctr"), &["/bin/true"]).await?;
                    ctr_cpu.push(ms(cpu_children() - c0));
                    wall.entry("ctr").or_default().push(ms(took));
                }
                Seq::Runc => {
                    let took = b.runc.run(&format!("{id}-runc")).await?;
                    wall.entry("runc").or_default().push(ms(took));
                }
            }
        }
    }
    let get = |m: &HashMap<&'static str, Vec<f64>>, k: &str| m.get(k).cloned().unwrap_or_default();
    let ctr = Dist::of(&get(&wall, "ctr"));
    let runc = Dist::of(&get(&wall, "runc"));
    let mut json_wall = serde_json::Map::new();
    for (k, v) in &wall {
        json_wall.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut json_cpu = serde_json::Map::new();
    for (k, v) in &cpu {
        json_cpu.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    json_cpu.insert("ctr_process".to_owned(), Dist::of(&ctr_cpu).json(&ctr_cpu));
    for (k, parts) in &usage {
        let names = [
            "user_ms",
            "sys_ms",
            "voluntary_switches",
            "involuntary_switches",
        ];
        let split: serde_json::Map<String, Value> = names
            .iter()
            .zip(parts)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        json_cpu.insert(format!("{k} split"), Value::Object(split));
    }
    let mut json_steps = serde_json::Map::new();
    for (k, per) in &step_ms {
        let steps: serde_json::Map<String, Value> = STEPS
            .iter()
            .zip(per)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        json_steps.insert((*k).to_owned(), Value::Object(steps));
    }
    let mut json_step_cpu = serde_json::Map::new();
    for (k, per) in &step_cpu {
        let steps: serde_json::Map<String, Value> = STEPS
            .iter()
            .zip(per)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        json_step_cpu.insert((*k).to_owned(), Value::Object(steps));
    }
    b.record(
        "lifecycle_ms",
        json!({
            "wall": json_wall, "cpu": json_cpu, "steps": json_steps,
            "steps_cpu": json_step_cpu,
        }),
    );
    for o in [&b.off, &b.on] {
        let d = Dist::of(&get(&wall, o.label));
        let ratio = d.p50 / ctr.p50;
        b.row(
            format!("lifecycle p50 ms, {}", o.label),
            format!("{:.1}", d.p50),
            format!("ctr {:.1}", ctr.p50),
            Some(ratio),
            "<= 0.6x",
            Some(ratio <= 0.6),
        );
        b.row(
            format!("  p90 / min ms, {}", o.label),
            format!("{:.1} / {:.1}", d.p90, d.min),
            format!("ctr {:.1} / {:.1}", ctr.p90, ctr.min),
            Some(d.p90 / ctr.p90),
            "",
            None,
        );
        let steps = step_ms.get(o.label).cloned().unwrap_or_default();
        let p50s: Vec<String> = steps
            .iter()
            .map(|v| format!("{:.1}", Dist::of(v).p50))
            .collect();
        b.row(
            format!("  steps p50 ms, {}", o.label),
            p50s.join(" / "),
            "create/start/exit/del-task/del",
            None,
            "",
            None,
        );
        let cpu_steps = step_cpu.get(o.label).cloned().unwrap_or_default();
        let p50s: Vec<String> = cpu_steps
            .iter()
            .map(|v| format!("{:.2}", Dist::of(v).p50))
            .collect();
        b.row(
            format!("  steps client CPU p50 ms, {}", o.label),
            p50s.join(" / "),
            "create/start/exit/del-task/del",
            None,
            "",
            None,
        );
        b.row(
            format!("  vs runc run, {}", o.label),
            format!("{:.1}", d.p50),
            format!("runc {:.1}", runc.p50),
            Some(d.p50 / runc.p50),
            "(floor)",
            None,
        );
    }
    let mut j_lat = serde_json::Map::new();
    for o in [&b.off, &b.on] {
        let ids = seq_ids.get(o.label).cloned().unwrap_or_default();
        let lv = o.recorder.latencies_ms(&ids);
        let rv = b.raw.latencies_ms(&ids);
        let sv = paired_share_ms(o, &b.raw, &ids);
        let (l, r, sh) = (Dist::of(&lv), Dist::of(&rv), Dist::of(&sv));
        j_lat.insert(
            o.label.to_owned(),
            json!({
                "libctd": l.json(&lv), "raw_subscriber": r.json(&rv),
                "libctd_minus_raw": sh.json(&sv),
            }),
        );
        b.row(
            format!("event latency ms p50/p99 (sequential), {}", o.label),
            format!("{:.2} / {:.2} (n={})", l.p50, l.p99, l.n),
            format!("raw gRPC {:.2} / {:.2} (n={})", r.p50, r.p99, r.n),
            Some(l.p99 / r.p99),
            "(burst's)",
            None,
        );
        b.row(
            "  libctd's share, paired p50/p90/max ms",
            format!("{:.3} / {:.3} / {:.3}", sh.p50, sh.p90, sh.max),
            "libctd minus raw, per event",
            None,
            "",
            None,
        );
    }
    b.record("sequential_event_latency_ms", Value::Object(j_lat));
    for o in [&b.off, &b.on] {
        let c = Dist::of(&get(&cpu, o.label));
        let parts = usage.get(o.label).cloned().unwrap_or_default();
        let p50 = |i: usize| parts.get(i).map_or(0.0, |v| Dist::of(v).p50);
        b.row(
            format!("client CPU ms/lifecycle, {}", o.label),
            format!(
                "{:.2} (p90 {:.2}; usr {:.2} sys {:.2}; {:.0} switches)",
                c.p50,
                c.p90,
                p50(0),
                p50(1),
                p50(2) + p50(3)
            ),
            format!("ctr proc {:.1}", Dist::of(&ctr_cpu).p50),
            None,
            "<= 1 ms",
            Some(c.p50 <= 1.0),
        );
    }
    rpc_cost(b).await
}

/// Calibration: the client CPU of one bare gRPC round trip (Version), which
/// a lifecycle makes seven of (containers.Create, tasks.Create, tasks.Start,
/// tasks.Get, tasks.Delete, tasks.Get, containers.Delete) besides receiving
/// four task events.
async fn rpc_cost(b: &Bench) -> Result<()> {
    const CALLS: u32 = 500;
    let u0 = Usage::of(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    for _ in 0..CALLS {
        within("version", "-", b.off.client.version()).await?;
    }
    let wall = t0.elapsed() / CALLS;
    let u = Usage::of(libc::RUSAGE_SELF).since(&u0);
    let cpu_us = u.cpu().as_secs_f64() * 1e6 / f64::from(CALLS);
    let switches = (u.vcsw + u.ivcsw) as f64 / f64::from(CALLS);
    b.record(
        "rpc_calibration",
        json!({
            "calls": CALLS, "cpu_us_per_call": cpu_us,
            "wall_us_per_call": wall.as_secs_f64() * 1e6,
            "switches_per_call": switches,
        }),
    );
    b.row(
        "  client CPU us per bare RPC (Version)",
        format!("{cpu_us:.0} ({switches:.1} switches)"),
        format!("wall {:.0} us", wall.as_secs_f64() * 1e6),
        None,
        "",
        None,
    );
    Ok(())
}

/// Starts `n` lifecycles of ours at once; (wall, ids, client CPU).
async fn our_burst(
    b: &Bench,
    group: bool,
    round: usize,
) -> Result<(Duration, Vec<String>, Duration, Vec<Vec<f64>>)> {
    let o = b.variant(group).clone();
    let ids: Vec<String> = (0..b.args.burst)
        .map(|k| format!("burst-{}-{round}-{k}", if group { "on" } else { "off" }))
        .collect();
    let specs: Vec<Spec> = ids.iter().map(|_| b.spec(&["/bin/true"])).collect();
    let c0 = cpu_self();
    let t0 = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .cloned()
        .zip(specs)
        .map(|(id, spec)| {
            let o = o.clone();
            tokio::spawn(async move { lifecycle(&o, &id, &spec).await })
        })
        .collect();
    let mut steps = vec![Vec::new(); STEPS.len()];
    for t in futures::future::join_all(tasks).await {
        let lc = t.map_err(|e| Error::system("a burst task failed").with_source(e))??;
        for (v, (wall, _)) in steps.iter_mut().zip(lc) {
            v.push(ms(wall));
        }
    }
    Ok((t0.elapsed(), ids, cpu_self() - c0, steps))
}

async fn ctr_burst(b: &Bench, round: usize) -> Result<Duration> {
    let t0 = Instant::now();
    let runs = (0..b.args.burst).map(|k| {
        let id = format!("burst-ctr-{round}-{k}");
        async move { b.ctr.run(&id, &["/bin/true"]).await }
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(t0.elapsed())
}

async fn burst(b: &Bench) -> Result<()> {
    let n = b.args.burst;
    println!(
        "bench: bursts of {n} lifecycles x {} rounds x 3 variants, interleaved",
        b.args.rounds
    );
    let mut rate: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut latency: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut raw_latency: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut step_ms: HashMap<&'static str, Vec<Vec<f64>>> = HashMap::new();
    let mut burst_ids: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut cpu: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for round in 0..b.args.rounds {
        let mut order = [0, 1, 2];
        order.rotate_left(round % 3);
        for v in order {
            match v {
                0 | 1 => {
                    let group = v == 1;
                    let label = b.variant(group).label;
                    let (wall, ids, c, steps) = our_burst(b, group, round).await?;
                    let per = step_ms
                        .entry(label)
                        .or_insert_with(|| vec![Vec::new(); STEPS.len()]);
                    for (v, s) in per.iter_mut().zip(steps) {
                        v.extend(s);
                    }
                    rate.entry(label)
                        .or_default()
                        .push(n as f64 / wall.as_secs_f64());
                    cpu.entry(label).or_default().push(ms(c) / n as f64);
                    latency
                        .entry(label)
                        .or_default()
                        .extend(b.variant(group).recorder.latencies_ms(&ids));
                    raw_latency
                        .entry(label)
                        .or_default()
                        .extend(b.raw.latencies_ms(&ids));
                    burst_ids.entry(label).or_default().extend(ids);
                }
                _ => {
                    let wall = ctr_burst(b, round).await?;
                    rate.entry("ctr")
                        .or_default()
                        .push(n as f64 / wall.as_secs_f64());
                }
            }
        }
    }
    let get = |m: &HashMap<&'static str, Vec<f64>>, k: &str| m.get(k).cloned().unwrap_or_default();
    let ctr = Dist::of(&get(&rate, "ctr"));
    let mut j_rate = serde_json::Map::new();
    for (k, v) in &rate {
        j_rate.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut j_lat = serde_json::Map::new();
    for (k, v) in &latency {
        j_lat.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut j_raw = serde_json::Map::new();
    for (k, v) in &raw_latency {
        j_raw.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    let mut j_cpu = serde_json::Map::new();
    for (k, v) in &cpu {
        j_cpu.insert((*k).to_owned(), Dist::of(v).json(v));
    }
    b.record(
        "burst",
        json!({
            "containers_per_s": j_rate,
            "event_latency_ms": j_lat,
            "raw_subscriber_event_latency_ms": j_raw,
            "client_cpu_ms_per_lifecycle": j_cpu,
        }),
    );
    for o in [&b.off, &b.on] {
        let d = Dist::of(&get(&rate, o.label));
        let ratio = d.p50 / ctr.p50;
        b.row(
            format!("burst containers/s, {}", o.label),
            format!("{:.1} [{:.1}..{:.1}]", d.p50, d.min, d.max),
            format!("ctr {:.1} [{:.1}..{:.1}]", ctr.p50, ctr.min, ctr.max),
            Some(ratio),
            ">= 1.3x",
            Some(ratio >= 1.3),
        );
    }
    let mut j_share = serde_json::Map::new();
    for o in [&b.off, &b.on] {
        let l = Dist::of(&get(&latency, o.label));
        let r = Dist::of(&get(&raw_latency, o.label));
        b.row(
            format!("event latency ms p50/p99 (burst), {}", o.label),
            format!("{:.2} / {:.2} (n={})", l.p50, l.p99, l.n),
            format!("raw gRPC {:.2} / {:.2} (n={})", r.p50, r.p99, r.n),
            Some(l.p99 / r.p99),
            "p99 < 2 ms",
            Some(l.n > 0 && l.p99 < 2.0),
        );
        let ids = burst_ids.get(o.label).cloned().unwrap_or_default();
        let sv = paired_share_ms(o, &b.raw, &ids);
        let sh = Dist::of(&sv);
        j_share.insert(o.label.to_owned(), sh.json(&sv));
        b.row(
            "  libctd's share, paired p50/p90/p99 ms",
            format!("{:.2} / {:.2} / {:.2}", sh.p50, sh.p90, sh.p99),
            "libctd minus raw, per event",
            None,
            "",
            None,
        );
    }
    b.record(
        "burst_event_latency_libctd_minus_raw_ms",
        Value::Object(j_share),
    );
    let mut j_steps = serde_json::Map::new();
    for o in [&b.off, &b.on] {
        let per = step_ms.get(o.label).cloned().unwrap_or_default();
        let steps: serde_json::Map<String, Value> = STEPS
            .iter()
            .zip(&per)
            .map(|(name, v)| ((*name).to_owned(), Dist::of(v).json(v)))
            .collect();
        j_steps.insert(o.label.to_owned(), Value::Object(steps));
        let cells: Vec<String> = per
            .iter()
            .map(|v| {
                let d = Dist::of(v);
                format!("{:.0}/{:.0}", d.p50, d.max)
            })
            .collect();
        b.row(
            format!("  burst steps p50/max ms, {}", o.label),
            cells.join(" "),
            "create start exit del-task del",
            None,
            "",
            None,
        );
    }
    b.record("burst_steps_ms", Value::Object(j_steps));
    for o in [&b.off, &b.on] {
        let c = Dist::of(&get(&cpu, o.label));
        b.row(
            format!("client CPU ms/lifecycle in burst, {}", o.label),
            format!("{:.2}", c.p50),
            "",
            None,
            "",
            None,
        );
    }
    Ok(())
}

/// One of our throughput runs: (end-to-end wall, stream wall, bytes).
async fn our_stdout(b: &Bench, id: &str) -> Result<(Duration, Duration, u64)> {
    let o = &b.off;
    let count = b.args.stdout_mib.to_string();
    let spec = b.spec(&[
        "/bin/dd",
        "if=/dev/zero",
        "bs=1M",
        &format!("count={count}"),
    ]);
    let (tx, rx) = oneshot::channel::<(u64, Instant)>();
    let attach = stdio_callback(move |io: DirectIo| {
        let mut out = io.stdout;
        let mut err = io.stderr;
        let reader = tokio::spawn(async move {
            let mut total = 0u64;
            if let Some(out) = out.as_mut() {
                let mut buf = vec![0u8; MIB as usize];
                while let Ok(k) = out.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    total += k as u64;
                }
            }
            let _ = tx.send((total, Instant::now()));
        });
        let errors = tokio::spawn(async move {
            if let Some(err) = err.as_mut() {
                let _ = tokio::io::copy(err, &mut tokio::io::sink()).await;
            }
        });
        Ok(Box::new(vec![reader, errors]) as Box<dyn StdioAttachment>)
    });
    let t0 = Instant::now();
    within(
        "create",
        id,
        o.client.create(id, &spec, CreateOptions::new()),
    )
    .await?;
    o.track(id, true);
    let exit = o.recorder.expect_exit(id);
    let t_start = Instant::now();
    within("start", id, o.client.start(id, None, false, attach)).await?;
    let info = await_exit(id, exit).await?;
    let (bytes, t_eof) = within("read stdout", id, async {
        rx.await
            .map_err(|_| Error::system("the stdout reader was dropped"))
    })
    .await?;
    within("delete_task", id, o.client.delete_task(id)).await?;
    within("delete", id, o.client.delete(id)).await?;
    o.track(id, false);
    let expected = b.args.stdout_mib * MIB;
    if info.exit_code != 0 || bytes != expected {
        return Err(Error::system(format!(
            "dd exited with {} after {bytes} bytes of stdout, expected 0 and {expected}",
            info.exit_code
        ))
        .with_container(id));
    }
    Ok((t0.elapsed(), t_eof.duration_since(t_start), bytes))
}

async fn stdout(b: &Bench) -> Result<()> {
    let mib = b.args.stdout_mib;
    println!(
        "bench: {mib} MiB to stdout x {} runs x 2 variants, interleaved",
        b.args.stdout_runs
    );
    let count = format!("count={mib}");
    let bytes = (mib * MIB) as f64;
    let mb_s = |d: Duration| bytes / 1e6 / d.as_secs_f64();
    let (mut ours, mut stream, mut ctr) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..b.args.stdout_runs {
        for first_ours in [r % 2 == 0, r % 2 != 0] {
            if first_ours {
                let (total, streaming, _) = our_stdout(b, &format!("dd-{r}")).await?;
                ours.push(mb_s(total));
                stream.push(mb_s(streaming));
            } else {
                let took = b
                    .ctr
                    .run(
                        &format!("dd-ctr-{r}"),
                        &["/bin/dd", "if=/dev/zero", "bs=1M", &count],
                    )
                    .await?;
                ctr.push(mb_s(took));
            }
        }
    }
    let (o, s, c) = (Dist::of(&ours), Dist::of(&stream), Dist::of(&ctr));
    b.record(
        "stdout_mb_per_s",
        json!({
            "bytes": bytes, "libctd_end_to_end": o.json(&ours),
            "libctd_streaming": s.json(&stream), "ctr_end_to_end": c.json(&ctr),
        }),
    );
    let ratio = o.p50 / c.p50;
    b.row(
        format!("stdout MB/s ({mib} MiB), end to end"),
        format!("{:.0} [{:.0}..{:.0}]", o.p50, o.min, o.max),
        format!("ctr {:.0} [{:.0}..{:.0}]", c.p50, c.min, c.max),
        Some(ratio),
        ">= 1.2x",
        Some(ratio >= 1.2),
    );
    b.row(
        "  stdout MB/s, streaming only",
        format!("{:.0}", s.p50),
        "",
        Some(s.p50 / c.p50),
        "",
        None,
    );
    Ok(())
}

/// Starts `id` running sleep with stdout and stderr read by tasks of ours.
async fn start_attached(o: &Ours, id: &str, spec: &Spec) -> Result<oneshot::Receiver<EventInfo>> {
    within(
        "create",
        id,
        o.client.create(id, spec, CreateOptions::new()),
    )
    .await?;
    o.track(id, true);
    let exit = o.recorder.expect_exit(id);
    let start = o.client.start(id, None, false, sink_stdio());
    within("start", id, start).await?;
    Ok(exit)
}

/// Reads the process's output to nowhere, on tasks of ours.
fn sink_stdio() -> libctd_core::StdioCallback {
    stdio_callback(|io: DirectIo| {
        let tasks: Vec<_> = [io.stdout, io.stderr]
            .into_iter()
            .flatten()
            .map(|mut s| {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
                })
            })
            .collect();
        Ok(Box::new(tasks) as Box<dyn StdioAttachment>)
    })
}

/// Bytes the allocator has handed out and not taken back (mallinfo2).
fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

/// (count, total RSS bytes) of the runc shims serving namespace `ns`.
fn shims_of(ns: &str) -> (usize, u64) {
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
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
            found = (found.0 + 1, found.1 + rss * 1024);
        }
    }
    found
}

/// Starts `specs` (ids `ids`) in batches, attached; their exit receivers.
async fn start_all(
    o: &Ours,
    ids: &[String],
    specs: &[Spec],
) -> Result<Vec<oneshot::Receiver<EventInfo>>> {
    let mut exits = Vec::new();
    for (ids, specs) in ids.chunks(BATCH).zip(specs.chunks(BATCH)) {
        let started = futures::future::join_all(
            ids.iter()
                .zip(specs)
                .map(|(id, spec)| start_attached(o, id, spec)),
        )
        .await;
        for s in started {
            exits.push(s?);
        }
    }
    Ok(exits)
}

/// Kills and removes `ids` in batches.
async fn remove_all(
    o: &Ours,
    ids: Vec<String>,
    exits: Vec<oneshot::Receiver<EventInfo>>,
) -> Result<()> {
    let mut pairs = ids.into_iter().zip(exits);
    loop {
        let batch: Vec<_> = pairs.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            return Ok(());
        }
        let done = futures::future::join_all(
            batch
                .into_iter()
                .map(|(id, exit)| async move { kill_and_remove(o, &id, exit).await }),
        )
        .await;
        for d in done {
            d?;
        }
    }
}

/// Whether the ShimGroup option, alone and with the spec annotation, makes
/// two running containers share one shim.
async fn group_check(b: &Bench) -> Result<()> {
    let o = &b.on;
    let ns = o.client.namespace().to_owned();
    let mut shims = Vec::new();
    for (tag, annotate) in [("option", false), ("annotated", true)] {
        let ids: Vec<String> = (0..2).map(|k| format!("group-{tag}-{k}")).collect();
        let specs: Vec<Spec> = ids
            .iter()
            .map(|_| {
                let mut spec = b.spec(&["sleep", "100000"]);
                if annotate {
                    annotate_group(&mut spec);
                }
                spec
            })
            .collect();
        let exits = start_all(o, &ids, &specs).await?;
        shims.push(shims_of(&ns).0);
        remove_all(o, ids, exits).await?;
    }
    b.record(
        "shim_group_check",
        json!({
            "containers": 2,
            "shims_with_option_only": shims.first(),
            "shims_with_option_and_annotation": shims.get(1),
        }),
    );
    b.row(
        "shims for 2 running containers, ShimGroup",
        format!(
            "option only: {}; + annotation: {}",
            shims.first().unwrap_or(&0),
            shims.get(1).unwrap_or(&0)
        ),
        "1 expected",
        None,
        "",
        None,
    );
    Ok(())
}

async fn memory(b: &Bench, group: bool) -> Result<()> {
    let n = b.args.attached;
    let o = b.variant(group);
    println!(
        "bench: memory with {n} running containers attached, {}",
        o.label
    );
    let (idle, heap_idle) = (rss_bytes(), heap_in_use());
    let ids: Vec<String> = (0..n)
        .map(|k| format!("mem-{}-{k}", if group { "on" } else { "off" }))
        .collect();
    let specs: Vec<Spec> = ids.iter().map(|_| b.spec(&["sleep", "100000"])).collect();
    let exits = start_all(o, &ids, &specs).await?;
    let (loaded, heap_loaded) = (rss_bytes(), heap_in_use());
    let (shims, shim_rss) = shims_of(o.client.namespace());
    remove_all(o, ids, exits).await?;
    let (after, heap_after) = (rss_bytes(), heap_in_use());
    let mib = |v: u64| v as f64 / MIB as f64;
    let delta = loaded.saturating_sub(idle);
    let heap_delta = heap_loaded.saturating_sub(heap_idle);
    let per = |v: u64| v as f64 / 1024.0 / n as f64;
    b.record(
        &format!("memory {}", o.label),
        json!({
            "containers": n, "rss_idle_mib": mib(idle), "rss_loaded_mib": mib(loaded),
            "rss_after_mib": mib(after), "rss_delta_mib": mib(delta),
            "rss_delta_kib_per_container": per(delta),
            "heap_idle_mib": mib(heap_idle), "heap_loaded_mib": mib(heap_loaded),
            "heap_after_mib": mib(heap_after), "heap_delta_kib_per_container": per(heap_delta),
            "shims": shims, "shims_rss_mib": mib(shim_rss),
        }),
    );
    b.row(
        format!("client RSS +{n} attached, {}", o.label),
        format!(
            "+{:.1} MiB ({:.0} KiB each; heap {:.0} KiB each)",
            mib(delta),
            per(delta),
            per(heap_delta)
        ),
        format!("{shims} shims, {:.0} MiB RSS", mib(shim_rss)),
        None,
        "",
        None,
    );
    Ok(())
}

// ---------------------------------------------------------------- reporting

/// The type of the filesystem holding `path`, from /proc/self/mounts.
fn fs_type(path: &Path) -> String {
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

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

async fn machine(b: &Bench) -> Value {
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

fn print_table(b: &Bench) {
    let rows = b.rows.lock().unwrap_or_else(PoisonError::into_inner);
    let header = ["measure", "libctd", "reference", "ratio", "target", "met"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.measure.clone(),
                r.ours.clone(),
                r.reference.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::from("|");
        for (w, v) in width.iter().zip(c) {
            let _ = write!(s, " {v:<w$} |");
        }
        s
    };
    println!();
    println!("{}", line(&header.map(str::to_owned)));
    let mut sep = String::from("|");
    for w in width {
        let _ = write!(sep, "{}|", "-".repeat(w + 2));
    }
    println!("{sep}");
    for c in &cells {
        println!("{}", line(c));
    }
    println!();
}

fn write_results(b: &Bench) -> Result<()> {
    let mut results = b
        .results
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let rows = b.rows.lock().unwrap_or_else(PoisonError::into_inner);
    results.insert(
        "table".to_owned(),
        rows.iter()
            .map(|r| {
                json!({
                    "measure": r.measure, "libctd": r.ours, "reference": r.reference,
                    "ratio": r.ratio, "target": r.target, "met": r.met,
                })
            })
            .collect(),
    );
    let out = &b.args.out;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::system(format!("cannot create {}", dir.display())).with_source(e)
        })?;
    }
    let text = serde_json::to_string_pretty(&Value::Object(results))
        .map_err(|e| Error::system("cannot serialise the results").with_source(e))?;
    std::fs::write(out, text + "\n")
        .map_err(|e| Error::system(format!("cannot write {}", out.display())).with_source(e))?;
    println!("bench: results written to {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_counts_and_quick() {
        let a = Args::parse(&argv(&["--quick", "--burst", "7"]), false)
            .unwrap()
            .unwrap();
        assert_eq!((a.lifecycles, a.burst, a.stdout_mib), (10, 7, 64));
        let a = Args::parse(&[], true).unwrap().unwrap();
        assert!(a.quick);
        let a = Args::parse(&[], false).unwrap().unwrap();
        assert_eq!((a.lifecycles, a.attached), (50, 100));
        assert!(Args::parse(&argv(&["--help"]), false).unwrap().is_none());
        let a = Args::parse(&argv(&["--only", "burst,memory"]), false)
            .unwrap()
            .unwrap();
        assert!(a.runs("burst") && a.runs("memory") && !a.runs("lifecycle"));
        // The installed daemon by default, its ctr from PATH; a chosen one's
        // own ctr when it has one next to it.
        let a = Args::parse(&[], false).unwrap().unwrap();
        assert_eq!(a.containerd, PathBuf::from("containerd"));
        assert_eq!(a.ctr(), PathBuf::from("ctr"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ctr"), b"").unwrap();
        let daemon = dir.path().join("containerd");
        let a = Args::parse(&argv(&["--containerd", daemon.to_str().unwrap()]), false)
            .unwrap()
            .unwrap();
        assert_eq!(a.containerd, daemon);
        assert_eq!(a.ctr(), dir.path().join("ctr"));
    }

    #[test]
    fn rejects_bad_flags() {
        for bad in [
            &["--burst"][..],
            &["--burst", "0"],
            &["--burst", "x"],
            &["--what", "1"],
            &["--only", "lifecycle,nap"],
        ] {
            let e = Args::parse(&argv(bad), false).unwrap_err();
            assert_eq!(e.kind(), libctd_core::ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Dist::of(&v);
        assert_eq!(
            (d.min, d.p50, d.p90, d.p99, d.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Dist::of(&[]).n, 0);
        assert_eq!(Dist::of(&[3.0]).p99, 3.0);
    }

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
