//! The libctd conformance suite against `WindowsClient<Sim>`, once with
//! process isolation and once with Hyper-V isolation (where pause works),
//! then Hyper-V isolation again with the events read from an `EventStream`.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::sync::Arc;

use fixture::HcsFixture;
use libctd_windows::hcs::sim::Sim;

/// Layers of every container; the base one holds a utility VM.
const BASE_LAYER: &str = r"C:\layers\base";

fn sim_fixture(hyperv: bool) -> HcsFixture<Sim> {
    let sim = Sim::new();
    sim.add_utility_vm(BASE_LAYER);
    HcsFixture::new(Arc::new(sim), hyperv, BASE_LAYER, "conformance-")
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
