//! Images in containerd: an archive imported into the content store and
//! unpacked into a snapshotter (`import`, `unpack`, with the garbage
//! collector's labels from `labels`), and the images read back from their
//! records (here): the manifest for this host and its configuration, the
//! snapshot a container's root filesystem is prepared over.

mod import;
mod labels;
mod unpack;

pub(crate) use import::import;

use containerd_client::services::v1::Image as ImageRecord;
use libctd_core::{Error, ErrorKind, Image, Result};
use libctd_image::config::ImageConfig;
use libctd_image::descriptor::{DocKind, Index, Manifest, decode, doc_kind};
use libctd_image::digest::Digest;
use libctd_image::platform::Platform;
use libctd_image::reference::normalise;

use crate::conn::Store;
use crate::convert::status_error;

/// The snapshotter images are unpacked into and containers run on when
/// the caller names none.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// The largest document (index, manifest, config) read back.
const MAX_DOCUMENT: u64 = libctd_image::archive::MAX_JSON;
/// The most indexes between an image record and its manifest.
const MAX_DEPTH: usize = 8;

/// An image as containerd keeps it, resolved for this host.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The record's name.
    pub name: String,
    /// The manifest's digest.
    pub manifest: String,
    /// The configuration.
    pub config: ImageConfig,
}

impl Stored {
    /// As the contract's image.
    pub(crate) fn to_core(&self) -> Image {
        Image::new(&self.name, &self.manifest, self.config.config.to_core())
    }

    /// The snapshot of all its layers (its top chain id), `None` for an
    /// image without layers.
    pub(crate) fn top_chain(&self) -> Option<Digest> {
        self.config.chain_ids().pop()
    }
}

/// `e` with `what` before its message.
pub(crate) fn prefixed(e: Error, what: &str) -> Error {
    let message = format!("{what}: {}", e.message());
    e.with_message(message)
}

/// A snapshotter's name: what containerd's plugin names are made of.
pub(crate) fn validate_snapshotter(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "snapshotter {name:?} is not a snapshotter's name (letters, digits, '.', '_', '-')"
        )))
    }
}

/// The image `name`: `InvalidArgument` for a malformed name, `NotFound`
/// naming it when there is none.
pub(crate) async fn get(store: &dyn Store, name: &str) -> Result<Stored> {
    // A short name finds its full form, as import recorded it.
    let name = &normalise(name)?;
    let record = store.image_get(name).await.map_err(|s| {
        let e = status_error(s);
        match e.kind() {
            ErrorKind::NotFound => e.with_message(format!("no image named {name:?}")),
            _ => prefixed(e, &format!("image {name:?}")),
        }
    })?;
    resolve(store, record).await
}

/// Every image whose record resolves for this host, by name. A record
/// that does not (another client's image for another platform, content
/// gone) is left out, and logged.
pub(crate) async fn list(store: &dyn Store) -> Result<Vec<Image>> {
    let mut records = store.image_list(Vec::new()).await.map_err(status_error)?;
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let name = record.name.clone();
        match resolve(store, record).await {
            Ok(stored) => out.push(stored.to_core()),
            Err(e)
                if e.kind() == ErrorKind::Unavailable
                    || e.kind() == ErrorKind::DeadlineExceeded =>
            {
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(image = %name, error = %e, "an image record that does not resolve for this host is not listed")
            }
        }
    }
    Ok(out)
}

/// Removes the record of image `name` and waits for the garbage collector,
/// which frees what only it referenced.
pub(crate) async fn remove(store: &dyn Store, name: &str) -> Result<()> {
    let name = &normalise(name)?;
    store.image_delete(name, true).await.map_err(|s| {
        let e = status_error(s);
        match e.kind() {
            ErrorKind::NotFound => e.with_message(format!("no image named {name:?}")),
            _ => prefixed(e, &format!("removing image {name:?}")),
        }
    })
}

