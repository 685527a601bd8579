//! Property tests that stand in for fuzz targets: each decoder of input
//! from outside (containerd's event payloads, metrics and process
//! details, a container record's runtime options and spec, gRPC statuses, an engine's runc
//! options and ids, image archives: tar headers, pax records, whole archives,
//! image JSON documents and names) takes arbitrary input without panicking, and what it
//! accepts is well-formed. `LIBCTD_FUZZ_CASES` sets the number of cases
//! per target (default 100,000).

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{validate_container_id, validate_process_id};
use proptest::prelude::*;
use prost::Message;
use prost_types::Any;

use crate::convert::{self, RuncOptionsProto};

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

/// Type URLs the decoders know, in the forms containerd sends, and others.
const URLS: [&str; 12] = [
    "containerd.events.TaskExit",
    "/containerd.events.TaskExit",
    "containerd.events.TaskOOM",
    "containerd.events.TaskCreate",
    "containerd.events.TaskStart",
    "containerd.events.TaskExecAdded",
    "containerd.events.TaskExecStarted",
    "containerd.events.TaskPaused",
    "containerd.events.TaskResumed",
    "io.containerd.cgroups.v1.Metrics",
    "io.containerd.cgroups.v2.Metrics",
    "containerd.events.ContainerCreate",
];

/// Bytes that are often a protobuf message: random varint fields and
/// length-delimited runs, nested, as well as plain noise.
fn protobuf_like() -> impl Strategy<Value = Vec<u8>> {
    let field = (
        1u32..40,
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(tag, varint, bytes)| {
            let mut out = Vec::new();
            if varint % 2 == 0 {
                prost::encoding::encode_key(tag, prost::encoding::WireType::Varint, &mut out);
                prost::encoding::encode_varint(varint, &mut out);
            } else {
                prost::encoding::encode_key(
                    tag,
                    prost::encoding::WireType::LengthDelimited,
                    &mut out,
                );
                prost::encoding::encode_varint(bytes.len() as u64, &mut out);
                out.extend_from_slice(&bytes);
            }
            out
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(field, 0..12).prop_map(|f| f.concat()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn event_payloads(url in prop::sample::select(&URLS[..]), value in protobuf_like()) {
        let any = Any { type_url: url.to_owned(), value };
        let _ = crate::events::decode(&any);
    }

    #[test]
    fn metrics(url in prop::sample::select(&URLS[..]), value in protobuf_like()) {
        let any = Any { type_url: url.to_owned(), value };
        if let Ok(stats) = convert::decode_metrics(&any) {
            prop_assert!(stats.blkio.iter().all(|b| !b.op.is_empty()));
        }
    }

    #[test]
    fn record_runtime_options(value in protobuf_like()) {
        let any = Any { type_url: "containerd.runc.v1.Options".to_owned(), value };
        if let Some(o) = convert::decode_any::<RuncOptionsProto>(&any) {
            // What decodes re-encodes to the same message.
            let again = RuncOptionsProto::decode(o.encode_to_vec().as_slice());
            prop_assert_eq!(again.ok(), Some(o));
        }
    }

    #[test]
    fn list_pids_details(
        url in prop::sample::select(&["containerd.runc.v1.ProcessDetails", "/containerd.runc.v1.ProcessDetails", "containerd.runc.v1.Options"][..]),
        value in protobuf_like(),
    ) {
        let any = Any { type_url: url.to_owned(), value };
        if let Some(exec_id) = convert::exec_id_of(Some(&any)) {
            prop_assert!(!exec_id.is_empty());
        }
    }

    #[test]
    fn record_specs(json in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        "\\{\"ociVersion\":\"1.0.2\",\"root\":\\{\"path\":\"[a-z/.]{0,12}\"\\},\"process\":\\{\"args\":\\[\"[a-z]{0,5}\"\\],\"cwd\":\"/\"\\}\\}"
            .prop_map(String::into_bytes),
    ]) {
        if let Ok(spec) = serde_json::from_slice::<Spec>(&json) {
            let _ = crate::validate::spec(&spec);
        }
    }

    #[test]
    fn grpc_statuses(code in 0i32..20, message in ".{0,80}") {
        let e = convert::status_error(tonic::Status::new(tonic::Code::from(code), message));
        prop_assert!(!e.message().is_empty());
    }

    #[test]
    fn engine_runc_options(
        binary in proptest::option::of(".{0,20}"),
        root in proptest::option::of(".{0,20}"),
        flags in any::<(bool, bool, bool, u32, u32)>(),
    ) {
        let (systemd_cgroup, no_pivot_root, no_new_keyring, io_uid, io_gid) = flags;
        let o = crate::RuncOptions {
            binary_name: binary,
            root,
            systemd_cgroup,
            no_pivot_root,
            no_new_keyring,
            io_uid,
            io_gid,
        };
        if let Ok(proto) = crate::runc::decode(&o.into()) {
            prop_assert!(!proto.binary_name.contains('\0'));
            prop_assert!(proto.root.is_empty() || proto.root.starts_with('/'));
        }
    }

    #[test]
    fn ids(id in prop_oneof![".{0,90}", "[a-zA-Z0-9._-]{0,90}"]) {
        if validate_container_id(&id).is_ok() {
            prop_assert!(id.len() <= 76 && !id.contains('/') && !id.starts_with('.'));
        }
        if validate_process_id(&id).is_ok() {
            prop_assert!(!id.contains('/') && !id.contains('\0'));
        }
    }
}

/// A small valid OCI archive (one image, two layers), to mutate.
fn image_archive() -> &'static [u8] {
    use crate::images::tests::{archive, layer, layout, oci_image};
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
        if let Ok(Some(h)) = crate::images::tar::parse_header(&block, "x") {
            prop_assert!(!h.name.contains(&0) && i64::try_from(h.size).is_ok());
        }
    }

    #[test]
    fn pax_records(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "([0-9]{1,3} (path|size|linkpath|x)=[a-z0-9/]{0,9}\n){0,4}".prop_map(String::into_bytes),
    ]) {
        if let Some(pax) = crate::images::tar::parse_pax(&body) {
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
        let mut sink = crate::images::sink::MemorySink::default();
        let options = crate::images::archive::Options {
            platform: crate::images::platform::Platform::new("linux", "amd64", ""),
            ..Default::default()
        };
        if let Ok(archive) = rt.block_on(crate::images::archive::read_archive(bytes.as_slice(), &mut sink, &options)) {
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
        use crate::images::descriptor::{decode, doc_kind, Index, Manifest};
        if let Ok(c) = crate::images::config::ImageConfig::parse(&json, "x") {
            prop_assert_eq!(c.chain_ids().len(), c.rootfs.diff_ids.len());
        }
        let _ = decode::<Manifest>(&json, "a manifest", "x");
        let _ = decode::<Index>(&json, "an index", "x");
        let _ = doc_kind("", &json);
    }

    #[test]
    fn image_names(name in prop_oneof![".{0,40}", "[a-zA-Z0-9._:/@-]{0,40}"]) {
        if let Ok(n) = crate::images::reference::normalise(&name) {
            prop_assert!(n.contains('/') && (n.contains(':') || n.contains('@')));
            prop_assert_eq!(crate::images::reference::normalise(&n).ok(), Some(n));
        }
    }
}
