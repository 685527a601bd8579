//! The JSON documents of an image (descriptor, manifest, index), their
//! media types, and the layer media types libctd unpacks.

use std::collections::BTreeMap;

use libctd_core::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A docker manifest list (an index).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// A docker layer, uncompressed.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// A docker layer, gzip-compressed.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// An OCI layer, uncompressed.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// An OCI layer, gzip-compressed.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// An OCI layer, zstd-compressed.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The annotation containerd names an image by.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming an image (a full reference, or only a tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar: its digest is its diff id.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression a layer of `media_type` has; `None` if libctd does
    /// not unpack that media type (foreign and non-distributable layers too).
    pub fn of_layer(media_type: &str) -> Option<Self> {
        match media_type {
            OCI_LAYER | DOCKER_LAYER => Some(Self::None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(Self::Gzip),
            OCI_LAYER_ZSTD => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The compression a blob starting with `head` has, by its magic.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    /// The media type a `docker save` layer of this compression gets.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Self::None => DOCKER_LAYER,
            Self::Gzip => DOCKER_LAYER_GZIP,
            // Docker's media types have no zstd; containerd uses OCI's.
            Self::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// A JSON `null` read as the type's default (docker writes `"Env": null`).
pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A platform as a descriptor writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformField {
    /// The architecture.
    #[serde(default, deserialize_with = "or_default")]
    pub architecture: String,
    /// The operating system.
    #[serde(default, deserialize_with = "or_default")]
    pub os: String,
    /// The variant.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
}

impl PlatformField {
    /// As a normalised platform.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, &self.variant)
    }
}

/// Points at a blob: its media type, digest and size (and, in an index,
/// its platform and annotations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// What the blob is.
    #[serde(rename = "mediaType", default, deserialize_with = "or_default")]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform it is for (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformField>,
    /// Annotations (index entries: the image's name).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `media_type` for `digest` and `size`.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image manifest (OCI or docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's own media type, if written.
    #[serde(rename = "mediaType", default, deserialize_with = "or_default")]
    pub media_type: String,
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default, deserialize_with = "or_default")]
    pub layers: Vec<Descriptor>,
}

/// An image index (OCI) or manifest list (docker).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Index {
    /// The index's own media type, if written.
    #[serde(rename = "mediaType", default, deserialize_with = "or_default")]
    pub media_type: String,
    /// The manifests (or indexes) it lists.
    #[serde(default, deserialize_with = "or_default")]
    pub manifests: Vec<Descriptor>,
}

/// What a JSON document of an image archive is (named by `what` and the
/// archive `entry` in messages): `InvalidArgument` if it is not one.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str, entry: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::invalid_argument(format!("image archive: entry {entry:?} is not {what}: {e}"))
    })
}

/// The kind of document a descriptor's blob is, from its media type or
/// (when the descriptor has none) the document's own `mediaType` or keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// An index or manifest list.
    Index,
    /// A manifest.
    Manifest,
}

/// The kind of the document `bytes` that `media_type` names; `None` for a
/// media type that is neither an index nor a manifest.
pub fn doc_kind(media_type: &str, bytes: &[u8]) -> Option<DocKind> {
    let of = |mt: &str| match mt {
        OCI_INDEX | DOCKER_LIST => Some(DocKind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(DocKind::Manifest),
        _ => None,
    };
    if !media_type.is_empty() {
        return of(media_type);
    }
    #[derive(Deserialize)]
    struct Sniff {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        config: Option<serde::de::IgnoredAny>,
    }
    let sniff: Sniff = serde_json::from_slice(bytes).ok()?;
    match (sniff.media_type, sniff.manifests, sniff.config) {
        (Some(mt), _, _) if !mt.is_empty() => of(&mt),
        (_, Some(_), None) => Some(DocKind::Index),
        (_, None, Some(_)) => Some(DocKind::Manifest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        assert_eq!(Compression::of_layer(OCI_LAYER), Some(Compression::None));
        assert_eq!(
            Compression::of_layer(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_layer(OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        for unknown in [
            "",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
        ] {
            assert_eq!(Compression::of_layer(unknown), None, "{unknown}");
        }
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/"), Compression::None);
        assert_eq!(Compression::sniff(&[]), Compression::None);
    }

    #[test]
    fn document_kinds() {
        assert_eq!(doc_kind(OCI_INDEX, b""), Some(DocKind::Index));
        assert_eq!(doc_kind(DOCKER_MANIFEST, b""), Some(DocKind::Manifest));
        assert_eq!(doc_kind("text/plain", b"{}"), None);
        assert_eq!(doc_kind("", br#"{"manifests":[]}"#), Some(DocKind::Index));
        assert_eq!(doc_kind("", br#"{"config":{}}"#), Some(DocKind::Manifest));
        let m = format!(r#"{{"mediaType":"{OCI_MANIFEST}"}}"#);
        assert_eq!(doc_kind("", m.as_bytes()), Some(DocKind::Manifest));
        assert_eq!(doc_kind("", b"not json"), None);
    }
}
