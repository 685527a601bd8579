//! HNS namespaces and endpoints, as hcsshim's `hcn` package describes
//! computenetwork.dll: endpoints exist by id (made by a network driver; a
//! test declares them), a namespace is created from its settings and given
//! its id by HNS, endpoints are added to it by id (an unknown endpoint or
//! namespace is ERROR_NOT_FOUND), and it is deleted by id. What is left is
//! the record of leaks.

use std::collections::BTreeMap;

use super::documents::{failure, invalid};
use super::{Model, hr};
use crate::error::HcsError;
use crate::schema::{HostComputeNamespace, ModifyNamespaceRequest};

/// The namespace types HNS knows.
const TYPES: &[&str] = &["", "Host", "HostDefault", "Guest", "GuestDefault"];

impl Model {
    /// Declares HNS endpoint `id` (made by a network driver).
    pub fn add_endpoint(&self, id: &str) {
        self.with(|w| w.endpoints.insert(id.to_owned()));
    }

    /// HcnCreateNamespace: the settings decode strictly; HNS assigns the id.
    pub fn create_namespace(&self, settings: &str) -> Result<String, HcsError> {
        let ns: HostComputeNamespace =
            serde_json::from_str(settings).map_err(|e| invalid(&e.to_string()))?;
        if ns.schema_version.major != 2 || !TYPES.contains(&ns.kind.as_str()) {
            return Err(invalid("the namespace needs schema 2 and a known Type"));
        }
        if !ns.id.is_empty() {
            return Err(invalid("HNS assigns a namespace's ID"));
        }
        self.with(|w| {
            w.next_namespace += 1;
            let id = format!("6e5f0000-0000-4000-8000-{:012x}", w.next_namespace);
            w.namespaces.insert(id.clone(), Vec::new());
            Ok(id)
        })
    }

    /// HcnModifyNamespace: adds an existing endpoint to an existing
    /// namespace.
    pub fn modify_namespace(&self, namespace: &str, request: &str) -> Result<(), HcsError> {
        let request: ModifyNamespaceRequest =
            serde_json::from_str(request).map_err(|e| invalid(&e.to_string()))?;
        if request.resource_type != "Endpoint" || request.request_type != "Add" {
            return Err(failure(
                hr::NOT_SUPPORTED,
                "the model adds endpoints to namespaces only",
            ));
        }
        let endpoint = request.settings.endpoint_id;
        self.with(|w| {
            if !w.endpoints.contains(&endpoint) {
                return Err(failure(hr::NOT_FOUND, &format!("no endpoint {endpoint:?}")));
            }
            let endpoints = w
                .namespaces
                .get_mut(namespace)
                .ok_or_else(|| failure(hr::NOT_FOUND, &format!("no namespace {namespace:?}")))?;
            if endpoints.contains(&endpoint) {
                return Err(failure(
                    hr::ALREADY_EXISTS,
                    &format!("endpoint {endpoint:?} is in the namespace"),
                ));
            }
            endpoints.push(endpoint);
            Ok(())
        })
    }

    /// HcnDeleteNamespace.
    pub fn delete_namespace(&self, namespace: &str) -> Result<(), HcsError> {
        self.with(|w| match w.namespaces.remove(namespace) {
            Some(_) => Ok(()),
            None => Err(failure(
                hr::NOT_FOUND,
                &format!("no namespace {namespace:?}"),
            )),
        })
    }

    /// The namespaces that exist, with their endpoints (the record of leaks).
    pub fn namespaces(&self) -> BTreeMap<String, Vec<String>> {
        self.read(|w| w.namespaces.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::model;
    use super::*;

    fn add(id: &str) -> String {
        serde_json::to_string(&ModifyNamespaceRequest::add_endpoint(id)).unwrap()
    }

    #[test]
    fn namespaces_hold_known_endpoints_until_deleted() {
        let (m, _) = model();
        let settings = serde_json::to_string(&HostComputeNamespace::new()).unwrap();
        let ns = m.create_namespace(&settings).unwrap();
        assert!(
            m.modify_namespace(&ns, &add("e1")).is_err(),
            "unknown endpoint"
        );
        m.add_endpoint("e1");
        m.modify_namespace(&ns, &add("e1")).unwrap();
        assert!(
            m.modify_namespace(&ns, &add("e1")).is_err(),
            "added already"
        );
        assert!(m.modify_namespace("nope", &add("e1")).is_err());
        assert_eq!(m.namespaces()[&ns], ["e1"]);
        m.delete_namespace(&ns).unwrap();
        assert!(m.delete_namespace(&ns).unwrap_err().hresult.is_not_exist());
        assert!(m.namespaces().is_empty());
        for bad in [
            "{",
            r#"{"SchemaVersion":{"Major":2,"Minor":0},"Bogus":1}"#,
            r#"{"SchemaVersion":{"Major":1,"Minor":0}}"#,
            r#"{"SchemaVersion":{"Major":2,"Minor":0},"Type":"Nope"}"#,
        ] {
            assert!(m.create_namespace(bad).is_err(), "{bad}");
        }
    }
}
