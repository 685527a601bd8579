//! The conformance suite against a fake that lacks what some platforms lack
//! (see `FakeFixture::limited`): the suite must assert those errors.

use libctd_testkit::FakeFixture;

libctd_testkit::conformance_suite!(|| async { FakeFixture::limited() });
