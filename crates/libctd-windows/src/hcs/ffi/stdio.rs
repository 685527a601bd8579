//! The stdio of new processes.
//!
//! HCS hands out pipe handles opened for overlapped I/O (hcsshim binds them
//! to an I/O completion port). They are wrapped as tokio named-pipe
//! clients: their reads and writes complete on the runtime's completion
//! port, so a live stream holds no thread. A blocking read per stream
//! would park one thread of tokio's blocking pool per stream, the pool
//! every HCS call runs on: a few hundred running containers with stdio
//! would starve create and stop.
//!
//! A handle opened for synchronous I/O cannot be read that way (an
//! overlapped read on it blocks the runtime's thread until data comes): it
//! is read as a blocking file on the blocking pool instead, and logged.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::{FromRawHandle, IntoRawHandle, OwnedHandle, RawHandle};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use libctd_core::{OutputStream, StdinStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::windows::named_pipe::NamedPipeClient;
use windows::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows::Win32::System::HostComputeSystem::HCS_PROCESS_INFORMATION;

use super::fns::{load_library, symbol};
use crate::error::{HcsError, Hresult, win32};
use crate::hcs::HcsResult;

/// A process's standard streams, wrapped.
pub(super) struct Streams {
    pub(super) stdin: Option<StdinStream>,
    pub(super) stdout: Option<OutputStream>,
    pub(super) stderr: Option<OutputStream>,
}

/// Takes ownership of the stdio handles of `info` and wraps them. On a
/// failure every handle is closed (those not wrapped yet too).
pub(super) fn streams(info: &HCS_PROCESS_INFORMATION) -> HcsResult<Streams> {
    // Owned at once, so an early return closes what is left.
    let [stdin, stdout, stderr] = [info.StdInput, info.StdOutput, info.StdError].map(|h| {
        // SAFETY: HCS handed over these open handles; each is owned here once.
        handle_value(h).map(|h| unsafe { OwnedHandle::from_raw_handle(h as RawHandle) })
    });
    let wrap = |h: Option<OwnedHandle>, name: &str| {
        h.map(|h| {
            Pipe::of(h).map_err(|e| {
                let hr = e.raw_os_error().and_then(|c| u16::try_from(c).ok()).map_or(
                    Hresult::from_win32(win32::INVALID_HANDLE),
                    Hresult::from_win32,
                );
                HcsError::with_document(hr, &format!("cannot attach to the process's {name}: {e}"))
            })
        })
        .transpose()
    };
    let stdin = wrap(stdin, "stdin")?.map(|p| Box::pin(ClosingWriter(Some(p))) as StdinStream);
    let stdout = wrap(stdout, "stdout")?.map(|p| Box::pin(p) as OutputStream);
    let stderr = wrap(stderr, "stderr")?.map(|p| Box::pin(p) as OutputStream);
    Ok(Streams {
        stdin,
        stdout,
        stderr,
    })
}

/// Closes the stdio handles of a process that will not be used.
pub(super) fn close_std_handles(info: &HCS_PROCESS_INFORMATION) {
    for h in [info.StdInput, info.StdOutput, info.StdError] {
        if let Some(h) = handle_value(h) {
            // SAFETY: an open handle HCS handed over, dropped (closed) once.
            drop(unsafe { OwnedHandle::from_raw_handle(h as RawHandle) });
        }
    }
}

/// A handle that can cross threads; `None` for a stream not requested.
fn handle_value(h: HANDLE) -> Option<usize> {
    if h.is_invalid() || h == INVALID_HANDLE_VALUE {
        None
    } else {
        Some(h.0 as usize)
    }
}

/// One end of a process's pipe.
enum Pipe {
    /// Opened for overlapped I/O: completes on the runtime's port.
    Overlapped(NamedPipeClient),
    /// Opened for synchronous I/O: read and written on the blocking pool.
    Blocking(tokio::fs::File),
}

impl Pipe {
    /// Wraps `h` by how it was opened. Fails in a runtime without I/O.
    fn of(h: OwnedHandle) -> io::Result<Self> {
        if is_synchronous(&h) {
            tracing::warn!(
                "a stdio handle is not opened for overlapped I/O: it holds a blocking thread while live"
            );
            return Ok(Self::Blocking(tokio::fs::File::from_std(
                std::fs::File::from(h),
            )));
        }
        let raw = h.into_raw_handle();
        // tokio documents an error for a runtime without I/O, but panics
        // (1.54): caught here; the unwinding closed the handle.
        let wrapped = std::panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: an open handle, owned here and handed over (tokio
            // closes it, also when it fails).
            unsafe { NamedPipeClient::from_raw_handle(raw) }
        }));
        match wrapped {
            Ok(pipe) => pipe.map(Self::Overlapped),
            Err(_) => Err(io::Error::other(
                "the tokio runtime has no I/O driver (build it with enable_io)",
            )),
        }
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Overlapped(p) => Pin::new(p).poll_read(cx, buf),
            Self::Blocking(f) => Pin::new(f).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Overlapped(p) => Pin::new(p).poll_write(cx, buf),
            Self::Blocking(f) => Pin::new(f).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Overlapped(p) => Pin::new(p).poll_flush(cx),
            Self::Blocking(f) => Pin::new(f).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Overlapped(p) => Pin::new(p).poll_shutdown(cx),
            Self::Blocking(f) => Pin::new(f).poll_shutdown(cx),
        }
    }
}

