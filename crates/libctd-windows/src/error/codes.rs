//! HCS's own codes (facility 0x037): what each means, its [`ErrorKind`] and
//! the message shown for it, in one table.
//!
//! The table holds every code HCS documents (the `HCS_E_*` list hcsshim
//! names, 0100 to 0121, and v1's pending code 0103). The messages are ours;
//! a few keep the wording engines already match on (see the crate's
//! rendered form).

use libctd_core::ErrorKind;

/// What an [`Hresult`](super::Hresult) means, with the v1/v2 encodings
/// folded together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HcsCode {
    /// 0100: the compute system terminated while starting.
    TerminatedDuringStart,
    /// 0101: the container image does not match the host.
    ImageMismatch,
    /// 0102: Hyper-V, needed to start a virtual machine, is not installed.
    HypervNotInstalled,
    /// 0103 (v1) or 0117 (v2): the operation is pending.
    OperationPending,
    /// 0105: the operation is not valid in the current state.
    InvalidState,
    /// 0106: the compute system exited unexpectedly.
    UnexpectedExit,
    /// 0107: the compute system was forcefully terminated.
    Terminated,
    /// 0108: no connection to the compute system could be made.
    ConnectFailed,
    /// 0109: a connection timed out.
    ConnectionTimeout,
    /// 010A: the connection to the compute system was closed.
    ConnectionClosed,
    /// 010B: an unknown message was received.
    UnknownMessage,
    /// 010C: no protocol version in common with the compute system.
    UnsupportedProtocolVersion,
    /// 010D: the JSON document is invalid.
    InvalidJson,
    /// 010E: no compute system with that id.
    SystemNotFound,
    /// 010F: a compute system with that id exists already.
    SystemAlreadyExists,
    /// 0110: the compute system already stopped.
    SystemAlreadyStopped,
    /// 0111: the host and the compute system broke their protocol.
    ProtocolError,
    /// 0112: a layer of the image has a format HCS does not know.
    InvalidLayer,
    /// 0113: the image needs a Windows Insider build of the host.
    WindowsInsiderRequired,
    /// 0114: the compute service (or a feature it needs) is not available.
    ServiceNotAvailable,
    /// 0115: the operation was never started.
    OperationNotStarted,
    /// 0116: the operation was started already.
    OperationAlreadyStarted,
    /// 0118 (v2): the operation timed out.
    OperationTimeout,
    /// 0119: the handle has an event callback already.
    CallbackAlreadySet,
    /// 011A: no memory for the operation's result.
    ResultAllocationFailed,
    /// 011B (v2): access denied.
    AccessDenied,
    /// 011C: the guest reported a critical error and was stopped.
    GuestCriticalError,
    /// 011D (v2): process information is not available.
    ProcessInfoNotAvailable,
    /// 011E (v2): the connection to the compute service was lost.
    ServiceDisconnect,
    /// 011F (v2): the process already stopped.
    ProcessAlreadyStopped,
    /// 0120: the compute system is not set up for the operation.
    SystemNotConfiguredForOperation,
    /// 0121: the operation was cancelled already.
    OperationAlreadyCancelled,
    /// Another facility-0x037 code (its low 16 bits).
    OtherHcs(u16),
    /// A facility-7 HRESULT: the Win32 error code.
    Win32(u16),
    /// `S_OK`.
    Success,
    /// Any other HRESULT.
    Other(u32),
}

/// One of HCS's codes: its low 16 bits, meaning, kind and message.
pub(super) struct Entry {
    pub(super) low: u16,
    pub(super) code: HcsCode,
    pub(super) kind: ErrorKind,
    pub(super) message: &'static str,
}

const fn entry(low: u16, code: HcsCode, kind: ErrorKind, message: &'static str) -> Entry {
    Entry {
        low,
        code,
        kind,
        message,
    }
}

use ErrorKind as K;
use HcsCode as C;

