//! Reading an image archive: one pass over the tar stream, each blob
//! offered to the sink as it comes (verified while it streams), the small
//! JSON files kept; then the images resolved from what was seen.

use libctd_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::descriptor::Compression;
use crate::digest::{Digest, SHA256};
use crate::docker;
use crate::image::{Archive, Collected, Format, Seen};
use crate::oci;
use crate::platform::Platform;
use crate::sink::{BlobBody, BlobInfo, BlobSink};
use crate::tar::{Entry, Kind, TarReader, clean_path};

/// The largest JSON document (index, manifest, config) by default: 4 MiB.
pub const MAX_JSON: u64 = 4 << 20;
/// The most JSON-like blobs an archive may make libctd keep, by default: 64 MiB.
pub const MAX_KEPT: u64 = 64 << 20;
/// How much of the stream is read at once.
const READ_BUFFER: usize = 64 << 10;

/// How an archive is read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The platform images are chosen for (the host's by default).
    pub platform: Platform,
    /// The largest JSON document.
    pub max_json: u64,
    /// The most bytes of JSON-like blobs kept in memory.
    pub max_kept: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            max_json: MAX_JSON,
            max_kept: MAX_KEPT,
        }
    }
}

/// What an archive file is to the reader.
enum Role {
    /// `oci-layout`.
    Layout,
    /// `index.json`.
    Index,
    /// docker's `manifest.json`.
    DockerManifest,
    /// docker's `repositories` and legacy per-layer `json` and `VERSION`.
    Ignored,
    /// A blob, with the digest its path names (OCI's `blobs/sha256/<hex>`).
    Blob(Option<Digest>),
}

fn role(path: &str) -> Result<Role> {
    let parts: Vec<&str> = path.split('/').collect();
    Ok(match parts.as_slice() {
        ["oci-layout"] => Role::Layout,
        ["index.json"] => Role::Index,
        ["manifest.json"] => Role::DockerManifest,
        ["repositories"] | [_, "json" | "VERSION"] => Role::Ignored,
        ["blobs", alg, hex] => {
            if *alg != SHA256 {
                return Err(Error::invalid_argument(format!(
                    "image archive: entry {path:?} is a blob of digest algorithm {alg:?}, \
                     which is not supported (only sha256)"
                )));
            }
            let digest = Digest::from_hex(hex).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "image archive: entry {path:?} is not named by a sha256 digest"
                ))
            })?;
            Role::Blob(Some(digest))
        }
        _ => Role::Blob(None),
    })
}

/// Reads the archive `reader` streams: every file that may be a blob goes
/// to `sink` as it comes, then the images for `options.platform` are
/// resolved, and (`docker save`) the manifests made for them go to `sink`
/// too. Errors: see the module docs of `images`.
pub async fn read_archive<R, S>(reader: R, sink: &mut S, options: &Options) -> Result<Archive>
where
    R: AsyncRead + Send + Unpin,
    S: BlobSink + ?Sized,
{
    let mut tar = TarReader::new(BufReader::with_capacity(READ_BUFFER, reader));
    let mut collected = Collected {
        max_json: options.max_json,
        ..Collected::default()
    };
    let mut kept = 0u64;
    while let Some(entry) = tar.next_entry().await? {
        match entry.kind {
            Kind::Directory => continue,
            Kind::Symlink | Kind::HardLink => {
                link(&mut collected, &entry);
                continue;
            }
            Kind::File => {}
        }
        let small = match role(&entry.path)? {
            Role::Layout => &mut collected.oci_layout,
            Role::Index => &mut collected.index,
            Role::DockerManifest => &mut collected.docker_manifest,
            Role::Ignored => continue,
            Role::Blob(digest) => {
                let info = BlobInfo {
                    entry: entry.path.clone(),
                    digest,
                    size: entry.size,
                };
                let seen = stream_blob(&mut tar, sink, info, options.max_json).await?;
                kept += seen.json.as_ref().map_or(0, |j| j.len() as u64);
                if kept > options.max_kept {
                    return Err(Error::invalid_argument(format!(
                        "image archive: at entry {:?}, more than {} bytes of small JSON-like \
                         files to keep",
                        seen.entry, options.max_kept
                    )));
                }
                collected.links.remove(&seen.entry);
                collected
                    .paths
                    .insert(seen.entry.clone(), seen.digest.clone());
                collected.blobs.insert(seen.digest.clone(), seen);
                continue;
            }
        };
        *small = Some(read_small(&mut tar, &entry, options.max_json).await?);
    }
    let (format, images, made) = if let Some(layout) = &collected.oci_layout {
        let images = oci::resolve(&collected, layout, &options.platform)?;
        (Format::Oci, images, Vec::new())
    } else if let Some(manifest) = &collected.docker_manifest {
        let (images, made) = docker::resolve(&collected, manifest, &options.platform)?;
        (Format::DockerSave, images, made)
    } else {
        return Err(Error::invalid_argument(
            "image archive: neither an OCI layout (no \"oci-layout\") nor a docker save \
             archive (no \"manifest.json\")",
        ));
    };
    for (info, bytes) in &made {
        let mut slice: &[u8] = bytes;
        let mut body = BlobBody::new(&mut slice, info, 0);
        sink.blob(info, &mut body).await?;
        body.drain()
            .await
            .map_err(|e| Error::unknown(format!("image archive: offering {}: {e}", info.entry)))?;
    }
    Ok(Archive {
        format,
        images,
        made,
    })
}

