//! Listening sockets: one per core per address, all with SO_REUSEPORT so the
//! kernel spreads connections over the cores. Bound in the main thread
//! before any executor starts, so a busy port fails the start at once.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, Socket, Type};

/// nginx's default listen backlog.
const BACKLOG: i32 = 511;

pub fn bind_tcp(addr: SocketAddr) -> Result<OwnedFd, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what}() to {addr} failed ({e})");
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(|e| fail("socket", e))?;
    socket.set_reuse_address(true).map_err(|e| fail("setsockopt", e))?;
    socket.set_reuse_port(true).map_err(|e| fail("setsockopt", e))?;
    if addr.is_ipv6() {
        // nginx's default: [::]:143 does not also take IPv4.
        socket.set_only_v6(true).map_err(|e| fail("setsockopt", e))?;
    }
    socket.set_nonblocking(true).map_err(|e| fail("fcntl", e))?;
    socket.set_cloexec(true).map_err(|e| fail("fcntl", e))?;
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    socket.listen(BACKLOG).map_err(|e| fail("listen", e))?;
    Ok(OwnedFd::from(socket))
}
