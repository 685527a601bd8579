//! Every bad input: a typed error naming the entry, digest or name.

use libctd_core::{Error, ErrorKind};
use serde_json::json;

use super::*;
use crate::descriptor::ANNOTATION_IMAGE_NAME;

fn good() -> (Built, Vec<(String, Vec<u8>)>) {
    let img = oci_image(
        "linux",
        "amd64",
        &[
            (layer("big", &[7u8; 5000]), true),
            (layer("b", b"b"), false),
        ],
    );
    let mut files = layout(vec![img.manifest.clone()]);
    files.extend(img.blobs.clone());
    (img, files)
}

#[track_caller]
fn assert_err(err: &Error, kind: ErrorKind, parts: &[&str]) {
    assert_eq!(err.kind(), kind, "{err}");
    for p in parts {
        assert!(err.message().contains(p), "{p:?} not in: {err}");
    }
}

#[tokio::test]
async fn a_truncated_archive() {
    let (img, files) = good();
    let bytes = archive(&files);
    let layer = &img.layers[0];
    // Cut inside the first layer's body.
    let at = bytes
        .windows(layer.len())
        .position(|w| w == layer.as_slice())
        .unwrap();
    for cut in [at + 10, at + layer.len() - 1] {
        let (got, sink) = read(&bytes[..cut]).await;
        let err = got.unwrap_err();
        assert_err(
            &err,
            ErrorKind::InvalidArgument,
            &["truncated", &blob_path(layer)],
        );
        assert!(!sink.blobs.contains_key(&crate::digest::Digest::of(layer)));
    }
    // Cut in a header, or before the end marker.
    for cut in [at - 100, bytes.len() - 1024] {
        let (got, _) = read(&bytes[..cut]).await;
        assert_err(
            &got.unwrap_err(),
            ErrorKind::InvalidArgument,
            &["truncated"],
        );
    }
}

#[tokio::test]
async fn a_blob_whose_content_is_not_its_digest() {
    let (img, mut files) = good();
    let path = blob_path(&img.layers[1]);
    let i = files.iter().position(|(p, _)| *p == path).unwrap();
    files[i].1[0] ^= 0xff;
    let (got, sink) = read(&archive(&files)).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &[&path, "digest"],
    );
    assert!(
        sink.blobs.len() < img.blobs.len(),
        "the sink stored no bad blob"
    );
    for (digest, bytes) in &sink.blobs {
        assert_eq!(&crate::digest::Digest::of(bytes), digest);
    }
}

#[tokio::test]
async fn a_blob_the_sink_skips_is_verified_all_the_same() {
    let (img, mut files) = good();
    let path = blob_path(&img.config);
    let mut sink = MemorySink::default();
    // The sink has the config already, so it does not read it.
    sink.blobs
        .insert(crate::digest::Digest::of(&img.config), img.config.clone());
    let i = files.iter().position(|(p, _)| *p == path).unwrap();
    files[i].1[0] ^= 0xff;
    let bytes = archive(&files);
    let options = Options {
        platform: amd64(),
        ..Options::default()
    };
    let err = read_archive(bytes.as_slice(), &mut sink, &options)
        .await
        .unwrap_err();
    assert_err(&err, ErrorKind::InvalidArgument, &[&path, "digest"]);
}

#[tokio::test]
async fn a_blob_of_another_size_than_its_descriptor() {
    let img = oci_image("linux", "amd64", &[(layer("a", b"a"), false)]);
    let mut entry = img.manifest.clone();
    entry["size"] = json!(entry["size"].as_u64().unwrap() + 1);
    let mut files = layout(vec![entry]);
    files.extend(img.blobs.clone());
    let (got, _) = read(&archive(&files)).await;
    let path = blob_path(&img.blobs.last().unwrap().1);
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &[&path, "bytes"],
    );
}

#[tokio::test]
async fn a_missing_blob() {
    let (img, mut files) = good();
    let layer = blob_path(&img.layers[0]);
    files.retain(|(p, _)| *p != layer);
    let (got, _) = read(&archive(&files)).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &[&layer, "not in the archive"],
    );

    // docker save: a layer path that is not there.
    let manifest = doc(&json!([{"Config": blob_path(&img.config), "Layers": ["gone/layer.tar"]}]));
    let mut files: Vec<_> = img.blobs.clone();
    files.push(("manifest.json".to_owned(), manifest));
    let (got, _) = read(&archive(&files)).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["gone/layer.tar"],
    );
}

#[tokio::test]
async fn a_layer_of_an_unknown_media_type() {
    let img = oci_image("linux", "amd64", &[(layer("a", b"a"), false)]);
    let mut m: serde_json::Value = serde_json::from_slice(&img.blobs.last().unwrap().1).unwrap();
    m["layers"][0]["mediaType"] = json!("application/vnd.example.layer.v1.tar+lz4");
    let manifest = doc(&m);
    let mut files = layout(vec![desc(OCI_MANIFEST, &manifest)]);
    files.extend(img.blobs[..img.blobs.len() - 1].iter().cloned());
    files.push((blob_path(&manifest), manifest));
    let (got, _) = read(&archive(&files)).await;
    let digest = sha(&img.layers[0]);
    assert_err(
        &got.unwrap_err(),
        ErrorKind::NotImplemented,
        &[&digest, "lz4"],
    );
}

