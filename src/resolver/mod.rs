//! `resolver`: the SMTP client's host name, as nginx finds it before the
//! greeting. The client's address is looked up (PTR), then the name found
//! (A or AAAA), and the name is kept only if it maps back to the address.
//! What comes of it goes to the auth server as `Client-Host` and to the
//! backend as XCLIENT `NAME=`.
//!
//! Each core has its own resolver per server block: queries over glommio
//! UDP, a new socket (so a new random source port) and a random id per
//! query, retried across the configured servers within `resolver_timeout`,
//! and a cache of answers. UDP only: a truncated answer is a temporary
//! failure, not retried over TCP. `message` builds and reads the DNS
//! messages, `cache` keeps answers; this file does the I/O.

pub mod cache;
pub mod message;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use glommio::net::UdpSocket;
use hickory_proto::rr::Name;

use crate::config::ResolverConfig;
use cache::Cache;
use message::{AddrType, Question, Reply};

/// nginx's words for a host name it could not confirm.
const UNAVAILABLE: &str = "[UNAVAILABLE]";
const TEMPUNAVAIL: &str = "[TEMPUNAVAIL]";

/// The longest wait on one server before the next is asked too (answers
/// from the ones asked before still count). nginx resends after 5s; a
/// shorter wait serves a client sooner when the first server is down.
const RESEND: Duration = Duration::from_secs(2);

/// UDP DNS messages without EDNS are at most 512 bytes; room for more
/// from servers that send them anyway.
const MAX_ANSWER: usize = 4096;

/// The client's host name as the auth server and the backend are told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHost {
    /// Found and confirmed: the PTR name maps back to the client address.
    Name(String),
    /// No name, or one that does not map back (nginx: NXDOMAIN, a
    /// mismatch; also `resolver off`).
    Unavailable,
    /// The lookup failed for now: a timeout, SERVFAIL, REFUSED (nginx's
    /// any error but NXDOMAIN); also a unix-socket client.
    TempUnavailable,
}

impl ClientHost {
    pub fn as_str(&self) -> &str {
        match self {
            ClientHost::Name(name) => name,
            ClientHost::Unavailable => UNAVAILABLE,
            ClientHost::TempUnavailable => TEMPUNAVAIL,
        }
    }
}

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// NXDOMAIN or an empty answer.
    NotFound,
    /// The server said it failed, or a reply could not be used.
    Failed(String),
    /// Nothing usable within `resolver_timeout`.
    TimedOut,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NotFound => f.write_str("host not found"),
            LookupError::Failed(why) => f.write_str(why),
            LookupError::TimedOut => f.write_str("timed out"),
        }
    }
}

/// A cached positive answer.
#[derive(Debug, Clone)]
enum Answer {
    Name(Name),
    Addrs(Vec<IpAddr>),
}

/// One core's resolver for one server block.
pub struct Resolver {
    config: ResolverConfig,
    timeout: Duration,
    cache: RefCell<Cache<Question, Answer>>,
    /// Where the next lookup starts in the server list, so the load is
    /// spread and a dead first server is not always tried first.
    next_server: Cell<usize>,
    random: ring::rand::SystemRandom,
}

/// What `Resolver::client_host` found, and why when it found no name.
pub struct Outcome {
    pub host: ClientHost,
    /// For the log: which lookup failed and how.
    pub error: Option<String>,
}

impl Resolver {
    pub fn new(config: ResolverConfig, timeout: Duration) -> Self {
        Resolver {
            config,
            timeout,
            cache: RefCell::new(Cache::new(cache::DEFAULT_ENTRIES)),
            next_server: Cell::new(0),
            random: ring::rand::SystemRandom::new(),
        }
    }

    /// The verified host name of `client` (`None`: a unix-socket client).
    /// Each of the two lookups has the whole `resolver_timeout`, as in
    /// nginx.
    pub async fn client_host(&self, client: Option<IpAddr>) -> Outcome {
        let Some(ip) = client.map(|ip| ip.to_canonical()) else {
            return Outcome {
                host: ClientHost::TempUnavailable,
                error: None,
            };
        };
        let failed = |e: LookupError, what: String| Outcome {
            host: match e {
                LookupError::NotFound => ClientHost::Unavailable,
                _ => ClientHost::TempUnavailable,
            },
            error: Some(format!("{what} could not be resolved ({e})")),
        };
        let name = match self.lookup(Question::Ptr(ip)).await {
            Ok(Answer::Name(name)) => name,
            Ok(Answer::Addrs(_)) => return failed(LookupError::Failed("internal error".into()), ip.to_string()),
            Err(e) => return failed(e, ip.to_string()),
        };
        let Some(text) = message::host_text(&name) else {
            return Outcome {
                host: ClientHost::Unavailable,
                error: Some(format!("{ip} resolved to an invalid host name")),
            };
        };
        let kind = match ip {
            IpAddr::V4(_) if self.config.ipv4 => AddrType::A,
            IpAddr::V6(_) if self.config.ipv6 => AddrType::Aaaa,
            // The name could only map back through the family not asked for.
            _ => {
                return Outcome {
                    host: ClientHost::Unavailable,
                    error: None,
                }
            }
        };
        match self.lookup(Question::Addrs(name, kind)).await {
            Ok(Answer::Addrs(addrs)) if addrs.contains(&ip) => Outcome {
                host: ClientHost::Name(text),
                error: None,
            },
            Ok(_) => Outcome {
                host: ClientHost::Unavailable,
                error: Some(format!("\"{text}\" does not resolve back to {ip}")),
            },
            Err(e) => failed(e, format!("\"{text}\"")),
        }
    }

