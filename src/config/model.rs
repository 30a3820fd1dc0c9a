//! The typed configuration every other module reads: built once from the
//! nginx-syntax file, validated, merged (mail -> server inheritance, row
//! defaults), then shared read-only by every core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where a directive came from, for `file:line` in every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// nginx's error-log levels, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Crit,
    Alert,
    Emerg,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Crit => "crit",
            LogLevel::Alert => "alert",
            LogLevel::Emerg => "emerg",
        }
    }

    pub fn parse(word: &str) -> Option<LogLevel> {
        Some(match word {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "crit" => LogLevel::Crit,
            "alert" => LogLevel::Alert,
            "emerg" => LogLevel::Emerg,
            _ => return None,
        })
    }
}

/// Where syslog datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogServer {
    /// Resolved once, when the file is read; port 514 unless given.
    Udp(SocketAddr),
    /// `unix:/dev/log`: the local syslog daemon's datagram socket.
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
    Syslog(SyslogTarget),
}

/// `syslog:server=addr[:port][,facility=][,severity=][,tag=][,nohostname]`:
/// RFC 3164 datagrams over UDP or a unix datagram socket, as nginx sends
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub server: SyslogServer,
    /// RFC 3164's number: 0 (`kern`) to 23 (`local7`, the default).
    pub facility: u8,
    /// `tag=` (default `postern`): at most 32 letters, digits or `_`.
    pub tag: String,
    /// `nohostname`: the header has no HOSTNAME field.
    pub nohostname: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLog {
    pub target: LogTarget,
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One executor per CPU the process may run on.
    Auto,
    Count(usize),
}

/// Main and `events {}` context.
#[derive(Debug, Clone, PartialEq)]
pub struct MainConfig {
    pub worker_processes: Workers,
    /// Every main-level `error_log`, in file order; a line goes to each one
    /// whose level admits it. nginx default: `logs/error.log error`;
    /// Postern runs in the foreground and defaults to stderr at `error`.
    pub error_log: Vec<ErrorLog>,
    pub pid: Option<PathBuf>,
    /// Per-core cap on sessions (`events { worker_connections }`), default 512 as nginx.
    pub worker_connections: usize,
    /// `worker_rlimit_nofile N`: RLIMIT_NOFILE set at start when given.
    pub worker_rlimit_nofile: Option<u64>,
    /// `worker_shutdown_timeout`: how long a graceful stop (SIGQUIT) lets
    /// relayed sessions run; `None` waits for them all, as nginx.
    pub worker_shutdown_timeout: Option<Duration>,
    /// `user NAME [GROUP]`: who the process runs as once its sockets are
    /// bound and its logs open (only when started as root, as nginx).
    pub user: Option<RunAs>,
    /// `metrics_listen ADDR:PORT` (Postern's own): where Prometheus scrapes
    /// `/metrics`; off when `None`.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `user`: a user, and a group that defaults to the user's name as in nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub group: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Pop3,
    Smtp,
}

impl Protocol {
    /// The word used in `protocol` and in the `Auth-Protocol` header.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Smtp => "smtp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: ListenAddr,
    pub location: Location,
    pub params: ListenParams,
}

/// TCP keepalive: `so_keepalive=on|off|[idle]:[intvl]:[cnt]` on `listen`,
/// `so_keepalive on|off` per server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    Off,
    /// SO_KEEPALIVE with the system's timers.
    On,
    /// SO_KEEPALIVE with TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT; an empty
    /// field keeps the system's value.
    Tuned {
        idle: Option<Duration>,
        interval: Option<Duration>,
        count: Option<u32>,
    },
}

/// The parameters of one `listen` directive, nginx's defaults when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenParams {
    /// `bind`: nginx binds `addr:port` separately only with it; Postern
    /// always binds every address separately, so it changes nothing.
    pub bind: bool,
    /// `backlog=N`, default 511.
    pub backlog: i32,
    /// `rcvbuf=size`, `sndbuf=size`: SO_RCVBUF / SO_SNDBUF when given.
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
    /// `ipv6only=on|off` (IPV6_V6ONLY), default on; only for IPv6 addresses.
    pub ipv6only: bool,
    /// `so_keepalive=...`; `None` when absent (the server's `so_keepalive`
    /// then applies to accepted connections).
    pub keepalive: Option<Keepalive>,
    /// `listen ... ssl`: implicit TLS, the handshake before the greeting.
    pub ssl: bool,
    /// `listen ... proxy_protocol`: a PROXY header (v1 or v2) comes first.
    pub proxy_protocol: bool,
}

impl Default for ListenParams {
    fn default() -> Self {
        ListenParams {
            bind: false,
            backlog: DEFAULT_BACKLOG,
            rcvbuf: None,
            sndbuf: None,
            ipv6only: true,
            keepalive: None,
            ssl: false,
            proxy_protocol: false,
        }
    }
}

/// nginx's listen backlog on Linux.
pub const DEFAULT_BACKLOG: i32 = 511;

