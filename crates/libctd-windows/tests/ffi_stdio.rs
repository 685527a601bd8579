//! Live stdio streams over the real binding (`hcs::ffi`) against the
//! computecore.dll double under Wine: hundreds of running containers whose
//! output is being read must not starve the HCS calls of the next one.
//!
//! A read of a pipe that blocks a thread would park one thread of tokio's
//! blocking pool (at most 512) per live stream, and that pool runs every
//! HCS call: with two streams per container, about 256 containers leave
//! no thread for create, start or stop. Each operation here therefore has
//! a deadline, and a stall fails it instead of hanging the run.
//!
//! Runs where `cargo xtask windows-test` installed the double.
#![cfg(windows)]
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/double.rs"]
mod double;
#[path = "support/exit_cases.rs"]
mod exit_cases;
#[path = "support/ffi_env.rs"]
mod ffi_env;
#[path = "support/lifecycle.rs"]
mod lifecycle;

use std::future::Future;
use std::time::Duration;

use libctd_core::{Client, CreateOptions, DirectIo, discard_stdio, stdio_callback};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use ffi_env::Env;
use lifecycle::spec;

/// How many containers run with live stdio.
const RUNNING: usize = 300;
/// How long one HCS-backed operation (or the create, start and stop of
/// one container) may take while they run: far more than it needs, far
/// less than a stall.
const BOUND: Duration = Duration::from_secs(30);

/// `fut`, or a failure naming `what` once [`BOUND`] has passed.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not complete within {BOUND:?}: HCS calls are starved"),
    }
}

/// A stdio callback that keeps all three streams live: stdout and stderr
/// read until EOF, stdin held open until then.
fn live_stdio() -> libctd_core::StdioCallback {
    stdio_callback(|io: DirectIo| {
        let DirectIo {
            stdin,
            stdout,
            stderr,
            ..
        } = io;
        let copy = tokio::spawn(async move {
            let _stdin = stdin;
            let drain = |s: Option<libctd_core::OutputStream>| async move {
                if let Some(mut s) = s {
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink).await;
                }
            };
            tokio::join!(drain(stdout), drain(stderr));
        });
        Ok(Box::new(copy))
    })
}

/// Creates and starts container `id` running `script`, each bounded.
async fn start(env: &Env, id: &str, script: &str, attach: libctd_core::StdioCallback) {
    let client = &env.client;
    bounded(&format!("create {id}"), async {
        client
            .create(id, &spec(script), CreateOptions::default())
            .await
            .unwrap()
    })
    .await;
    bounded(&format!("start {id}"), client.start(id, None, true, attach))
        .await
        .unwrap();
}

/// With 300 containers running and their stdout, stderr and stdin live,
/// one more container is created, started and stopped within the bound,
/// and output still flows through one of the 300 (`cat`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stdio_of_300_containers_does_not_starve_hcs_calls() {
    let env = ffi_env::env();

    // The first runs `cat`: its streams come to the test.
    let (io_tx, io_rx) = oneshot::channel();
    let to_test = stdio_callback(move |io: DirectIo| {
        let _ = io_tx.send(io);
        Ok(Box::new(()))
    });
    start(&env, "c0", "cat", to_test).await;
    for i in 1..RUNNING {
        start(&env, &format!("c{i}"), "sleep", live_stdio()).await;
    }

    // One more: created, started and stopped while they all run.
    bounded("create, start and stop of one more container", async {
        let client = &env.client;
        client
            .create("extra", &spec("sleep"), CreateOptions::default())
            .await
            .unwrap();
        client
            .start("extra", None, false, discard_stdio())
            .await
            .unwrap();
        client
            .signal_process("extra", libctd_core::INIT_PROCESS_ID, 9)
            .await
            .unwrap();
        env.exit("extra").await;
        env.remove("extra").await;
    })
    .await;

    // Output still flows: a line through `cat`.
    let io = io_rx.await.unwrap();
    let (mut stdin, stdout) = (io.stdin.unwrap(), io.stdout.unwrap());
    let mut lines = BufReader::new(stdout).lines();
    bounded("a line through cat", async {
        stdin.write_all(b"ping\n").await.unwrap();
        stdin.flush().await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ping"));
    })
    .await;
    // Closing stdin ends `cat`.
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let exit = env.exit("c0").await;
    assert_eq!(exit.exit_code, 0);

    // Tear down: stop them all, then remove them.
    let client = &env.client;
    for i in 1..RUNNING {
        bounded(
            "kill",
            client.signal_process(&format!("c{i}"), libctd_core::INIT_PROCESS_ID, 9),
        )
        .await
        .unwrap();
    }
    for i in 0..RUNNING {
        let id = format!("c{i}");
        if i > 0 {
            env.exit(&id).await;
        }
        bounded(&format!("remove {id}"), env.remove(&id)).await;
    }
    env.assert_clean().await;
}

/// In a runtime without I/O, HCS's pipes cannot complete on its port:
/// start fails with an error that says so, and leaves no process running
/// nor any handle open.
#[test]
fn without_runtime_io_start_fails_and_leaves_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let env = ffi_env::env();
        let client = &env.client;
        client
            .create("c", &spec("sleep"), CreateOptions::default())
            .await
            .unwrap();
        let err = bounded("start", client.start("c", None, true, live_stdio()))
            .await
            .unwrap_err();
        let text = err.report().to_string();
        assert!(
            text.contains("cannot attach to the process's stdin"),
            "{text}"
        );
        assert!(text.contains("no I/O driver"), "{text}");
        bounded("delete", client.delete("c")).await.unwrap();
        env.assert_clean().await;
    });
}

/// Streams the engine drops are closed, although a read is in flight on
/// each (cancelled, then closed): a process writing far more than a pipe
/// holds, and one reading stdin, both end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_streams_are_closed() {
    let env = ffi_env::env();
    for (id, script) in [("writer", "bytes 4194304"), ("reader", "cat")] {
        env.client
            .create(id, &spec(script), CreateOptions::default())
            .await
            .unwrap();
        env.client
            .start(id, None, true, discard_stdio())
            .await
            .unwrap();
        assert_eq!(env.exit(id).await.exit_code, 0, "{id}");
        env.remove(id).await;
    }
    env.assert_clean().await;
}
