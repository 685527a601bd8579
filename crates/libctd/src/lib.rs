#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

use std::sync::Arc;

pub use libctd_core::*;

cfg_if::cfg_if! {
    if #[cfg(windows)] {
        /// This target's backend: HCS.
        pub use libctd_windows as platform;

        /// The platform's default remote: HCS v2 in-process (computecore.dll,
        /// loaded at run time; `Unavailable` where the Containers feature is
        /// missing). For other settings use
        /// [`platform::WindowsRemote::builder`] inside the engine's own
        /// `cfg(windows)` code.
        ///
        /// # Errors
        ///
        /// `Unavailable` where HCS is missing.
        pub async fn default_remote() -> Result<Arc<dyn Remote>> {
            Ok(Arc::new(libctd_windows::WindowsRemote::builder().native()?))
        }
    } else if #[cfg(unix)] {
        /// This target's backend: containerd.
        pub use libctd_linux as platform;

        /// The platform's default remote: an embedded containerd supervised by
        /// libctd under [`platform::DEFAULT_STATE_DIR`] (reused if already
        /// running). For other settings (an existing containerd's address,
        /// another state directory, timeouts) use
        /// [`platform::LinuxRemote::builder`] inside the engine's own
        /// `cfg(unix)` code.
        ///
        /// # Errors
        ///
        /// As [`platform::LinuxRemoteBuilder::build`].
        pub async fn default_remote() -> Result<Arc<dyn Remote>> {
            Ok(Arc::new(libctd_linux::LinuxRemote::builder().build().await?))
        }
    }
}
