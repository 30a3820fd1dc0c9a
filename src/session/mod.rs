//! One client connection's life, stage by stage: the front-end machine's
//! dialogue, the auth round trip, the backend login, the relay, and the one
//! log line at the end. This module shuttles bytes and performs the
//! machines' orders; it makes no protocol decision of its own.

/// `say!(ctx, trace, Level, "...")`: a session line to its server's
/// `error_log`s, with nginx's mail context (client, server, login).
macro_rules! say {
    ($ctx:expr, $trace:expr, $level:ident, $($arg:tt)+) => {
        $ctx.log.session(
            $crate::config::LogLevel::$level,
            $trace.id,
            Some(&$trace.context(&$ctx.listen_name)),
            format_args!($($arg)+),
        )
    };
}

mod backend;
pub mod limits;
mod proxied;
mod stream;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

use crate::auth::{self, request::RequestContext};
use crate::config::{Protocol, ServerConfig};
use crate::protocol::imap::{ImapFront, ImapFrontSettings};
use crate::protocol::line::printable;
use crate::protocol::pop3::{Pop3Front, Pop3FrontSettings};
use crate::protocol::smtp::{SmtpFront, SmtpFrontSettings};
use crate::protocol::{FrontEnd, SessionSeed, Step};
use crate::relay;
use crate::relay::splice::PipePool;
use crate::runtime;
use crate::tls;

pub use stream::Stream;

/// Bytes read from the client per read before the relay.
const READ_CHUNK: usize = 4096;

/// The TLS a server block's sessions use, built from its configuration in
/// the main thread (where a bad certificate stops a start or a reload) and
/// shared read-only with every core.
#[derive(Clone)]
pub struct TlsSetup {
    /// `None` when no listener is `ssl` and `starttls` is off.
    pub server: Option<Arc<tls::ServerTls>>,
    pub backend: Arc<tls::BackendTls>,
}

impl TlsSetup {
    pub fn build(server: &ServerConfig) -> Result<TlsSetup, crate::config::ConfigError> {
        Ok(TlsSetup {
            server: tls::ServerTls::build(server)?.map(Arc::new),
            backend: Arc::new(tls::BackendTls::build(server)?),
        })
    }
}

/// A server block as one listener serves it.
#[derive(Clone)]
pub struct ServerSetup {
    pub server: ServerConfig,
    pub tls: TlsSetup,
    /// `listen ... ssl`: the handshake comes before the greeting.
    pub implicit_tls: bool,
    /// `listen ... proxy_protocol`: a PROXY header comes before anything.
    pub proxy_protocol: bool,
}

/// One core's TLS for the client side of a server block.
struct ClientTls {
    acceptor: futures_rustls::TlsAcceptor,
    /// For the facts the auth request carries.
    server: Arc<tls::ServerTls>,
}

/// One core's TLS toward the backends of a server block.
struct BackendTls {
    connector: futures_rustls::TlsConnector,
    names: Arc<tls::BackendTls>,
}

/// What every session of one listener on one core shares.
pub struct ServerContext {
    pub server: ServerConfig,
    /// The client side's TLS, when any listener or STARTTLS needs it.
    client_tls: Option<ClientTls>,
    /// This listener is `ssl`.
    implicit_tls: bool,
    /// This listener is `proxy_protocol`.
    proxy_protocol: bool,
    backend_tls: BackendTls,
    pub front: FrontSettings,
    /// The listening address, for log lines.
    pub listen_name: String,
    /// The core's pipes; `None` relays by copy (`--relay copy`).
    pub pipes: Option<Rc<PipePool>>,
    /// Kernel TLS, when `--ktls auto` found it and TLS sessions can be
    /// spliced (the core has a pipe pool).
    ktls: Option<tls::ktls::KernelTls>,
    /// Closed (never given permits) when a graceful stop begins: a session
    /// waiting on it for a client command wakes and says goodbye.
    pub stopping: Rc<Semaphore>,
    /// Idle auth server connections (`auth_http_keepalive`), when enabled.
    pub auth_pool: Option<auth::client::KeepAlive>,
    /// `client_preauth_limit`, when enabled.
    pub preauth: Option<Rc<limits::PreauthLimit>>,
    /// `auth_http_concurrency` and `auth_http_queue`, when enabled.
    pub auth_limit: Option<limits::AuthLimit>,
    /// `auth_fail_limit`, when enabled.
    pub fail_limit: Option<limits::FailLimit>,
    /// `resolver`, for SMTP (the only protocol nginx uses it for).
    resolver: Option<crate::resolver::Resolver>,
    /// This core's handles on the server's error logs.
    pub log: crate::logging::SessionLog,
}

