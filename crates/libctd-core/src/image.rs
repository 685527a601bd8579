//! Images: the contract for running containers from OCI images.
//!
//! A backend that keeps images (Linux: containerd's content store and
//! snapshotters) implements [`Images`] and answers it from
//! [`Client::images`](crate::Client::images). An engine imports an image
//! archive, builds a container's spec from the image's [`ImageConfig`], and
//! creates the container with [`CreateOptions::with_image`](crate::CreateOptions::with_image):
//! its root filesystem is then a fresh snapshot of the image, removed with
//! the container.
//!
//! A backend without images (Windows, whose layers come as folders) answers
//! `None` from `Client::images`, and refuses a create that names an image
//! with `InvalidArgument`.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use oci_spec::runtime::{Spec, User};
use tokio::io::AsyncRead;

use crate::{Error, ErrorKind, Result};

/// The spec's `root.path` of a container whose root filesystem is an
/// image's snapshot: the backend mounts the snapshot there, in the bundle.
pub const IMAGE_ROOTFS_PATH: &str = "rootfs";

/// The image a container's root filesystem comes from
/// ([`CreateOptions::with_image`](crate::CreateOptions::with_image)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageRootfs {
    /// The image's name, as [`Images::import`] recorded it.
    pub image: String,
    /// The snapshotter holding its unpacked layers (Linux: default `overlayfs`).
    pub snapshotter: Option<String>,
}

impl ImageRootfs {
    /// The root filesystem of image `image` on the backend's default snapshotter.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            snapshotter: None,
        }
    }

    /// On snapshotter `snapshotter` instead of the default.
    pub fn with_snapshotter(mut self, snapshotter: impl Into<String>) -> Self {
        self.snapshotter = Some(snapshotter.into());
        self
    }
}

impl From<&str> for ImageRootfs {
    fn from(image: &str) -> Self {
        Self::new(image)
    }
}

impl From<String> for ImageRootfs {
    fn from(image: String) -> Self {
        Self::new(image)
    }
}

/// An image a backend keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Image {
    /// Its name: a normalised reference such as `docker.io/library/busybox:latest`.
    pub name: String,
    /// The digest of the manifest chosen for this host (`sha256:<hex>`).
    pub digest: String,
    /// What the image's configuration says about running it.
    pub config: ImageConfig,
}

impl Image {
    /// An image named `name` whose manifest has digest `digest`.
    pub fn new(name: impl Into<String>, digest: impl Into<String>, config: ImageConfig) -> Self {
        Self {
            name: name.into(),
            digest: digest.into(),
            config,
        }
    }
}

/// What an image's configuration says about running it (the `config`
/// object of an OCI image configuration; exposed ports and volumes are not
/// kept: they are the engine's business).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageConfig {
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// The command's first words, before [`cmd`](Self::cmd) or the caller's arguments.
    pub entrypoint: Vec<String>,
    /// The default arguments.
    pub cmd: Vec<String>,
    /// The working directory (absolute), if set.
    pub working_dir: Option<String>,
    /// The user, as the image says it (`uid`, `uid:gid`, or a name).
    pub user: Option<String>,
    /// The image's labels.
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// The command a container runs: the entrypoint followed by `args` when
    /// they are given, else by the image's `cmd` (as `docker run IMAGE [ARGS]`).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when the result is empty (the image has no command
    /// and none was given).
    ///
    /// ```
    /// use libctd_core::ImageConfig;
    ///
    /// let mut config = ImageConfig::default();
    /// config.entrypoint = vec!["/bin/echo".into()];
    /// config.cmd = vec!["hello".into()];
    /// assert_eq!(config.command(None).unwrap(), ["/bin/echo", "hello"]);
    /// assert_eq!(config.command(Some(&["bye".to_string()])).unwrap(), ["/bin/echo", "bye"]);
    /// ```
    pub fn command(&self, args: Option<&[String]>) -> Result<Vec<String>> {
        let mut command = self.entrypoint.clone();
        command.extend_from_slice(args.unwrap_or(&self.cmd));
        if command.is_empty() {
            return Err(Error::invalid_argument(
                "the image has no entrypoint or command, and none was given",
            ));
        }
        Ok(command)
    }

    /// Makes `spec` run this image: its root is the image's snapshot
    /// ([`IMAGE_ROOTFS_PATH`]), its process runs [`command`](Self::command)`(args)`
    /// with the image's environment over the spec's (a variable the image
    /// sets replaces the spec's: the engine sets its own after `apply`), its working directory
    /// and user (numeric, or `root`) when the image sets them. The engine
    /// can still edit the spec afterwards.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when there is no command, the working directory is
    /// not absolute, or the user is not `root`, `0`, or `uid:gid` in numbers
    /// (`root` also stands for 0 in either place). A name, or a uid other
    /// than 0 without a group, is refused: both resolve against the image's
    /// `/etc/passwd` (a uid's primary group too), which the engine reads;
    /// it then gives the numbers.
    ///
    /// ```
    /// use libctd_core::ImageConfig;
    /// use libctd_core::oci_spec::runtime::Spec;
    ///
    /// let mut config = ImageConfig::default();
    /// config.cmd = vec!["sh".into()];
    /// config.env = vec!["PATH=/bin".into()];
    /// config.working_dir = Some("/srv".into());
    /// let mut spec = Spec::default();
    /// config.apply(&mut spec, None).unwrap();
    /// let process = spec.process().as_ref().unwrap();
    /// assert_eq!(process.args().as_deref(), Some(&["sh".to_string()][..]));
    /// assert_eq!(process.cwd().to_str(), Some("/srv"));
    /// assert_eq!(spec.root().as_ref().unwrap().path().to_str(), Some("rootfs"));
    /// ```
    pub fn apply(&self, spec: &mut Spec, args: Option<&[String]>) -> Result<()> {
        let command = self.command(args)?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(command));
        let mut env = process.env().clone().unwrap_or_default();
        for entry in &self.env {
            let key = entry.split('=').next().unwrap_or(entry);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(entry.clone());
        }
        process.set_env(Some(env));
        if let Some(dir) = self.working_dir.as_deref().filter(|d| !d.is_empty()) {
            if !dir.starts_with('/') {
                return Err(Error::invalid_argument(format!(
                    "the image's working directory {dir:?} is not absolute"
                )));
            }
            process.set_cwd(dir.into());
        }
        if let Some(user) = self.user.as_deref().filter(|u| !u.is_empty()) {
            process.set_user(parse_user(user)?);
        }
        spec.set_process(Some(process));
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(IMAGE_ROOTFS_PATH.into());
        spec.set_root(Some(root));
        Ok(())
    }
}

