//! What runs on one core: its listeners' accept loops and its sessions. Nothing
//! here is shared with another core.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::io::FromRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use glommio::net::{TcpListener, TcpStream, UnixStream};
use glommio::sync::Semaphore;

use crate::relay::splice::PipePool;
use crate::relay::RelayMode;
use crate::session::{self, ServerContext, ServerSetup};

/// How long a core handing its sockets over to a new binary waits for the
/// accept it has in flight to complete.
const HANDOVER_WAIT: Duration = Duration::from_secs(1);

/// After a failed accept (EMFILE, ENFILE, ENOBUFS), wait this long before
/// trying again rather than spin on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One listening socket of this core and the server block it serves.
pub struct CoreListener {
    /// A listening TCP socket of this core, or this core's duplicate of the
    /// shared unix socket.
    pub fd: OwnedFd,
    /// `127.0.0.1:143` or `unix:/path`, for log lines.
    pub name: String,
    pub server: ServerSetup,
}

/// Per-core identity and limits.
pub struct CoreSpec {
    pub index: usize,
    pub cores: usize,
    pub listeners: Vec<CoreListener>,
    /// `worker_connections`: sessions this core serves at once.
    pub max_sessions: usize,
    pub relay: RelayMode,
    /// `--pipe-size`: capacity asked for each splice pipe.
    pub pipe_size: usize,
    /// `worker_shutdown_timeout`.
    pub shutdown_timeout: Option<Duration>,
    /// This core's counters, when `metrics_listen` is on.
    pub metrics: Option<&'static crate::metrics::CoreMetrics>,
}

/// Per-core state shared by this core's tasks (never across cores).
struct Core {
    index: u64,
    cores: u64,
    next_seq: Cell<u64>,
    sessions: Rc<Semaphore>,
    random: RandomState,
}

impl Core {
    /// nginx numbers connections across the whole process; each core takes
    /// every `cores`-th number, so ids stay unique without sharing a counter.
    fn next_id(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq * self.cores + self.index + 1
    }

    /// Per-session random bytes (salts): SipHash keyed from the OS's
    /// randomness once per core, over a counter.
    fn random(&self, id: u64) -> [u8; 16] {
        let a = self.random.hash_one((id, 0u8));
        let b = self.random.hash_one((id, 1u8));
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        out
    }
}

/// Orders from the main thread, one byte each on the core's control socket.
pub const STOP_GRACEFULLY: u8 = b'Q';
/// A new listener set waits in the core's reload channel.
pub const RELOAD: u8 = b'R';
/// A graceful stop after a binary upgrade: the listening sockets are shared
/// with the new binary, so they are closed here but not shut down.
pub const STOP_HANDED_OVER: u8 = b'H';

/// One listener of a reloaded configuration, as a core is to serve it.
pub struct ReloadListener {
    /// `127.0.0.1:143` or `unix:/path`: a name this core serves already
    /// keeps its socket, so connections queued on it are never reset.
    pub name: String,
    pub server: ServerSetup,
    /// The core's socket for a name it does not serve yet.
    pub fd: Option<OwnedFd>,
}

/// The whole listener set of a reloaded configuration: names the core
/// serves that are not in it stop being served.
pub type ReloadPlan = Vec<ReloadListener>;

/// One listener this core serves.
struct Serving {
    accept_loop: glommio::Task<()>,
    /// Tells the accept loop to end after the accept in flight.
    closing: Rc<Cell<bool>>,
    /// What new connections get; a reload replaces it, sessions in flight
    /// keep the one they started with.
    ctx: Rc<RefCell<Rc<ServerContext>>>,
    /// A duplicate of the listening fd, to shut the socket down when it
    /// stops being served: dropping glommio's listener is not enough, as an
    /// io_uring accept in flight keeps the socket open, listening.
    dup: Option<OwnedFd>,
}

/// What every listener of this core shares.
struct Shared {
    core: Rc<Core>,
    pipes: Option<Rc<PipePool>>,
    stopping: Rc<Semaphore>,
}

impl Shared {
    fn context(&self, server: ServerSetup, name: String) -> Rc<ServerContext> {
        Rc::new(ServerContext::new(
            server,
            name,
            self.pipes.clone(),
            self.stopping.clone(),
            self.core.cores as usize,
        ))
    }