impl ServerContext {
    /// `cores`: how many cores share the server block (each gets its share
    /// of the TLS session cache).
    pub fn new(
        setup: ServerSetup,
        listen_name: String,
        pipes: Option<Rc<PipePool>>,
        stopping: Rc<Semaphore>,
        cores: usize,
    ) -> Self {
        let ServerSetup {
            server,
            tls,
            implicit_tls,
            proxy_protocol,
        } = setup;
        let client_tls = tls.server.map(|server_tls| ClientTls {
            acceptor: futures_rustls::TlsAcceptor::from(server_tls.for_core(cores)),
            server: server_tls,
        });
        let backend_tls = BackendTls {
            connector: futures_rustls::TlsConnector::from(tls.backend.config()),
            names: tls.backend,
        };
        let server_keepalive = server.auth_http_keepalive;
        let preauth =
            (server.client_preauth_limit > 0).then(|| Rc::new(limits::PreauthLimit::new(server.client_preauth_limit)));
        let auth_limit = (server.auth_http_concurrency > 0)
            .then(|| limits::AuthLimit::new(server.auth_http_concurrency, server.auth_http_queue));
        let fail_limit = server
            .auth_fail_limit
            .map(|(max, window)| limits::FailLimit::new(max, window));
        let resolver = match (&server.resolver, server.protocol) {
            (Some(config), Protocol::Smtp) => {
                Some(crate::resolver::Resolver::new(config.clone(), server.resolver_timeout))
            }
            _ => None,
        };
        let ktls = tls::ktls::kernel().filter(|_| pipes.is_some());
        ServerContext {
            ktls,
            resolver,
            front: FrontSettings::from_server(&server),
            log: crate::logging::SessionLog::new(&server.error_log),
            client_tls,
            implicit_tls,
            proxy_protocol,
            backend_tls,
            server,
            listen_name,
            pipes,
            stopping,
            auth_pool: (server_keepalive > 0).then(|| auth::client::KeepAlive::new(server_keepalive)),
            preauth,
            auth_limit,
            fail_limit,
        }
    }
}

/// The server block's protocol and its machine's settings, computed once.
#[derive(Debug)]
pub enum FrontSettings {
    Imap(Rc<ImapFrontSettings>),
    Pop3(Rc<Pop3FrontSettings>),
    Smtp(Rc<SmtpFrontSettings>),
}

impl FrontSettings {
    fn from_server(server: &ServerConfig) -> Self {
        match server.protocol {
            Protocol::Imap => FrontSettings::Imap(Rc::new(ImapFrontSettings::from_server(server))),
            Protocol::Pop3 => FrontSettings::Pop3(Rc::new(Pop3FrontSettings::from_server(server))),
            Protocol::Smtp => FrontSettings::Smtp(Rc::new(SmtpFrontSettings::from_server(server))),
        }
    }

    fn start(&self, seed: SessionSeed) -> FrontEnd {
        match self {
            // A reference count per session, not a copy of the settings.
            FrontSettings::Imap(s) => FrontEnd::Imap(ImapFront::new(Rc::clone(s), seed)),
            FrontSettings::Pop3(s) => FrontEnd::Pop3(Pop3Front::new(Rc::clone(s), seed)),
            FrontSettings::Smtp(s) => FrontEnd::Smtp(SmtpFront::new(Rc::clone(s), seed)),
        }
    }
}

