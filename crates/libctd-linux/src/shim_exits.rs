//! Exit statuses kept by the runc shims across a containerd restart.
//!
//! containerd 1.7 and 2.x, when they start, load every shim of their state
//! directory; a shim whose container has no process left (it died while
//! containerd was down) is treated as leaked and deleted, and its exit
//! status goes with it: the task is then simply not found, and no event says
//! how it ended. (1.6 keeps such a task, stopped, with its status.) The shim
//! itself knows the status until then. So before the supervisor starts a
//! daemon it asks every shim of the daemon's state directory, the way
//! containerd's own load path reaches them (the `address` the shim wrote
//! into its bundle, ttrpc, the task service's `State`), and keeps the
//! status of every stopped init process here; reconciliation takes it from
//! here when containerd no longer knows the task.
//!
//! Only init processes are recorded (a bundle does not list exec ids); an
//! exec of a container whose init still runs stays known to containerd.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;
use prost_types::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

// The messages are declared in `crate::proto`.
use crate::proto::shim::{StateRequest, StateResponse};
use crate::proto::ttrpc::{KeyValue, Request as TtrpcRequest, Response as TtrpcResponse};

/// The runtime v2 task directory under containerd's state directory.
const TASK_DIR: &str = "io.containerd.runtime.v2.task";
/// How long one shim may take to answer.
const SHIM_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an unclaimed record is kept.
const KEEP: Duration = Duration::from_secs(600);
/// The task service of the shims: 2.x serves v3, 1.6 and 1.7 serve v2.
const TASK_SERVICES: [&str; 2] = ["containerd.task.v3.Task", "containerd.task.v2.Task"];
/// containerd's `Status.STOPPED`.
const STOPPED: i32 = 3;
/// ttrpc message types.
const TTRPC_REQUEST: u8 = 1;
const TTRPC_RESPONSE: u8 = 2;
/// The largest ttrpc message accepted (as ttrpc itself).
const TTRPC_MAX: usize = 4 << 20;

/// The exit of a process, as its shim reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShimExit {
    pub pid: u32,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
}

/// (namespace, container id) of an init process.
type Key = (String, String);

/// Exits recorded from the shims before a daemon start, until claimed.
#[derive(Debug, Default)]
pub(crate) struct ShimExits {
    records: Mutex<HashMap<Key, (ShimExit, Instant)>>,
}

impl ShimExits {
    /// Asks every shim under `daemon_state` (containerd's `state` directory)
    /// for its init process, and records those that stopped.
    pub(crate) async fn snapshot(&self, daemon_state: &Path) {
        let mut asks = tokio::task::JoinSet::new();
        for (ns, id, bundle) in bundles(&daemon_state.join(TASK_DIR)) {
            asks.spawn(async move {
                let exit = tokio::time::timeout(SHIM_TIMEOUT, init_exit(&bundle, &ns, &id))
                    .await
                    .ok()
                    .flatten();
                (ns, id, exit)
            });
        }
        let mut found = Vec::new();
        while let Some(joined) = asks.join_next().await {
            if let Ok((ns, id, Some(exit))) = joined {
                found.push(((ns, id), exit));
            }
        }
        let now = Instant::now();
        if let Ok(mut records) = self.records.lock() {
            records.retain(|_, (_, at)| now.duration_since(*at) < KEEP);
            for (key, exit) in found {
                tracing::debug!(namespace = %key.0, container_id = %key.1, exit_status = exit.exit_status, "a shim kept an exit across the restart");
                records.insert(key, (exit, now));
            }
        }
    }

    /// The recorded exit of a container's init process whose pid was `pid`
    /// (a record of an earlier task of the same id does not count). It is
    /// kept until [`take`](Self::take)n, for the task's deletion.
    pub(crate) fn get(&self, namespace: &str, container_id: &str, pid: u32) -> Option<ShimExit> {
        let records = self.records.lock().ok()?;
        records
            .get(&(namespace.to_owned(), container_id.to_owned()))
            .map(|(exit, _)| *exit)
            .filter(|exit| exit.pid == pid)
    }

    /// Removes and returns the recorded exit of a container's init process.
    pub(crate) fn take(&self, namespace: &str, container_id: &str) -> Option<ShimExit> {
        let mut records = self.records.lock().ok()?;
        records
            .remove(&(namespace.to_owned(), container_id.to_owned()))
            .map(|(exit, _)| exit)
    }

