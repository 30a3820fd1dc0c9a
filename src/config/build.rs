//! From a directive tree to a `Config`, in two passes.
//!
//! 1. A walk in file order checks every directive against its row (name,
//!    context, block, arity, duplicates) and applies it; an `include` is
//!    read and walked in its place, in the same block: main and `events`
//!    directives to the main settings, `server` ones to that server's draft,
//!    `mail`-level ones to a scratch draft, only to validate them (a `mail`
//!    block may have no server), and they are kept for step 2. Errors thus
//!    come out in file order, the first one as nginx would print it.
//! 2. Each server takes, for every row it did not set itself, the `mail`
//!    level's occurrences, else the row's default, through the same setter;
//!    then its required settings are checked. The main settings take the
//!    defaults of the rows the file did not set.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::Resolver;
use super::directives::{self, Contexts, Row, Setter, Status, TABLE};
use super::model::{
    AuthHttp, AuthMethod, Config, ErrorLog, ImapSettings, Listen, ListenAddr, Location, MainConfig, Pop3Settings,
    Protocol, ResolverConfig, RunAs, ServerConfig, SessionCache, SmtpSettings, Starttls, TlsVersion, VerifyClient,
    Workers,
};
use super::parser::{self, Directive};
use super::ssl;
use super::{files, ConfigError, LoadOptions};

/// How many files deep `include` may go (the main file is level 0); a
/// deeper chain is refused rather than followed without end.
pub(crate) const MAX_INCLUDE_NESTING: usize = 16;

/// What setters may need beyond the directive: where relative paths start,
/// the host name, the resolver, and the addresses already listened on.
#[derive(Debug)]
pub(crate) struct Env {
    base_dir: PathBuf,
    hostname: Option<String>,
    pub(crate) resolver: Resolver,
    listening: HashSet<SocketAddr>,
    listening_unix: HashSet<PathBuf>,
    /// Said at start-up and by `-t`. A `mail`-level directive's setter runs
    /// once to check it and once per server inheriting it, so a warning is
    /// kept once.
    warnings: Vec<String>,
}