/// Facts about one session for its log lines.
struct Trace {
    id: u64,
    client: Option<SocketAddr>,
    /// The address the client connected to (`Server-IP`/`Server-Port`).
    server: Option<SocketAddr>,
    started: Instant,
    user: Option<Vec<u8>>,
    backend: Option<SocketAddr>,
    /// SMTP's `Client-Host` and XCLIENT `NAME=`, known before the greeting.
    client_host: Option<crate::resolver::ClientHost>,
    /// The connection a balancer's PROXY header stated, if any.
    proxied: Option<crate::proxy_protocol::Addresses>,
    starttls: bool,
}

impl Trace {
    fn context<'a>(&'a self, server: &'a str) -> crate::logging::MailContext<'a> {
        crate::logging::MailContext {
            client: self.client.map(|a| a.ip()),
            starttls: self.starttls,
            server,
            login: self.user.as_deref(),
            upstream: self.backend,
        }
    }
}

/// Serves one accepted client; `peer` is its address (`None` on a unix
/// socket). The setup runs before the future is made: the future, which
/// lives as long as the session, holds what the session needs once, not
/// also the arguments it was made from (an async fn keeps those).
pub fn serve(
    client: TcpStream,
    peer: Option<SocketAddr>,
    id: u64,
    ctx: Rc<ServerContext>,
    random: [u8; 16],
) -> impl std::future::Future<Output = ()> {
    let trace = Trace {
        id,
        client: peer,
        // A unix-socket client has no address to tell.
        server: peer.and_then(|_| client.local_addr().ok()),
        started: Instant::now(),
        user: None,
        backend: None,
        client_host: None,
        proxied: None,
        starttls: false,
    };
    // As nginx: the port too, and no context yet. Formatted only when a
    // log takes info lines: this runs for every connection.
    if ctx.log.enabled(crate::config::LogLevel::Info) {
        let shown = peer.map_or_else(|| "unix:".to_string(), |a| a.to_string());
        ctx.log.session(
            crate::config::LogLevel::Info,
            id,
            None,
            format_args!("client {shown} connected to {}", ctx.listen_name),
        );
    }
    // TCP_NODELAY comes from the listening socket (accepted sockets
    // inherit it). Fails harmlessly on a unix-socket client.
    if ctx.server.so_keepalive {
        let _ = runtime::sys::with_socket(&client, |s| s.set_keepalive(true));
    }
    let timeout = ctx.server.timeout;
    // Reads are bounded by the dialogue (a whole command within `timeout`).
    let _ = client.set_write_timeout(Some(timeout));
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut seed = SessionSeed {
        client: peer,
        random,
        now_unix,
        tls: ctx.implicit_tls,
    };
    async move {
        let active = crate::metrics::session_started(ctx.server.protocol);
        let mut trace = trace;
        let mut client = client;
        // Before anything, TLS included: the balancer speaks first. From
        // here on the client is who the header says, when trusted.
        if ctx.proxy_protocol {
            match proxied::read_header(&mut client, timeout).await {
                Ok(header) => {
                    trace.client = proxied::real_client(peer, &header, &ctx.server.set_real_ip_from);
                    trace.proxied = header.addresses;
                    seed.client = trace.client;
                    if trace.client != peer {
                        say!(ctx, trace, Info, "real address from the PROXY protocol header");
                    }
                }
                Err(reason) => return say!(ctx, trace, Info, "{reason}"),
            }
        }
        // client_preauth_limit: the place is held by the dialogue and given
        // back when it ends, logged in or not.
        let preauth = match (&ctx.preauth, trace.client) {
            (Some(limit), Some(addr)) => match limit.enter(addr.ip()) {
                Some(place) => Some(place),
                None => {
                    active.refused_preauth();
                    // A TLS client would read the plaintext refusal as a
                    // broken handshake: it only gets the close.
                    if !ctx.implicit_tls {
                        refuse(client, ctx.server.protocol).await;
                    }
                    return say!(
                        ctx,
                        trace,
                        Info,
                        "refused, client_preauth_limit sessions from this address not logged in"
                    );
                }
            },
            _ => None,
        };
        let (client, tls_facts) = if ctx.implicit_tls {
            match Box::pin(accept_tls(client, &ctx)).await {
                Ok((client, facts)) => (client, Some(facts)),
                Err(reason) => {
                    active.closed_early(&reason);
                    return say!(ctx, trace, Info, "{reason}");
                }
            }
        } else {
            (Stream::Plain(client), None)
        };
        if ctx.server.protocol == Protocol::Smtp {
            // As nginx: the greeting waits for the client's host name.
            trace.client_host = Some(Box::pin(client_host(&ctx, &trace)).await);
        }
        // Each stage's future lives on the heap only while it runs, and the
        // front-end machine is made inside the dialogue's: a relayed
        // session keeps only its sockets and the relay's small state, none
        // of the (larger) login dialogue's.
        let handover = match Box::pin(dialogue(client, tls_facts, seed, &ctx, &mut trace, preauth)).await {
            Ok(handover) => handover,
            Err(reason) => {
                active.closed_early(&reason);
                return say!(ctx, trace, Info, "{reason}");
            }
        };
        say!(ctx, trace, Info, "logged in");
        // Only the boxed relay is held across the await: the handover is
        // consumed before it.
        let (via, relay) = start_relay(handover, &ctx);
        let stats = relay.await;
        active.relay_done(&stats);
        say!(
            ctx,
            trace,
            Info,
            "session done ({via}), client->backend {} bytes, backend->client {} bytes, {} spliced, {:.3}s{}",
            stats.client_to_backend,
            stats.backend_to_client,
            stats.spliced,
            trace.started.elapsed().as_secs_f64(),
            stats.error.map_or_else(String::new, |e| format!(", {e}")),
        );
    }
}

