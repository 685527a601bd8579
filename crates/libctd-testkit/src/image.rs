//! Image archives made in a test, offline: an OCI image layout in a tar, or
//! a `docker save` archive, with layers of files, directories, symlinks,
//! hard links, whiteouts and opaque directories, and the faults an import
//! must refuse.
//!
//! ```
//! use libctd_testkit::image::{ImageArchive, Layer};
//!
//! let archive = ImageArchive::new("example.com/demo:1")
//!     .layer(Layer::new().file("bin/hello", b"hi\n", 0o755).symlink("bin/hi", "hello"))
//!     .layer(Layer::new().whiteout("bin/hi"))
//!     .cmd(["/bin/hello"])
//!     .oci()
//!     .unwrap();
//! assert!(archive.len() > 1024);
//! ```

use libctd_core::{Error, ErrorKind, Result};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The OCI media types the archives use.
pub mod media {
    /// An OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// An OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// An OCI image configuration.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// An uncompressed layer.
    pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    /// A gzip-compressed layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
}

/// One entry of a layer.
#[derive(Debug, Clone)]
enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// A regular file whose path is written as given, unchecked (`../`).
    Raw {
        path: String,
        data: Vec<u8>,
    },
}

/// A layer: tar entries in order, paths relative to the root.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    entries: Vec<Entry>,
    gzip: bool,
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A regular file with `mode` (permission bits).
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        self.entries.push(Entry::File {
            path: path.into(),
            data: data.to_vec(),
            mode,
        });
        self
    }

    /// A directory with `mode`.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
        self
    }

    /// A symbolic link to `target` (as written, relative or absolute).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// A hard link to `target` (a path in the layers, or a hostile one).
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Hardlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// A regular file (mode 0644) whose path is written into the tar as
    /// given, unchecked: a hostile layer's `../../x` (at most 100 bytes).
    pub fn raw_file(mut self, path: &str, data: &[u8]) -> Self {
        self.entries.push(Entry::Raw {
            path: path.into(),
            data: data.to_vec(),
        });
        self
    }

    /// Deletes `path` of the layers below (an OCI whiteout, `.wh.<name>`).
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name),
            None => (String::new(), path),
        };
        self.file(&format!("{dir}.wh.{name}"), b"", 0o644)
    }

    /// Hides what the layers below have in directory `dir` (an opaque
    /// whiteout, `.wh..wh..opq`).
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    /// Every file, directory and symlink under `dir` (symlinks kept as
    /// links), e.g. a busybox root filesystem.
    ///
    /// # Errors
    ///
    /// `System` when `dir` cannot be read.
    #[cfg(unix)]
    pub fn from_dir(dir: &std::path::Path) -> Result<Self> {
        let mut layer = Self::new();
        walk(dir, dir, &mut layer)?;
        Ok(layer)
    }

    /// Stores the layer gzip-compressed.
    pub fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }

    /// The layer's tar (uncompressed) and its stored form.
    fn build(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut tar = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(1_700_000_000);
            header.set_uid(0);
            header.set_gid(0);
            let r = match entry {
                Entry::File { path, data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())
                }
                Entry::Dir { path, mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    tar.append_data(&mut header, path, std::io::empty())
                }
                Entry::Symlink { path, target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)
                }
                Entry::Hardlink { path, target } => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_mode(0o644);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)
                }
                Entry::Raw { path, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(data.len() as u64);
                    let name = &mut header.as_old_mut().name;
                    if path.len() > name.len() {
                        return Err(Error::invalid_argument(format!(
                            "raw path {path:?} is longer than a tar name"
                        )));
                    }
                    name[..path.len()].copy_from_slice(path.as_bytes());
                    header.set_cksum();
                    tar.append(&header, data.as_slice())
                }
            };
            r.map_err(io_error)?;
        }
        let raw = tar.into_inner().map_err(io_error)?;
        let stored = if self.gzip {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).map_err(io_error)?;
            gz.finish().map_err(io_error)?
        } else {
            raw.clone()
        };
        Ok((raw, stored))
    }
}

