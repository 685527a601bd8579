//! Linux-specific behaviour on a real containerd + runc + busybox rootfs,
//! through the test binary's embedded daemon (one namespace per test).
//!
//! Over 600 lines: one test per Linux-specific behaviour of the issue that
//! asked for them, each self-contained.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libctd_core::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Spec};
use libctd_core::{
    Client, ErrorKind, EventType, INIT_PROCESS_ID, PlatformStats, Resources, Status, discard_stdio,
};
use libctd_linux::LinuxClient;
use libctd_testkit::containerd::{
    self, Containerd, SLEEP_ARGS, busybox_process, busybox_spec, criu_works, wait_sigterm_caught,
};
use libctd_testkit::{RecordingBackend, capture_stdio};

const T: Duration = Duration::from_secs(30);
const MIB: i64 = 1 << 20;

async fn setup() -> (&'static Containerd, Arc<LinuxClient>, Arc<RecordingBackend>) {
    let ctd = Containerd::shared().await.expect("containerd harness");
    let backend = Arc::new(RecordingBackend::new());
    let client = ctd.client(backend.clone()).await.expect("client");
    (ctd, client, backend)
}

async fn kill_and_delete(client: &LinuxClient, backend: &RecordingBackend, id: &str) {
    containerd::kill_and_remove(client, backend, id, T)
        .await
        .unwrap();
}

fn cgroup_path(spec: &Spec) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .expect("the harness sets a cgroup path")
}

