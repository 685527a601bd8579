//! An image's configuration (OCI and docker write the same JSON): its
//! platform, how its process runs, its layers' diff ids; and the chain ids
//! its layers are unpacked under.

use std::collections::BTreeMap;

use libctd_core::{Error, Result};
use serde::Deserialize;

use crate::descriptor::or_default;
use crate::digest::Digest;
use crate::platform::Platform;

/// An image configuration, the fields libctd reads (others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// The CPU architecture (`amd64`, ...).
    #[serde(default, deserialize_with = "or_default")]
    pub architecture: String,
    /// The operating system (`linux`, ...).
    #[serde(default, deserialize_with = "or_default")]
    pub os: String,
    /// The architecture's variant (`v7`, ...), if any.
    #[serde(default, deserialize_with = "or_default")]
    pub variant: String,
    /// How a container of the image runs.
    #[serde(default, deserialize_with = "or_default")]
    pub config: RunConfig,
    /// The layers, uncompressed.
    pub rootfs: RootFs,
}

/// The process a container of the image runs (the config's `config`).
/// `ExposedPorts`, `Volumes`, `Healthcheck` and the rest are not read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RunConfig {
    /// `KEY=value` pairs.
    #[serde(rename = "Env", default, deserialize_with = "or_default")]
    pub env: Vec<String>,
    /// The executable and its first arguments, if set.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// The arguments (after the entrypoint), if set.
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// The working directory; empty for `/`.
    #[serde(rename = "WorkingDir", default, deserialize_with = "or_default")]
    pub working_dir: String,
    /// `user[:group]` (names or ids); empty for root.
    #[serde(rename = "User", default, deserialize_with = "or_default")]
    pub user: String,
    /// The image's labels.
    #[serde(rename = "Labels", default, deserialize_with = "or_default")]
    pub labels: BTreeMap<String, String>,
}

/// The image's layers as diff ids (digests of the uncompressed tars).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One per layer, bottom first.
    #[serde(default, deserialize_with = "or_default")]
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    /// Decodes the config in `bytes` (from archive entry `entry`):
    /// `InvalidArgument` naming the entry if it is not one.
    pub fn parse(bytes: &[u8], entry: &str) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid_argument(format!(
                "image archive: entry {entry:?} is not an image config: {e}"
            ))
        })?;
        if config.rootfs.kind != "layers" {
            return Err(Error::invalid_argument(format!(
                "image archive: entry {entry:?}: rootfs type {:?} is not \"layers\"",
                config.rootfs.kind
            )));
        }
        Ok(config)
    }

    /// The platform the config says the image is for.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, &self.variant)
    }

    /// The chain id of each layer, bottom first: what its snapshot is named.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.rootfs.diff_ids)
    }
}

impl RunConfig {
    /// As the contract's [`libctd_core::ImageConfig`]: unset lists are
    /// empty, an empty working directory or user is unset.
    pub fn to_core(&self) -> libctd_core::ImageConfig {
        let mut out = libctd_core::ImageConfig::default();
        out.env = self.env.clone();
        out.entrypoint = self.entrypoint.clone().unwrap_or_default();
        out.cmd = self.cmd.clone().unwrap_or_default();
        out.working_dir = Some(self.working_dir.clone()).filter(|d| !d.is_empty());
        out.user = Some(self.user.clone()).filter(|u| !u.is_empty());
        out.labels = self.labels.clone();
        out
    }
}

