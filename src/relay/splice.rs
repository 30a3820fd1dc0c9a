//! The zero-copy relay: `splice(2)` socket -> pipe -> socket for bulk
//! transfers, so their bytes never enter user space; small bursts (mail
//! commands, replies, small messages) are copied, which is cheaper for them.
//!
//! glommio has no splice API and exposes no readiness hooks, so the
//! non-blocking `splice` is called directly and the waiting goes through
//! glommio's own operations: its read waits for the next burst (read into
//! the core's shared scratch buffer), and when the destination socket is
//! full, what is left is written with glommio's write, which waits for room.
//! Both sockets sit in `RefCell`s borrowed only inside single polls, so the
//! two directions share them without duplicate fds. A session takes a pipe
//! from its core's pool only while bulk bytes move and gives it back, empty,
//! before it waits: an idle session holds no pipe and no buffer.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

use super::{EndOfStream, RelayStats, Way};

/// The capacity of a pipe nobody resized (16 pages).
const DEFAULT_PIPE: usize = 64 * 1024;

/// Empty pipes a core keeps for reuse; more are closed.
const MAX_IDLE_PIPES: usize = 256;

/// One pipe: its two ends and the bytes in transit. Both fds close on drop.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    pending: usize,
}

/// What one splice call did.
#[derive(Debug, PartialEq, Eq)]
enum Moved {
    Bytes(usize),
    /// Nothing to read, or no room to write: wait, then try again.
    WouldBlock,
    /// The source socket reached its end.
    Closed,
}

fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<Moved> {
    loop {
        // SAFETY: both fds are open for the whole call (borrowed from owners
        // that outlive it); null offsets are required for pipes and sockets.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        match n {
            0 => return Ok(Moved::Closed),
            n if n > 0 => return Ok(Moved::Bytes(n as usize)),
            _ => {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(Moved::WouldBlock),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
        }
    }
}

impl Pipe {
    /// A non-blocking pipe resized to `size`; when the kernel refuses that
    /// size (EPERM past pipe-max-size or pipe-user-pages-soft for a user
    /// without CAP_SYS_RESOURCE, ENOMEM, EINVAL), halving sizes down to the
    /// default are tried. Returns the pipe and whether it got `size`.
    fn open(size: usize) -> io::Result<(Pipe, bool)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two fds into the two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut pipe = Pipe {
            read,
            write,
            capacity: DEFAULT_PIPE,
            pending: 0,
        };
        let mut want = size;
        while want > DEFAULT_PIPE {
            let Ok(arg) = libc::c_int::try_from(want) else {
                want /= 2;
                continue;
            };
            // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
            let granted = unsafe { libc::fcntl(pipe.write.as_raw_fd(), libc::F_SETPIPE_SZ, arg) };
            if granted > 0 {
                pipe.capacity = granted as usize;
                return Ok((pipe, want == size));
            }
            want /= 2;
        }
        Ok((pipe, size <= DEFAULT_PIPE))
    }
}

/// Counters of one core's pipes, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipeStats {
    pub created: u64,
    pub reused: u64,
    /// Pipes that did not get `--pipe-size`, but a smaller capacity.
    pub smaller: u64,
    /// Bulk bursts that could get no pipe (out of fds) and were copied.
    pub copy_fallbacks: u64,
}

/// One core's pipes. Not shared across cores: no lock.
#[derive(Debug)]
pub struct PipePool {
    size: usize,
    idle: RefCell<Vec<Pipe>>,
    stats: RefCell<PipeStats>,
    /// Said once per core, not once per pipe.
    warned: Cell<bool>,
    /// The core's copy buffer for small bursts (see `copy_burst`).
    scratch: RefCell<Vec<u8>>,
}

impl PipePool {
    pub fn new(size: usize) -> Self {
        PipePool {
            size,
            idle: RefCell::new(Vec::new()),
            stats: RefCell::default(),
            warned: Cell::new(false),
            scratch: RefCell::new(vec![0; SCRATCH]),
        }
    }

    pub fn stats(&self) -> PipeStats {
        self.stats.borrow().clone()
    }

