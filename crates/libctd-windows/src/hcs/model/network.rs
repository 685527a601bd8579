//! HNS namespaces and endpoints, as hcsshim's `hcn` package describes
//! computenetwork.dll: endpoints exist by id (made by a network driver; a
//! test declares them), a namespace is created from its settings and given
//! its id by HNS, endpoints are added to it by id (an unknown endpoint or
//! namespace is ERROR_NOT_FOUND), and it is deleted by id. What is left is
//! the record of leaks.

use std::collections::BTreeMap;

use super::documents::{failure, invalid};
use super::vm::{HostView, VmDevices, not_found, settings};
use super::{Model, hr};
use crate::error::HcsError;
use crate::schema::{
    GuestRequest, HostComputeNamespace, ModifyNamespaceRequest, ModifySettingRequest, NETWORK,
    NETWORK_NAMESPACE, NetworkAdapter, NetworkModifyRequest,
};

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
                return Err(not_found(&format!("endpoint {endpoint:?}")));
            }
            let endpoints = w
                .namespaces
                .get_mut(namespace)
                .ok_or_else(|| not_found(&format!("namespace {namespace:?}")))?;
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

    /// HcnOpenNamespace: namespace `namespace` exists (ERROR_NOT_FOUND
    /// otherwise).
    pub fn open_namespace(&self, namespace: &str) -> Result<(), HcsError> {
        self.read(|w| {
            if w.namespaces.contains_key(namespace) {
                Ok(())
            } else {
                Err(HcsError::new(hr::NOT_FOUND))
            }
        })
    }

    /// HcnDeleteNamespace.
    pub fn delete_namespace(&self, namespace: &str) -> Result<(), HcsError> {
        self.with(|w| match w.namespaces.remove(namespace) {
            Some(_) => Ok(()),
            None => Err(not_found(&format!("namespace {namespace:?}"))),
        })
    }

    /// The namespaces that exist, with their endpoints (the record of leaks).
    pub fn namespaces(&self) -> BTreeMap<String, Vec<String>> {
        self.read(|w| w.namespaces.clone())
    }

    /// HcnQueryEndpointProperties: endpoint `id`'s properties (its id and
    /// the MAC address HNS gave it); an unknown one is ERROR_NOT_FOUND.
    pub fn endpoint_properties(&self, id: &str) -> Result<String, HcsError> {
        self.read(|w| {
            if !w.endpoints.contains(id) {
                return Err(not_found(&format!("endpoint {id:?}")));
            }
            let doc = serde_json::json!({
                "ID": id,
                "MacAddress": mac_of(id),
                "SchemaVersion": {"Major": 2, "Minor": 0},
            });
            Ok(doc.to_string())
        })
    }

    /// The network adapters of running utility VMs: (VM id, adapter id,
    /// endpoint id), the record of leaks.
    pub fn adapters(&self) -> Vec<(String, String, String)> {
        self.read(|w| {
            let mut all: Vec<_> = w
                .running_vms()
                .flat_map(|s| {
                    let vm = &s.id;
                    let adapters = s.devices.adapters.iter();
                    adapters.map(|(a, n)| (vm.clone(), a.clone(), n.endpoint_id.clone()))
                })
                .collect();
            all.sort();
            all
        })
    }

    /// The namespaces added to running utility VMs' guests: (VM id,
    /// namespace id).
    pub fn guest_namespaces(&self) -> Vec<(String, String)> {
        self.read(|w| {
            let mut all: Vec<_> = w
                .running_vms()
                .flat_map(|s| {
                    s.devices
                        .namespaces
                        .iter()
                        .map(|n| (s.id.clone(), n.clone()))
                })
                .collect();
            all.sort();
            all
        })
    }
}

/// The MAC address HNS gives endpoint `id` (Hyper-V's 00-15-5D prefix).
pub(super) fn mac_of(id: &str) -> String {
    let h = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let [_, a, b, c] = h.to_be_bytes();
    format!("00-15-5D-{a:02X}-{b:02X}-{c:02X}")
}