impl Env {
    fn new(file: &Path, prefix: Option<&Path>) -> Env {
        // Relative paths are taken from the prefix, else the configuration
        // file's folder, and made absolute now so a later change of
        // directory cannot move them.
        let base_dir = match prefix {
            Some(prefix) => std::path::absolute(prefix).unwrap_or_else(|_| prefix.to_path_buf()),
            None => {
                let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
                file.parent().map(Path::to_path_buf).unwrap_or_default()
            }
        };
        Env {
            base_dir,
            hostname: None,
            resolver: Resolver::default(),
            listening: HashSet::new(),
            listening_unix: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// A whole message, its `in file:line` included.
    pub(crate) fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    pub(crate) fn path(&self, text: &str) -> PathBuf {
        self.base_dir.join(text)
    }

    /// The machine's host name, lower-cased as nginx does; `localhost` when
    /// the kernel does not say.
    pub(crate) fn hostname(&mut self) -> String {
        self.hostname.get_or_insert_with(read_hostname).clone()
    }

    /// Records a listening address; `false` when another `listen` has it.
    pub(crate) fn claim_listen(&mut self, addr: &ListenAddr) -> bool {
        match addr {
            ListenAddr::Tcp(addr) => self.listening.insert(*addr),
            ListenAddr::Unix(path) => self.listening_unix.insert(path.clone()),
        }
    }
}

fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_ascii_lowercase())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Main and `events` settings while the file is read; `None` is unset.
#[derive(Debug, Default)]
pub(crate) struct MainDraft {
    pub(crate) worker_processes: Option<Workers>,
    pub(crate) error_log: Option<Vec<ErrorLog>>,
    pub(crate) pid: Option<PathBuf>,
    pub(crate) worker_connections: Option<usize>,
    pub(crate) worker_rlimit_nofile: Option<u64>,
    pub(crate) worker_shutdown_timeout: Option<Duration>,
    pub(crate) user: Option<RunAs>,
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
}

/// One server's settings while the file is read; `None` is unset.
#[derive(Debug, Default)]
pub(crate) struct ServerDraft {
    pub(crate) listen: Vec<Listen>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) server_name: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) auth_http: Option<AuthHttp>,
    pub(crate) auth_http_timeout: Option<Duration>,
    pub(crate) error_log: Option<Vec<ErrorLog>>,
    pub(crate) auth_http_keepalive: Option<usize>,
    pub(crate) auth_http_headers: Option<Vec<(String, String)>>,
    pub(crate) proxy_pass_error_message: Option<bool>,
    pub(crate) so_keepalive: Option<bool>,
    pub(crate) max_errors: Option<u32>,
    pub(crate) oauth_max_token_size: Option<usize>,
    pub(crate) proxy_buffer: Option<usize>,
    pub(crate) proxy_timeout: Option<Duration>,
    pub(crate) proxy_dead_peer_timeout: Option<Option<Duration>>,
    pub(crate) client_preauth_limit: Option<usize>,
    pub(crate) auth_http_concurrency: Option<usize>,
    pub(crate) auth_http_queue: Option<usize>,
    pub(crate) auth_fail_limit: Option<Option<(u32, Duration)>>,
    pub(crate) resolver: Option<Option<ResolverConfig>>,
    pub(crate) resolver_timeout: Option<Duration>,
    pub(crate) imap_capabilities: Option<Vec<String>>,
    pub(crate) imap_auth: Option<Vec<AuthMethod>>,
    pub(crate) imap_client_buffer: Option<usize>,
    pub(crate) imap_id_forward: Option<bool>,
    pub(crate) pop3_capabilities: Option<Vec<String>>,
    pub(crate) pop3_auth: Option<Vec<AuthMethod>>,
    pub(crate) pop3_client_buffer: Option<usize>,
    pub(crate) smtp_capabilities: Option<Vec<String>>,
    pub(crate) smtp_auth: Option<Vec<AuthMethod>>,
    pub(crate) smtp_client_buffer: Option<usize>,
    pub(crate) smtp_greeting_delay: Option<Duration>,
    pub(crate) xclient: Option<bool>,
    pub(crate) proxy_smtp_auth: Option<bool>,
    pub(crate) starttls: Option<Starttls>,
    /// Where `starttls` was set, for nginx's "no ssl_certificate" message.
    pub(crate) starttls_at: Option<Location>,
    pub(crate) ssl_certificates: Option<Vec<(PathBuf, Location)>>,
    pub(crate) ssl_certificate_keys: Option<Vec<(PathBuf, Location)>>,
    pub(crate) ssl_protocols: Option<Vec<TlsVersion>>,
    pub(crate) ssl_ciphers: Option<(String, Location)>,
    pub(crate) ssl_prefer_server_ciphers: Option<bool>,
    pub(crate) ssl_ecdh_curve: Option<String>,
    pub(crate) ssl_session_cache: Option<SessionCache>,
    pub(crate) ssl_session_tickets: Option<bool>,
    pub(crate) ssl_session_timeout: Option<Duration>,
    pub(crate) ssl_verify_client: Option<VerifyClient>,
    pub(crate) ssl_verify_depth: Option<u32>,
    pub(crate) ssl_client_certificate: Option<(PathBuf, Location)>,
    pub(crate) ssl_trusted_certificate: Option<(PathBuf, Location)>,
    pub(crate) ssl_crl: Option<(PathBuf, Location)>,
    pub(crate) auth_http_pass_client_cert: Option<bool>,
    pub(crate) proxy_ssl: Option<bool>,
    pub(crate) proxy_ssl_verify: Option<bool>,
    pub(crate) proxy_ssl_verify_at: Option<Location>,
    pub(crate) proxy_ssl_trusted_certificate: Option<(PathBuf, Location)>,
    pub(crate) proxy_ssl_name: Option<String>,
    pub(crate) proxy_protocol: Option<super::realip::SendProxyProtocol>,
    pub(crate) set_real_ip_from: Option<Vec<super::realip::TrustedPeer>>,
}

/// A `server {}` block after step 1.
struct ServerBlock {
    location: Location,
    draft: ServerDraft,
    /// The rows the block set itself; the others are inherited.
    set_here: HashSet<&'static str>,
}

struct Builder<'a> {
    file: &'a Path,
    env: Env,
    main: MainDraft,
    main_set: HashSet<&'static str>,
    /// Validates `mail`-level values; never used for a server.
    mail_scratch: ServerDraft,
    /// `mail`-level directives in file order, for every server to inherit.
    mail_level: Vec<(&'static Row, Directive)>,
    servers: Vec<ServerBlock>,
    warnings: Vec<String>,
    /// The files being read, the main one first, as `canonicalize` names
    /// them: an `include` of one of them would never end.
    reading: Vec<PathBuf>,
}

