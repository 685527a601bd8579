//! (tests) Image archives built here (with the `tar` and `flate2` crates,
//! not with the reader under test), read back through a [`MemorySink`].

mod bad;
mod docker;
mod oci;
mod tar_format;

use std::io::Write as _;

use libctd_core::Result;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::archive::{Options, read_archive};
use crate::descriptor::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::image::Archive;
use crate::platform::Platform;
use crate::sink::MemorySink;

/// `sha256:<hex>` of `bytes`, computed here.
pub(crate) fn sha(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The OCI blob path of `bytes`.
pub(crate) fn blob_path(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", &sha(bytes)["sha256:".len()..])
}

/// A layer: a tar holding `name` with `content`.
pub(crate) fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

/// `bytes`, gzip-compressed.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tar archive of `files`, in order (ustar headers; long names as GNU does).
pub(crate) fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A JSON document's bytes.
pub(crate) fn doc(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A descriptor of `bytes`.
pub(crate) fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha(bytes), "size": bytes.len()})
}

/// One image's blobs, and its manifest's descriptor.
pub(crate) struct Built {
    /// (path, content) of the config, the layers and the manifest.
    pub(crate) blobs: Vec<(String, Vec<u8>)>,
    pub(crate) manifest: Value,
    pub(crate) layers: Vec<Vec<u8>>,
    pub(crate) config: Vec<u8>,
}

/// An OCI image for `os/arch` of `layers` (tar, gzip?): config, layers, manifest.
pub(crate) fn oci_image(os: &str, arch: &str, layers: &[(Vec<u8>, bool)]) -> Built {
    let diff_ids: Vec<String> = layers.iter().map(|(t, _)| sha(t)).collect();
    let config = doc(&json!({
        "architecture": arch, "os": os,
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }));
    let blobs_of: Vec<(Vec<u8>, &str)> = layers
        .iter()
        .map(|(t, gz)| {
            if *gz {
                (gzip(t), OCI_LAYER_GZIP)
            } else {
                (t.clone(), OCI_LAYER)
            }
        })
        .collect();
    let manifest = doc(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": blobs_of.iter().map(|(b, mt)| desc(mt, b)).collect::<Vec<_>>(),
    }));
    let mut blobs = vec![(blob_path(&config), config.clone())];
    blobs.extend(blobs_of.iter().map(|(b, _)| (blob_path(b), b.clone())));
    blobs.push((blob_path(&manifest), manifest.clone()));
    Built {
        blobs,
        manifest: desc(OCI_MANIFEST, &manifest),
        layers: blobs_of.into_iter().map(|(b, _)| b).collect(),
        config,
    }
}

/// `oci-layout` and an `index.json` listing `manifests`.
pub(crate) fn layout(manifests: Vec<Value>) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "oci-layout".to_owned(),
            doc(&json!({"imageLayoutVersion": "1.0.0"})),
        ),
        (
            "index.json".to_owned(),
            doc(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})),
        ),
    ]
}

/// `v` with annotations `pairs` added.
pub(crate) fn annotated(mut v: Value, pairs: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    v["annotations"] = Value::Object(map);
    v
}

/// The platform the tests read for.
pub(crate) fn amd64() -> Platform {
    Platform::new("linux", "amd64", "")
}

/// Reads `bytes` for `platform` into a fresh sink.
pub(crate) async fn read_for(bytes: &[u8], platform: Platform) -> (Result<Archive>, MemorySink) {
    let mut sink = MemorySink::default();
    let options = Options {
        platform,
        ..Options::default()
    };
    let got = read_archive(bytes, &mut sink, &options).await;
    (got, sink)
}

/// Reads `bytes` for linux/amd64.
pub(crate) async fn read(bytes: &[u8]) -> (Result<Archive>, MemorySink) {
    read_for(bytes, amd64()).await
}
