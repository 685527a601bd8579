//! HCS's own codes (facility 0x037): what each means, its [`ErrorKind`] and
//! the message shown for it, in one table.
//!
//! The table holds every code HCS documents (the `HCS_E_*` list hcsshim
//! names, 0100 to 0121, and v1's pending code 0103). The messages are ours;
//! a few keep the wording engines already match on (see the crate's
//! rendered form).

use libctd_core::ErrorKind;

use super::Hresult;

// HCS's own codes in the encoding computecore.dll (v2) answers with, but
// for v1's pending code; `Hresult::v1` gives the v1 encoding of any.

/// The compute system terminated while starting.
pub const HCS_E_TERMINATED_DURING_START: Hresult = Hresult(0x8037_0100);
/// The container image does not match the host.
pub const HCS_E_IMAGE_MISMATCH: Hresult = Hresult(0x8037_0101);
/// Hyper-V, needed to start a virtual machine, is not installed.
pub const HCS_E_HYPERV_NOT_INSTALLED: Hresult = Hresult(0x8037_0102);
/// The operation is pending (HCS v1; v2 answers 0117).
pub const HCS_E_OPERATION_PENDING_V1: Hresult = Hresult(0xC037_0103);
/// The operation is not valid in the current state.
pub const HCS_E_INVALID_STATE: Hresult = Hresult(0x8037_0105);
/// The compute system exited unexpectedly.
pub const HCS_E_UNEXPECTED_EXIT: Hresult = Hresult(0x8037_0106);
/// The compute system was forcefully terminated.
pub const HCS_E_TERMINATED: Hresult = Hresult(0x8037_0107);
/// No connection to the compute system could be made.
pub const HCS_E_CONNECT_FAILED: Hresult = Hresult(0x8037_0108);
/// A connection timed out.
pub const HCS_E_CONNECTION_TIMEOUT: Hresult = Hresult(0x8037_0109);
/// The connection to the compute system was closed.
pub const HCS_E_CONNECTION_CLOSED: Hresult = Hresult(0x8037_010A);
/// An unknown message was received.
pub const HCS_E_UNKNOWN_MESSAGE: Hresult = Hresult(0x8037_010B);
/// No protocol version in common with the compute system.
pub const HCS_E_UNSUPPORTED_PROTOCOL_VERSION: Hresult = Hresult(0x8037_010C);
/// The JSON document is invalid.
pub const HCS_E_INVALID_JSON: Hresult = Hresult(0x8037_010D);
/// No compute system with that id.
pub const HCS_E_SYSTEM_NOT_FOUND: Hresult = Hresult(0x8037_010E);
/// A compute system with that id exists already.
pub const HCS_E_SYSTEM_ALREADY_EXISTS: Hresult = Hresult(0x8037_010F);
/// The compute system already stopped.
pub const HCS_E_SYSTEM_ALREADY_STOPPED: Hresult = Hresult(0x8037_0110);
/// The host and the compute system broke their protocol.
pub const HCS_E_PROTOCOL_ERROR: Hresult = Hresult(0x8037_0111);
/// A layer of the image has a format HCS does not know.
pub const HCS_E_INVALID_LAYER: Hresult = Hresult(0x8037_0112);
/// The image needs a Windows Insider build of the host.
pub const HCS_E_WINDOWS_INSIDER_REQUIRED: Hresult = Hresult(0x8037_0113);
/// The compute service (or a feature it needs) is not available.
pub const HCS_E_SERVICE_NOT_AVAILABLE: Hresult = Hresult(0x8037_0114);
/// The operation was never started.
pub const HCS_E_OPERATION_NOT_STARTED: Hresult = Hresult(0x8037_0115);
/// The operation was started already.
pub const HCS_E_OPERATION_ALREADY_STARTED: Hresult = Hresult(0x8037_0116);
/// The operation is pending.
pub const HCS_E_OPERATION_PENDING: Hresult = Hresult(0x8037_0117);
/// The operation timed out.
pub const HCS_E_OPERATION_TIMEOUT: Hresult = Hresult(0x8037_0118);
/// The handle has an event callback already.
pub const HCS_E_CALLBACK_ALREADY_SET: Hresult = Hresult(0x8037_0119);
/// No memory for the operation's result.
pub const HCS_E_RESULT_ALLOCATION_FAILED: Hresult = Hresult(0x8037_011A);
/// Access denied.
pub const HCS_E_ACCESS_DENIED: Hresult = Hresult(0x8037_011B);
/// The guest reported a critical error and was stopped.
pub const HCS_E_GUEST_CRITICAL_ERROR: Hresult = Hresult(0x8037_011C);
/// Process information is not available.
pub const HCS_E_PROCESS_INFO_NOT_AVAILABLE: Hresult = Hresult(0x8037_011D);
/// The connection to the compute service was lost.
pub const HCS_E_SERVICE_DISCONNECT: Hresult = Hresult(0x8037_011E);
/// The process already stopped.
pub const HCS_E_PROCESS_ALREADY_STOPPED: Hresult = Hresult(0x8037_011F);
/// The compute system is not set up for the operation.
pub const HCS_E_SYSTEM_NOT_CONFIGURED_FOR_OPERATION: Hresult = Hresult(0x8037_0120);
/// The operation was cancelled already.
pub const HCS_E_OPERATION_ALREADY_CANCELLED: Hresult = Hresult(0x8037_0121);

/// What an [`Hresult`] means, with the v1/v2 encodings
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

