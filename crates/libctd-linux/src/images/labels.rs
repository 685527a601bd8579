//! The labels containerd's garbage collector follows from one blob to
//! what it needs, set as containerd's own client sets them on an import
//! and its unpack: an index names the child chosen in it (`m.<n>` for a
//! manifest, `<n>` for a nested index, as containerd keys a child by its
//! media type), a manifest its config and layers, each unpacked layer its
//! diff id (compressed or not), and the config the snapshot its layers
//! were unpacked to. An image record then keeps the whole image alive
//! through its target; once the record goes, so does everything only it
//! referenced.

use std::collections::{BTreeMap, HashMap};

use libctd_image::digest::Digest;
use libctd_image::image::Image;

/// A reference to a blob: this prefix and a name of the referrer's choice.
pub(crate) const GC_CONTENT: &str = "containerd.io/gc.ref.content";
/// A reference to a snapshot: this prefix, `.`, the snapshotter.
pub(crate) const GC_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot";
/// On a layer blob once unpacked: the digest of its uncompressed tar (its
/// own digest for an uncompressed layer).
pub(crate) const UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// The labels to set on each blob of `images` (by digest), their layers
/// unpacked in `snapshotter`. Each index names the child chosen for this
/// host (one label per child chosen in it); the other platforms' blobs are
/// left unreferenced, and collected.
pub(crate) fn gc_labels(
    images: &[Image],
    snapshotter: &str,
) -> BTreeMap<Digest, HashMap<String, String>> {
    let mut out: BTreeMap<Digest, HashMap<String, String>> = BTreeMap::new();
    for image in images {
        // Every index's child is the next index, the last one's the manifest.
        let children = image
            .indexes
            .iter()
            .skip(1)
            .map(|i| (i, false))
            .chain([(&image.manifest, true)]);
        for (index, (child, is_manifest)) in image.indexes.iter().zip(children) {
            let labels = out.entry(index.digest.clone()).or_default();
            let child_digest = child.digest.to_string();
            if !labels.values().any(|v| *v == child_digest) {
                let prefix = if is_manifest {
                    format!("{GC_CONTENT}.m.")
                } else {
                    format!("{GC_CONTENT}.")
                };
                let n = labels
                    .keys()
                    .filter(|k| {
                        k.strip_prefix(&prefix)
                            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    })
                    .count();
                labels.insert(format!("{prefix}{n}"), child_digest);
            }
        }
        let manifest = out.entry(image.manifest.digest.clone()).or_default();
        manifest.insert(
            format!("{GC_CONTENT}.config"),
            image.config.digest.to_string(),
        );
        for (i, layer) in image.layers.iter().enumerate() {
            manifest.insert(
                format!("{GC_CONTENT}.l.{i}"),
                layer.descriptor.digest.to_string(),
            );
        }
        // containerd's unpack labels every layer it applied, compressed
        // or not.
        for layer in &image.layers {
            out.entry(layer.descriptor.digest.clone())
                .or_default()
                .insert(UNCOMPRESSED.to_owned(), layer.diff_id.to_string());
        }
        if let Some(top) = image.layers.last() {
            out.entry(image.config.digest.clone())
                .or_default()
                .insert(snapshot_label(snapshotter), top.chain_id.to_string());
        }
    }
    out
}

/// The label by which a config keeps its top snapshot in `snapshotter`.
pub(crate) fn snapshot_label(snapshotter: &str) -> String {
    format!("{GC_SNAPSHOT}.{snapshotter}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_image::config::{ImageConfig, chain_ids};
    use libctd_image::descriptor::Compression;
    use libctd_image::descriptor::{
        Descriptor, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST,
    };
    use libctd_image::image::Layer;
    use libctd_image::platform::Platform;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn image(indexes: &[u8], layers: &[(u8, Compression)]) -> Image {
        let diff_ids: Vec<Digest> = layers.iter().map(|(n, _)| d(100 + n)).collect();
        let chains = chain_ids(&diff_ids);
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()}});
        Image {
            names: vec!["example.com/a:1".into()],
            target: Descriptor::new(OCI_INDEX, d(indexes.first().copied().unwrap_or(1)), 1),
            indexes: indexes
                .iter()
                .map(|n| Descriptor::new(OCI_INDEX, d(*n), 1))
                .collect(),
            manifest: Descriptor::new(OCI_MANIFEST, d(1), 1),
            config: Descriptor::new("config", d(2), 1),
            image_config: ImageConfig::parse(config.to_string().as_bytes(), "c").unwrap(),
            layers: layers
                .iter()
                .zip(diff_ids.iter().zip(chains))
                .map(|((n, c), (diff_id, chain_id))| Layer {
                    descriptor: Descriptor::new(
                        if *c == Compression::None {
                            OCI_LAYER
                        } else {
                            OCI_LAYER_GZIP
                        },
                        if *c == Compression::None {
                            diff_id.clone()
                        } else {
                            d(*n)
                        },
                        1,
                    ),
                    compression: *c,
                    diff_id: diff_id.clone(),
                    chain_id,
                })
                .collect(),
            platform: Platform::host(),
        }
    }

    #[test]
    fn each_blob_names_what_it_needs() {
        let img = image(
            &[10, 11],
            &[(20, Compression::Gzip), (21, Compression::None)],
        );
        let labels = gc_labels(std::slice::from_ref(&img), "overlayfs");
        // Index -> index (keyed as containerd keys an index) -> manifest.
        assert_eq!(
            labels[&d(10)]["containerd.io/gc.ref.content.0"],
            d(11).to_string()
        );
        assert_eq!(labels[&d(10)].len(), 1, "{labels:?}");
        assert_eq!(
            labels[&d(11)]["containerd.io/gc.ref.content.m.0"],
            d(1).to_string()
        );
        let manifest = &labels[&d(1)];
        assert_eq!(
            manifest["containerd.io/gc.ref.content.config"],
            d(2).to_string()
        );
        assert_eq!(
            manifest["containerd.io/gc.ref.content.l.0"],
            d(20).to_string()
        );
        assert_eq!(
            manifest["containerd.io/gc.ref.content.l.1"],
            img.layers[1].descriptor.digest.to_string()
        );
        // Every layer says what it uncompresses to, as containerd's
        // unpack labels each layer it applied.
        assert_eq!(labels[&d(20)][UNCOMPRESSED], d(120).to_string());
        assert_eq!(labels[&d(121)][UNCOMPRESSED], d(121).to_string());
        // The config keeps the top layer's snapshot: the chain of both.
        let top = chain_ids(&[d(120), d(121)]).pop().unwrap();
        assert_eq!(
            labels[&d(2)]["containerd.io/gc.ref.snapshot.overlayfs"],
            top.to_string()
        );
        assert_eq!(labels.len(), 6);
    }

    #[test]
    fn a_manifest_alone_and_an_image_without_layers() {
        let labels = gc_labels(&[image(&[], &[])], "native");
        assert_eq!(labels.len(), 1, "{labels:?}");
        assert_eq!(labels[&d(1)].len(), 1);
    }

    #[test]
    fn an_index_shared_by_two_images_names_its_child_once() {
        let a = image(&[10], &[(20, Compression::Gzip)]);
        let labels = gc_labels(&[a.clone(), a], "native");
        assert_eq!(labels[&d(10)].len(), 1, "{labels:?}");
    }
}
