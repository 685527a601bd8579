//! Resolving a `docker save` archive: each `manifest.json` entry's config
//! and layers (paths in the archive, through links), and the manifest
//! libctd makes for it (docker schema 2) so that it can be stored like any
//! blob. A layer's media type comes from its first bytes (gzip, zstd, or
//! a plain tar).

use libctd_core::{Error, Result};
use serde::Deserialize;

use crate::config::ImageConfig;
use crate::descriptor::{
    Compression, DOCKER_CONFIG, DOCKER_MANIFEST, Descriptor, Manifest, decode,
};
use crate::digest::Digest;
use crate::image::{self, Collected, Image, Made};
use crate::platform::Platform;
use crate::reference;
use crate::sink::BlobInfo;

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The images of the archive that run on `host`, one per name
/// (`NotFound` if none does), and the manifests made for them.
pub(crate) fn resolve(
    collected: &Collected,
    manifest_json: &[u8],
    host: &Platform,
) -> Result<(Vec<Image>, Vec<Made>)> {
    let entries: Vec<Entry> = decode(manifest_json, "docker's manifest list", "manifest.json")?;
    if entries.is_empty() {
        return Err(Error::invalid_argument(
            "image archive: entry \"manifest.json\" lists no image",
        ));
    }
    let (mut images, mut made, mut found) = (Vec::new(), Vec::new(), Vec::new());
    for (i, entry) in entries.iter().enumerate() {
        let of = format!("manifest.json[{i}]");
        let names = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| {
                reference::normalise(t).map_err(|e| {
                    let m = format!("image archive: {of}: {}", e.message());
                    e.with_message(m)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let config_seen = collected.blob_at(&entry.config, &of)?;
        let bytes = collected.json(config_seen, "an image config")?;
        let image_config = ImageConfig::parse(bytes, &config_seen.entry)?;
        let platform = image_config.platform();
        found.push(platform.clone());
        let Some(rank) = host.rank(&platform) else {
            continue;
        };
        let mut layers = Vec::with_capacity(entry.layers.len());
        for path in &entry.layers {
            let seen = collected.blob_at(path, &of)?;
            let media_type = Compression::sniff(&seen.head).docker_media_type();
            layers.push(Descriptor::new(media_type, seen.digest.clone(), seen.size));
        }
        let config = Descriptor::new(DOCKER_CONFIG, config_seen.digest.clone(), config_seen.size);
        let doc = Manifest {
            schema_version: 2,
            media_type: DOCKER_MANIFEST.to_owned(),
            config: config.clone(),
            layers,
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| {
            Error::unknown(format!("image archive: making the manifest of {of}: {e}"))
        })?;
        let digest = Digest::of(&bytes);
        let manifest = Descriptor::new(DOCKER_MANIFEST, digest.clone(), bytes.len() as u64);
        let layers = image::layers(collected, &doc, &image_config, &of)?;
        made.push((
            BlobInfo {
                entry: of,
                digest: Some(digest),
                size: bytes.len() as u64,
            },
            bytes,
        ));
        images.push((
            rank,
            Image {
                names,
                target: manifest.clone(),
                indexes: Vec::new(),
                manifest,
                config,
                image_config,
                layers,
                platform,
            },
        ));
    }
    if images.is_empty() {
        return Err(image::no_platform(host, &found));
    }
    let images = image::one_per_name(images);
    made.retain(|(info, _)| {
        images
            .iter()
            .any(|i| Some(&i.manifest.digest) == info.digest.as_ref())
    });
    Ok((images, made))
}
