//! The runc shim's messages (protobuf package `containerd.runc.v1`): the
//! options a task is created with, the options of a checkpoint, and the
//! details of a process that `ListPids` returns.

/// The runc shim's options: `CreateTaskRequest.options`, an `Any` named
/// `containerd.runc.v1.Options`.
///
/// libctd decodes them from an engine's `RuntimeOptions` (the bytes
/// `RuncOptions` makes, or any the engine made itself), checks `binary_name`
/// and `root`, fills in `root` when it is empty, sets `criu_image_path` to
/// restore a checkpoint, and encodes them again for every task create. So
/// every field the shim knows is declared, including those libctd never
/// looks at: prost drops what a message does not declare, and a caller's
/// setting would be lost on the way.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Options {
    /// runc runs the container without `pivot_root` (`RuncOptions::no_pivot_root`).
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    /// runc gives the container no session keyring of its own.
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    /// A cgroup for the shim process itself; passed through.
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    /// The uid that owns the stdio pipes the shim creates.
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    /// The gid that owns the stdio pipes the shim creates.
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    /// The runc binary the shim runs; empty is `runc` from its `PATH`.
    /// libctd refuses a NUL in it.
    #[prost(string, tag = "6")]
    pub binary_name: String,
    /// runc's state directory (`runc --root`). libctd puts one under the
    /// remote's state directory when it is empty, and refuses a relative
    /// path.
    #[prost(string, tag = "7")]
    pub root: String,
    /// The CRIU binary, which the shims of containerd 1.6 and 1.7 read;
    /// containerd 2.x no longer has the field. Passed through.
    #[prost(string, tag = "8")]
    pub criu_path: String,
    /// runc manages the container's cgroups through systemd.
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
    /// The checkpoint image to restore the task from: libctd sets it when
    /// an engine starts a container from a checkpoint directory.
    #[prost(string, tag = "10")]
    pub criu_image_path: String,
    /// CRIU's work directory; passed through.
    #[prost(string, tag = "11")]
    pub criu_work_path: String,
    /// The address a shim serves its task API on, in the newer lines
    /// (containerd 1.6 does not know fields 12 and 13; libctd leaves them
    /// empty, and proto3 does not send an empty field). Passed through.
    #[prost(string, tag = "12")]
    pub task_api_address: String,
    /// The version of the task API at `task_api_address`; passed through.
    #[prost(uint32, tag = "13")]
    pub task_api_version: u32,
}

/// The runc shim's checkpoint options: `CheckpointTaskRequest.options`, an
/// `Any` named `containerd.runc.v1.CheckpointOptions`.
///
/// libctd builds them afresh for each checkpoint and never decodes any, so
/// only the two fields it sets are declared; the shim takes the others as
/// unset.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[non_exhaustive]
pub(crate) struct CheckpointOptions {
    /// The container stops once its checkpoint is written (the engine's
    /// `exit`).
    #[prost(bool, tag = "1")]
    pub exit: bool,
    /// The directory CRIU writes the image to: the engine's checkpoint
    /// directory.
    #[prost(string, tag = "8")]
    pub image_path: String,
}

/// What the runc shim puts in a `ListPids` answer's `ProcessInfo.info` for
/// an exec process (it sends none for the init process): libctd reads the
/// exec id to tell the engine which process a pid is.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct ProcessDetails {
    /// The exec process's id.
    #[prost(string, tag = "1")]
    pub exec_id: String,
}

