//! The containerd lines libctd is tested on besides the installed one, and
//! how `cargo xtask setup` fetches them.
//!
//! Debian's newer suites ship containerd builds that run on this machine's
//! libc. They are fetched without installing anything: a private apt
//! configuration (its own sources list naming the suites on the archive URI
//! the machine's own apt sources use, its own lists and cache directories),
//! `apt-get update`, `apt-get download containerd=<version>`, then
//! `dpkg-deb -x` into `target/containerd/<version>/`, which later runs reuse.
//! The package's own `containerd-shim-runc-v2` sits next to its `containerd`;
//! runc stays the installed one.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, step, workspace_root};

/// The variable naming the daemon the Linux tests run (read by
/// `libctd_testkit::containerd::containerd_binary`).
pub(crate) const CONTAINERD_ENV: &str = "LIBCTD_CONTAINERD";

/// A containerd line fetched from a Debian suite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    /// The line, as the README's support table names it.
    pub name: &'static str,
    /// The Debian suite that ships it.
    pub suite: &'static str,
    /// The exact Debian package version (pinned here, and only here).
    pub version: &'static str,
}

/// The lines tested besides the installed containerd (bookworm's 1.6.20).
pub(crate) const LINES: &[Line] = &[
    Line {
        name: "1.7",
        suite: "trixie",
        version: "1.7.24~ds1-6+deb13u1",
    },
    Line {
        name: "2.1",
        suite: "sid",
        version: "2.1.9+ds1-5",
    },
];

/// Where fetched daemons and the private apt state live.
fn cache_dir() -> PathBuf {
    workspace_root().join("target").join("containerd")
}

impl Line {
    /// The extracted package's root.
    fn root(&self) -> PathBuf {
        cache_dir().join(self.version)
    }

    /// The line's `containerd` binary (its shim is in the same directory).
    pub(crate) fn containerd(&self) -> PathBuf {
        self.root().join("usr/bin/containerd")
    }

    /// Whether the cached binary is there and runs.
    fn cached(&self) -> bool {
        Command::new(self.containerd())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

/// Fetches every line not cached yet.
pub(crate) fn fetch_all() -> Result {
    let missing: Vec<&Line> = LINES.iter().filter(|l| !l.cached()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let apt = PrivateApt::new(&missing)?;
    apt.update()?;
    for line in missing {
        println!("==> fetching containerd {} ({})", line.version, line.suite);
        let deb = apt.download(line)?;
        let root = line.root();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let mut extract = Command::new("dpkg-deb");
        extract.arg("-x").arg(&deb).arg(&root);
        step("extract it", extract)?;
        let _ = std::fs::remove_file(&deb);
        if !line.cached() {
            return Err(format!(
                "{} does not run after extracting {}",
                line.containerd().display(),
                deb.display()
            ));
        }
    }
    Ok(())
}

/// An apt configuration of our own under the cache directory.
struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    fn new(lines: &[&Line]) -> Result<Self> {
        let dir = cache_dir().join("apt");
        for sub in ["lists/partial", "cache/archives/partial", "parts", "debs"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let uri = archive_uri()?;
        let mut suites: Vec<&str> = lines.iter().map(|l| l.suite).collect();
        suites.dedup();
        let text: String = suites
            .iter()
            .map(|s| format!("deb {uri} {s} main\n"))
            .collect();
        let list = dir.join("sources.list");
        std::fs::write(&list, text).map_err(|e| format!("{}: {e}", list.display()))?;
        Ok(Self { dir })
    }

    /// `apt-get` with every path of its state pointed into our directory.
    fn apt_get(&self) -> Command {
        let mut cmd = Command::new("apt-get");
        let d = |sub: &str| self.dir.join(sub).to_string_lossy().into_owned();
        for (key, value) in [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("parts")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            ("Debug::NoLocking", "1".to_owned()),
            ("APT::Sandbox::User", "root".to_owned()),
        ] {
            cmd.arg("-o").arg(format!("{key}={value}"));
        }
        cmd
    }

    fn update(&self) -> Result {
        let mut cmd = self.apt_get();
        cmd.args(["-q", "update"]);
        step("apt-get update (private lists)", cmd)
    }

    /// Downloads the line's package; returns the .deb's path.
    fn download(&self, line: &Line) -> Result<PathBuf> {
        let debs = self.dir.join("debs");
        let mut cmd = self.apt_get();
        cmd.args(["-q", "download"])
            .arg(format!("containerd={}", line.version))
            .current_dir(&debs);
        step("apt-get download", cmd)?;
        std::fs::read_dir(&debs)
            .map_err(|e| format!("{}: {e}", debs.display()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("containerd_") && n.ends_with(".deb") && {
                        // apt escapes ':' in versions; '~' and '+' stay.
                        n.contains(line.version)
                    }
                })
            })
            .ok_or_else(|| format!("apt-get download left no containerd {}", line.version))
    }
}

/// The Debian archive URI of the machine's own apt sources: the entry that
/// names a plain suite (not `-security` or `-updates`).
fn archive_uri() -> Result<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        parts.sort();
        files.extend(parts);
    }
    files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            match f.extension().and_then(|e| e.to_str()) {
                Some("sources") => uri_from_deb822(&text),
                Some("list") => uri_from_one_line(&text),
                _ => None,
            }
        })
        .next()
        .ok_or_else(|| {
            "no Debian archive found in the machine's apt sources (/etc/apt/sources.list*)"
                .to_owned()
        })
}

/// Whether `suite` is a release itself (bookworm), not an add-on pocket.
fn plain_suite(suite: &str) -> bool {
    !suite.is_empty() && !suite.contains('-') && !suite.contains('/')
}

/// The first `Types: deb` stanza's URI whose suites include a plain one.
fn uri_from_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        let is_deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        let plain = field("Suites")?.split_whitespace().any(plain_suite);
        let uri = field("URIs")?.split_whitespace().next()?;
        (is_deb && enabled && plain && is_debian(uri)).then(|| uri.to_owned())
    })
}

/// The first `deb URI suite ...` line with a plain suite.
fn uri_from_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("deb ")?.trim_start();
        // Skip `[options]`.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']')?.1.trim_start(),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let (uri, suite) = (words.next()?, words.next()?);
        (plain_suite(suite) && is_debian(uri)).then(|| uri.to_owned())
    })
}

/// Debian's archive (not a third-party repository on the same machine).
fn is_debian(uri: &str) -> bool {
    uri.trim_end_matches('/').ends_with("/debian")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_uri_is_read_from_both_source_formats() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            uri_from_deb822(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let security_only =
            "Types: deb\nURIs: http://m/debian-security\nSuites: bookworm-security\n";
        assert_eq!(uri_from_deb822(security_only), None);
        let one_line = "# comment\ndeb [arch=amd64] http://m/debian/ bookworm main\n";
        assert_eq!(
            uri_from_one_line(one_line).as_deref(),
            Some("http://m/debian/")
        );
        assert_eq!(
            uri_from_one_line("deb https://other.example/apt cloud-sdk main\n"),
            None
        );
    }

    #[test]
    fn each_line_has_its_own_cache_directory() {
        let roots: Vec<PathBuf> = LINES.iter().map(Line::root).collect();
        for (i, r) in roots.iter().enumerate() {
            assert!(r.starts_with(workspace_root().join("target")));
            assert!(!roots[i + 1..].contains(r));
        }
    }
}
