//! `cargo xtask bench [ARGS]`: builds the benchmark program (release) and runs
//! it on an embedded containerd of its own, from the repository root, so that
//! its results land in `bench/results.json`.
//!
//! The program is the `bench` example of `libctd-linux`
//! (`crates/libctd-linux/examples/bench/`); xtask only builds and runs it, so
//! xtask stays free of dependencies. `ARGS` are passed through
//! (`cargo xtask bench --help` lists them; `--quick` is a smoke run).
//! See BENCHMARKS.md.

use crate::{Result, cargo, step, workspace_root};

/// Builds and runs the benchmark program, passing `args` through.
pub fn run(args: &[String]) -> Result {
    let root = workspace_root();
    let mut build = cargo(&[
        "build",
        "--release",
        "--package",
        "libctd-linux",
        "--example",
        "bench",
    ]);
    build.current_dir(&root);
    step("build the benchmarks (release)", build)?;
    let mut bench = cargo(&[
        "run",
        "--quiet",
        "--release",
        "--package",
        "libctd-linux",
        "--example",
        "bench",
        "--",
    ]);
    bench.args(args).current_dir(&root);
    step("benchmarks", bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_workspace() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(
            root.join("crates/libctd-linux/examples/bench/main.rs")
                .is_file()
        );
    }
}