#[cfg(unix)]
fn walk(root: &std::path::Path, dir: &std::path::Path, layer: &mut Layer) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_error)?
        .collect::<std::io::Result<_>>()
        .map_err(io_error)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .map_err(|e| Error::system(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).map_err(io_error)?;
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io_error)?;
            *layer = std::mem::take(layer).symlink(&rel, &target.to_string_lossy());
        } else if meta.is_dir() {
            *layer = std::mem::take(layer).dir(&rel, mode);
            walk(root, &path, layer)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(io_error)?;
            *layer = std::mem::take(layer).file(&rel, &data, mode);
        }
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> Error {
    Error::system(format!("building an image archive: {e}"))
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut out = String::from("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What is wrong with an archive, for the tests of bad input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The archive stops after this many bytes.
    Truncate(usize),
    /// The first layer's bytes differ from its digest (same size).
    CorruptLayer,
    /// The first layer's descriptor names a size one byte larger.
    WrongSize,
    /// The first layer's blob is missing from the archive.
    MissingBlob,
    /// The first layer's media type is unknown.
    UnknownMediaType,
    /// The manifest's platform is this architecture instead of the host's.
    Platform(String),
    /// The image's name annotation is this string.
    Name(String),
}

/// Every fault an import must refuse, for an archive whose good form is
/// `good_len` bytes long: the fault, the kind of error it gets, and a
/// substring of the error's message (the one table the conformance suite
/// and the backends' own tests share).
pub fn refused_faults(good_len: usize) -> Vec<(Fault, ErrorKind, &'static str)> {
    let other_arch = if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    vec![
        (
            Fault::Truncate(good_len / 2),
            ErrorKind::InvalidArgument,
            "truncated",
        ),
        (Fault::CorruptLayer, ErrorKind::InvalidArgument, "digest"),
        (Fault::WrongSize, ErrorKind::InvalidArgument, "size"),
        (
            Fault::MissingBlob,
            ErrorKind::InvalidArgument,
            "not in the archive",
        ),
        (
            Fault::UnknownMediaType,
            ErrorKind::NotImplemented,
            "application/x-unknown-layer",
        ),
        (
            Fault::Platform(other_arch.into()),
            ErrorKind::NotFound,
            "platform",
        ),
        (
            Fault::Name("Not A Name".into()),
            ErrorKind::InvalidArgument,
            "Not A Name",
        ),
    ]
}

/// An image to put in an archive: a name, layers, and its configuration.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    name: String,
    layers: Vec<Layer>,
    config: Value,
    fault: Option<Fault>,
    other_platforms: Vec<String>,
}

