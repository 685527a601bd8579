//! The embedded daemon's binary and configuration file, per containerd line.
//!
//! The binary is asked for its version (`containerd --version`); 1.x reads a
//! `version = 2` configuration, 2.x a `version = 3` one, and the plugins an
//! embedded daemon does not need have different ids on each (2.x split CRI
//! into several plugins). The daemon runs with its own directory first on
//! `PATH`, so the shim it starts is the `containerd-shim-runc-v2` of the same
//! line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libctd_core::{Error, Result};

use crate::config::LinuxConfig;
use crate::state_dir::{DaemonPaths, find_binary, state_dir_error};

/// How long `containerd --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Plugins a 1.6 / 1.7 daemon does not need (configuration `version = 2`).
const DISABLED_PLUGINS_V1: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

/// Plugins a 2.x daemon does not need (configuration `version = 3`): CRI is
/// split into images, runtime, the pod sandbox controller and the gRPC
/// service; the sandbox-controllers service needs the pod sandbox controller.
const DISABLED_PLUGINS_V2: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.cri.v1.images",
    "io.containerd.cri.v1.runtime",
    "io.containerd.podsandbox.controller.v1.podsandbox",
    "io.containerd.grpc.v1.sandbox-controllers",
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.blockfile",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

/// A containerd release line (major, minor), as its binary reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Line {
    pub major: u32,
    pub minor: u32,
}

impl Line {
    /// The configuration file's `version`.
    pub(crate) fn config_version(self) -> u32 {
        if self.major >= 2 { 3 } else { 2 }
    }

