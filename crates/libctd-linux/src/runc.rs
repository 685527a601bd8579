//! [`RuncOptions`]: the runc shim's options, the Linux extension of
//! [`CreateOptions`](libctd_core::CreateOptions).

use libctd_core::{Error, Result, RuntimeOptions};
use prost::{Message, Name};

use crate::convert::RuncOptionsProto;

/// Options of containerd's runc shim (`containerd.runc.v1.Options`), given
/// to [`Client::create`](libctd_core::Client::create) through
/// [`CreateOptions::with_runtime_options`](libctd_core::CreateOptions::with_runtime_options).
///
/// ```
/// use libctd_core::CreateOptions;
/// use libctd_linux::RuncOptions;
///
/// let mut runc = RuncOptions::default();
/// runc.binary_name = Some("/usr/local/bin/runc".into());
/// runc.no_new_keyring = true;
/// let options = CreateOptions::new().with_runtime_options(runc);
/// assert_eq!(
///     options.runtime_options.unwrap().type_url(),
///     "containerd.runc.v1.Options"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuncOptions {
    /// The runc binary to use instead of `runc` (empty: `runc`).
    pub binary_name: Option<String>,
    /// runc's state root, an absolute path (default: under the remote's
    /// state directory).
    pub root: Option<String>,
    /// Use systemd to manage cgroups.
    pub systemd_cgroup: bool,
    /// Do not use pivot_root.
    pub no_pivot_root: bool,
    /// Do not create a session keyring.
    pub no_new_keyring: bool,
    /// Owner of the stdio FIFOs.
    pub io_uid: u32,
    /// Group of the stdio FIFOs.
    pub io_gid: u32,
}

impl From<RuncOptions> for RuntimeOptions {
    fn from(options: RuncOptions) -> Self {
        let proto = proto_of(&options);
        RuntimeOptions::new(RuncOptionsProto::full_name(), proto.encode_to_vec())
    }
}

/// The runc shim's message for `o`.
fn proto_of(o: &RuncOptions) -> RuncOptionsProto {
    RuncOptionsProto {
        binary_name: o.binary_name.clone().unwrap_or_default(),
        root: o.root.clone().unwrap_or_default(),
        systemd_cgroup: o.systemd_cgroup,
        no_pivot_root: o.no_pivot_root,
        no_new_keyring: o.no_new_keyring,
        io_uid: o.io_uid,
        io_gid: o.io_gid,
        ..RuncOptionsProto::default()
    }
}

/// The runc options `options` carry, checked: only the runc shim's type is
/// understood, and its binary and root must be usable.
pub(crate) fn decode(options: &RuntimeOptions) -> Result<RuncOptionsProto> {
    // containerd's type URLs may carry a domain (`types.googleapis.com/`).
    let name = options.type_url().rsplit('/').next().unwrap_or_default();
    if name != RuncOptionsProto::full_name() {
        return Err(Error::invalid_argument(format!(
            "runtime options of type {:?} are not understood: the Linux backend takes {} (libctd_linux::RuncOptions)",
            options.type_url(),
            RuncOptionsProto::full_name()
        )));
    }
    let proto = RuncOptionsProto::decode(options.value()).map_err(|e| {
        Error::invalid_argument("the runc options do not decode as containerd.runc.v1.Options")
            .with_source(e)
    })?;
    if proto.binary_name.contains('\0') {
        return Err(Error::invalid_argument(format!(
            "runc binary {:?} must be a name or path without NUL",
            proto.binary_name
        )));
    }
    if !proto.root.is_empty() && (!proto.root.starts_with('/') || proto.root.contains('\0')) {
        return Err(Error::invalid_argument(format!(
            "runc root {:?} must be an absolute path",
            proto.root
        )));
    }
    Ok(proto)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;

    #[test]
    fn runc_options_round_trip_through_runtime_options() {
        let runc = RuncOptions {
            binary_name: Some("/opt/runc".into()),
            root: Some("/run/my-runc".into()),
            systemd_cgroup: true,
            io_uid: 7,
            ..RuncOptions::default()
        };
        let proto = decode(&runc.into()).unwrap();
        assert_eq!(proto.binary_name, "/opt/runc");
        assert_eq!(proto.root, "/run/my-runc");
        assert!(proto.systemd_cgroup);
        assert_eq!(proto.io_uid, 7);
        // With a domain, as Go's typeurl writes it.
        let domained = RuntimeOptions::new(
            "types.googleapis.com/containerd.runc.v1.Options",
            proto.encode_to_vec(),
        );
        assert_eq!(decode(&domained).unwrap(), proto);
    }

    #[test]
    fn runc_options_encode_as_before() {
        // The fields libctd sets, with the tags of containerd's oci.proto;
        // the empty ones (proto3) are not sent.
        let o = RuncOptions {
            binary_name: Some("runc".into()),
            root: Some("/r".into()),
            systemd_cgroup: true,
            io_uid: 7,
            ..RuncOptions::default()
        };
        let bytes = proto_of(&o).encode_to_vec();
        assert_eq!(
            bytes,
            [
                0x20, 7, // io_uid = 4
                0x32, 4, b'r', b'u', b'n', b'c', // binary_name = 6
                0x3a, 2, b'/', b'r', // root = 7
                0x48, 1, // systemd_cgroup = 9
            ]
        );
    }

    #[test]
    fn what_is_not_runc_options_is_refused() {
        let refused = |o: RuntimeOptions, says: &str| {
            let e = decode(&o).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(says), "{says:?} not in {e}");
        };
        refused(
            RuntimeOptions::new("example.com.Other", vec![]),
            "not understood",
        );
        refused(
            RuntimeOptions::new(RuncOptionsProto::full_name(), vec![0xff, 0xff]),
            "do not decode",
        );
        let relative = RuncOptions {
            root: Some("run/runc".into()),
            ..RuncOptions::default()
        };
        refused(relative.into(), "absolute");
        let nul = RuncOptions {
            binary_name: Some("ru\0nc".into()),
            ..RuncOptions::default()
        };
        refused(nul.into(), "without NUL");
    }
}
