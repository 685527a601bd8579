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

/// A base layer folder holding a `UtilityVM` folder with the template of a
/// utility VM's scratch, as the binding reads the file system.
fn base_layer() -> String {
    let base = std::env::temp_dir().join("libctd-hcs-double").join("base");
    std::fs::create_dir_all(base.join("UtilityVM")).unwrap();
    std::fs::write(
        base.join("UtilityVM").join("SystemTemplate.vhdx"),
        b"template",
    )
    .unwrap();
    base.to_str().unwrap().to_owned()
}

/// A scratch folder of its own for container `n` of fixture `prefix`, with
/// its `sandbox.vhdx`.
fn scratch(prefix: &str, n: u64) -> String {
    let dir = std::env::temp_dir()
        .join("libctd-hcs-double")
        .join(format!("scratch-{prefix}{n}"));
    // What an earlier, interrupted run left would make the VM's scratch exist.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sandbox.vhdx"), b"scratch").unwrap();
    dir.to_str().unwrap().to_owned()
}

/// A unique namespace prefix: system ids are `<container>@<prefix><n>`.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("ffi{}x", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn ffi_fixture(hyperv: bool) -> HcsFixture<Computecore> {
    let hcs = Computecore::load().unwrap();
    let prefix = unique_prefix();
    let scratches = prefix.clone();
    HcsFixture::new(Arc::new(hcs), hyperv, &base_layer(), &prefix)
        .with_scratch(Box::new(move |n| scratch(&scratches, n)))
        .on_drop(Box::new(|prefix| {
            if !std::thread::panicking() {
                double::assert_clean(&format!("@{prefix}"), RELEASE);
                double::assert_no_grants(&format!("@{prefix}"), RELEASE);
            }
        }))
}

/// Process isolation over the binding.
mod ffi_process_isolation {
    libctd_testkit::conformance_suite!(|| async { crate::ffi_fixture(false) });
}

/// Hyper-V isolation over the binding.
mod ffi_hyperv_isolation {
    libctd_testkit::conformance_suite!(|| async { crate::ffi_fixture(true) });
}
