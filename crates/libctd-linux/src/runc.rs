//! [`RuncOptions`]: the runc shim's options, the Linux extension of
//! [`CreateOptions`](libctd_core::CreateOptions), and the flags of the
//! runtime binary the shim runs (which the shim's options cannot carry).

use libctd_core::{Error, Result, RuntimeOptions};
use prost::{Message, Name};

use crate::convert::RuncOptionsProto;

/// The runc shim's options with the runtime binary's own flags: libctd's
/// message (`libctd.linux.v1.RuncOptions`), what [`RuncOptions`] become
/// when [`RuncOptions::runtime_args`] is set. It never reaches containerd:
/// `create` sends the shim its `options`, with a binary that adds the
/// flags.
#[derive(Clone, PartialEq, Eq, prost::Message)]
struct WithRuntimeArgs {
    /// The shim's options.
    #[prost(message, optional, tag = "1")]
    options: Option<RuncOptionsProto>,
    /// [`RuncOptions::runtime_args`].
    #[prost(string, repeated, tag = "2")]
    runtime_args: Vec<String>,
}

impl Name for WithRuntimeArgs {
    const NAME: &'static str = "RuncOptions";
    const PACKAGE: &'static str = "libctd.linux.v1";
}

/// What [`decode`] found in an engine's runtime options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The runc shim's options.
    pub options: RuncOptionsProto,
    /// The runtime binary's own flags (none: the shim runs the binary as
    /// it is).
    pub runtime_args: Vec<String>,
}

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
///
/// # Other runtimes
///
/// The shim runs any binary that takes runc's command line: `binary_name`
/// selects it (crun, gVisor's runsc...). The shim's options have no field
/// for that binary's own flags; [`runtime_args`](Self::runtime_args) gives
/// them, and libctd then hands the shim, as its binary, a small script
/// under the remote's state directory (`runtimes/`) that runs the binary
/// with those flags first. gVisor needs `--network=none` when the
/// container has no network namespace of its own:
///
/// ```
/// use libctd_core::CreateOptions;
/// use libctd_linux::RuncOptions;
///
/// let runsc = RuncOptions::binary("runsc").with_runtime_args(["--network=none"]);
/// assert_eq!(runsc.runtime_args, ["--network=none"]);
/// let options = CreateOptions::new().with_runtime_options(runsc);
/// // libctd's own message: it carries the flags to `create`, which sends
/// // containerd the shim's options alone.
/// assert_eq!(
///     options.runtime_options.unwrap().type_url(),
///     "libctd.linux.v1.RuncOptions"
/// );
/// ```
///
/// A runtime that does not exist fails with `InvalidArgument`: at
/// `create` when it is a path, or when `runtime_args` are set (a name is
/// then looked up in the engine's `PATH`); otherwise at `start`, when the
/// shim does not find it. A runtime that refuses to create or start the
/// container (crun on a cgroup v1 host, runsc without `--network=none`)
/// fails `start` with `System`; either way nothing is left behind.
///
/// Where runsc (Debian's 20221219 release, checked on containerd 1.6, 1.7
/// and 2.1) differs from runc: `update_resources` fails `NotImplemented`
/// (it has no `update` command); `create_checkpoint` fails
/// `NotImplemented` (libctd refuses it: its `checkpoint --leave-running`
/// never returns); `list_pids` and `summary` give the pids of gVisor's own
/// kernel (the init is 1, not the pid `start` returned); and a container
/// id can run in one runsc sandbox at a time on the host, whatever the
/// namespace (a second start fails `System`, "address already in use").
/// Pause, resume, OOM events and stats work as on runc.
///
/// libctd knows runsc by its binary's file name only: `binary_name`'s last
/// path component starts with `runsc` (`runsc`, `/usr/bin/runsc`,
/// `runsc-debug`). A runsc under another name, or behind a wrapper script
/// of the engine's own, is not recognised: its `create_checkpoint` is sent
/// to the shim, and since checkpoints carry no deadline, that call then
/// does not return. Name such a binary so that it starts with `runsc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuncOptions {
    /// The runtime binary to use instead of `runc` (empty: `runc`): a
    /// name the shim finds in its `PATH`, or an absolute path.
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
    /// The runtime binary's own global flags, each one argument starting
    /// with `-` (`--network=none`), placed before each of its commands
    /// (`runsc --network=none create ...`). See
    /// [Other runtimes](#other-runtimes).
    pub runtime_args: Vec<String>,
}

impl RuncOptions {
    /// Options that run `binary_name` (a name or an absolute path) instead
    /// of `runc`, everything else at its default.
    pub fn binary(binary_name: impl Into<String>) -> Self {
        Self {
            binary_name: Some(binary_name.into()),
            ..Self::default()
        }
    }

    /// These options with the runtime binary's own flags `args`
    /// ([`runtime_args`](Self::runtime_args)).
    pub fn with_runtime_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.runtime_args = args.into_iter().map(Into::into).collect();
        self
    }
}

