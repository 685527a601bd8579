//! Writing one blob into containerd's content store: streamed in bounded
//! chunks over Content.Write, committed against its expected digest and
//! size (which containerd verifies), aborted on any failure so that no
//! half-written ingest stays behind.

use std::collections::HashMap;
use std::time::Duration;

use containerd_client::services::v1::{WriteAction, WriteContentRequest, WriteContentResponse};
use libctd_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::store::{LeaseId, Store, WriteAnswers};
use crate::convert::status_error;

/// How much of a blob one Content.Write message carries.
pub(crate) const CHUNK: usize = 1024 * 1024;

/// The blob a write must produce: its digest (`algorithm:hex`) and size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    /// The digest, e.g. `sha256:` and 64 hex digits; empty when it is not
    /// known before the data is read (a `docker save` file): containerd
    /// then commits whatever digest the data has.
    pub digest: &'a str,
    /// The size in bytes.
    pub size: u64,
}

impl Expected<'_> {
    /// The blob's name in messages: its digest, or that it is not known.
    fn name(&self) -> &str {
        if self.digest.is_empty() {
            "(digest not known yet)"
        } else {
            self.digest
        }
    }
}

/// How a blob came to be in the content store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// This write stored it.
    Stored,
    /// It was there already (containerd answered AlreadyExists).
    AlreadyPresent,
}

/// Checks that `digest` is a digest containerd accepts: `sha256:` with 64
/// lowercase hex digits, or `sha512:` with 128.
pub(crate) fn check_digest(digest: &str) -> Result<()> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => false,
    } && digest
        .split_once(':')
        .is_some_and(|(_, hex)| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "{digest:?} is not a digest (sha256: and 64 lowercase hex digits, or sha512: and 128)"
        )))
    }
}

/// Writes the blob `expected` from `reader` under the ingest ref
/// `reference` and `lease`, in chunks of [`CHUNK`], calling `progress`
/// with the bytes written so far after each; commits it with `labels`.
///
/// Each answer of containerd must come within `patience` (the write as a
/// whole has no deadline: it grows with the blob). A blob already in the
/// store is [`Written::AlreadyPresent`]. A blob whose bytes do not match
/// the digest or size is refused with `InvalidArgument` naming the digest;
/// on any failure the ingest is aborted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_blob(
    store: &dyn Store,
    lease: Option<&LeaseId>,
    reference: &str,
    expected: Expected<'_>,
    labels: HashMap<String, String>,
    reader: &mut (dyn AsyncRead + Send + Unpin),
    progress: &mut (dyn FnMut(u64) + Send),
    patience: Duration,
) -> Result<Written> {
    if !expected.digest.is_empty() {
        check_digest(expected.digest)?;
    }
    if reference.is_empty() {
        return Err(Error::invalid_argument(format!(
            "blob {}: the ingest ref is empty",
            expected.name()
        )));
    }
    let total = i64::try_from(expected.size).map_err(|_| {
        Error::invalid_argument(format!(
            "blob {}: size {} is too large",
            expected.name(),
            expected.size
        ))
    })?;
    let outcome = Writing {
        store,
        expected,
        total,
        patience,
        sender: None,
        answers: None,
    }
    .run(lease, reference, labels, reader, progress)
    .await;
    match outcome {
        Ok(written) => Ok(written),
        Err(e) => {
            // The stream is gone (reset): the ingest's lock with it.
            match store.content_abort(reference).await {
                Ok(()) => {}
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => tracing::warn!(
                    reference,
                    error = %status_error(s),
                    "could not abort a failed blob write"
                ),
            }
            Err(e)
        }
    }
}

/// One Content.Write in progress.
struct Writing<'a> {
    store: &'a dyn Store,
    expected: Expected<'a>,
    total: i64,
    patience: Duration,
    sender: Option<tokio::sync::mpsc::Sender<WriteContentRequest>>,
    answers: Option<WriteAnswers>,
}

/// The step of a write an answer is for.
enum Step {
    Open,
    Write,
    Commit,
}

