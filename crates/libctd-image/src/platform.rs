//! Platforms (os/architecture/variant) and which of an index's images the
//! host runs, by the rules of containerd's default matcher: names are
//! normalised (`x86_64` is `amd64`, `aarch64` is `arm64`, `armhf` is
//! `arm/v7`, ...), and a host runs its own platform first, then older
//! variants of it, then the 32-bit platforms it can run (`amd64`: `386`;
//! `arm64`: `arm` from `v8` down to `v5`; `arm/vN`: `arm/vN` down to `v5`).
//! Only Linux images match.

use std::fmt;

/// An image's platform, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, ...
    pub architecture: String,
    /// `v7`, ...; empty for none (and for the default one: amd64's `v1`, arm64's `v8`).
    pub variant: String,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

impl Platform {
    /// `os/architecture/variant`, normalised.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Self {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) = normalise_arch(
            &architecture.to_ascii_lowercase(),
            &variant.to_ascii_lowercase(),
        );
        Self {
            os: if os == "macos" {
                "darwin".to_owned()
            } else {
                os
            },
            architecture,
            variant,
        }
    }

    /// The platform this process runs as: Linux and the architecture it
    /// was built for (32-bit arm is taken as `v7`).
    pub fn host() -> Self {
        Self::new("linux", std::env::consts::ARCH, "")
    }

    /// The platforms the host runs, best first.
    fn runs(&self) -> Vec<Platform> {
        let at = |arch: &str, variant: &str| Platform::new(&self.os, arch, variant);
        let version = |v: &str| v.trim_start_matches('v').parse::<u32>().ok();
        let mut out = Vec::new();
        match self.architecture.as_str() {
            "amd64" => {
                for v in (2..=version(&self.variant).unwrap_or(1)).rev() {
                    out.push(at("amd64", &format!("v{v}")));
                }
                out.push(at("amd64", ""));
                out.push(at("386", ""));
            }
            "arm64" => {
                out.push(self.clone());
                if !self.variant.is_empty() {
                    out.push(at("arm64", ""));
                }
                for v in (5..=8).rev() {
                    out.push(at("arm", &format!("v{v}")));
                }
            }
            "arm" => {
                for v in (5..=version(&self.variant).unwrap_or(7)).rev() {
                    out.push(at("arm", &format!("v{v}")));
                }
            }
            _ => out.push(self.clone()),
        }
        out
    }

    /// How well the host `self` runs `candidate`: `Some(0)` is its own
    /// platform, larger is worse; `None` if it cannot.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        if candidate.os != "linux" || self.os != "linux" {
            return None;
        }
        self.runs().iter().position(|p| p == candidate)
    }
}

/// containerd's normalisation of an architecture and its variant.
fn normalise_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = match (arch, variant) {
        ("i386", v) => ("386", v),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5" | "6" | "8") => {
            return ("arm".to_owned(), format!("v{variant}"));
        }
        (a, v) => (a, v),
    };
    (arch.to_owned(), variant.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: &str) -> Platform {
        Platform::new(os, arch, variant)
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(p("Linux", "x86_64", ""), p("linux", "amd64", ""));
        assert_eq!(p("linux", "amd64", "v1"), p("linux", "amd64", ""));
        assert_eq!(p("linux", "aarch64", "v8"), p("linux", "arm64", ""));
        assert_eq!(p("linux", "armhf", ""), p("linux", "arm", "v7"));
        assert_eq!(p("linux", "arm", ""), p("linux", "arm", "v7"));
        assert_eq!(p("linux", "arm", "6"), p("linux", "arm", "v6"));
        assert_eq!(p("linux", "i386", "").to_string(), "linux/386");
        assert_eq!(p("linux", "arm", "v7").to_string(), "linux/arm/v7");
    }

    #[test]
    fn a_host_runs_its_own_platform_first_then_compatible_ones() {
        let amd64 = p("linux", "amd64", "");
        assert_eq!(amd64.rank(&p("linux", "amd64", "")), Some(0));
        assert_eq!(amd64.rank(&p("linux", "386", "")), Some(1));
        assert_eq!(amd64.rank(&p("linux", "amd64", "v3")), None);
        assert_eq!(amd64.rank(&p("linux", "arm64", "")), None);
        assert_eq!(amd64.rank(&p("windows", "amd64", "")), None);
        assert_eq!(amd64.rank(&p("unknown", "unknown", "")), None);

        let v3 = p("linux", "amd64", "v3");
        assert_eq!(v3.rank(&p("linux", "amd64", "v3")), Some(0));
        assert!(v3.rank(&p("linux", "amd64", "v2")) < v3.rank(&p("linux", "amd64", "")));

        let arm64 = p("linux", "arm64", "");
        assert_eq!(arm64.rank(&p("linux", "aarch64", "v8")), Some(0));
        assert!(arm64.rank(&p("linux", "arm", "v7")) < arm64.rank(&p("linux", "arm", "v5")));
        assert_eq!(arm64.rank(&p("linux", "amd64", "")), None);

        let armv6 = p("linux", "arm", "v6");
        assert_eq!(armv6.rank(&p("linux", "arm", "v7")), None);
        assert_eq!(armv6.rank(&p("linux", "arm", "v5")), Some(1));
    }

    #[test]
    fn the_host_is_linux() {
        assert_eq!(Platform::host().os, "linux");
        assert_eq!(Platform::host().rank(&Platform::host()), Some(0));
    }
}