/// Chain ids of layers with these diff ids: the first layer's is its diff
/// id; each next one is the sha256 of `"<chain below> <its diff id>"`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(below) => Digest::of(format!("{below} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;
    use sha2::{Digest as _, Sha256};

    fn sha256_hex(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn d(hex: &str) -> Digest {
        Digest::parse(&format!("sha256:{hex}")).unwrap()
    }

    // sha256 of "a", "b", "c"; the chain ids below were computed with
    // sha256sum over "sha256:<a> sha256:<b>" and so on.
    const A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
    const B: &str = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
    const C: &str = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6";
    const AB: &str = "51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676";
    const ABC: &str = "2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106";

    #[test]
    fn chain_ids_of_known_values() {
        assert_eq!(chain_ids(&[]), Vec::<Digest>::new());
        assert_eq!(chain_ids(&[d(A)]), vec![d(A)]);
        assert_eq!(chain_ids(&[d(A), d(B), d(C)]), vec![d(A), d(AB), d(ABC)]);
    }

    #[test]
    fn chain_ids_from_first_principles() {
        let diff_ids: Vec<Digest> = (0..5u8).map(|i| d(&sha256_hex(&[i]))).collect();
        let chains = chain_ids(&diff_ids);
        let mut below = format!("sha256:{}", sha256_hex(&[0]));
        assert_eq!(chains[0].to_string(), below);
        for i in 1..5u8 {
            let text = format!("{below} sha256:{}", sha256_hex(&[i]));
            below = format!("sha256:{}", sha256_hex(text.as_bytes()));
            assert_eq!(chains[usize::from(i)].to_string(), below);
        }
    }

    #[test]
    fn docker_and_oci_configs_decode() {
        let docker = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],
            "Entrypoint":null,"Cmd":["sh"],"WorkingDir":"","User":"","Labels":null,
            "ExposedPorts":{{"80/tcp":{{}}}}}},"rootfs":{{"type":"layers","diff_ids":["sha256:{A}"]}},
            "history":[{{"created_by":"x"}}]}}"#
        );
        let c = ImageConfig::parse(docker.as_bytes(), "c.json").unwrap();
        assert_eq!(c.platform(), Platform::new("linux", "amd64", ""));
        assert_eq!(c.config.env, ["PATH=/bin"]);
        assert_eq!(c.config.entrypoint, None);
        assert_eq!(c.config.cmd, Some(vec!["sh".to_owned()]));
        assert!(c.config.labels.is_empty());
        assert_eq!(c.chain_ids(), [d(A)]);

        let oci = format!(
            r#"{{"architecture":"arm","variant":"v7","os":"linux","config":{{"Entrypoint":["/app"],
            "WorkingDir":"/srv","User":"1000:1000","Labels":{{"k":"v"}}}},
            "rootfs":{{"type":"layers","diff_ids":["sha256:{A}","sha256:{B}"]}}}}"#
        );
        let c = ImageConfig::parse(oci.as_bytes(), "blobs/sha256/x").unwrap();
        assert_eq!(c.platform().to_string(), "linux/arm/v7");
        assert_eq!(c.config.entrypoint, Some(vec!["/app".to_owned()]));
        assert_eq!(c.config.working_dir, "/srv");
        assert_eq!(c.config.user, "1000:1000");
        assert_eq!(c.config.labels["k"], "v");
        assert_eq!(c.chain_ids(), [d(A), d(AB)]);

        let core = c.config.to_core();
        assert_eq!(core.entrypoint, ["/app"]);
        assert!(core.cmd.is_empty());
        assert_eq!(core.working_dir.as_deref(), Some("/srv"));
        assert_eq!(core.user.as_deref(), Some("1000:1000"));
        assert_eq!(core.labels["k"], "v");

        let minimal = r#"{"rootfs":{"type":"layers","diff_ids":[]},"config":null}"#;
        let c = ImageConfig::parse(minimal.as_bytes(), "m").unwrap();
        assert_eq!(c.config, RunConfig::default());
        assert_eq!(c.config.to_core(), libctd_core::ImageConfig::default());
    }

    #[test]
    fn bad_configs_are_invalid_arguments_naming_the_entry() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"rootfs":{"type":"layers","diff_ids":["md5:00"]}}"#,
            r#"{"rootfs":{"type":"tarballs","diff_ids":[]}}"#,
            r#"{"rootfs":{"type":"layers"},"config":{"Env":"PATH=/bin"}}"#,
        ] {
            let err = ImageConfig::parse(bad.as_bytes(), "cfg.json").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(err.message().contains("\"cfg.json\""), "{err}");
        }
    }
}