    fn disabled_plugins(self) -> &'static [&'static str] {
        if self.major >= 2 {
            DISABLED_PLUGINS_V2
        } else {
            DISABLED_PLUGINS_V1
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The line in `containerd --version`'s output, which is
/// `containerd <module path> <version> [<revision>]`, the version with or
/// without a leading `v` and with any distribution suffix (`1.7.24~ds1`).
pub(crate) fn parse_version(output: &str) -> Option<Line> {
    let mut words = output.split_whitespace();
    if words.next()? != "containerd" {
        return None;
    }
    let version = words.nth(1)?;
    let version = version.strip_prefix('v').unwrap_or(version);
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some(Line {
        major,
        minor: minor.parse().ok()?,
    })
}

/// The daemon binary an embedded remote runs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Binary {
    /// The binary's absolute path.
    pub path: PathBuf,
    /// Its release line.
    pub line: Line,
}

impl Binary {
    /// Resolves `config.containerd_binary`, asks it for its version, and
    /// checks that a runc shim and runc can be found for it.
    pub(crate) async fn probe(config: &LinuxConfig) -> Result<Self> {
        let path = find_binary(&config.containerd_binary).ok_or_else(|| {
            Error::unavailable(format!(
                "containerd is not installed: {} is not in PATH (install it with `apt-get install containerd`)",
                config.containerd_binary.display()
            ))
        })?;
        // Absolute, so that its directory can go first on the daemon's PATH.
        let path = std::path::absolute(&path).unwrap_or(path);
        let run = tokio::process::Command::new(&path)
            .arg("--version")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(VERSION_TIMEOUT, run)
            .await
            .map_err(|_| {
                Error::unavailable(format!(
                    "{} --version did not answer within {VERSION_TIMEOUT:?}",
                    path.display()
                ))
            })?
            .map_err(|e| {
                Error::unavailable(format!("containerd cannot be started: {}", path.display()))
                    .with_source(e)
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let line = parse_version(&text).ok_or_else(|| {
            Error::unavailable(format!(
                "{} is not a containerd: its --version printed {:?}",
                path.display(),
                text.trim()
            ))
        })?;
        let binary = Self { path, line };
        binary.check_companions()?;
        Ok(binary)
    }

    /// The directory the binary is in.
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// The `PATH` the daemon runs with: its own directory first, so that
    /// the shim of its own line is the one it starts.
    pub(crate) fn search_path(&self) -> OsString {
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(self.dir().to_path_buf())
            .chain(std::env::split_paths(&inherited).filter(|d| d != self.dir()));
        std::env::join_paths(dirs).unwrap_or(inherited)
    }

    /// Its runc shim (next to it or in PATH) and runc must be installed.
    fn check_companions(&self) -> Result<()> {
        let shim = Path::new("containerd-shim-runc-v2");
        if find_binary(&self.dir().join(shim)).is_none() && find_binary(shim).is_none() {
            return Err(Error::unavailable(format!(
                "containerd's runc shim (containerd-shim-runc-v2) is not installed: it is neither next to {} nor in PATH (install it with `apt-get install containerd`)",
                self.path.display()
            )));
        }
        if find_binary(Path::new("runc")).is_none() {
            return Err(Error::unavailable(
                "runc is not installed: runc is not in PATH (install it with `apt-get install runc`)",
            ));
        }
        Ok(())
    }
}

/// Writes the daemon's configuration file for `line`.
pub(crate) fn write_config(config: &LinuxConfig, paths: &DaemonPaths, line: Line) -> Result<()> {
    for dir in [&paths.root, &paths.state] {
        std::fs::create_dir_all(dir)
            .map_err(|e| state_dir_error(&config.state_dir, "cannot create daemon dirs", e))?;
    }
    let text = render_config(config, paths, line)?;
    std::fs::write(&paths.config_file, text)
        .map_err(|e| state_dir_error(&config.state_dir, "cannot write the config file", e))
}

/// The configuration file's text for a daemon of `line`. The keys used are
/// the same in versions 2 and 3; only the version and plugin ids differ.
pub(crate) fn render_config(
    config: &LinuxConfig,
    paths: &DaemonPaths,
    line: Line,
) -> Result<String> {
    use toml::{Table, Value};
    let path = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    let table = |entries: Vec<(&str, Value)>| -> Value {
        Value::Table(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    };
    let mut t = Table::new();
    t.insert(
        "version".into(),
        Value::Integer(line.config_version().into()),
    );
    t.insert("root".into(), path(&paths.root));
    t.insert("state".into(), path(&paths.state));
    if let Some(score) = config.oom_score {
        t.insert("oom_score".into(), Value::Integer(score.into()));
    }
    let disabled = line
        .disabled_plugins()
        .iter()
        .map(|p| Value::String((*p).to_owned()));
    t.insert("disabled_plugins".into(), Value::Array(disabled.collect()));
    let mut grpc = vec![("address", path(&paths.socket))];
    if let Some(uid) = config.socket_uid {
        grpc.push(("uid", Value::Integer(uid.into())));
    }
    if let Some(gid) = config.socket_gid {
        grpc.push(("gid", Value::Integer(gid.into())));
    }
    t.insert("grpc".into(), table(grpc));
    t.insert(
        "ttrpc".into(),
        table(vec![("address", path(&paths.ttrpc_socket))]),
    );
    let mut debug = Vec::new();
    if let Some(a) = &config.debug_address {
        debug.push(("address", path(a)));
    }
    if let Some(l) = &config.log_level {
        debug.push(("level", Value::String(l.as_str().to_owned())));
    }
    if !debug.is_empty() {
        t.insert("debug".into(), table(debug));
    }
    if let Some(a) = &config.metrics_address {
        t.insert(
            "metrics".into(),
            table(vec![("address", Value::String(a.clone()))]),
        );
    }
    if !config.plugin_config.is_empty() {
        let mut plugins = Table::new();
        for section in &config.plugin_config {
            let body = section.table()?;
            match plugins.get_mut(&section.plugin) {
                // Two sections for one plugin: the later keys win.
                Some(Value::Table(existing)) => existing.extend(body),
                _ => {
                    plugins.insert(section.plugin.clone(), Value::Table(body));
                }
            }
        }
        t.insert("plugins".into(), Value::Table(plugins));
    }
    toml::to_string(&t)
        .map_err(|e| Error::system("cannot write the daemon's configuration").with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V16: Line = Line { major: 1, minor: 6 };
    const V21: Line = Line { major: 2, minor: 1 };

    #[test]
    fn versions_are_read_from_each_lines_output() {
        for (output, line) in [
            (
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
                V16,
            ),
            (
                "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1\n",
                Line { major: 1, minor: 7 },
            ),
            (
                "containerd github.com/containerd/containerd/v2 2.1.9+unknown \n",
                V21,
            ),
            (
                "containerd containerd.io v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da\n",
                Line { major: 1, minor: 7 },
            ),
        ] {
            assert_eq!(parse_version(output), Some(line), "{output}");
        }
        for bad in [
            "",
            "--version\n",
            "containerd\n",
            "containerd x y\n",
            "runc version 1.1.5",
            "containerd m 1\n",
        ] {
            assert_eq!(parse_version(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn each_line_gets_its_config_version_and_plugin_ids() {
        let config = LinuxConfig::default();
        let paths = DaemonPaths::new(Path::new("/run/x"));
        let v1 = render_config(&config, &paths, V16).unwrap();
        assert!(v1.starts_with("version = 2\n"), "{v1}");
        assert!(!v1.contains("io.containerd.cri.v1.runtime"), "{v1}");
        let v2 = render_config(&config, &paths, V21).unwrap();
        assert!(v2.starts_with("version = 3\n"), "{v2}");
        for id in [
            "\"io.containerd.grpc.v1.cri\"",
            "\"io.containerd.cri.v1.images\"",
            "\"io.containerd.cri.v1.runtime\"",
            "\"io.containerd.podsandbox.controller.v1.podsandbox\"",
        ] {
            assert!(v2.contains(id), "{id} missing from\n{v2}");
        }
    }

    #[test]
    fn every_option_reaches_the_config_file() {
        let config = crate::LinuxRemote::builder()
            .state_dir("/run/x")
            .log_level(crate::LogLevel::Debug)
            .debug_address("/run/x/debug.sock")
            .metrics_address("127.0.0.1:1338")
            .plugin_config("io.containerd.gc.v1.scheduler", "pause_threshold = 0.05")
            .oom_score(-999)
            .socket_owner(1, 2)
            .into_config()
            .unwrap();
        let paths = DaemonPaths::new(&config.state_dir);
        for line in [V16, V21] {
            let text = render_config(&config, &paths, line).unwrap();
            for needle in [
                "root = \"/run/x/daemon/root\"",
                "state = \"/run/x/daemon/state\"",
                "oom_score = -999",
                "\"io.containerd.grpc.v1.cri\"",
                "address = \"/run/x/containerd.sock\"",
                "uid = 1",
                "gid = 2",
                "address = \"/run/x/containerd.sock.ttrpc\"",
                "address = \"/run/x/debug.sock\"",
                "level = \"debug\"",
                "address = \"127.0.0.1:1338\"",
                "[plugins.\"io.containerd.gc.v1.scheduler\"]\npause_threshold = 0.05",
            ] {
                assert!(text.contains(needle), "{needle} missing from\n{text}");
            }
        }
    }

    #[test]
    fn strings_are_escaped_and_plugin_sections_nest() {
        let config = crate::LinuxRemote::builder()
            .state_dir("/run/a\"b")
            .plugin_config("p", "a = 1\n[nested]\nb = \"x\\ny\"")
            .plugin_config("p", "c = true")
            .into_config()
            .unwrap();
        let paths = DaemonPaths::new(&config.state_dir);
        let text = render_config(&config, &paths, V16).unwrap();
        let back: toml::Table = text.parse().unwrap();
        assert_eq!(back["root"].as_str(), Some("/run/a\"b/daemon/root"));
        let p = &back["plugins"]["p"];
        assert_eq!(p["a"].as_integer(), Some(1));
        assert_eq!(p["nested"]["b"].as_str(), Some("x\ny"));
        assert_eq!(p["c"].as_bool(), Some(true));
    }

    #[test]
    fn the_daemons_own_directory_comes_first_on_path() {
        let binary = Binary {
            path: PathBuf::from("/opt/ctd/bin/containerd"),
            line: V21,
        };
        let path = binary.search_path();
        let first = std::env::split_paths(&path).next();
        assert_eq!(first, Some(PathBuf::from("/opt/ctd/bin")));
    }
}