    /// A pipe, or `None` when none can be made (EMFILE, ENFILE).
    fn take(&self) -> Option<Pipe> {
        if let Some(pipe) = self.idle.borrow_mut().pop() {
            self.stats.borrow_mut().reused += 1;
            return Some(pipe);
        }
        match Pipe::open(self.size) {
            Ok((pipe, full_size)) => {
                let mut stats = self.stats.borrow_mut();
                stats.created += 1;
                if !full_size {
                    stats.smaller += 1;
                    if !self.warned.replace(true) {
                        log::warn!(
                            "F_SETPIPE_SZ({}) refused, using pipes of {} bytes (see /proc/sys/fs/pipe-max-size)",
                            self.size,
                            pipe.capacity
                        );
                    }
                }
                Some(pipe)
            }
            Err(e) => {
                log::warn!("pipe2() failed ({e}), relaying by copy");
                None
            }
        }
    }

    /// Keeps an empty pipe for the next taker.
    fn give(&self, pipe: Pipe) {
        let mut idle = self.idle.borrow_mut();
        if pipe.pending == 0 && idle.len() < MAX_IDLE_PIPES {
            idle.push(pipe);
        }
    }

    fn note_copy_fallback(&self) {
        self.stats.borrow_mut().copy_fallbacks += 1;
    }
}

/// O_NONBLOCK in one ioctl(FIONBIO), where fcntl takes two calls (get, set):
/// this runs at the start of every relayed session.
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int, which lives across the call; the fd is
    // borrowed from its owner for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &on) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One side of the relay: its stream, borrowed only inside a single poll
/// (never across an await), so both directions can read from one socket
/// and write to the other through glommio; and its fd for splice.
struct Side {
    stream: RefCell<TcpStream>,
    fd: RawFd,
    /// Kernel TLS: a read that fails with EIO met a record that is not
    /// data, and splice refuses one with EINVAL.
    ktls: bool,
}

impl Side {
    fn new(stream: TcpStream, ktls: bool) -> Side {
        let fd = stream.as_raw_fd();
        Side {
            stream: RefCell::new(stream),
            fd,
            ktls,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the stream in `self` owns the fd for as long as `self` lives.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// glommio's write, which waits for room in the socket.
    async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < bytes.len() {
            let n =
                std::future::poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, &bytes[written..]))
                    .await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket took nothing"));
            }
            written += n;
        }
        Ok(())
    }
}

/// The two sockets of a spliced session.
pub struct Ends {
    pub client: TcpStream,
    pub backend: TcpStream,
    /// The client's socket is kernel TLS: the kernel decrypts and encrypts,
    /// and a record that is not data (an alert) is read apart.
    pub client_ktls: bool,
    /// The backend's socket is kernel TLS.
    pub backend_ktls: bool,
}

/// As `copy::relay`, by splice for bulk and by copy for small bursts.
///
/// The setup runs before the future is made, so the future holds the sides
/// once: an async fn would keep its arguments for its whole life beside
/// the locals made from them, which an idle session pays in memory.
pub fn relay<'a>(
    ends: Ends,
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
    idle_limit: Duration,
    pool: &'a PipePool,
    tally: super::RelayTally,
) -> impl std::future::Future<Output = RelayStats> + 'a {
    // glommio waits through io_uring and leaves fds blocking; a blocking
    // splice would stall the whole core.
    let Ends {
        client,
        backend,
        client_ktls,
        backend_ktls,
    } = ends;
    let mut failed = None;
    for stream in [&client, &backend] {
        // SAFETY: the stream owns its fd for the call.
        if let Err(e) = set_nonblocking(unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }) {
            failed = Some(format!("ioctl(FIONBIO) failed ({e})"));
        }
    }
    let sides = (Side::new(client, client_ktls), Side::new(backend, backend_ktls));
    let meter = super::Meter::new(tally);
    async move {
        if let Some(error) = failed {
            return RelayStats::failed(error);
        }
        let (client, backend) = (&sides.0, &sides.1);
        let up = direction(
            client,
            backend,
            to_backend,
            pool,
            Way::ToBackend,
            &meter,
            EndOfStream::HalfClose,
        );
        let down = direction(
            backend,
            client,
            to_client,
            pool,
            Way::ToClient,
            &meter,
            EndOfStream::EndsSession,
        );
        let (up, down) = (std::pin::pin!(up), std::pin::pin!(down));
        let stats = super::drive(up, down, idle_limit, &meter).await;
        if client.ktls {
            // As the rustls relay does: the client can tell a clean end
            // from a cut connection.
            crate::tls::ktls::send_close_notify(client.fd());
        }
        stats
    }
}

