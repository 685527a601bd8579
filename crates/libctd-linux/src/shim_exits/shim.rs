//! Asking a runc shim about its container's init process, the way
//! containerd's own load path reaches it: the `address` the shim wrote into
//! its bundle, ttrpc, the task service's `State` (how is it now) and `Wait`
//! (answered the moment it ends).

use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

// The messages are declared in `crate::proto`.
use crate::proto::shim::{StateRequest, StateResponse, WaitRequest, WaitResponse};
use crate::proto::ttrpc::{KeyValue, Request as TtrpcRequest, Response as TtrpcResponse};

use super::exit::{KeptStatus, ShimExit};

/// The runtime v2 task directory under containerd's state directory.
pub(super) const TASK_DIR: &str = "io.containerd.runtime.v2.task";
/// How long one shim may take to answer.
const SHIM_TIMEOUT: Duration = Duration::from_millis(500);
/// The task service of the shims: 2.x serves v3, 1.6 and 1.7 serve v2.
const TASK_SERVICES: [&str; 2] = ["containerd.task.v3.Task", "containerd.task.v2.Task"];
/// containerd's `Status.STOPPED`.
const STOPPED: i32 = 3;
/// ttrpc message types.
const TTRPC_REQUEST: u8 = 1;
const TTRPC_RESPONSE: u8 = 2;
/// The largest ttrpc message accepted (as ttrpc itself).
const TTRPC_MAX: usize = 4 << 20;
/// The file in which the runc shim keeps its init process's pid.
const INIT_PID_FILE: &str = "init.pid";

/// The task of one bundle: where its shim is asked about it.
#[derive(Debug, Clone)]
pub(super) struct Task {
    pub namespace: String,
    pub id: String,
    pub bundle: PathBuf,
}

/// What a shim said of its init process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// It has stopped, with this status.
    Stopped(ShimExit),
    /// It still runs, as process `pid`.
    Running { pid: u32 },
    /// Nobody answers: the shim is gone (dead, or shut down by containerd),
    /// or it no longer knows the process.
    Gone,
    /// No answer in time, or one that cannot be read: ask again.
    Unclear,
}

