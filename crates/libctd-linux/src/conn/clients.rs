//! The generated gRPC clients, made in one place so that each gets the
//! same limits.

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;

use super::Transport;

/// The largest answer a client decodes: containerd's own client's default
/// (16 MiB), where tonic's is 4 MiB. A task's metrics, a long process list
/// or a container with a big spec can pass 4 MiB.
pub(crate) const MAX_DECODING_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// A generated client of containerd's API that [`client`] can make.
pub(crate) trait GrpcClient {
    /// The client over `transport`, with the crate's limits.
    fn over(transport: Transport) -> Self;
}

macro_rules! grpc_clients {
    ($($client:ident),* $(,)?) => {$(
        impl GrpcClient for $client<Transport> {
            fn over(transport: Transport) -> Self {
                $client::new(transport).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE)
            }
        }
    )*};
}

grpc_clients!(
    TasksClient,
    ContainersClient,
    EventsClient,
    VersionClient,
    ContentClient,
    LeasesClient,
    ImagesClient,
    SnapshotsClient,
    DiffClient,
);

/// A client of type `C` over `transport`.
pub(crate) fn client<C: GrpcClient>(transport: &Transport) -> C {
    C::over(transport.clone())
}
