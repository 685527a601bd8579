//! [`Images`] for [`LinuxClient`]: thin wrappers over `images`, in the
//! client's namespace. Each wrapper is one
//! [`measured`](libctd_core::metrics::measured) call, as the [`Client`]
//! operations' are (the `metrics` feature's counts and latencies).
//!
//! [`Client`]: libctd_core::Client

use async_trait::async_trait;
use libctd_core::metrics::measured;
use libctd_core::{Archive, Error, Image, Images, ImportOptions, Result};

use super::LinuxClient;
use crate::images;

/// `e` as the error of `operation` on image `name`.
fn on(e: Error, operation: &'static str) -> Error {
    e.with_operation(operation)
}

#[async_trait]
impl Images for LinuxClient {
    #[tracing::instrument(level = "debug", skip(self, archive, options), fields(namespace = %self.inner.namespace()))]
    async fn import(&self, archive: Archive, options: ImportOptions) -> Result<Vec<Image>> {
        measured("import", async {
            let conn = &self.inner.conn;
            let store = conn
                .store
                .clone()
                .ok_or_else(|| Error::not_implemented("this connection has no image store"))
                .map_err(|e| on(e, "import"))?;
            images::import(store, conn.shared.rpc_timeout, archive, options)
                .await
                .map_err(|e| on(e, "import"))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn image(&self, name: &str) -> Result<Image> {
        measured("image", async {
            let store = self.inner.conn.store().map_err(|e| on(e, "image"))?;
            images::get(store, name)
                .await
                .map(|i| i.to_core())
                .map_err(|e| on(e, "image"))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn list_images(&self) -> Result<Vec<Image>> {
        measured("list_images", async {
            let store = self.inner.conn.store().map_err(|e| on(e, "list_images"))?;
            images::list(store).await.map_err(|e| on(e, "list_images"))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn remove_image(&self, name: &str) -> Result<()> {
        measured("remove_image", async {
            let store = self.inner.conn.store().map_err(|e| on(e, "remove_image"))?;
            images::remove(store, name)
                .await
                .map_err(|e| on(e, "remove_image"))
        })
        .await
    }
}
