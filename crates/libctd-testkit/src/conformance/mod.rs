//! The behaviour suite every [`Client`] must pass.
//!
//! A platform plugs in with a [`Fixture`]: how to get a fresh client, how to
//! turn a [`Program`] (the suite's tiny language of things to run) into a spec
//! or process of that platform, and what the platform cannot do
//! ([`Capabilities`]). For an unsupported capability a case asserts the clear
//! error the platform gives (kind and message), it never skips.
//!
//! [`conformance_suite!`](crate::conformance_suite) expands to one named
//! `#[tokio::test]` per case, so a failure names the case:
//!
//! ```
//! // tests/conformance.rs of a backend crate; here, the fake's fixture.
//! // A real-daemon fixture can share one daemon per test binary through a
//! // static `tokio::sync::OnceCell`, while `client()` gives each test a
//! // namespace of its own.
//! async fn fixture() -> libctd_testkit::FakeFixture {
//!     libctd_testkit::FakeFixture::new()
//! }
//! libctd_testkit::conformance_suite!(fixture);
//! # fn main() { let _ = fixture; }
//! ```
//!
//! The crate that expands the macro needs `tokio` (features `macros` and
//! `rt-multi-thread`) among its dependencies.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use libctd_core::oci_spec::runtime::{Process, Spec};
use libctd_core::{Backend, Client, CreateOptions, ErrorKind, Resources, Result};

mod events;
mod exec;
mod harness;
mod images;
mod info;
mod input;
mod lifecycle;
mod lookup;
mod restore;
mod signals;
mod stdio;
mod stream;

pub use harness::{Harness, Started, expect_err};
pub use stream::StreamFixture;

/// What the suite asks a platform to run. Each fixture translates a program
/// into its own spec or process (a command line of its shell, of its
/// simulator, or of the fake's interpreter).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Program {
    /// Exit at once with the code.
    Exit(u8),
    /// Write the text to stdout, then exit 0.
    Print(String),
    /// Write the text to stderr, then exit 0.
    PrintStderr(String),
    /// Copy stdin to stdout until EOF, then exit 0.
    Cat,
    /// Run until signalled: SIGTERM or SIGKILL end it, with exit code
    /// [`Fixture::signal_exit_code`] of the signal.
    Sleep,
    /// Allocate memory until killed by the OOM killer (the fixture's spec
    /// sets a memory limit low enough for that to happen quickly).
    Oom,
    /// Write `bytes` bytes to stdout, then exit 0.
    Output {
        /// How many bytes to write.
        bytes: u64,
    },
    /// A command that does not exist: starting it fails.
    Missing,
}

/// Whether a platform supports something, and if not, the error it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// The operation works.
    Supported,
    /// The operation fails with an error of `kind` whose `Display` contains
    /// `contains` (an empty string matches any message).
    Fails {
        /// The kind of the error.
        kind: ErrorKind,
        /// A substring of the error's `Display`.
        contains: &'static str,
    },
}

impl Support {
    /// `Fails` with `NotImplemented` and a message containing `contains`.
    pub const fn not_implemented(contains: &'static str) -> Self {
        Support::Fails {
            kind: ErrorKind::NotImplemented,
            contains,
        }
    }

    /// Whether this is [`Support::Supported`].
    pub fn is_supported(&self) -> bool {
        matches!(self, Support::Supported)
    }
}

/// What a platform can do, as the suite needs to know.
///
/// Start from [`Capabilities::new`] (everything supported, Linux semantics for
/// containers without a task) and change the fields that differ:
///
/// ```
/// use libctd_core::ErrorKind;
/// use libctd_testkit::conformance::{Capabilities, Support};
///
/// let mut caps = Capabilities::new();
/// caps.pause = Support::not_implemented("pause");
/// caps.checkpoint = Support::Fails { kind: ErrorKind::System, contains: "criu" };
/// caps.oom_events = false;
/// assert!(!caps.pause.is_supported());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`Client::version`].
    pub version: Support,
    /// [`Client::pause`] and [`Client::resume`] on a running container.
    pub pause: Support,
    /// [`Client::create_checkpoint`] of a running container.
    pub checkpoint: Support,
    /// [`Client::update_resources`] with [`Fixture::resources`].
    pub update_resources: Support,
    /// [`Client::list_pids`] of a running container.
    pub list_pids: Support,
    /// [`Client::summary`] of a running container.
    pub summary: Support,
    /// [`Client::stats`] of a running container.
    pub stats: Support,
    /// Processes with a terminal, and [`Client::resize_terminal`].
    pub terminal: Support,
    /// [`Client::status`] of a created container that was not started:
    /// `Supported` means it answers [`Status::Created`](libctd_core::Status::Created);
    /// Linux fails with `NotFound` (there is no task yet).
    pub status_before_start: Support,
    /// Whether the platform reports OOM kills (an `oom` event, then an exit
    /// with `oom_killed`). Without, the case asserts that no `oom` event
    /// arrives and the exit of [`Program::Oom`] has `oom_killed == false`.
    pub oom_events: bool,
    /// Whether [`Client::restore`] re-attaches to a running container
    /// (`alive == true`). Windows terminates instead and answers not alive.
    pub restore_reattaches: bool,
    /// Whether [`Client::list_pids`] and [`Client::summary`] give the pids a
    /// sandbox's own kernel sees (gVisor: the init is pid 1) instead of the
    /// host's pid that [`Client::start`] returned. The cases then assert
    /// that pid 1 is listed and the host's pid is not.
    pub sandbox_pids: bool,
}

