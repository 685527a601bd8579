//! OCI layouts: one platform, several, blobs before and after the index, names.

use serde_json::json;

use super::*;
use crate::config::chain_ids;
use crate::descriptor::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Compression};
use crate::digest::Digest;
use crate::image::Format;

fn d(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

fn two_layers() -> Built {
    oci_image(
        "linux",
        "amd64",
        &[
            (layer("etc/hostname", b"box\n"), true),
            (layer("bin/sh", b"#!shell"), false),
        ],
    )
}

#[tokio::test]
async fn a_single_platform_layout_with_the_index_first() {
    let img = two_layers();
    let entry = annotated(
        img.manifest.clone(),
        &[(ANNOTATION_IMAGE_NAME, "example.com/app:1")],
    );
    let mut files = layout(vec![entry]);
    files.extend(img.blobs.clone());
    let (got, sink) = read(&archive(&files)).await;
    let got = got.unwrap();
    assert_eq!(got.format, Format::Oci);
    assert!(got.made.is_empty());
    let [image] = got.images.as_slice() else {
        panic!("one image: {:?}", got.images)
    };
    assert_eq!(image.names, ["example.com/app:1"]);
    assert_eq!(image.target, image.manifest);
    assert!(image.indexes.is_empty());
    assert_eq!(image.manifest.digest.to_string(), img.manifest["digest"]);
    assert_eq!(image.config.digest.to_string(), sha(&img.config));
    assert_eq!(image.platform, amd64());
    assert_eq!(image.image_config.config.cmd, Some(vec!["sh".to_owned()]));
    let compressions: Vec<_> = image.layers.iter().map(|l| l.compression).collect();
    assert_eq!(compressions, [Compression::Gzip, Compression::None]);
    let diff_ids = [
        d(&sha(&layer("etc/hostname", b"box\n"))),
        d(&sha(&layer("bin/sh", b"#!shell"))),
    ];
    for (l, want) in image.layers.iter().zip(&diff_ids) {
        assert_eq!(&l.diff_id, want);
    }
    let chains: Vec<_> = image.layers.iter().map(|l| l.chain_id.clone()).collect();
    assert_eq!(chains, chain_ids(&diff_ids));
    // Every blob reached the sink, whole, with progress up to its size.
    for (path, bytes) in &img.blobs {
        assert_eq!(sink.blobs.get(&d(&sha(bytes))), Some(bytes), "{path}");
        let (_, done) = sink.progress.iter().find(|(e, _)| e == path).unwrap();
        assert_eq!(done.last().copied(), Some(bytes.len() as u64), "{path}");
    }
    assert_eq!(sink.blobs.len(), img.blobs.len(), "index.json is no blob");
}

#[tokio::test]
async fn blobs_before_the_index_give_the_same_image() {
    let img = two_layers();
    let mut files = img.blobs.clone();
    files.reverse();
    files.extend(layout(vec![img.manifest.clone()]));
    let (got, sink) = read(&archive(&files)).await;
    let got = got.unwrap();
    assert_eq!(got.images.len(), 1);
    assert!(got.images[0].names.is_empty(), "no annotation, no name");
    assert_eq!(got.images[0].layers.len(), 2);
    assert_eq!(sink.blobs.len(), img.blobs.len());
}

/// A multi-platform index for amd64 and arm64 (and an attestation entry),
/// with only the blobs of the platforms in `present`.
fn multi(present: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (arch, variant) in [("arm64", "v8"), ("amd64", ""), ("arm", "v7")] {
        let img = oci_image("linux", arch, &[(layer(arch, arch.as_bytes()), true)]);
        let mut entry = img.manifest.clone();
        entry["platform"] = json!({"os": "linux", "architecture": arch, "variant": variant});
        entries.push(entry);
        if present.contains(&arch) {
            files.extend(img.blobs);
        }
    }
    let attestation = doc(&json!({"schemaVersion": 2, "config": {}, "layers": []}));
    let mut att = desc(OCI_MANIFEST, &attestation);
    att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    entries.push(att);
    let index = doc(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}));
    let entry = annotated(
        desc(OCI_INDEX, &index),
        &[
            (ANNOTATION_IMAGE_NAME, "docker.io/library/multi:latest"),
            (ANNOTATION_REF_NAME, "latest"),
        ],
    );
    files.push((blob_path(&index), index));
    files.extend(layout(vec![entry]));
    files
}

