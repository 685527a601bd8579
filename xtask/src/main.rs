//! Project automation for libctd: `cargo xtask <command>`.
//!
//! - `setup`: install what the build and tests need (Debian packages as root,
//!   the Windows rustup target); prints the exact command when not root.
//! - `ci`: setup, fmt check, no unused dependency (`unused_deps.rs`, the
//!   check `cargo machete` makes), clippy (host and `x86_64-pc-windows-gnu`), every
//!   test (Linux on the installed containerd 1.6, the Linux backend's tests
//!   again on 1.7 and 2.1, Windows natively and under Wine), rustdoc with
//!   warnings denied, and finally a check that no daemon, shim or container
//!   the tests started survives them. This is the README's test command.
//! - `test`: setup and the tests only.
//! - `demo`: setup, then a real container on an embedded containerd.
//! - `windows-test`: the Windows crate's tests as Windows binaries under Wine.
//! - `bench`: the benchmarks on an embedded containerd (see BENCHMARKS.md);
//!   `--containerd PATH|1.7|2.1` picks the daemon.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod daemons;
mod leftovers;
mod setup;
mod unused_deps;
mod windows_test;

type Result<T = ()> = std::result::Result<T, String>;

const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::all(),
        Some("ci") => ci(),
        Some("test") => setup::all().and_then(|()| test()),
        Some("demo") => demo(),
        Some("windows-test") => setup::all().and_then(|()| windows_test::run()),
        Some("bench") => setup::linux().and_then(|()| bench::run(&args[1..])),
        _ => Err(
            "usage: cargo xtask <setup | ci | test | demo | windows-test | bench>\n\
             see xtask/src/main.rs for what each does"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> Result {
    setup::all()?;
    step("fmt", cargo(&["fmt", "--all", "--check"]))?;
    step_fn_with("no unused dependencies", || {
        unused_deps::check(&workspace_root())
    })?;
    step(
        "clippy (host)",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "clippy (windows)",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--target",
            WINDOWS_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut doc = cargo(&["doc", "--workspace", "--no-deps", "--all-features"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    step("rustdoc", doc)?;
    test()
}

/// Every test: the workspace on the installed containerd (1.6), the Linux
/// backend's tests on each other line, the Windows tests under Wine; then
/// no shim, container or daemon the tests started may survive them.
fn test() -> Result {
    let run = leftovers::RunMark::new();
    let result = (|| {
        let mut all = cargo(&["test", "--workspace", "--all-features"]);
        run.mark(&mut all);
        step("tests (containerd 1.6, installed)", all)?;
        for line in daemons::LINES {
            // The integration tests: the unit tests (and their 700,000
            // property cases) do not depend on the daemon's line.
            let mut linux = cargo(&[
                "test",
                "-p",
                "libctd-linux",
                "--all-features",
                "--test",
                "*",
            ]);
            linux.env(daemons::CONTAINERD_ENV, line.containerd());
            run.mark(&mut linux);
            step(
                &format!("Linux tests on containerd {} ({})", line.name, line.version),
                linux,
            )?;
        }
        step_fn("windows tests under wine", windows_test::run)
    })();
    // Checked even when a test failed: a failure must leave nothing behind.
    let leftovers = step_fn_with("no leftover shims, containers or daemons", || run.check());
    result.and(leftovers)
}

fn demo() -> Result {
    setup::linux()?;
    step(
        "demo",
        cargo(&["run", "--quiet", "-p", "libctd-linux", "--example", "demo"]),
    )
}

/// The workspace root: the parent of xtask's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A `cargo` command with the given arguments, using the cargo that runs xtask.
pub(crate) fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(args);
    cmd
}

/// Runs a command as a named step, failing with its name and status.
pub(crate) fn step(name: &str, mut cmd: Command) -> Result {
    println!("==> {name}");
    let status = cmd
        .status()
        .map_err(|e| format!("{name}: cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

fn step_fn(name: &str, f: fn() -> Result) -> Result {
    step_fn_with(name, f)
}

fn step_fn_with(name: &str, f: impl FnOnce() -> Result) -> Result {
    println!("==> {name}");
    f().map_err(|e| format!("{name}: {e}"))
}
