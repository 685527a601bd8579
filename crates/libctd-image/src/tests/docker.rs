//! `docker save` archives: the legacy layout (manifest.json last, layer
//! directories, a linked duplicate layer) and docker 25's (an OCI layout too).

use serde_json::json;

use super::*;
use crate::descriptor::{
    ANNOTATION_IMAGE_NAME, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
    Manifest,
};
use crate::digest::Digest;
use crate::image::Format;

/// A docker save archive: config, two layer directories (the second
/// gzip-compressed), a third layer linked to the first; `manifest.json`
/// after all of them.
fn legacy(arch: &str, tags: &[&str]) -> (Vec<u8>, Vec<u8>, [Vec<u8>; 2]) {
    let plain = layer("etc/os-release", b"ID=test\n");
    let gz = gzip(&layer("bin/true", b"\x7fELF"));
    let diff_ids = [
        sha(&plain),
        sha(&layer("bin/true", b"\x7fELF")),
        sha(&plain),
    ];
    let config = doc(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": null, "Entrypoint": ["/bin/true"], "Cmd": null, "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }));
    let config_name = format!("{}.json", &sha(&config)[7..]);
    let manifest = doc(&json!([{
        "Config": config_name,
        "RepoTags": tags,
        "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
    }]));
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, bytes).unwrap();
    };
    add("aaa/VERSION", b"1.0");
    add("aaa/json", b"{}");
    add("aaa/layer.tar", &plain);
    add("bbb/layer.tar", &gz);
    add(&config_name, &config);
    add("repositories", b"{\"x\":{}}");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "ccc/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_cksum();
    b.append_link(&mut h, "ccc/layer.tar", "../aaa/layer.tar")
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "manifest.json", manifest.as_slice())
        .unwrap();
    (b.into_inner().unwrap(), config, [plain, gz])
}

#[tokio::test]
async fn a_legacy_docker_save_archive_with_the_manifest_last() {
    let (bytes, config, [plain, gz]) = legacy("amd64", &["busybox:latest", "me/box:1"]);
    let (got, sink) = read(&bytes).await;
    let got = got.unwrap();
    assert_eq!(got.format, Format::DockerSave);
    let [image] = got.images.as_slice() else {
        panic!("{:?}", got.images)
    };
    assert_eq!(
        image.names,
        ["docker.io/library/busybox:latest", "docker.io/me/box:1"]
    );
    assert_eq!(image.config.media_type, DOCKER_CONFIG);
    assert_eq!(image.config.digest.to_string(), sha(&config));
    let types: Vec<&str> = image
        .layers
        .iter()
        .map(|l| l.descriptor.media_type.as_str())
        .collect();
    assert_eq!(types, [DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER]);
    assert_eq!(image.layers[1].descriptor.digest.to_string(), sha(&gz));
    assert_eq!(image.layers[2].descriptor.digest.to_string(), sha(&plain));
    assert_eq!(
        image.image_config.config.entrypoint,
        Some(vec!["/bin/true".to_owned()])
    );
    // The made manifest went to the sink like any blob, and decodes to the image.
    let [(info, made)] = got.made.as_slice() else {
        panic!("{:?}", got.made)
    };
    assert_eq!(info.entry, "manifest.json[0]");
    assert_eq!(info.digest.as_ref(), Some(&image.manifest.digest));
    assert_eq!(image.manifest.media_type, DOCKER_MANIFEST);
    assert_eq!(image.target, image.manifest);
    assert_eq!(sink.blobs.get(&image.manifest.digest), Some(made));
    let m: Manifest = serde_json::from_slice(made).unwrap();
    assert_eq!(m.config, image.config);
    let layers: Vec<_> = image.layers.iter().map(|l| l.descriptor.clone()).collect();
    assert_eq!(m.layers, layers);
    // Layers and config reached the sink; the legacy metadata did not.
    for bytes in [&plain, &gz, &config] {
        assert!(sink.blobs.contains_key(&Digest::of(bytes)));
    }
    assert!(!sink.blobs.contains_key(&Digest::of(b"1.0")));
    assert!(!sink.progress.iter().any(|(e, _)| e == "repositories"));
}

#[tokio::test]
async fn a_docker_25_archive_is_read_as_its_oci_layout() {
    let img = oci_image("linux", "amd64", &[(layer("x", b"x"), true)]);
    let config_path = blob_path(&img.config);
    let manifest = doc(&json!([{
        "Config": config_path,
        "RepoTags": ["ignored:tag"],
        "Layers": [blob_path(&img.layers[0])],
    }]));
    let mut files = img.blobs.clone();
    files.push(("manifest.json".to_owned(), manifest));
    files.extend(layout(vec![annotated(
        img.manifest.clone(),
        &[(ANNOTATION_IMAGE_NAME, "docker.io/library/x:latest")],
    )]));
    let (got, _) = read(&archive(&files)).await;
    let got = got.unwrap();
    assert_eq!(got.format, Format::Oci);
    assert_eq!(got.images[0].names, ["docker.io/library/x:latest"]);
}

#[tokio::test]
async fn a_docker_save_archive_with_blob_paths_and_no_layout() {
    let img = oci_image("linux", "amd64", &[(layer("x", b"x"), true)]);
    let manifest = doc(&json!([{
        "Config": blob_path(&img.config),
        "RepoTags": null,
        "Layers": [blob_path(&img.layers[0])],
    }]));
    let mut files = img.blobs.clone();
    files.push(("manifest.json".to_owned(), manifest));
    let (got, _) = read(&archive(&files)).await;
    let got = got.unwrap();
    assert_eq!(got.format, Format::DockerSave);
    assert!(got.images[0].names.is_empty());
    assert_eq!(
        got.images[0].layers[0].descriptor.media_type,
        DOCKER_LAYER_GZIP
    );
}

#[tokio::test]
async fn only_the_hosts_images_of_a_docker_save_archive() {
    let (bytes, ..) = legacy("arm64", &["busybox"]);
    let (got, _) = read_for(&bytes, Platform::new("linux", "arm64", "v8")).await;
    assert_eq!(got.unwrap().images[0].platform.architecture, "arm64");
    let (got, _) = read(&bytes).await;
    let err = got.unwrap_err();
    assert_eq!(err.kind(), libctd_core::ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("linux/arm64"), "{err}");
}