/// The host's architecture as OCI names it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl ImageArchive {
    /// An image named `name` (recorded as given), with no layers yet; an
    /// empty `name` leaves it unnamed (no name annotation, no `RepoTags`).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            layers: Vec::new(),
            config: json!({}),
            fault: None,
            other_platforms: Vec::new(),
        }
    }

    /// Adds a layer on top of the previous ones.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Sets the config's `Cmd`.
    pub fn cmd<const N: usize>(self, cmd: [&str; N]) -> Self {
        self.config_field("Cmd", json!(cmd.as_slice()))
    }

    /// Sets the config's `Entrypoint`.
    pub fn entrypoint<const N: usize>(self, entrypoint: [&str; N]) -> Self {
        self.config_field("Entrypoint", json!(entrypoint.as_slice()))
    }

    /// Sets the config's `Env`.
    pub fn env<const N: usize>(self, env: [&str; N]) -> Self {
        self.config_field("Env", json!(env.as_slice()))
    }

    /// Sets the config's `WorkingDir`.
    pub fn working_dir(self, dir: &str) -> Self {
        self.config_field("WorkingDir", json!(dir))
    }

    /// Sets the config's `User`.
    pub fn user(self, user: &str) -> Self {
        self.config_field("User", json!(user))
    }

    /// Sets a field of the image config's `config` object.
    pub fn config_field(mut self, key: &str, value: Value) -> Self {
        if let Some(map) = self.config.as_object_mut() {
            map.insert(key.into(), value);
        }
        self
    }

    /// Also lists a manifest for `arch` (same layers), making the index
    /// multi-platform.
    pub fn also_platform(mut self, arch: &str) -> Self {
        self.other_platforms.push(arch.into());
        self
    }

    /// Builds it with `fault`.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The layers' digests as stored, bottom first.
    ///
    /// # Errors
    ///
    /// `System` when a layer cannot be built.
    pub fn layer_digests(&self) -> Result<Vec<String>> {
        self.layers
            .iter()
            .map(|l| l.build().map(|(_, stored)| digest(&stored)))
            .collect()
    }

    /// The archive in the OCI image layout.
    ///
    /// # Errors
    ///
    /// `System` when it cannot be built.
    pub fn oci(&self) -> Result<Vec<u8>> {
        self.build_oci().map(|(archive, _)| archive)
    }

    /// The digest of the manifest of this image for the host's platform
    /// (or a [`Fault::Platform`]'s) in the [`oci`](Self::oci) archive: what
    /// an import must answer as the image's digest, whatever other
    /// platforms the index lists.
    ///
    /// # Errors
    ///
    /// `System` when it cannot be built.
    pub fn manifest_digest(&self) -> Result<String> {
        self.build_oci().map(|(_, digest)| digest)
    }

    /// The OCI archive and its own platform's manifest digest.
    fn build_oci(&self) -> Result<(Vec<u8>, String)> {
        let fault = self.fault.as_ref();
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut diff_ids = Vec::new();
        let mut descriptors = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (raw, stored) = layer.build()?;
            diff_ids.push(digest(&raw));
            let d = digest(&stored);
            let mut size = stored.len() as u64;
            let mut media_type = if layer.gzip {
                media::LAYER_GZIP
            } else {
                media::LAYER
            };
            let mut bytes = stored;
            if i == 0 {
                match fault {
                    Some(Fault::CorruptLayer) => {
                        if let Some(b) = bytes.last_mut() {
                            *b ^= 0xff;
                        }
                    }
                    Some(Fault::WrongSize) => size += 1,
                    Some(Fault::UnknownMediaType) => media_type = "application/x-unknown-layer",
                    _ => {}
                }
            }
            descriptors.push(json!({"mediaType": media_type, "digest": d, "size": size}));
            if !(i == 0 && fault == Some(&Fault::MissingBlob)) {
                blobs.push((d, bytes));
            }
        }
        let arch = match fault {
            Some(Fault::Platform(arch)) => arch.clone(),
            _ => host_arch().to_owned(),
        };
        let mut manifests = Vec::new();
        let mut own = String::new();
        // The image's own platform comes last in a multi-platform index:
        // an importer that took the first entry would take another's.
        for arch in self.other_platforms.iter().chain(std::iter::once(&arch)) {
            let config = json!({
                "architecture": arch,
                "os": "linux",
                "config": self.config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            let config = to_vec(&config)?;
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": media::MANIFEST,
                "config": {"mediaType": media::CONFIG, "digest": digest(&config), "size": config.len()},
                "layers": descriptors,
            });
            let manifest = to_vec(&manifest)?;
            own = digest(&manifest);
            manifests.push(json!({
                "mediaType": media::MANIFEST,
                "digest": digest(&manifest),
                "size": manifest.len(),
                "platform": {"architecture": arch, "os": "linux"},
            }));
            blobs.push((digest(&config), config));
            blobs.push((digest(&manifest), manifest));
        }
        let name = match fault {
            Some(Fault::Name(name)) => name.clone(),
            _ => self.name.clone(),
        };
        let index = if manifests.len() == 1 {
            let mut only = manifests.remove(0);
            if let Some(map) = only.as_object_mut().filter(|_| !name.is_empty()) {
                map.insert(
                    "annotations".into(),
                    json!({"io.containerd.image.name": name}),
                );
            }
            json!({"schemaVersion": 2, "mediaType": media::INDEX, "manifests": [only]})
        } else {
            // A multi-platform image: the layout's index names an index.
            let inner = to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": media::INDEX,
                "manifests": manifests,
            }))?;
            let d = digest(&inner);
            let size = inner.len();
            blobs.push((d.clone(), inner));
            let mut entry = json!({"mediaType": media::INDEX, "digest": d, "size": size});
            if !name.is_empty() {
                entry["annotations"] = json!({"io.containerd.image.name": name});
            }
            json!({"schemaVersion": 2, "mediaType": media::INDEX, "manifests": [entry]})
        };
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for (d, bytes) in &blobs {
            let hex = d.trim_start_matches("sha256:");
            append(&mut tar, &format!("blobs/sha256/{hex}"), bytes)?;
        }
        append(&mut tar, "index.json", &to_vec(&index)?)?;
        Ok((finish(tar, fault)?, own))
    }

    /// The archive in `docker save`'s format (`manifest.json`, a folder per
    /// layer holding `layer.tar`, the config as `<hex>.json`). Layers are
    /// stored uncompressed, as docker writes them; a fault applies as in
    /// [`oci`](Self::oci) where it makes sense.
    ///
    /// # Errors
    ///
    /// `System` when it cannot be built.
    pub fn docker(&self) -> Result<Vec<u8>> {
        let fault = self.fault.as_ref();
        let mut tar = tar::Builder::new(Vec::new());
        let mut diff_ids = Vec::new();
        let mut paths = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (raw, _) = layer.build()?;
            let d = digest(&raw);
            let path = format!("{}/layer.tar", d.trim_start_matches("sha256:"));
            diff_ids.push(d);
            if !(i == 0 && fault == Some(&Fault::MissingBlob)) {
                append(&mut tar, &path, &raw)?;
            }
            paths.push(path);
        }
        let arch = match fault {
            Some(Fault::Platform(arch)) => arch.clone(),
            _ => host_arch().to_owned(),
        };
        let config = to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))?;
        let config_path = format!("{}.json", digest(&config).trim_start_matches("sha256:"));
        append(&mut tar, &config_path, &config)?;
        let name = match fault {
            Some(Fault::Name(name)) => name.clone(),
            _ => self.name.clone(),
        };
        let tags: Vec<&str> = std::iter::once(name.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        let manifest = json!([{ "Config": config_path, "RepoTags": tags, "Layers": paths }]);
        append(&mut tar, "manifest.json", &to_vec(&manifest)?)?;
        finish(tar, fault)
    }
}

