//! Container and process id validation.
//!
//! Ids are checked before anything touches a path or a daemon. The grammar is
//! containerd's identifier grammar, `[A-Za-z0-9]+([._-][A-Za-z0-9]+)*`, at most
//! [`MAX_ID_LEN`] bytes, so an id can never be empty, start or end with a
//! separator, contain `/`, or spell `..`.

use crate::error::{Error, Result};

/// The process id that addresses a container's init process.
pub const INIT_PROCESS_ID: &str = "init";

/// The longest id accepted, in bytes (containerd's limit).
pub const MAX_ID_LEN: usize = 76;

/// Checks a container id.
///
/// ```
/// use libctd_core::{validate_container_id, ErrorKind};
///
/// assert!(validate_container_id("web-1.blue_2").is_ok());
/// let err = validate_container_id("../etc").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
/// ```
pub fn validate_container_id(id: &str) -> Result<()> {
    validate("container id", id).map_err(|e| e.with_container(printable(id)))
}

/// Checks a process id (an exec id, or [`INIT_PROCESS_ID`]).
///
/// ```
/// use libctd_core::validate_process_id;
///
/// assert!(validate_process_id("init").is_ok());
/// assert!(validate_process_id("exec 1").is_err());
/// ```
pub fn validate_process_id(id: &str) -> Result<()> {
    validate("process id", id).map_err(|e| e.with_process(printable(id)))
}

/// Checks a namespace name (same grammar as ids).
///
/// ```
/// use libctd_core::validate_namespace;
///
/// assert!(validate_namespace("moby").is_ok());
/// let err = validate_namespace("").unwrap_err();
/// assert_eq!(err.to_string(), "namespace must not be empty");
/// ```
pub fn validate_namespace(namespace: &str) -> Result<()> {
    validate("namespace", namespace)
}

fn validate(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_argument(format!("{what} must not be empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid_argument(format!(
            "{what} is {} bytes long, the limit is {MAX_ID_LEN}",
            id.len()
        )));
    }
    let mut prev_sep = true; // the first character must be alphanumeric
    for (i, c) in id.char_indices() {
        if c.is_ascii_alphanumeric() {
            prev_sep = false;
        } else if matches!(c, '.' | '_' | '-') && !prev_sep {
            prev_sep = true;
        } else {
            return Err(Error::invalid_argument(format!(
                "{what} {:?} is invalid at byte {i}: it must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)*",
                printable(id)
            )));
        }
    }
    if prev_sep {
        return Err(Error::invalid_argument(format!(
            "{what} {:?} must end with a letter or digit",
            printable(id)
        )));
    }
    Ok(())
}

/// An id cut to a loggable length, for messages about bad ids.
fn printable(id: &str) -> String {
    const MAX: usize = 100;
    if id.len() <= MAX {
        return id.to_owned();
    }
    let mut end = MAX;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &id[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn accepts_containerd_identifiers() {
        for id in [
            "a",
            "A9",
            "web-1",
            "a.b_c-d",
            "init",
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert!(validate_container_id(id).is_ok(), "{id}");
            assert!(validate_process_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        for id in [
            "", ".", "..", "../x", "a/b", "a..b", "-a", "a-", "_a", "a b", "a\0b", "é", "a:b",
            "a--b", ".hidden", &long,
        ] {
            let err = validate_container_id(id).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{id:?}");
            assert!(err.to_string().contains("container"), "{err}");
        }
    }

    #[test]
    fn huge_ids_are_cut_in_messages() {
        let id = "é".repeat(10_000);
        let err = validate_container_id(&id).unwrap_err();
        assert!(err.to_string().len() < 500, "{}", err.to_string().len());
    }

    proptest::proptest! {
        #[test]
        fn valid_ids_never_escape_a_directory(id in "\\PC{0,80}") {
            if validate_container_id(&id).is_ok() {
                proptest::prop_assert!(!id.contains('/'));
                proptest::prop_assert!(!id.starts_with('.'));
                proptest::prop_assert!(!id.contains(".."));
                proptest::prop_assert!(id.len() <= MAX_ID_LEN);
            }
        }
    }
}