/// A write half that closes its handle on shutdown, so the process reads EOF.
struct ClosingWriter(Option<Pipe>);

impl AsyncWrite for ClosingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(f) => Pin::new(f).poll_write(cx, buf),
            None => Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(f) => Pin::new(f).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = match self.0.as_mut() {
            Some(f) => Pin::new(f).poll_flush(cx),
            None => return Poll::Ready(Ok(())),
        };
        match flushed {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                // Dropping the pipe closes it: the process reads EOF.
                self.0 = None;
                Poll::Ready(result)
            }
        }
    }
}

/// ntdll's `NtQueryInformationFile`; the status block is two pointer-sized
/// words.
type NtQueryInformationFileFn =
    unsafe extern "system" fn(HANDLE, *mut [usize; 2], *mut c_void, u32, u32) -> i32;
/// `FileModeInformation`: the options the handle was opened with.
const FILE_MODE_INFORMATION: u32 = 16;
/// The mode bits of a handle opened for synchronous I/O (without
/// `FILE_FLAG_OVERLAPPED`).
const FILE_SYNCHRONOUS_IO: u32 = 0x10 | 0x20;

fn nt_query_information_file() -> Option<NtQueryInformationFileFn> {
    static FN: OnceLock<Option<NtQueryInformationFileFn>> = OnceLock::new();
    *FN.get_or_init(|| {
        let ntdll = load_library("ntdll.dll").ok()?;
        let f = symbol(ntdll, "ntdll.dll", "NtQueryInformationFile").ok()?;
        // SAFETY: the documented signature of NtQueryInformationFile.
        Some(unsafe {
            std::mem::transmute::<unsafe extern "system" fn() -> isize, NtQueryInformationFileFn>(f)
        })
    })
}

/// Whether `h` was opened for synchronous I/O; false when that cannot be
/// told (HCS's handles are overlapped).
fn is_synchronous(h: &OwnedHandle) -> bool {
    use std::os::windows::io::AsRawHandle;
    let Some(query) = nt_query_information_file() else {
        return false;
    };
    let mut status = [0usize; 2];
    let mut mode = 0u32;
    // SAFETY: an open handle, a valid status block and a 4-byte buffer.
    let nt = unsafe {
        query(
            HANDLE(h.as_raw_handle()),
            &mut status,
            (&raw mut mode).cast(),
            4,
            FILE_MODE_INFORMATION,
        )
    };
    if nt < 0 {
        tracing::debug!(
            status = format_args!("{:#x}", nt.cast_unsigned()),
            "cannot query a stdio handle's mode"
        );
        return false;
    }
    mode & FILE_SYNCHRONOUS_IO != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::windows::io::FromRawHandle;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::windows::named_pipe::ServerOptions;
    use windows::Win32::Foundation::GENERIC_READ;
    use windows::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_OVERLAPPED, FILE_FLAGS_AND_ATTRIBUTES, FILE_SHARE_NONE,
        OPEN_EXISTING,
    };
    use windows::core::HSTRING;

    /// The reading end of a new pipe whose other end `tokio` serves, opened
    /// with `flags`.
    fn client(name: &str, flags: FILE_FLAGS_AND_ATTRIBUTES) -> OwnedHandle {
        let name = HSTRING::from(name);
        // SAFETY: a valid name; no security attributes or template.
        let h = unsafe {
            CreateFileW(
                &name,
                GENERIC_READ.0,
                FILE_SHARE_NONE,
                None,
                OPEN_EXISTING,
                flags,
                None,
            )
        }
        .unwrap();
        // SAFETY: a new handle, owned here.
        unsafe { OwnedHandle::from_raw_handle(h.0) }
    }

    async fn round_trip(flags: FILE_FLAGS_AND_ATTRIBUTES, overlapped: bool) {
        let name = format!(
            r"\\.\pipe\libctd-stdio-test-{}-{overlapped}",
            std::process::id()
        );
        let mut server = ServerOptions::new()
            .first_pipe_instance(true)
            .access_inbound(false)
            .create(&name)
            .unwrap();
        let handle = client(&name, flags);
        assert_eq!(is_synchronous(&handle), !overlapped);
        let mut pipe = Pipe::of(handle).unwrap();
        assert_eq!(matches!(pipe, Pipe::Overlapped(_)), overlapped);
        server.connect().await.unwrap();
        server.write_all(b"hello").await.unwrap();
        drop(server);
        let mut text = String::new();
        pipe.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "hello");
    }

    /// A handle opened for overlapped I/O is read on the runtime's
    /// completion port; one opened for synchronous I/O as a blocking file.
    /// Both read what was written, then EOF when the writer closes.
    #[tokio::test]
    async fn handles_are_wrapped_by_how_they_were_opened() {
        round_trip(FILE_FLAG_OVERLAPPED, true).await;
        round_trip(FILE_FLAGS_AND_ATTRIBUTES(0), false).await;
    }
}