#[tokio::test]
async fn no_image_for_this_host() {
    let (_, files) = good();
    let (got, _) = read_for(&archive(&files), Platform::new("linux", "s390x", "")).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::NotFound,
        &["linux/s390x", "linux/amd64"],
    );
}

#[tokio::test]
async fn an_invalid_reference() {
    let (img, _) = good();
    let mut files = layout(vec![annotated(
        img.manifest.clone(),
        &[(ANNOTATION_IMAGE_NAME, "Not/A Reference")],
    )]);
    files.extend(img.blobs.clone());
    let (got, _) = read(&archive(&files)).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["index.json", "Not/A Reference"],
    );

    let manifest = doc(&json!([{
        "Config": blob_path(&img.config), "RepoTags": ["UPPER:case"],
        "Layers": img.layers.iter().map(|l| blob_path(l)).collect::<Vec<_>>(),
    }]));
    let mut files = img.blobs.clone();
    files.push(("manifest.json".to_owned(), manifest));
    let (got, _) = read(&archive(&files)).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["manifest.json[0]", "UPPER"],
    );
}

#[tokio::test]
async fn oversized_json() {
    let (img, files) = good();
    let bytes = archive(&files);
    let small = |max_json| Options {
        platform: amd64(),
        max_json,
        ..Options::default()
    };
    // index.json over the limit.
    let index_len = files[1].1.len() as u64;
    let got = read_archive(
        bytes.as_slice(),
        &mut MemorySink::default(),
        &small(index_len - 1),
    )
    .await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["index.json", "more than"],
    );
    // A manifest over the limit (index.json within it).
    let manifest_len = img.manifest["size"].as_u64().unwrap();
    assert!(manifest_len > index_len);
    let got = read_archive(
        bytes.as_slice(),
        &mut MemorySink::default(),
        &small(index_len),
    )
    .await;
    let path = blob_path(&img.blobs.last().unwrap().1);
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &[&path, "more than"],
    );
    // Too much JSON-like content in all.
    let options = Options {
        platform: amd64(),
        max_kept: 10,
        ..Options::default()
    };
    let got = read_archive(bytes.as_slice(), &mut MemorySink::default(), &options).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["JSON-like"],
    );
}

#[tokio::test]
async fn a_failing_sink_stops_the_read() {
    let (img, files) = good();
    let layer = blob_path(&img.layers[0]);
    let mut sink = MemorySink {
        fail_on: Some(layer.clone()),
        ..MemorySink::default()
    };
    let options = Options {
        platform: amd64(),
        ..Options::default()
    };
    let bytes = archive(&files);
    let err = read_archive(bytes.as_slice(), &mut sink, &options)
        .await
        .unwrap_err();
    assert_err(&err, ErrorKind::Unavailable, &["content store"]);
    let after = files.iter().position(|(p, _)| *p == layer).unwrap() + 1;
    for (path, _) in &files[after..] {
        assert!(
            !sink.progress.iter().any(|(e, _)| e == path),
            "{path} offered after the failure"
        );
    }
}

#[tokio::test]
async fn not_an_image_archive() {
    let (got, _) = read(&archive(&[("hello.txt".to_owned(), b"hi".to_vec())])).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["oci-layout", "manifest.json"],
    );
    let (got, _) = read(&[0x55u8; 3000]).await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["not a tar header"],
    );
    let (got, _) = read(&archive(&[("blobs/sha512/ab".to_owned(), b"x".to_vec())])).await;
    assert_err(&got.unwrap_err(), ErrorKind::InvalidArgument, &["sha512"]);
    let (got, _) = read(&archive(&[(
        "oci-layout".to_owned(),
        b"{\"imageLayoutVersion\":\"9\"}".to_vec(),
    )]))
    .await;
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["oci-layout", "version"],
    );
}

/// Indexes that list the same index many times, nested: a walk that
/// follows every path reads K^3 documents. Resolving must stop with an
/// error, within seconds, not follow them all.
#[tokio::test]
async fn indexes_that_fan_out_do_not_hang() {
    const K: usize = 150;
    // A manifest for another platform, listed without a platform: every
    // path down to it must be tried.
    let img = oci_image("linux", "s390x", &[(layer("a", b"a"), false)]);
    let mut manifest = img.manifest.clone();
    manifest.as_object_mut().unwrap().remove("platform");
    let mut files = img.blobs.clone();
    let mut child = manifest;
    for _ in 0..3 {
        let index = doc(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": vec![child.clone(); K],
        }));
        child = desc(OCI_INDEX, &index);
        files.push((blob_path(&index), index));
    }
    let mut all = layout(vec![annotated(
        child,
        &[(ANNOTATION_IMAGE_NAME, "example.com/fan:1")],
    )]);
    all.extend(files);
    let bytes = archive(&all);
    // (Resolving does not await: a timeout could not stop it; the time is
    // measured instead. Without a bound this takes minutes.)
    let started = std::time::Instant::now();
    let (got, _) = read(&bytes).await;
    let took = started.elapsed();
    assert_err(
        &got.unwrap_err(),
        ErrorKind::InvalidArgument,
        &["documents"],
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}
