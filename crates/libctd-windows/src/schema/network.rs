//! Host Networking Service (computenetwork.dll) documents, as hcsshim's
//! `hcn` package names them: a namespace's settings and the request that
//! adds an endpoint to it.
//!
//! ```
//! use libctd_windows::schema::{HostComputeNamespace, ModifyNamespaceRequest};
//!
//! assert_eq!(
//!     serde_json::to_string(&HostComputeNamespace::new()).unwrap(),
//!     r#"{"SchemaVersion":{"Major":2,"Minor":0}}"#
//! );
//! assert_eq!(
//!     serde_json::to_string(&ModifyNamespaceRequest::add_endpoint("e1")).unwrap(),
//!     r#"{"ResourceType":"Endpoint","RequestType":"Add","Settings":{"EndpointId":"e1"}}"#
//! );
//! ```

use serde::{Deserialize, Serialize};

use super::SchemaVersion;

/// An HNS namespace (`HcnCreateNamespace`'s settings, and what its
/// properties query answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HostComputeNamespace {
    /// Its id (assigned by HNS; absent in the settings).
    #[serde(rename = "ID", default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `Host`, `HostDefault`, `Guest` or `GuestDefault`; absent for a
    /// container's own namespace.
    #[serde(rename = "Type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The HNS schema version (2.0).
    pub schema_version: SchemaVersion,
}

impl HostComputeNamespace {
    /// The settings of a container's namespace, as hcsshim creates it.
    pub fn new() -> Self {
        Self {
            id: String::new(),
            kind: String::new(),
            schema_version: SchemaVersion { major: 2, minor: 0 },
        }
    }
}

impl Default for HostComputeNamespace {
    fn default() -> Self {
        Self::new()
    }
}

/// An `HcnModifyNamespace` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyNamespaceRequest {
    /// `Endpoint` or `Container`.
    pub resource_type: String,
    /// `Add` or `Remove`.
    pub request_type: String,
    /// The endpoint.
    pub settings: NamespaceEndpoint,
}

/// The endpoint a namespace request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NamespaceEndpoint {
    /// The HNS endpoint's id.
    pub endpoint_id: String,
}

impl ModifyNamespaceRequest {
    /// Adds endpoint `id` to the namespace.
    pub fn add_endpoint(id: &str) -> Self {
        Self {
            resource_type: "Endpoint".to_owned(),
            request_type: "Add".to_owned(),
            settings: NamespaceEndpoint {
                endpoint_id: id.to_owned(),
            },
        }
    }
}

/// A guest request's resource type: a network adapter.
pub const NETWORK: &str = "Network";
/// A guest request's resource type: a network namespace.
pub const NETWORK_NAMESPACE: &str = "NetworkNamespace";

/// The resource path of a utility VM's network adapter `id`.
pub fn network_adapter_path(id: &str) -> String {
    format!("VirtualMachine/Devices/NetworkAdapters/{id}")
}

/// A utility VM's network adapter (schema 2): the HNS endpoint behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NetworkAdapter {
    /// The HNS endpoint's id.
    pub endpoint_id: String,
    /// The endpoint's MAC address, as HNS gives it.
    pub mac_address: String,
}

/// What a Windows guest is asked about one of its network adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NetworkModifyRequest {
    /// The adapter's id (the one in its resource path).
    pub adapter_id: String,
    /// `PreAdd`, `Add` or `Remove`.
    pub request_type: String,
    /// With `PreAdd`: the HNS endpoint's properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
}

/// The properties of an HNS endpoint libctd reads (HNS answers more).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostComputeEndpoint {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its MAC address.
    #[serde(default)]
    pub mac_address: String,
}

impl super::ModifySettingRequest {
    /// Asks a Windows guest to add namespace `id` (before its adapters).
    pub fn add_guest_namespace(id: &str) -> Self {
        Self::guest_namespace(id, "Add")
    }

    /// Asks a Windows guest to remove namespace `id` (after its adapters).
    pub fn remove_guest_namespace(id: &str) -> Self {
        Self::guest_namespace(id, "Remove")
    }

    fn guest_namespace(id: &str, request_type: &str) -> Self {
        let mut namespace = HostComputeNamespace::new();
        id.clone_into(&mut namespace.id);
        Self::guest(NETWORK_NAMESPACE, request_type, &namespace)
    }

    /// Tells a Windows guest that adapter `adapter` for the endpoint whose
    /// properties are `endpoint` is coming (a guest request only).
    pub fn pre_add_adapter(adapter: &str, endpoint: &serde_json::Value) -> Self {
        let request = NetworkModifyRequest {
            adapter_id: adapter.to_owned(),
            request_type: "PreAdd".to_owned(),
            settings: Some(endpoint.clone()),
        };
        Self::guest(NETWORK, "Add", &request)
    }

    /// Adds network adapter `adapter` for `endpoint` to the VM, and tells
    /// the guest.
    pub fn add_adapter(adapter: &str, endpoint: &NetworkAdapter) -> Self {
        let mut request = Self::host(
            network_adapter_path(adapter),
            "Add",
            super::vm::settings(endpoint),
        );
        request.guest_request =
            Self::guest(NETWORK, "Add", &Self::nic(adapter, "Add")).guest_request;
        request
    }

    /// Removes network adapter `adapter` (of `endpoint`) from the VM; the
    /// guest request names no resource type, as hcsshim sends it.
    pub fn remove_adapter(adapter: &str, endpoint: &NetworkAdapter) -> Self {
        let mut request = Self::host(
            network_adapter_path(adapter),
            "Remove",
            super::vm::settings(endpoint),
        );
        request.guest_request =
            Self::guest("", "Remove", &Self::nic(adapter, "Remove")).guest_request;
        request
    }

    fn nic(adapter: &str, request_type: &str) -> NetworkModifyRequest {
        NetworkModifyRequest {
            adapter_id: adapter.to_owned(),
            request_type: request_type.to_owned(),
            settings: None,
        }
    }
}
