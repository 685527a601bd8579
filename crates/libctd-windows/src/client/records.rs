//! What a restore must know of a container and HCS cannot tell it: the
//! utility VM's own scratch file (and the container's scratch it was
//! granted) and the HNS namespace made for the container. With
//! [`ClientSettings::state_dir`](super::ClientSettings::state_dir) set,
//! they are recorded in `<state_dir>/<namespace>/<id>.json` before the
//! utility VM is set up, forgotten once the container is deleted or its
//! create failed, and released by a restore after an engine restart (or a
//! delete, when that restore failed half-way). Two creates of one id that
//! race share the file: the loser's failure forgets the winner's record
//! (HCS refuses the second compute system; the window is the create).

use std::path::PathBuf;

use libctd_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::{Inner, hcs_error};
use crate::hcs::{Hcs, HcsOp};

/// What outlives the engine of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct Leftovers {
    /// The utility VM's own scratch file (Hyper-V isolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) vm_scratch: Option<String>,
    /// The container's scratch disk the utility VM was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) container_scratch: Option<String>,
    /// The HNS namespace made for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) namespace: Option<String>,
}

impl Leftovers {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl<H: Hcs> Inner<H> {
    fn record_path(&self, id: &str) -> Option<PathBuf> {
        let dir = self.settings.state_dir.as_ref()?;
        Some(dir.join(&self.namespace).join(format!("{id}.json")))
    }

    /// Records `leftovers` of container `id` (nothing without a state
    /// directory or with nothing to record).
    pub(super) async fn record(&self, id: &str, leftovers: &Leftovers) -> Result<()> {
        let Some(path) = self.record_path(id).filter(|_| !leftovers.is_empty()) else {
            return Ok(());
        };
        let failed = |e: std::io::Error| {
            Error::system(format!(
                "cannot record the container's state in {}",
                path.display()
            ))
            .with_source(e)
            .with_container(id)
        };
        let text = serde_json::to_vec(leftovers).map_err(|e| {
            Error::system("cannot encode the container's state")
                .with_source(e)
                .with_container(id)
        })?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(failed)?;
        }
        tokio::fs::write(&path, text).await.map_err(failed)
    }

    /// What was recorded of container `id`; `None` when nothing was.
    pub(super) async fn recorded(&self, id: &str) -> Result<Option<Leftovers>> {
        let Some(path) = self.record_path(id) else {
            return Ok(None);
        };
        let text = match tokio::fs::read(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::system(format!("cannot read {}", path.display()))
                    .with_source(e)
                    .with_container(id));
            }
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            Error::system(format!("{} is not a container's record", path.display()))
                .with_source(e)
                .with_container(id)
        })
    }

    /// Forgets container `id`'s record (one gone already is fine).
    pub(super) async fn forget(&self, id: &str) {
        let Some(path) = self.record_path(id) else {
            return;
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(container_id = id, error = %e, path = %path.display(), "forgetting a container's record");
            }
        }
    }

    /// Releases what `leftovers` names, once utility VM `uvm_id` is gone:
    /// its grants revoked, its scratch removed, the namespace deleted.
    /// Every step is tried; the first failure is returned.
    pub(super) async fn release_leftovers(
        &self,
        id: &str,
        uvm_id: &str,
        leftovers: &Leftovers,
    ) -> Result<()> {
        let mut first: Option<Error> = None;
        for path in [&leftovers.container_scratch, &leftovers.vm_scratch]
            .into_iter()
            .flatten()
        {
            match self.hcs.revoke_vm_access(uvm_id, path).await {
                Err(e) if !e.hresult.is_not_exist() => {
                    first.get_or_insert(hcs_error(e, id, HcsOp::RevokeVmAccess, "restore"));
                }
                _ => {}
            }
        }
        if let Some(path) = &leftovers.vm_scratch
            && let Err(e) = self.hcs.remove_file(path).await
        {
            first.get_or_insert(e.into_error(id, "remove the utility VM's scratch"));
        }
        if let Err(e) = self
            .release_namespace(id, leftovers.namespace.as_deref())
            .await
        {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}