/// `auth_http URL`: where the auth server is, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthHttpTarget {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHttp {
    pub target: AuthHttpTarget,
    /// The `Host` header: the URL's host as written, `localhost` for `unix:`.
    pub host: String,
    /// Request path, `/` when the URL has none.
    pub uri: String,
}

/// SASL and login methods of `imap_auth`, `pop3_auth` and `smtp_auth`; each
/// list is in nginx's advertising order (this enum's), whatever the file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Plain,
    Login,
    /// POP3 only.
    Apop,
    CramMd5,
    External,
    /// SMTP only (`smtp_auth none`): no authentication; the envelope goes to
    /// the auth server instead.
    None,
    /// OAuth 2.0 bearer tokens (Postern's own): SASL OAUTHBEARER (RFC 7628)
    /// and XOAUTH2.
    OAuthBearer,
    XOAuth2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImapSettings {
    /// `imap_capabilities`, default `IMAP4 IMAP4rev1 UIDPLUS`.
    pub capabilities: Vec<String>,
    /// `imap_auth`, default `plain`.
    pub auth: Vec<AuthMethod>,
    /// `imap_client_buffer`, default 4k: the longest command, literals included.
    pub client_buffer: usize,
    /// `imap_id_forward` (Postern's own, default off): the client's ID
    /// parameters go to the backend, pipelined before the login.
    pub id_forward: bool,
}

/// One `server {}` block with everything inherited from `mail {}` and the
/// defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub location: Location,
    pub listen: Vec<Listen>,
    pub protocol: Protocol,
    pub server_name: String,
    pub timeout: Duration,
    pub auth_http: AuthHttp,
    pub auth_http_timeout: Duration,
    /// The server's `error_log`s, else the `mail` level's; empty: the
    /// main-level logs get this server's session lines (nginx's merge).
    pub error_log: Vec<ErrorLog>,
    /// `auth_http_keepalive N` (Postern's, default 0): idle connections to
    /// the auth server each core keeps for reuse (HTTP/1.0 keep-alive).
    pub auth_http_keepalive: usize,
    /// `auth_http_header name value`: sent after nginx's headers, in order.
    /// Names are HTTP tokens and values hold no CR, LF or NUL (checked when
    /// read), so they cannot break the request.
    pub auth_http_headers: Vec<(String, String)>,
    pub proxy_pass_error_message: bool,
    /// `so_keepalive on|off` (off): SO_KEEPALIVE on client and backend sockets.
    pub so_keepalive: bool,
    /// `max_errors` (5): invalid commands before the session is closed.
    pub max_errors: u32,
    /// `oauth_max_token_size` (Postern's, 64k): the longest bearer token
    /// an OAUTHBEARER / XOAUTH2 client may send; its line may exceed the
    /// client buffer by that much.
    pub oauth_max_token_size: usize,
    /// `proxy_buffer` (4k): the longest backend line during login.
    pub proxy_buffer: usize,
    /// `proxy_timeout` (24h): an idle relay is closed after this.
    pub proxy_timeout: Duration,
    /// `proxy_dead_peer_timeout` (Postern's, 5m; `None` is `off`): on both
    /// relayed sockets, TCP keepalive (idle T/2, then 4 probes T/8 apart)
    /// and TCP_USER_TIMEOUT T, so a peer gone without a FIN ends the session
    /// within about T instead of proxy_timeout.
    pub proxy_dead_peer_timeout: Option<Duration>,
    /// `client_preauth_limit N` (Postern's, 0 = off): sessions from one
    /// client address not logged in yet, per core and listener; more are
    /// refused at the greeting.
    pub client_preauth_limit: usize,
    /// `auth_http_concurrency N` (Postern's, 0 = off): auth requests in
    /// flight per core and listener; more wait in a queue.
    pub auth_http_concurrency: usize,
    /// `auth_http_queue N` (Postern's, 128): logins that may wait for an
    /// auth slot; past it they get the protocol's temporary failure.
    pub auth_http_queue: usize,
    /// `auth_fail_limit N per T` (Postern's, `None` is `off`): a client
    /// address the auth server refused N times within T gets the protocol's
    /// temporary failure without the auth server being asked.
    pub auth_fail_limit: Option<(u32, Duration)>,
    /// `resolver`: `None` is `off`, the default.
    pub resolver: Option<ResolverConfig>,
    /// `resolver_timeout` (30s): the whole of one lookup, retries included.
    pub resolver_timeout: Duration,
    pub imap: ImapSettings,
    pub pop3: Pop3Settings,
    pub smtp: SmtpSettings,
    /// `starttls`.
    pub starttls: Starttls,
    /// The `ssl_*` directives: the client side's TLS.
    pub ssl: TlsSettings,
    /// `auth_http_pass_client_cert`: the client certificate's PEM, escaped,
    /// in `Auth-SSL-Cert`.
    pub auth_http_pass_client_cert: bool,
    /// The `proxy_ssl*` directives: TLS to the backend (beyond nginx).
    pub proxy_ssl: ProxyTls,
    /// `proxy_protocol off|on|v2` (off): the PROXY header sent to the backend.
    pub proxy_protocol: super::realip::SendProxyProtocol,
    /// `set_real_ip_from`: peers whose PROXY header gives the client's address.
    pub set_real_ip_from: Vec<super::realip::TrustedPeer>,
}

