//! HRESULTs from the Host Compute Service: normalisation, classification, a
//! message table and the rendered form engines show to users.
//!
//! HCS reports one failure under two encodings of facility 0x037: `0xC037xxxx`
//! (HCS v1) and `0x8037xxxx` (v2). [`Hresult::code`] compares them by their low
//! 16 bits. A facility-7 HRESULT (`0x8007xxxx`) wraps a Win32 error code.
//!
//! ```
//! use libctd_windows::error::{HcsCode, HcsError, Hresult};
//! use libctd_core::ErrorKind;
//!
//! let v1 = Hresult(0xC037_0106);
//! let v2 = Hresult(0x8037_0106);
//! assert_eq!(v1.code(), HcsCode::UnexpectedExit);
//! assert_eq!(v1.code(), v2.code());
//!
//! let err = HcsError::new(v1).into_error("web", "hcs::System::Shutdown");
//! assert_eq!(err.kind(), ErrorKind::System);
//! assert_eq!(
//!     err.message(),
//!     "container web encountered an error during hcs::System::Shutdown: \
//!      failure in a Windows system call: The compute system exited unexpectedly. (0xc0370106)"
//! );
//! ```

use std::fmt;

use libctd_core::{Error, ErrorKind};
use serde::Deserialize;

/// An HRESULT as HCS returned it (the bits of a Windows `HRESULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hresult(pub u32);

/// HCS facility (0x037).
const FACILITY_HCS: u32 = 0x037;
/// Win32 facility (7).
const FACILITY_WIN32: u32 = 7;
/// `E_UNEXPECTED`.
const E_UNEXPECTED: u32 = 0x8000_FFFF;

pub mod codes;

pub use codes::HcsCode;

/// Win32 error codes HCS surfaces.
pub mod win32 {
    /// ERROR_FILE_NOT_FOUND.
    pub const FILE_NOT_FOUND: u16 = 2;
    /// ERROR_PATH_NOT_FOUND.
    pub const PATH_NOT_FOUND: u16 = 3;
    /// ERROR_ACCESS_DENIED.
    pub const ACCESS_DENIED: u16 = 5;
    /// ERROR_INVALID_HANDLE.
    pub const INVALID_HANDLE: u16 = 6;
    /// ERROR_INVALID_DATA.
    pub const INVALID_DATA: u16 = 0xD;
    /// ERROR_NOT_SUPPORTED.
    pub const NOT_SUPPORTED: u16 = 0x32;
    /// ERROR_MOD_NOT_FOUND.
    pub const MOD_NOT_FOUND: u16 = 0x7E;
    /// ERROR_PROC_NOT_FOUND.
    pub const PROC_NOT_FOUND: u16 = 0x7F;
    /// ERROR_BROKEN_PIPE.
    pub const BROKEN_PIPE: u16 = 109;
    /// ERROR_NOT_FOUND.
    pub const NOT_FOUND: u16 = 0x490;
    /// ERROR_ALREADY_EXISTS.
    pub const ALREADY_EXISTS: u16 = 0xB7;
    /// ERROR_TIMEOUT.
    pub const TIMEOUT: u16 = 0x5B4;
    /// ERROR_OPERATION_ABORTED.
    pub const OPERATION_ABORTED: u16 = 0x3E3;
}

impl Hresult {
    /// The v1 (`0xC037xxxx`) encoding of an HCS code.
    pub const fn hcs_v1(low: u16) -> Self {
        Self(0xC037_0000 | low as u32)
    }

    /// The v2 (`0x8037xxxx`) encoding of an HCS code.
    pub const fn hcs_v2(low: u16) -> Self {
        Self(0x8037_0000 | low as u32)
    }

    /// The same HCS code in the v1 (`0xC037xxxx`) encoding.
    pub const fn v1(self) -> Self {
        Self::hcs_v1((self.0 & 0xFFFF) as u16)
    }

    /// The HRESULT of a Win32 error code (`HRESULT_FROM_WIN32`).
    pub const fn from_win32(code: u16) -> Self {
        if code == 0 {
            Self(0)
        } else {
            Self(0x8007_0000 | code as u32)
        }
    }