/// Every HCS code, by its low 16 bits.
#[rustfmt::skip]
pub(super) const TABLE: &[Entry] = &[
    entry(0x0100, C::TerminatedDuringStart, K::System,
        "The compute system unexpectedly terminated while starting."),
    entry(0x0101, C::ImageMismatch, K::InvalidArgument,
        "The container operating system does not match the host operating system."),
    entry(0x0102, C::HypervNotInstalled, K::Unavailable,
        "The virtual machine cannot start: the Hyper-V feature is not installed on this host."),
    entry(0x0103, C::OperationPending, K::System, "The operation is pending."),
    entry(0x0105, C::InvalidState, K::FailedPrecondition,
        "The requested compute system operation is not valid in the current state."),
    entry(0x0106, C::UnexpectedExit, K::System, "The compute system exited unexpectedly."),
    entry(0x0107, C::Terminated, K::System, "The compute system was forcefully terminated."),
    entry(0x0108, C::ConnectFailed, K::Unavailable,
        "The host could not connect to the compute system."),
    entry(0x0109, C::ConnectionTimeout, K::DeadlineExceeded,
        "A connection could not be established with the compute system."),
    entry(0x010A, C::ConnectionClosed, K::Unavailable,
        "The connection to the compute system was closed."),
    entry(0x010B, C::UnknownMessage, K::NotImplemented,
        "A message was received that was not recognized."),
    entry(0x010C, C::UnsupportedProtocolVersion, K::NotImplemented,
        "The compute system and the host share no version of their protocol."),
    entry(0x010D, C::InvalidJson, K::NotImplemented, "The JSON document is invalid."),
    entry(0x010E, C::SystemNotFound, K::NotFound,
        "A compute system with the specified identifier does not exist."),
    entry(0x010F, C::SystemAlreadyExists, K::AlreadyExists,
        "A compute system with this identifier exists already."),
    entry(0x0110, C::SystemAlreadyStopped, K::FailedPrecondition,
        "The compute system has already stopped."),
    entry(0x0111, C::ProtocolError, K::System,
        "The host and the compute system broke the rules of their protocol."),
    entry(0x0112, C::InvalidLayer, K::InvalidArgument,
        "A layer of the container image is in a format the host does not know."),
    entry(0x0113, C::WindowsInsiderRequired, K::FailedPrecondition,
        "The container image needs a Windows Insider build of the host."),
    entry(0x0114, C::ServiceNotAvailable, K::Unavailable,
        "The compute service cannot run the operation: a feature it needs is not installed."),
    entry(0x0115, C::OperationNotStarted, K::FailedPrecondition,
        "The operation was never started."),
    entry(0x0116, C::OperationAlreadyStarted, K::FailedPrecondition,
        "The operation was started already."),
    entry(0x0117, C::OperationPending, K::System, "The operation is pending."),
    entry(0x0118, C::OperationTimeout, K::DeadlineExceeded, "The operation timed out."),
    entry(0x0119, C::CallbackAlreadySet, K::AlreadyExists,
        "The handle has an event callback already."),
    entry(0x011A, C::ResultAllocationFailed, K::System,
        "There was not enough memory for the result of the operation."),
    entry(0x011B, C::AccessDenied, K::PermissionDenied, "Access is denied."),
    entry(0x011C, C::GuestCriticalError, K::System,
        "The compute system's guest reported a critical error and was stopped."),
    entry(0x011D, C::ProcessInfoNotAvailable, K::System,
        "The process information is not available."),
    entry(0x011E, C::ServiceDisconnect, K::Unavailable,
        "The connection to the compute service was lost."),
    entry(0x011F, C::ProcessAlreadyStopped, K::FailedPrecondition,
        "The process has already stopped."),
    entry(0x0120, C::SystemNotConfiguredForOperation, K::FailedPrecondition,
        "The compute system is not set up for this operation."),
    entry(0x0121, C::OperationAlreadyCancelled, K::Cancelled,
        "The operation was cancelled already."),
];

/// The table's entry for HCS code `low`.
pub(super) fn by_low(low: u16) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.low == low)
}