/// Every task bundle under containerd's `state` directory whose namespace
/// and id are names containerd could have made (others are skipped).
pub(super) fn tasks(daemon_state: &Path) -> Vec<Task> {
    bundles(&daemon_state.join(TASK_DIR))
        .into_iter()
        .filter(|(ns, id, _)| super::records::valid_name(ns) && super::records::valid_name(id))
        .map(|(namespace, id, bundle)| Task {
            namespace,
            id,
            bundle,
        })
        .collect()
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

/// The pid the runc shim recorded for the bundle's init process, if it
/// made one (a task that was never created has none).
pub(super) fn init_pid(bundle: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(bundle.join(INIT_PID_FILE)).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

/// Asks the task's shim about its init process, within [`SHIM_TIMEOUT`].
pub(super) async fn ask(task: &Task) -> Answer {
    match tokio::time::timeout(SHIM_TIMEOUT, ask_unbounded(task)).await {
        Ok(answer) => answer,
        Err(_) => Answer::Unclear,
    }
}

async fn ask_unbounded(task: &Task) -> Answer {
    let Some(socket) = shim_socket(&task.bundle) else {
        return Answer::Gone;
    };
    let request = StateRequest {
        id: task.id.clone(),
        exec_id: String::new(),
    };
    let answer = call(&socket, task, "State", &request, Some(SHIM_TIMEOUT)).await;
    let payload = match answer {
        Ok(payload) => payload,
        Err(answer) => return answer,
    };
    let Ok(state) = StateResponse::decode(payload.as_slice()) else {
        return Answer::Unclear;
    };
    if state.status == STOPPED {
        Answer::Stopped(ShimExit {
            pid: state.pid,
            status: KeptStatus::Exited(state.exit_status),
            exited_at: state.exited_at,
        })
    } else {
        Answer::Running { pid: state.pid }
    }
}

/// Waits, without a time limit, for the end of one of the task's
/// processes (the init for an empty `exec_id`) whose pid is `pid`: the shim
/// answers the moment it has reaped it, before containerd can see the
/// container empty and delete the shim, so the status is read even when
/// the process ends while containerd loads. `Gone` when the shim closes
/// the connection without an answer.
pub(super) async fn wait(task: &Task, exec_id: &str, pid: u32) -> Answer {
    let Some(socket) = shim_socket(&task.bundle) else {
        return Answer::Gone;
    };
    let request = WaitRequest {
        id: task.id.clone(),
        exec_id: exec_id.to_owned(),
    };
    let payload = match call(&socket, task, "Wait", &request, None).await {
        Ok(payload) => payload,
        Err(answer) => return answer,
    };
    match WaitResponse::decode(payload.as_slice()) {
        Ok(w) => Answer::Stopped(ShimExit {
            pid,
            status: KeptStatus::Exited(w.exit_status),
            exited_at: w.exited_at,
        }),
        Err(_) => Answer::Unclear,
    }
}

/// Calls `method` of the shim's task service, in whichever version it
/// serves; what a failure means for the process otherwise.
async fn call(
    socket: &Path,
    task: &Task,
    method: &str,
    message: &impl Message,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, Answer> {
    let mut answer = Answer::Unclear;
    for service in TASK_SERVICES {
        match ttrpc_call(socket, &task.namespace, service, method, message, timeout).await {
            Ok(payload) => return Ok(payload),
            Err(Failure::Unreachable) => return Err(Answer::Gone),
            // The other task API version, or the process is not known.
            Err(Failure::Status(code)) => {
                if code == NOT_FOUND {
                    answer = Answer::Gone;
                }
            }
            Err(Failure::Garbled | Failure::Busy) => return Err(Answer::Unclear),
        }
    }
    Err(answer)
}

/// gRPC's (and ttrpc's) NOT_FOUND code.
const NOT_FOUND: i32 = 5;

/// Why a ttrpc call gave no payload.
#[derive(Debug)]
enum Failure {
    /// No connection, or it closed before the answer: nobody serves there.
    Unreachable,
    /// The shim answered with an error status (its code).
    Status(i32),
    /// An answer that is not ttrpc.
    Garbled,
    /// The shim's socket is too busy to accept now: ask again.
    Busy,
}

impl From<std::io::Error> for Failure {
    fn from(_: std::io::Error) -> Self {
        Failure::Unreachable
    }
}

/// One unary ttrpc call: a request frame on stream 1, its response frame.
/// `timeout` is told to the shim (none: the call may take forever).
async fn ttrpc_call(
    socket: &Path,
    namespace: &str,
    service: &str,
    method: &str,
    message: &impl Message,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, Failure> {
    let timeout_nano = timeout.map_or(0, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX));
    let request = TtrpcRequest {
        service: service.to_owned(),
        method: method.to_owned(),
        payload: message.encode_to_vec(),
        timeout_nano,
        metadata: vec![KeyValue {
            key: "containerd-namespace-ttrpc".to_owned(),
            value: namespace.to_owned(),
        }],
    }
    .encode_to_vec();
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Failure::Busy,
            _ => Failure::Unreachable,
        })?;
    let len = u32::try_from(request.len()).map_err(|_| Failure::Garbled)?;
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
        return Err(Failure::Garbled);
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let response = TtrpcResponse::decode(body.as_slice()).map_err(|_| Failure::Garbled)?;
    match response.status {
        Some(status) if status.code != 0 => Err(Failure::Status(status.code)),
        _ => Ok(response.payload),
    }
}

#[cfg(test)]
mod tests {
    use super::double::{Told, bundle, fake_shim};
    use super::*;

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

    #[tokio::test]
    async fn a_shim_answers_stopped_running_or_gone() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shim.sock");
        let told = Told::default();
        told.lock().unwrap().insert("dead".into(), (STOPPED, 137));
        told.lock().unwrap().insert("alive".into(), (2, 0));
        let shim = fake_shim(&socket, told);
        let state = dir.path().join("state");
        for id in ["dead", "alive", "unknown"] {
            bundle(&state, "ns", id, &socket);
        }
        bundle(&state, "ns", "gone", Path::new("/nonexistent.sock"));
        // A socket that speaks something else.
        let garbled = dir.path().join("garbled.sock");
        let listener = tokio::net::UnixListener::bind(&garbled).unwrap();
        let other = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(&[0xff; 16]).await;
            }
        });
        bundle(&state, "ns", "garbled", &garbled);
        // Names containerd cannot have made are not asked about.
        bundle(&state, "ns", "-bad", &socket);
        let mut tasks = tasks(&state);
        tasks.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["alive", "dead", "garbled", "gone", "unknown"]);
        let mut answers = Vec::new();
        for task in &tasks {
            answers.push(ask(task).await);
        }
        assert_eq!(answers[0], Answer::Running { pid: 42 });
        let Answer::Stopped(exit) = answers[1] else {
            panic!("{:?}", answers[1]);
        };
        assert_eq!((exit.pid, exit.status), (42, KeptStatus::Exited(137)));
        assert_eq!(exit.exited_at.map(|t| t.seconds), Some(1_700_000_000));
        assert_eq!(&answers[2..], [Answer::Unclear, Answer::Gone, Answer::Gone]);
        shim.abort();
        other.abort();
        // A missing state directory has no tasks.
        assert!(super::tasks(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn the_init_pid_is_read_from_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(init_pid(dir.path()), None);
        std::fs::write(dir.path().join(INIT_PID_FILE), "1234").unwrap();
        assert_eq!(init_pid(dir.path()), Some(1234));
        for bad in ["", "0", "-1", "x", "99999999999"] {
            std::fs::write(dir.path().join(INIT_PID_FILE), bad).unwrap();
            assert_eq!(init_pid(dir.path()), None, "{bad:?}");
        }
    }
}

