//! `cargo xtask bench [ARGS]`: builds the benchmark program (release) and runs
//! it on an embedded containerd of its own, from the repository root, so that
//! its results land in `bench/results.json`.
//!
//! The program is the workspace member `libctd-bench` (`bench/`); xtask only
//! builds and runs it, so xtask stays free of dependencies. `ARGS` are passed through
//! (`cargo xtask bench --help` lists them; `--quick` is a smoke run), except
//! that `--containerd` also takes a tested line's name (`1.7`, `2.1`) for the
//! daemon `cargo xtask setup` fetched: `cargo xtask bench --containerd 2.1`.
//! With `--metrics` the program is built with its `metrics` feature (libctd
//! records metrics, and the flag installs a recorder for them).
//! See BENCHMARKS.md.

use crate::{Result, cargo, daemons, step, workspace_root};

/// `args` with a line name after `--containerd` replaced by its binary.
fn resolve_lines(args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = args.to_vec();
    for i in 1..out.len() {
        if out[i - 1] == "--containerd"
            && let Some(line) = daemons::LINES.iter().find(|l| l.name == out[i])
        {
            out[i] = line.containerd().to_string_lossy().into_owned();
        }
    }
    out
}

/// The cargo features the program is built with for `args`.
fn features(args: &[String]) -> &'static [&'static str] {
    if args.iter().any(|a| a == "--metrics") {
        &["--features", "metrics"]
    } else {
        &[]
    }
}

/// Builds and runs the benchmark program, passing `args` through.
pub(crate) fn run(args: &[String]) -> Result {
    let root = workspace_root();
    let mut build = cargo(&["build", "--release", "--package", "libctd-bench"]);
    build.args(features(args)).current_dir(&root);
    step("build the benchmarks (release)", build)?;
    let mut bench = cargo(&["run", "--quiet", "--release", "--package", "libctd-bench"]);
    bench
        .args(features(args))
        .arg("--")
        .args(resolve_lines(args))
        .current_dir(&root);
    step("benchmarks", bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_names_become_their_fetched_daemons() {
        let args: Vec<String> = ["--quick", "--containerd", "2.1", "--out", "2.1"]
            .map(String::from)
            .to_vec();
        let resolved = resolve_lines(&args);
        assert!(resolved[2].ends_with("usr/bin/containerd"), "{resolved:?}");
        assert_eq!(resolved[4], "2.1", "only the value of --containerd");
        let path = vec!["--containerd".to_owned(), "/opt/containerd".to_owned()];
        assert_eq!(resolve_lines(&path), path);
    }

    #[test]
    fn metrics_builds_with_the_feature() {
        let with = ["--quick".to_owned(), "--metrics".to_owned()];
        assert_eq!(features(&with), ["--features", "metrics"]);
        assert!(features(&with[..1]).is_empty());
    }

    #[test]
    fn root_is_the_workspace() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("bench/src/main.rs").is_file());
    }
}
