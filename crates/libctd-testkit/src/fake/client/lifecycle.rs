//! The fake's container lifecycle: version, create, start (also from a
//! checkpoint), restore, pause and resume, checkpoint, and deletion.

use std::collections::HashMap;
use std::path::Path;

use libctd_core::metrics::measured;
use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    CreateOptions, Error, EventType, INIT_PROCESS_ID, Restored, Result, StdioCallback, TaskExit,
    Version,
};
use tokio::sync::watch;

use super::FakeClient;
use super::process::{Prepared, attach, check_process, prepare};
use super::state::{Container, Task, container, container_mut};
use crate::fake::program::End;
use crate::fake::{Op, lock};

/// The name of the file a fake checkpoint writes.
const CHECKPOINT_MARKER: &str = "libctd-fake-checkpoint";

impl FakeClient {
    /// Pauses (`freeze`) or resumes the container's task.
    pub(super) async fn freeze(&self, op: Op, container_id: &str, freeze: bool) -> Result<()> {
        self.operate(op, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            let task = c.task_mut()?;
            if freeze {
                task.ensure_running()?;
                if task.paused {
                    return Err(Error::failed_precondition("container is already paused"));
                }
            } else if !task.paused {
                return Err(Error::failed_precondition("container is not paused"));
            }
            task.paused = freeze;
            task.frozen.send_replace(freeze);
            let pid = task.init.pid;
            let event = if freeze {
                EventType::Paused
            } else {
                EventType::Resumed
            };
            c.events
                .dispatch(event, c.info(container_id, INIT_PROCESS_ID, pid));
            Ok(())
        })
        .await
    }
}

/// The one runtime options type the fake takes: the runc shim's, as the
/// Linux backend does (its bytes are not read).
pub const FAKE_RUNTIME_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

/// Refuses runtime options of any other type, as every backend refuses a
/// type it does not understand.
fn check_runtime_options(options: Option<&libctd_core::RuntimeOptions>) -> Result<()> {
    match options {
        Some(o) if o.type_url() != FAKE_RUNTIME_OPTIONS_TYPE => {
            Err(Error::invalid_argument(format!(
                "runtime options of type {:?} are not understood: the fake takes {FAKE_RUNTIME_OPTIONS_TYPE}",
                o.type_url()
            )))
        }
        _ => Ok(()),
    }
}

pub(super) async fn version(client: &FakeClient) -> Result<Version> {
    measured(Op::Version.as_str(), async {
        client
            .enter(Op::Version, None)
            .await
            .map_err(|e| e.with_operation(Op::Version.as_str()))?;
        Ok(client
            .shared
            .script
            .version()
            .unwrap_or_else(|| client.shared.config.version.clone()))
    })
    .await
}

pub(super) async fn restore(
    client: &FakeClient,
    container_id: &str,
    attach: StdioCallback,
) -> Result<Restored> {
    let reattach = client.shared.config.restore_reattaches;
    client
        .operate(Op::Restore, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            // Events of the container now go to this client.
            c.events = client.events.clone();
            let Some(task) = c.task.as_mut() else {
                return Ok(Restored::new(false, None));
            };
            let p = &mut task.init;
            if !reattach {
                // As on Windows: what survived the engine is terminated.
                if p.running() {
                    p.control.send_replace(Some(End::Signal(9)));
                }
                return Ok(Restored::new(false, Some(p.pid)));
            }
            let running = p.running();
            let io = p.reopen_stdio();
            let attachment = attach(io)?;
            if let Some(mut old) = p.attachment.replace(attachment) {
                old.cancel();
            }
            Ok(Restored::new(running, Some(p.pid)))
        })
        .await
}

pub(super) async fn create(
    client: &FakeClient,
    container_id: &str,
    spec: &Spec,
    options: CreateOptions,
) -> Result<()> {
    client
        .operate(Op::Create, container_id, None, Ok(()), |cs| {
            check_process(spec.process().as_ref(), "the spec")?;
            check_runtime_options(options.runtime_options.as_ref())?;
            let snapshot = match &options.image {
                Some(rootfs) => Some(crate::fake::images::check_create(
                    &lock(&client.ns.images),
                    rootfs,
                    spec,
                )?),
                None => None,
            };
            if cs.contains_key(container_id) {
                return Err(Error::already_exists("container already exists"));
            }
            cs.insert(
                container_id.to_owned(),
                Container {
                    spec: spec.clone(),
                    events: client.events.clone(),
                    task: None,
                    oom_killed: false,
                    resources: None,
                    snapshot,
                },
            );
            Ok(())
        })
        .await
}