#[tokio::test(flavor = "multi_thread")]
async fn print_exec_and_delete() {
    let (ctd, client, backend) = setup().await;
    let spec = ctd.spec(&["sh", "-c", "echo hello; sleep 1000"], false);
    client
        .create("p1", &spec, Default::default())
        .await
        .unwrap();
    let (cb, out) = capture_stdio();
    let pid = client.start("p1", None, false, cb).await.unwrap();
    assert!(pid > 0);
    out.wait_stdout_contains(b"hello", T).await.unwrap();
    let (cb2, out2) = capture_stdio();
    let exec = busybox_process(&["echo", "from-exec"], false);
    client.exec("p1", "e1", &exec, false, cb2).await.unwrap();
    let exit = backend
        .next_process_event("p1", "e1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(out2.wait_stdout(T).await.unwrap(), b"from-exec\n");
    client
        .signal_process("p1", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let exit = backend
        .next_process_event("p1", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    let te = client.delete_task("p1").await.unwrap();
    assert_eq!(te.exit_code, 137);
    client.delete("p1").await.unwrap();
    let types = backend.event_types_of("p1");
    for t in [
        EventType::Create,
        EventType::Start,
        EventType::ExecAdded,
        EventType::ExecStarted,
        EventType::Exit,
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oom_kill_gives_one_oom_then_exit_137_with_oom_killed() {
    let (ctd, client, backend) = setup().await;
    let spec = busybox_spec(
        ctd.rootfs(),
        &["sh", "-c", "x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done"],
        false,
        Some(32 * MIB),
    );
    client
        .create("oom", &spec, Default::default())
        .await
        .unwrap();
    client
        .start("oom", None, false, discard_stdio())
        .await
        .unwrap();
    let oom = backend.next_event("oom", EventType::Oom, T).await.unwrap();
    assert!(oom.oom_killed);
    let exit = backend
        .next_process_event("oom", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    assert!(exit.oom_killed);
    client.delete_task("oom").await.unwrap();
    client.delete("oom").await.unwrap();
    client.event_queue().wait_idle().await;
    let ooms = backend
        .event_types_of("oom")
        .into_iter()
        .filter(|t| *t == EventType::Oom)
        .count();
    assert_eq!(ooms, 1, "{:?}", backend.event_types_of("oom"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_mib_of_stdout_arrive_complete_and_in_order() {
    let (ctd, client, backend) = setup().await;
    // `seq 1 12900000` writes 104,888,896 bytes: just over 100 MiB.
    let spec = ctd.spec(&["seq", "1", "12900000"], false);
    client
        .create("big", &spec, Default::default())
        .await
        .unwrap();
    let (cb, out) = capture_stdio();
    client.start("big", None, false, cb).await.unwrap();
    let exit = backend
        .next_process_event(
            "big",
            INIT_PROCESS_ID,
            EventType::Exit,
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    let data = out.wait_stdout(Duration::from_secs(120)).await.unwrap();
    assert!(data.len() as u64 > 100 * (1 << 20), "{} bytes", data.len());
    let mut expected = 1u64;
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let n: u64 = std::str::from_utf8(line).unwrap().parse().unwrap();
        assert_eq!(n, expected, "output out of order");
        expected += 1;
    }
    assert_eq!(expected, 12_900_001);
    client.delete_task("big").await.unwrap();
    client.delete("big").await.unwrap();
}

/// Output the engine drops: all of it sends the process to `/dev/null`
/// (no FIFOs); part of it is drained. Either way a process writing more
/// than a pipe holds runs to its end, on every containerd line.
#[tokio::test(flavor = "multi_thread")]
async fn dropped_output_never_blocks_the_process() {
    let (ctd, client, backend) = setup().await;
    let fifo_dir = ctd.state_dir().join("fifo").join(client.namespace());
    // The FIFOs of `id`, counted once its process exited, before its task goes.
    let run = |id: &'static str, args: &'static str, attach: libctd_core::StdioCallback| {
        let (client, backend, fifo_dir) = (client.clone(), backend.clone(), fifo_dir.clone());
        let spec = ctd.spec(&["sh", "-c", args], false);
        async move {
            client.create(id, &spec, Default::default()).await.unwrap();
            client.start(id, None, false, attach).await.unwrap();
            let exit = backend
                .next_process_event(id, INIT_PROCESS_ID, EventType::Exit, T)
                .await
                .unwrap();
            assert_eq!(exit.exit_code, 0, "{id}");
            let fifos = std::fs::read_dir(&fifo_dir).map_or(0, |d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{id}@"))
                    })
                    .count()
            });
            client.delete_task(id).await.unwrap();
            client.delete(id).await.unwrap();
            fifos
        }
    };
    // About 1.3 MB, twenty pipes' worth, on stdout and then on stderr.
    let chatty = "seq 1 200000; seq 1 200000 >&2; echo done";
    assert_eq!(
        run("quiet", chatty, discard_stdio()).await,
        0,
        "no FIFO made"
    );

    let (cb, out) = capture_stdio();
    let keep_stdout = libctd_core::stdio_callback(move |mut io| {
        io.stderr = None; // dropped unread: drained
        cb(io)
    });
    let fifos = run("half", "seq 1 200000 >&2; echo done", keep_stdout).await;
    assert_eq!(fifos, 2, "a partial drop keeps both FIFOs");
    assert_eq!(out.wait_stdout(T).await.unwrap(), b"done\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_round_trip() {
    let (ctd, client, backend) = setup().await;
    client
        .create("cat", &ctd.spec(&["cat"], false), Default::default())
        .await
        .unwrap();
    let (cb, io) = capture_stdio();
    client.start("cat", None, true, cb).await.unwrap();
    io.write_stdin(b"round trip\n").await.unwrap();
    io.wait_stdout_contains(b"round trip\n", T).await.unwrap();
    io.close_stdin().await.unwrap();
    let exit = backend
        .next_process_event("cat", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(io.wait_stdout(T).await.unwrap(), b"round trip\n");
    client.delete_task("cat").await.unwrap();
    client.delete("cat").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_written_and_closed_before_start_is_not_lost() {
    let (ctd, client, backend) = setup().await;
    client
        .create("early", &ctd.spec(&["cat"], false), Default::default())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The engine writes and closes stdin inside the callback, before the task exists.
    let cb = libctd_core::stdio_callback(move |io: libctd_core::DirectIo| {
        let mut stdin = io.stdin.unwrap();
        let mut stdout = io.stdout.unwrap();
        let copy = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stdin.write_all(b"early bird\n").await.unwrap();
            stdin.shutdown().await.unwrap();
            drop(stdin);
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).await.unwrap();
            let _ = tx.send(out);
        });
        Ok(Box::new(copy))
    });
    client.start("early", None, true, cb).await.unwrap();
    let exit = backend
        .next_process_event("early", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(
        tokio::time::timeout(T, rx).await.unwrap().unwrap(),
        b"early bird\n"
    );
    client.delete_task("early").await.unwrap();
    client.delete("early").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_with_empty_stdin_does_not_hang() {
    let (ctd, client, backend) = setup().await;
    client
        .create("ei", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap();
    client
        .start("ei", None, false, discard_stdio())
        .await
        .unwrap();
    let (cb, io) = capture_stdio();
    // The engine closes stdin before the exec even started.
    io.close_stdin().await.unwrap_err();
    client
        .exec("ei", "cat", &busybox_process(&["cat"], false), true, cb)
        .await
        .unwrap();
    io.close_stdin().await.unwrap();
    let exit = backend
        .next_process_event("ei", "cat", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    kill_and_delete(&client, &backend, "ei").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_resize_is_seen_by_stty() {
    let (ctd, client, backend) = setup().await;
    client
        .create("tty", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap();
    client
        .start("tty", None, false, discard_stdio())
        .await
        .unwrap();
    let (cb, io) = capture_stdio();
    let p = busybox_process(&["sh", "-c", "read line; stty size"], true);
    client.exec("tty", "t1", &p, true, cb).await.unwrap();
    assert!(io.terminal());
    assert!(!io.had_stderr());
    client.resize_terminal("tty", "t1", 123, 45).await.unwrap();
    io.write_stdin(b"go\r").await.unwrap();
    io.wait_stdout_contains(b"45 123", T).await.unwrap();
    let exit = backend
        .next_process_event("tty", "t1", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    let err = client
        .resize_terminal("tty", "t1", 0, 10)
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidArgument | ErrorKind::NotFound
    ));
    kill_and_delete(&client, &backend, "tty").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_execs_in_parallel() {
    let (ctd, client, backend) = setup().await;
    client
        .create("par", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap();
    client
        .start("par", None, false, discard_stdio())
        .await
        .unwrap();
    let mut outs = Vec::new();
    let mut calls = Vec::new();
    for i in 0..20 {
        let (cb, io) = capture_stdio();
        outs.push(io);
        let p = busybox_process(&["sh", "-c", &format!("echo exec-{i}; exit {i}")], false);
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client.exec("par", &format!("x{i}"), &p, false, cb).await
        }));
    }
    for c in calls {
        assert!(c.await.unwrap().unwrap() > 0);
    }
    for (i, io) in outs.iter().enumerate() {
        let exit = backend
            .next_process_event("par", &format!("x{i}"), EventType::Exit, T)
            .await
            .unwrap();
        assert_eq!(exit.exit_code, i as u32);
        assert_eq!(
            io.wait_stdout(T).await.unwrap(),
            format!("exec-{i}\n").as_bytes()
        );
    }
    kill_and_delete(&client, &backend, "par").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_execs_with_one_id_leave_the_winner_intact() {
    let (ctd, client, backend) = setup().await;
    client
        .create("race", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap();
    client
        .start("race", None, false, discard_stdio())
        .await
        .unwrap();
    let mut calls = Vec::new();
    let mut outs = Vec::new();
    for _ in 0..4 {
        let (cb, io) = capture_stdio();
        outs.push(io);
        let client = client.clone();
        let p = busybox_process(&["echo", "winner"], false);
        calls.push(tokio::spawn(async move {
            client.exec("race", "same", &p, false, cb).await
        }));
    }
    let mut won = None;
    for (i, c) in calls.into_iter().enumerate() {
        match c.await.unwrap() {
            Ok(_) => {
                assert!(won.is_none(), "two execs with one id succeeded");
                won = Some(i);
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{}", e.report()),
        }
    }
    let won = won.expect("one exec succeeds");
    let exit = backend
        .next_process_event("race", "same", EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(outs[won].wait_stdout(T).await.unwrap(), b"winner\n");
    kill_and_delete(&client, &backend, "race").await;
}

/// Whether the kernel reports every task of `cgroup` frozen: cgroup v1's
/// freezer state, or cgroup v2's `frozen` key. runc's pause and resume return
/// only once the freezer has settled, so one read suffices.
fn cgroup_frozen(cgroup: &std::path::Path) -> bool {
    let relative = cgroup.strip_prefix("/").unwrap();
    let v1 = PathBuf::from("/sys/fs/cgroup/freezer")
        .join(relative)
        .join("freezer.state");
    if let Ok(state) = std::fs::read_to_string(&v1) {
        return state.trim() == "FROZEN";
    }
    let v2 = PathBuf::from("/sys/fs/cgroup")
        .join(relative)
        .join("cgroup.events");
    let events = std::fs::read_to_string(&v2)
        .unwrap_or_else(|e| panic!("neither {v1:?} nor {v2:?} can be read: {e}"));
    events.lines().any(|l| l.trim() == "frozen 1")
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_freezes_a_counter_and_resume_thaws_it() {
    let (ctd, client, backend) = setup().await;
    let spec = ctd.spec(
        &[
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i; usleep 5000; done",
        ],
        false,
    );
    let cgroup = cgroup_path(&spec);
    client
        .create("ctr", &spec, Default::default())
        .await
        .unwrap();
    let (cb, io) = capture_stdio();
    client.start("ctr", None, false, cb).await.unwrap();
    io.wait_stdout_contains(b"\n3\n", T).await.unwrap();
    client.pause("ctr").await.unwrap();
    backend
        .next_event("ctr", EventType::Paused, T)
        .await
        .unwrap();
    assert_eq!(client.status("ctr").await.unwrap(), Status::Paused);
    // The kernel says the counter cannot run: every task of its cgroup is frozen.
    assert!(cgroup_frozen(&cgroup), "the counter's cgroup is not frozen");
    let frozen = io.stdout();
    client.resume("ctr").await.unwrap();
    backend
        .next_event("ctr", EventType::Resumed, T)
        .await
        .unwrap();
    assert_eq!(client.status("ctr").await.unwrap(), Status::Running);
    assert!(
        !cgroup_frozen(&cgroup),
        "the counter's cgroup is still frozen"
    );
    let last: u64 = String::from_utf8_lossy(&frozen)
        .lines()
        .rev()
        .find_map(|l| l.parse().ok())
        .unwrap();
    io.wait_stdout_contains(format!("\n{}\n", last + 5).as_bytes(), T)
        .await
        .unwrap();
    kill_and_delete(&client, &backend, "ctr").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn update_resources_changes_the_memory_limit_in_stats() {
    let (ctd, client, backend) = setup().await;
    let spec = busybox_spec(ctd.rootfs(), SLEEP_ARGS, false, Some(64 * MIB));
    client
        .create("mem", &spec, Default::default())
        .await
        .unwrap();
    client
        .start("mem", None, false, discard_stdio())
        .await
        .unwrap();
    let limit = |s: libctd_core::Stats| match s.platform {
        PlatformStats::Linux(l) => l.memory.limit,
        other => panic!("not Linux stats: {other:?}"),
    };
    let first = client.stats("mem").await.unwrap();
    assert_eq!(limit(first.clone()), 64 << 20, "{first:?}");
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(128 * MIB)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .update_resources("mem", &Resources::Linux(resources))
        .await
        .unwrap();
    let stats = client.stats("mem").await.unwrap();
    let PlatformStats::Linux(l) = &stats.platform else {
        panic!("not Linux stats")
    };
    assert_eq!(l.memory.limit, 128 << 20);
    assert!(l.pids.current >= 1);
    assert!(l.memory.usage > 0);
    let pids = client.list_pids("mem").await.unwrap();
    assert!(!pids.is_empty());
    kill_and_delete(&client, &backend, "mem").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_names_criu_when_it_cannot_run() {
    let (ctd, client, backend) = setup().await;
    client
        .create("cp", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap();
    client
        .start("cp", None, false, discard_stdio())
        .await
        .unwrap();
    let dir = ctd.scratch_dir("checkpoint");
    let result = client.create_checkpoint("cp", &dir, false).await;
    if criu_works() {
        result.unwrap();
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotImplemented, "{}", err.report());
        assert!(err.to_string().contains("CRIU"), "{err}");
        assert_eq!(err.container_id(), Some("cp"));
    }
    let err = client
        .create_checkpoint("cp", std::path::Path::new("relative"), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    kill_and_delete(&client, &backend, "cp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_a_container_started_by_ctr() {
    let (ctd, client, backend) = setup().await;
    let socket = ctd.remote().socket();
    let out = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .arg("--namespace")
        .arg(client.namespace())
        .args(["run", "-d", "--null-io", "--cgroup"])
        .arg(format!("/libctd-test-ctr-{}", std::process::id()))
        .arg("--runc-root")
        .arg(ctd.state_dir().join("runc"))
        .arg("--rootfs")
        .arg(ctd.rootfs())
        .args(["byctr", "/bin/sleep", "100000"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ctr run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unknown = client.status("byctr").await.unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    let (cb, _io) = capture_stdio();
    let restored = client.restore("byctr", cb).await.unwrap();
    assert!(restored.alive);
    assert!(restored.pid.unwrap() > 0);
    assert_eq!(client.status("byctr").await.unwrap(), Status::Running);
    kill_and_delete(&client, &backend, "byctr").await;
    let err = client.restore("byctr", discard_stdio()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_reattaches_and_copes_with_a_gone_task() {
    let (ctd, client, _backend) = setup().await;
    client
        .create("rs", &ctd.spec(&["cat"], false), Default::default())
        .await
        .unwrap();
    // The first engine keeps its streams but never uses them again (as if it died).
    let parked: Arc<std::sync::Mutex<Option<libctd_core::DirectIo>>> = Arc::default();
    let slot = parked.clone();
    let park = libctd_core::stdio_callback(move |io| {
        *slot.lock().unwrap() = Some(io);
        Ok(Box::new(()))
    });
    client.start("rs", None, true, park).await.unwrap();
    // A second client of the same namespace plays the restarted engine.
    let backend2 = Arc::new(RecordingBackend::new());
    let client2 = ctd
        .remote()
        .new_linux_client(client.namespace(), backend2.clone())
        .await
        .unwrap();
    let (cb, io) = capture_stdio();
    let restored = client2.restore("rs", cb).await.unwrap();
    assert!(restored.alive);
    assert!(restored.pid.unwrap() > 0);
    assert!(io.attached() && io.had_stdin() && io.had_stdout());
    io.write_stdin(b"reattached\n").await.unwrap();
    io.wait_stdout_contains(b"reattached\n", T).await.unwrap();
    // Restoring again replaces the streams; the FIFOs stay usable.
    let (cb, io2) = capture_stdio();
    assert!(client2.restore("rs", cb).await.unwrap().alive);
    io2.write_stdin(b"twice\n").await.unwrap();
    io2.wait_stdout_contains(b"twice\n", T).await.unwrap();
    client2
        .signal_process("rs", INIT_PROCESS_ID, 9)
        .await
        .unwrap();
    let exit = backend2
        .next_process_event("rs", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    let again = client2.restore("rs", discard_stdio()).await.unwrap();
    assert!(!again.alive);
    client2.delete_task("rs").await.unwrap();
    // The task is gone: restore answers not alive without a pid.
    let gone = client2.restore("rs", discard_stdio()).await.unwrap();
    assert_eq!(gone.pid, None);
    assert!(!gone.alive);
    client2.delete("rs").await.unwrap();
    drop(parked);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_classified_with_context() {
    let (ctd, client, backend) = setup().await;
    let e = client.pause("nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.container_id(), Some("nope"));
    assert_eq!(e.operation(), Some("pause"));
    let e = client
        .start("../x", None, false, discard_stdio())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    client
        .create("er", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap();
    let e = client
        .create("er", &ctd.spec(SLEEP_ARGS, false), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e = client.status("er").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = client
        .exec(
            "er",
            "x",
            &busybox_process(&["true"], false),
            false,
            discard_stdio(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "exec without a task: {e}");
    let pid = client
        .start("er", None, false, discard_stdio())
        .await
        .unwrap();
    wait_sigterm_caught(pid, T).await.unwrap();
    let e = client
        .start("er", None, false, discard_stdio())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e = client.signal_process("er", "ghost", 15).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = client
        .signal_process("er", INIT_PROCESS_ID, 0)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = client.delete_task("er").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{}", e.report());
    let e = client.delete("er").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    client
        .signal_process("er", INIT_PROCESS_ID, 15)
        .await
        .unwrap();
    let exit = backend
        .next_process_event("er", INIT_PROCESS_ID, EventType::Exit, T)
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 143);
    // Delete with a stopped task removes task and container.
    client.delete("er").await.unwrap();
    let e = client.delete("er").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let v = client.version().await.unwrap();
    assert!(
        v.version.starts_with('1') || v.version.starts_with('2'),
        "{v:?}"
    );
}

async fn start_two_sleepers(ctd: &Containerd, client: &LinuxClient, ids: [&str; 2]) {
    for id in ids {
        client
            .create(id, &ctd.spec(SLEEP_ARGS, false), Default::default())
            .await
            .unwrap();
        client
            .start(id, None, false, discard_stdio())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shim_group_puts_containers_in_one_shim() {
    use libctd_core::Remote;
    use libctd_linux::LinuxRemote;

    // Without the option, each container gets a shim of its own...
    let (ctd, client, backend) = setup().await;
    start_two_sleepers(ctd, &client, ["solo-a", "solo-b"]).await;
    assert_eq!(containerd::shims_of(client.namespace()).len(), 2);
    for id in ["solo-a", "solo-b"] {
        kill_and_delete(&client, &backend, id).await;
    }

    // ...with it, the two share one.
    let remote = LinuxRemote::builder()
        .address(ctd.remote().socket())
        .state_dir(ctd.scratch_dir("group-state"))
        .shim_group("pod1")
        .build()
        .await
        .unwrap();
    let backend = Arc::new(RecordingBackend::new());
    let ns = ctd.unique_namespace("group");
    let grouped = remote.new_linux_client(&ns, backend.clone()).await.unwrap();
    start_two_sleepers(ctd, &grouped, ["pod-a", "pod-b"]).await;
    assert_eq!(containerd::shims_of(&ns).len(), 1);
    for id in ["pod-a", "pod-b"] {
        kill_and_delete(&grouped, &backend, id).await;
    }
    remote.cleanup().await.unwrap();
}