const fn entry(hresult: Hresult, code: HcsCode, kind: ErrorKind, message: &'static str) -> Entry {
    Entry {
        low: (hresult.0 & 0xFFFF) as u16,
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
    entry(HCS_E_TERMINATED_DURING_START, C::TerminatedDuringStart, K::System,
        "The compute system unexpectedly terminated while starting."),
    entry(HCS_E_IMAGE_MISMATCH, C::ImageMismatch, K::InvalidArgument,
        "The container operating system does not match the host operating system."),
    entry(HCS_E_HYPERV_NOT_INSTALLED, C::HypervNotInstalled, K::Unavailable,
        "The virtual machine cannot start: the Hyper-V feature is not installed on this host."),
    entry(HCS_E_OPERATION_PENDING_V1, C::OperationPending, K::System, "The operation is pending."),
    entry(HCS_E_INVALID_STATE, C::InvalidState, K::FailedPrecondition,
        "The requested compute system operation is not valid in the current state."),
    entry(HCS_E_UNEXPECTED_EXIT, C::UnexpectedExit, K::System, "The compute system exited unexpectedly."),
    entry(HCS_E_TERMINATED, C::Terminated, K::System, "The compute system was forcefully terminated."),
    entry(HCS_E_CONNECT_FAILED, C::ConnectFailed, K::Unavailable,
        "The host could not connect to the compute system."),
    entry(HCS_E_CONNECTION_TIMEOUT, C::ConnectionTimeout, K::DeadlineExceeded,
        "A connection could not be established with the compute system."),
    entry(HCS_E_CONNECTION_CLOSED, C::ConnectionClosed, K::Unavailable,
        "The connection to the compute system was closed."),
    entry(HCS_E_UNKNOWN_MESSAGE, C::UnknownMessage, K::NotImplemented,
        "A message was received that was not recognized."),
    entry(HCS_E_UNSUPPORTED_PROTOCOL_VERSION, C::UnsupportedProtocolVersion, K::NotImplemented,
        "The compute system and the host share no version of their protocol."),
    entry(HCS_E_INVALID_JSON, C::InvalidJson, K::NotImplemented, "The JSON document is invalid."),
    entry(HCS_E_SYSTEM_NOT_FOUND, C::SystemNotFound, K::NotFound,
        "A compute system with the specified identifier does not exist."),
    entry(HCS_E_SYSTEM_ALREADY_EXISTS, C::SystemAlreadyExists, K::AlreadyExists,
        "A compute system with this identifier exists already."),
    entry(HCS_E_SYSTEM_ALREADY_STOPPED, C::SystemAlreadyStopped, K::FailedPrecondition,
        "The compute system has already stopped."),
    entry(HCS_E_PROTOCOL_ERROR, C::ProtocolError, K::System,
        "The host and the compute system broke the rules of their protocol."),
    entry(HCS_E_INVALID_LAYER, C::InvalidLayer, K::InvalidArgument,
        "A layer of the container image is in a format the host does not know."),
    entry(HCS_E_WINDOWS_INSIDER_REQUIRED, C::WindowsInsiderRequired, K::FailedPrecondition,
        "The container image needs a Windows Insider build of the host."),
    entry(HCS_E_SERVICE_NOT_AVAILABLE, C::ServiceNotAvailable, K::Unavailable,
        "The compute service cannot run the operation: a feature it needs is not installed."),
    entry(HCS_E_OPERATION_NOT_STARTED, C::OperationNotStarted, K::FailedPrecondition,
        "The operation was never started."),
    entry(HCS_E_OPERATION_ALREADY_STARTED, C::OperationAlreadyStarted, K::FailedPrecondition,
        "The operation was started already."),
    entry(HCS_E_OPERATION_PENDING, C::OperationPending, K::System, "The operation is pending."),
    entry(HCS_E_OPERATION_TIMEOUT, C::OperationTimeout, K::DeadlineExceeded, "The operation timed out."),
    entry(HCS_E_CALLBACK_ALREADY_SET, C::CallbackAlreadySet, K::AlreadyExists,
        "The handle has an event callback already."),
    entry(HCS_E_RESULT_ALLOCATION_FAILED, C::ResultAllocationFailed, K::System,
        "There was not enough memory for the result of the operation."),
    entry(HCS_E_ACCESS_DENIED, C::AccessDenied, K::PermissionDenied, "Access is denied."),
    entry(HCS_E_GUEST_CRITICAL_ERROR, C::GuestCriticalError, K::System,
        "The compute system's guest reported a critical error and was stopped."),
    entry(HCS_E_PROCESS_INFO_NOT_AVAILABLE, C::ProcessInfoNotAvailable, K::System,
        "The process information is not available."),
    entry(HCS_E_SERVICE_DISCONNECT, C::ServiceDisconnect, K::Unavailable,
        "The connection to the compute service was lost."),
    entry(HCS_E_PROCESS_ALREADY_STOPPED, C::ProcessAlreadyStopped, K::FailedPrecondition,
        "The process has already stopped."),
    entry(HCS_E_SYSTEM_NOT_CONFIGURED_FOR_OPERATION, C::SystemNotConfiguredForOperation, K::FailedPrecondition,
        "The compute system is not set up for this operation."),
    entry(HCS_E_OPERATION_ALREADY_CANCELLED, C::OperationAlreadyCancelled, K::Cancelled,
        "The operation was cancelled already."),
];

/// The table's entry for HCS code `low`.
pub(super) fn by_low(low: u16) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.low == low)
}
