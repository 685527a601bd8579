//! A container's lifecycle: create, start, delete its task, delete it; the
//! rollback of a create or start that failed part-way; the exits owed when
//! a task goes away.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::{
    Container as ContainerProto, CreateContainerRequest, CreateTaskRequest,
};
use containerd_client::types::Mount;
use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    CreateOptions, Error, ErrorKind, EventType, INIT_PROCESS_ID, Result, Status, StdioCallback,
    TaskExit, validate_container_id,
};
use libctd_image::reference::normalise;

use crate::backoff::Backoff;
use crate::bundles;
use crate::client::exec::attach_process;
use crate::client::queries::{criu_error, task_status};
use crate::conn::LeaseId;
use crate::convert::{self, status_error};
use crate::events::{self, TaskEvent};
use crate::fifo::FifoSet;
use crate::image_store::{LEASE_EXPIRE_LABEL, rfc3339};
use crate::images::{self, prefixed};
use crate::rollback::{Rollback, unreachable};
use crate::session::Session;
use crate::state::{Container, RootSnapshot};

/// The runtime used when [`CreateOptions::runtime`] is unset.
pub const DEFAULT_RUNTIME: &str = "io.containerd.runc.v2";

/// The annotation (and label) by which containerd's runc shim groups
/// containers into one shim (the shim reads the spec's annotation). With
/// [`shim_group`](crate::LinuxRemoteBuilder::shim_group), create sets it
/// to the group's name in both.
pub const SHIM_GROUP_KEY: &str = "io.containerd.runc.v2.group";

/// Processes whose exit has not come yet (an exec killed with its init,
/// an exit still on its way) get their real status while the task exists.
async fn exits_before_task_delete(s: &Arc<Session>, c: &Arc<Container>) {
    let owed = c.lock().any_exit_owed();
    if owed {
        events::reconcile_container(s, c, |_| true).await;
    }
}

/// Forgets the task's processes and releases their streams. The task is
/// gone: a started process whose exit never came gets one now, with an
/// unknown status, so that nobody waits for it for ever.
pub(crate) async fn drop_task_state(s: &Session, c: &Container) {
    let (oom, processes) = {
        let mut st = c.lock();
        (st.oom(), st.take_processes())
    };
    for (process_id, p) in processes {
        if p.exit_owed() {
            let info = events::lost_exit(
                &c.id,
                &process_id,
                p.pid(),
                oom,
                "the task was deleted before the process's exit was reported",
            );
            s.dispatcher.dispatch(EventType::Exit, info);
        }
        p.release().await;
    }
}

/// Forgets the init exit kept for the id across a daemon restart, if any
/// (see `shim_exits`): its task was deleted, or the id is new.
fn forget_kept_exit(s: &Session, id: &str) {
    if let Some(kept) = s.kept_exits() {
        kept.forget(s.namespace(), id);
    }
}

