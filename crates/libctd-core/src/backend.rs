//! The engine's side of the contract: the event callback.

use async_trait::async_trait;

use crate::error::BoxError;
use crate::event::{EventInfo, EventType};

/// Receives the events of the containers a [`Client`](crate::Client) tracks.
///
/// Calls for one container arrive one at a time and in order; calls for
/// different containers may run concurrently. A handler that blocks delays only
/// its own container. A returned error is logged and never stops delivery.
///
/// ```
/// use async_trait::async_trait;
/// use libctd_core::{Backend, BoxError, EventInfo, EventType};
///
/// struct Engine;
///
/// #[async_trait]
/// impl Backend for Engine {
///     async fn process_event(
///         &self,
///         container_id: &str,
///         event: EventType,
///         info: EventInfo,
///     ) -> Result<(), BoxError> {
///         if event == EventType::Exit {
///             println!("{container_id}/{} exited with {}", info.process_id, info.exit_code);
///         }
///         Ok(())
///     }
/// }
///
/// let engine: std::sync::Arc<dyn Backend> = std::sync::Arc::new(Engine);
/// # drop(engine);
/// ```
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Handles one event of `container_id`.
    async fn process_event(
        &self,
        container_id: &str,
        event: EventType,
        info: EventInfo,
    ) -> Result<(), BoxError>;
}
