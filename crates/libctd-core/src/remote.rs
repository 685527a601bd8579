//! A connection to the platform's container service, and its options.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::Backend;
use crate::client::Client;
use crate::error::{Error, Result};

/// The platform's container service: containerd on Linux, HCS on Windows.
///
/// A remote hands out [`Client`]s, one per namespace (an engine normally uses
/// one). [`cleanup`](Remote::cleanup) stops whatever the remote started; it is
/// idempotent.
#[async_trait]
pub trait Remote: Send + Sync {
    /// A client of `namespace` whose events go to `backend`.
    ///
    /// Fails with `InvalidArgument` for a malformed namespace, and with
    /// `Unavailable` when the service cannot be reached.
    async fn new_client(
        &self,
        namespace: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<dyn Client>>;

    /// Stops event streams and anything the remote started. Idempotent.
    async fn cleanup(&self) -> Result<()>;
}

/// The configuration a remote builds itself from, as seen by options.
///
/// Each backend has its own configuration type; an option finds it with
/// [`config_mut`] and fails with `NotImplemented` on any other.
pub trait RemoteConfig: Any + Send {
    /// The backend's name, for error messages (`"linux"`, `"windows"`, `"fake"`).
    fn platform(&self) -> &'static str;
}

/// A setting applied to a remote's configuration before it starts.
///
/// Applying can fail (a bad value), and an option that the remote does not
/// support is an error, never silently ignored. An option that sets a field
/// of one backend's configuration is best written with
/// [`remote_option!`](crate::remote_option); the example below spells out by
/// hand what that macro writes.
///
/// ```
/// use libctd_core::{config_mut, ErrorKind, RemoteConfig, RemoteOption, Result};
///
/// #[derive(Default)]
/// struct MyConfig { log_level: String }
/// impl RemoteConfig for MyConfig {
///     fn platform(&self) -> &'static str { "mine" }
/// }
///
/// #[derive(Debug)]
/// struct LogLevel(&'static str);
/// impl RemoteOption for LogLevel {
///     fn name(&self) -> &'static str { "log level" }
///     fn apply(&self, config: &mut dyn RemoteConfig) -> Result<()> {
///         config_mut::<MyConfig>(config, self.name())?.log_level = self.0.into();
///         Ok(())
///     }
/// }
///
/// struct OtherConfig;
/// impl RemoteConfig for OtherConfig {
///     fn platform(&self) -> &'static str { "other" }
/// }
///
/// let mut mine = MyConfig::default();
/// LogLevel("debug").apply(&mut mine).unwrap();
/// assert_eq!(mine.log_level, "debug");
/// let err = LogLevel("debug").apply(&mut OtherConfig).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotImplemented);
/// ```
pub trait RemoteOption: Send + Sync + fmt::Debug {
    /// The option's name, for error messages.
    fn name(&self) -> &'static str;
    /// Applies the option to `config`.
    fn apply(&self, config: &mut dyn RemoteConfig) -> Result<()>;
}

/// The configuration of type `T` behind `config`, or a `NotImplemented` error
/// saying that `option` is not supported by that platform's remote.
pub fn config_mut<'a, T: RemoteConfig>(
    config: &'a mut dyn RemoteConfig,
    option: &str,
) -> Result<&'a mut T> {
    let platform = config.platform();
    let any: &mut dyn Any = config;
    any.downcast_mut::<T>().ok_or_else(|| {
        Error::not_implemented(format!(
            "option {option} is not supported by the {platform} remote"
        ))
    })
}

/// Defines a newtype [`RemoteOption`] that applies itself to one backend's
/// configuration type, found with [`config_mut`] (so on any other
/// configuration it fails with `NotImplemented`).
///
/// The body sees the configuration (`&mut Config`) and the option's value
/// (`&T`) under the two names given, may `return Err(..)` for a bad value,
/// and otherwise the option applies successfully. The type derives `Debug`
/// and `Clone`; give any other attribute (docs, more derives) before the name.
///
/// ```
/// use libctd_core::{remote_option, ErrorKind, Error, RemoteConfig, RemoteOption};
///
/// #[derive(Default)]
/// struct MyConfig { workers: u32 }
/// impl RemoteConfig for MyConfig {
///     fn platform(&self) -> &'static str { "mine" }
/// }
///
/// remote_option!(
///     /// How many workers to run (at least 1).
///     #[derive(Copy)]
///     pub Workers(u32) for MyConfig, "workers", |config, n| {
///         if *n == 0 {
///             return Err(Error::invalid_argument("workers must be at least 1"));
///         }
///         config.workers = *n;
///     }
/// );
///
/// let mut mine = MyConfig::default();
/// Workers(4).apply(&mut mine).unwrap();
/// assert_eq!(mine.workers, 4);
/// assert_eq!(Workers(0).apply(&mut mine).unwrap_err().kind(), ErrorKind::InvalidArgument);
/// ```
#[macro_export]
macro_rules! remote_option {
    (
        $(#[$meta:meta])*
        $vis:vis $name:ident($ty:ty) for $config:ty, $label:literal,
        |$cfg:ident, $value:ident| $body:block
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name(pub $ty);

        impl $crate::RemoteOption for $name {
            fn name(&self) -> &'static str {
                $label
            }

            fn apply(&self, config: &mut dyn $crate::RemoteConfig) -> $crate::Result<()> {
                let $cfg = $crate::config_mut::<$config>(config, self.name())?;
                let $value = &self.0;
                $body
                ::core::result::Result::Ok(())
            }
        }
    };
}
