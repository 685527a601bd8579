//! The conformance suite's fixture on a real containerd and a busybox
//! rootfs, for any runtime the runc shim runs (conformance: runc;
//! runtimes: gVisor's runsc).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Process, Spec};
use libctd_core::{Backend, Client, CreateOptions, ErrorKind, Resources, Result};
use libctd_testkit::conformance::{Capabilities, Fixture, Program, Support};
use libctd_testkit::containerd::{
    Containerd, SLEEP_ARGS, busybox_process, busybox_spec, criu_works, wait_sigterm_caught,
};
use libctd_testkit::image::{ImageArchive, Layer};

/// The memory limit of every container: low enough for `Program::Oom` to be
/// killed at once, high enough for everything else.
const MEMORY_LIMIT: i64 = 48 << 20;

/// The suite's fixture on the test binary's embedded daemon: runc by
/// default, another runtime through its create options.
pub(crate) struct LinuxFixture {
    pub(crate) ctd: &'static Containerd,
    /// What every create of the suite passes.
    pub(crate) options: CreateOptions,
    /// What the runtime supports.
    pub(crate) capabilities: Capabilities,
}

impl LinuxFixture {
    /// runc, the default runtime: everything supported but checkpoints
    /// where CRIU cannot run.
    pub(crate) async fn runc() -> Self {
        let ctd = Containerd::shared().await.expect("the containerd harness");
        let mut capabilities = Capabilities::new();
        if !criu_works() {
            capabilities.checkpoint = Support::Fails {
                kind: ErrorKind::NotImplemented,
                contains: "CRIU",
            };
        }
        Self {
            ctd,
            options: CreateOptions::default(),
            capabilities,
        }
    }
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
        self.capabilities.clone()
    }

    fn create_options(&self) -> CreateOptions {
        self.options.clone()
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
        // The busybox root filesystem as an image layer, read once.
        static BUSYBOX: std::sync::OnceLock<Layer> = std::sync::OnceLock::new();
        let busybox = BUSYBOX.get_or_init(|| {
            Layer::from_dir(self.ctd.rootfs()).expect("the busybox rootfs as a layer")
        });
        Some(ImageArchive::new(name).layer(busybox.clone()))
    }
}
