//! Listening sockets. A TCP address gets one socket per core, all with
//! SO_REUSEPORT so the kernel spreads connections over the cores. A unix
//! path can be bound only once: that socket is shared, each core accepting
//! on its own duplicate of the fd. Everything is bound in the main thread
//! before any executor starts, so a busy address fails the start at once.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::sys;
use crate::config::ListenParams;

pub fn bind_tcp(addr: SocketAddr, params: &ListenParams) -> Result<OwnedFd, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what}() to {addr} failed ({e})");
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(|e| fail("socket", e))?;
    socket.set_reuse_address(true).map_err(|e| fail("setsockopt", e))?;
    socket.set_reuse_port(true).map_err(|e| fail("setsockopt", e))?;
    if addr.is_ipv6() {
        socket.set_only_v6(params.ipv6only).map_err(|e| fail("setsockopt", e))?;
    }
    apply_buffers(&socket, params).map_err(|e| fail("setsockopt", e))?;
    if let Some(keepalive) = params.keepalive {
        // Accepted connections inherit SO_KEEPALIVE and its timers.
        sys::set_keepalive(&(&socket).into(), keepalive).map_err(|e| fail("setsockopt", e))?;
    }
    // Mail is a dialogue of short lines: every reply goes out at once.
    // Accepted connections inherit it, which spares a setsockopt per session.
    socket.set_tcp_nodelay(true).map_err(|e| fail("setsockopt", e))?;
    socket.set_nonblocking(true).map_err(|e| fail("fcntl", e))?;
    socket.set_cloexec(true).map_err(|e| fail("fcntl", e))?;
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    socket.listen(params.backlog).map_err(|e| fail("listen", e))?;
    Ok(OwnedFd::from(socket))
}

/// Binds `path` once; the caller duplicates the fd for each core. The file
/// is made 0666 as nginx does, so any local user may connect.
pub fn bind_unix(path: &Path, params: &ListenParams) -> Result<OwnedFd, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what}() to unix:{} failed ({e})", path.display());
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| fail("socket", e))?;
    apply_buffers(&socket, params).map_err(|e| fail("setsockopt", e))?;
    socket.set_nonblocking(true).map_err(|e| fail("fcntl", e))?;
    socket.set_cloexec(true).map_err(|e| fail("fcntl", e))?;
    let addr = SockAddr::unix(path).map_err(|e| fail("bind", e))?;
    socket.bind(&addr).map_err(|e| fail("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(|e| fail("chmod", e))?;
    socket.listen(params.backlog).map_err(|e| fail("listen", e))?;
    Ok(OwnedFd::from(socket))
}

fn apply_buffers(socket: &Socket, params: &ListenParams) -> std::io::Result<()> {
    if let Some(size) = params.rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(size) = params.sndbuf {
        socket.set_send_buffer_size(size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Keepalive;
    use std::time::Duration;

    fn sock(fd: &OwnedFd) -> socket2::SockRef<'_> {
        socket2::SockRef::from(fd)
    }

    /// Every `listen` parameter lands on the socket: read back with getsockopt.
    #[test]
    fn parameters_reach_the_socket() {
        let params = ListenParams {
            bind: true,
            backlog: 7,
            rcvbuf: Some(65536),
            sndbuf: Some(131072),
            ipv6only: true,
            keepalive: Some(Keepalive::Tuned {
                idle: Some(Duration::from_secs(600)),
                interval: Some(Duration::from_secs(30)),
                count: Some(4),
            }),
            ssl: false,
            proxy_protocol: false,
        };
        let fd = bind_tcp("127.0.0.1:0".parse().unwrap(), &params).unwrap();
        let s = sock(&fd);
        assert!(s.reuse_port().unwrap());
        assert!(s.is_listener().unwrap());
        // Linux doubles the requested buffer sizes for its bookkeeping.
        assert_eq!(s.recv_buffer_size().unwrap(), 2 * 65536);
        assert_eq!(s.send_buffer_size().unwrap(), 2 * 131072);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(600));
        assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(30));
        assert_eq!(s.tcp_keepalive_retries().unwrap(), 4);
        assert!(s.nonblocking().unwrap());
    }

    #[test]
    fn defaults_and_ipv6only() {
        let fd = bind_tcp("127.0.0.1:0".parse().unwrap(), &ListenParams::default()).unwrap();
        assert!(!sock(&fd).keepalive().unwrap());
        // The backlog is not readable back; a listener that accepts is the proof.
        let port = sock(&fd).local_addr().unwrap().as_socket().unwrap().port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        for only in [true, false] {
            let params = ListenParams {
                ipv6only: only,
                ..ListenParams::default()
            };
            // The wildcard: Linux makes a socket bound to one IPv6 address
            // v6-only whatever was asked.
            let fd = bind_tcp("[::]:0".parse().unwrap(), &params).unwrap();
            assert_eq!(sock(&fd).only_v6().unwrap(), only);
        }
        let params = ListenParams {
            keepalive: Some(Keepalive::On),
            ..ListenParams::default()
        };
        let fd = bind_tcp("127.0.0.1:0".parse().unwrap(), &params).unwrap();
        assert!(sock(&fd).keepalive().unwrap());
    }

    #[test]
    fn busy_port_fails_with_nginx_words() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind_tcp(addr, &ListenParams::default()).unwrap_err();
        assert!(err.starts_with(&format!("bind() to {addr} failed (")), "{err}");
    }

    #[test]
    fn unix_socket_is_world_connectable() {
        let path = std::env::temp_dir().join(format!("postern-listener-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let fd = bind_unix(&path, &ListenParams::default()).unwrap();
        assert!(sock(&fd).is_listener().unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        assert!(bind_unix(&path, &ListenParams::default())
            .unwrap_err()
            .contains("Address already in use"));
        std::fs::remove_file(&path).unwrap();
    }
}