impl From<RuncOptions> for RuntimeOptions {
    fn from(options: RuncOptions) -> Self {
        let proto = proto_of(&options);
        if options.runtime_args.is_empty() {
            return RuntimeOptions::new(RuncOptionsProto::full_name(), proto.encode_to_vec());
        }
        let with = WithRuntimeArgs {
            options: Some(proto),
            runtime_args: options.runtime_args,
        };
        RuntimeOptions::new(WithRuntimeArgs::full_name(), with.encode_to_vec())
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

/// Whether the shim's binary is gVisor's runsc: its file name starts with
/// `runsc` (a name, a path, or the script that adds its flags, which is
/// named after it). A guess by name, documented on [`RuncOptions`]: the
/// binary is never run to ask (that would cost every create a process).
pub(crate) fn is_runsc(binary_name: &str) -> bool {
    binary_name
        .rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("runsc"))
}

/// The runc options `options` carry, checked: only the runc shim's type
/// (and libctd's, which adds the runtime's flags) is understood, and its
/// binary, root and flags must be usable.
pub(crate) fn decode(options: &RuntimeOptions) -> Result<Decoded> {
    // containerd's type URLs may carry a domain (`types.googleapis.com/`).
    let name = options.type_url().rsplit('/').next().unwrap_or_default();
    let decoded = if name == RuncOptionsProto::full_name() {
        let options = RuncOptionsProto::decode(options.value()).map_err(|e| {
            Error::invalid_argument("the runc options do not decode as containerd.runc.v1.Options")
                .with_source(e)
        })?;
        Decoded {
            options,
            runtime_args: Vec::new(),
        }
    } else if name == WithRuntimeArgs::full_name() {
        let with = WithRuntimeArgs::decode(options.value()).map_err(|e| {
            Error::invalid_argument(format!(
                "the runc options do not decode as {}",
                WithRuntimeArgs::full_name()
            ))
            .with_source(e)
        })?;
        Decoded {
            options: with.options.unwrap_or_default(),
            runtime_args: with.runtime_args,
        }
    } else {
        return Err(Error::invalid_argument(format!(
            "runtime options of type {:?} are not understood: the Linux backend takes {} (libctd_linux::RuncOptions)",
            options.type_url(),
            RuncOptionsProto::full_name()
        )));
    };
    check(&decoded)?;
    Ok(decoded)
}

/// The binary, root and flags of `decoded` are usable.
fn check(decoded: &Decoded) -> Result<()> {
    let proto = &decoded.options;
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
    for arg in &decoded.runtime_args {
        if !arg.starts_with('-') || arg.contains('\0') {
            return Err(Error::invalid_argument(format!(
                "runtime argument {arg:?} must be one flag of the runtime binary (starting with '-', without NUL), such as --network=none"
            )));
        }
    }
    Ok(())
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
        let decoded = decode(&runc.into()).unwrap();
        assert!(decoded.runtime_args.is_empty());
        let proto = decoded.options;
        assert_eq!(proto.binary_name, "/opt/runc");
        assert_eq!(proto.root, "/run/my-runc");
        assert!(proto.systemd_cgroup);
        assert_eq!(proto.io_uid, 7);
        // With a domain, as Go's typeurl writes it.
        let domained = RuntimeOptions::new(
            "types.googleapis.com/containerd.runc.v1.Options",
            proto.encode_to_vec(),
        );
        assert_eq!(decode(&domained).unwrap().options, proto);
    }

    #[test]
    fn runsc_is_known_by_its_file_name() {
        for yes in [
            "runsc",
            "/usr/bin/runsc",
            "/state/runtimes/runsc-0123456789abcdef",
        ] {
            assert!(is_runsc(yes), "{yes}");
        }
        for no in ["", "runc", "/usr/bin/crun", "/opt/runsc/bin/runc"] {
            assert!(!is_runsc(no), "{no}");
        }
    }

    #[test]
    fn runtime_args_travel_in_libctds_message() {
        let runsc = RuncOptions {
            no_new_keyring: true,
            ..RuncOptions::binary("runsc").with_runtime_args(["--network=none", "--debug"])
        };
        let options: RuntimeOptions = runsc.into();
        assert_eq!(options.type_url(), "libctd.linux.v1.RuncOptions");
        let decoded = decode(&options).unwrap();
        assert_eq!(decoded.runtime_args, ["--network=none", "--debug"]);
        assert_eq!(decoded.options.binary_name, "runsc");
        assert!(decoded.options.no_new_keyring);
        // Field 1: the shim's options as a message; field 2: each flag.
        let bytes = WithRuntimeArgs {
            options: Some(RuncOptionsProto {
                no_new_keyring: true,
                ..RuncOptionsProto::default()
            }),
            runtime_args: vec!["-x".into()],
        }
        .encode_to_vec();
        assert_eq!(bytes, [0x0a, 2, 0x10, 1, 0x12, 2, b'-', b'x']);
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
        for bad in ["network=none", "", "--a\0b"] {
            refused(
                RuncOptions::binary("runsc").with_runtime_args([bad]).into(),
                "one flag of the runtime binary",
            );
        }
        refused(
            RuntimeOptions::new("libctd.linux.v1.RuncOptions", vec![0x0a, 0xff]),
            "do not decode as libctd.linux.v1.RuncOptions",
        );
    }
}
