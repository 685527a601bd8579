//! Resolving an OCI image layout: `index.json`'s entries, through any
//! index to the manifest for the host's platform, to its config and layers.
//!
//! A child of an index that names its platform is chosen by it; one that
//! does not is read to learn its platform (its config's). Of the chosen
//! path, every blob must be in the archive; the manifests of other
//! platforms need not be, and a better platform whose manifest is not in
//! the archive gives way to the next (a save of one platform keeps the
//! whole index); if none is there, the best one's is the missing blob.

use libctd_core::{Error, Result};
use serde::Deserialize;

use crate::config::ImageConfig;
use crate::descriptor::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, DOCKER_CONFIG, Descriptor, DocKind, Index,
    Manifest, OCI_CONFIG, decode, doc_kind,
};
use crate::image::{self, Collected, Image};
use crate::platform::Platform;
use crate::reference;

/// The only layout version there is.
const LAYOUT_VERSION: &str = "1.0.0";
/// How deep indexes may nest.
const MAX_DEPTH: usize = 4;

/// A rank and platform an index gives its child (the rank `None`: the
/// host does not run it).
type Known = Option<(Option<usize>, Platform)>;

/// A manifest chosen for the host, and how it was reached.
struct Chosen {
    rank: usize,
    indexes: Vec<Descriptor>,
    manifest: Descriptor,
    doc: Manifest,
    config: Descriptor,
    image_config: ImageConfig,
    platform: Platform,
}

