//! What reading an archive collects (the blobs seen, the small files kept)
//! and what resolving it gives: the images, each down to its layers.

use std::cell::Cell;
use std::collections::HashMap;

use libctd_core::{Error, Result};

use crate::config::ImageConfig;
use crate::descriptor::{Compression, Descriptor, Manifest};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::sink::BlobInfo;

/// A blob read from the archive (and offered to the sink).
#[derive(Debug, Clone)]
pub struct Seen {
    /// The archive entry.
    pub entry: String,
    /// Its content's digest (verified against its path for OCI blobs).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its first bytes.
    pub head: Vec<u8>,
    /// Its content, if it looked like JSON and was small enough to keep.
    pub json: Option<Vec<u8>>,
}

/// Everything a pass over the archive learnt.
#[derive(Debug, Default)]
pub struct Collected {
    /// Blobs by digest.
    pub blobs: HashMap<Digest, Seen>,
    /// Blob digests by entry path.
    pub paths: HashMap<String, Digest>,
    /// Links: entry path -> the path it leads to (archive-relative).
    pub links: HashMap<String, String>,
    /// `oci-layout`.
    pub oci_layout: Option<Vec<u8>>,
    /// `index.json`.
    pub index: Option<Vec<u8>>,
    /// docker's `manifest.json`.
    pub docker_manifest: Option<Vec<u8>>,
    /// The largest JSON document resolution accepts.
    pub max_json: u64,
    /// What resolution has read so far: documents, and their bytes. Each
    /// read counts, so indexes that list the same index over and over
    /// (nested, a path for every combination) stop at the bound.
    pub read: Cell<(usize, u64)>,
}

/// The most documents resolving an archive reads (one read twice counts twice).
pub const MAX_DOCUMENTS: usize = 10_000;
/// The most bytes of documents resolving an archive reads, in all.
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

impl Collected {
    /// The blob an OCI descriptor names: `InvalidArgument` if the archive
    /// has none (naming it and `of`, who refers to it) or has one of
    /// another size.
    pub fn blob(&self, desc: &Descriptor, of: &str) -> Result<&Seen> {
        let seen = self.blobs.get(&desc.digest).ok_or_else(|| {
            Error::invalid_argument(format!(
                "image archive: {of} refers to blob {} (entry \"blobs/sha256/{}\"), which is \
                 not in the archive",
                desc.digest,
                desc.digest.hex()
            ))
        })?;
        if seen.size != desc.size {
            return Err(Error::invalid_argument(format!(
                "image archive: entry {:?} is {} bytes, but {of} gives blob {} the size {}",
                seen.entry, seen.size, desc.digest, desc.size
            )));
        }
        Ok(seen)
    }

    /// The blob at archive path `path` (following links): `InvalidArgument`
    /// naming it and `of` if there is none.
    pub fn blob_at(&self, path: &str, of: &str) -> Result<&Seen> {
        let mut at = crate::tar::clean_path(path).unwrap_or_default();
        for _ in 0..16 {
            match self.links.get(&at) {
                Some(next) => at = next.clone(),
                None => break,
            }
        }
        self.paths
            .get(&at)
            .and_then(|d| self.blobs.get(d))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "image archive: {of} refers to entry {path:?}, which is not in the archive"
                ))
            })
    }

    /// The JSON document `seen` holds, counted as read: `InvalidArgument`
    /// naming it if it is larger than a document may be or is not JSON, or
    /// if resolving has read more than [`MAX_DOCUMENTS`] documents or
    /// [`MAX_DOCUMENT_BYTES`] bytes of them.
    pub fn json<'a>(&self, seen: &'a Seen, what: &str) -> Result<&'a [u8]> {
        let (documents, bytes) = self.read.get();
        let read = (documents + 1, bytes.saturating_add(seen.size));
        if read.0 > MAX_DOCUMENTS || read.1 > MAX_DOCUMENT_BYTES {
            return Err(Error::invalid_argument(format!(
                "image archive: at entry {:?}, resolving the images reads more than \
                 {MAX_DOCUMENTS} documents or {MAX_DOCUMENT_BYTES} bytes of them (indexes \
                 that list each other over and over?)",
                seen.entry
            )));
        }
        self.read.set(read);
        if seen.size > self.max_json {
            return Err(Error::invalid_argument(format!(
                "image archive: entry {:?} ({what}) is {} bytes, more than the {} a JSON \
                 document may have",
                seen.entry, seen.size, self.max_json
            )));
        }
        seen.json.as_deref().ok_or_else(|| {
            Error::invalid_argument(format!(
                "image archive: entry {:?} ({what}) is not a JSON document",
                seen.entry
            ))
        })
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer blob.
    pub descriptor: Descriptor,
    /// Its compression.
    pub compression: Compression,
    /// The digest of its uncompressed tar (from the config).
    pub diff_id: Digest,
    /// The chain id of the layers up to this one: its snapshot's name.
    pub chain_id: Digest,
}

