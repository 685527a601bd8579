//! The command line: the flags, their defaults and `--help`.

use std::path::{Path, PathBuf};

use libctd_core::{Error, Result};
use libctd_linux::DEFAULT_STATE_DIR;

/// The text of `--help`.
pub(crate) const USAGE: &str = "\
usage: bench [--quick] [--lifecycles N] [--burst N] [--rounds N] [--stdout-mib N]
             [--stdout-runs N] [--attached N] [--soak N] [--restore N] [--images N]
             [--image-mib N] [--only LIST]
             [--state-parent DIR] [--out PATH] [--containerd PATH] [--metrics]

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
  --images N       image imports + unpack + first run per side (default 10)
  --image-mib N    MiB of the image's data layer, besides busybox (default 32)
  --out PATH       where to write the results (default bench/results.json)
  --only LIST      run only these phases (comma-separated:
                   memory,lifecycle,burst,stdout,restore,soak)
  --state-parent D where the daemon's state directory and all FIFOs go, ctr's
                   included (default /run, as libctd's default state dir)
  --containerd P   the containerd binary to run (default: the installed one);
                   the `ctr` next to it (same line) is the reference
  --metrics        install a metrics recorder (an exporter's stand-in) first, so
                   that libctd's metrics are recorded; needs the build's `metrics`
                   feature (`cargo xtask bench --metrics` builds with it)

Flags may follow --quick to override its counts. BENCH_RUNTIME=current-thread
runs on tokio's current-thread runtime; RUST_LOG enables tracing. Must run as root.";

/// The phases `--only` selects from, in the order they run.
const PHASES: [&str; 7] = [
    "memory",
    "lifecycle",
    "burst",
    "stdout",
    "restore",
    "image",
    "soak",
];

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// Sequential lifecycles per variant.
    pub(crate) lifecycles: usize,
    /// Lifecycles started at once per burst.
    pub(crate) burst: usize,
    /// Bursts per variant.
    pub(crate) rounds: usize,
    /// MiB written to stdout per throughput run.
    pub(crate) stdout_mib: u64,
    /// Throughput runs per variant.
    pub(crate) stdout_runs: usize,
    /// Running containers with attached stdio for the memory figure.
    pub(crate) attached: usize,
    /// Sequential lifecycles of the soak.
    pub(crate) soak: usize,
    /// Running attached containers an engine restart restores.
    pub(crate) restore: usize,
    /// Image imports (with unpack and a first run) per side.
    pub(crate) images: usize,
    /// MiB of the image's data layer.
    pub(crate) image_mib: u64,
    /// Where the results are written.
    pub(crate) out: PathBuf,
    /// Whether these are the smoke run's counts.
    pub(crate) quick: bool,
    /// The phases to run (all when empty).
    pub(crate) only: Vec<String>,
    /// Where the daemon's state directory (and every FIFO) is created.
    pub(crate) state_parent: PathBuf,
    /// The containerd binary (a name looked up in PATH, or a path).
    pub(crate) containerd: PathBuf,
    /// Whether a metrics recorder is installed before the run.
    pub(crate) metrics: bool,
}

impl Args {
    /// The full run's counts.
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
            images: 10,
            image_mib: 32,
            out: PathBuf::from("bench/results.json"),
            quick: false,
            only: Vec::new(),
            // As libctd's own default state directory.
            state_parent: Path::new(DEFAULT_STATE_DIR)
                .parent()
                .map_or_else(|| PathBuf::from("/run"), Path::to_path_buf),
            containerd: PathBuf::from("containerd"),
            metrics: false,
        }
    }

    /// The `ctr` of the daemon's line: next to its binary, else from PATH.
    pub(crate) fn ctr(&self) -> PathBuf {
        self.containerd
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join("ctr"))
            .filter(|ctr| ctr.is_file())
            .unwrap_or_else(|| PathBuf::from("ctr"))
    }

    /// Whether `--only` selects `phase` (every phase does without it).
    pub(crate) fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }

    /// The smoke run's counts.
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
            images: 3,
            image_mib: 8,
            quick: true,
            ..self
        }
    }

    /// Parses the command line; `Ok(None)` asks for the usage text.
    pub(crate) fn parse(argv: &[String], quick_env: bool) -> Result<Option<Self>> {
        let mut args = Self::full();
        if quick_env || argv.iter().any(|a| a == "--quick") {
            args = args.quick();
        }
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            if flag == "--quick" {
                continue;
            }
            if flag == "--metrics" {
                args.metrics = true;
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
                "--images" => args.images = count()?,
                "--image-mib" => args.image_mib = count()? as u64,
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
        // Beside libctd's own default state directory.
        assert_eq!(a.state_parent, PathBuf::from("/run"));
        assert!(Args::parse(&argv(&["--help"]), false).unwrap().is_none());
        let a = Args::parse(&argv(&["--only", "burst,memory"]), false)
            .unwrap()
            .unwrap();
        assert!(a.runs("burst") && a.runs("memory") && !a.runs("lifecycle"));
        assert!(!a.metrics);
        let a = Args::parse(&argv(&["--metrics", "--lifecycles", "4"]), false)
            .unwrap()
            .unwrap();
        assert!(a.metrics && a.lifecycles == 4);
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
}
