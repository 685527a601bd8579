//! The conformance suite against the fake, its events read from an
//! `EventStream` of capacity 1 (every delivery but one waits for the reader).

use libctd_testkit::FakeFixture;
use libctd_testkit::conformance::StreamFixture;

libctd_testkit::conformance_suite!(|| async { StreamFixture::new(FakeFixture::new(), 1) });