package!(
    "containerd.runc.v1":
    Options = "Options",
    CheckpointOptions = "CheckpointOptions",
    ProcessDetails = "ProcessDetails",
);

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::golden::both_ways;

    /// `Options` with every field set, field 8 included.
    const OPTIONS: &[u8] = &[
        0x08, 0x01, 0x10, 0x01, 0x1a, 0x0d, 0x73, 0x68, 0x69, 0x6d, 0x5f, 0x63, 0x67, 0x72, 0x6f,
        0x75, 0x70, 0x2d, 0x33, 0x20, 0xcc, 0x01, 0x28, 0xcd, 0x01, 0x32, 0x0d, 0x62, 0x69, 0x6e,
        0x61, 0x72, 0x79, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x2d, 0x36, 0x3a, 0x06, 0x72, 0x6f, 0x6f,
        0x74, 0x2d, 0x37, 0x42, 0x0b, 0x63, 0x72, 0x69, 0x75, 0x5f, 0x70, 0x61, 0x74, 0x68, 0x2d,
        0x38, 0x48, 0x01, 0x52, 0x11, 0x63, 0x72, 0x69, 0x75, 0x5f, 0x69, 0x6d, 0x61, 0x67, 0x65,
        0x5f, 0x70, 0x61, 0x74, 0x68, 0x2d, 0x39, 0x5a, 0x11, 0x63, 0x72, 0x69, 0x75, 0x5f, 0x77,
        0x6f, 0x72, 0x6b, 0x5f, 0x70, 0x61, 0x74, 0x68, 0x2d, 0x31, 0x30, 0x62, 0x13, 0x74, 0x61,
        0x73, 0x6b, 0x5f, 0x61, 0x70, 0x69, 0x5f, 0x61, 0x64, 0x64, 0x72, 0x65, 0x73, 0x73, 0x2d,
        0x31, 0x31, 0x68, 0xd4, 0x01,
    ];
    /// The same without field 8: what the prost-build type of the vendored
    /// declaration (which reserves field 8) gave for the other fields.
    const OPTIONS_BUT_CRIU_PATH: &[u8] = &[
        0x08, 0x01, 0x10, 0x01, 0x1a, 0x0d, 0x73, 0x68, 0x69, 0x6d, 0x5f, 0x63, 0x67, 0x72, 0x6f,
        0x75, 0x70, 0x2d, 0x33, 0x20, 0xcc, 0x01, 0x28, 0xcd, 0x01, 0x32, 0x0d, 0x62, 0x69, 0x6e,
        0x61, 0x72, 0x79, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x2d, 0x36, 0x3a, 0x06, 0x72, 0x6f, 0x6f,
        0x74, 0x2d, 0x37, 0x48, 0x01, 0x52, 0x11, 0x63, 0x72, 0x69, 0x75, 0x5f, 0x69, 0x6d, 0x61,
        0x67, 0x65, 0x5f, 0x70, 0x61, 0x74, 0x68, 0x2d, 0x39, 0x5a, 0x11, 0x63, 0x72, 0x69, 0x75,
        0x5f, 0x77, 0x6f, 0x72, 0x6b, 0x5f, 0x70, 0x61, 0x74, 0x68, 0x2d, 0x31, 0x30, 0x62, 0x13,
        0x74, 0x61, 0x73, 0x6b, 0x5f, 0x61, 0x70, 0x69, 0x5f, 0x61, 0x64, 0x64, 0x72, 0x65, 0x73,
        0x73, 0x2d, 0x31, 0x31, 0x68, 0xd4, 0x01,
    ];
    const CHECKPOINT_OPTIONS: &[u8] = &[
        0x08, 0x01, 0x42, 0x0c, 0x69, 0x6d, 0x61, 0x67, 0x65, 0x5f, 0x70, 0x61, 0x74, 0x68, 0x2d,
        0x38,
    ];
    const PROCESS_DETAILS: &[u8] = &[
        0x0a, 0x09, 0x65, 0x78, 0x65, 0x63, 0x5f, 0x69, 0x64, 0x2d, 0x31,
    ];

    fn options() -> Options {
        Options {
            no_pivot_root: true,
            no_new_keyring: true,
            shim_cgroup: "shim_cgroup-3".into(),
            io_uid: 204,
            io_gid: 205,
            binary_name: "binary_name-6".into(),
            root: "root-7".into(),
            criu_path: "criu_path-8".into(),
            systemd_cgroup: true,
            criu_image_path: "criu_image_path-9".into(),
            criu_work_path: "criu_work_path-10".into(),
            task_api_address: "task_api_address-11".into(),
            task_api_version: 212,
        }
    }

    #[test]
    fn options_keep_every_field_through_decode_and_encode() {
        both_ways(&options(), OPTIONS);
        let decoded = Options::decode(OPTIONS).unwrap();
        assert_eq!(decoded.encode_to_vec(), OPTIONS, "field 8 is kept");
        let without = Options {
            criu_path: String::new(),
            ..options()
        };
        both_ways(&without, OPTIONS_BUT_CRIU_PATH);
    }

    #[test]
    fn checkpoint_options_and_process_details_keep_their_bytes() {
        let checkpoint = CheckpointOptions {
            exit: true,
            image_path: "image_path-8".into(),
        };
        both_ways(&checkpoint, CHECKPOINT_OPTIONS);
        let details = ProcessDetails {
            exec_id: "exec_id-1".into(),
        };
        both_ways(&details, PROCESS_DETAILS);
    }
}
