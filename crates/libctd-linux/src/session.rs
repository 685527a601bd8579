//! What one client and its event subscription share: the connection, the
//! tracked containers, the event dispatcher and the remembered rollbacks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use libctd_core::{
    Backend, Error, EventDispatcher, INIT_PROCESS_ID, Result, validate_container_id,
    validate_process_id,
};

use crate::conn::{Conn, wire_exec_id};
use crate::rollback::Rollbacks;
use crate::shim_exits::ShimExits;
use crate::state::Container;

/// The shared state of a client (its event subscription holds it too).
pub(crate) struct Session {
    /// The connection to containerd, in the client's namespace.
    pub conn: Conn,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Delivers events to the engine, in order per container.
    pub dispatcher: EventDispatcher,
    /// Rollbacks that could not reach containerd yet.
    pub rollbacks: Rollbacks,
}

impl Session {
    /// A session tracking no container.
    pub(crate) fn new(conn: Conn, backend: Arc<dyn Backend>) -> Result<Self> {
        Ok(Self {
            rollbacks: Rollbacks::new(conn.clone()),
            dispatcher: EventDispatcher::for_client(backend, &conn.namespace)?,
            conn,
            containers: Mutex::new(HashMap::new()),
        })
    }

    /// The client's namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.conn.namespace
    }

    /// The init exits kept across the embedded daemon's restarts (see
    /// `shim_exits`); none with an external daemon.
    pub(crate) fn kept_exits(&self) -> Option<&ShimExits> {
        self.conn.shared.shim_exits.as_deref()
    }

    /// The tracked containers, locked (never held across an await).
    pub(crate) fn lock_containers(&self) -> MutexGuard<'_, HashMap<String, Arc<Container>>> {
        crate::sync::lock(&self.containers)
    }

    /// The tracked container `id`, if any.
    pub(crate) fn container(&self, id: &str) -> Option<Arc<Container>> {
        self.lock_containers().get(id).cloned()
    }

    /// Every tracked container.
    pub(crate) fn all_containers(&self) -> Vec<Arc<Container>> {
        self.lock_containers().values().cloned().collect()
    }

    /// The tracked container, or NotFound "no such container".
    pub(crate) fn get(&self, id: &str) -> Result<Arc<Container>> {
        validate_container_id(id)?;
        self.container(id)
            .ok_or_else(|| Error::not_found("no such container").with_container(id))
    }

    /// The tracked container with a task, or NotFound "container is not running".
    pub(crate) fn get_with_task(&self, id: &str) -> Result<Arc<Container>> {
        let c = self.get(id)?;
        if !c.lock().has_task() {
            return Err(Error::not_found("container is not running").with_container(id));
        }
        Ok(c)
    }

    /// A tracked process of a container with a task, and its containerd exec
    /// id. Both ids and `input` (the operation's other checks) are validated
    /// before anything is looked up, so bad input is InvalidArgument whether
    /// or not the container exists.
    pub(crate) fn process(
        &self,
        container_id: &str,
        process_id: &str,
        input: Result<()>,
    ) -> Result<(Arc<Container>, String)> {
        validate_container_id(container_id)?;
        validate_process_id(process_id)?;
        input?;
        let c = self.get_with_task(container_id)?;
        if process_id != INIT_PROCESS_ID && !c.lock().has_process(process_id) {
            return Err(Error::not_found("no such exec").with_process(process_id));
        }
        Ok((c, wire_exec_id(process_id)))
    }

    /// The directory of the namespace's FIFOs.
    pub(crate) fn fifo_dir(&self) -> PathBuf {
        self.conn.shared.fifo_root.join(&self.conn.namespace)
    }
}
