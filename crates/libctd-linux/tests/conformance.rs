//! The conformance suite against `LinuxClient` on a real containerd (the test
//! binary's embedded daemon, a namespace per case), runc and a busybox rootfs;
//! then again with the events read from an `EventStream`.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use support::fixture::LinuxFixture;

async fn fixture() -> LinuxFixture {
    LinuxFixture::runc().await
}

libctd_testkit::conformance_suite!(fixture);

/// The suite again, the events read from an `EventStream` of capacity 1
/// (every delivery but one waits for the reader).
mod through_a_stream {
    libctd_testkit::conformance_suite!(|| async {
        libctd_testkit::conformance::StreamFixture::new(crate::fixture().await, 1)
    });
}
