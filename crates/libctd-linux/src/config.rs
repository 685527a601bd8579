//! [`LinuxConfig`]: what a [`LinuxRemote`](crate::LinuxRemote) is built
//! from, its one validation, and [`LinuxRemoteBuilder`], the typed way to
//! write it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use libctd_core::{Error, Result, validate_namespace};

/// The default state directory of an embedded containerd.
pub const DEFAULT_STATE_DIR: &str = "/run/libctd";

/// The default deadline of a call to containerd.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest deadline accepted (gRPC cannot carry an unbounded one).
pub const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The shortest keepalive interval or timeout accepted.
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(1);

/// The longest keepalive interval or timeout accepted.
pub const MAX_KEEPALIVE: Duration = Duration::from_secs(3600);

/// containerd's log level (`[debug] level` of its configuration).
///
/// ```
/// use libctd_linux::LogLevel;
///
/// assert_eq!("warn".parse::<LogLevel>().unwrap(), LogLevel::Warn);
/// assert_eq!(LogLevel::Debug.to_string(), "debug");
/// assert!("loud".parse::<LogLevel>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogLevel {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `fatal`
    Fatal,
    /// `panic`
    Panic,
}

impl LogLevel {
    /// Every level, from the most verbose.
    pub const ALL: [LogLevel; 7] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Fatal,
        LogLevel::Panic,
    ];

    /// The level as containerd spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
            LogLevel::Panic => "panic",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = Error;

    /// Parses containerd's spelling; anything else is `InvalidArgument`.
    fn from_str(s: &str) -> Result<Self> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = LogLevel::ALL.iter().map(|l| l.as_str()).collect();
                Error::invalid_argument(format!("log level {s:?} is not one of {}", all.join(", ")))
            })
    }
}

/// A configuration section for one containerd plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The plugin's name, such as `io.containerd.runtime.v1.linux`.
    pub plugin: String,
    /// The body of its `[plugins."<plugin>"]` TOML section (keys, and
    /// tables nested in it).
    pub toml: String,
}

impl PluginConfig {
    /// The section's body, parsed.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when the body is not valid TOML.
    pub(crate) fn table(&self) -> Result<toml::Table> {
        self.toml.parse::<toml::Table>().map_err(|e| {
            Error::invalid_argument(format!(
                "plugin config for {:?} is not valid TOML: {}",
                self.plugin,
                e.message().trim_end()
            ))
        })
    }
}

/// The health-check timing of an embedded daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// Pause between checks (default 500 ms).
    pub interval: Duration,
    /// How long a check waits (default 3 s).
    pub timeout: Duration,
    /// Consecutive failed checks before a live but hung daemon is restarted
    /// (default 3).
    pub failures: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(3),
            failures: 3,
        }
    }
}

/// How the connection to containerd is kept alive: while a call or the
/// event stream is open and containerd has sent nothing for `interval`, it
/// is probed (an HTTP/2 PING; every third probe in a silence is a Version
/// call, as containerd's server ends a connection that gets PINGs only);
/// with no answer within `timeout`, the connection is closed, every call
/// on it fails with `Unavailable`, and the next call dials again. A hung
/// daemon is so found within `2 × interval + timeout` of its last word,
/// even by the event stream, which has no deadline. A new connection must
/// also finish its handshake within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// How long containerd may be silent before it is probed (default 10 s).
    pub interval: Duration,
    /// How long a probe waits for its answer (default 20 s).
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
        }
    }
}

/// The configuration a [`LinuxRemote`](crate::LinuxRemote) is built from.
///
/// Write it with [`LinuxRemote::builder`](crate::LinuxRemote::builder);
/// a configuration edited by hand goes through the same
/// [`validate`](LinuxConfig::validate) in
/// [`LinuxRemote::with_config`](crate::LinuxRemote::with_config).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinuxConfig {
    /// The socket of an existing containerd; `None` embeds one.
    pub address: Option<PathBuf>,
    /// Where the embedded daemon and the stdio FIFOs live (mode 0700).
    pub state_dir: PathBuf,
    /// The containerd binary to run (a name looked up in `PATH`, or a path).
    pub containerd_binary: PathBuf,
    /// containerd's log level.
    pub log_level: Option<LogLevel>,
    /// containerd's debug socket.
    pub debug_address: Option<PathBuf>,
    /// containerd's metrics (Prometheus) address, `host:port`.
    pub metrics_address: Option<String>,
    /// Extra `[plugins."<name>"]` sections.
    pub plugin_config: Vec<PluginConfig>,
    /// containerd's OOM score adjustment, -1000 to 1000.
    pub oom_score: Option<i32>,
    /// Owner of the gRPC socket.
    pub socket_uid: Option<u32>,
    /// Group of the gRPC socket.
    pub socket_gid: Option<u32>,
    /// Containers created through this remote share runc shims of this group.
    pub shim_group: Option<String>,
    /// Let the embedded daemon outlive this process (no PDEATHSIG).
    pub outlive: bool,
    /// How an embedded daemon's health is checked.
    pub health_check: HealthCheck,
    /// The deadline of every call to containerd (the event stream excepted).
    pub rpc_timeout: Duration,
    /// How the connection to containerd is kept alive.
    pub keepalive: Keepalive,
    /// Environment variables an embedded daemon gets besides this
    /// process's (such as containerd 2.x's `OTEL_*` exporter settings).
    pub daemon_env: Vec<(String, String)>,
}

