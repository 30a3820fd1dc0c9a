//! The glommio side of auth_http: the request written, the reply read until
//! it is complete, all within `auth_http_timeout`. Other sessions on the
//! core run meanwhile. As nginx, each attempt opens its own connection,
//! unless `auth_http_keepalive` lets a core keep idle ones to reuse.

use std::cell::RefCell;
use std::time::Duration;

use futures_lite::{AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpStream, UnixStream};

use super::reply::{self, MAX_REPLY_BYTES};
use super::{AuthError, AuthReply};
use crate::config::{AuthHttp, AuthHttpTarget};

/// One core's idle connections to one auth server. Not shared across cores.
#[derive(Debug)]
pub struct KeepAlive {
    idle: RefCell<Vec<TcpStream>>,
    max: usize,
}

impl KeepAlive {
    pub fn new(max: usize) -> Self {
        KeepAlive {
            idle: RefCell::new(Vec::new()),
            max,
        }
    }

    fn take(&self) -> Option<TcpStream> {
        self.idle.borrow_mut().pop()
    }

    fn give(&self, stream: TcpStream) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.max {
            idle.push(stream);
        }
    }
}

/// How one exchange ended, beyond its decision.
enum Exchange<S> {
    /// The reply, and the stream when it may carry another request.
    Done(AuthReply, Option<S>),
    /// A reused connection turned out closed before any reply byte: the
    /// server dropped it while idle. Try a fresh one.
    Stale,
}

/// Sends `request` (from `request::build`) and returns the decision. With
/// `keep`, the request asked for keep-alive and the connection is reused.
pub async fn ask(
    server: &AuthHttp,
    request: &[u8],
    timeout: Duration,
    keep: Option<&KeepAlive>,
) -> Result<AuthReply, AuthError> {
    let attempt = async {
        match &server.target {
            AuthHttpTarget::Tcp(addr) => {
                if let Some(pool) = keep {
                    if let Some(stream) = pool.take() {
                        if let Exchange::Done(reply, reusable) = exchange(stream, request, true).await? {
                            if let Some(stream) = reusable {
                                pool.give(stream);
                            }
                            return Ok(reply);
                        }
                    }
                }
                // No TCP_NODELAY: the request is one write on a fresh
                // connection, which Nagle never delays; a setsockopt per
                // login would cost more than it saves.
                let stream = TcpStream::connect(*addr)
                    .await
                    .map_err(|e| AuthError::Connect(e.to_string()))?;
                match exchange(stream, request, false).await? {
                    Exchange::Done(reply, reusable) => {
                        if let (Some(pool), Some(stream)) = (keep, reusable) {
                            pool.give(stream);
                        }
                        Ok(reply)
                    }
                    Exchange::Stale => Err(AuthError::Malformed("reply ended before its header".into())),
                }
            }
            AuthHttpTarget::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| AuthError::Connect(e.to_string()))?;
                match exchange(stream, request, false).await? {
                    Exchange::Done(reply, _) => Ok(reply),
                    Exchange::Stale => Err(AuthError::Malformed("reply ended before its header".into())),
                }
            }
        }
    };
    match glommio::timer::timeout(timeout, async { Ok(attempt.await) }).await {
        Ok(result) => result,
        Err(_) => Err(AuthError::TimedOut),
    }
}

async fn exchange<S: crate::eager_read::Socket + AsyncWrite>(
    mut stream: S,
    request: &[u8],
    reused: bool,
) -> Result<Exchange<S>, AuthError> {
    if let Err(e) = stream.write_all(request).await {
        return if reused {
            Ok(Exchange::Stale)
        } else {
            Err(AuthError::Io(e.to_string()))
        };
    }
    let mut buf = vec![0u8; MAX_REPLY_BYTES];
    let mut len = 0;
    loop {
        let n = match crate::eager_read::read(&mut stream, &mut buf[len..]).await {
            Ok(n) => n,
            Err(_) if reused && len == 0 => return Ok(Exchange::Stale),
            Err(e) => return Err(AuthError::Io(e.to_string())),
        };
        if n == 0 && len == 0 && reused {
            return Ok(Exchange::Stale);
        }
        len += n;
        let parsed = reply::parse_framed(&buf[..len])?;
        match parsed {
            Some((reply, framing)) => {
                let Some(end) = framing.reusable_end() else {
                    return Ok(Exchange::Done(reply, None));
                };
                // Read the (small, bounded) body so the next reply starts
                // clean; a server that sends more than it said is not reused.
                while len < end && end <= buf.len() {
                    match crate::eager_read::read(&mut stream, &mut buf[len..end]).await {
                        Ok(0) | Err(_) => return Ok(Exchange::Done(reply, None)),
                        Ok(n) => len += n,
                    }
                }
                let clean = len == end;
                return Ok(Exchange::Done(reply, clean.then_some(stream)));
            }
            // HTTP/1.0: the server closes after the reply; a head cut short
            // is malformed.
            None if n == 0 => return Err(AuthError::Malformed("reply ended before its header".into())),
            None => {}
        }
    }
}