/// `offline`: resolve no host names and read no `include`d files (see
/// `config::parse_str_offline`).
pub(crate) fn build(
    tree: &[Directive],
    file: &Path,
    options: &LoadOptions,
    offline: bool,
) -> Result<Config, ConfigError> {
    let mut env = Env::new(file, options.prefix.as_deref());
    env.resolver.offline = offline;
    let mut builder = Builder {
        file,
        env,
        main: MainDraft::default(),
        main_set: HashSet::new(),
        mail_scratch: ServerDraft::default(),
        mail_level: Vec::new(),
        servers: Vec::new(),
        warnings: Vec::new(),
        reading: vec![canonical(file)],
    };
    builder.walk(tree, Contexts::MAIN, &mut HashSet::new())?;
    let mut main = builder.finish_main()?;
    if let Some(target) = &options.error_log {
        // Every main-level log gives way to the one named; the first one's
        // level stays.
        let level = main.error_log.first().map_or(super::LogLevel::Error, |log| log.level);
        let target = error_log_option(target, &mut builder.env)?;
        main.error_log = vec![ErrorLog { target, level }];
    }
    let servers = builder.finish_servers()?;
    builder.warnings.append(&mut builder.env.warnings);
    Ok(Config {
        file: file.to_path_buf(),
        main,
        servers,
        warnings: builder.warnings,
    })
}

/// nginx's `-e`: the error log's target from the command line.
fn error_log_option(target: &str, env: &mut Env) -> Result<super::LogTarget, ConfigError> {
    if target.is_empty() {
        return Err(ConfigError::new("invalid error log \"\""));
    }
    super::errlog::target_of(target, env).map_err(ConfigError::new)
}

/// The file's name with links and `..` resolved, to tell the same file
/// under two names; as given when it cannot be (it is then read as given,
/// and fails there if it is missing).
fn canonical(file: &Path) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())
}

fn located(d: &Directive) -> impl Fn(String) -> ConfigError + '_ {
    move |message| ConfigError::at(message, d.location.clone())
}

