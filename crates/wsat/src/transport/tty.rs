//! Terminal descriptors (a pty master, a serial device) as tokio streams.
//!
//! The one place with `unsafe` in this crate: registering a descriptor with
//! tokio's reactor, which tokio marks unsafe because it cannot check that
//! the descriptor outlives the registration.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One terminal file descriptor (a pty master, a serial device), split into
/// a reading and a writing half that share it.
pub(super) fn tty_stream(fd: OwnedFd) -> io::Result<(TtyReader, TtyWriter)> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    // SAFETY: `AsyncFd::register` needs the descriptor to stay open and be
    // the same file for as long as it is registered. `fd` is an `OwnedFd`
    // moved into the `AsyncFd`: nothing else can close or replace it, and it
    // is closed only when the `AsyncFd` (which deregisters first) drops.
    let fd = Arc::new(unsafe { AsyncFd::register(fd)? });
    Ok((TtyReader { fd: fd.clone() }, TtyWriter { fd }))
}

pub(crate) struct TtyReader {
    fd: Arc<AsyncFd<OwnedFd>>,
}

pub(crate) struct TtyWriter {
    fd: Arc<AsyncFd<OwnedFd>>,
}

impl AsyncRead for TtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| retry(|| nix::unistd::read(fd.get_ref(), unfilled))) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for TtyWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| retry(|| nix::unistd::write(fd.get_ref(), buf))) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the kernel already.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a system call again when a signal interrupted it.
fn retry<T>(mut call: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(Errno::EINTR) => continue,
            result => return result.map_err(io::Error::from),
        }
    }
}