impl Capabilities {
    /// Everything supported; before start, `status` fails with `NotFound`,
    /// as on Linux.
    pub fn new() -> Self {
        Self {
            version: Support::Supported,
            pause: Support::Supported,
            checkpoint: Support::Supported,
            update_resources: Support::Supported,
            list_pids: Support::Supported,
            summary: Support::Supported,
            stats: Support::Supported,
            terminal: Support::Supported,
            status_before_start: Support::Fails {
                kind: ErrorKind::NotFound,
                contains: "",
            },
            oom_events: true,
            restore_reattaches: true,
            sandbox_pids: false,
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// How the suite drives one platform.
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// A fresh client in a namespace of its own, whose events go to `backend`.
    /// Called once per case, and again by cases that need a second client.
    async fn client(&self, backend: Arc<dyn Backend>) -> Result<Arc<dyn Client>>;

    /// A container spec whose init process runs `program`, on a terminal when
    /// `terminal` is set.
    fn spec(&self, program: &Program, terminal: bool) -> Spec;

    /// An exec process that runs `program`, on a terminal when `terminal` is set.
    fn process(&self, program: &Program, terminal: bool) -> Process;

    /// What the platform supports.
    fn capabilities(&self) -> Capabilities;

    /// The exit code of [`Program::Sleep`] ended by `signal`. Default `128 + signal`.
    fn signal_exit_code(&self, signal: i32) -> u32 {
        128 + signal.unsigned_abs()
    }

    /// A valid resource update for a running container.
    fn resources(&self) -> Resources;

    /// A path for a checkpoint, unique to this call and not existing yet.
    /// Default: a path under the system's temporary directory, unique across
    /// the fixtures of this process.
    fn checkpoint_dir(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::env::temp_dir().join(format!(
            "libctd-checkpoint-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Options for [`Client::create`]. Default: all defaults.
    fn create_options(&self) -> CreateOptions {
        CreateOptions::default()
    }

    /// An image named `name` whose containers can run every [`Program`]
    /// (a busybox root filesystem on Linux), for the image cases; `None`
    /// when the backend keeps no images (default): the cases then check that
    /// `Client::images` is `None` and that a create naming an image is
    /// refused with `InvalidArgument`.
    fn image(&self, _name: &str) -> Option<crate::image::ImageArchive> {
        None
    }

    /// How long to wait for an event or an output. Default 10 s.
    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// Resolves once the init process `pid`, just started, is ready for what
    /// the suite does next (for example, a shell that must trap SIGTERM before
    /// a SIGTERM can end it). Default: ready at once.
    async fn ready(&self, _program: &Program, _pid: u32) -> Result<()> {
        Ok(())
    }
}

/// The future of one case.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// One case of the suite: its name (the name of its test) and its body.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name.
    pub name: &'static str,
    /// The case's body.
    pub run: for<'a> fn(&'a Harness) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

crate::__conformance_case_list!(@cases);

/// The case called `name`.
pub fn case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

/// Checks that `names` (what a [`conformance_suite!`](crate::conformance_suite)
/// expanded to) is exactly the set of [`CASES`]; panics naming the difference.
pub fn assert_covers(names: &[&str]) {
    let missing: Vec<&str> = CASES
        .iter()
        .map(|c| c.name)
        .filter(|n| !names.contains(n))
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| case(n).is_none())
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && names.len() == CASES.len(),
        "the suite macro does not match CASES: missing {missing:?}, unknown {unknown:?}"
    );
}

/// Runs the case called `name` against a fixture made by `make`, then deletes
/// every container the case left behind. Panics (failing the test) when the
/// case fails, panics, outlives its deadline, or cleanup fails.
pub async fn run_case<M, Fut, F>(make: &M, name: &str)
where
    M: Fn() -> Fut,
    Fut: Future<Output = F>,
    F: Fixture,
{
    let Some(case) = case(name) else {
        panic!("no conformance case is called {name}");
    };
    let fixture: Arc<dyn Fixture> = Arc::new(make().await);
    harness::run(fixture, case).await;
}

/// Expands to a module `conformance` with one
/// `#[tokio::test(flavor = "multi_thread")]` per conformance case, each named
/// after its case (`conformance::exec_stdin`, ...), plus a test that the
/// expansion covers every case of [`CASES`](crate::conformance::CASES).
///
/// The module glob-imports its parent (`use super::*`), so the expression
/// may name the test file's items; the file must not itself have an item
/// or import called `conformance`.
///
/// The argument is anything callable with no arguments that returns a future
/// of a [`Fixture`]: an `async fn`, or a closure such as
/// `|| async { MyFixture::new() }`. It is called once per test.
///
/// ```
/// libctd_testkit::conformance_suite!(|| async { libctd_testkit::FakeFixture::new() });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr $(,)?) => {
        $crate::__conformance_case_list!(@suite ($make));
    };
}