impl Builder<'_> {
    /// Step 1 for one block whose directives are in `context`; `seen` holds
    /// the block's directives so far, for duplicates (an included file's
    /// directives are the including block's).
    fn walk(
        &mut self,
        dirs: &[Directive],
        context: Contexts,
        seen: &mut HashSet<&'static str>,
    ) -> Result<(), ConfigError> {
        for d in dirs {
            let row = directives::lookup(d, context).map_err(located(d))?;
            directives::check_form(row, d).map_err(located(d))?;
            if !row.repeatable && !seen.insert(row.name) {
                return Err(located(d)(format!("\"{}\" directive is duplicate", d.name)));
            }
            match row.status {
                Status::Supported(setter) => self.apply(row, setter, d, context)?,
                Status::Block(inner) => self.enter(d, inner)?,
                Status::Include => self.include(d, context, seen)?,
                // Kept for the caller: the error log is not open yet.
                Status::Ignored(why) => self
                    .warnings
                    .push(format!("\"{}\" directive is ignored: {why} in {}", d.name, d.location)),
                // check_form refused these.
                Status::NotYetSupported | Status::Refused(_) => {}
            }
        }
        Ok(())
    }

    /// `include`: each file it names is read, parsed on its own (so a block
    /// cannot open in one file and close in another) and walked as if its
    /// directives were written in place of the `include`.
    fn include(
        &mut self,
        d: &Directive,
        context: Contexts,
        seen: &mut HashSet<&'static str>,
    ) -> Result<(), ConfigError> {
        let [arg] = d.args.as_slice() else {
            return Err(located(d)(internal(&d.name, "has not one argument")));
        };
        if self.env.resolver.offline {
            return Err(located(d)("include is not read offline".to_string()));
        }
        if self.reading.len() > MAX_INCLUDE_NESTING {
            return Err(located(d)("too deep include nesting".to_string()));
        }
        for path in files::include_paths(&d.location.file, arg).map_err(located(d))? {
            let text = files::read(&path, Some(&d.location))?;
            let key = canonical(&path);
            if self.reading.contains(&key) {
                return Err(located(d)(format!(
                    "include loop: \"{}\" is already being read",
                    path.display()
                )));
            }
            let tree = parser::parse(&text, &path)?;
            self.reading.push(key);
            let walked = self.walk(&tree, context, seen);
            self.reading.pop();
            walked?;
        }
        Ok(())
    }

    fn enter(&mut self, d: &Directive, inner: Contexts) -> Result<(), ConfigError> {
        let children = d.block.as_deref().unwrap_or_default();
        if inner != Contexts::SERVER {
            return self.walk(children, inner, &mut HashSet::new());
        }
        self.servers.push(ServerBlock {
            location: d.location.clone(),
            draft: ServerDraft::default(),
            set_here: HashSet::new(),
        });
        self.walk(children, inner, &mut HashSet::new())?;
        // nginx checks this as the block closes, before any merging.
        let no_listen = self.servers.last().is_some_and(|s| s.draft.listen.is_empty());
        if no_listen {
            return Err(ConfigError::at(
                "no \"listen\" is defined for server",
                d.location.clone(),
            ));
        }
        Ok(())
    }

    fn apply(
        &mut self,
        row: &'static Row,
        setter: Setter,
        d: &Directive,
        context: Contexts,
    ) -> Result<(), ConfigError> {
        let env = &mut self.env;
        let result = match setter {
            Setter::Main(set) => {
                self.main_set.insert(row.name);
                set(&mut self.main, d, env)
            }
            Setter::Server(set) if context == Contexts::MAIL => {
                self.mail_level.push((row, d.clone()));
                set(&mut self.mail_scratch, d, env)
            }
            Setter::Server(set) => match self.servers.last_mut() {
                Some(server) => {
                    server.set_here.insert(row.name);
                    set(&mut server.draft, d, env)
                }
                None => Err(internal(row.name, "set outside a server")),
            },
        };
        result.map_err(located(d))
    }

    fn finish_main(&mut self) -> Result<MainConfig, ConfigError> {
        for row in TABLE {
            let Status::Supported(Setter::Main(set)) = row.status else {
                continue;
            };
            if self.main_set.contains(row.name) {
                continue;
            }
            if let Some(default) = self.default_directive(row, 0) {
                set(&mut self.main, &default, &mut self.env).map_err(located(&default))?;
            }
        }
        let main = std::mem::take(&mut self.main);
        let at = Location {
            file: self.file.to_path_buf(),
            line: 0,
        };
        Ok(MainConfig {
            worker_processes: required(main.worker_processes, "worker_processes", &at)?,
            error_log: required(main.error_log, "error_log", &at)?,
            pid: main.pid,
            worker_connections: required(main.worker_connections, "worker_connections", &at)?,
            worker_rlimit_nofile: main.worker_rlimit_nofile,
            worker_shutdown_timeout: main.worker_shutdown_timeout,
            user: main.user,
            metrics_listen: main.metrics_listen,
        })
    }

    fn finish_servers(&mut self) -> Result<Vec<ServerConfig>, ConfigError> {
        let servers = std::mem::take(&mut self.servers);
        servers
            .into_iter()
            .map(|mut server| {
                self.inherit(&mut server)?;
                finish_server(server)
            })
            .collect()
    }

    /// Step 2: the rows the server did not set come from the `mail` level,
    /// else from the row's default.
    fn inherit(&mut self, server: &mut ServerBlock) -> Result<(), ConfigError> {
        for row in TABLE {
            let Status::Supported(Setter::Server(set)) = row.status else {
                continue;
            };
            if server.set_here.contains(row.name) {
                continue;
            }
            let mut inherited = false;
            for (_, d) in self.mail_level.iter().filter(|(r, _)| r.name == row.name) {
                set(&mut server.draft, d, &mut self.env).map_err(located(d))?;
                inherited = true;
            }
            if inherited {
                continue;
            }
            if let Some(default) = self.default_directive(row, server.location.line) {
                set(&mut server.draft, &default, &mut self.env).map_err(located(&default))?;
            }
        }
        Ok(())
    }

    /// The row's default as if written at `line`.
    fn default_directive(&mut self, row: &Row, line: u32) -> Option<Directive> {
        let text = row.default?;
        let args = text
            .split_whitespace()
            .map(|word| match word {
                "$hostname" => self.env.hostname(),
                _ => word.to_string(),
            })
            .collect();
        Some(Directive {
            name: row.name.to_string(),
            args,
            location: Location {
                file: self.file.to_path_buf(),
                line,
            },
            block: None,
        })
    }
}

