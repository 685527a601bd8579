//! Benchmarks of the Linux backend, each side by side with its reference in
//! the same run (issue 5): sequential lifecycles against `ctr run --rm` and
//! `runc run`, bursts against concurrent `ctr run --rm`, stdout throughput
//! through [`DirectIo`](libctd_core::DirectIo) against `ctr run`, event
//! latency, and the client's own CPU time and memory, with the shim-group
//! option off and on.
//!
//! It starts an embedded containerd of its own on its own runtime (as an
//! engine would; the testkit supplies only the busybox rootfs and specs),
//! prints a table, writes `bench/results.json`, and leaves nothing running. It must run as root, with containerd, ctr, runc and busybox-static
//! installed:
//!
//! ```text
//! cargo xtask bench                       # the full run (about 5 minutes)
//! cargo xtask bench --quick               # small counts, for a smoke run
//! cargo run --release -p libctd-linux --example bench -- --help
//! ```
//!
//! See BENCHMARKS.md at the repository root for what each figure means and
//! what limits it.

#[cfg(unix)]
mod linux;

fn main() -> std::process::ExitCode {
    #[cfg(unix)]
    {
        linux::main()
    }
    #[cfg(not(unix))]
    {
        eprintln!("bench: the Linux backend's benchmarks run on Linux only");
        std::process::ExitCode::FAILURE
    }
}