impl Default for LinuxConfig {
    fn default() -> Self {
        Self {
            address: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            containerd_binary: PathBuf::from("containerd"),
            log_level: None,
            debug_address: None,
            metrics_address: None,
            plugin_config: Vec::new(),
            oom_score: None,
            socket_uid: None,
            socket_gid: None,
            shim_group: None,
            outlive: false,
            health_check: HealthCheck::default(),
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            keepalive: Keepalive::default(),
            daemon_env: Vec::new(),
        }
    }
}

impl LinuxConfig {
    /// Checks every field; the first bad one fails with `InvalidArgument`
    /// naming it and its value.
    ///
    /// # Errors
    ///
    /// `InvalidArgument`: an empty address or binary, a relative state
    /// directory, a metrics address that is not `host:port`, an OOM score
    /// outside -1000..=1000, a shim group that is not a valid name, a plugin
    /// section without a name or whose body is not valid TOML, a zero health-check
    /// value, an RPC timeout of zero or over [`MAX_RPC_TIMEOUT`], a keepalive
    /// interval or timeout outside [`MIN_KEEPALIVE`]..=[`MAX_KEEPALIVE`],
    /// a daemon environment variable with an empty name, a name holding `=`
    /// or NUL, a value holding NUL, or the name `PATH` (libctd sets it).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid_argument(msg).with_operation("new remote"));
        if self
            .address
            .as_ref()
            .is_some_and(|a| a.as_os_str().is_empty())
        {
            return bad("the containerd address must not be empty".into());
        }
        if !self.state_dir.is_absolute() {
            return bad(format!(
                "the state directory {} must be an absolute path",
                self.state_dir.display()
            ));
        }
        if self.containerd_binary.as_os_str().is_empty() {
            return bad("the containerd binary must not be empty".into());
        }
        if let Some(a) = self.metrics_address.as_ref().filter(|a| !a.contains(':')) {
            return bad(format!("metrics address {a:?} is not host:port"));
        }
        if let Some(s) = self.oom_score.filter(|s| !(-1000..=1000).contains(s)) {
            return bad(format!("OOM score {s} is out of range -1000..=1000"));
        }
        if let Some(group) = &self.shim_group {
            validate_namespace(group).map_err(|e| {
                e.with_message(format!("shim group {group:?} is not a valid name"))
                    .with_operation("new remote")
            })?;
        }
        for p in &self.plugin_config {
            if p.plugin.is_empty() {
                return bad("a plugin config must name its plugin".into());
            }
            p.table().map_err(|e| e.with_operation("new remote"))?;
        }
        let h = &self.health_check;
        if h.interval.is_zero() || h.timeout.is_zero() || h.failures == 0 {
            return bad("health check interval, timeout and failures must be positive".into());
        }
        if self.rpc_timeout.is_zero() || self.rpc_timeout > MAX_RPC_TIMEOUT {
            return bad(format!(
                "the RPC timeout {:?} must be positive and at most {MAX_RPC_TIMEOUT:?}",
                self.rpc_timeout
            ));
        }
        for (name, value) in &self.daemon_env {
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                return bad(format!(
                    "daemon environment variable {name:?}={value:?} is not valid"
                ));
            }
            if name == "PATH" {
                return bad("the daemon's PATH is libctd's (it finds the shims by it)".into());
            }
        }
        let k = &self.keepalive;
        for (name, value) in [("interval", k.interval), ("timeout", k.timeout)] {
            if !(MIN_KEEPALIVE..=MAX_KEEPALIVE).contains(&value) {
                return bad(format!(
                    "the keepalive {name} {value:?} must be within {MIN_KEEPALIVE:?}..={MAX_KEEPALIVE:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Writes a [`LinuxConfig`] setting by setting; [`build`](Self::build)
/// validates it once and starts the remote. Made by
/// [`LinuxRemote::builder`](crate::LinuxRemote::builder).
///
/// ```
/// use std::time::Duration;
/// use libctd_linux::{LinuxRemote, LogLevel};
///
/// let builder = LinuxRemote::builder()
///     .state_dir("/run/my-engine/containerd")
///     .log_level(LogLevel::Info)
///     .rpc_timeout(Duration::from_secs(10));
/// assert_eq!(builder.config().rpc_timeout, Duration::from_secs(10));
/// // A bad value is found by `build` (or `validate`), before anything starts.
/// let bad = LinuxRemote::builder().state_dir("relative/dir");
/// assert!(bad.config().validate().is_err());
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct LinuxRemoteBuilder {
    pub(crate) config: LinuxConfig,
}

impl LinuxRemoteBuilder {
    /// Connect to the containerd at this socket instead of embedding one; it
    /// is never restarted.
    pub fn address(mut self, socket: impl Into<PathBuf>) -> Self {
        self.config.address = Some(socket.into());
        self
    }

    /// The state directory (default [`DEFAULT_STATE_DIR`]); must be absolute.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.state_dir = dir.into();
        self
    }

    /// The containerd binary an embedded remote runs (a name looked up in
    /// `PATH`, or a path; default `containerd`).
    pub fn containerd_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.config.containerd_binary = binary.into();
        self
    }

    /// containerd's log level.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.config.log_level = Some(level);
        self
    }

    /// containerd's debug socket.
    pub fn debug_address(mut self, socket: impl Into<PathBuf>) -> Self {
        self.config.debug_address = Some(socket.into());
        self
    }

    /// containerd's metrics address (`host:port`).
    pub fn metrics_address(mut self, address: impl Into<String>) -> Self {
        self.config.metrics_address = Some(address.into());
        self
    }

    /// Adds a `[plugins."<plugin>"]` section whose body is `toml` (keys, and
    /// tables nested in the plugin's: `[sub]` becomes
    /// `[plugins."<plugin>".sub]`). Sections of one plugin are merged.
    pub fn plugin_config(mut self, plugin: impl Into<String>, toml: impl Into<String>) -> Self {
        self.config.plugin_config.push(PluginConfig {
            plugin: plugin.into(),
            toml: toml.into(),
        });
        self
    }

    /// containerd's OOM score adjustment, -1000 to 1000.
    pub fn oom_score(mut self, score: i32) -> Self {
        self.config.oom_score = Some(score);
        self
    }

    /// Owner and group of containerd's gRPC socket.
    pub fn socket_owner(mut self, uid: u32, gid: u32) -> Self {
        self.config.socket_uid = Some(uid);
        self.config.socket_gid = Some(gid);
        self
    }

    /// Containers created through the remote share runc shims labelled with
    /// this group ([`SHIM_GROUP_KEY`](crate::SHIM_GROUP_KEY)).
    pub fn shim_group(mut self, group: impl Into<String>) -> Self {
        self.config.shim_group = Some(group.into());
        self
    }

    /// Let the embedded containerd outlive this process (default: it gets
    /// a parent-death signal).
    pub fn outlive(mut self, outlive: bool) -> Self {
        self.config.outlive = outlive;
        self
    }

    /// The health-check timing of an embedded daemon.
    pub fn health_check(mut self, health_check: HealthCheck) -> Self {
        self.config.health_check = health_check;
        self
    }

    /// The deadline of every call to containerd (default
    /// [`DEFAULT_RPC_TIMEOUT`], at most [`MAX_RPC_TIMEOUT`]): a daemon that
    /// does not answer in time fails the call with `DeadlineExceeded`, and a
    /// change it may have half made is rolled back. The event stream has none.
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.config.rpc_timeout = timeout;
        self
    }

    /// How the connection to containerd is kept alive (default 10 s and
    /// 20 s; each within [`MIN_KEEPALIVE`]..=[`MAX_KEEPALIVE`]): when
    /// containerd has been silent for `interval` while a call or the event
    /// stream is open, it is probed, and with no answer within `timeout` the
    /// connection is closed: its calls fail with `Unavailable` and the event
    /// stream resubscribes. This is what finds a hung daemon at an
    /// [`address`](Self::address), whose event stream has no deadline.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.keepalive = Keepalive { interval, timeout };
        self
    }

    /// Sets an environment variable of the embedded daemon (beside what it
    /// inherits from this process), such as containerd 2.x's OpenTelemetry
    /// exporter settings (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...). `PATH` is
    /// libctd's. Unused at an [`address`](Self::address).
    pub fn daemon_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.daemon_env.push((name.into(), value.into()));
        self
    }

    /// The configuration written so far (not yet validated).
    pub fn config(&self) -> &LinuxConfig {
        &self.config
    }

    /// The configuration, validated.
    ///
    /// # Errors
    ///
    /// As [`LinuxConfig::validate`].
    pub fn into_config(self) -> Result<LinuxConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;

    fn rejects(builder: LinuxRemoteBuilder, needle: &str) {
        let err = builder.into_config().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
    }

    #[test]
    fn defaults_validate() {
        let config = LinuxRemoteBuilder::default().into_config().unwrap();
        assert_eq!(config, LinuxConfig::default());
        assert_eq!(config.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    }

    #[test]
    fn every_setter_lands_in_its_field() {
        let health = HealthCheck {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            failures: 5,
        };
        let c = LinuxRemoteBuilder::default()
            .address("/run/c.sock")
            .state_dir("/run/x")
            .containerd_binary("/opt/containerd")
            .log_level(LogLevel::Trace)
            .debug_address("/run/d.sock")
            .metrics_address("127.0.0.1:1338")
            .plugin_config("io.containerd.gc.v1.scheduler", "pause_threshold = 0.02")
            .oom_score(-500)
            .socket_owner(1, 2)
            .shim_group("engine")
            .outlive(true)
            .health_check(health)
            .rpc_timeout(Duration::from_secs(9))
            .keepalive(Duration::from_secs(3), Duration::from_secs(4))
            .daemon_env("OTEL_SERVICE_NAME", "ctd")
            .into_config()
            .unwrap();
        assert_eq!(c.address, Some(PathBuf::from("/run/c.sock")));
        assert_eq!(c.state_dir, PathBuf::from("/run/x"));
        assert_eq!(c.containerd_binary, PathBuf::from("/opt/containerd"));
        assert_eq!(c.log_level, Some(LogLevel::Trace));
        assert_eq!(c.debug_address, Some(PathBuf::from("/run/d.sock")));
        assert_eq!(c.metrics_address.as_deref(), Some("127.0.0.1:1338"));
        assert_eq!(c.plugin_config[0].plugin, "io.containerd.gc.v1.scheduler");
        assert_eq!(c.oom_score, Some(-500));
        assert_eq!((c.socket_uid, c.socket_gid), (Some(1), Some(2)));
        assert_eq!(c.shim_group.as_deref(), Some("engine"));
        assert!(c.outlive);
        assert_eq!(c.health_check, health);
        assert_eq!(c.rpc_timeout, Duration::from_secs(9));
        assert_eq!(c.daemon_env, [("OTEL_SERVICE_NAME".into(), "ctd".into())]);
        assert_eq!(
            c.keepalive,
            Keepalive {
                interval: Duration::from_secs(3),
                timeout: Duration::from_secs(4)
            }
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let b = LinuxRemoteBuilder::default;
        rejects(b().address(""), "address must not be empty");
        rejects(b().state_dir("run/x"), "absolute");
        rejects(b().containerd_binary(""), "binary must not be empty");
        rejects(b().metrics_address("1338"), "host:port");
        rejects(b().oom_score(1001), "-1000..=1000");
        rejects(b().oom_score(-1001), "-1000..=1000");
        rejects(b().shim_group("a/b"), "shim group");
        rejects(b().plugin_config("", "a = 1"), "must name its plugin");
        rejects(b().plugin_config("p", "a = = 1"), "not valid TOML");
        let zero = HealthCheck {
            failures: 0,
            ..HealthCheck::default()
        };
        rejects(b().health_check(zero), "health check");
        rejects(b().rpc_timeout(Duration::ZERO), "RPC timeout");
        rejects(b().rpc_timeout(MAX_RPC_TIMEOUT * 2), "RPC timeout");
        let (ok, short, long) = (MIN_KEEPALIVE, Duration::from_millis(999), MAX_KEEPALIVE * 2);
        rejects(b().keepalive(short, ok), "keepalive interval");
        rejects(b().keepalive(long, ok), "keepalive interval");
        rejects(b().keepalive(ok, Duration::ZERO), "keepalive timeout");
        rejects(b().keepalive(ok, long), "keepalive timeout");
        rejects(b().daemon_env("", "v"), "daemon environment variable");
        rejects(b().daemon_env("A=B", "v"), "daemon environment variable");
        rejects(b().daemon_env("A", "v\0"), "daemon environment variable");
        rejects(b().daemon_env("PATH", "/bin"), "PATH is libctd's");
        b().keepalive(MIN_KEEPALIVE, MAX_KEEPALIVE)
            .into_config()
            .unwrap();
        let err = b().oom_score(2000).into_config().unwrap_err();
        assert_eq!(err.operation(), Some("new remote"));
    }

    #[test]
    fn log_levels_round_trip() {
        for level in LogLevel::ALL {
            assert_eq!(level.as_str().parse::<LogLevel>().unwrap(), level);
        }
        let err = "LOUD".parse::<LogLevel>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("trace, debug"), "{err}");
    }
}
