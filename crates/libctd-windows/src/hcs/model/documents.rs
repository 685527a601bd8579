//! What the model checks in compute system documents: what HCS needs to
//! boot them, as hcsshim builds them.

use serde_json::Value;

use super::hr;
use crate::error::HcsError;

/// Where a utility VM's VSMB shares appear inside it.
const VSMB_PREFIX: &str = r"\\?\VMSMB\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\";

/// What the model keeps of a checked configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct Configuration {
    /// A utility VM, or a container hosted by one: it can be paused.
    pub(super) hyperv: bool,
    /// The utility VM hosting this container (`HostingSystemId`).
    pub(super) hosted_by: Option<String>,
    /// A utility VM's VSMB share names.
    pub(super) shares: Vec<String>,
    /// A hosted container's layer paths, each a share of its utility VM.
    pub(super) layers: Vec<String>,
}

/// Checks a configuration the way HCS needs it to boot (as hcsshim builds
/// them): JSON of schema 2; a utility VM with its scratch disk at SCSI 0:0,
/// a Hyper-V socket configuration and the `os` VSMB share; a container with
/// its scratch as `Storage.Path`; never the combined `HostedSystem` form
/// (hcsshim creates the utility VM, then the container with
/// `HostingSystemId`). Failures are HCS_E_INVALID_JSON with a message.
pub(super) fn check_configuration(configuration: &str) -> Result<Configuration, HcsError> {
    let doc: Value = serde_json::from_str(configuration).map_err(|e| invalid(&e.to_string()))?;
    let text = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or("");
    if doc.pointer("/SchemaVersion/Major").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("SchemaVersion must be 2.x"));
    }
    if doc.get("HostedSystem").is_some() {
        return Err(invalid(
            "HostedSystem is not supported: create the utility VM, then the container \
             with HostingSystemId",
        ));
    }
    match (doc.get("Container"), doc.get("VirtualMachine")) {
        (Some(_), None) => {
            if text("/Container/Storage/Path").is_empty() {
                return Err(invalid("the container has no Storage.Path (its scratch)"));
            }
        }
        (None, Some(_)) => {
            if text("/VirtualMachine/Devices/Scsi/0/Attachments/0/Type") != "VirtualDisk"
                || text("/VirtualMachine/Devices/Scsi/0/Attachments/0/Path").is_empty()
            {
                return Err(invalid(
                    "the utility VM cannot boot: no scratch disk at SCSI 0:0",
                ));
            }
            if doc
                .pointer("/VirtualMachine/Devices/HvSocket/HvSocketConfig")
                .is_none()
            {
                return Err(invalid("the utility VM has no HvSocket configuration"));
            }
            if !vsmb_shares(&doc).iter().any(|s| s == "os") {
                return Err(invalid("the utility VM has no os VSMB share"));
            }
        }
        _ => {
            return Err(invalid(
                "exactly one of Container and VirtualMachine is needed",
            ));
        }
    }
    let hosted_by = doc
        .get("HostingSystemId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let layers = doc
        .pointer("/Container/Storage/Layers")
        .and_then(Value::as_array)
        .map(|layers| {
            layers
                .iter()
                .map(|l| {
                    l.get("Path")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Configuration {
        hyperv: doc.get("VirtualMachine").is_some() || hosted_by.is_some(),
        hosted_by,
        shares: vsmb_shares(&doc),
        layers,
    })
}

/// A utility VM document's VSMB share names.
fn vsmb_shares(doc: &Value) -> Vec<String> {
    doc.pointer("/VirtualMachine/Devices/VirtualSmb/Shares")
        .and_then(Value::as_array)
        .map(|shares| {
            shares
                .iter()
                .filter_map(|s| s.get("Name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a hosted container's layers against its running utility VM's
/// shares: each must be one of them.
pub(super) fn check_layers(config: &Configuration, host_shares: &[String]) -> Result<(), HcsError> {
    for path in &config.layers {
        let shared = path
            .strip_prefix(VSMB_PREFIX)
            .is_some_and(|name| host_shares.iter().any(|s| s == name));
        if !shared {
            return Err(invalid(&format!(
                "layer {path:?} is not a VSMB share of the utility VM"
            )));
        }
    }
    Ok(())
}

/// HCS_E_INVALID_JSON with `message` as its result document's.
pub(super) fn invalid(message: &str) -> HcsError {
    failure(hr::INVALID_JSON, message)
}

/// A failure with a result document carrying `message`.
pub(super) fn failure(hresult: crate::error::Hresult, message: &str) -> HcsError {
    HcsError::with_document(
        hresult,
        &serde_json::json!({"ErrorMessage": message}).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_need_what_hcs_boots() {
        let ok = r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Path":"\\\\?\\Volume{x}\\"}}}"#;
        assert!(check_configuration(ok).is_ok());
        for bad in [
            "{",
            r#"{"SchemaVersion":{"Major":1}}"#,
            r#"{"SchemaVersion":{"Major":2},"Container":{}}"#,
            r#"{"SchemaVersion":{"Major":2},"HostedSystem":{}}"#,
            r#"{"SchemaVersion":{"Major":2},"VirtualMachine":{}}"#,
            r#"{"SchemaVersion":{"Major":2}}"#,
        ] {
            let err = check_configuration(bad).unwrap_err();
            assert!(err.hresult.is_not_supported(), "{bad}: {err:?}");
            assert!(err.detail.is_some(), "{bad}");
        }
    }

    #[test]
    fn hosted_layers_must_be_shares_of_the_vm() {
        let config = Configuration {
            layers: vec![format!("{VSMB_PREFIX}base")],
            ..Configuration::default()
        };
        assert!(check_layers(&config, &["base".to_owned()]).is_ok());
        assert!(check_layers(&config, &["os".to_owned()]).is_err());
    }
}
