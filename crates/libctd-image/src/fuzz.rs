//! Property tests that stand in for fuzz targets: each decoder of an
//! archive's input (tar headers, pax records, whole archives with bytes
//! changed or cut short, image JSON documents, image names) takes arbitrary
//! input without panicking, and what it accepts is well-formed.
//! `LIBCTD_FUZZ_CASES` sets the number of cases per target (default 100,000).

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("LIBCTD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A small valid OCI archive (one image, two layers), to mutate.
fn image_archive() -> &'static [u8] {
    use crate::tests::{archive, layer, layout, oci_image};
    static ARCHIVE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let img = oci_image(
            "linux",
            "amd64",
            &[(layer("a", b"a"), true), (layer("b", b"b"), false)],
        );
        let mut files = layout(vec![img.manifest]);
        files.extend(img.blobs);
        archive(&files)
    })
}

/// A tar header block: noise, or a real header with bytes changed and
/// (half of the time) its checksum made right again.
fn tar_block() -> impl Strategy<Value = [u8; 512]> {
    let noise = prop::collection::vec(any::<u8>(), 512).prop_map(|v| {
        let mut block = [0u8; 512];
        block.copy_from_slice(&v);
        block
    });
    let mutated = (
        prop::collection::vec((0usize..512, any::<u8>()), 1..8),
        any::<bool>(),
    )
        .prop_map(|(edits, fix)| {
            let mut block = [0u8; 512];
            block.copy_from_slice(&image_archive()[..512]);
            for (i, b) in edits {
                block[i] = b;
            }
            if fix {
                block[148..156].fill(b' ');
                let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
                block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            }
            block
        });
    prop_oneof![noise, mutated]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tar_headers(block in tar_block()) {
        if let Ok(Some(h)) = crate::tar::parse_header(&block, "x") {
            prop_assert!(!h.name.contains(&0) && i64::try_from(h.size).is_ok());
        }
    }

    #[test]
    fn pax_records(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "([0-9]{1,3} (path|size|linkpath|x)=[a-z0-9/]{0,9}\n){0,4}".prop_map(String::into_bytes),
    ]) {
        if let Some(pax) = crate::tar::parse_pax(&body) {
            prop_assert!(pax.size.is_none_or(|s| i64::try_from(s).is_ok()));
        }
    }

    #[test]
    fn image_archives(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        whole in any::<bool>(),
    ) {
        let mut bytes = image_archive().to_vec();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if !whole {
            bytes.truncate(cut.index(bytes.len()));
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut sink = crate::sink::MemorySink::default();
        let options = crate::archive::Options {
            platform: crate::platform::Platform::new("linux", "amd64", ""),
            ..Default::default()
        };
        if let Ok(archive) = rt.block_on(crate::archive::read_archive(bytes.as_slice(), &mut sink, &options)) {
            // Whatever was accepted is all in the sink.
            for image in &archive.images {
                prop_assert!(sink.blobs.contains_key(&image.manifest.digest));
                for l in &image.layers {
                    prop_assert!(sink.blobs.contains_key(&l.descriptor.digest));
                }
            }
        }
    }

    #[test]
    fn image_json(json in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        "\\{\"(architecture|os|config|rootfs|layers|manifests|mediaType|schemaVersion)\":(null|\"[a-z]{0,4}\"|\\[\\]|\\{\"type\":\"layers\",\"diff_ids\":\\[\\]\\}|2)\\}"
            .prop_map(String::into_bytes),
    ]) {
        use crate::descriptor::{decode, doc_kind, Index, Manifest};
        if let Ok(c) = crate::config::ImageConfig::parse(&json, "x") {
            prop_assert_eq!(c.chain_ids().len(), c.rootfs.diff_ids.len());
        }
        let _ = decode::<Manifest>(&json, "a manifest", "x");
        let _ = decode::<Index>(&json, "an index", "x");
        let _ = doc_kind("", &json);
    }

    #[test]
    fn image_names(name in prop_oneof![".{0,40}", "[a-zA-Z0-9._:/@-]{0,40}"]) {
        if let Ok(n) = crate::reference::normalise(&name) {
            prop_assert!(n.contains('/') && (n.contains(':') || n.contains('@')));
            prop_assert_eq!(crate::reference::normalise(&n).ok(), Some(n));
        }
    }
}