/// `starttls off|on|only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starttls {
    Off,
    /// STARTTLS/STLS offered; plaintext logins still allowed.
    On,
    /// Logins only after STARTTLS (IMAP LOGINDISABLED, no AUTH before it).
    Only,
}

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    Off,
    /// A certificate chaining to `ssl_client_certificate` is required.
    On,
    /// Asked for; when sent it must verify.
    Optional,
    /// Asked for; any certificate is accepted and its verification result
    /// passed to the auth server (`Auth-SSL-Verify`).
    OptionalNoCa,
}

/// A version `ssl_protocols` may enable (rustls has no older ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// `ssl_session_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCache {
    /// `off`: sessions are never resumed from a cache.
    Off,
    /// `none` (nginx's default): no cache, though clients are told sessions
    /// may be reused.
    None,
    /// A per-core in-memory cache holding this many sessions in all
    /// (`builtin[:size]` and/or `shared:name:size`, sizes summed; nginx's
    /// shared zone counts about 4,000 sessions per megabyte).
    Sessions(usize),
}

/// The client-side TLS settings of one server block (`ssl_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl_certificate` and `ssl_certificate_key`, paired in order (e.g. an
    /// RSA and an ECDSA certificate), as the directives' locations.
    pub certificates: Vec<(PathBuf, Location)>,
    pub certificate_keys: Vec<(PathBuf, Location)>,
    pub protocols: Vec<TlsVersion>,
    /// `ssl_ciphers` as written (OpenSSL syntax), mapped when built.
    pub ciphers: String,
    pub prefer_server_ciphers: bool,
    /// `ssl_ecdh_curve` as written (`auto` or a colon-separated list).
    pub ecdh_curve: String,
    pub session_cache: SessionCache,
    pub session_tickets: bool,
    pub session_timeout: Duration,
    pub verify_client: VerifyClient,
    pub verify_depth: u32,
    /// `ssl_client_certificate`, `ssl_trusted_certificate`, `ssl_crl`, each
    /// with the directive's location for errors found when loading it.
    pub client_certificate: Option<(PathBuf, Location)>,
    pub trusted_certificate: Option<(PathBuf, Location)>,
    pub crl: Option<(PathBuf, Location)>,
}

/// TLS to the backend (`proxy_ssl*`, Postern's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTls {
    /// `proxy_ssl on`: the backend connection is TLS unless the auth server
    /// says otherwise (`Auth-SSL-Backend`).
    pub enabled: bool,
    /// `proxy_ssl_verify` (off by default, as nginx's http proxy).
    pub verify: bool,
    /// `proxy_ssl_trusted_certificate`: the CAs the backend's certificate
    /// must chain to; the system's roots are not read.
    pub trusted_certificate: Option<(PathBuf, Location)>,
    /// `proxy_ssl_name`: the name checked and sent as SNI; by default the
    /// backend's address (Auth-Server).
    pub name: Option<String>,
}

/// `resolver address ... [valid=time] [ipv4=on|off] [ipv6=on|off]`: the
/// name servers SMTP asks for the client's host name (nginx's resolver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// In the order written, each host name's every address; port 53 unless given.
    pub servers: Vec<std::net::SocketAddr>,
    /// `valid=`: cached answers live this long instead of their TTL.
    pub valid: Option<Duration>,
    /// `ipv4=` (on): forward lookups ask for A records.
    pub ipv4: bool,
    /// `ipv6=` (on): forward lookups ask for AAAA records.
    pub ipv6: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pop3Settings {
    /// `pop3_capabilities`, default `TOP USER UIDL`.
    pub capabilities: Vec<String>,
    /// `pop3_auth`, default `plain` (plain, apop, cram-md5, external). Only
    /// what was configured: nginx also advertises SASL LOGIN whenever
    /// `plain` is on, which is for the POP3 front end to do.
    pub auth: Vec<AuthMethod>,
    /// `pop3_client_buffer` (Postern's; nginx fixes 128): the longest command line.
    pub client_buffer: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSettings {
    /// `smtp_capabilities`, default none.
    pub capabilities: Vec<String>,
    /// `smtp_auth`, default `plain login` (plain, login, cram-md5, external, none).
    pub auth: Vec<AuthMethod>,
    /// `smtp_client_buffer`, default 4k.
    pub client_buffer: usize,
    /// `smtp_greeting_delay`, default 0.
    pub greeting_delay: Duration,
    /// `xclient`, default on.
    pub xclient: bool,
    /// `proxy_smtp_auth`, default off.
    pub proxy_smtp_auth: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub file: PathBuf,
    pub main: MainConfig,
    pub servers: Vec<ServerConfig>,
    /// Directives accepted with no effect (`use epoll`, `multi_accept`):
    /// said at start-up and by `-t`, never silently dropped.
    pub warnings: Vec<String>,
}

/// `proxy_buffer` default: one page, as nginx.
pub const DEFAULT_PROXY_BUFFER: usize = 4096;