/// The images of the layout that run on `host`, one per name:
/// `NotFound` if none does.
pub(crate) fn resolve(collected: &Collected, layout: &[u8], host: &Platform) -> Result<Vec<Image>> {
    #[derive(Deserialize)]
    struct Layout {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let layout: Layout = decode(layout, "an OCI layout file", "oci-layout")?;
    if layout.version != LAYOUT_VERSION {
        return Err(Error::invalid_argument(format!(
            "image archive: entry \"oci-layout\" has version {:?}, not {LAYOUT_VERSION}",
            layout.version
        )));
    }
    let bytes = collected.index.as_deref().ok_or_else(|| {
        Error::invalid_argument("image archive: an OCI layout without \"index.json\"")
    })?;
    let index: Index = decode(bytes, "an image index", "index.json")?;
    if index.manifests.is_empty() {
        return Err(Error::invalid_argument(
            "image archive: entry \"index.json\" lists no image",
        ));
    }
    let mut found = Vec::new();
    let mut images = Vec::new();
    for (i, entry) in index.manifests.iter().enumerate() {
        let of = format!("entry {i} of \"index.json\"");
        let names = names(entry, &of)?;
        let known = entry.platform.as_ref().map(|p| {
            let p = p.platform();
            found.push(p.clone());
            (host.rank(&p), p)
        });
        if let Some((None, _)) = known {
            continue;
        }
        let Some(chosen) = descend(collected, entry, &of, host, 0, known, &mut found)? else {
            continue;
        };
        let layers = image::layers(
            collected,
            &chosen.doc,
            &chosen.image_config,
            &format!("manifest {}", chosen.manifest.digest),
        )?;
        images.push((
            chosen.rank,
            Image {
                names,
                target: entry.clone(),
                indexes: chosen.indexes,
                manifest: chosen.manifest,
                config: chosen.config,
                image_config: chosen.image_config,
                layers,
                platform: chosen.platform,
            },
        ));
    }
    if images.is_empty() {
        return Err(image::no_platform(host, &found));
    }
    Ok(image::one_per_name(images))
}

/// An index entry's names: `io.containerd.image.name`, else the OCI
/// `ref.name` when it is a full reference (a bare tag names nothing).
fn names(entry: &Descriptor, of: &str) -> Result<Vec<String>> {
    let named = |name: &str| {
        reference::normalise(name).map(|n| vec![n]).map_err(|e| {
            let m = format!("image archive: {of}: {}", e.message());
            e.with_message(m)
        })
    };
    if let Some(name) = entry.annotations.get(ANNOTATION_IMAGE_NAME) {
        return named(name);
    }
    match entry.annotations.get(ANNOTATION_REF_NAME) {
        Some(name) if reference::is_full(name) => named(name),
        _ => Ok(Vec::new()),
    }
}

/// Follows `desc` (referred to by `of`) down to the manifest the host
/// runs best; `known` is the rank and platform its parent gave it.
/// `None` if it is for another platform (`found` gains what it is for).
fn descend(
    collected: &Collected,
    desc: &Descriptor,
    of: &str,
    host: &Platform,
    depth: usize,
    known: Known,
    found: &mut Vec<Platform>,
) -> Result<Option<Chosen>> {
    let seen = collected.blob(desc, of)?;
    let bytes = collected.json(seen, "an image manifest or index")?;
    match doc_kind(&desc.media_type, bytes) {
        Some(DocKind::Index) => {
            if depth >= MAX_DEPTH {
                return Err(Error::invalid_argument(format!(
                    "image archive: entry {:?}: indexes nest deeper than {MAX_DEPTH}",
                    seen.entry
                )));
            }
            let index: Index = decode(bytes, "an image index", &seen.entry)?;
            let here = format!("index {}", desc.digest);
            let mut candidates: Vec<(usize, &Descriptor, Known)> = Vec::new();
            for child in &index.manifests {
                match &child.platform {
                    Some(p) => {
                        let p = p.platform();
                        found.push(p.clone());
                        if let Some(rank) = host.rank(&p) {
                            candidates.push((rank, child, Some((Some(rank), p))));
                        }
                    }
                    None => candidates.push((usize::MAX, child, None)),
                }
            }
            candidates.sort_by_key(|c| c.0);
            let mut best: Option<Chosen> = None;
            let mut missing = None;
            for (rank, child, known) in candidates {
                if best.as_ref().is_some_and(|b| b.rank <= rank) {
                    break;
                }
                // A platform's manifest left out of the archive (a save of
                // one platform keeps the whole index): the next one is tried.
                if !collected.blobs.contains_key(&child.digest) {
                    missing.get_or_insert_with(|| collected.blob(child, &here).err());
                    continue;
                }
                if let Some(c) = descend(collected, child, &here, host, depth + 1, known, found)?
                    && best.as_ref().is_none_or(|b| c.rank < b.rank)
                {
                    best = Some(c);
                }
            }
            match (best, missing.flatten()) {
                (Some(mut c), _) => {
                    c.indexes.insert(0, desc.clone());
                    Ok(Some(c))
                }
                (None, Some(err)) => Err(err),
                (None, None) => Ok(None),
            }
        }
        Some(DocKind::Manifest) => {
            let doc: Manifest = decode(bytes, "an image manifest", &seen.entry)?;
            let here = format!("manifest {}", desc.digest);
            let config_seen = collected.blob(&doc.config, &here)?;
            if !matches!(doc.config.media_type.as_str(), OCI_CONFIG | DOCKER_CONFIG) {
                return Err(Error::not_implemented(format!(
                    "image archive: {here} (entry {:?}) has a config of media type {:?}: not \
                     a container image",
                    seen.entry, doc.config.media_type
                )));
            }
            let config_bytes = collected.json(config_seen, "an image config")?;
            let image_config = ImageConfig::parse(config_bytes, &config_seen.entry)?;
            let (rank, platform) = match known {
                Some((rank, platform)) => (rank, platform),
                None => {
                    let p = image_config.platform();
                    found.push(p.clone());
                    (host.rank(&p), p)
                }
            };
            let Some(rank) = rank else {
                return Ok(None);
            };
            Ok(Some(Chosen {
                rank,
                indexes: Vec::new(),
                manifest: desc.clone(),
                config: doc.config.clone(),
                doc,
                image_config,
                platform,
            }))
        }
        None => Err(Error::not_implemented(format!(
            "image archive: {of} refers to {} (entry {:?}) of media type {:?}, which is \
             neither an image index nor a manifest",
            desc.digest, seen.entry, desc.media_type
        ))),
    }
}