/// What the dialogue hands to the relay: both sockets, and the bytes each
/// side sent that belong to the other.
struct Handover {
    client: Stream,
    backend: Stream,
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
}

/// Tells a client over `client_preauth_limit` the protocol's "not now" and
/// closes; the write is bounded by the socket's write timeout (`timeout`).
async fn refuse(mut client: TcpStream, protocol: crate::config::Protocol) {
    let _ = client.write_all(crate::protocol::busy_greeting(protocol)).await;
    let _ = client.close().await;
}

/// The TLS handshake on a client connection (implicit TLS or STARTTLS),
/// bounded as a whole by `timeout`, and what the auth server is told of it.
async fn accept_tls(client: TcpStream, ctx: &ServerContext) -> Result<(Stream, tls::TlsFacts), String> {
    let Some(tls) = &ctx.client_tls else {
        // The machines only order STARTTLS when `starttls` is on, which
        // builds the client side's TLS: a broken invariant, not a panic.
        return Err("TLS requested but not configured".to_string());
    };
    let handshake = tls.acceptor.accept(tls::ktls::RecordWatch::new(client));
    let accepted = if ctx.server.timeout.is_zero() {
        handshake.await
    } else {
        match glommio::timer::timeout(ctx.server.timeout, async { Ok(handshake.await) }).await {
            Ok(accepted) => accepted,
            Err(_) => {
                crate::metrics::tls_handshake(ctx.server.protocol, false);
                return Err("client timed out in TLS handshake".to_string());
            }
        }
    };
    crate::metrics::tls_handshake(ctx.server.protocol, accepted.is_ok());
    let stream = accepted.map_err(|e| format!("TLS handshake failed: {e}"))?;
    let facts = tls
        .server
        .facts(stream.get_ref().1, ctx.server.auth_http_pass_client_cert);
    Ok((Stream::Tls(Box::new(stream.into())), facts))
}