async fn direction(
    from: &Side,
    to: &Side,
    already: Vec<u8>,
    pool: &PipePool,
    way: Way,
    meter: &super::Meter,
    end: EndOfStream,
) -> Result<(), String> {
    if !already.is_empty() {
        to.write_all(&already).await.map_err(|e| e.to_string())?;
        meter.moved(way, already.len() as u64, false);
    }
    // Not kept for the rest of the session.
    drop(already);
    loop {
        // Mail is mostly short lines and small messages, for which two
        // splices through a pipe cost more than one copy: each burst is
        // read (glommio waits for it) into the core's scratch buffer and
        // sent on. Only a burst that fills the buffer is a bulk transfer,
        // whose rest goes by splice until the source runs dry.
        let Some((n, rest)) = copy_burst(from, to, pool).await.map_err(|e| e.to_string())? else {
            return match end {
                EndOfStream::HalfClose => {
                    if to.ktls {
                        // As rustls would before the half-close.
                        crate::tls::ktls::send_close_notify(to.fd());
                    }
                    socket2::SockRef::from(&to.fd())
                        .shutdown(Shutdown::Write)
                        .map_err(|e| e.to_string())
                }
                EndOfStream::EndsSession => Ok(()),
            };
        };
        if !rest.is_empty() {
            to.write_all(&rest).await.map_err(|e| e.to_string())?;
        }
        meter.last_moved.set(Instant::now());
        meter.moved(way, n as u64, false);
        if n == SCRATCH {
            // Boxed: only bulk transfers get here, and an idle session's
            // state should not carry this phase's larger one.
            Box::pin(splice_until_dry(from, to, pool, way, meter)).await?;
        }
    }
}

/// The core's copy buffer for small bursts: big enough for a mail command,
/// a reply or a small message; a burst that fills it switches to splice.
const SCRATCH: usize = 16 * 1024;

/// Waits for one burst, reads it into the core's scratch buffer and sends
/// what the destination takes at once; the bytes read and what is left to
/// send. `None` at the end of the stream. The buffer is borrowed only inside
/// the poll that completes the read, so every session of the core shares it.
async fn copy_burst(from: &Side, to: &Side, pool: &PipePool) -> io::Result<Option<(usize, Vec<u8>)>> {
    std::future::poll_fn(|cx| loop {
        let mut scratch = pool.scratch.borrow_mut();
        return match Pin::new(&mut *from.stream.borrow_mut()).poll_read(cx, &mut scratch[..]) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) if from.ktls && e.raw_os_error() == Some(libc::EIO) => match control_record(from) {
                Ok(Record::End) => Poll::Ready(Ok(None)),
                Ok(Record::Skipped) => continue,
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(None)),
            Poll::Ready(Ok(n)) => {
                Poll::Ready(send(to.fd(), &scratch[..n]).map(|sent| Some((n, scratch[sent..n].to_vec()))))
            }
        };
    })
    .await
}

/// What a record that is not data meant.
enum Record {
    /// The peer's close_notify: its end of stream.
    End,
    /// A session ticket from a TLS 1.3 backend: of no use once the kernel
    /// has the session.
    Skipped,
}

/// Reads the record that stopped a read of a kernel TLS socket. Anything
/// but a close_notify or a ticket ends the session, a KeyUpdate included
/// (the kernel cannot take new keys from rustls, which no longer has the
/// session).
fn control_record(from: &Side) -> io::Result<Record> {
    use crate::tls::ktls::Control;
    match crate::tls::ktls::read_control(from.fd())? {
        Control::CloseNotify => Ok(Record::End),
        Control::SessionTicket => Ok(Record::Skipped),
        Control::Alert(level, description) => Err(io::Error::other(format!("TLS alert {description} (level {level})"))),
        Control::KeyUpdate => Err(io::Error::other("a TLS KeyUpdate, which kernel TLS cannot follow")),
        Control::Handshake(kind) => Err(io::Error::other(format!(
            "TLS handshake message {kind} after the handshake"
        ))),
        Control::Other(kind) => Err(io::Error::other(format!("a TLS record of type {kind}"))),
    }
}

