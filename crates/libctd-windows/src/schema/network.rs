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