impl VmDevices {
    /// A network adapter added or removed (with its guest request), as
    /// hcsshim does for a Windows guest: added once the guest has a
    /// namespace and was told of the adapter (`PreAdd`), for an endpoint
    /// HNS knows with its MAC address, never twice, never for an endpoint
    /// another running VM has.
    pub(super) fn apply_adapter(
        &mut self,
        id: &str,
        request: &ModifySettingRequest,
        host: &HostView<'_>,
    ) -> Result<(), HcsError> {
        let kind = request.request_type.as_deref().unwrap_or("");
        let adapter: NetworkAdapter = settings(request.settings.as_ref())?;
        let guest = request
            .guest_request
            .as_ref()
            .ok_or_else(|| invalid("a Windows guest's adapter needs its guest request"))?;
        let nic: NetworkModifyRequest = settings(Some(&guest.settings))?;
        if nic.adapter_id != id || nic.request_type != kind || guest.request_type != kind {
            return Err(invalid(
                "the guest request names another adapter or request",
            ));
        }
        match kind {
            "Add" => {
                if guest.resource_type != NETWORK {
                    return Err(invalid("an adapter's guest request is of type Network"));
                }
                let endpoint = &adapter.endpoint_id;
                if !host.endpoints.contains(endpoint) {
                    return Err(not_found(&format!("endpoint {endpoint:?}")));
                }
                if adapter.mac_address != mac_of(endpoint) {
                    return Err(invalid(&format!("{endpoint:?} has another MAC address")));
                }
                if self.adapters.contains_key(id) || host.attached.contains(endpoint) {
                    return Err(failure(
                        hr::ALREADY_EXISTS,
                        &format!("adapter {id:?} or endpoint {endpoint:?} is attached"),
                    ));
                }
                if !self.pre_added.remove(id) {
                    return Err(failure(
                        hr::INVALID_STATE,
                        "the guest was not told (PreAdd)",
                    ));
                }
                self.adapters.insert(id.to_owned(), adapter);
                Ok(())
            }
            "Remove" if self.adapters.remove(id).is_some() => Ok(()),
            "Remove" => Err(not_found(&format!("network adapter {id:?}"))),
            _ => Err(invalid(&format!("RequestType {kind:?}"))),
        }
    }

    /// A guest-only network request: a namespace added or removed, an
    /// adapter announced.
    pub(super) fn apply_guest_network(&mut self, guest: &GuestRequest) -> Result<(), HcsError> {
        let kind = guest.request_type.as_str();
        if guest.resource_type == NETWORK_NAMESPACE {
            let ns: HostComputeNamespace = settings(Some(&guest.settings))?;
            return match kind {
                "Add" if !self.namespaces.insert(ns.id.clone()) => Err(failure(
                    hr::ALREADY_EXISTS,
                    &format!("the guest has namespace {:?}", ns.id),
                )),
                "Add" => Ok(()),
                "Remove" if !self.adapters.is_empty() => Err(failure(
                    hr::INVALID_STATE,
                    "the namespace still has adapters",
                )),
                "Remove" if self.namespaces.remove(&ns.id) => Ok(()),
                "Remove" => Err(not_found(&format!("guest namespace {:?}", ns.id))),
                _ => Err(invalid(&format!("RequestType {kind:?}"))),
            };
        }
        let nic: NetworkModifyRequest = settings(Some(&guest.settings))?;
        if kind != "Add" || nic.request_type != "PreAdd" {
            return Err(invalid(
                "a Network guest request alone announces an adapter",
            ));
        }
        if self.namespaces.is_empty() {
            return Err(failure(
                hr::INVALID_STATE,
                "the guest has no network namespace",
            ));
        }
        self.pre_added.insert(nic.adapter_id);
        Ok(())
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
        m.open_namespace(&ns).unwrap();
        m.delete_namespace(&ns).unwrap();
        assert!(m.open_namespace(&ns).unwrap_err().hresult.is_not_exist());
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