    fn serve(&self, fd: OwnedFd, name: String, server: ServerSetup) -> Serving {
        let dup = match fd.try_clone() {
            Ok(dup) => Some(dup),
            Err(e) => {
                log::error!("dup() of the listener {name} failed ({e})");
                None
            }
        };
        let ctx = Rc::new(RefCell::new(self.context(server, name)));
        let raw = fd.as_raw_fd();
        // glommio cannot build its UnixListener from an fd, but its
        // TcpListener only ever calls accept(2) through io_uring, which any
        // stream socket serves; its TcpStream only calls recv, send and
        // shutdown. So a unix socket is driven through the same types, and
        // the session skips the TCP-only options for it.
        // SAFETY: the fd is a bound, listening, non-blocking stream socket
        // whose only owner was `fd`; ownership moves to the glommio
        // listener.
        let socket = unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) };
        let closing = Rc::new(Cell::new(false));
        let accept_loop = glommio::spawn_local(accept_loop(
            socket,
            raw,
            ctx.clone(),
            self.core.clone(),
            closing.clone(),
        ));
        Serving {
            accept_loop,
            closing,
            ctx,
            dup,
        }
    }
}

impl Serving {
    /// Stops accepting and closes this core's socket, and stops the socket
    /// itself listening unless another process (a new binary) accepts on it
    /// too.
    /// `handed_over`: the socket stays open in the new binary, which
    /// accepts too. The accept in flight here then completes with the next
    /// connection the kernel gives this process, which is served, or is
    /// cancelled at `deadline` (an accept completing just then is the one
    /// connection that can still be lost). `closing` is set beforehand.
    async fn stop(self, handed_over: Option<Instant>) {
        let mut accept_loop = self.accept_loop;
        if let Some(deadline) = handed_over {
            let left = deadline.saturating_duration_since(Instant::now());
            if glommio::timer::timeout(left, async {
                (&mut accept_loop).await;
                Ok(())
            })
            .await
            .is_ok()
            {
                return;
            }
        }
        // Cancelling the accept loop drops its listener.
        let _ = accept_loop.cancel().await;
        if let (Some(fd), None) = (self.dup, handed_over) {
            // Stops the socket listening and wakes any accept in flight;
            // the kernel then refuses new connections to this core.
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Serves until the main thread orders a graceful stop (or goes away), then
/// stops accepting, closes the sessions that have not logged in, and waits
/// for relayed sessions to end, at most `shutdown_timeout`. In between, a
/// reload order swaps the configuration new connections get and opens and
/// closes listeners.
pub async fn run(spec: CoreSpec, control: OwnedFd, reloads: mpsc::Receiver<ReloadPlan>) {
    let max_sessions = spec.max_sessions as u64;
    if let Some(block) = spec.metrics {
        crate::metrics::attach(block);
    }
    let shared = Shared {
        core: Rc::new(Core {
            index: spec.index as u64,
            cores: spec.cores as u64,
            next_seq: Cell::new(0),
            sessions: Rc::new(Semaphore::new(max_sessions)),
            random: RandomState::new(),
        }),
        pipes: (spec.relay == RelayMode::Splice).then(|| Rc::new(PipePool::new(spec.pipe_size))),
        stopping: Rc::new(Semaphore::new(0)),
    };
    let mut serving: Vec<(String, Serving)> = spec
        .listeners
        .into_iter()
        .map(|l| (l.name.clone(), shared.serve(l.fd, l.name, l.server)))
        .collect();

    // SAFETY: `control` is this core's end of a connected unix socket pair,
    // owned by nobody else; the glommio stream takes it over.
    let mut control = unsafe { UnixStream::from_raw_fd(control.into_raw_fd()) };
    let mut order = [0u8; 1];
    let handed_over = loop {
        match control.read(&mut order).await {
            Ok(1) if order[0] == RELOAD => {
                while let Ok(plan) = reloads.try_recv() {
                    serving = reload(&shared, serving, plan, spec.index).await;
                }
            }
            Ok(1) if order[0] == STOP_HANDED_OVER => break true,
            // Any other answer ends serving: the stop order, or the main
            // thread gone.
            _ => break false,
        }
    };

    // The kernel refuses new connections once every core's sockets closed.
    let handover = handed_over.then(|| {
        for (_, listener) in &serving {
            listener.closing.set(true);
        }
        Instant::now() + HANDOVER_WAIT
    });
    for (_, listener) in serving {
        listener.stop(handover).await;
    }
    crate::notice!("core {}: stopped accepting", spec.index);
    // After a handover the sessions still logging in finish here (bounded
    // by `timeout`): their clients did nothing wrong.
    if !handed_over {
        shared.stopping.close();
    }
    let drained = shared.core.sessions.acquire_permit(max_sessions);
    let finished = match spec.shutdown_timeout {
        Some(limit) => glommio::timer::timeout(limit, async { drained.await.map(drop) })
            .await
            .is_ok(),
        None => drained.await.is_ok(),
    };
    if !finished {
        crate::notice!(
            "core {}: worker_shutdown_timeout passed, closing the remaining sessions",
            spec.index
        );
    }
    if let Some(pipes) = &shared.pipes {
        let s = pipes.stats();
        crate::notice!(
            "core {}: pipes created {}, reused {}, smaller than asked {}, bulk bursts copied for want of a pipe {}",
            spec.index,
            s.created,
            s.reused,
            s.smaller,
            s.copy_fallbacks
        );
    }
}

/// Applies one reload: kept names get the new configuration, new ones start
/// accepting, the others stop. Returns what the core serves now.
async fn reload(
    shared: &Shared,
    mut serving: Vec<(String, Serving)>,
    plan: ReloadPlan,
    index: usize,
) -> Vec<(String, Serving)> {
    let mut next = Vec::with_capacity(plan.len());
    for listener in plan {
        if let Some(at) = serving.iter().position(|(name, _)| *name == listener.name) {
            let (name, kept) = serving.swap_remove(at);
            *kept.ctx.borrow_mut() = shared.context(listener.server, name.clone());
            next.push((name, kept));
        } else if let Some(fd) = listener.fd {
            next.push((listener.name.clone(), shared.serve(fd, listener.name, listener.server)));
        } else {
            // The main thread binds every name a core does not serve yet.
            log::error!("core {index}: no socket for the new listener {}", listener.name);
        }
    }
    for (name, gone) in serving {
        gone.stop(None).await;
        crate::notice!("core {index}: stopped listening on {name}");
    }
    crate::notice!("core {index}: reconfigured, {} listener(s)", next.len());
    next
}

/// `fd` is `listener`'s own fd, which glommio does not lend out. Each
/// connection takes the configuration `ctx` holds when it is accepted.
async fn accept_loop(
    listener: TcpListener,
    fd: RawFd,
    ctx: Rc<RefCell<Rc<ServerContext>>>,
    core: Rc<Core>,
    closing: Rc<Cell<bool>>,
) {
    // SAFETY: `listener` owns the fd and lives as long as this loop.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !closing.get() {
        // Past worker_connections the core stops accepting until a session
        // ends; the kernel queues new connections on this core's socket.
        if core.sessions.available() == 0 {
            crate::metrics::inc(
                ctx.borrow().server.protocol,
                crate::metrics::Counter::WorkerConnectionsFull,
            );
        }
        let permit = match core.sessions.acquire_static_permit(1).await {
            Ok(p) => p,
            Err(e) => {
                log::error!("session limit failed: {e}");
                return;
            }
        };
        // Under load a connection is usually queued already: take it with
        // one accept4(2). Only an empty queue goes through glommio, which
        // waits for the next one in io_uring.
        // An accept glommio has in flight in io_uring is not cancelled
        // when the socket is shared with a new binary: one that completes
        // as it is cancelled would lose its connection. `closing` lets it
        // complete instead, and this loop serves that connection and ends.
        let accepted = match super::sys::try_accept(fd) {
            // SAFETY: the fd was just accepted and is owned by nobody else;
            // the glommio stream takes it over.
            Some(Ok((fd, peer))) => Ok((unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }, peer)),
            Some(Err(e)) => Err(e.into()),
            None => listener.accept().await.map(|stream| {
                let peer = stream.peer_addr().ok();
                (stream, peer)
            }),
        };
        match accepted {
            Ok((stream, peer)) => {
                let id = core.next_id();
                let random = core.random(id);
                let ctx = ctx.borrow().clone();
                glommio::spawn_local(async move {
                    session::serve(stream, peer, id, ctx, random).await;
                    drop(permit);
                })
                .detach();
            }
            Err(e) => {
                log::error!("accept() failed ({e})");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
