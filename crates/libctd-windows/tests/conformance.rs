//! The libctd conformance suite against `WindowsClient<Sim>`, once with
//! process isolation and once with Hyper-V isolation (where pause works),
//! then Hyper-V isolation again with the events read from an `EventStream`.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture::HcsFixture;
use libctd_windows::hcs::sim::Sim;

/// Layers of every container; the base one holds a utility VM.
const BASE_LAYER: &str = r"C:\layers\base";

fn sim_fixture(hyperv: bool) -> HcsFixture<Sim> {
    let sim = Arc::new(Sim::new());
    sim.add_utility_vm(BASE_LAYER);
    let files = sim.clone();
    let left = sim.clone();
    HcsFixture::new(sim, hyperv, BASE_LAYER, "conformance-")
        .with_scratch(Box::new(move |n| {
            let scratch = format!(r"C:\layers\scratch-{n}");
            files.add_file(&format!(r"{scratch}\sandbox.vhdx"));
            scratch
        }))
        .on_drop(Box::new(move |_| {
            if !std::thread::panicking() {
                assert_nothing_left(&left);
            }
        }))
}

/// Within a deadline, no utility VM's scratch and no disk access grant is
/// left (each case deletes its containers).
fn assert_nothing_left(sim: &Sim) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let scratches: Vec<String> = sim
            .files()
            .into_iter()
            .filter(|f| f.ends_with(r"\vm\sandbox.vhdx"))
            .collect();
        let grants = sim.grants();
        if scratches.is_empty() && grants.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "left behind: utility VM scratches {scratches:?}, grants {grants:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Process isolation: pause and resume are not implemented.
mod process_isolation {
    libctd_testkit::conformance_suite!(|| async { crate::sim_fixture(false) });
}

/// Hyper-V isolation: pause and resume work.
mod hyperv_isolation {
    libctd_testkit::conformance_suite!(|| async { crate::sim_fixture(true) });
}

/// Hyper-V isolation, the events read from an `EventStream` of capacity 1
/// (every delivery but one waits for the reader).
mod through_a_stream {
    libctd_testkit::conformance_suite!(|| async {
        libctd_testkit::conformance::StreamFixture::new(crate::sim_fixture(true), 1)
    });
}
