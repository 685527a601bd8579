//! The conformance suite against `LinuxClient` on a real containerd (the test
//! binary's embedded daemon, a namespace per case), runc and a busybox rootfs;
//! then again with the events read from an `EventStream`.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Process, Spec};
use libctd_core::{Backend, Client, ErrorKind, Resources, Result};
use libctd_testkit::conformance::{Capabilities, Fixture, Program, Support};
use libctd_testkit::containerd::{
    Containerd, SLEEP_ARGS, busybox_process, busybox_spec, criu_works, wait_sigterm_caught,
};
use libctd_testkit::image::{ImageArchive, Layer};

/// The memory limit of every container: low enough for `Program::Oom` to be
/// killed at once, high enough for everything else.
const MEMORY_LIMIT: i64 = 48 << 20;

struct LinuxFixture {
    ctd: &'static Containerd,
    criu_works: bool,
    /// The busybox root filesystem as an image layer, read once.
    busybox: Layer,
}

/// The busybox command line of a program.
fn args(program: &Program) -> Vec<String> {
    let sh = |script: &str| vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
    match program {
        Program::Exit(code) => sh(&format!("exit {code}")),
        Program::Print(text) => vec!["printf".into(), "%s".into(), text.clone()],
        Program::PrintStderr(text) => vec![
            "sh".into(),
            "-c".into(),
            "printf '%s' \"$1\" >&2".into(),
            "sh".into(),
            text.clone(),
        ],
        Program::Cat => vec!["cat".into()],
        Program::Sleep => SLEEP_ARGS.iter().map(|a| a.to_string()).collect(),
        Program::Oom => sh("x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done"),
        Program::Output { bytes } => vec![
            "head".into(),
            "-c".into(),
            bytes.to_string(),
            "/dev/zero".into(),
        ],
        Program::Missing => vec!["/bin/no-such-program".into()],
        other => panic!("the Linux fixture does not know {other:?}"),
    }
}

#[async_trait]
impl Fixture for LinuxFixture {
    async fn ready(&self, program: &Program, pid: u32) -> Result<()> {
        match program {
            Program::Sleep => wait_sigterm_caught(pid, self.timeout()).await,
            _ => Ok(()),
        }
    }

    async fn client(&self, backend: Arc<dyn Backend>) -> Result<Arc<dyn Client>> {
        let client: Arc<dyn Client> = self.ctd.client(backend).await?;
        Ok(client)
    }

    fn spec(&self, program: &Program, terminal: bool) -> Spec {
        let args = args(program);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        busybox_spec(self.ctd.rootfs(), &args, terminal, Some(MEMORY_LIMIT))
    }

    fn process(&self, program: &Program, terminal: bool) -> Process {
        let args = args(program);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        busybox_process(&args, terminal)
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new();
        if !self.criu_works {
            caps.checkpoint = Support::Fails {
                kind: ErrorKind::NotImplemented,
                contains: "CRIU",
            };
        }
        caps
    }

    fn resources(&self) -> Resources {
        Resources::Linux(
            LinuxResourcesBuilder::default()
                .memory(
                    LinuxMemoryBuilder::default()
                        .limit(96 << 20)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
    }

    fn checkpoint_dir(&self) -> PathBuf {
        // Not created: runc creates it when it checkpoints.
        let dir = self.ctd.scratch_dir("checkpoint");
        let _ = std::fs::remove_dir(&dir);
        dir
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(20)
    }

    fn image(&self, name: &str) -> Option<ImageArchive> {
        Some(ImageArchive::new(name).layer(self.busybox.clone()))
    }
}

async fn fixture() -> LinuxFixture {
    let ctd = Containerd::shared().await.expect("the containerd harness");
    static BUSYBOX: std::sync::OnceLock<Layer> = std::sync::OnceLock::new();
    let busybox = BUSYBOX
        .get_or_init(|| Layer::from_dir(ctd.rootfs()).expect("the busybox rootfs as a layer"))
        .clone();
    LinuxFixture {
        ctd,
        criu_works: criu_works(),
        busybox,
    }
}

libctd_testkit::conformance_suite!(fixture);

/// The suite again, the events read from an `EventStream` of capacity 1
/// (every delivery but one waits for the reader).
mod through_a_stream {
    libctd_testkit::conformance_suite!(|| async {
        libctd_testkit::conformance::StreamFixture::new(crate::fixture().await, 1)
    });
}
