//! Listening on TCP or Unix sockets, one thread per accepted connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix { listener: UnixListener, path: PathBuf },
}

/// An accepted connection.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// TLS over an accepted TCP or Unix connection (`backend --tls-cert`).
    Tls(crate::tls::Shared<rustls::ServerConnection, Stream>),
}

/// The backlog of the companions' TCP listeners; the kernel caps it at
/// net.core.somaxconn.
const BACKLOG: i32 = 4096;

fn bind_tcp(spec: &str) -> io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = spec
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address in {spec}")))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

impl Listener {
    /// Binds `spec`: either `unix:/path/to.sock` or anything
    /// [`TcpListener::bind`] accepts (`127.0.0.1:0`, `[::1]:8080`, ...).
    /// A stale socket file at the Unix path is removed first.
    pub fn bind(spec: &str) -> io::Result<Listener> {
        match spec.strip_prefix("unix:") {
            Some(path) => {
                let path = PathBuf::from(path);
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(&path)?;
                    }
                }
                let listener = UnixListener::bind(&path)?;
                Ok(Listener::Unix { listener, path })
            }
            None => Ok(Listener::Tcp(bind_tcp(spec)?)),
        }
    }

    /// The bound address: `127.0.0.1:40123` or `unix:/tmp/x.sock`.
    pub fn address(&self) -> io::Result<String> {
        match self {
            Listener::Tcp(l) => Ok(l.local_addr()?.to_string()),
            Listener::Unix { path, .. } => Ok(format!("unix:{}", path.display())),
        }
    }

    /// Accepts one connection; TCP sockets get `TCP_NODELAY`.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (stream, _) = l.accept()?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Listener::Unix { listener, .. } => Ok(Stream::Unix(listener.accept()?.0)),
        }
    }
}

/// Prints the single `listening <addr>` line on stdout and flushes it.
pub fn announce(listener: &Listener) -> io::Result<()> {
    let address = listener.address()?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening {address}")?;
    out.flush()
}

/// Accepts connections forever, running `handler` on a new thread for each.
pub fn serve<F>(listener: Listener, handler: F) -> !
where
    F: Fn(Stream) + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("postern-bench: accept: {e}");
                // Back off so that e.g. EMFILE does not spin the CPU.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        if let Err(e) = thread::Builder::new()
            .name("conn".into())
            .spawn(move || handler(stream))
        {
            eprintln!("postern-bench: cannot spawn connection thread: {e}");
        }
    }
}

impl Stream {
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => Ok(Stream::Tcp(s.try_clone()?)),
            Stream::Unix(s) => Ok(Stream::Unix(s.try_clone()?)),
            Stream::Tls(s) => Ok(Stream::Tls(s.clone())),
        }
    }

    /// Wraps the connection in a TLS server session; the handshake happens
    /// on the first read or write (the greeting).
    pub fn accept_tls(self, config: &Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        Ok(Stream::Tls(crate::tls::Shared::new(rustls::StreamOwned::new(
            conn, self,
        ))))
    }

    /// Not for a TLS stream: the lock a blocked read holds would stall the
    /// caller (set it on the socket before wrapping).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "set the read timeout before starting TLS",
            )),
        }
    }

    /// Half-closes the write side so the peer sees EOF after our last
    /// reply; over TLS a close_notify goes first, as the peer's TLS stack
    /// otherwise reports a truncation.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tls(s) => {
                let mut tls = s.lock();
                tls.conn.send_close_notify();
                tls.flush()?;
                tls.sock.shutdown_write()
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// True for errors that just mean the peer went away.
pub fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
