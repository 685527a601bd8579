//! Property tests that stand in for fuzz targets: each decoder of input
//! from outside (containerd's event payloads, metrics and process
//! details, a container record's runtime options and spec, gRPC statuses, an engine's runc
//! options and ids) takes arbitrary input without panicking, and what it
//! accepts is well-formed (image archives: libctd-image's own fuzz module). `LIBCTD_FUZZ_CASES` sets the number of cases
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
        runtime_args in proptest::collection::vec(".{0,12}", 0..3),
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
            runtime_args,
        };
        if let Ok(decoded) = crate::runc::decode(&o.into()) {
            let proto = decoded.options;
            prop_assert!(!proto.binary_name.contains('\0'));
            prop_assert!(proto.root.is_empty() || proto.root.starts_with('/'));
            prop_assert!(decoded.runtime_args.iter().all(|a| a.starts_with('-') && !a.contains('\0')));
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
