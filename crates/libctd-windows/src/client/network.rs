//! A container's HNS namespace, made as hcsshim makes one when a spec
//! gives endpoints and no namespace: created (HNS assigns its id), each
//! endpoint added, its id put in the container's document; deleted when
//! the container goes, and when its set-up or the container's create fails
//! half-way.

use libctd_core::{Error, Result};

use super::{Inner, hcs_error};
use crate::hcs::{Hcs, HcsOp};
use crate::schema::HostComputeNamespace;

impl<H: Hcs> Inner<H> {
    /// Creates the namespace of container `ctr_id` holding `endpoints`;
    /// on failure none is left.
    pub(super) async fn set_up_namespace(
        &self,
        ctr_id: &str,
        endpoints: &[String],
    ) -> Result<String> {
        const OP: &str = "create";
        let settings = serde_json::to_string(&HostComputeNamespace::new()).map_err(|e| {
            Error::system("cannot encode the namespace settings")
                .with_source(e)
                .with_operation(OP)
                .with_container(ctr_id)
        })?;
        let namespace = self
            .hcs
            .create_namespace(&settings)
            .await
            .map_err(|e| hcs_error(e, ctr_id, HcsOp::CreateNamespace, OP))?;
        for endpoint in endpoints {
            if let Err(e) = self.hcs.add_namespace_endpoint(&namespace, endpoint).await {
                let err = hcs_error(e, ctr_id, HcsOp::ModifyNamespace, OP);
                let message = format!(
                    "cannot add HNS endpoint {endpoint:?} to the container's namespace: {}",
                    err.message()
                );
                let err = err.with_message(message);
                if let Err(e) = self.release_namespace(ctr_id, Some(&namespace)).await {
                    tracing::warn!(container_id = ctr_id, error = %e.report(), "deleting a namespace set up half-way");
                }
                return Err(err);
            }
        }
        Ok(namespace)
    }

    /// Deletes a container's namespace, once its compute system is gone;
    /// one gone already is fine (a retried delete).
    pub(super) async fn release_namespace(
        &self,
        ctr_id: &str,
        namespace: Option<&str>,
    ) -> Result<()> {
        let Some(namespace) = namespace else {
            return Ok(());
        };
        match self.hcs.delete_namespace(namespace).await {
            Ok(()) => Ok(()),
            Err(e) if e.hresult.is_not_exist() => Ok(()),
            Err(e) => Err(e.into_error(ctr_id, HcsOp::DeleteNamespace.name())),
        }
    }
}
