//! Moving bytes both ways once the backend login is done: by splice (zero
//! copy) when a pipe can be had, by copy otherwise (and later for TLS).

pub mod copy;
pub mod splice;

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

pub use crate::metrics::RelayTally;

/// `proxy_dead_peer_timeout`: a peer that vanished without a FIN (power
/// loss, a dropped route, a NAT that forgot the flow) is found within about
/// `limit` instead of after `proxy_timeout`. Keepalive probes start after
/// `limit / 2` of silence and repeat every `limit / 8`; TCP_USER_TIMEOUT
/// `limit` then ends the connection when neither probes nor data are
/// acknowledged for that long (with it set, the kernel ignores
/// TCP_KEEPCNT, so that is not set). A live but idle peer answers the
/// probes and is never cut off.
pub fn watch_dead_peer(socket: &impl std::os::fd::AsRawFd, limit: Duration) -> std::io::Result<()> {
    let idle = (limit / 2).max(Duration::from_secs(1));
    let interval = (limit / 8).max(Duration::from_secs(1));
    crate::runtime::sys::with_socket(socket, |s| {
        s.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle).with_interval(interval))?;
        s.set_tcp_user_timeout(Some(limit))
    })
}

/// How the relay moves bytes (`--relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    Splice,
    Copy,
}

/// What one relay moved, for the session's log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayStats {
    pub client_to_backend: u64,
    pub backend_to_client: u64,
    /// Bytes that went through a pipe, never through user space.
    pub spliced: u64,
    /// Why the relay ended early, if it did not end with both sides closing.
    pub error: Option<String>,
}

impl RelayStats {
    /// A relay that could not start.
    pub fn failed(reason: String) -> RelayStats {
        RelayStats {
            error: Some(reason),
            ..RelayStats::default()
        }
    }
}

/// What a relay's two directions update as bytes move.
#[derive(Debug)]
pub(crate) struct Meter {
    pub(crate) up: Cell<u64>,
    pub(crate) down: Cell<u64>,
    /// Of those, the bytes that went through a pipe (splice relay).
    pub(crate) spliced: Cell<u64>,
    pub(crate) last_moved: Cell<Instant>,
    /// The core's counters, told as the bytes move.
    tally: RelayTally,
}

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    ToBackend,
    ToClient,
}

impl Meter {
    pub(crate) fn new(tally: RelayTally) -> Self {
        Meter {
            up: Cell::new(0),
            down: Cell::new(0),
            spliced: Cell::new(0),
            last_moved: Cell::new(Instant::now()),
            tally,
        }
    }

    /// `n` bytes moved `way`, through a pipe (`spliced`) or through memory.
    pub(crate) fn moved(&self, way: Way, n: u64, spliced: bool) {
        let count = match way {
            Way::ToBackend => &self.up,
            Way::ToClient => &self.down,
        };
        count.set(count.get() + n);
        if spliced {
            self.spliced.set(self.spliced.get() + n);
        }
        self.tally.moved(way == Way::ToBackend, n, spliced);
    }
}

/// Runs the two directions of a relay and its idle limit to the session's
/// end: the backend's direction finishing (nginx ends the session when the
/// backend closes), either direction failing (the other would wait for a
/// peer that is gone), or `idle_limit` without a byte moved. The client's
/// end of stream alone does not end it: the backend's answer still flows.
/// What a direction does when its source reaches the end of its stream.
#[derive(Clone, Copy)]
pub(crate) enum EndOfStream {
    /// The client's end is passed on as a half-close (`shutdown(SHUT_WR)`):
    /// the backend's answer to its last command still flows back.
    HalfClose,
    /// The backend's end ends the session: the sockets close right after,
    /// and a close sends the FIN a shutdown would, for one syscall less.
    EndsSession,
}

/// Runs both directions until the session ends. They come pinned by the
/// caller, so each future is stored once in the session's allocation, not
/// once as an argument and again as a pinned local.
pub(crate) async fn drive(
    mut up: Pin<&mut impl Future<Output = Result<(), String>>>,
    mut down: Pin<&mut impl Future<Output = Result<(), String>>>,
    idle_limit: Duration,
    meter: &Meter,
) -> RelayStats {
    let mut idle = pin!(idle_watch(idle_limit, &meter.last_moved));
    let mut up_done: Option<Result<(), String>> = None;
    let mut down_done: Option<Result<(), String>> = None;
    let mut timed_out = false;
    std::future::poll_fn(|cx| {
        if idle.as_mut().poll(cx).is_ready() {
            timed_out = true;
            return Poll::Ready(());
        }
        if up_done.is_none() {
            if let Poll::Ready(r) = up.as_mut().poll(cx) {
                up_done = Some(r);
            }
        }
        if down_done.is_none() {
            if let Poll::Ready(r) = down.as_mut().poll(cx) {
                down_done = Some(r);
            }
        }
        match (&up_done, &down_done) {
            (Some(Err(_)), _) | (_, Some(_)) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
    let error = match (up_done, down_done) {
        _ if timed_out => Some(format!("proxy_timeout: no data for {}s", idle_limit.as_secs())),
        (Some(Err(e)), _) => Some(format!("client->backend: {e}")),
        (_, Some(Err(e))) => Some(format!("backend->client: {e}")),
        _ => None,
    };
    RelayStats {
        client_to_backend: meter.up.get(),
        backend_to_client: meter.down.get(),
        spliced: meter.spliced.get(),
        error,
    }
}

/// Completes once nothing has moved for `limit` (`proxy_timeout`). One timer
/// per session, re-armed at most once per `limit`, not once per read.
async fn idle_watch(limit: Duration, last_moved: &Cell<Instant>) {
    loop {
        let deadline = last_moved.get() + limit;
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        glommio::timer::sleep(deadline - now).await;
    }
}
