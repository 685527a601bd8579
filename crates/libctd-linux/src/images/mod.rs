//! Image archives, read as they stream: the OCI image layout in a tar
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) and `docker save`'s
//! format (`manifest.json`, `<id>/layer.tar` or `blobs/` paths; its
//! `repositories` and legacy per-layer `json`/`VERSION` files are ignored).
//! Pure: no containerd, no daemon; the importer gives a [`sink::BlobSink`]
//! (a content store writer, for instance).
//!
//! [`archive::read_archive`] reads the tar once, with a tar reader of our
//! own ([`tar`]). Blobs may come before or after the index: each file that
//! may be a blob is offered to the sink as it is read, never held whole,
//! and verified while it streams (an OCI blob's content must hash to the
//! digest its path names; a `docker save` file's digest is learnt). Files
//! that look like JSON and are small (4 MiB, 64 MiB in all) are kept for
//! the end, when the images are resolved: index, through any index of
//! several platforms to the host's ([`platform`], containerd's default
//! matcher), manifest, config ([`config`]) and layers, every one of them
//! present in the archive. For `docker save` a docker schema 2 manifest is
//! made per image ([`docker`]) and offered to the sink like a blob. Names
//! come from `io.containerd.image.name`, else an OCI `ref.name` that is a
//! full reference, and docker's `RepoTags`, normalised ([`reference`]).
//!
//! Errors (each message names the archive entry, digest or name):
//! - `InvalidArgument`: the archive is not what it should be: not a tar
//!   (a bad header or checksum), truncated (it ends inside an entry or
//!   without its end marker), an entry type an image archive has no use
//!   for (device, FIFO, sparse), a path leading outside the archive, a blob
//!   whose content does not match its digest, a blob of another size than
//!   its descriptor says, a blob or file that is referred to and missing,
//!   a JSON document that does not decode or is larger than the limit,
//!   too much JSON-like content to keep, an uncompressed layer that is not
//!   its diff id, layer and diff-id counts that differ, an image name that
//!   is not a valid reference, a digest that is not sha256.
//! - `NotImplemented`: a well-formed archive with content libctd does not
//!   handle: a layer media type it cannot unpack (non-distributable, or
//!   unknown), a config that is not a container image's, a document that is
//!   neither index nor manifest.
//! - `NotFound`: no image in the archive runs on the host's platform (the
//!   message lists the platforms it has).
//! - `System`: the stream itself failed (not its end: that is a truncation).
//! - The sink's own error, as it returned it, which stops the read.

pub(crate) mod archive;
pub(crate) mod config;
pub(crate) mod descriptor;
pub(crate) mod digest;
pub(crate) mod docker;
pub(crate) mod image;
pub(crate) mod oci;
pub(crate) mod platform;
pub(crate) mod reference;
pub(crate) mod sink;
pub(crate) mod tar;

#[cfg(test)]
pub(crate) mod tests;