    /// The HRESULT from a number as JSON documents carry it: signed
    /// (`-1070137082`) or unsigned (`3224830214`). A number that is neither
    /// gives `E_UNEXPECTED`, never a truncated code.
    pub fn from_i64(value: i64) -> Self {
        match (u32::try_from(value), i32::try_from(value)) {
            (Ok(unsigned), _) => Self(unsigned),
            (_, Ok(signed)) => Self(signed.cast_unsigned()),
            _ => Self(E_UNEXPECTED),
        }
    }

    /// The facility field (bits 16..27).
    pub const fn facility(self) -> u32 {
        (self.0 >> 16) & 0x1FFF
    }

    /// Whether the severity bit says failure.
    pub const fn is_failure(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// The table's row of an HCS code (facility 0x037, either encoding):
    /// its meaning, kind and message.
    fn entry(self) -> Option<&'static codes::Entry> {
        if self.facility() == FACILITY_HCS {
            codes::by_low((self.0 & 0xFFFF) as u16)
        } else {
            None
        }
    }

    /// The normalised meaning.
    pub fn code(self) -> HcsCode {
        if self.0 == 0 {
            return HcsCode::Success;
        }
        let low = (self.0 & 0xFFFF) as u16;
        if self.is_failure() && self.facility() == FACILITY_WIN32 {
            return HcsCode::Win32(low);
        }
        if self.facility() != FACILITY_HCS {
            return HcsCode::Other(self.0);
        }
        self.entry().map_or(HcsCode::OtherHcs(low), |e| e.code)
    }

    /// The object does not exist (system not found, ERROR_NOT_FOUND).
    pub fn is_not_exist(self) -> bool {
        self.entry().is_some_and(|e| e.kind == ErrorKind::NotFound)
            || self.code() == HcsCode::Win32(win32::NOT_FOUND)
    }

    /// The system or process already stopped (0110, 011F, ERROR_NOT_FOUND).
    pub fn is_already_stopped(self) -> bool {
        matches!(
            self.code(),
            HcsCode::SystemAlreadyStopped
                | HcsCode::ProcessAlreadyStopped
                | HcsCode::Win32(win32::NOT_FOUND)
        )
    }

    /// The operation is pending (0103 in v1, 0117 in v2).
    pub fn is_pending(self) -> bool {
        self.code() == HcsCode::OperationPending
    }

    /// The operation timed out (0109, 0118, ERROR_TIMEOUT): its kind is
    /// `DeadlineExceeded`.
    pub fn is_timeout(self) -> bool {
        self.kind() == ErrorKind::DeadlineExceeded
    }

    /// The request is not supported (010B, 010C, 010D, ERROR_INVALID_DATA,
    /// ERROR_NOT_SUPPORTED): its kind is `NotImplemented`.
    pub fn is_not_supported(self) -> bool {
        self.kind() == ErrorKind::NotImplemented
    }

    /// The operation is not valid in the current state (0105).
    pub fn is_invalid_state(self) -> bool {
        self.code() == HcsCode::InvalidState
    }

    /// Access was denied (ERROR_ACCESS_DENIED, 011B): its kind is
    /// `PermissionDenied`.
    pub fn is_access_denied(self) -> bool {
        self.kind() == ErrorKind::PermissionDenied
    }

    /// The compute service (or its DLL) cannot be reached: its kind is
    /// `Unavailable` (HCS's codes of that kind, a missing module or
    /// procedure).
    pub fn is_unavailable(self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }

    /// The [`ErrorKind`] callers branch on: an HCS code's from the table,
    /// a Win32 code's from its own short list.
    pub fn kind(self) -> ErrorKind {
        if let Some(entry) = self.entry() {
            return entry.kind;
        }
        match self.code() {
            HcsCode::Win32(code) => win32_kind(code),
            _ => ErrorKind::System,
        }
    }