/// The checks nginx makes when merging a server, then the typed result.
fn finish_server(server: ServerBlock) -> Result<ServerConfig, ConfigError> {
    let ServerBlock {
        location, mut draft, ..
    } = server;
    let protocol = server_protocol(&draft, &location)?;
    let listen = std::mem::take(&mut draft.listen);
    let tls = ssl::finish(&mut draft, &listen, &location)?;
    let auth_http = draft
        .auth_http
        .ok_or_else(|| ConfigError::at("no \"auth_http\" is defined for server", location.clone()))?;
    Ok(ServerConfig {
        listen,
        protocol,
        server_name: required(draft.server_name, "server_name", &location)?,
        timeout: required(draft.timeout, "timeout", &location)?,
        auth_http,
        auth_http_timeout: required(draft.auth_http_timeout, "auth_http_timeout", &location)?,
        // No default: the main-level logs unless `error_log` is given.
        error_log: draft.error_log.unwrap_or_default(),
        auth_http_keepalive: required(draft.auth_http_keepalive, "auth_http_keepalive", &location)?,
        // No default: none unless `auth_http_header` is given.
        auth_http_headers: draft.auth_http_headers.unwrap_or_default(),
        proxy_pass_error_message: required(draft.proxy_pass_error_message, "proxy_pass_error_message", &location)?,
        so_keepalive: required(draft.so_keepalive, "so_keepalive", &location)?,
        max_errors: required(draft.max_errors, "max_errors", &location)?,
        oauth_max_token_size: required(draft.oauth_max_token_size, "oauth_max_token_size", &location)?,
        proxy_buffer: required(draft.proxy_buffer, "proxy_buffer", &location)?,
        proxy_timeout: required(draft.proxy_timeout, "proxy_timeout", &location)?,
        proxy_dead_peer_timeout: required(draft.proxy_dead_peer_timeout, "proxy_dead_peer_timeout", &location)?,
        client_preauth_limit: required(draft.client_preauth_limit, "client_preauth_limit", &location)?,
        auth_http_concurrency: required(draft.auth_http_concurrency, "auth_http_concurrency", &location)?,
        auth_http_queue: required(draft.auth_http_queue, "auth_http_queue", &location)?,
        auth_fail_limit: required(draft.auth_fail_limit, "auth_fail_limit", &location)?,
        resolver: required(draft.resolver, "resolver", &location)?,
        resolver_timeout: required(draft.resolver_timeout, "resolver_timeout", &location)?,
        imap: ImapSettings {
            capabilities: required(draft.imap_capabilities, "imap_capabilities", &location)?,
            auth: required(draft.imap_auth, "imap_auth", &location)?,
            client_buffer: required(draft.imap_client_buffer, "imap_client_buffer", &location)?,
            id_forward: required(draft.imap_id_forward, "imap_id_forward", &location)?,
        },
        pop3: Pop3Settings {
            capabilities: required(draft.pop3_capabilities, "pop3_capabilities", &location)?,
            auth: required(draft.pop3_auth, "pop3_auth", &location)?,
            client_buffer: required(draft.pop3_client_buffer, "pop3_client_buffer", &location)?,
        },
        smtp: SmtpSettings {
            // No default: none unless `smtp_capabilities` is given.
            capabilities: draft.smtp_capabilities.unwrap_or_default(),
            auth: required(draft.smtp_auth, "smtp_auth", &location)?,
            client_buffer: required(draft.smtp_client_buffer, "smtp_client_buffer", &location)?,
            greeting_delay: required(draft.smtp_greeting_delay, "smtp_greeting_delay", &location)?,
            xclient: required(draft.xclient, "xclient", &location)?,
            proxy_smtp_auth: required(draft.proxy_smtp_auth, "proxy_smtp_auth", &location)?,
        },
        starttls: tls.starttls,
        ssl: tls.ssl,
        auth_http_pass_client_cert: tls.auth_http_pass_client_cert,
        proxy_ssl: tls.proxy_ssl,
        proxy_protocol: required(draft.proxy_protocol, "proxy_protocol", &location)?,
        // No default: no peer is trusted unless `set_real_ip_from` is given.
        set_real_ip_from: draft.set_real_ip_from.unwrap_or_default(),
        location,
    })
}

/// The `protocol` given, else the one the first well-known port implies
/// (nginx looks at each `listen` in turn until one matches).
fn server_protocol(draft: &ServerDraft, server: &Location) -> Result<Protocol, ConfigError> {
    draft
        .protocol
        .or_else(|| draft.listen.iter().find_map(implied_protocol))
        .ok_or_else(|| ConfigError::at("unknown mail protocol for server", server.clone()))
}

fn implied_protocol(listen: &Listen) -> Option<Protocol> {
    let ListenAddr::Tcp(addr) = &listen.addr else {
        return None;
    };
    match addr.port() {
        143 | 993 => Some(Protocol::Imap),
        110 | 995 => Some(Protocol::Pop3),
        25 | 465 | 587 => Some(Protocol::Smtp),
        _ => None,
    }
}

/// Every row with a default sets its field, so `None` here is a table
/// mistake: reported, not a panic.
fn required<T>(value: Option<T>, name: &str, at: &Location) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::at(internal(name, "has no value"), at.clone()))
}

fn internal(name: &str, what: &str) -> String {
    format!("internal error: \"{name}\" {what}")
}