pub(super) async fn start(
    client: &FakeClient,
    container_id: &str,
    checkpoint_dir: Option<&Path>,
    with_stdin: bool,
    attach_cb: StdioCallback,
) -> Result<u32> {
    client
        .operate(Op::Start, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            if c.task.is_some() {
                return Err(Error::already_exists("container is already started"));
            }
            if let Some(dir) = checkpoint_dir
                && !dir.join(CHECKPOINT_MARKER).is_file()
            {
                return Err(Error::not_found(format!(
                    "no checkpoint in {}",
                    dir.display()
                )));
            }
            let process = check_process(c.spec.process().as_ref(), "the spec")?;
            let program = client.program_of(container_id, INIT_PROCESS_ID, &process)?;
            let terminal = process.terminal().unwrap_or(false);
            let (frozen, frozen_rx) = watch::channel(false);
            let pid = client.shared.pid();
            let mut prepared = prepare(pid, terminal, with_stdin, frozen_rx);
            attach(&mut prepared, attach_cb)?;
            let serial = client.shared.serial();
            let Prepared { proc, io, .. } = prepared;
            c.task = Some(Task {
                serial,
                init: proc,
                execs: HashMap::new(),
                paused: false,
                frozen,
            });
            c.oom_killed = false;
            for event in [EventType::Create, EventType::Start] {
                c.events
                    .dispatch(event, c.info(container_id, INIT_PROCESS_ID, pid));
            }
            client.spawn(container_id, INIT_PROCESS_ID, serial, program, io);
            Ok(pid)
        })
        .await
}

pub(super) async fn delete_task(client: &FakeClient, container_id: &str) -> Result<TaskExit> {
    client
        .operate(Op::DeleteTask, container_id, None, Ok(()), |cs| {
            let c = container_mut(cs, container_id)?;
            let Some((exit_code, exited_at)) = c.task()?.init.exit else {
                return Err(Error::failed_precondition("task is still running"));
            };
            if let Some(task) = c.task.take() {
                release_task(task);
            }
            Ok(TaskExit::new(exit_code, exited_at))
        })
        .await
}

pub(super) async fn delete(client: &FakeClient, container_id: &str) -> Result<()> {
    client
        .operate(Op::Delete, container_id, None, Ok(()), |cs| {
            let c = container(cs, container_id)?;
            if c.task.as_ref().is_some_and(|t| t.init.running()) {
                return Err(Error::failed_precondition("container is running"));
            }
            if let Some(task) = cs.remove(container_id).and_then(|c| c.task) {
                release_task(task);
            }
            Ok(())
        })
        .await
}

pub(super) async fn create_checkpoint(
    client: &FakeClient,
    container_id: &str,
    checkpoint_dir: &Path,
    exit: bool,
) -> Result<()> {
    client
        .operate(Op::CreateCheckpoint, container_id, None, Ok(()), |cs| {
            let task = container(cs, container_id)?.task()?;
            task.ensure_running()?;
            std::fs::create_dir_all(checkpoint_dir)
                .and_then(|()| {
                    std::fs::write(
                        checkpoint_dir.join(CHECKPOINT_MARKER),
                        format!("{container_id}\n"),
                    )
                })
                .map_err(|e| {
                    Error::system(format!(
                        "cannot write the checkpoint into {}",
                        checkpoint_dir.display()
                    ))
                    .with_source(e)
                })?;
            if exit {
                task.init.control.send_replace(Some(End::Signal(9)));
            }
            Ok(())
        })
        .await
}

fn release_task(mut task: Task) {
    for p in task.execs.values_mut() {
        p.control.send_replace(Some(End::Signal(9)));
        p.release_stdio();
    }
    task.init.release_stdio();
}
