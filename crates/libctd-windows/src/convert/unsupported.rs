//! Spec fields libctd does not act on: each is refused with
//! `InvalidArgument` naming it, never dropped without a word (a container
//! that silently lacks its devices, credentials or network is worse than
//! one that does not start).

use libctd_core::Result;
use libctd_core::oci_spec::runtime::Windows;
use serde_json::Value;

use super::invalid;

/// The unsupported fields: the JSON pointer in the `windows` section, the
/// field's name, and why.
const UNSUPPORTED: &[(&str, &str, &str)] = &[
    (
        "/credentialSpec",
        "windows.credentialSpec",
        "is not supported: libctd sets up no container credential guard (gMSA)",
    ),
    (
        "/devices",
        "windows.devices",
        "is not supported: libctd assigns no devices to containers",
    ),
    (
        "/ignoreFlushesDuringBoot",
        "windows.ignoreFlushesDuringBoot",
        "is not supported",
    ),
    (
        "/resources/storage/sandboxSize",
        "windows.resources.storage.sandboxSize",
        "is not supported: the scratch is sized by whoever creates it",
    ),
];

/// Whether a spec value asks for something (an empty list or map, `false`
/// and `null` ask for nothing).
fn asks(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => true,
    }
}

/// Refuses the first unsupported field `windows` sets.
pub(super) fn refuse_unsupported(windows: &Windows) -> Result<()> {
    let value = serde_json::to_value(windows)
        .map_err(|e| invalid("windows", format!("cannot be read: {e}")))?;
    for (pointer, field, why) in UNSUPPORTED {
        if value.pointer(pointer).is_some_and(asks) {
            return Err(invalid(field, why));
        }
    }
    Ok(())
}
