//! [`Images`] for [`LinuxClient`]: thin wrappers over `images`, in the
//! client's namespace.

use async_trait::async_trait;
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
        let conn = &self.inner.conn;
        let store = conn
            .store
            .clone()
            .ok_or_else(|| Error::not_implemented("this connection has no image store"))
            .map_err(|e| on(e, "import"))?;
        images::import(store, conn.shared.rpc_timeout, archive, options)
            .await
            .map_err(|e| on(e, "import"))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn image(&self, name: &str) -> Result<Image> {
        let store = self.inner.conn.store().map_err(|e| on(e, "image"))?;
        images::get(store, name)
            .await
            .map(|i| i.to_core())
            .map_err(|e| on(e, "image"))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn list_images(&self) -> Result<Vec<Image>> {
        let store = self.inner.conn.store().map_err(|e| on(e, "list_images"))?;
        images::list(store).await.map_err(|e| on(e, "list_images"))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(namespace = %self.inner.namespace()))]
    async fn remove_image(&self, name: &str) -> Result<()> {
        let store = self.inner.conn.store().map_err(|e| on(e, "remove_image"))?;
        images::remove(store, name)
            .await
            .map_err(|e| on(e, "remove_image"))
    }
}
