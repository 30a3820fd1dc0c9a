//! The copy relay: bytes read on one side are written to the other, in both
//! directions at once. It serves every session with TLS on either side
//! (rustls must see the bytes) and `--relay copy`.
//!
//! Each read goes into the core's one scratch buffer, borrowed only for the
//! length of a poll, never across a wait: an idle session holds no relay
//! buffer at all. Only bytes the destination could not take at once (a slow
//! peer) are copied into a buffer of the session's own, freed once sent.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::io::{split, ReadHalf, WriteHalf};
use futures_lite::{AsyncRead, AsyncWrite};

use super::{EndOfStream, RelayStats, Way};

/// The core's read buffer: a TLS record's plaintext (16 KiB) fits several
/// times over, and a plain socket read rarely returns more.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    // One per core: each core is one thread, and its tasks never poll two
    // directions at the same instant.
    static SCRATCH_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Relays until the backend has closed and its bytes reached the client, or
/// either direction failed. `to_backend` and `to_client` are bytes already
/// read from each side that belong to the other (commands pipelined behind
/// the login, data after the backend's login reply).
///
/// The client's end of stream is passed on as a half-close (with TLS, a
/// close_notify first) and the backend's answer still flows back (`LOGOUT`
/// then `shutdown(SHUT_WR)` gets its BYE). The backend's end of stream ends
/// the session, as in nginx: a mail server that closed accepts no more
/// commands, and a client that ignored the close would otherwise hold the
/// session open.
///
/// `idle_limit` (`proxy_timeout`) ends a relay in which no byte moved either
/// way for that long. `client_tls`: the backend's end is passed on to the
/// client as a TLS close_notify before the session closes, so the client can
/// tell a clean end from a cut connection.
pub async fn relay<C, B>(
    client: C,
    backend: B,
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
    idle_limit: Duration,
    client_tls: bool,
    tally: super::RelayTally,
) -> RelayStats
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (client_rx, client_tx) = split(client);
    let (backend_rx, backend_tx) = split(backend);
    let meter = super::Meter::new(tally);
    let up = Direction::new(
        client_rx,
        backend_tx,
        to_backend,
        &meter,
        Way::ToBackend,
        EndOfStream::HalfClose,
    );
    let down = Direction::new(
        backend_rx,
        client_tx,
        to_client,
        &meter,
        Way::ToClient,
        // Either way the backend's end ends the session (`drive`).
        if client_tls {
            EndOfStream::HalfClose
        } else {
            EndOfStream::EndsSession
        },
    );
    let (up, down) = (std::pin::pin!(up), std::pin::pin!(down));
    super::drive(up, down, idle_limit, &meter).await
}

/// One direction of the relay, as a hand-written future so the scratch
/// buffer is borrowed inside one poll only.
struct Direction<'m, R, W> {
    from: ReadHalf<R>,
    to: WriteHalf<W>,
    /// Bytes read but not yet taken by `to`; empty (unallocated) normally.
    unsent: Vec<u8>,
    /// `to` took bytes it has not necessarily sent yet (TLS buffers them).
    unflushed: bool,
    /// The source ended and the end is being passed on.
    closing: bool,
    meter: &'m super::Meter,
    way: Way,
    end: EndOfStream,
}

impl<'m, R, W> Direction<'m, R, W> {
    fn new(
        from: ReadHalf<R>,
        to: WriteHalf<W>,
        already: Vec<u8>,
        meter: &'m super::Meter,
        way: Way,
        end: EndOfStream,
    ) -> Self {
        Direction {
            from,
            to,
            unsent: already,
            unflushed: false,
            closing: false,
            meter,
            way,
            end,
        }
    }
}

impl<R, W> Direction<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Writes as much of `bytes` as `to` takes now; how much that was.
    fn write_now(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut done = 0;
        while done < bytes.len() {
            match Pin::new(&mut self.to).poll_write(cx, &bytes[done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    done += n;
                    self.meter.moved(self.way, n as u64, false);
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if done == 0 => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(done))
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.unsent.is_empty() {
                let unsent = std::mem::take(&mut self.unsent);
                let written = match self.write_now(cx, &unsent) {
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => 0,
                };
                if written < unsent.len() {
                    self.unsent = unsent;
                    self.unsent.drain(..written);
                    return Poll::Pending;
                }
                // Sent: the allocation goes back to the heap.
                continue;
            }
            if self.unflushed {
                match Pin::new(&mut self.to).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.closing {
                return Pin::new(&mut self.to).poll_close(cx);
            }
            let read = SCRATCH_BUFFER.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                match Pin::new(&mut self.from).poll_read(cx, &mut scratch[..]) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Ok(true)),
                    Poll::Ready(Ok(n)) => {
                        self.meter.last_moved.set(Instant::now());
                        let written = match self.write_now(cx, &scratch[..n]) {
                            Poll::Ready(Ok(written)) => written,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => 0,
                        };
                        // What `to` did not take waits in the session's own
                        // buffer: the scratch is the next reader's.
                        self.unsent.extend_from_slice(&scratch[written..n]);
                        Poll::Ready(Ok(false))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            });
            match read {
                Poll::Ready(Ok(true)) => match self.end {
                    EndOfStream::HalfClose => self.closing = true,
                    EndOfStream::EndsSession => return Poll::Ready(Ok(())),
                },
                Poll::Ready(Ok(false)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<R, W> Future for Direction<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    type Output = Result<(), String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_step(cx).map_err(|e| e.to_string())
    }
}
