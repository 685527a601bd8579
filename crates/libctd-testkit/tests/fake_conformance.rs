//! The conformance suite against the fake.

use libctd_testkit::FakeFixture;

libctd_testkit::conformance_suite!(|| async { FakeFixture::new() });