    /// The system message for the HRESULT (what `FormatMessage` would say on
    /// Windows, from a built-in table), or `None` for an unknown code.
    pub fn message(self) -> Option<&'static str> {
        if let Some(entry) = self.entry() {
            return Some(entry.message);
        }
        Some(match self.code() {
            HcsCode::Success => "The operation completed successfully.",
            HcsCode::Win32(code) => match code {
                win32::FILE_NOT_FOUND => "The system cannot find the file specified.",
                win32::PATH_NOT_FOUND => "The system cannot find the path specified.",
                win32::ACCESS_DENIED => "Access is denied.",
                win32::INVALID_HANDLE => "The handle is invalid.",
                win32::INVALID_DATA => "The data is invalid.",
                win32::NOT_SUPPORTED => "The request is not supported.",
                win32::MOD_NOT_FOUND => "The specified module could not be found.",
                win32::PROC_NOT_FOUND => "The specified procedure could not be found.",
                win32::BROKEN_PIPE => "The pipe has been ended.",
                win32::NOT_FOUND => "Element not found.",
                win32::ALREADY_EXISTS => "Cannot create a file when that file already exists.",
                win32::TIMEOUT => "This operation returned because the timeout period expired.",
                win32::OPERATION_ABORTED => {
                    "The I/O operation has been aborted because of either a thread exit or an application request."
                }
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// The [`ErrorKind`] of a Win32 error code HCS passes on.
fn win32_kind(code: u16) -> ErrorKind {
    match code {
        win32::NOT_FOUND | win32::FILE_NOT_FOUND | win32::PATH_NOT_FOUND => ErrorKind::NotFound,
        win32::TIMEOUT => ErrorKind::DeadlineExceeded,
        win32::INVALID_DATA | win32::NOT_SUPPORTED => ErrorKind::NotImplemented,
        win32::ACCESS_DENIED => ErrorKind::PermissionDenied,
        win32::MOD_NOT_FOUND | win32::PROC_NOT_FOUND => ErrorKind::Unavailable,
        win32::ALREADY_EXISTS => ErrorKind::AlreadyExists,
        win32::OPERATION_ABORTED => ErrorKind::Cancelled,
        _ => ErrorKind::System,
    }
}

impl fmt::Display for Hresult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0)
    }
}

/// The result document HCS may attach to a failure.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ResultDocument {
    /// The HRESULT, as a signed or unsigned number.
    #[serde(default)]
    pub error: Option<i64>,
    /// HCS's own description.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Further detail events.
    #[serde(default)]
    pub error_events: Vec<ErrorEvent>,
}

/// One entry of a result document's `ErrorEvents`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorEvent {
    /// The event's message.
    #[serde(default)]
    pub message: String,
}

/// A failed HCS call: the HRESULT, and what HCS said about it.
///
/// Its `Display` is `<message> (0x<code>)`; the message comes from the
/// result document when HCS sent one, else from the message table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcsError {
    /// The HRESULT.
    pub hresult: Hresult,
    /// HCS's message, when it sent a result document.
    pub detail: Option<String>,
    /// The messages of the result document's error events.
    pub events: Vec<String>,
}

impl HcsError {
    /// An error carrying only an HRESULT.
    pub fn new(hresult: Hresult) -> Self {
        Self {
            hresult,
            detail: None,
            events: Vec::new(),
        }
    }

    /// An error from an HRESULT and the result document (possibly empty) HCS
    /// returned with it. An unparsable document is kept as the detail text.
    pub fn with_document(hresult: Hresult, document: &str) -> Self {
        let mut err = Self::new(hresult);
        let document = document.trim();
        if document.is_empty() {
            return err;
        }
        match serde_json::from_str::<ResultDocument>(document) {
            Ok(doc) => {
                err.detail = doc.error_message.filter(|m| !m.is_empty());
                err.events = doc
                    .error_events
                    .into_iter()
                    .map(|e| e.message)
                    .filter(|m| !m.is_empty())
                    .collect();
            }
            Err(_) => err.detail = Some(document.to_owned()),
        }
        err
    }

