//! The few system calls std and glommio do not make the way Postern needs
//! them: keepalive on a live socket, an accept that returns the peer's
//! address, and RLIMIT_NOFILE.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use socket2::{SockRef, TcpKeepalive};

use crate::config::Keepalive;

/// Runs `f` on a socket2 view of `socket`'s fd.
pub fn with_socket<T>(socket: &impl AsRawFd, f: impl FnOnce(&SockRef<'_>) -> T) -> T {
    // SAFETY: `socket` owns the fd and is borrowed for this whole call, so
    // the fd stays open while the borrowed view exists; SockRef never closes.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    f(&SockRef::from(&fd))
}

/// One accept(2) without waiting: `None` when no connection is queued. The
/// peer's address comes with it (`None` for a unix socket), where glommio's
/// accept throws it away and costs a getpeername(2) later, besides three
/// fcntl(2) around each attempt.
pub fn try_accept(listener: BorrowedFd<'_>) -> Option<std::io::Result<(OwnedFd, Option<SocketAddr>)>> {
    // accept4(SOCK_CLOEXEC) on the listener, which is non-blocking.
    match SockRef::from(&listener).accept() {
        Ok((socket, addr)) => Some(Ok((socket.into(), addr.as_socket()))),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => Some(Err(e)),
    }
}

/// SO_KEEPALIVE and, when tuned, its three timers.
pub fn set_keepalive(socket: &SockRef<'_>, keepalive: Keepalive) -> std::io::Result<()> {
    match keepalive {
        Keepalive::Off => socket.set_keepalive(false),
        Keepalive::On => socket.set_keepalive(true),
        Keepalive::Tuned { idle, interval, count } => {
            let mut params = TcpKeepalive::new();
            if let Some(idle) = idle {
                params = params.with_time(idle);
            }
            if let Some(interval) = interval {
                params = params.with_interval(interval);
            }
            if let Some(count) = count {
                params = params.with_retries(count);
            }
            socket.set_tcp_keepalive(&params)
        }
    }
}

/// `worker_rlimit_nofile`: both the soft and the hard limit, as nginx.
pub fn set_nofile(limit: u64) -> Result<(), String> {
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads one rlimit struct, which lives across the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) };
    if rc != 0 {
        return Err(format!(
            "setrlimit(RLIMIT_NOFILE, {limit}) failed ({})",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