/// Records a link (docker save links equal layers to one file).
fn link(collected: &mut Collected, entry: &Entry) {
    let target = match entry.kind {
        // A symbolic link is relative to its directory (or the root).
        Kind::Symlink if !entry.link.starts_with('/') => {
            let dir = entry.path.rsplit_once('/').map_or("", |(d, _)| d);
            clean_path(&format!("{dir}/{}", entry.link))
        }
        _ => clean_path(&entry.link),
    };
    // A link leading out of the archive leads nowhere: it stays unknown.
    if let Some(target) = target {
        collected.paths.remove(&entry.path);
        collected.links.insert(entry.path.clone(), target);
    }
}

/// A small file's content, read whole: `InvalidArgument` naming it if it
/// is larger than `max`.
async fn read_small<R: AsyncRead + Unpin>(
    tar: &mut TarReader<R>,
    entry: &Entry,
    max: u64,
) -> Result<Vec<u8>> {
    if entry.size > max {
        return Err(Error::invalid_argument(format!(
            "image archive: entry {:?} is {} bytes, more than the {max} a JSON document may have",
            entry.path, entry.size
        )));
    }
    let mut out = Vec::with_capacity(entry.size as usize);
    let read = tar.body().read_to_end(&mut out).await;
    read.map_err(|e| tar.io_error(e))?;
    Ok(out)
}

/// Offers one blob to the sink, then reads what it left: what was seen,
/// or the archive's error (it wins over the sink's), or the sink's.
async fn stream_blob<R, S>(
    tar: &mut TarReader<R>,
    sink: &mut S,
    info: BlobInfo,
    max_json: u64,
) -> Result<Seen>
where
    R: AsyncRead + Send + Unpin,
    S: BlobSink + ?Sized,
{
    let mut entry_body = tar.body();
    let mut body = BlobBody::new(&mut entry_body, &info, max_json);
    let sunk = sink.blob(&info, &mut body).await;
    let drained = match sunk {
        Ok(()) => body.drain().await,
        Err(_) => Ok(()),
    };
    let failure = body.failure().cloned();
    let digest = body.digest().cloned();
    let head = body.head().to_vec();
    let json = body.take_kept();
    if let Some(failure) = failure {
        return Err(failure);
    }
    if let Err(e) = sunk {
        if tar.truncated() {
            return Err(tar.io_error(std::io::ErrorKind::UnexpectedEof.into()));
        }
        return Err(e);
    }
    drained.map_err(|e| tar.io_error(e))?;
    let digest = digest.ok_or_else(|| {
        Error::unknown(format!(
            "image archive: entry {:?} was read but not verified",
            info.entry
        ))
    })?;
    // Layers are rarely JSON; a blob that only looked like it is dropped.
    let json = json.filter(|_| Compression::sniff(&head) == Compression::None);
    Ok(Seen {
        entry: info.entry,
        digest,
        size: info.size,
        head,
        json,
    })
}
