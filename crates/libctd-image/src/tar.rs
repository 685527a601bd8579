//! A streaming tar reader: one entry at a time from any `AsyncRead`, its
//! body read straight from the stream (never buffered whole).
//!
//! It reads what image archives are written with: ustar headers (with the
//! `prefix` field), GNU's long names and link names (`L`, `K`), pax
//! extended headers (`path`, `linkpath`, `size`; global ones are read and
//! ignored), sizes in octal or base-256. Regular files, directories,
//! symbolic and hard links are entries; devices, FIFOs, sparse files and
//! any other type have no place in an image archive and are refused.
//! Every failure is `InvalidArgument` naming the entry, except a failure
//! of the stream itself (`System`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use libctd_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The tar block size.
pub const BLOCK: usize = 512;

/// The most a pax header or a GNU long name may hold.
pub const MAX_META: u64 = 1 << 20;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (types `0`, NUL, `7`).
    File,
    /// A directory (`5`).
    Directory,
    /// A symbolic link (`2`).
    Symlink,
    /// A hard link (`1`) to an earlier entry.
    HardLink,
}

/// One entry's header, after any pax or GNU extension that came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path, cleaned: relative, no `.` or empty parts, no `..`.
    pub path: String,
    /// What the entry is.
    pub kind: Kind,
    /// The body's size in bytes (0 for all but regular files).
    pub size: u64,
    /// A link's target as written (empty for other kinds).
    pub link: String,
}

/// One header block, decoded but not yet extended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name (ustar prefix joined), raw bytes.
    pub name: Vec<u8>,
    /// The type flag.
    pub typeflag: u8,
    /// The size field.
    pub size: u64,
    /// The link name field, raw bytes.
    pub linkname: Vec<u8>,
}

/// The bytes of `field` up to its first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    field.split(|&b| b == 0).next().unwrap_or(&[])
}

/// A numeric field: octal (space or NUL padded) or base-256 (top bit set).
pub fn parse_number(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first().filter(|(f, _)| **f & 0x80 != 0) {
        // Base-256, big-endian; 0xff starts a negative number, refused.
        if first == 0xff {
            return None;
        }
        let mut n = u64::from(first & 0x7f);
        for &b in rest {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let text = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .map_or(&field[..0], |start| {
            let rest = &field[start..];
            let end = rest.iter().position(|&b| b == b' ' || b == 0);
            &rest[..end.unwrap_or(rest.len())]
        });
    let mut n: u64 = 0;
    for &b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        n = n.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Decodes a header block; `None` for an all-zero block (the end marker).
/// `after` names the entry before it, for messages.
pub fn parse_header(block: &[u8; BLOCK], after: &str) -> Result<Option<Header>> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let bad = |what: &str| {
        Error::invalid_argument(format!(
            "image archive: the header after {after} is not a tar header: {what}"
        ))
    };
    let stored = parse_number(&block[148..156]).ok_or_else(|| bad("unreadable checksum"))?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(bad(&format!(
            "checksum {stored} does not match the header's {unsigned}"
        )));
    }
    let mut name = cstr(&block[..100]).to_vec();
    // POSIX ustar ("ustar\0" "00") prefixes long names; GNU's magic
    // ("ustar  \0") uses the same bytes for other fields.
    if &block[257..263] == b"ustar\0" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    let size = parse_number(&block[124..136])
        .filter(|&s| i64::try_from(s).is_ok())
        .ok_or_else(|| bad("unreadable size"))?;
    Ok(Some(Header {
        name,
        typeflag: block[156],
        size,
        linkname: cstr(&block[157..257]).to_vec(),
    }))
}

/// Overrides from pax headers: path, linkpath, size.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pax {
    /// `path`.
    pub path: Option<String>,
    /// `linkpath`.
    pub linkpath: Option<String>,
    /// `size`.
    pub size: Option<u64>,
}