/// The manifest for this host and the config an image record leads to.
async fn resolve(store: &dyn Store, record: ImageRecord) -> Result<Stored> {
    let name = record.name;
    let what = format!("image {name:?}");
    let mut target = record
        .target
        .ok_or_else(|| Error::failed_precondition(format!("{what}: the record has no target")))?;
    let host = Platform::host();
    for _ in 0..MAX_DEPTH {
        let bytes = read(store, &target.digest, target.size, &what).await?;
        match doc_kind(&target.media_type, &bytes) {
            Some(DocKind::Index) => {
                let index: Index =
                    decode(&bytes, "an index", &target.digest).map_err(|e| prefixed(e, &what))?;
                let best = index
                    .manifests
                    .iter()
                    .filter_map(|m| Some((host.rank(&m.platform.as_ref()?.platform())?, m)))
                    .min_by_key(|(rank, _)| *rank)
                    .map(|(_, m)| m)
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "{what}: its index {} has no manifest for this host's platform {host}",
                            target.digest
                        ))
                    })?;
                target = containerd_client::types::Descriptor {
                    media_type: best.media_type.clone(),
                    digest: best.digest.to_string(),
                    size: i64::try_from(best.size).unwrap_or(i64::MAX),
                    annotations: Default::default(),
                };
            }
            Some(DocKind::Manifest) => {
                let manifest: Manifest =
                    decode(&bytes, "a manifest", &target.digest).map_err(|e| prefixed(e, &what))?;
                let config = &manifest.config;
                let size = i64::try_from(config.size).unwrap_or(i64::MAX);
                let bytes = read(store, &config.digest.to_string(), size, &what).await?;
                let config = ImageConfig::parse(&bytes, &config.digest.to_string())
                    .map_err(|e| prefixed(e, &what))?;
                return Ok(Stored {
                    name,
                    manifest: target.digest,
                    config,
                });
            }
            None => {
                return Err(Error::not_implemented(format!(
                    "{what}: {} ({:?}) is neither an index nor a manifest",
                    target.digest, target.media_type
                )));
            }
        }
    }
    Err(Error::failed_precondition(format!(
        "{what}: more than {MAX_DEPTH} indexes before a manifest"
    )))
}

/// The document `digest` of `size` bytes, read whole.
async fn read(store: &dyn Store, digest: &str, size: i64, what: &str) -> Result<Vec<u8>> {
    let size = u64::try_from(size).unwrap_or(u64::MAX);
    if size > MAX_DOCUMENT {
        return Err(Error::failed_precondition(format!(
            "{what}: document {digest} is {size} bytes, more than the {MAX_DOCUMENT} read back"
        )));
    }
    let bytes = store.content_read(digest, size).await.map_err(|s| {
        let e = status_error(s);
        let message = match e.kind() {
            ErrorKind::NotFound => format!("{what}: its content {digest} is gone from the store"),
            _ => format!("{what}: reading {digest}: {}", e.message()),
        };
        e.with_message(message)
    })?;
    if Digest::of(&bytes).to_string() != digest || bytes.len() as u64 != size {
        return Err(Error::failed_precondition(format!(
            "{what}: the store's content {digest} is not what its digest and size say"
        )));
    }
    Ok(bytes)
}

/// The snapshot a container of image `name` is prepared over in
/// `snapshotter`: its top chain id ("" for an image without layers).
/// `FailedPrecondition` when the image is not unpacked there.
pub(crate) async fn rootfs_parent(
    store: &dyn Store,
    name: &str,
    snapshotter: &str,
) -> Result<String> {
    let image = get(store, name).await?;
    let Some(top) = image.top_chain() else {
        return Ok(String::new());
    };
    let top = top.to_string();
    match store.snapshot_stat(snapshotter, &top).await {
        Ok(_) => Ok(top),
        Err(s) if s.code() == tonic::Code::NotFound => Err(Error::failed_precondition(format!(
            "image {name:?} is not unpacked in snapshotter {snapshotter:?} (no snapshot {top}): \
             import it with that snapshotter (ImportOptions::with_snapshotter)"
        ))),
        Err(s) => Err(prefixed(
            status_error(s),
            &format!("image {name:?} in snapshotter {snapshotter:?}"),
        )),
    }
}