/// Runs the front end until it closes or hands over to the relay. `_preauth`
/// is the session's place under `client_preauth_limit`, held until then.
/// `tls_facts`: the client side's TLS, once there is one.
async fn dialogue(
    mut client: Stream,
    mut tls_facts: Option<tls::TlsFacts>,
    seed: SessionSeed,
    ctx: &ServerContext,
    trace: &mut Trace,
    _preauth: Option<limits::PreauthGuard>,
) -> Result<Handover, String> {
    let mut front = ctx.front.start(seed);
    if let (FrontEnd::Smtp(smtp), Some(host)) = (&mut front, &trace.client_host) {
        smtp.set_client_host(host.as_str());
    }
    // `timeout` bounds each command as a whole, not each read: a client
    // trickling a byte a second (slowloris) would otherwise keep the
    // session forever. Since when the command being read has been coming.
    let timeout = ctx.server.timeout;
    let mut command_since: Option<Instant> = None;
    // Bytes read and not taken by the machine yet; empty (unallocated)
    // while the session waits for its client.
    let mut pending: Vec<u8> = Vec::new();
    let mut backend: Option<(Stream, Vec<u8>)> = None;
    // `Auth-SSL-Backend` of the accepted login, over `proxy_ssl`.
    let mut backend_tls = ctx.server.proxy_ssl.enabled;
    loop {
        while let Some(step) = front.poll() {
            match step {
                Step::Send(bytes) => send(&mut client, &bytes)
                    .await
                    .map_err(|e| io_reason("writing to client", &e))?,
                Step::Authenticate(request) => {
                    trace.user = Some(request.user.clone());
                    let client_id = front.client_id().cloned();
                    let reply = ask_auth_server(&request, tls_facts.as_ref(), client_id.as_ref(), ctx, trace).await;
                    if let Ok(auth::AuthReply::Reject { message, .. }) = &reply {
                        // nginx's words, which fail2ban filters for nginx match.
                        say!(
                            ctx,
                            trace,
                            Info,
                            "client login failed: \"{}\" while in http auth state",
                            printable(message)
                        );
                    }
                    if let Ok(auth::AuthReply::Accept {
                        backend_tls: Some(on), ..
                    }) = &reply
                    {
                        backend_tls = *on;
                    }
                    front.on_auth(reply);
                }
                Step::Wait(delay) => glommio::timer::sleep(delay).await,
                Step::Pause(delay) => {
                    let read =
                        futures_lite::future::or(async { Some(read_into(&mut client, &mut pending).await) }, async {
                            glommio::timer::sleep(delay).await;
                            None
                        });
                    match read.await {
                        None => front.on_pause_end(),
                        Some(Ok(0)) => return Err("client closed connection".to_string()),
                        Some(Ok(_)) => {
                            let used = front.feed(&pending);
                            consume(&mut pending, used);
                        }
                        Some(Err(e)) => return Err(io_reason("reading from client", &e)),
                    }
                }
                Step::ConnectBackend(plan) => {
                    trace.backend = Some(plan.addr);
                    trace.user = Some(plan.user.clone());
                    let tls = backend_tls.then_some(&ctx.backend_tls);
                    // The address the client reached, read once at accept.
                    let preface = proxied::backend_preface(ctx.server.proxy_protocol, trace.client, trace.server);
                    let (stream, outcome) = backend::login(plan, tls, ctx, trace, preface).await;
                    crate::metrics::backend_login(ctx.server.protocol, stream.is_some());
                    backend = stream;
                    front.on_backend(outcome);
                }
                Step::Relay => {
                    let (backend, to_client) = backend.take().ok_or_else(|| "relay without a backend".to_string())?;
                    // Only what is left is kept: the buffers shrink to it.
                    pending.shrink_to_fit();
                    return Ok(Handover {
                        client,
                        backend,
                        to_backend: pending,
                        to_client,
                    });
                }
                Step::StartTls => {
                    // Whatever the client sent behind STARTTLS was sent in
                    // plaintext: it is dropped, never read as a command
                    // from inside the TLS session.
                    pending.clear();
                    command_since = None;
                    trace.starttls = true;
                    let Stream::Plain(tcp) = client else {
                        return Err("STARTTLS inside TLS".to_string());
                    };
                    let (private, facts) = Box::pin(accept_tls(tcp, ctx)).await?;
                    client = private;
                    tls_facts = Some(facts);
                    front.on_tls_started();
                }
                Step::Close(reason) => {
                    let _ = client.close().await;
                    return Err(reason.describe().to_string());
                }
            }
        }
        if !front.wants_input() {
            return Err("session machine stalled".to_string());
        }
        if !pending.is_empty() {
            let used = front.feed(&pending);
            if used > 0 {
                consume(&mut pending, used);
                continue;
            }
        }
        let left = if timeout.is_zero() {
            None
        } else {
            let waited = command_since.map_or(Duration::ZERO, |t| t.elapsed());
            match timeout.checked_sub(waited).filter(|left| !left.is_zero()) {
                Some(left) => Some(left),
                None => return Err("client timed out: command not complete within timeout".to_string()),
            }
        };
        let read = futures_lite::future::or(
            async { Some(read_within(&mut client, &mut pending, left).await) },
            async {
                // Never granted a permit: this only returns once the semaphore is closed.
                let _ = ctx.stopping.acquire_permit(1).await;
                None
            },
        );
        let Some(read) = read.await else {
            front.on_shutdown();
            continue;
        };
        let n = read.map_err(|e| io_reason("reading from client", &e))?;
        if n == 0 {
            return Err("client closed connection".to_string());
        }
        let used = front.feed(&pending);
        consume(&mut pending, used);
        if used > 0 || pending.is_empty() {
            // A command was taken whole: the next one's time starts now.
            command_since = (!pending.is_empty()).then(Instant::now);
        } else if command_since.is_none() {
            command_since = Some(Instant::now());
        }
    }
}

