//! A container's HNS endpoints: the namespace made for it holds them.

use libctd_core::Result;
use libctd_core::oci_spec::runtime::Windows;

use super::invalid;

/// The HNS endpoints (`windows.network.endpointList`) of a namespace to
/// create for the container, as hcsshim does when no namespace is given
/// (with Hyper-V isolation they also become its utility VM's adapters).
pub(super) fn endpoints(windows: &Windows) -> Result<Vec<String>> {
    let Some(network) = windows.network() else {
        return Ok(Vec::new());
    };
    let endpoints = network.endpoint_list().clone().unwrap_or_default();
    if endpoints.is_empty() {
        return Ok(endpoints);
    }
    const FIELD: &str = "windows.network.endpointList";
    if network
        .network_namespace()
        .as_ref()
        .is_some_and(|n| !n.is_empty())
    {
        return Err(invalid(
            FIELD,
            "cannot be combined with windows.network.networkNamespace: give one",
        ));
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        if endpoint.trim().is_empty() {
            return Err(invalid(&format!("{FIELD}[{i}]"), "is empty"));
        }
    }
    Ok(endpoints)
}