/// `uid`, `uid:gid` or `root`.
fn parse_user(user: &str) -> Result<User> {
    let bad = || {
        Error::invalid_argument(format!(
            "the image's user {user:?} is not root, 0 or a numeric uid:gid (resolve names, and a uid's primary group, with the image's /etc/passwd and give numbers)"
        ))
    };
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    let number = |s: &str| match s {
        "root" => Ok(0),
        s => s.parse::<u32>().map_err(|_| bad()),
    };
    let uid = number(uid)?;
    let gid = match gid {
        Some(gid) => number(gid)?,
        None if uid == 0 => 0,
        // Without a group, the user's primary group is in /etc/passwd.
        None => return Err(bad()),
    };
    let mut out = User::default();
    out.set_uid(uid);
    out.set_gid(gid);
    Ok(out)
}

/// How far an import is: one blob's bytes, reported as they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportProgress {
    /// The blob's digest, when known (a layer of a `docker save` archive is
    /// named by its path until it is read whole).
    pub blob: String,
    /// Bytes of the blob stored so far.
    pub done: u64,
    /// The blob's size.
    pub total: u64,
}

impl ImportProgress {
    /// `done` of `total` bytes of blob `blob`.
    pub fn new(blob: impl Into<String>, done: u64, total: u64) -> Self {
        Self {
            blob: blob.into(),
            done,
            total,
        }
    }
}

/// Called with each [`ImportProgress`]: from the import's own task, so it
/// must not block.
pub type ProgressCallback = Arc<dyn Fn(&ImportProgress) + Send + Sync>;

/// Settings for [`Images::import`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Where to unpack the image's layers (Linux default: `overlayfs`).
    pub snapshotter: Option<String>,
    /// Progress reports.
    pub progress: Option<ProgressCallback>,
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("snapshotter", &self.snapshotter)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl ImportOptions {
    /// Defaults: the backend's snapshotter, no progress reports.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unpacks into `snapshotter`.
    pub fn with_snapshotter(mut self, snapshotter: impl Into<String>) -> Self {
        self.snapshotter = Some(snapshotter.into());
        self
    }

    /// Reports progress to `progress`.
    pub fn with_progress(
        mut self,
        progress: impl Fn(&ImportProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// An image archive being read.
pub type Archive = Pin<Box<dyn AsyncRead + Send>>;

/// A backend's image store, in the client's namespace.
///
/// # Errors
///
/// | situation | kind |
/// |---|---|
/// | a malformed name, a truncated or malformed archive, a blob whose digest or size does not match, a missing blob | `InvalidArgument`, naming the archive entry |
/// | a well-formed archive with content the backend does not handle: a layer of an unknown (or non-distributable) media type | `NotImplemented`, naming the layer |
/// | no image of that name; an archive with no image for this host's platform | `NotFound` |
/// | a snapshotter the backend does not have (containerd: "snapshotter not loaded") | `InvalidArgument` |
/// | a create from an image that is not unpacked in the snapshotter asked for | `FailedPrecondition` |
/// | the service cannot be reached / did not answer in time | `Unavailable` / `DeadlineExceeded` |
///
/// A failed import leaves nothing behind (no half-written content, no
/// image record, no snapshot).
///
/// # Cancel safety
///
/// Dropping an import's future stops it; what it stored so far is released
/// (on Linux, by the lease it runs under).
#[async_trait]
pub trait Images: Send + Sync {
    /// Imports an image archive (an OCI image layout in a tar, or a
    /// `docker save` archive), streaming it, and unpacks each image for
    /// this host's platform into the snapshotter. Returns the images
    /// recorded, one per name in the archive.
    async fn import(&self, archive: Archive, options: ImportOptions) -> Result<Vec<Image>>;

    /// The image named `name`.
    async fn image(&self, name: &str) -> Result<Image>;

    /// Every image, by name.
    async fn list_images(&self) -> Result<Vec<Image>>;

    /// Removes the image record `name`. Its content and snapshots are freed
    /// once nothing else uses them (a container made from it keeps its own
    /// snapshot until it is deleted).
    async fn remove_image(&self, name: &str) -> Result<()>;
}

/// The error a backend without images gives a create that names one.
pub fn images_unsupported(platform: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "{platform} containers cannot run from an image: this backend keeps no images (give the root filesystem in the spec)"
        ),
    )
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