/// Creates the container record; on failure leaves nothing.
pub(crate) async fn create(
    s: Arc<Session>,
    id: String,
    spec: Spec,
    options: CreateOptions,
) -> Result<()> {
    let snapshot = match &options.image {
        Some(image) => {
            crate::validate::image_spec(&spec, image)?;
            Some(RootSnapshot {
                snapshotter: image
                    .snapshotter
                    .clone()
                    .unwrap_or_else(|| images::DEFAULT_SNAPSHOTTER.to_owned()),
                key: id.clone(),
            })
        }
        None => {
            crate::validate::spec(&spec)?;
            None
        }
    };
    if let Some(runtime) = &options.runtime {
        crate::validate::runtime(runtime)?;
    }
    let decoded = match &options.runtime_options {
        Some(o) => crate::runc::decode(o)?,
        None => crate::runc::Decoded::default(),
    };
    if s.container(&id).is_some() {
        return Err(Error::already_exists("container already exists"));
    }
    s.rollbacks.settle(&id).await?;
    let shared = &s.conn.shared;
    let mut runc = decoded.options;
    if decoded.runtime_args.is_empty() {
        crate::runtimes::check_path(&runc.binary_name)?;
    } else {
        // The shim's options name a binary, never its flags: it runs a
        // script that adds them.
        runc.binary_name = crate::runtimes::with_args(
            &shared.runtime_dir,
            &runc.binary_name,
            &decoded.runtime_args,
        )?;
    }
    // The runc shim groups containers by the spec's annotation (it reads the
    // bundle's config.json); the container label alone does not reach it.
    let spec = match &shared.shim_group {
        Some(group) => {
            let mut spec = spec;
            let mut annotations = spec.annotations().clone().unwrap_or_default();
            annotations.insert(SHIM_GROUP_KEY.to_owned(), group.clone());
            spec.set_annotations(Some(annotations));
            spec
        }
        None => spec,
    };
    let spec_any = convert::json_any(convert::SPEC_TYPE_URL, &spec)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if runc.root.is_empty() {
        // runc's state stays under the remote's state directory.
        runc.root = shared.runc_root.to_string_lossy().into_owned();
    }
    let container = Arc::new(
        Container::new(id.clone(), s.fifo_dir(), terminal, runc.clone())
            .with_snapshot(snapshot.clone()),
    );
    {
        let mut map = s.lock_containers();
        if map.contains_key(&id) {
            return Err(Error::already_exists("container already exists"));
        }
        map.insert(id.clone(), container);
    }
    // The image's snapshot first, under a lease until the record holds it.
    let lease = match (&options.image, &snapshot) {
        (Some(image), Some(snapshot)) => match prepare_rootfs(&s, &image.image, snapshot).await {
            Ok(lease) => Some(lease),
            Err(e) => {
                s.lock_containers().remove(&id);
                return Err(e);
            }
        },
        _ => None,
    };
    let mut labels: HashMap<String, String> = options.labels.clone().into_iter().collect();
    if let Some(group) = &shared.shim_group {
        labels.insert(SHIM_GROUP_KEY.into(), group.clone());
    }
    let runtime = options
        .runtime
        .clone()
        .unwrap_or_else(|| DEFAULT_RUNTIME.to_owned());
    let runc_options = Some(convert::proto_any(&runc));
    let req = CreateContainerRequest {
        container: Some(ContainerProto {
            id: id.clone(),
            labels,
            runtime: Some(Runtime {
                name: runtime,
                options: runc_options,
            }),
            spec: Some(spec_any),
            // As import recorded it (validated above, so it normalises).
            image: options
                .image
                .as_ref()
                .map(|i| normalise(&i.image).unwrap_or_else(|_| i.image.clone()))
                .unwrap_or_default(),
            snapshotter: snapshot
                .as_ref()
                .map(|r| r.snapshotter.clone())
                .unwrap_or_default(),
            snapshot_key: snapshot.as_ref().map(|r| r.key.clone()).unwrap_or_default(),
            ..Default::default()
        }),
    };
    let created = s.conn.api.create_container(req).await;
    let failed = match created {
        Ok(()) => None,
        Err(status) => {
            s.lock_containers().remove(&id);
            let e = status_error(status);
            if unreachable(&e) {
                // containerd may have made the record before it went away.
                s.rollbacks.roll_back(&id, Rollback::Container).await;
            }
            if let Some(snapshot) = snapshot {
                s.rollbacks
                    .roll_back(&id, Rollback::Snapshot(snapshot))
                    .await;
            }
            Some(e)
        }
    };
    // The record holds the snapshot now (or it is gone): the lease goes,
    // and if containerd cannot be reached, before the id is used again.
    if let Some(lease) = lease {
        s.rollbacks
            .roll_back(&id, Rollback::Lease(lease.as_str().to_owned()))
            .await;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // The id is new: an exit kept for an earlier container of that id is
    // nobody's now.
    forget_kept_exit(&s, &id);
    Ok(())
}

/// Prepares the active snapshot `snapshot` over image `image`'s layers,
/// under a lease of its own (the garbage collector would otherwise be free
/// to take it before the container record names it); the lease. What a
/// failure may have left (the lease, the snapshot when containerd was not
/// reached) is rolled back.
async fn prepare_rootfs(s: &Session, image: &str, snapshot: &RootSnapshot) -> Result<LeaseId> {
    let store = s.conn.store()?;
    let parent = images::rootfs_parent(store, image, &snapshot.snapshotter).await?;
    let what = format!(
        "image {image:?}: snapshot {:?} in snapshotter {:?}",
        snapshot.key, snapshot.snapshotter
    );
    let lease = LeaseId::new(&create_lease_id(&snapshot.key))?;
    let rollback_lease = Rollback::Lease(lease.as_str().to_owned());
    // Deleted once the record holds the snapshot; if the engine dies
    // before, it expires.
    let expire = HashMap::from([(
        LEASE_EXPIRE_LABEL.to_owned(),
        rfc3339(SystemTime::now() + CREATE_LEASE_EXPIRY),
    )]);
    match store.lease_create(&lease, expire).await {
        Ok(_) => {}
        // One left by a create that died: it is this create's now.
        Err(st) if st.code() == tonic::Code::AlreadyExists => {}
        Err(st) => {
            let e = status_error(st);
            if unreachable(&e) {
                // containerd may have made it before it went away.
                s.rollbacks.roll_back(&snapshot.key, rollback_lease).await;
            }
            return Err(prefixed(e, &format!("{what}: creating its lease")));
        }
    }
    let prepare = PrepareSnapshotRequest {
        snapshotter: snapshot.snapshotter.clone(),
        key: snapshot.key.clone(),
        parent,
        labels: HashMap::new(),
    };
    match store.snapshot_prepare(Some(&lease), prepare).await {
        Ok(_) => Ok(lease),
        Err(st) => {
            let e = status_error(st);
            if unreachable(&e) {
                // containerd may have prepared it before it went away.
                s.rollbacks
                    .roll_back(&snapshot.key, Rollback::Snapshot(snapshot.clone()))
                    .await;
            }
            s.rollbacks.roll_back(&snapshot.key, rollback_lease).await;
            Err(match e.kind() {
                ErrorKind::AlreadyExists => e.with_message(format!(
                    "{what} already exists (left by an earlier container of this id?)"
                )),
                _ => prefixed(e, &format!("{what}: preparing it")),
            })
        }
    }
}

/// How long a create's lease outlives an engine that died creating.
const CREATE_LEASE_EXPIRY: Duration = Duration::from_secs(3600);

/// The lease a create of a container with root filesystem snapshot `key`
/// prepares it under.
fn create_lease_id(key: &str) -> String {
    format!("libctd-create-{key}")
}

/// Creates and starts the container's task; on failure leaves nothing.
pub(crate) async fn start(
    s: Arc<Session>,
    id: String,
    checkpoint_dir: Option<PathBuf>,
    with_stdin: bool,
    attach: StdioCallback,
) -> Result<u32> {
    validate_container_id(&id)?;
    if let Some(dir) = &checkpoint_dir
        && !dir.is_absolute()
    {
        return Err(Error::invalid_argument(format!(
            "checkpoint directory {} must be absolute",
            dir.display()
        )));
    }
    let c = s.get(&id)?;
    let _guard = c.lifecycle.lock().await;
    if c.lock().has_task() {
        return Err(Error::already_exists("container is already started"));
    }
    s.rollbacks.settle(&id).await?;
    let rootfs = match &c.snapshot {
        Some(snapshot) => rootfs_mounts(&s, snapshot).await?,
        None => Vec::new(),
    };
    let terminal = c.terminal;
    let fifos = FifoSet::new(&c.dir, &c.id, INIT_PROCESS_ID, with_stdin, terminal);
    let proc = attach_process(&s, &c, INIT_PROCESS_ID, fifos, attach, false)?;
    let fifos = proc.fifos().clone();
    c.lock().begin_start(proc);
    let mut runc = c.runc.clone();
    if let Some(dir) = &checkpoint_dir {
        runc.criu_image_path = dir.to_string_lossy().into_owned();
    }
    let options = Some(convert::proto_any(&runc));
    let create = CreateTaskRequest {
        container_id: id.clone(),
        rootfs,
        stdin: FifoSet::wire(&fifos.stdin),
        stdout: FifoSet::wire(&fifos.stdout),
        stderr: FifoSet::wire(&fifos.stderr),
        terminal,
        options,
        ..Default::default()
    };
    // CRIU restoring a checkpoint takes as long as the image needs.
    let bounded = checkpoint_dir.is_none();
    match s.conn.api.create_task(create, bounded).await {
        // Known from here on, the pid tells this process's exit from a
        // previous task's (one a rollback killed) still on its way.
        Ok(created) => c.lock().set_pid(INIT_PROCESS_ID, created.pid),
        Err(status) => {
            let e = status_error(status);
            // Forgotten first, so that the exit of what the rollback
            // kills is not taken as this process's.
            drop_task_state(&s, &c).await;
            // A task the shim made before the failure (containerd died,
            // the deadline passed, runc failed half-way) goes too; a
            // task that already existed is not this start's to kill.
            if e.kind() != ErrorKind::AlreadyExists {
                s.rollbacks.roll_back(&id, Rollback::Task).await;
            }
            return Err(match checkpoint_dir {
                Some(_) => criu_error(e, "restoring a checkpoint").await,
                None => e,
            });
        }
    }
    let pid = match s.conn.api.start(&id, "").await {
        Ok(pid) => pid,
        Err(status) => {
            let e = status_error(status);
            // Leave nothing behind, so start can be retried; forgotten
            // first, so that the killed process's exit is not delivered.
            drop_task_state(&s, &c).await;
            s.rollbacks.roll_back(&id, Rollback::Task).await;
            return Err(e);
        }
    };
    let held = c.lock().mark_started(INIT_PROCESS_ID, pid);
    if let Some(exit) = held {
        events::handle(&s, TaskEvent::Exit(exit));
    }
    Ok(pid)
}

/// The mounts of a container's root filesystem snapshot.
async fn rootfs_mounts(s: &Session, snapshot: &RootSnapshot) -> Result<Vec<Mount>> {
    s.conn
        .store()?
        .snapshot_mounts(&snapshot.snapshotter, &snapshot.key)
        .await
        .map_err(|st| {
            let e = status_error(st);
            let message = format!(
                "the container's root filesystem, snapshot {:?} in snapshotter {:?}: {}",
                snapshot.key,
                snapshot.snapshotter,
                e.message()
            );
            e.with_message(message)
        })
}

/// Deletes the container's stopped task; its exit status.
pub(crate) async fn delete_task(s: Arc<Session>, id: String) -> Result<TaskExit> {
    let c = s.get(&id)?;
    let _guard = c.lifecycle.lock().await;
    // Once the init exit has arrived the task is known to be stopped: the
    // status query is only needed before (one RPC less per lifecycle).
    let init_exited = c.lock().init_exit_delivered();
    // NotFound from the status query: the task is gone already, and a
    // Tasks.Delete would only say so again.
    let mut gone = None;
    if !init_exited {
        match task_status(&s, &id).await {
            Ok(status @ (Status::Running | Status::Paused | Status::Pausing)) => {
                return Err(Error::failed_precondition(format!(
                    "the task is {status}: it must stop before it is deleted"
                )));
            }
            Ok(_) => {}
            // A task containerd dropped may have a kept exit (see below).
            Err(e) if e.kind() == ErrorKind::NotFound => gone = Some(e),
            Err(e) => return Err(e),
        }
    }
    exits_before_task_delete(&s, &c).await;
    // A twin an earlier delete of the id left would make this one leave
    // the bundle (see `bundles`).
    bundles::clear_left_behind(&s.conn, &id);
    let deleted = match gone {
        Some(e) => Err(e),
        None => match s.conn.api.delete_task(&id).await.map_err(status_error) {
            // The shim that ran it may have died: containerd cannot ask it
            // to delete, and drops the task itself shortly after. (A
            // NotFound says it is gone already: no status query needed.)
            Err(e)
                if init_exited
                    && e.kind() != ErrorKind::NotFound
                    && !unreachable(&e)
                    && dropped_with_its_shim(&s, &id).await =>
            {
                Err(Error::not_found("the task is gone with its shim"))
            }
            other => other,
        },
    };
    let resp = match deleted {
        Ok(r) => r,
        Err(e) => {
            if e.kind() != ErrorKind::NotFound {
                return Err(e);
            }
            bundles::clear_left_behind(&s.conn, &id);
            // 1.7 and 2.x drop a task whose process died while they were
            // down; the exit kept for it (of this init, when this client
            // tracks one) is the answer, once.
            let (pid, delivered) = {
                let state = c.lock();
                (state.pid_of(INIT_PROCESS_ID), state.delivered_init_exit())
            };
            let kept = s.kept_exits().and_then(|k| k.take(s.namespace(), &id, pid));
            // The exit this client delivered comes first: containerd
            // published it before it dropped the task (its shim died, or
            // the daemon restarted while deleting it, which may also leave
            // a record of a shim "gone"). Else the one kept across the
            // daemon's start, claimed once.
            let exit = match (delivered, kept) {
                (Some(exit), _) => exit,
                (None, Some(exit)) => exit.task_exit(),
                (None, None) => return Err(e.with_message("container is not running")),
            };
            drop_task_state(&s, &c).await;
            return Ok(exit);
        }
    };
    // containerd had the task (1.6 keeps a stopped one): whatever was kept
    // for it is answered now. Its bundle is gone, unless an earlier delete
    // of the id was cut short (see `bundles`).
    bundles::clear_left_behind(&s.conn, &id);
    forget_kept_exit(&s, &id);
    drop_task_state(&s, &c).await;
    Ok(TaskExit::new(
        resp.exit_status,
        convert::time_from_proto(resp.exited_at.as_ref()).unwrap_or_else(SystemTime::now),
    ))
}

/// How long `delete_task` waits for containerd to drop the task of a shim
/// that died (containerd cleans up after a dead shim on its own, as soon as
/// its connection to the shim closes).
const DEAD_SHIM_CLEANUP: Duration = Duration::from_secs(3);

/// Whether the task of `id` is gone, or goes within [`DEAD_SHIM_CLEANUP`].
async fn dropped_with_its_shim(s: &Session, id: &str) -> bool {
    let deadline = tokio::time::Instant::now() + DEAD_SHIM_CLEANUP;
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
    loop {
        if task_status(s, id)
            .await
            .is_err_and(|e| e.kind() == ErrorKind::NotFound)
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Deletes the container (its stopped task too) and its FIFO directory.
pub(crate) async fn delete(s: Arc<Session>, id: String) -> Result<()> {
    let c = s.get(&id)?;
    let _guard = c.lifecycle.lock().await;
    s.rollbacks.settle(&id).await?;
    // Without a task known to this client (never started, or its task
    // deleted through it) there is nothing to check: one RPC less.
    let has_task = c.lock().has_task();
    if has_task {
        match task_status(&s, &id).await {
            Ok(Status::Stopped) => {
                exits_before_task_delete(&s, &c).await;
                s.conn.api.delete_task(&id).await.map_err(status_error)?;
            }
            Ok(status) => {
                return Err(Error::failed_precondition(format!(
                    "the container's task is {status}; stop it and delete the task first"
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    drop_task_state(&s, &c).await;
    // While the record still holds the id, no other create can make a
    // bundle of it: what is there now containerd left behind.
    bundles::clear_left_behind(&s.conn, &id);
    match s.conn.api.delete_container(&id).await {
        Ok(()) => {}
        Err(status) if status.code() == tonic::Code::NotFound => {}
        Err(status) => return Err(status_error(status)),
    }
    s.lock_containers().remove(&id);
    // Its snapshot after the record (containerd does not remove it); when
    // containerd cannot be reached, before the id is used again.
    if let Some(snapshot) = &c.snapshot {
        s.rollbacks
            .roll_back(&id, Rollback::Snapshot(snapshot.clone()))
            .await;
    }
    forget_kept_exit(&s, &id);
    FifoSet::remove_leftovers(&c.dir, &c.id);
    Ok(())
}