/// (tests) A runc shim double, for this module's tests and the watch's.
#[cfg(test)]
pub(super) mod double {
    use super::*;
    use crate::proto::ttrpc::Status as RpcStatus;

    /// What the shim double says of each container (and, as `id/exec`, of
    /// each exec, for Wait): `(status, exit status)`; one it does not list
    /// is not found.
    pub(crate) type Told =
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (i32, u32)>>>;

    /// A shim double speaking ttrpc as containerd's ttrpc package frames it,
    /// serving only the v2 task API (as 1.6 and 1.7 shims do): State answers
    /// what `told` says, with pid 42, or NOT_FOUND; Wait answers once `told`
    /// says STOPPED, and closes the connection without an answer if the
    /// container is no longer listed (containerd deleted the shim's task).
    pub(crate) fn fake_shim(socket: &Path, told: Told) -> tokio::task::JoinHandle<()> {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, told.clone()));
            }
        })
    }

    /// Answers the one call of a connection.
    async fn serve(mut s: tokio::net::UnixStream, told: Told) {
        let mut header = [0u8; 10];
        if s.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        let req = TtrpcRequest::decode(body.as_slice()).unwrap();
        let failure = |code: i32, message: String| TtrpcResponse {
            status: Some(RpcStatus { code, message }),
            payload: vec![],
        };
        let response = if req.service == "containerd.task.v2.Task" && req.method == "Wait" {
            assert_eq!(req.timeout_nano, 0, "a wait has no time limit");
            let wait = WaitRequest::decode(req.payload.as_slice()).unwrap();
            loop {
                let key = if wait.exec_id.is_empty() {
                    wait.id.clone()
                } else {
                    format!("{}/{}", wait.id, wait.exec_id)
                };
                let known = told.lock().unwrap().get(&key).copied();
                match known {
                    Some((STOPPED, code)) => {
                        break TtrpcResponse {
                            status: None,
                            payload: WaitResponse {
                                exit_status: code,
                                exited_at: None,
                            }
                            .encode_to_vec(),
                        };
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                    None => return,
                }
            }
        } else if req.service == "containerd.task.v2.Task" {
            let state = StateRequest::decode(req.payload.as_slice()).unwrap();
            let known = told.lock().unwrap().get(&state.id).copied();
            match known {
                Some((status, code)) => TtrpcResponse {
                    status: None,
                    payload: StateResponse {
                        pid: 42,
                        status,
                        exit_status: code,
                        exited_at: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                },
                None => failure(NOT_FOUND, "container not created".into()),
            }
        } else {
            failure(12, format!("service {} not implemented", req.service))
        };
        let out = response.encode_to_vec();
        let mut frame = (out.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&header[4..8]);
        frame.extend_from_slice(&[TTRPC_RESPONSE, 0]);
        frame.extend_from_slice(&out);
        s.write_all(&frame).await.unwrap();
    }

    /// A bundle of `ns`/`id` under `state` whose shim listens on `socket`.
    pub(crate) fn bundle(state: &Path, ns: &str, id: &str, socket: &Path) -> PathBuf {
        let bundle = state.join(TASK_DIR).join(ns).join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            bundle.join("address"),
            format!("unix://{}", socket.display()),
        )
        .unwrap();
        bundle
    }
}