fn to_vec(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::system(e.to_string()))
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    tar.append_data(&mut header, path, data).map_err(io_error)
}

fn finish(tar: tar::Builder<Vec<u8>>, fault: Option<&Fault>) -> Result<Vec<u8>> {
    let mut out = tar.into_inner().map_err(io_error)?;
    if let Some(Fault::Truncate(at)) = fault {
        out.truncate(*at);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<String> {
        let mut tar = tar::Archive::new(archive);
        tar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn oci_layout_holds_every_blob_the_index_names() {
        let image = ImageArchive::new("example.com/a:1")
            .layer(Layer::new().dir("etc", 0o755).file("etc/x", b"1", 0o600))
            .layer(Layer::new().whiteout("etc/x").gzip());
        let archive = image.oci().unwrap();
        let names = entries(&archive);
        assert_eq!(names.first().map(String::as_str), Some("oci-layout"));
        assert_eq!(names.last().map(String::as_str), Some("index.json"));
        for d in image.layer_digests().unwrap() {
            let hex = d.trim_start_matches("sha256:");
            assert!(names.contains(&format!("blobs/sha256/{hex}")), "{d}");
        }
        // layers + config + manifest
        assert_eq!(names.len(), 2 + 2 + 2);
    }

    #[test]
    fn faults_change_what_they_say() {
        let image = ImageArchive::new("example.com/a:1").layer(Layer::new().file("x", b"1", 0o644));
        let good = image.oci().unwrap();
        let missing = image.clone().fault(Fault::MissingBlob).oci().unwrap();
        assert_eq!(entries(&missing).len(), entries(&good).len() - 1);
        let cut = image.clone().fault(Fault::Truncate(700)).oci().unwrap();
        assert_eq!(cut.len(), 700);
        let multi = image.clone().also_platform("s390x").oci().unwrap();
        assert_eq!(entries(&multi).len(), entries(&good).len() + 3);
        let docker = image.docker().unwrap();
        assert!(entries(&docker).contains(&"manifest.json".to_string()));
    }
}