/// The case list, the only one: it makes [`CASES`](crate::conformance::CASES)
/// and what [`conformance_suite!`](crate::conformance_suite) expands to.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_list {
    ($($args:tt)*) => {
        $crate::__conformance_expand! { $($args)* [
            lookup::unknown_container_start_exec_restore,
            lookup::unknown_container_process_operations,
            lookup::unknown_container_task_operations,
            lookup::unknown_container_delete,
            lookup::created_container_has_no_task,
            lookup::task_less_operations,
            lifecycle::create_start_exit,
            lifecycle::status_transitions,
            lifecycle::exit_codes,
            lifecycle::start_event_carries_pid,
            lifecycle::delete_task_while_running,
            lifecycle::delete_while_running,
            lifecycle::delete_created_container,
            lifecycle::recreate_after_delete,
            lifecycle::double_start,
            lifecycle::double_create,
            exec::exec_pid_and_exit,
            exec::exec_output,
            exec::exec_id_reuse_after_exit,
            exec::exec_id_in_use,
            exec::exec_in_stopped_container,
            exec::exec_signal,
            exec::exec_stdin,
            exec::exec_ends_with_init,
            exec::concurrent_execs,
            exec::exec_attach_failure,
            signals::sigterm_exit_code,
            signals::sigkill_exit_code,
            signals::invalid_signal_numbers,
            signals::signal_unknown_process,
            signals::signal_finished_process,
            stdio::stdout_whole,
            stdio::large_output_whole,
            stdio::stderr_separate,
            stdio::stdin_reaches_process,
            stdio::close_stdin_gives_eof,
            stdio::direct_stdin_shutdown_gives_eof,
            stdio::no_stdin_reads_eof,
            stdio::terminal_has_no_stderr,
            stdio::attach_failure_then_retry,
            stdio::failed_start_can_be_retried,
            stdio::resize_terminal,
            stdio::close_stdin_unknown_process,
            events::init_event_order,
            events::exec_event_order,
            events::events_per_container,
            events::pause_resume,
            events::resume_not_paused,
            events::pause_stopped,
            events::oom_killed,
            events::kill_is_not_oom,
            restore::restore_running,
            restore::restore_stopped,
            restore::restore_created,
            restore::restore_unknown,
            info::stats_running,
            info::list_pids_running,
            info::summary_running,
            info::update_resources_running,
            info::checkpoint_running,
            info::checkpoint_exit,
            info::version,
            input::invalid_container_ids,
            input::invalid_process_ids,
            input::bad_input_checked_before_lookup,
            input::longest_container_id,
            input::spec_without_process,
            input::unknown_runtime_options,
            input::exec_without_args,
            input::namespaces_are_isolated,
            input::concurrent_containers,
            input::cancelled_start_is_consistent,
            input::client_survives_bad_input,
            images::import_list_remove,
            images::run_from_image,
            images::unknown_or_malformed_image,
            images::bad_archives,
            images::docker_and_multi_platform,
        ] }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_expand {
    (@cases [$($module:ident :: $case:ident),* $(,)?]) => {
        /// Every case of the suite, in order.
        pub const CASES: &[$crate::conformance::Case] = &[
            $($crate::conformance::Case {
                name: ::std::stringify!($case),
                run: |h| ::std::boxed::Box::pin($module::$case(h)),
            },)*
        ];
    };
    (@suite ($make:expr) [$($module:ident :: $case:ident),* $(,)?]) => {
        /// The libctd conformance suite: one test per case.
        mod conformance {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[::tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    $crate::conformance::run_case(&$make, ::std::stringify!($case)).await;
                }
            )*

            #[test]
            fn suite_covers_every_case() {
                $crate::conformance::assert_covers(&[$(::std::stringify!($case)),*]);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_and_many() {
        let names: std::collections::BTreeSet<_> = CASES.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), CASES.len(), "duplicate case names");
        assert!(CASES.len() >= 45, "only {} cases", CASES.len());
        assert!(case("create_start_exit").is_some());
        assert!(case("no_such_case").is_none());
    }

    #[test]
    fn assert_covers_names_the_difference() {
        let all: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        assert_covers(&all);
        let missing = std::panic::catch_unwind(|| assert_covers(&all[1..]));
        assert!(missing.is_err(), "a missing case was not noticed");
        let mut extra = all.clone();
        extra.push("made_up");
        let extra = std::panic::catch_unwind(|| assert_covers(&extra));
        assert!(extra.is_err(), "an unknown case was not noticed");
    }

    #[test]
    fn support_helpers() {
        assert!(Support::Supported.is_supported());
        let s = Support::not_implemented("pause");
        assert!(!s.is_supported());
        assert_eq!(
            s,
            Support::Fails {
                kind: ErrorKind::NotImplemented,
                contains: "pause"
            }
        );
        assert_eq!(Capabilities::default(), Capabilities::new());
    }
}
