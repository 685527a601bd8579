//! The run: the daemon, the clients and references every phase shares, set
//! up once and torn down whatever happened.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Error, Remote, Result};
use libctd_linux::{LinuxRemote, LogLevel};
use libctd_testkit::containerd::{build_busybox_rootfs, busybox_spec};
use serde_json::json;

use crate::args::Args;
use crate::host::{fs_type, leftovers, loadavg, machine};
use crate::measure::{MIB, cpu_self, rss_bytes};
use crate::ours::{GROUP, Ours, Recorder, sweep};
use crate::phases;
use crate::reference::{Ctr, RawExits, Runc};
use crate::report::Report;

/// Everything the phases share.
pub(crate) struct Bench {
    /// What to run.
    pub(crate) args: Args,
    /// The embedded daemon's remote, for clients of a phase's own.
    pub(crate) remote: Arc<LinuxRemote>,
    /// The busybox root filesystem every container runs on.
    rootfs: PathBuf,
    /// libctd with default options.
    pub(crate) off: Arc<Ours>,
    /// libctd with the shim group.
    pub(crate) on: Arc<Ours>,
    /// The `ctr` reference.
    pub(crate) ctr: Ctr,
    /// The `runc` reference.
    pub(crate) runc: Runc,
    /// The bare event subscriber.
    pub(crate) raw: RawExits,
    /// What the phases found.
    pub(crate) report: Report,
}

impl Bench {
    /// A busybox spec running `args` on the shared rootfs.
    pub(crate) fn spec(&self, args: &[&str]) -> Spec {
        busybox_spec(&self.rootfs, args, false, None)
    }

    /// The client without (`false`) or with (`true`) the shim group.
    pub(crate) fn variant(&self, group: bool) -> &Arc<Ours> {
        if group { &self.on } else { &self.off }
    }
}

/// Sets up the daemon, clients and references, runs the phases, tears
/// everything down, then prints the table and writes the results.
pub(crate) async fn run(args: Args) -> Result<()> {
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
    if args.metrics {
        println!("bench: with a metrics recorder installed (--metrics)");
    }
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
        report: Report::default(),
    });
    bench.report.record("machine", machine(&bench).await);
    bench.report.record(
        "args",
        json!({
            "lifecycles": args.lifecycles, "burst": args.burst, "rounds": args.rounds,
            "stdout_mib": args.stdout_mib, "stdout_runs": args.stdout_runs,
            "attached": args.attached, "quick": args.quick, "metrics": args.metrics,
            "state_dir": state.display().to_string(),
            "state_fs": fs_type(&state),
        }),
    );

    let outcome = phases::run(&bench).await;

    // Teardown, whatever happened.
    let left_off = sweep(&bench.off).await;
    let left_on = sweep(&bench.on).await;
    bench.ctr.sweep().await;
    bench.ctr.remove_traces();
    bench.runc.sweep().await;
    let _ = group_remote.cleanup().await;
    let stopped = remote.cleanup().await;
    let leftovers = leftovers(&state, std::time::Duration::from_secs(5)).await;
    let load_end = loadavg();
    bench.report.record(
        "process",
        json!({
            "cpu_total_s": (cpu_self() - cpu_start).as_secs_f64(),
            "rss_start_mib": rss_start as f64 / MIB as f64,
            "load_start": load_start, "load_end": load_end,
            "swept_containers": left_off + left_on,
            "leftover_processes": leftovers.len(),
        }),
    );
    if outcome.is_err() || stopped.is_err() {
        eprintln!(
            "bench: the state directory is kept for a look: {} (containerd.log)",
            state.display()
        );
    }
    outcome?;
    stopped?;
    bench.report.print_table();
    bench.report.write(&args.out)?;
    if !leftovers.is_empty() {
        return Err(Error::system(format!(
            "processes of the benchmark's containerd are still running: pids {leftovers:?}; state kept in {}",
            state.display()
        )));
    }
    println!("bench: nothing left running; load average {load_start} at start, {load_end} at end");
    // Kept when anything failed (the daemon's log is there); `cleanup` keeps
    // it, as a daemon's state is kept across restarts.
    std::fs::remove_dir_all(&state).map_err(|e| {
        Error::system(format!(
            "cannot remove the state directory {}",
            state.display()
        ))
        .with_source(e)
    })
}
