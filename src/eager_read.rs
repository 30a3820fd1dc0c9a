//! Reads for the login dialogues (client commands, the auth server's
//! reply, the backend's greeting and answers) that try the socket first.
//!
//! glommio's read arms an io_uring poll on the socket after every read that
//! leaves room in the buffer, expecting more to come; a mail dialogue reads
//! one short line and then writes, so most of those polls are set up and
//! completed for nothing. A non-blocking `recv` of our own comes first
//! here, and glommio's read (which waits through io_uring) runs only when
//! the socket has nothing yet. Measured on IMAP logins: about 5% less CPU
//! per login (README, "Performance, measured").
//!
//! Callers must not use glommio's per-stream read timeouts on these
//! streams: a read completed here never reaches glommio, which would leave
//! its timer armed from an earlier wait. They bound their waits with
//! `glommio::timer::timeout` instead.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

/// A glommio socket, and its fd where glommio lets it be seen.
pub trait Socket: AsyncRead + Unpin {
    fn fd(&self) -> Option<RawFd>;
}

impl Socket for glommio::net::TcpStream {
    fn fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// glommio's unix stream does not show its fd: its own read only.
impl Socket for glommio::net::UnixStream {
    fn fd(&self) -> Option<RawFd> {
        None
    }
}

/// `recv(MSG_DONTWAIT)` first; glommio's read when nothing is there.
pub fn poll_read<S: Socket>(stream: &mut S, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    let Some(fd) = stream.fd() else {
        return Pin::new(stream).poll_read(cx, buf);
    };
    loop {
        // SAFETY: the stream owns its fd for the call; the pointer and
        // length describe `buf`, writable for the call.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Poll::Ready(Ok(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Pin::new(stream).poll_read(cx, buf),
            io::ErrorKind::Interrupted => continue,
            _ => return Poll::Ready(Err(err)),
        }
    }
}

/// One read of `buf` through `poll_read`.
pub async fn read<S: Socket>(stream: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read(stream, cx, buf)).await
}