thread_local! {
    // One per core: each core is one thread, and a read borrows it only
    // inside the poll that completes it.
    static READ_SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

/// `read_into`, given up after `left` (a timeout, as glommio's own would
/// say it).
async fn read_within(client: &mut Stream, pending: &mut Vec<u8>, left: Option<Duration>) -> std::io::Result<usize> {
    let Some(left) = left else {
        return read_into(client, pending).await;
    };
    match glommio::timer::timeout(left, async { Ok(read_into(client, pending).await) }).await {
        Ok(read) => read,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "Operation timed out")),
    }
}

/// Reads what the client sent onto the end of `pending`, through the
/// core's scratch buffer, borrowed only inside the poll that completes the
/// read: a session waiting for its client holds no read buffer of its own
/// (as the copy relay's directions). The bytes read; 0 at end of stream.
async fn read_into(client: &mut Stream, pending: &mut Vec<u8>) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match client.poll_read_eager(cx, &mut scratch[..]) {
                std::task::Poll::Ready(Ok(n)) => {
                    pending.extend_from_slice(&scratch[..n]);
                    std::task::Poll::Ready(Ok(n))
                }
                other => other,
            }
        })
    })
    .await
}

/// Drops the `used` bytes the machine took; an emptied buffer gives its
/// memory back, so an idle session keeps none.
fn consume(pending: &mut Vec<u8>, used: usize) {
    if used >= pending.len() {
        *pending = Vec::new();
    } else {
        pending.drain(..used);
    }
}