    #[cfg(test)]
    fn insert(&self, namespace: &str, container_id: &str, exit: ShimExit) {
        if let Ok(mut records) = self.records.lock() {
            records.insert(
                (namespace.to_owned(), container_id.to_owned()),
                (exit, Instant::now()),
            );
        }
    }
}

/// Every task bundle: (namespace, container id, bundle directory).
fn bundles(task_dir: &Path) -> Vec<(String, String, PathBuf)> {
    let dirs = |d: &Path| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(d)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                    .filter(|(name, _)| !name.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    };
    dirs(task_dir)
        .into_iter()
        .flat_map(|(ns, ns_dir)| {
            dirs(&ns_dir)
                .into_iter()
                .map(move |(id, bundle)| (ns.clone(), id, bundle))
        })
        .collect()
}

/// The shim's socket, from the `address` file it wrote into the bundle (or
/// the `bootstrap.json` of newer shims).
fn shim_socket(bundle: &Path) -> Option<PathBuf> {
    let address = match std::fs::read_to_string(bundle.join("address")) {
        Ok(a) => a,
        Err(_) => {
            let text = std::fs::read_to_string(bundle.join("bootstrap.json")).ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            value.get("address")?.as_str()?.to_owned()
        }
    };
    let address = address.trim();
    let path = address
        .strip_prefix("unix://")
        .or_else(|| address.strip_prefix("ttrpc+unix://"))
        .unwrap_or(address);
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// The init process's exit, when its shim says it stopped.
async fn init_exit(bundle: &Path, namespace: &str, id: &str) -> Option<ShimExit> {
    let socket = shim_socket(bundle)?;
    let request = StateRequest {
        id: id.to_owned(),
        exec_id: String::new(),
    };
    for service in TASK_SERVICES {
        let Ok(payload) = ttrpc_call(&socket, namespace, service, "State", &request).await else {
            continue;
        };
        let state = StateResponse::decode(payload.as_slice()).ok()?;
        return (state.status == STOPPED).then_some(ShimExit {
            pid: state.pid,
            exit_status: state.exit_status,
            exited_at: state.exited_at,
        });
    }
    None
}

/// One unary ttrpc call: a request frame on stream 1, its response frame.
async fn ttrpc_call(
    socket: &Path,
    namespace: &str,
    service: &str,
    method: &str,
    message: &impl Message,
) -> std::io::Result<Vec<u8>> {
    let request = TtrpcRequest {
        service: service.to_owned(),
        method: method.to_owned(),
        payload: message.encode_to_vec(),
        timeout_nano: i64::try_from(SHIM_TIMEOUT.as_nanos()).unwrap_or(i64::MAX),
        metadata: vec![KeyValue {
            key: "containerd-namespace-ttrpc".to_owned(),
            value: namespace.to_owned(),
        }],
    }
    .encode_to_vec();
    let mut stream = UnixStream::connect(socket).await?;
    let len = u32::try_from(request.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(10 + request.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&[TTRPC_REQUEST, 0]);
    frame.extend_from_slice(&request);
    stream.write_all(&frame).await?;
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if header[8] != TTRPC_RESPONSE || len > TTRPC_MAX {
        return Err(std::io::Error::other("not a ttrpc response"));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let response = TtrpcResponse::decode(body.as_slice()).map_err(std::io::Error::other)?;
    match response.status {
        Some(status) if status.code != 0 => Err(std::io::Error::other(status.message)),
        _ => Ok(response.payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ttrpc::Status as RpcStatus;

    #[test]
    fn shim_sockets_are_read_from_either_bundle_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("address"), "unix:///run/containerd/s/abc\n").unwrap();
        assert_eq!(
            shim_socket(&a),
            Some(PathBuf::from("/run/containerd/s/abc"))
        );
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            b.join("bootstrap.json"),
            r#"{"version":3,"address":"unix:///run/containerd/s/def","protocol":"ttrpc"}"#,
        )
        .unwrap();
        assert_eq!(
            shim_socket(&b),
            Some(PathBuf::from("/run/containerd/s/def"))
        );
        let c = dir.path().join("c");
        std::fs::create_dir_all(&c).unwrap();
        assert_eq!(shim_socket(&c), None);
        std::fs::write(c.join("address"), "relative/path").unwrap();
        assert_eq!(shim_socket(&c), None);
    }

    #[test]
    fn ttrpc_messages_keep_their_wire_format() {
        // The tags ttrpc and the shim task API use, byte for byte.
        let request = TtrpcRequest {
            service: "s".into(),
            method: "m".into(),
            payload: vec![1],
            timeout_nano: 5,
            metadata: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
            }],
        };
        assert_eq!(
            request.encode_to_vec(),
            [
                0x0a, 1, b's', 0x12, 1, b'm', 0x1a, 1, 1, 0x20, 5, 0x2a, 6, 0x0a, 1, b'k', 0x12, 1,
                b'v'
            ]
        );
        // pid 3: 42, status 4: STOPPED, exit_status 9: 137, exited_at 10: {seconds: 7}.
        let state = StateResponse::decode(
            [0x18, 42, 0x20, 3, 0x48, 0x89, 0x01, 0x52, 2, 0x08, 7].as_slice(),
        )
        .unwrap();
        assert_eq!(
            (state.pid, state.status, state.exit_status),
            (42, STOPPED, 137)
        );
        assert_eq!(state.exited_at.map(|t| t.seconds), Some(7));
        // status 1: {message 2: "m"}, payload 2: [9].
        let response =
            TtrpcResponse::decode([0x0a, 3, 0x12, 1, b'm', 0x12, 1, 9].as_slice()).unwrap();
        assert_eq!(response.status.map(|s| s.message).as_deref(), Some("m"));
        assert_eq!(response.payload, [9]);
    }

    /// A shim double speaking ttrpc as containerd's ttrpc package frames it:
    /// answers State for "dead" with STOPPED/137, for others with RUNNING.
    async fn fake_shim(socket: PathBuf) -> tokio::task::JoinHandle<()> {
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut header = [0u8; 10];
                if s.read_exact(&mut header).await.is_err() {
                    continue;
                }
                let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
                let mut body = vec![0u8; len];
                s.read_exact(&mut body).await.unwrap();
                let req = TtrpcRequest::decode(body.as_slice()).unwrap();
                let response = if req.service == "containerd.task.v2.Task" {
                    let state = StateRequest::decode(req.payload.as_slice()).unwrap();
                    let (status, code) = if state.id == "dead" { (3, 137) } else { (2, 0) };
                    TtrpcResponse {
                        status: None,
                        payload: StateResponse {
                            pid: 42,
                            status,
                            exit_status: code,
                            exited_at: Some(Timestamp {
                                seconds: 1_700_000_000,
                                nanos: 0,
                            }),
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    }
                } else {
                    TtrpcResponse {
                        status: Some(RpcStatus {
                            code: 12,
                            message: format!("service {} not implemented", req.service),
                            details: vec![],
                        }),
                        payload: vec![],
                    }
                };
                let out = response.encode_to_vec();
                let mut frame = (out.len() as u32).to_be_bytes().to_vec();
                frame.extend_from_slice(&header[4..8]);
                frame.extend_from_slice(&[TTRPC_RESPONSE, 0]);
                frame.extend_from_slice(&out);
                s.write_all(&frame).await.unwrap();
            }
        })
    }

    #[tokio::test]
    async fn stopped_inits_are_recorded_once_and_running_ones_not() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shim.sock");
        let shim = fake_shim(socket.clone()).await;
        let tasks = dir.path().join("state").join(TASK_DIR).join("ns");
        for id in ["dead", "alive"] {
            std::fs::create_dir_all(tasks.join(id)).unwrap();
            std::fs::write(
                tasks.join(id).join("address"),
                format!("unix://{}", socket.display()),
            )
            .unwrap();
        }
        // A bundle whose shim is gone is skipped.
        std::fs::create_dir_all(tasks.join("gone")).unwrap();
        std::fs::write(tasks.join("gone/address"), "unix:///nonexistent.sock").unwrap();
        let exits = ShimExits::default();
        exits.snapshot(&dir.path().join("state")).await;
        assert_eq!(exits.get("ns", "dead", 41), None, "another task's pid");
        let dead = exits.get("ns", "dead", 42).unwrap();
        assert_eq!((dead.pid, dead.exit_status), (42, 137));
        assert!(dead.exited_at.is_some());
        assert_eq!(exits.take("ns", "dead"), Some(dead));
        assert_eq!(exits.take("ns", "dead"), None, "taken once");
        assert_eq!(exits.take("ns", "alive"), None);
        assert_eq!(exits.take("ns", "gone"), None);
        assert_eq!(exits.take("other", "dead"), None);
        shim.abort();
        // A missing state directory records nothing.
        exits.snapshot(Path::new("/nonexistent")).await;
        exits.insert(
            "ns",
            "x",
            ShimExit {
                pid: 1,
                exit_status: 2,
                exited_at: None,
            },
        );
        assert_eq!(exits.take("ns", "x").map(|e| e.exit_status), Some(2));
    }
}