impl Writing<'_> {
    async fn run(
        mut self,
        lease: Option<&LeaseId>,
        reference: &str,
        labels: HashMap<String, String>,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Written> {
        let (sender, requests) = tokio::sync::mpsc::channel(1);
        // containerd answers (and so opens the call) once it has a message:
        // the first is queued before the call. Stat with the expectation:
        // a blob already there is AlreadyExists at once.
        let open = WriteContentRequest {
            action: WriteAction::Stat.into(),
            r#ref: reference.to_owned(),
            total: self.total,
            expected: self.expected.digest.to_owned(),
            ..WriteContentRequest::default()
        };
        let _ = sender.try_send(open);
        self.sender = Some(sender);
        let answers = self
            .store
            .content_write(lease, ReceiverStream::new(requests));
        let answers = tokio::time::timeout(self.patience, answers).await;
        self.answers = Some(match answers {
            Ok(Ok(a)) => a,
            Ok(Err(s)) => return self.judge(Step::Open, s),
            Err(_) => return Err(self.late()),
        });
        if let Some(written) = self.answer(Step::Open).await? {
            return Ok(written);
        }
        let mut offset: u64 = 0;
        loop {
            let mut data = Vec::with_capacity(CHUNK);
            let n = fill(reader, &mut data, self.expected).await?;
            if n == 0 {
                break;
            }
            if offset + n as u64 > self.expected.size {
                return Err(self.mismatch(&format!(
                    "the data is longer than its size {}",
                    self.expected.size
                )));
            }
            self.send(WriteContentRequest {
                action: WriteAction::Write.into(),
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                data,
                ..WriteContentRequest::default()
            })
            .await?;
            if let Some(written) = self.answer(Step::Write).await? {
                return Ok(written);
            }
            offset += n as u64;
            progress(offset);
        }
        self.send(WriteContentRequest {
            action: WriteAction::Commit.into(),
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            total: self.total,
            expected: self.expected.digest.to_owned(),
            labels,
            ..WriteContentRequest::default()
        })
        .await?;
        let written = self.answer(Step::Commit).await?;
        // The commit's answer came: end the request stream.
        self.sender = None;
        Ok(written.unwrap_or(Written::Stored))
    }

    // `&mut`: a future holding `&Writing` would not be Send (the answers'
    // stream is not Sync).
    async fn send(&mut self, req: WriteContentRequest) -> Result<()> {
        let Some(sender) = &self.sender else {
            return Err(self.ended());
        };
        match tokio::time::timeout(self.patience, sender.send(req)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.ended()),
            Err(_) => Err(self.late()),
        }
    }

    /// The next answer: `None` to go on, the outcome when the write ends.
    async fn answer(&mut self, step: Step) -> Result<Option<Written>> {
        let Some(answers) = &mut self.answers else {
            return Err(self.ended());
        };
        let next = tokio::time::timeout(self.patience, answers.next()).await;
        let answer: WriteContentResponse = match next {
            Ok(Some(Ok(a))) => a,
            Ok(Some(Err(s))) => return self.judge(step, s).map(Some),
            Ok(None) => return Err(self.ended()),
            Err(_) => return Err(self.late()),
        };
        match step {
            Step::Commit
                if !answer.digest.is_empty()
                    && !self.expected.digest.is_empty()
                    && answer.digest != self.expected.digest =>
            {
                Err(self.mismatch(&format!("containerd stored {}", answer.digest)))
            }
            Step::Commit => Ok(Some(Written::Stored)),
            Step::Open | Step::Write => Ok(None),
        }
    }

    /// containerd's refusal at `step`, as the caller's outcome.
    fn judge(&self, step: Step, status: tonic::Status) -> Result<Written> {
        match (step, status.code()) {
            (_, tonic::Code::AlreadyExists) => Ok(Written::AlreadyPresent),
            (Step::Commit, tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument) => {
                let why = status.message().to_owned();
                Err(self.mismatch(&why).with_source(status))
            }
            _ => {
                let e = status_error(status);
                let message = format!("blob {}: {}", self.expected.name(), e.message());
                Err(Error::new(e.kind(), message).with_source(e))
            }
        }
    }

    fn mismatch(&self, why: &str) -> Error {
        Error::invalid_argument(format!(
            "blob {} ({} bytes) does not match its digest or size: {why}",
            self.expected.name(),
            self.expected.size
        ))
    }

    fn late(&self) -> Error {
        Error::new(
            ErrorKind::DeadlineExceeded,
            format!(
                "blob {}: containerd did not answer a write within {:?}",
                self.expected.name(),
                self.patience
            ),
        )
    }

    fn ended(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "blob {}: containerd ended the write before its commit",
                self.expected.name()
            ),
        )
    }
}

/// Reads into `data` until it holds [`CHUNK`] bytes or the reader ends;
/// the bytes read.
async fn fill(
    reader: &mut (dyn AsyncRead + Send + Unpin),
    data: &mut Vec<u8>,
    expected: Expected<'_>,
) -> Result<usize> {
    while data.len() < CHUNK {
        let mut limited = (&mut *reader).take((CHUNK - data.len()) as u64);
        match limited.read_buf(data).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let kind = match e.kind() {
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                        ErrorKind::InvalidArgument
                    }
                    _ => ErrorKind::System,
                };
                return Err(Error::new(
                    kind,
                    format!("blob {}: reading its data failed: {e}", expected.name()),
                )
                .with_source(e));
            }
        }
    }
    Ok(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let ok = format!("sha256:{}", "a".repeat(64));
        check_digest(&ok).unwrap();
        check_digest(&format!("sha512:{}", "0".repeat(128))).unwrap();
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("md5:{}", "a".repeat(64)),
            &"a".repeat(71),
        ] {
            let e = check_digest(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
