//! A failed RPC's [`ErrorKind`]: the gRPC code, and for `Unknown` the
//! text containerd, the shim and the runtime wrote (errdefs suffixes, runc's
//! and other runtimes' well-known refusals). The one place a message's text
//! decides a kind.

use libctd_core::{Error, ErrorKind};

/// What an RPC's failure means for the caller: the gRPC code (or, for
/// `Unknown`, containerd's errdefs suffix and runc's well-known failures)
/// mapped to an [`ErrorKind`]. A failure that never reached containerd (no
/// socket, a broken connection, the client-side deadline) says so: it is
/// containerd that cannot be reached, not the container that is wrong.
pub(crate) fn status_error(status: tonic::Status) -> Error {
    let message = status.message().to_owned();
    let lower = message.to_ascii_lowercase();
    let local = made_by_transport(&status);
    let kind = match status.code() {
        tonic::Code::Cancelled if local && lower.contains("timeout expired") => {
            ErrorKind::DeadlineExceeded
        }
        _ if local => ErrorKind::Unavailable,
        tonic::Code::NotFound => ErrorKind::NotFound,
        tonic::Code::AlreadyExists => ErrorKind::AlreadyExists,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorKind::InvalidArgument,
        tonic::Code::FailedPrecondition => ErrorKind::FailedPrecondition,
        tonic::Code::Unimplemented => ErrorKind::NotImplemented,
        tonic::Code::Unavailable => ErrorKind::Unavailable,
        tonic::Code::Cancelled => ErrorKind::Cancelled,
        tonic::Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => ErrorKind::PermissionDenied,
        tonic::Code::Internal
        | tonic::Code::DataLoss
        | tonic::Code::ResourceExhausted
        | tonic::Code::Aborted => ErrorKind::System,
        tonic::Code::Unknown | tonic::Code::Ok => classify_message(&lower),
    };
    let message = match kind {
        ErrorKind::DeadlineExceeded => format!(
            "containerd did not answer within the call's deadline (rpc_timeout): {}",
            if message.is_empty() {
                "no answer"
            } else {
                &message
            }
        ),
        ErrorKind::Unavailable if local => {
            format!("containerd is unreachable: {message}")
        }
        _ if message.is_empty() => format!("containerd answered {}", status.code()),
        _ => message,
    };
    Error::new(kind, message).with_source(status)
}