    /// One question, from the cache or the servers.
    async fn lookup(&self, question: Question) -> Result<Answer, LookupError> {
        if let Some(answer) = self.cache.borrow_mut().get(&question, Instant::now()) {
            return Ok(answer);
        }
        let (answer, ttl) = self.ask(&question).await?;
        let life = self.config.valid.unwrap_or(Duration::from_secs(u64::from(ttl)));
        if !life.is_zero() {
            let expires = Instant::now() + life;
            self.cache.borrow_mut().insert(question, answer.clone(), expires);
        }
        Ok(answer)
    }

    /// Sends the query to one server after another, `RESEND` apart, until
    /// an answer that settles it comes from any of them or the time is up.
    async fn ask(&self, question: &Question) -> Result<(Answer, u32), LookupError> {
        let deadline = Instant::now() + self.timeout;
        let id = self.random_id();
        let query = message::query(id, question).map_err(LookupError::Failed)?;
        let servers = &self.config.servers;
        let socket = query_socket(servers).map_err(|e| LookupError::Failed(format!("DNS socket: {e}")))?;
        let start = self.next_server.get();
        self.next_server.set(start.wrapping_add(1));
        // Every server gets its turn within the timeout.
        let count = u32::try_from(servers.len()).unwrap_or(u32::MAX).max(1);
        let per_server = RESEND.min(self.timeout / count).max(Duration::from_millis(100));
        let mut asked: Vec<SocketAddr> = Vec::with_capacity(servers.len());
        let mut buf = vec![0u8; MAX_ANSWER];
        for attempt in 0.. {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let server = servers[(start + attempt) % servers.len()];
            let to = wire_addr(server, &socket);
            if socket.send_to(&query, to).await.is_ok() && !asked.contains(&server) {
                asked.push(server);
            }
            let turn_ends = (now + per_server).min(deadline);
            loop {
                let left = turn_ends.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // The wait is the socket's read timeout, not a timer racing
                // the receive: a receive dropped while in flight in io_uring
                // can still take the next datagram, and that answer would
                // be lost.
                let _ = socket.set_read_timeout(Some(left));
                let (n, from) = match socket.recv_from(&mut buf).await {
                    Ok(got) => got,
                    Err(e) => {
                        if std::io::Error::from(e).kind() != std::io::ErrorKind::TimedOut {
                            // Any other receive error (an ICMP unreachable
                            // reported late) ends this server's turn, not the
                            // lookup; waited out, so a socket that keeps
                            // failing does not spin.
                            glommio::timer::sleep(turn_ends.saturating_duration_since(Instant::now())).await;
                        }
                        break;
                    }
                };
                let from = SocketAddr::new(from.ip().to_canonical(), from.port());
                if !asked.contains(&from) {
                    continue;
                }
                match message::read_reply(&buf[..n], id, question) {
                    Reply::Ignore(why) => log::debug!("DNS answer from {from} ignored: {why}"),
                    Reply::NotFound => return Err(LookupError::NotFound),
                    Reply::Failed(why) => return Err(LookupError::Failed(why.to_string())),
                    Reply::Name { name, ttl } => return Ok((Answer::Name(name), ttl)),
                    Reply::Addrs { addrs, ttl } => return Ok((Answer::Addrs(addrs), ttl)),
                }
            }
        }
        Err(LookupError::TimedOut)
    }

    fn random_id(&self) -> u16 {
        let mut bytes = [0u8; 2];
        // The system RNG failing is not expected; a time-derived id then
        // still differs query to query.
        if ring::rand::SecureRandom::fill(&self.random, &mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            bytes = (nanos as u16).to_be_bytes();
        }
        u16::from_be_bytes(bytes)
    }
}

/// A new UDP socket for one query, on a port the kernel picks at random:
/// IPv4 when every server is, else dual-stack IPv6. Made with socket2, not
/// `UdpSocket::bind`, which sets SO_REUSEPORT.
fn query_socket(servers: &[SocketAddr]) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let v4_only = servers.iter().all(SocketAddr::is_ipv4);
    let (domain, local) = if v4_only {
        (Domain::IPV4, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))
    } else {
        (Domain::IPV6, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0))
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if !v4_only {
        socket.set_only_v6(false)?;
    }
    socket.bind(&local.into())?;
    // SAFETY: the fd is a bound UDP socket whose only owner was `socket`;
    // ownership moves to the glommio socket, which closes it.
    Ok(unsafe { UdpSocket::from_raw_fd(socket.into_raw_fd()) })
}

/// The destination as the socket's family writes it: an IPv4 server is
/// reached from a dual-stack socket by its mapped address.
fn wire_addr(server: SocketAddr, socket: &UdpSocket) -> SocketAddr {
    match (server, socket.local_addr()) {
        (SocketAddr::V4(v4), Ok(SocketAddr::V6(_))) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        _ => server,
    }
}