#[tokio::test]
async fn a_multi_platform_index_gives_the_hosts_image() {
    // Only the host's platform needs to be in the archive.
    let (got, _) = read(&archive(&multi(&["amd64"]))).await;
    let got = got.unwrap();
    let [image] = got.images.as_slice() else {
        panic!("{:?}", got.images)
    };
    assert_eq!(image.platform, amd64());
    assert_eq!(image.names, ["docker.io/library/multi:latest"]);
    assert_eq!(image.indexes, std::slice::from_ref(&image.target));
    assert_ne!(image.target, image.manifest);

    let arm64 = Platform::new("linux", "arm64", "");
    let (got, _) = read_for(&archive(&multi(&["amd64", "arm64", "arm"])), arm64).await;
    assert_eq!(got.unwrap().images[0].platform.architecture, "arm64");

    // An arm64 host runs arm/v7 when there is no arm64 image.
    let files = multi(&["arm"]);
    let arm64 = Platform::new("linux", "aarch64", "");
    let (got, _) = read_for(&archive(&files), arm64).await;
    assert_eq!(got.unwrap().images[0].platform.to_string(), "linux/arm/v7");
}

#[tokio::test]
async fn a_manifest_without_a_platform_is_chosen_by_its_config() {
    let amd = oci_image("linux", "amd64", &[(layer("a", b"a"), false)]);
    let arm = oci_image("linux", "arm64", &[(layer("b", b"b"), false)]);
    let mut files = layout(vec![
        annotated(arm.manifest.clone(), &[(ANNOTATION_IMAGE_NAME, "app")]),
        annotated(amd.manifest.clone(), &[(ANNOTATION_IMAGE_NAME, "app")]),
    ]);
    files.extend(amd.blobs);
    files.extend(arm.blobs);
    let (got, _) = read(&archive(&files)).await;
    let got = got.unwrap();
    assert_eq!(got.images.len(), 1, "{:?}", got.images);
    assert_eq!(got.images[0].platform, amd64());
    assert_eq!(got.images[0].names, ["docker.io/library/app:latest"]);
}

#[tokio::test]
async fn names_come_from_full_references_only() {
    let img = two_layers();
    for (pairs, want) in [
        (
            vec![(ANNOTATION_REF_NAME, "example.com/a/b:v1")],
            vec!["example.com/a/b:v1"],
        ),
        (vec![(ANNOTATION_REF_NAME, "v1")], vec![]),
        (
            vec![
                (ANNOTATION_REF_NAME, "example.com/other:x"),
                (ANNOTATION_IMAGE_NAME, "busybox"),
            ],
            vec!["docker.io/library/busybox:latest"],
        ),
    ] {
        let mut files = layout(vec![annotated(img.manifest.clone(), &pairs)]);
        files.extend(img.blobs.clone());
        let (got, _) = read(&archive(&files)).await;
        assert_eq!(got.unwrap().images[0].names, want, "{pairs:?}");
    }
}

#[tokio::test]
async fn a_blob_the_sink_has_already_is_read_past() {
    let img = two_layers();
    let mut files = layout(vec![img.manifest.clone()]);
    files.extend(img.blobs.clone());
    let bytes = archive(&files);
    let mut sink = MemorySink::default();
    let options = Options {
        platform: amd64(),
        ..Options::default()
    };
    read_archive(bytes.as_slice(), &mut sink, &options)
        .await
        .unwrap();
    let progress = sink.progress.len();
    let got = read_archive(bytes.as_slice(), &mut sink, &options).await;
    assert_eq!(got.unwrap().images.len(), 1);
    assert_eq!(sink.progress.len(), progress, "nothing read again");
}
