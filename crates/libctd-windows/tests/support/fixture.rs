//! The conformance fixture over any [`Hcs`]: the simulation, or the real
//! binding against the computecore.dll double under Wine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libctd_core::oci_spec::runtime::{Process, Spec, WindowsResources};
use libctd_core::{Backend, Client, Remote, Resources, Result};
use libctd_testkit::conformance::{Capabilities, Fixture, Program, Support};
use libctd_windows::WindowsRemote;
use libctd_windows::hcs::Hcs;
use libctd_windows::hcs::sim::{CONTROL_C_EXIT, TERMINATED_EXIT};

/// A check run when a fixture is dropped, given its namespace prefix.
pub(crate) type OnDrop = Box<dyn Fn(&str) + Send + Sync>;
/// Makes the `n`th container's scratch folder (with its `sandbox.vhdx`),
/// giving its path.
pub(crate) type MakeScratch = Box<dyn Fn(u64) -> String + Send + Sync>;

/// Containers of a [`WindowsRemote`] over `H`, process or Hyper-V isolated.
pub(crate) struct HcsFixture<H: Hcs> {
    remote: WindowsRemote<H>,
    hyperv: bool,
    /// The first layer folder; it holds a utility VM.
    base_layer: String,
    /// Every client's namespace starts with it.
    prefix: String,
    next: AtomicU64,
    on_drop: Option<OnDrop>,
    make_scratch: Option<MakeScratch>,
    scratches: AtomicU64,
}

impl<H: Hcs> HcsFixture<H> {
    /// A fixture over `hcs`; `base_layer` must hold a utility VM for `hcs`.
    pub(crate) fn new(hcs: Arc<H>, hyperv: bool, base_layer: &str, prefix: &str) -> Self {
        Self {
            remote: WindowsRemote::builder().build(hcs).unwrap(),
            hyperv,
            base_layer: base_layer.to_owned(),
            prefix: prefix.to_owned(),
            next: AtomicU64::new(0),
            on_drop: None,
            make_scratch: None,
            scratches: AtomicU64::new(0),
        }
    }

    /// Gives every container its own scratch folder made by `make` (a
    /// Hyper-V isolated container's utility VM keeps its scratch there).
    pub(crate) fn with_scratch(mut self, make: MakeScratch) -> Self {
        self.make_scratch = Some(make);
        self
    }

    /// Runs `check` with the namespace prefix when the fixture is dropped.
    // Only the tests over the binding check at drop, not those over the simulation.
    #[allow(dead_code)]
    pub(crate) fn on_drop(mut self, check: OnDrop) -> Self {
        self.on_drop = Some(check);
        self
    }
}

impl<H: Hcs> Drop for HcsFixture<H> {
    fn drop(&mut self) {
        if let Some(check) = &self.on_drop {
            check(&self.prefix);
        }
    }
}

/// The script of a program (the language of the simulation and the double).
fn args(program: &Program) -> Vec<String> {
    let words: Vec<String> = match program {
        Program::Exit(code) => vec!["exit".into(), code.to_string()],
        Program::Print(text) => vec!["print".into(), text.clone()],
        Program::PrintStderr(text) => vec!["printerr".into(), text.clone()],
        Program::Cat => vec!["cat".into()],
        Program::Sleep => vec!["sleep".into()],
        // No OOM killer on Windows: the allocation fails and the process
        // exits with STATUS_NO_MEMORY.
        Program::Oom => vec![
            "echoerr".into(),
            "out of memory".into(),
            ";".into(),
            "exit".into(),
            "0xC0000017".into(),
        ],
        Program::Output { bytes } => vec!["bytes".into(), bytes.to_string()],
        Program::Missing => vec!["no-such-program.exe".into()],
        other => panic!("the Windows fixture does not know {other:?}"),
    };
    words
}

fn process_json(program: &Program, terminal: bool) -> serde_json::Value {
    serde_json::json!({
        "args": args(program),
        "cwd": "C:\\",
        "env": ["PATH=C:\\Windows\\system32;C:\\Windows"],
        "user": {"uid": 0, "gid": 0, "username": "ContainerUser"},
        "terminal": terminal,
        "consoleSize": {"height": 24, "width": 80}
    })
}

#[libctd_core::async_trait]
impl<H: Hcs> Fixture for HcsFixture<H> {
    async fn client(&self, backend: Arc<dyn Backend>) -> Result<Arc<dyn Client>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.remote
            .new_client(&format!("{}{n}", self.prefix), backend)
            .await
    }

    fn spec(&self, program: &Program, terminal: bool) -> Spec {
        let scratch = match &self.make_scratch {
            Some(make) => make(self.scratches.fetch_add(1, Ordering::Relaxed)),
            None => "C:\\layers\\scratch".to_owned(),
        };
        let mut windows = serde_json::json!({
            "layerFolders": [self.base_layer, scratch],
        });
        let root_path = if self.hyperv {
            windows["hyperv"] = serde_json::json!({});
            ""
        } else {
            "\\\\?\\Volume{0b8e5fd4-0000-0000-0000-100000000000}\\"
        };
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "hostname": "conformance",
            "process": process_json(program, terminal),
            "root": {"path": root_path, "readonly": false},
            "mounts": [],
            "windows": windows,
        }))
        .unwrap()
    }

    fn process(&self, program: &Program, terminal: bool) -> Process {
        serde_json::from_value(process_json(program, terminal)).unwrap()
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new();
        caps.version = Support::not_implemented("version");
        caps.pause = if self.hyperv {
            Support::Supported
        } else {
            Support::not_implemented("Hyper-V")
        };
        caps.checkpoint = Support::not_implemented("checkpoints");
        caps.update_resources = Support::not_implemented("resources");
        caps.status_before_start = Support::Supported;
        caps.oom_events = false;
        caps.restore_reattaches = false;
        caps
    }

    /// SIGKILL terminates (the compute system, or an exec); any other signal
    /// shuts the compute system down, ending its processes as a console
    /// control event does.
    fn signal_exit_code(&self, signal: i32) -> u32 {
        if signal == 9 {
            TERMINATED_EXIT
        } else {
            CONTROL_C_EXIT
        }
    }

    fn resources(&self) -> Resources {
        Resources::Windows(WindowsResources::default())
    }
}
