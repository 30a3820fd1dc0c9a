//! The copy relay: read into a buffer, write it out, in both directions at
//! once. Used until the splice relay lands, and later for TLS.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_lite::io::{split, ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::{EndOfStream, RelayStats};

/// Copy buffer per direction.
const BUFFER: usize = 64 * 1024;

/// Relays until the backend has closed and its bytes reached the client, or
/// either direction failed. `to_backend` and `to_client` are bytes already
/// read from each side that belong to the other (commands pipelined behind
/// the login, data after the backend's login reply).
///
/// The client's end of stream is passed on as a half-close and the backend's
/// answer still flows back (`LOGOUT` then `shutdown(SHUT_WR)` gets its BYE).
/// The backend's end of stream ends the session, as in nginx: a mail server
/// that closed accepts no more commands, and a client that ignored the close
/// would otherwise hold the session open.
///
/// `idle_limit` (`proxy_timeout`) ends a relay in which no byte moved either
/// way for that long.
pub async fn relay(
    client: TcpStream,
    backend: TcpStream,
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
    idle_limit: Duration,
) -> RelayStats {
    let (client_rx, client_tx) = split(client);
    let (backend_rx, backend_tx) = split(backend);
    let meter = super::Meter::new();
    let up = direction(
        client_rx,
        backend_tx,
        to_backend,
        &meter.up,
        &meter.last_moved,
        EndOfStream::HalfClose,
    );
    let down = direction(
        backend_rx,
        client_tx,
        to_client,
        &meter.down,
        &meter.last_moved,
        EndOfStream::EndsSession,
    );
    let (up, down) = (std::pin::pin!(up), std::pin::pin!(down));
    super::drive(up, down, idle_limit, &meter).await
}

async fn direction(
    mut from: ReadHalf<TcpStream>,
    mut to: WriteHalf<TcpStream>,
    already: Vec<u8>,
    count: &Cell<u64>,
    last_moved: &Cell<Instant>,
    end: EndOfStream,
) -> Result<(), String> {
    if !already.is_empty() {
        to.write_all(&already).await.map_err(|e| e.to_string())?;
        count.set(count.get() + already.len() as u64);
    }
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return match end {
                EndOfStream::HalfClose => to.close().await.map_err(|e| e.to_string()),
                EndOfStream::EndsSession => Ok(()),
            };
        }
        last_moved.set(Instant::now());
        to.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        count.set(count.get() + n as u64);
    }
}
