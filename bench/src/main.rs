//! Benchmarks of the Linux backend, each side by side with its reference in
//! the same run (issue 5): sequential lifecycles against `ctr run --rm` and
//! `runc run`, bursts against concurrent `ctr run --rm`, stdout throughput
//! through [`DirectIo`](libctd_core::DirectIo) against `ctr run`, event
//! latency, the client's own CPU time and memory with the shim-group option
//! off and on, an engine restart at scale, and a soak.
//!
//! It starts an embedded containerd of its own on its own runtime (as an
//! engine would; the testkit supplies only the busybox rootfs and specs),
//! prints a table, writes `bench/results.json`, and leaves nothing running.
//! It must run as root, with containerd, ctr, runc and busybox-static
//! installed:
//!
//! ```text
//! cargo xtask bench                       # the full run (about 5 minutes)
//! cargo xtask bench --quick               # small counts, for a smoke run
//! cargo run --release -p libctd-bench -- --help
//! ```
//!
//! See BENCHMARKS.md at the repository root for what each figure means and
//! what limits it. The program is Linux-only: on other targets it is a stub
//! that says so.
//!
//! - `args`: the flags and `--help`;
//! - `measure`, `stats`: readings of the process, and their statistics;
//! - `ours`: libctd's client, the engine's `Backend`, the lifecycles;
//! - `reference`: the bare event subscriber, `ctr` and `runc`;
//! - `run`: the daemon and what the phases share, set up and torn down;
//! - `phases`: one module per phase;
//! - `host`, `report`: the machine, the table and `bench/results.json`;
//! - `exporter` (feature `metrics`): the recorder `--metrics` installs.

#[cfg(unix)]
mod args;
#[cfg(all(unix, feature = "metrics"))]
mod exporter;
#[cfg(unix)]
mod host;
#[cfg(unix)]
mod measure;
#[cfg(unix)]
mod ours;
#[cfg(unix)]
mod phases;
#[cfg(unix)]
mod reference;
#[cfg(unix)]
mod report;
#[cfg(unix)]
mod run;
#[cfg(unix)]
mod stats;

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("bench: the Linux backend's benchmarks run on Linux only");
    std::process::ExitCode::FAILURE
}

/// Runs the benchmarks with the process's arguments.
#[cfg(unix)]
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;

    use args::{Args, USAGE};
    use libctd_core::Error;

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
    // Before any client exists, as an engine installs its exporter.
    let exporter = match metrics_recorder(args.metrics) {
        Ok(e) => e,
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
        tokio::spawn(run::run(args))
            .await
            .map_err(|e| Error::system("the benchmark task failed").with_source(e))?
    });
    report_metrics(exporter);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {}", e.report());
            ExitCode::FAILURE
        }
    }
}

/// The recorder `--metrics` asks for, installed.
#[cfg(all(unix, feature = "metrics"))]
fn metrics_recorder(wanted: bool) -> libctd_core::Result<Option<exporter::Installed>> {
    wanted.then(exporter::install).transpose()
}

/// `--metrics` without the feature: nothing would be recorded.
#[cfg(all(unix, not(feature = "metrics")))]
fn metrics_recorder(wanted: bool) -> libctd_core::Result<Option<std::convert::Infallible>> {
    if wanted {
        return Err(libctd_core::Error::invalid_argument(
            "--metrics needs a build with the `metrics` feature (cargo xtask bench --metrics)",
        ));
    }
    Ok(None)
}

/// Says how many operations the recorder was given.
#[cfg(all(unix, feature = "metrics"))]
fn report_metrics(exporter: Option<exporter::Installed>) {
    if let Some(e) = exporter {
        println!(
            "bench: the metrics recorder counted {} operation calls",
            e.operations()
        );
    }
}

#[cfg(all(unix, not(feature = "metrics")))]
fn report_metrics(_: Option<std::convert::Infallible>) {}