/// Splices until the source has nothing more for now; the bytes moved.
/// Each pipeful is counted once it is through, so the counters follow a
/// long bulk run as it goes.
async fn splice_until_dry(
    from: &Side,
    to: &Side,
    pool: &PipePool,
    way: Way,
    meter: &super::Meter,
) -> Result<(), String> {
    let mut spill = Vec::new();
    loop {
        let Some(mut pipe) = pool.take() else {
            // No pipe to be had (out of fds): the copy path carries on, so
            // a session never needs a pipe to start or to go on.
            pool.note_copy_fallback();
            return Ok(());
        };
        match splice(from.fd(), pipe.write.as_fd(), pipe.capacity) {
            Ok(Moved::Bytes(n)) => {
                pipe.pending = n;
                let result = drain(&mut pipe, to, &mut spill).await;
                pool.give(pipe);
                result?;
                meter.moved(way, n as u64, true);
            }
            // The end of stream, if it came, is seen by the next burst.
            Ok(Moved::WouldBlock | Moved::Closed) => {
                pool.give(pipe);
                return Ok(());
            }
            // Kernel TLS splices data records only; the next burst's read
            // meets the other record and deals with it.
            Err(e) if from.ktls && e.raw_os_error() == Some(libc::EINVAL) => {
                pool.give(pipe);
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Non-blocking send(2) of as much of `buf` as the socket takes now.
fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < buf.len() {
        // SAFETY: the fd is borrowed from its owner for the call; the pointer
        // and length describe the unsent part of `buf`, readable for the call.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf[sent..].as_ptr().cast(),
                buf.len() - sent,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => break,
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
    Ok(sent)
}

/// Empties the pipe into `to`: by splice while the socket takes it; when it
/// is full, the rest goes through `spill` and glommio's write, which waits.
async fn drain(pipe: &mut Pipe, to: &Side, spill: &mut Vec<u8>) -> Result<(), String> {
    while pipe.pending > 0 {
        match splice(pipe.read.as_fd(), to.fd(), pipe.pending).map_err(|e| e.to_string())? {
            Moved::Bytes(n) => pipe.pending -= n,
            Moved::WouldBlock => {
                spill.resize(pipe.pending, 0);
                read_exact_from_pipe(&pipe.read, spill).map_err(|e| e.to_string())?;
                pipe.pending = 0;
                to.write_all(spill).await.map_err(|e| e.to_string())?;
                // A session that was slow once must not keep a pipe's worth
                // of memory for the rest of its life.
                *spill = Vec::new();
            }
            Moved::Closed => return Err("the destination closed".to_string()),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes that are known to be in the pipe.
fn read_exact_from_pipe(pipe: &OwnedFd, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the fd is open (owned by the pipe); the pointer and length
        // describe the unfilled part of `buf`, which is writable.
        let n = unsafe { libc::read(pipe.as_raw_fd(), buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        match n {
            n if n > 0 => filled += n as usize,
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "pipe emptied early")),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn pipe_sizes_and_refusals() {
        let (pipe, full) = Pipe::open(1 << 20).unwrap();
        assert!(full);
        assert_eq!(pipe.capacity, 1 << 20);
        // 3 GiB: no kernel takes it (above 2^31 it is EINVAL for everyone);
        // a smaller pipe comes back instead.
        let (pipe, full) = Pipe::open(3 << 30).unwrap();
        assert!(!full);
        assert!(pipe.capacity >= DEFAULT_PIPE && pipe.capacity < 3 << 30);
    }

    #[test]
    fn splice_moves_bytes_through_a_pipe() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        c.set_nonblocking(true).unwrap();
        let (pipe, _) = Pipe::open(DEFAULT_PIPE).unwrap();
        assert_eq!(splice(b.as_fd(), pipe.write.as_fd(), 4096).unwrap(), Moved::WouldBlock);
        a.write_all(b"hello").unwrap();
        assert_eq!(splice(b.as_fd(), pipe.write.as_fd(), 4096).unwrap(), Moved::Bytes(5));
        assert_eq!(splice(pipe.read.as_fd(), c.as_fd(), 5).unwrap(), Moved::Bytes(5));
        let mut got = [0u8; 5];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        drop(a);
        assert_eq!(splice(b.as_fd(), pipe.write.as_fd(), 4096).unwrap(), Moved::Closed);
    }

    #[test]
    fn pool_reuses_only_empty_pipes() {
        let pool = PipePool::new(DEFAULT_PIPE);
        let pipe = pool.take().unwrap();
        pool.give(pipe);
        let mut pipe = pool.take().unwrap();
        assert_eq!(
            pool.stats(),
            PipeStats {
                created: 1,
                reused: 1,
                smaller: 0,
                copy_fallbacks: 0
            }
        );
        pipe.pending = 1;
        pool.give(pipe);
        assert!(pool.idle.borrow().is_empty(), "a pipe holding bytes must not be reused");
    }
}
