//! The glommio side of auth_http: one connection per attempt (as nginx),
//! the request written, the reply read until its head is complete, all
//! within `auth_http_timeout`. Other sessions on the core run meanwhile.

use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpStream, UnixStream};

use super::reply::{self, Parsed, MAX_REPLY_BYTES};
use super::{AuthError, AuthReply};
use crate::config::{AuthHttp, AuthHttpTarget};

/// Sends `request` (from `request::build`) and returns the decision.
pub async fn ask(server: &AuthHttp, request: &[u8], timeout: Duration) -> Result<AuthReply, AuthError> {
    let exchange = async {
        match &server.target {
            AuthHttpTarget::Tcp(addr) => {
                let stream = TcpStream::connect(*addr)
                    .await
                    .map_err(|e| AuthError::Connect(e.to_string()))?;
                // No TCP_NODELAY: the request is one write on a fresh
                // connection, which Nagle never delays; a setsockopt per
                // login would cost more than it saves.
                exchange(stream, request).await
            }
            AuthHttpTarget::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| AuthError::Connect(e.to_string()))?;
                exchange(stream, request).await
            }
        }
    };
    match glommio::timer::timeout(timeout, async { Ok(exchange.await) }).await {
        Ok(result) => result,
        Err(_) => Err(AuthError::TimedOut),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Result<AuthReply, AuthError> {
    stream
        .write_all(request)
        .await
        .map_err(|e| AuthError::Io(e.to_string()))?;
    let mut buf = vec![0u8; MAX_REPLY_BYTES];
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(|e| AuthError::Io(e.to_string()))?;
        if n == 0 {
            // HTTP/1.0: the server closes after the reply; a head cut short
            // is malformed.
            return match reply::parse(&buf[..len])? {
                Parsed::Complete(reply) => Ok(reply),
                Parsed::Partial => Err(AuthError::Malformed("reply ended before its header".into())),
            };
        }
        len += n;
        if let Parsed::Complete(reply) = reply::parse(&buf[..len])? {
            return Ok(reply);
        }
    }
}
