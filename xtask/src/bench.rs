//! `cargo xtask bench`: runs the benchmarks on an embedded containerd.

use crate::Result;

/// Builds and runs the benchmark program, passing `args` through.
pub fn run(_args: &[String]) -> Result {
    Err("the benchmarks are not written yet".to_owned())
}