/// An image of the archive, resolved for the host's platform.
#[derive(Debug, Clone)]
pub struct Image {
    /// Its names, normalised references (none if the archive names none).
    pub names: Vec<String>,
    /// What an image record points at: the index entry (an index or the manifest).
    pub target: Descriptor,
    /// The indexes from the target down to the manifest (empty if the
    /// target is the manifest), top first: each one's chosen child is the next.
    pub indexes: Vec<Descriptor>,
    /// The manifest for the host's platform.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// The config, decoded.
    pub image_config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// The image's platform.
    pub platform: Platform,
}

impl Image {
    /// The image as libctd's contract names it, under `name`: the digest of
    /// the manifest for this host, and its run configuration.
    pub fn to_core(&self, name: &str) -> libctd_core::Image {
        libctd_core::Image::new(
            name,
            self.manifest.digest.to_string(),
            self.image_config.config.to_core(),
        )
    }
}

/// The format of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    Oci,
    /// `docker save`'s (`manifest.json`).
    DockerSave,
}

/// A document made while resolving, and what it is offered to the sink as.
pub type Made = (BlobInfo, Vec<u8>);

/// A read archive: its images for this host.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The format.
    pub format: Format,
    /// The images that run on the host, one per name (or per unnamed entry).
    pub images: Vec<Image>,
    /// Documents made while resolving (the manifests of a `docker save`
    /// archive), already offered to the sink like any blob.
    pub made: Vec<Made>,
}

/// The layers of `manifest` (in entry `of`), checked against its config:
/// every blob present, of a known media type, as many as the diff ids, an
/// uncompressed one's digest its diff id.
pub fn layers(
    collected: &Collected,
    manifest: &Manifest,
    config: &ImageConfig,
    of: &str,
) -> Result<Vec<Layer>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::invalid_argument(format!(
            "image archive: {of} has {} layers but its config has {} diff ids",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let chains = config.chain_ids();
    let mut out = Vec::with_capacity(diff_ids.len());
    for ((desc, diff_id), chain_id) in manifest.layers.iter().zip(diff_ids).zip(chains) {
        let seen = collected.blob(desc, of)?;
        let compression = Compression::of_layer(&desc.media_type).ok_or_else(|| {
            Error::not_implemented(format!(
                "image archive: layer {} (entry {:?}) of {of} has media type {:?}, which \
                 libctd does not unpack",
                desc.digest, seen.entry, desc.media_type
            ))
        })?;
        if compression == Compression::None && desc.digest != *diff_id {
            return Err(Error::invalid_argument(format!(
                "image archive: layer {} (entry {:?}) of {of} is an uncompressed tar, but \
                 its config says its diff id is {diff_id}",
                desc.digest, seen.entry
            )));
        }
        out.push(Layer {
            descriptor: desc.clone(),
            compression,
            diff_id: diff_id.clone(),
            chain_id,
        });
    }
    Ok(out)
}

/// Of images sharing a name, the one the host runs best (ranked by
/// `rank`, lower is better; the first on a tie) keeps it; an image left
/// with no name, that had one, is dropped.
pub fn one_per_name(images: Vec<(usize, Image)>) -> Vec<Image> {
    let mut best: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, (rank, image)) in images.iter().enumerate() {
        for name in &image.names {
            let e = best.entry(name.clone()).or_insert((*rank, i));
            if *rank < e.0 {
                *e = (*rank, i);
            }
        }
    }
    images
        .into_iter()
        .enumerate()
        .filter_map(|(i, (_, mut image))| {
            if image.names.is_empty() {
                return Some(image);
            }
            image
                .names
                .retain(|n| best.get(n).is_some_and(|b| b.1 == i));
            (!image.names.is_empty()).then_some(image)
        })
        .collect()
}

/// The `NotFound` error of an archive with no image for `host`, listing
/// the platforms it has.
pub fn no_platform(host: &Platform, found: &[Platform]) -> Error {
    let mut found: Vec<String> = found.iter().map(ToString::to_string).collect();
    found.sort();
    found.dedup();
    Error::not_found(format!(
        "image archive: no image runs on this host's platform {host} (the archive has: {})",
        if found.is_empty() {
            "none".to_owned()
        } else {
            found.join(", ")
        }
    ))
}