/// One auth_http round trip for `request`, logged when it fails.
async fn ask_auth_server(
    request: &auth::AuthRequest,
    tls_facts: Option<&tls::TlsFacts>,
    client_id: Option<&crate::protocol::imap::ClientId>,
    ctx: &ServerContext,
    trace: &Trace,
) -> Result<auth::AuthReply, auth::AuthError> {
    // auth_fail_limit: an address the auth server keeps refusing is not
    // worth asking about until its window has passed.
    let client_ip = trace.client.map(|a| a.ip());
    if let (Some(limit), Some(ip)) = (&ctx.fail_limit, client_ip) {
        if limit.blocked(ip, Instant::now()) {
            crate::metrics::inc(ctx.server.protocol, crate::metrics::Counter::LoginsThrottled);
            say!(
                ctx,
                trace,
                Info,
                "auth_fail_limit reached, login refused without asking the auth server"
            );
            return Ok(crate::protocol::throttled_auth_reply(ctx.server.protocol));
        }
    }
    // auth_http_concurrency: the slot is held for the whole round trip.
    let _slot = match &ctx.auth_limit {
        Some(limit) => match limit.slot(ctx.server.auth_http_timeout).await {
            Ok(slot) => Some(slot),
            Err(busy) => {
                crate::metrics::inc(ctx.server.protocol, crate::metrics::Counter::LoginsDeferred);
                say!(ctx, trace, Warn, "{busy}, login deferred");
                return Ok(crate::protocol::busy_auth_reply(ctx.server.protocol));
            }
        },
        None => None,
    };
    let http = auth::request::build(
        request,
        &RequestContext {
            uri: &ctx.server.auth_http.uri,
            host: &ctx.server.auth_http.host,
            client_ip: trace.client.map(|a| a.ip()),
            headers: &ctx.server.auth_http_headers,
            client_host: trace.client_host.as_ref().map(|host| host.as_str()),
            keep_alive: ctx.auth_pool.is_some(),
            tls: tls_facts,
            client_port: trace.client.map(|a| a.port()),
            server_addr: trace.server,
            server_name: &ctx.server.server_name,
            client_id,
            proxy_protocol: trace.proxied,
        },
    );
    let asked = Instant::now();
    let reply = auth::client::ask(
        &ctx.server.auth_http,
        &http,
        ctx.server.auth_http_timeout,
        ctx.auth_pool.as_ref(),
    )
    .await;
    crate::metrics::auth_answered(ctx.server.protocol, request.method, &reply, asked.elapsed());
    if let Err(e) = &reply {
        say!(ctx, trace, Error, "{e} while in http auth state");
    }
    if let (Some(limit), Some(ip), Ok(auth::AuthReply::Reject { .. })) = (&ctx.fail_limit, client_ip, &reply) {
        limit.failed(ip, Instant::now());
    }
    reply
}

/// The SMTP client's host name: `[UNAVAILABLE]` with `resolver off`, else
/// what the resolver finds, its failure logged as nginx logs it.
async fn client_host(ctx: &ServerContext, trace: &Trace) -> crate::resolver::ClientHost {
    let Some(resolver) = &ctx.resolver else {
        return crate::resolver::ClientHost::Unavailable;
    };
    let outcome = resolver.client_host(trace.client.map(|a| a.ip())).await;
    if let Some(error) = &outcome.error {
        say!(ctx, trace, Error, "{error}");
    }
    outcome.host
}

type RelayFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = relay::RelayStats> + 'a>>;

/// The relay's future, by splice when the core has a pipe, boxed at its own
/// size (splice or copy), and its name.
fn start_relay(handover: Handover, ctx: &ServerContext) -> (&'static str, RelayFuture<'_>) {
    let Handover {
        client,
        backend,
        mut to_backend,
        mut to_client,
    } = handover;
    to_client.shrink_to_fit();
    client.set_write_timeout(None);
    if let Some(limit) = ctx.server.proxy_dead_peer_timeout {
        // Fails harmlessly on a unix-socket client.
        let _ = relay::watch_dead_peer(client.tcp(), limit);
        let _ = relay::watch_dead_peer(backend.tcp(), limit);
    }
    let idle = ctx.server.proxy_timeout;
    let tally = relay::RelayTally(ctx.server.protocol);
    let (client, backend) = match (ctx.ktls, &ctx.pipes) {
        (Some(kernel), Some(pool)) if client.is_tls() || backend.is_tls() => {
            let protocol = ctx.server.protocol;
            match to_kernel(client, backend, kernel, (&mut to_backend, &mut to_client), protocol) {
                Handed::Kernel(ends) => {
                    let relay = relay::splice::relay(ends, to_backend, to_client, idle, pool, tally);
                    return ("ktls", Box::pin(relay));
                }
                Handed::Failed(reason) => {
                    return ("ktls", Box::pin(std::future::ready(relay::RelayStats::failed(reason))));
                }
                Handed::Kept(client, backend) => (client, backend),
            }
        }
        _ => (client, backend),
    };
    match (&ctx.pipes, client, backend) {
        (Some(pool), Stream::Plain(client), Stream::Plain(backend)) => {
            let ends = relay::splice::Ends {
                client,
                backend,
                client_ktls: false,
                backend_ktls: false,
            };
            (
                "splice",
                Box::pin(relay::splice::relay(ends, to_backend, to_client, idle, pool, tally)),
            )
        }
        // rustls must see every byte of a TLS side.
        (_, client, backend) => {
            let client_tls = client.is_tls();
            let via = if client_tls || backend.is_tls() { "tls" } else { "copy" };
            let relay = relay::copy::relay(client, backend, to_backend, to_client, idle, client_tls, tally);
            (via, Box::pin(relay))
        }
    }
}