/// Decodes pax records (`<len> <key>=<value>\n`, `len` counting the whole
/// record), keeping the keys an image archive needs; `None` if malformed.
pub fn parse_pax(mut body: &[u8]) -> Option<Pax> {
    let mut pax = Pax::default();
    while !body.is_empty() {
        let space = body.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&body[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > body.len() || body[len - 1] != b'\n' {
            return None;
        }
        let record = std::str::from_utf8(&body[space + 1..len - 1]).ok()?;
        let (key, value) = record.split_once('=')?;
        match key {
            "path" => pax.path = Some(value.to_owned()),
            "linkpath" => pax.linkpath = Some(value.to_owned()),
            "size" => {
                let size: u64 = value.parse().ok()?;
                i64::try_from(size).ok()?;
                pax.size = Some(size);
            }
            _ => {}
        }
        body = &body[len..];
    }
    Some(pax)
}

/// `raw` as a clean relative path (no leading `/`, no `.` or empty parts,
/// `..` applied); `None` if it is not UTF-8 or climbs above the root.
pub fn clean_path(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Bytes left of an entry being read, then bytes of it that are not its
/// body (a directory's), then the padding after it.
#[derive(Debug, Default)]
struct Position {
    remaining: u64,
    hidden: u64,
    padding: u64,
}

/// Reads a tar archive entry by entry.
#[derive(Debug)]
pub struct TarReader<R> {
    inner: R,
    at: Position,
    /// The current (or last) entry's path, for messages.
    current: String,
    /// The stream ended inside an entry.
    truncated: bool,
    done: bool,
}

impl<R: AsyncRead + Unpin> TarReader<R> {
    /// A reader of the archive `inner` streams.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            at: Position::default(),
            current: String::new(),
            truncated: false,
            done: false,
        }
    }

    /// How messages name the current entry.
    pub fn current(&self) -> String {
        if self.current.is_empty() {
            "the start of the archive".to_owned()
        } else {
            format!("entry {:?}", self.current)
        }
    }

    /// Whether the stream ended inside an entry.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The error for an I/O failure while reading the current entry: a
    /// truncated archive is `InvalidArgument`, a failing stream `System`.
    pub fn io_error(&self, err: io::Error) -> Error {
        if self.truncated || err.kind() == io::ErrorKind::UnexpectedEof {
            Error::invalid_argument(format!(
                "image archive truncated: it ends inside {}",
                self.current()
            ))
        } else {
            Error::system(format!("image archive: reading {}: {err}", self.current()))
                .with_source(err)
        }
    }

    /// Reads up to a block; the count is short only at the stream's end.
    async fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<usize> {
        let mut n = 0;
        while n < BLOCK {
            match self.inner.read(&mut block[n..]).await {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(n)
    }

    /// Discards `n` bytes of the stream.
    async fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut scratch = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(scratch.len());
            match self.inner.read(&mut scratch[..want]).await {
                Ok(0) => {
                    self.truncated = true;
                    return Err(self.io_error(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(())
    }

    /// Reads a metadata entry's whole body (pax header, GNU long name).
    async fn read_meta(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_META {
            return Err(Error::invalid_argument(format!(
                "image archive: a {what} of {size} bytes after {} (at most {MAX_META})",
                self.current()
            )));
        }
        let mut body = vec![0u8; size as usize];
        if let Err(e) = self.inner.read_exact(&mut body).await {
            self.truncated = e.kind() == io::ErrorKind::UnexpectedEof;
            return Err(self.io_error(e));
        }
        self.skip(padding(size)).await?;
        Ok(body)
    }

    /// The next entry, `None` after the end marker. What is left of the
    /// current entry's body is skipped first.
    pub async fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        let left = std::mem::take(&mut self.at);
        self.skip(left.remaining + left.hidden + left.padding)
            .await?;
        let (mut pax, mut long_name, mut long_link) = (Pax::default(), None, None);
        let mut block = [0u8; BLOCK];
        loop {
            let n = self.read_block(&mut block).await?;
            if n < BLOCK {
                self.truncated = true;
                return Err(Error::invalid_argument(format!(
                    "image archive truncated: it ends after {} without its end marker",
                    self.current()
                )));
            }
            let Some(header) = parse_header(&block, &self.current())? else {
                // The end marker is two zero blocks; a lone one at the end is accepted.
                let n = self.read_block(&mut block).await?;
                if n > 0 && (n < BLOCK || block.iter().any(|&b| b != 0)) {
                    return Err(Error::invalid_argument(format!(
                        "image archive: data after the end marker that follows {}",
                        self.current()
                    )));
                }
                self.done = true;
                return Ok(None);
            };
            match header.typeflag {
                b'x' => {
                    let body = self.read_meta(header.size, "pax header").await?;
                    pax = parse_pax(&body).ok_or_else(|| {
                        Error::invalid_argument(format!(
                            "image archive: malformed pax header after {}",
                            self.current()
                        ))
                    })?;
                }
                b'g' => {
                    self.read_meta(header.size, "pax global header").await?;
                }
                b'L' => {
                    let body = self.read_meta(header.size, "GNU long name").await?;
                    long_name = Some(utf8(
                        cstr(&body).to_vec(),
                        "GNU long name",
                        &self.current(),
                    )?);
                }
                b'K' => {
                    let body = self.read_meta(header.size, "GNU long link name").await?;
                    long_link = Some(utf8(
                        cstr(&body).to_vec(),
                        "GNU long link name",
                        &self.current(),
                    )?);
                }
                flag => {
                    let raw = match pax.path.take().or(long_name.take()) {
                        Some(name) => name,
                        None => utf8(header.name, "entry name", &self.current())?,
                    };
                    let link = match pax.linkpath.take().or(long_link.take()) {
                        Some(link) => link,
                        None => utf8(header.linkname, "link name", &self.current())?,
                    };
                    let kind = match flag {
                        b'0' | 0 | b'7' if raw.ends_with('/') => Kind::Directory,
                        b'0' | 0 | b'7' => Kind::File,
                        b'5' => Kind::Directory,
                        b'2' => Kind::Symlink,
                        b'1' => Kind::HardLink,
                        other => {
                            return Err(Error::invalid_argument(format!(
                                "image archive: entry {raw:?} is of tar type {:?}, which has \
                                 no place in an image archive",
                                char::from(other)
                            )));
                        }
                    };
                    let path = clean_path(&raw).ok_or_else(|| {
                        Error::invalid_argument(format!(
                            "image archive: entry {raw:?} points outside the archive"
                        ))
                    })?;
                    // What follows the header in the stream depends on
                    // its type flag: links and directories have no body,
                    // whatever their size field says, but a regular-file
                    // header named like a directory still has the body its
                    // size declares (skipped: a directory has no content).
                    let stored = match flag {
                        b'0' | 0 | b'7' => pax.size.unwrap_or(header.size),
                        _ => 0,
                    };
                    let size = if kind == Kind::File { stored } else { 0 };
                    self.current = path.clone();
                    self.at = Position {
                        remaining: size,
                        hidden: stored - size,
                        padding: padding(stored),
                    };
                    return Ok(Some(Entry {
                        path,
                        kind,
                        size,
                        link,
                    }));
                }
            }
        }
    }

    /// The current entry's body (what is left of it).
    pub fn body(&mut self) -> Body<'_, R> {
        Body { reader: self }
    }
}

/// `bytes` as UTF-8, or `InvalidArgument` naming `what` and the entry before.
fn utf8(bytes: Vec<u8>, what: &str, after: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        Error::invalid_argument(format!(
            "image archive: the {what} after {after} is not UTF-8"
        ))
    })
}

/// The padding after a body of `size` bytes.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The current entry's body: ends after its declared size; an archive that
/// ends before is an `UnexpectedEof` error (and the reader knows it was truncated).
#[derive(Debug)]
pub struct Body<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Body<'_, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = &mut *self.get_mut().reader;
        if r.at.remaining == 0 || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let max = usize::try_from(r.at.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        let mut sub = ReadBuf::new(buf.initialize_unfilled_to(max));
        ready!(Pin::new(&mut r.inner).poll_read(cx, &mut sub))?;
        let n = sub.filled().len();
        if n == 0 {
            r.truncated = true;
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.advance(n);
        r.at.remaining -= n as u64;
        Poll::Ready(Ok(()))
    }
}
