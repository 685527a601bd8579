//! Where blobs go as the archive streams: the [`BlobSink`] an importer
//! provides, and the [`BlobBody`] it reads each blob from.
//!
//! A body verifies while it is read: it counts and hashes the bytes, and
//! ends (reads 0 bytes) only once the content is known good; a content
//! whose digest is not the expected one fails the last read instead, so a
//! sink that stores what it reads and commits at the end never commits it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use libctd_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::digest::{Digest, Hashing};

/// What the archive says of a blob before it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The archive entry it comes from (`blobs/sha256/<hex>`,
    /// `<id>/layer.tar`), or `manifest.json[<n>]` for a manifest made from
    /// docker's `manifest.json`: a name for messages and write references.
    pub entry: String,
    /// The digest the content must have, when known before it is read (an
    /// OCI blob's path, a made manifest); `None` for a `docker save` file,
    /// whose digest is learnt by reading it ([`BlobBody::digest`]).
    pub digest: Option<Digest>,
    /// Its size in bytes: the total for progress.
    pub size: u64,
}

/// Takes each blob of an archive as it streams (content writes, for
/// instance). Blobs come in archive order, before anyone knows which are
/// used: every file that may be a blob is offered.
#[async_trait]
pub trait BlobSink: Send {
    /// Takes one blob. Reading `body` to its end (0 bytes read) means the
    /// content was verified; [`BlobBody::digest`] then names it. Returning
    /// `Ok` before the end means "already have it": the rest is read past
    /// (and verified all the same). An error aborts the whole read: no
    /// other blob is offered and the error is returned, unless it came from
    /// the archive (truncated, digest mismatch), whose own error is returned.
    async fn blob(&mut self, info: &BlobInfo, body: &mut BlobBody<'_>) -> Result<()>;
}

/// Whether a blob's bytes are kept (it may be JSON: a manifest, index or config).
#[derive(Debug)]
enum Keep {
    /// Only whitespace so far.
    Undecided(Vec<u8>),
    /// Starts with `{` and is small enough.
    Yes(Vec<u8>),
    /// Not JSON, or too large to be one.
    No,
}

/// Where a body is.
#[derive(Debug)]
enum State {
    Reading,
    Verified(Digest),
    Failed(Error),
}

/// One blob's bytes, as the archive streams them; see the module docs.
pub struct BlobBody<'a> {
    inner: &'a mut (dyn AsyncRead + Send + Unpin + 'a),
    entry: String,
    expected: Option<Digest>,
    size: u64,
    hashing: Hashing,
    head: Vec<u8>,
    keep: Keep,
    state: State,
}

impl std::fmt::Debug for BlobBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobBody")
            .field("entry", &self.entry)
            .field("done", &self.hashing.bytes())
            .field("size", &self.size)
            .finish()
    }
}

/// How many leading bytes a body remembers (enough for compression magics).
const HEAD: usize = 4;

impl<'a> BlobBody<'a> {
    /// A body of `info.size` bytes read from `inner`, kept whole in memory
    /// if it looks like JSON and is at most `keep_json` bytes.
    pub fn new(
        inner: &'a mut (dyn AsyncRead + Send + Unpin + 'a),
        info: &BlobInfo,
        keep_json: u64,
    ) -> Self {
        Self {
            inner,
            entry: info.entry.clone(),
            expected: info.digest.clone(),
            size: info.size,
            hashing: Hashing::default(),
            head: Vec::with_capacity(HEAD),
            keep: if info.size <= keep_json {
                Keep::Undecided(Vec::new())
            } else {
                Keep::No
            },
            state: State::Reading,
        }
    }

    /// Bytes read so far (progress; the total is [`BlobInfo::size`]).
    pub fn done(&self) -> u64 {
        self.hashing.bytes()
    }

    /// The content's digest, once read to its end and verified.
    pub fn digest(&self) -> Option<&Digest> {
        match &self.state {
            State::Verified(d) => Some(d),
            _ => None,
        }
    }

    /// The archive's own failure (a digest that does not match), if any.
    pub fn failure(&self) -> Option<&Error> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The first bytes (up to 4).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The whole content, if kept (JSON-like and small).
    pub fn take_kept(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.keep, Keep::No) {
            Keep::Yes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Reads what the sink left, to the end (verifying it).
    pub async fn drain(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 8192];
        while self.read(&mut scratch).await? > 0 {}
        Ok(())
    }

    fn take_in(&mut self, bytes: &[u8]) {
        self.hashing.update(bytes);
        let h = (HEAD - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..h]);
        match &mut self.keep {
            Keep::Undecided(kept) => {
                kept.extend_from_slice(bytes);
                match kept.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b'{') => self.keep = Keep::Yes(std::mem::take(kept)),
                    Some(_) => self.keep = Keep::No,
                    None => {}
                }
            }
            Keep::Yes(kept) => kept.extend_from_slice(bytes),
            Keep::No => {}
        }
    }

    /// At the end: the digest, or the archive's error.
    fn verify(&mut self) -> io::Result<()> {
        let digest = self.hashing.digest();
        match &self.expected {
            Some(expected) if *expected != digest => {
                let err = Error::invalid_argument(format!(
                    "image archive: entry {:?} has content of digest {digest}, not {expected}",
                    self.entry
                ));
                let io_err = io::Error::new(io::ErrorKind::InvalidData, err.message().to_owned());
                self.state = State::Failed(err);
                self.keep = Keep::No;
                Err(io_err)
            }
            _ => {
                self.state = State::Verified(digest);
                Ok(())
            }
        }
    }
}

impl AsyncRead for BlobBody<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &this.state {
            State::Verified(_) => return Poll::Ready(Ok(())),
            State::Failed(e) => {
                let msg = e.message().to_owned();
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, msg)));
            }
            State::Reading => {}
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut *this.inner).poll_read(cx, buf))?;
        let filled = &buf.filled()[before..];
        if filled.is_empty() {
            return Poll::Ready(this.verify());
        }
        this.take_in(filled);
        Poll::Ready(Ok(()))
    }
}

/// (tests) A sink keeping blobs in memory, by digest, with the progress
/// it saw and a fault to inject.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Blobs stored, by digest.
    pub blobs: std::collections::BTreeMap<Digest, Vec<u8>>,
    /// Each blob offered: its entry, and the bytes done after each read
    /// (the last equals the size when it was read whole).
    pub progress: Vec<(String, Vec<u64>)>,
    /// Fail (`Unavailable`) half-way through the blob of this entry.
    pub fail_on: Option<String>,
}

#[cfg(test)]
#[async_trait]
impl BlobSink for MemorySink {
    async fn blob(&mut self, info: &BlobInfo, body: &mut BlobBody<'_>) -> Result<()> {
        if info
            .digest
            .as_ref()
            .is_some_and(|d| self.blobs.contains_key(d))
        {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let mut done = Vec::new();
        let mut chunk = [0u8; 1000];
        loop {
            let n = body
                .read(&mut chunk)
                .await
                .map_err(|e| Error::invalid_argument(format!("sink: {e}")))?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
            done.push(body.done());
            if self.fail_on.as_deref() == Some(info.entry.as_str()) && body.done() * 2 >= info.size
            {
                return Err(Error::unavailable("sink: content store went away"));
            }
        }
        self.progress.push((info.entry.clone(), done));
        let digest = body
            .digest()
            .cloned()
            .ok_or_else(|| Error::unknown("sink: read to the end but not verified"))?;
        self.blobs.insert(digest, bytes);
        Ok(())
    }
}