    /// The message shown to users: the table's, else HCS's, else a generic one.
    pub fn text(&self) -> String {
        match (self.hresult.message(), &self.detail) {
            (Some(m), _) => m.to_owned(),
            (None, Some(d)) => d.clone(),
            (None, None) => "Unknown error.".to_owned(),
        }
    }

    /// The [`ErrorKind`] of the HRESULT.
    pub fn kind(&self) -> ErrorKind {
        self.hresult.kind()
    }

    /// The rendered form engines show:
    /// `container <id> encountered an error during <op>: failure in a Windows
    /// system call: <message> (0x<code>)`.
    pub fn render(&self, container_id: &str, operation: &str) -> String {
        format!(
            "container {container_id} encountered an error during {operation}: \
             failure in a Windows system call: {self}"
        )
    }

    /// A libctd [`Error`] of the HRESULT's kind, whose message is the rendered
    /// form, naming the container, with this error as its source.
    pub fn into_error(self, container_id: &str, operation: &str) -> Error {
        Error::new(self.kind(), self.render(container_id, operation))
            .with_container(container_id)
            .with_source(self)
    }
}

impl fmt::Display for HcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.hresult)?;
        if let (Some(_), Some(detail)) = (self.hresult.message(), &self.detail) {
            write!(f, ": {detail}")?;
        }
        for event in &self.events {
            write!(f, ": {event}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HcsError {}

impl From<Hresult> for HcsError {
    fn from(hresult: Hresult) -> Self {
        Self::new(hresult)
    }
}

/// The HRESULT behind a libctd error, if an [`HcsError`] is in its chain.
pub fn hresult_of(err: &(dyn std::error::Error + 'static)) -> Option<Hresult> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<HcsError>() {
            return Some(h.hresult);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_encodings_normalise_to_one_code() {
        for low in [
            0x0100u16, 0x0101, 0x0103, 0x0105, 0x0106, 0x0107, 0x0109, 0x010B, 0x010D, 0x010E,
            0x0110, 0x0117, 0x0118, 0x011B, 0x011D, 0x011E, 0x011F, 0x0150,
        ] {
            assert_eq!(
                Hresult::hcs_v1(low).code(),
                Hresult::hcs_v2(low).code(),
                "{low:#x}"
            );
        }
        assert_eq!(Hresult(0xC037_0103).code(), HcsCode::OperationPending);
        assert_eq!(Hresult(0x8037_0117).code(), HcsCode::OperationPending);
        assert_eq!(Hresult(0x8037_0150).code(), HcsCode::OtherHcs(0x150));
    }

    #[test]
    fn facility_seven_carries_win32_codes() {
        assert_eq!(Hresult(0x8007_0490).code(), HcsCode::Win32(0x490));
        assert_eq!(Hresult::from_win32(0x7E), Hresult(0x8007_007E));
        assert_eq!(Hresult::from_win32(0), Hresult(0));
        assert_eq!(Hresult(0).code(), HcsCode::Success);
        assert_eq!(Hresult(0x8000_4005).code(), HcsCode::Other(0x8000_4005));
        // A negative number in a JSON document is the same HRESULT.
        assert_eq!(Hresult::from_i64(-1_070_137_082), Hresult(0xC037_0106));
        assert_eq!(Hresult::from_i64(3_224_830_214), Hresult(0xC037_0106));
        // Out of both ranges: not truncated into some other code.
        assert_eq!(Hresult::from_i64(1 << 40 | 0x0106), Hresult(E_UNEXPECTED));
        assert_eq!(Hresult::from_i64(i64::MIN), Hresult(E_UNEXPECTED));
    }

    #[test]
    fn classes() {
        assert!(Hresult::hcs_v1(0x010E).is_not_exist());
        assert!(Hresult::from_win32(0x490).is_not_exist());
        assert!(Hresult::from_win32(0x490).is_already_stopped());
        assert!(Hresult::hcs_v2(0x0110).is_already_stopped());
        assert!(Hresult::hcs_v2(0x011F).is_already_stopped());
        assert!(!Hresult::hcs_v2(0x0106).is_already_stopped());
        assert!(Hresult::hcs_v1(0x0103).is_pending());
        assert!(Hresult::hcs_v2(0x0117).is_pending());
        assert!(Hresult::hcs_v2(0x0109).is_timeout());
        assert!(Hresult::hcs_v2(0x0118).is_timeout());
        for h in [
            Hresult::hcs_v1(0x010D),
            Hresult::hcs_v1(0x010B),
            Hresult::from_win32(0xD),
            Hresult::from_win32(0x32),
        ] {
            assert!(h.is_not_supported(), "{h}");
            assert_eq!(h.kind(), ErrorKind::NotImplemented);
        }
        assert!(Hresult::hcs_v1(0x0105).is_invalid_state());
        assert!(Hresult::from_win32(5).is_access_denied());
    }

    #[test]
    fn kinds() {
        let cases = [
            (Hresult::hcs_v1(0x010E), ErrorKind::NotFound),
            (Hresult::hcs_v2(0x0110), ErrorKind::FailedPrecondition),
            (Hresult::hcs_v1(0x0105), ErrorKind::FailedPrecondition),
            (Hresult::hcs_v2(0x0118), ErrorKind::DeadlineExceeded),
            (Hresult::from_win32(5), ErrorKind::PermissionDenied),
            (Hresult::hcs_v2(0x011E), ErrorKind::Unavailable),
            (Hresult::from_win32(0x7E), ErrorKind::Unavailable),
            (Hresult::from_win32(0x7F), ErrorKind::Unavailable),
            (Hresult::from_win32(0xB7), ErrorKind::AlreadyExists),
            (Hresult::from_win32(2), ErrorKind::NotFound),
            (Hresult::hcs_v1(0x0106), ErrorKind::System),
            (Hresult(0x8000_4005), ErrorKind::System),
        ];
        for (h, kind) in cases {
            assert_eq!(h.kind(), kind, "{h}");
        }
    }

    /// Every code HCS documents (0100 to 0121; 0104 is unassigned) has a
    /// meaning of its own and a message, in both encodings (its kind:
    /// `hcs_codes_map_to_kinds`).
    #[test]
    fn every_hcs_code_has_a_kind_and_a_message() {
        let mut seen = std::collections::HashSet::new();
        for low in (0x0100u16..=0x0121).filter(|l| *l != 0x0104) {
            for h in [Hresult::hcs_v1(low), Hresult::hcs_v2(low)] {
                assert!(!matches!(h.code(), HcsCode::OtherHcs(_)), "{h}: no meaning");
                let message = h.message().unwrap_or_else(|| panic!("{h}: no message"));
                assert!(message.ends_with('.'), "{h}: {message}");
            }
            seen.insert(Hresult::hcs_v2(low).code());
        }
        // One meaning per code, but for the two pending codes (v1 and v2).
        assert_eq!(seen.len(), 0x21 - 1);
        assert_eq!(Hresult::hcs_v2(0x0122).code(), HcsCode::OtherHcs(0x0122));
        assert_eq!(Hresult::hcs_v2(0x0122).message(), None);
    }

    /// Each HCS code's kind, in both encodings; the classes that follow a
    /// kind agree with it.
    #[test]
    fn hcs_codes_map_to_kinds() {
        let cases = [
            (0x010F, ErrorKind::AlreadyExists),
            (0x010A, ErrorKind::Unavailable),
            (0x0114, ErrorKind::Unavailable),
            (0x0108, ErrorKind::Unavailable),
            (0x0102, ErrorKind::Unavailable),
            (0x011E, ErrorKind::Unavailable),
            (0x0112, ErrorKind::InvalidArgument),
            (0x0101, ErrorKind::InvalidArgument),
            (0x010C, ErrorKind::NotImplemented),
            (0x0115, ErrorKind::FailedPrecondition),
            (0x0116, ErrorKind::FailedPrecondition),
            (0x0120, ErrorKind::FailedPrecondition),
            (0x0119, ErrorKind::AlreadyExists),
            (0x0121, ErrorKind::Cancelled),
            (0x011B, ErrorKind::PermissionDenied),
            (0x011C, ErrorKind::System),
            (0x0111, ErrorKind::System),
            (0x0109, ErrorKind::DeadlineExceeded),
            (0x010E, ErrorKind::NotFound),
        ];
        for (low, kind) in cases {
            for h in [Hresult::hcs_v2(low), Hresult::hcs_v1(low)] {
                assert_eq!(h.kind(), kind, "{h}");
                assert_eq!(h.is_unavailable(), kind == ErrorKind::Unavailable, "{h}");
                assert_eq!(h.is_timeout(), kind == ErrorKind::DeadlineExceeded, "{h}");
                assert_eq!(
                    h.is_access_denied(),
                    kind == ErrorKind::PermissionDenied,
                    "{h}"
                );
                assert_eq!(h.is_not_exist(), kind == ErrorKind::NotFound, "{h}");
            }
        }
    }

    /// A duplicate compute system id, from the call or from the operation's
    /// result document: AlreadyExists with our message, HCS's detail kept.
    #[test]
    fn system_already_exists_is_already_exists() {
        let e = HcsError::new(Hresult(0x8037_010F)).into_error("web", "HcsCreateComputeSystem");
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(
            e.message()
                .ends_with("A compute system with this identifier exists already. (0x8037010f)"),
            "{}",
            e.message()
        );
        let doc = r#"{"Error":-2143878897,"ErrorMessage":"id web@moby is taken"}"#;
        let e = HcsError::with_document(Hresult(0x8037_010F), doc);
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(
            e.to_string()
                .ends_with("(0x8037010f): id web@moby is taken"),
            "{e}"
        );
    }

    #[test]
    fn message_table() {
        assert_eq!(
            Hresult(0xC037_0106).message(),
            Some("The compute system exited unexpectedly.")
        );
        assert_eq!(
            Hresult(0x8037_0106).message(),
            Hresult(0xC037_0106).message()
        );
        assert_eq!(
            Hresult::from_win32(0x7E).message(),
            Some("The specified module could not be found.")
        );
        assert_eq!(Hresult(0x8000_4005).message(), None);
    }

    #[test]
    fn rendered_form() {
        let e = HcsError::new(Hresult(0xC037_0106));
        assert_eq!(
            e.render("web", "hcs::System::Shutdown"),
            "container web encountered an error during hcs::System::Shutdown: failure in a \
             Windows system call: The compute system exited unexpectedly. (0xc0370106)"
        );
        let err = e.clone().into_error("web", "hcs::System::Shutdown");
        assert_eq!(err.container_id(), Some("web"));
        assert_eq!(hresult_of(&err), Some(Hresult(0xC037_0106)));
        assert!(err.report().to_string().contains("(0xc0370106)"));
    }

    #[test]
    fn result_documents() {
        let doc = r#"{"Error":-2143878898,"ErrorMessage":"A compute system with the specified identifier does not exist.","ErrorEvents":[{"Message":"id web"}]}"#;
        let e = HcsError::with_document(Hresult(0x8037_010E), doc);
        assert_eq!(e.events, vec!["id web".to_owned()]);
        assert!(e.to_string().starts_with(
            "A compute system with the specified identifier does not exist. (0x8037010e)"
        ));
        assert!(e.to_string().ends_with(": id web"), "{e}");
        // An unknown code takes HCS's message.
        let e = HcsError::with_document(Hresult(0x8000_4005), r#"{"ErrorMessage":"boom"}"#);
        assert_eq!(e.to_string(), "boom (0x80004005)");
        // Garbage is kept, never a panic.
        let e = HcsError::with_document(Hresult(0x8000_4005), "not json");
        assert_eq!(e.to_string(), "not json (0x80004005)");
        let e = HcsError::with_document(Hresult(0x8000_4005), "  ");
        assert_eq!(e.to_string(), "Unknown error. (0x80004005)");
    }
}
