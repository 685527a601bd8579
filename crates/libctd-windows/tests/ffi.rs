//! `WindowsClient` over the real binding (`hcs::ffi`) against the
//! computecore.dll double under Wine: the conformance suite with process and
//! Hyper-V isolation. Every case ends with the double's handle-discipline
//! check: no violation, no leaked handle, no orphaned process.
//!
//! Runs where the double is installed in System32: `cargo xtask windows-test`.
#![cfg(windows)]
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/double.rs"]
mod double;
#[path = "support/fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fixture::HcsFixture;
use libctd_windows::hcs::ffi::Computecore;

/// How long a finished case may take to release its handles.
const RELEASE: Duration = Duration::from_secs(10);

/// A base layer folder holding a `UtilityVM` folder, as the binding checks
/// the file system for it.
fn base_layer() -> String {
    let base = std::env::temp_dir().join("libctd-hcs-double").join("base");
    std::fs::create_dir_all(base.join("UtilityVM")).unwrap();
    base.to_str().unwrap().to_owned()
}

/// A unique namespace prefix: system ids are `<container>@<prefix><n>`.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("ffi{}x", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn ffi_fixture(hyperv: bool) -> HcsFixture<Computecore> {
    let hcs = Computecore::load().unwrap();
    HcsFixture::new(Arc::new(hcs), hyperv, &base_layer(), &unique_prefix()).on_drop(Box::new(
        |prefix| {
            if !std::thread::panicking() {
                double::assert_clean(&format!("@{prefix}"), RELEASE);
            }
        },
    ))
}

/// Process isolation over the binding.
mod ffi_process_isolation {
    libctd_testkit::conformance_suite!(|| async { crate::ffi_fixture(false) });
}

/// Hyper-V isolation over the binding.
mod ffi_hyperv_isolation {
    libctd_testkit::conformance_suite!(|| async { crate::ffi_fixture(true) });
}