/// Whether tonic made `status` itself (it attaches the transport's error to
/// those): no answer came from containerd.
pub(crate) fn made_by_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The kind named at the end of a containerd error message, as errdefs writes
/// it (`...: not found`), runc's well-known failures, or a transport failure.
fn classify_message(lower: &str) -> ErrorKind {
    const SUFFIXES: [(&str, ErrorKind); 6] = [
        ("not found", ErrorKind::NotFound),
        ("already exists", ErrorKind::AlreadyExists),
        ("invalid argument", ErrorKind::InvalidArgument),
        ("failed precondition", ErrorKind::FailedPrecondition),
        ("not implemented", ErrorKind::NotImplemented),
        ("unavailable", ErrorKind::Unavailable),
    ];
    // Checked in order: the first phrase found decides.
    const PHRASES: [(&str, ErrorKind); 30] = [
        // gVisor's runsc printed its usage: it has no such command (an
        // update): first, as the usage names every command it has.
        (
            "usage: runsc <flags> <subcommand>",
            ErrorKind::NotImplemented,
        ),
        // runc cannot run what the spec asks for: the spec is wrong.
        ("executable file not found", ErrorKind::InvalidArgument),
        // gVisor's runsc says it so.
        ("error finding executable", ErrorKind::InvalidArgument),
        ("exec format error", ErrorKind::InvalidArgument),
        ("invalid rootfs", ErrorKind::InvalidArgument),
        ("chdir to cwd", ErrorKind::InvalidArgument),
        ("permission denied", ErrorKind::PermissionDenied),
        (
            "unable to start container process: exec",
            ErrorKind::InvalidArgument,
        ),
        ("rootfs (", ErrorKind::InvalidArgument),
        ("must not be empty", ErrorKind::InvalidArgument),
        // runc and the shim say what state forbids the operation.
        ("stopped state", ErrorKind::FailedPrecondition),
        ("a running process", ErrorKind::FailedPrecondition),
        ("not paused", ErrorKind::FailedPrecondition),
        ("must be stopped", ErrorKind::FailedPrecondition),
        ("is not running", ErrorKind::FailedPrecondition),
        // The runc shim's init state machine refuses what its state forbids
        // (`cannot pause a stopped container`, `cannot resume a running
        // process`, ...).
        ("cannot pause", ErrorKind::FailedPrecondition),
        ("cannot resume", ErrorKind::FailedPrecondition),
        ("cannot start a", ErrorKind::FailedPrecondition),
        ("cannot delete a", ErrorKind::FailedPrecondition),
        ("cannot exec in a", ErrorKind::FailedPrecondition),
        ("cannot update a stopped", ErrorKind::FailedPrecondition),
        ("cannot checkpoint a", ErrorKind::FailedPrecondition),
        // The connection itself failed.
        ("transport error", ErrorKind::Unavailable),
        ("h2 protocol error", ErrorKind::Unavailable),
        ("connection reset", ErrorKind::Unavailable),
        ("broken pipe", ErrorKind::Unavailable),
        ("error trying to connect", ErrorKind::Unavailable),
        // The runtime refused for a reason of its own, none of the above
        // (crun on a cgroup v1 host, runsc in the host's network
        // namespace): the runtime failed.
        ("oci runtime create failed", ErrorKind::System),
        ("oci runtime start failed", ErrorKind::System),
        ("oci runtime exec failed", ErrorKind::System),
    ];
    if let Some((_, kind)) = SUFFIXES.iter().find(|(s, _)| lower.ends_with(s)) {
        return *kind;
    }
    PHRASES
        .iter()
        .find(|(p, _)| lower.contains(p))
        .map_or(ErrorKind::Unknown, |(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            (tonic::Code::NotFound, ErrorKind::NotFound),
            (tonic::Code::AlreadyExists, ErrorKind::AlreadyExists),
            (tonic::Code::InvalidArgument, ErrorKind::InvalidArgument),
            (
                tonic::Code::FailedPrecondition,
                ErrorKind::FailedPrecondition,
            ),
            (tonic::Code::Unimplemented, ErrorKind::NotImplemented),
            (tonic::Code::Unavailable, ErrorKind::Unavailable),
            (tonic::Code::DeadlineExceeded, ErrorKind::DeadlineExceeded),
            (tonic::Code::PermissionDenied, ErrorKind::PermissionDenied),
            (tonic::Code::Internal, ErrorKind::System),
        ];
        for (code, kind) in cases {
            let e = status_error(tonic::Status::new(code, "boom"));
            assert_eq!(e.kind(), kind, "{code:?}");
            assert!(e.message().ends_with("boom"), "{e}");
        }
    }

    #[test]
    fn unknown_code_uses_the_errdefs_suffix() {
        let e = status_error(tonic::Status::unknown("process exec1: not found"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = status_error(tonic::Status::unknown("h2 protocol error: broken"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = status_error(tonic::Status::unknown("something odd"));
        assert_eq!(e.kind(), ErrorKind::Unknown);
    }

    #[test]
    fn runc_failures_are_classified() {
        for (text, kind) in [
            (
                "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown",
                ErrorKind::InvalidArgument,
            ),
            (
                "OCI runtime create failed: runc create failed: invalid rootfs: stat /nope: no such file or directory: unknown",
                ErrorKind::InvalidArgument,
            ),
            (
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/etc\": permission denied: unknown",
                ErrorKind::PermissionDenied,
            ),
            (
                "failed to create shim task: OCI runtime create failed: cgroups in hybrid mode not supported, drop all controllers from cgroupv2: unknown",
                ErrorKind::System,
            ),
            (
                "OCI runtime start failed: starting container: setting up network: creating interfaces from net namespace \"/proc/1/ns/net\": cannot run with network enabled in root network namespace: unknown",
                ErrorKind::System,
            ),
            (
                "/usr/bin/runsc did not terminate successfully: exit status 128: Usage: runsc <flags> <subcommand> <subcommand args>\n\nSubcommands:\n\tpause  pause suspends all processes in a container: unknown",
                ErrorKind::NotImplemented,
            ),
            (
                "OCI runtime start failed: starting container: starting root container: starting sandbox: error finding executable \"nosuch\" in PATH [/bin]: no such file or directory: unknown",
                ErrorKind::InvalidArgument,
            ),
            (
                "cannot exec in a stopped state: unknown",
                ErrorKind::FailedPrecondition,
            ),
            (
                "cannot pause a stopped container: unknown",
                ErrorKind::FailedPrecondition,
            ),
            (
                "cannot resume a running process: unknown",
                ErrorKind::FailedPrecondition,
            ),
            (
                "cannot pause task in created state: unknown",
                ErrorKind::FailedPrecondition,
            ),
            (
                "cannot exec in a paused state: unknown",
                ErrorKind::FailedPrecondition,
            ),
            (
                "cannot delete a running process: unknown",
                ErrorKind::FailedPrecondition,
            ),
        ] {
            assert_eq!(
                status_error(tonic::Status::unknown(text)).kind(),
                kind,
                "{text}"
            );
        }
    }

    #[test]
    fn local_transport_failures_name_containerd() {
        let e = status_error(tonic::Status::from_error(Box::new(tonic::TimeoutExpired(
            (),
        ))));
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
        assert!(e.message().contains("containerd did not answer"), "{e}");
        let e = status_error(tonic::Status::new(
            tonic::Code::DeadlineExceeded,
            "context deadline exceeded",
        ));
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
        assert!(e.message().contains("containerd did not answer"), "{e}");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = status_error(tonic::Status::from_error(Box::new(io)));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("containerd is unreachable"), "{e}");
        // containerd's own Unavailable (a dead shim) is not a transport failure.
        let e = status_error(tonic::Status::unavailable("ttrpc: closed"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.message(), "ttrpc: closed");
    }
}