/// What `to_kernel` made of a session.
enum Handed {
    /// Every TLS side is kernel TLS now: splice.
    Kernel(relay::splice::Ends),
    /// A side must stay with rustls, so both do.
    Kept(Stream, Stream),
    /// Keys left rustls but the kernel refused them.
    Failed(String),
}

/// Hands both TLS sides of a session to the kernel, or neither: a kernel
/// TLS socket read as plaintext by the copy relay would take the peer's
/// close_notify for an error. What rustls had decrypted but nobody read is
/// appended to `unread` (to the backend, to the client).
fn to_kernel(
    client: Stream,
    backend: Stream,
    kernel: tls::ktls::KernelTls,
    unread: (&mut Vec<u8>, &mut Vec<u8>),
    protocol: Protocol,
) -> Handed {
    use crate::metrics::{inc, Counter};
    let (client, backend) = match (KtlsSide::prepare(client, kernel), KtlsSide::prepare(backend, kernel)) {
        (Ok(client), Ok(backend)) => (client, backend),
        (client, backend) => {
            inc(protocol, Counter::KtlsKept);
            return Handed::Kept(KtlsSide::back(client), KtlsSide::back(backend));
        }
    };
    let committed = client
        .commit(unread.0)
        .and_then(|client| Ok((client, backend.commit(unread.1)?)));
    match committed {
        Ok(((client, client_ktls), (backend, backend_ktls))) => {
            inc(protocol, Counter::KtlsKernel);
            Handed::Kernel(relay::splice::Ends {
                client,
                backend,
                client_ktls,
                backend_ktls,
            })
        }
        Err(reason) => {
            inc(protocol, Counter::KtlsFailed);
            Handed::Failed(reason)
        }
    }
}

/// One side of a session on its way to kernel TLS.
enum KtlsSide {
    Plain(TcpStream),
    Tls(tls::ktls::Ready),
}

impl KtlsSide {
    /// `Err`: a TLS side that must stay with rustls (said at debug level).
    fn prepare(stream: Stream, kernel: tls::ktls::KernelTls) -> Result<KtlsSide, Stream> {
        match stream {
            Stream::Plain(tcp) => Ok(KtlsSide::Plain(tcp)),
            Stream::Tls(tls) => tls::ktls::prepare(tls, kernel)
                .map(KtlsSide::Tls)
                .map_err(|(tls, why)| {
                    log::debug!("kernel TLS not used for this session: {why}");
                    Stream::Tls(tls)
                }),
        }
    }

    /// The side as it was, for rustls.
    fn back(side: Result<KtlsSide, Stream>) -> Stream {
        match side {
            Ok(KtlsSide::Plain(tcp)) => Stream::Plain(tcp),
            Ok(KtlsSide::Tls(ready)) => Stream::Tls(ready.back()),
            Err(stream) => stream,
        }
    }

    /// The plain socket, and whether it is kernel TLS; what rustls had
    /// decrypted but nobody read is appended to `unread` (after what the
    /// session read itself: rustls decrypted it later).
    fn commit(self, unread: &mut Vec<u8>) -> Result<(TcpStream, bool), String> {
        match self {
            KtlsSide::Plain(tcp) => Ok((tcp, false)),
            KtlsSide::Tls(ready) => {
                let (socket, plaintext) = tls::ktls::commit(ready)?;
                unread.extend_from_slice(&plaintext);
                Ok((socket, true))
            }
        }
    }
}

/// Writes `bytes` whole and pushes them out: TLS holds written bytes in its
/// records until flushed.
async fn send(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

fn io_reason(doing: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut {
        "client timed out".to_string()
    } else {
        format!("{doing}: {e}")
    }
}
