//! `metrics_listen`: `GET /metrics` over plain HTTP/1.0 or 1.1, one request
//! per connection, served by a thread of its own with blocking std I/O.
//!
//! Not on a core: a scrape is a few times a minute, and a slow or
//! malicious scraper then costs that thread's time, never a core's
//! sessions; nor on the main thread, which must stay free for signals.
//! Requests are served one at a time, each bounded in size and time, so
//! the thread and its memory stay small whatever the peer does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{text, Registry};

/// A request line and headers larger than this get 400: a scraper sends a
/// few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;

/// The whole request must arrive within this, and the reply be taken
/// within it again: a peer trickling bytes holds the thread no longer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long, and how many bytes, an oversized request is read on after
/// its 400 (`linger`).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Headers beyond this many get 400.
const MAX_HEADERS: usize = 32;

/// After a failed accept (EMFILE), wait before trying again rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The name the listening socket goes by in a binary upgrade's inherited set.
pub fn socket_name(addr: SocketAddr) -> String {
    format!("metrics:{addr}")
}

/// Binds `addr` in the main thread, with the mail listeners, so a busy
/// address fails the start.
pub fn bind(addr: SocketAddr) -> Result<OwnedFd, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what}() to {addr} for metrics_listen failed ({e})");
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(|e| fail("socket", e))?;
    socket.set_reuse_address(true).map_err(|e| fail("setsockopt", e))?;
    socket.set_cloexec(true).map_err(|e| fail("fcntl", e))?;
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    socket.listen(64).map_err(|e| fail("listen", e))?;
    Ok(OwnedFd::from(socket))
}

/// Starts the thread that serves scrapes of `registry` on `fd`.
pub fn spawn(fd: OwnedFd, registry: &'static Registry) -> Result<(), String> {
    let listener = TcpListener::from(fd);
    // An inherited socket may come non-blocking; this thread blocks.
    listener
        .set_nonblocking(false)
        .map_err(|e| format!("fcntl() on the metrics socket failed ({e})"))?;
    std::thread::Builder::new()
        .name("postern-metrics".into())
        .spawn(move || serve(&listener, registry))
        .map(drop)
        .map_err(|e| format!("starting the metrics thread failed ({e})"))
}

fn serve(listener: &TcpListener, registry: &Registry) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve_one(stream, registry) {
                    log::info!("metrics request failed: {e}");
                }
            }
            Err(e) => {
                log::error!("accept() on the metrics socket failed ({e})");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

fn serve_one(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let reply = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        match decide(&buf[..len]) {
            Decision::More if len == buf.len() => break Reply::TooLarge,
            Decision::More => {}
            Decision::Reply(reply) => break reply,
        }
    };
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    stream.write_all(&response(reply, registry))?;
    if reply == Reply::TooLarge {
        linger(&mut stream)?;
    }
    Ok(())
}

/// Closing with unread bytes resets the connection, and the reset can
/// destroy the reply before the peer reads it: the rest of the request is
/// read and dropped first, within bounds, as nginx's lingering close.
fn linger(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(LINGER_TIME))?;
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `GET /metrics`, or with `head` only the header.
    Metrics {
        head: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request's header is not complete yet.
    More,
    Reply(Reply),
}

/// The answer to the bytes received so far.
pub fn decide(received: &[u8]) -> Decision {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(received) {
        Ok(httparse::Status::Partial) => Decision::More,
        Err(_) => Decision::Reply(Reply::BadRequest),
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("");
            // A query string (`?name[]=...` from some scrapers) is ignored.
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            let head = match request.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Decision::Reply(Reply::MethodNotAllowed),
            };
            if path == "/metrics" {
                Decision::Reply(Reply::Metrics { head })
            } else {
                Decision::Reply(Reply::NotFound)
            }
        }
    }
}

/// The whole HTTP response to `reply`; the connection closes after it.
pub fn response(reply: Reply, registry: &Registry) -> Vec<u8> {
    let (status, content_type, body, head, extra) = match reply {
        Reply::Metrics { head } => (
            "200 OK",
            text::CONTENT_TYPE,
            text::render(&registry.snapshot()),
            head,
            "",
        ),
        Reply::NotFound => (
            "404 Not Found",
            "text/plain",
            "Not found: try /metrics\n".into(),
            false,
            "",
        ),
        Reply::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "Only GET and HEAD\n".into(),
            false,
            "Allow: GET, HEAD\r\n",
        ),
        Reply::BadRequest => ("400 Bad Request", "text/plain", "Bad request\n".into(), false, ""),
        Reply::TooLarge => (
            "400 Bad Request",
            "text/plain",
            "Request header too large\n".into(),
            false,
            "",
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
