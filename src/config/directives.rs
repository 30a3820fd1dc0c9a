//! The directive table: one row per directive nginx's core, events and mail
//! modules know, in the manner of nginx's `ngx_command_t` arrays. A row says
//! where the directive may appear, how many arguments it takes, whether
//! Postern acts on it, and its default, written as nginx syntax and applied
//! through the same setter as a value from the file.
//!
//! Every nginx directive is listed, built or not, so that a misspelling
//! (`unknown directive`) is told apart from a directive Postern does not do
//! yet (`is not supported yet`). Adding a directive is adding a row and the
//! setter that fills its field.

use std::path::Path;

use super::address;
use super::build::{Env, MainDraft, ServerDraft};
use super::listen;
use super::model::{AuthMethod, Listen, ListenAddr, Protocol, ResolverConfig, RunAs, Workers};
use super::parser::Directive;
use super::ssl::*;
use super::values::{self, invalid_flag, invalid_value};

/// The blocks a directive may appear in, as bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contexts(u8);

impl Contexts {
    pub(crate) const MAIN: Contexts = Contexts(1);
    pub(crate) const EVENTS: Contexts = Contexts(2);
    pub(crate) const MAIL: Contexts = Contexts(4);
    pub(crate) const SERVER: Contexts = Contexts(8);
    pub(crate) const MAIL_SERVER: Contexts = Contexts(4 | 8);
    pub(crate) const ANY: Contexts = Contexts(1 | 2 | 4 | 8);

    pub(crate) const fn contains(self, other: Contexts) -> bool {
        self.0 & other.0 == other.0
    }
}

/// How many arguments a directive takes (nginx's `NGX_CONF_TAKE*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    Exact(usize),
    Range(usize, usize),
    AtLeast(usize),
    /// One argument, `on` or `off`; the setter reads it.
    Flag,
}

impl Arity {
    pub(crate) fn accepts(self, count: usize) -> bool {
        match self {
            Arity::Exact(n) => count == n,
            Arity::Range(min, max) => (min..=max).contains(&count),
            Arity::AtLeast(min) => count >= min,
            Arity::Flag => count == 1,
        }
    }
}

/// Errors are whole messages; the caller adds `in file:line`.
pub(crate) type MainSetter = fn(&mut MainDraft, &Directive, &mut Env) -> Result<(), String>;
pub(crate) type ServerSetter = fn(&mut ServerDraft, &Directive, &mut Env) -> Result<(), String>;

/// Which settings a directive fills: the process-wide ones (main and
/// `events {}`), or a server's (`mail {}` level, inherited, or `server {}`).
#[derive(Clone, Copy)]
pub(crate) enum Setter {
    Main(MainSetter),
    Server(ServerSetter),
}

#[derive(Clone, Copy)]
pub(crate) enum Status {
    Supported(Setter),
    /// nginx has it and Postern will; until then the file is refused rather
    /// than silently run without it.
    NotYetSupported,
    /// Accepted and ignored with a warning: it has no meaning here. The text
    /// says why.
    Ignored(&'static str),
    /// Opens a block whose directives are in the given context.
    Block(Contexts),
    /// `include`: the named files' directives take its place.
    Include,
    /// Never: the text says why.
    Refused(&'static str),
}

#[derive(Clone, Copy)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) contexts: Contexts,
    pub(crate) arity: Arity,
    /// May appear more than once in one block; otherwise a second one is
    /// `"name" directive is duplicate`.
    pub(crate) repeatable: bool,
    pub(crate) status: Status,
    /// nginx syntax, applied through the setter when neither the server nor
    /// the `mail` level sets the directive. Words are separated by spaces;
    /// `$hostname` stands for the machine's host name.
    pub(crate) default: Option<&'static str>,
}

impl Row {
    const fn new(name: &'static str, contexts: Contexts, arity: Arity, status: Status) -> Row {
        Row {
            name,
            contexts,
            arity,
            repeatable: false,
            status,
            default: None,
        }
    }

    const fn main(name: &'static str, contexts: Contexts, arity: Arity, set: MainSetter) -> Row {
        Row::new(name, contexts, arity, Status::Supported(Setter::Main(set)))
    }

    const fn server(name: &'static str, contexts: Contexts, arity: Arity, set: ServerSetter) -> Row {
        Row::new(name, contexts, arity, Status::Supported(Setter::Server(set)))
    }

    const fn block(name: &'static str, contexts: Contexts, inner: Contexts) -> Row {
        Row::new(name, contexts, Arity::Exact(0), Status::Block(inner))
    }

    const fn not_yet(name: &'static str, contexts: Contexts) -> Row {
        Row::new(name, contexts, Arity::AtLeast(0), Status::NotYetSupported)
    }

    const fn ignored(name: &'static str, contexts: Contexts, arity: Arity, why: &'static str) -> Row {
        Row::new(name, contexts, arity, Status::Ignored(why))
    }

    const fn refused(name: &'static str, contexts: Contexts, why: &'static str) -> Row {
        Row::new(name, contexts, Arity::AtLeast(0), Status::Refused(why))
    }

    const fn default(mut self, text: &'static str) -> Row {
        self.default = Some(text);
        self
    }

    const fn repeatable(mut self) -> Row {
        self.repeatable = true;
        self
    }
}

use Arity::{AtLeast, Exact, Flag, Range};
const MAIN: Contexts = Contexts::MAIN;
const EVENTS: Contexts = Contexts::EVENTS;
const MAIL: Contexts = Contexts::MAIL;
const SERVER: Contexts = Contexts::SERVER;
const MAIL_SERVER: Contexts = Contexts::MAIL_SERVER;
const ANY: Contexts = Contexts::ANY;
const MAIN_MAIL: Contexts = Contexts(1 | 4);

const MAIL_ONLY: &str = "Postern serves mail only";
const ONE_LISTENER_PER_CORE: &str = "Postern accepts on one io_uring listener per core";

pub(crate) static TABLE: &[Row] = &[
    // main
    Row::main("worker_processes", MAIN, Exact(1), set_worker_processes).default("auto"),
    // Several logs at once, each with its own level (nginx's list of logs).
    Row::main("error_log", MAIN, AtLeast(1), set_error_log)
        .repeatable()
        .default("stderr error"),
    Row::main("pid", MAIN, Exact(1), set_pid),
    Row::main("daemon", MAIN, Flag, set_daemon),
    Row::main("load_module", MAIN, Exact(1), set_load_module).repeatable(),
    Row::block("events", MAIN, EVENTS),
    Row::block("mail", MAIN, MAIL),
    Row::refused("http", MAIN, MAIL_ONLY),
    Row::refused("stream", MAIN, MAIL_ONLY),
    Row::new("include", ANY, Exact(1), Status::Include).repeatable(),
    Row::main("worker_rlimit_nofile", MAIN, Exact(1), set_worker_rlimit_nofile),
    Row::main("worker_shutdown_timeout", MAIN, Exact(1), set_worker_shutdown_timeout),
    Row::main("user", MAIN, Range(1, 2), set_user),
    // Postern's own: Prometheus metrics over HTTP, off unless given.
    Row::main("metrics_listen", MAIN_MAIL, Exact(1), set_metrics_listen),
    Row::not_yet("master_process", MAIN),
    Row::not_yet("worker_rlimit_core", MAIN),
    Row::not_yet("worker_priority", MAIN),
    Row::not_yet("worker_cpu_affinity", MAIN),
    Row::not_yet("working_directory", MAIN),
    Row::not_yet("env", MAIN),
    Row::not_yet("lock_file", MAIN),
    Row::not_yet("pcre_jit", MAIN),
    Row::not_yet("thread_pool", MAIN),
    Row::not_yet("timer_resolution", MAIN),
    Row::not_yet("ssl_engine", MAIN),
    Row::not_yet("debug_points", MAIN),
    // events {}
    Row::main("worker_connections", EVENTS, Exact(1), set_worker_connections).default("512"),
    Row::ignored("use", EVENTS, Exact(1), ONE_LISTENER_PER_CORE),
    Row::ignored("multi_accept", EVENTS, Flag, ONE_LISTENER_PER_CORE),
    Row::ignored("accept_mutex", EVENTS, Flag, ONE_LISTENER_PER_CORE),
    Row::ignored("accept_mutex_delay", EVENTS, Exact(1), ONE_LISTENER_PER_CORE),
    Row::not_yet("worker_aio_requests", EVENTS),
    Row::not_yet("debug_connection", EVENTS),
    // mail {} and server {}
    Row::block("server", MAIL, SERVER).repeatable(),
    Row::server("listen", SERVER, AtLeast(1), set_listen).repeatable(),
    Row::server("protocol", SERVER, Exact(1), set_protocol),
    Row::server("server_name", MAIL_SERVER, Exact(1), set_server_name).default("$hostname"),
    Row::server("timeout", MAIL_SERVER, Exact(1), set_timeout).default("60s"),
    Row::server("auth_http", MAIL_SERVER, Exact(1), set_auth_http),
    Row::server("auth_http_timeout", MAIL_SERVER, Exact(1), set_auth_http_timeout).default("60s"),
    // Postern's own: nginx opens a connection to the auth server per login.
    Row::server("auth_http_keepalive", MAIL_SERVER, Exact(1), set_auth_http_keepalive).default("0"),
    // Server-level headers replace the mail-level ones as a whole (nginx's
    // array merge), which the generic inheritance does; none by default.
    Row::server("auth_http_header", MAIL_SERVER, Exact(2), set_auth_http_header).repeatable(),
    Row::server("so_keepalive", MAIL_SERVER, Flag, set_so_keepalive).default("off"),
    Row::server("max_errors", MAIL_SERVER, Exact(1), set_max_errors).default("5"),
    // Only SMTP uses it: the client's host name (src/resolver).
    Row::server("resolver", MAIL_SERVER, AtLeast(1), set_resolver).default("off"),
    Row::server("resolver_timeout", MAIL_SERVER, Exact(1), set_resolver_timeout).default("30s"),
    Row::server("proxy_buffer", MAIL_SERVER, Exact(1), set_proxy_buffer).default("4k"),
    Row::server("proxy_timeout", MAIL_SERVER, Exact(1), set_proxy_timeout).default("24h"),
    // Postern's own: a relayed peer that vanished without a FIN is found by
    // TCP keepalive and TCP_USER_TIMEOUT within this, not after proxy_timeout.
    Row::server(
        "proxy_dead_peer_timeout",
        MAIL_SERVER,
        Exact(1),
        set_proxy_dead_peer_timeout,
    )
    .default("5m"),
    // Postern's own limits against bots, off by default (nginx has neither).
    Row::server("client_preauth_limit", MAIL_SERVER, Exact(1), set_client_preauth_limit).default("0"),
    Row::server(
        "auth_http_concurrency",
        MAIL_SERVER,
        Exact(1),
        set_auth_http_concurrency,
    )
    .default("0"),
    Row::server("auth_http_queue", MAIL_SERVER, Exact(1), set_auth_http_queue).default("128"),
    Row::server("auth_fail_limit", MAIL_SERVER, Range(1, 3), set_auth_fail_limit).default("off"),
    Row::server(
        "proxy_pass_error_message",
        MAIL_SERVER,
        Flag,
        set_proxy_pass_error_message,
    )
    .default("off"),
    // nginx appends repeated capabilities and ORs repeated auth methods.
    Row::server("imap_capabilities", MAIL_SERVER, AtLeast(1), set_imap_capabilities)
        .repeatable()
        .default("IMAP4 IMAP4rev1 UIDPLUS"),
    Row::server("imap_auth", MAIL_SERVER, AtLeast(1), set_imap_auth)
        .repeatable()
        .default("plain"),
    Row::server("imap_client_buffer", MAIL_SERVER, Exact(1), set_imap_client_buffer).default("4k"),
    // Postern's own: the client's ID goes to the backend with the login.
    Row::server("imap_id_forward", MAIL_SERVER, Flag, set_imap_id_forward).default("off"),
    // Postern's own: real bearer tokens (JWTs) run past a page; a line
    // carrying one may exceed the client buffer by this much, no more.
    Row::server("oauth_max_token_size", MAIL_SERVER, Exact(1), set_oauth_max_token_size).default("64k"),
    Row::server("pop3_capabilities", MAIL_SERVER, AtLeast(1), set_pop3_capabilities)
        .repeatable()
        .default("TOP USER UIDL"),
    Row::server("pop3_auth", MAIL_SERVER, AtLeast(1), set_pop3_auth)
        .repeatable()
        .default("plain"),
    // Postern's own: nginx fixes the POP3 command buffer at 128 bytes.
    Row::server("pop3_client_buffer", MAIL_SERVER, Exact(1), set_pop3_client_buffer).default("128"),
    // No default: nginx advertises no extra EHLO capability unless told.
    Row::server("smtp_capabilities", MAIL_SERVER, AtLeast(1), set_smtp_capabilities).repeatable(),
    Row::server("smtp_auth", MAIL_SERVER, AtLeast(1), set_smtp_auth)
        .repeatable()
        .default("plain login"),
    Row::server("smtp_client_buffer", MAIL_SERVER, Exact(1), set_smtp_client_buffer).default("4k"),
    Row::server("smtp_greeting_delay", MAIL_SERVER, Exact(1), set_smtp_greeting_delay).default("0"),
    Row::server("xclient", MAIL_SERVER, Flag, set_xclient).default("on"),
    Row::server("proxy_smtp_auth", MAIL_SERVER, Flag, set_proxy_smtp_auth).default("off"),
    // A server's own replace the `mail` level's as a whole; with neither,
    // the main-level logs get its lines (nginx's merge).
    Row::server("error_log", MAIL_SERVER, AtLeast(1), set_server_error_log).repeatable(),
    Row::server("proxy_protocol", MAIL_SERVER, Exact(1), set_proxy_protocol).default("off"),
    // A server's own replace the `mail` level's as a whole, as nginx's merge.
    Row::server("set_real_ip_from", MAIL_SERVER, Exact(1), set_real_ip_from).repeatable(),
    // TLS (nginx's ngx_mail_ssl_module); `tls::ServerTls` builds them.
    Row::server("starttls", MAIL_SERVER, Exact(1), set_starttls).default("off"),
    // Certificates and keys pair up in order; a server's own replace the
    // `mail` level's as a whole (nginx's array merge, the generic one here).
    Row::server("ssl_certificate", MAIL_SERVER, Exact(1), set_ssl_certificate).repeatable(),
    Row::server("ssl_certificate_key", MAIL_SERVER, Exact(1), set_ssl_certificate_key).repeatable(),
    Row::server("ssl_protocols", MAIL_SERVER, AtLeast(1), set_ssl_protocols).default("TLSv1.2 TLSv1.3"),
    Row::server("ssl_ciphers", MAIL_SERVER, Exact(1), set_ssl_ciphers).default("HIGH:!aNULL:!MD5"),
    Row::server(
        "ssl_prefer_server_ciphers",
        MAIL_SERVER,
        Flag,
        set_ssl_prefer_server_ciphers,
    )
    .default("off"),
    Row::server("ssl_ecdh_curve", MAIL_SERVER, Exact(1), set_ssl_ecdh_curve).default("auto"),
    Row::server("ssl_session_cache", MAIL_SERVER, Range(1, 2), set_ssl_session_cache).default("none"),
    Row::server("ssl_session_tickets", MAIL_SERVER, Flag, set_ssl_session_tickets).default("on"),
    Row::server("ssl_session_timeout", MAIL_SERVER, Exact(1), set_ssl_session_timeout).default("5m"),
    Row::server("ssl_verify_client", MAIL_SERVER, Exact(1), set_ssl_verify_client).default("off"),
    Row::server("ssl_verify_depth", MAIL_SERVER, Exact(1), set_ssl_verify_depth).default("1"),
    Row::server(
        "ssl_client_certificate",
        MAIL_SERVER,
        Exact(1),
        set_ssl_client_certificate,
    ),
    Row::server(
        "ssl_trusted_certificate",
        MAIL_SERVER,
        Exact(1),
        set_ssl_trusted_certificate,
    ),
    Row::server("ssl_crl", MAIL_SERVER, Exact(1), set_ssl_crl),
    Row::server(
        "auth_http_pass_client_cert",
        MAIL_SERVER,
        Flag,
        set_auth_http_pass_client_cert,
    )
    .default("off"),
    Row::ignored(
        "ssl_dhparam",
        MAIL_SERVER,
        Exact(1),
        "rustls offers no DHE cipher suites, so the file is not needed",
    ),
    Row::refused("ssl", MAIL_SERVER, "use \"listen ... ssl\""),
    Row::refused(
        "ssl_password_file",
        MAIL_SERVER,
        "encrypted private keys are not supported: decrypt the key",
    ),
    Row::refused(
        "ssl_session_ticket_key",
        MAIL_SERVER,
        "rustls makes and rotates its own ticket keys",
    ),
    Row::refused(
        "ssl_conf_command",
        MAIL_SERVER,
        "it passes commands to OpenSSL and Postern uses rustls",
    ),
    // Postern's own: TLS to the backend (nginx's mail module has none).
    Row::server("proxy_ssl", MAIL_SERVER, Flag, set_proxy_ssl).default("off"),
    Row::server("proxy_ssl_verify", MAIL_SERVER, Flag, set_proxy_ssl_verify).default("off"),
    Row::server(
        "proxy_ssl_trusted_certificate",
        MAIL_SERVER,
        Exact(1),
        set_proxy_ssl_trusted_certificate,
    ),
    Row::server("proxy_ssl_name", MAIL_SERVER, Exact(1), set_proxy_ssl_name),
];

/// The row for `d` in `context`, or nginx's error: `unknown directive` when
/// no row has the name, `is not allowed here` when none is for this context.
/// A name may have one row per context (`error_log` at main and in `mail`).
pub(crate) fn lookup(d: &Directive, context: Contexts) -> Result<&'static Row, String> {
    let mut known = false;
    for row in TABLE.iter().filter(|row| row.name == d.name) {
        if row.contexts.contains(context) {
            return Ok(row);
        }
        known = true;
    }
    Err(if known {
        format!("\"{}\" directive is not allowed here", d.name)
    } else {
        format!("unknown directive \"{}\"", d.name)
    })
}

/// Refuses what is not built, then checks the block and the argument count,
/// in nginx's order.
pub(crate) fn check_form(row: &Row, d: &Directive) -> Result<(), String> {
    match row.status {
        Status::NotYetSupported => {
            return Err(format!("\"{}\" directive is not supported yet", d.name));
        }
        Status::Refused(why) => {
            return Err(format!("\"{}\" directive is not supported: {why}", d.name));
        }
        Status::Block(_) if d.block.is_none() => {
            return Err(format!("directive \"{}\" has no opening \"{{\"", d.name));
        }
        Status::Supported(_) | Status::Ignored(_) | Status::Include if d.block.is_some() => {
            return Err(format!("directive \"{}\" is not terminated by \";\"", d.name));
        }
        _ => {}
    }
    if !row.arity.accepts(d.args.len()) {
        return Err(invalid_arguments(d));
    }
    // Checked here so that ignored flags are held to nginx's rule too.
    if row.arity == Flag {
        flag_arg(d)?;
    }
    Ok(())
}

pub(super) fn invalid_arguments(d: &Directive) -> String {
    format!("invalid number of arguments in \"{}\" directive", d.name)
}

/// The only argument; the table's arity has been checked, so the error is a
/// table mistake, reported rather than panicking.
pub(super) fn only(d: &Directive) -> Result<&str, String> {
    match d.args.as_slice() {
        [one] => Ok(one),
        _ => Err(invalid_arguments(d)),
    }
}

pub(super) fn time_arg(d: &Directive) -> Result<std::time::Duration, String> {
    let value = only(d)?;
    values::parse_time(value).ok_or_else(|| invalid_value(value, &d.name))
}

pub(super) fn flag_arg(d: &Directive) -> Result<bool, String> {
    let value = only(d)?;
    values::parse_flag(value).ok_or_else(|| invalid_flag(value, &d.name))
}

/// A count that must be at least one.
fn positive_arg(d: &Directive) -> Result<usize, String> {
    let value = only(d)?;
    match values::parse_number(value) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(invalid_value(value, &d.name)),
    }
}

/// As [`positive_arg`], in the field's type; too large for it is invalid.
fn positive_arg_as<T: TryFrom<usize>>(d: &Directive) -> Result<T, String> {
    T::try_from(positive_arg(d)?).map_err(|_| invalid_value(&d.args.join(" "), &d.name))
}

/// A buffer size that must be at least one byte: an empty buffer could
/// hold no line at all.
fn buffer_size_arg(d: &Directive) -> Result<usize, String> {
    let value = only(d)?;
    match values::parse_size(value) {
        Some(size) if size > 0 => Ok(size),
        _ => Err(invalid_value(value, &d.name)),
    }
}

// Setters of the main and events contexts.

fn set_worker_processes(m: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    m.worker_processes = Some(match only(d)? {
        "auto" => Workers::Auto,
        _ => Workers::Count(positive_arg(d)?),
    });
    Ok(())
}

fn set_error_log(m: &mut MainDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let log = super::errlog::directive(d, env)?;
    m.error_log.get_or_insert_with(Vec::new).push(log);
    Ok(())
}

fn set_server_error_log(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let log = super::errlog::directive(d, env)?;
    s.error_log.get_or_insert_with(Vec::new).push(log);
    Ok(())
}

fn set_pid(m: &mut MainDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    m.pid = Some(env.path(only(d)?));
    Ok(())
}

fn set_daemon(_: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    if flag_arg(d)? {
        return Err("\"daemon on\" is not supported yet: Postern runs in the foreground".into());
    }
    Ok(())
}

/// nginx builds the mail module either in or as a dynamic module; an nginx
/// configuration that loads it can be used as it is.
fn set_load_module(_: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let module = only(d)?;
    let file_name = Path::new(module)
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    if file_name.contains("ngx_mail_module") {
        return Ok(());
    }
    Err(format!(
        "module \"{module}\" is not supported: Postern has the mail module built in and loads no other"
    ))
}

fn set_worker_connections(m: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    m.worker_connections = Some(positive_arg(d)?);
    Ok(())
}

fn set_worker_rlimit_nofile(m: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    m.worker_rlimit_nofile = Some(positive_arg_as(d)?);
    Ok(())
}

fn set_user(m: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let user = d.args[0].clone();
    let group = d.args.get(1).cloned().unwrap_or_else(|| user.clone());
    m.user = Some(RunAs { user, group });
    Ok(())
}

fn set_worker_shutdown_timeout(m: &mut MainDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    m.worker_shutdown_timeout = Some(time_arg(d)?);
    Ok(())
}

/// One address, as `listen` reads it; it may not be a mail listener's too.
fn set_metrics_listen(m: &mut MainDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    if m.metrics_listen.is_some() {
        return Err("\"metrics_listen\" directive is duplicate".to_string());
    }
    let text = &d.args[0];
    let in_addr = |err: &str| format!("{err} in \"{text}\" of the \"metrics_listen\" directive");
    let addrs = address::listen_addrs(text, &mut env.resolver).map_err(in_addr)?;
    let [addr] = addrs.as_slice() else {
        return Err(in_addr("more than one address"));
    };
    if !env.claim_listen(&ListenAddr::Tcp(*addr)) {
        return Err(format!("duplicate \"{addr}\" address and port pair"));
    }
    m.metrics_listen = Some(*addr);
    Ok(())
}

// Setters of the mail and server contexts.

/// The longest `sun_path` Linux takes, the final NUL included.
const SUN_PATH_MAX: usize = 108;

fn set_listen(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let Some((addr, params)) = d.args.split_first() else {
        return Err(invalid_arguments(d));
    };
    let in_addr = |err: &str| format!("{err} in \"{addr}\" of the \"listen\" directive");
    let addrs = match addr.strip_prefix("unix:") {
        Some("") => return Err(in_addr("no path in the unix domain socket")),
        Some(path) => {
            let path = env.path(path);
            if path.as_os_str().len() >= SUN_PATH_MAX {
                return Err(in_addr("too long path in the unix domain socket"));
            }
            vec![ListenAddr::Unix(path)]
        }
        None => address::listen_addrs(addr, &mut env.resolver)
            .map_err(in_addr)?
            .into_iter()
            .map(ListenAddr::Tcp)
            .collect(),
    };
    let params = listen::params(params)?;
    for addr in addrs {
        if !env.claim_listen(&addr) {
            let shown = match &addr {
                ListenAddr::Tcp(addr) => addr.to_string(),
                ListenAddr::Unix(path) => format!("unix:{}", path.display()),
            };
            return Err(format!("duplicate \"{shown}\" address and port pair"));
        }
        s.listen.push(Listen {
            addr,
            location: d.location.clone(),
            params: params.clone(),
        });
    }
    Ok(())
}

fn set_protocol(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let protocol = match only(d)? {
        "imap" => Protocol::Imap,
        "pop3" => Protocol::Pop3,
        "smtp" => Protocol::Smtp,
        other => return Err(format!("unknown protocol \"{other}\"")),
    };
    s.protocol = Some(protocol);
    Ok(())
}

fn set_server_name(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let name = only(d)?;
    // nginx: an empty name means the machine's.
    s.server_name = Some(if name.is_empty() {
        env.hostname()
    } else {
        name.to_string()
    });
    Ok(())
}

fn set_timeout(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.timeout = Some(time_arg(d)?);
    Ok(())
}

fn set_auth_http(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    s.auth_http = Some(address::auth_http(only(d)?, &mut env.resolver)?);
    Ok(())
}

fn set_auth_http_keepalive(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    s.auth_http_keepalive = Some(values::parse_number(value).ok_or_else(|| invalid_value(value, &d.name))?);
    Ok(())
}

fn set_auth_http_timeout(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.auth_http_timeout = Some(time_arg(d)?);
    Ok(())
}

/// RFC 9110 `tchar`: what a header name is made of.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// A value shown in an error with the bytes that would break a line written
/// as `\r`, `\n`, `\0`.
fn shown(value: &str) -> String {
    value.replace('\r', "\\r").replace('\n', "\\n").replace('\0', "\\0")
}

fn set_auth_http_header(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let [name, value] = d.args.as_slice() else {
        return Err(invalid_arguments(d));
    };
    // Checked here so that no header can split the request to the auth
    // server: nginx sends them as written.
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(invalid_value(&shown(name), &d.name));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(invalid_value(&shown(value), &d.name));
    }
    s.auth_http_headers
        .get_or_insert_with(Vec::new)
        .push((name.clone(), value.clone()));
    Ok(())
}

fn set_proxy_pass_error_message(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.proxy_pass_error_message = Some(flag_arg(d)?);
    Ok(())
}

fn set_so_keepalive(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.so_keepalive = Some(flag_arg(d)?);
    Ok(())
}

fn set_max_errors(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.max_errors = Some(positive_arg_as(d)?);
    Ok(())
}

/// `off`, or name servers and parameters as nginx's `ngx_resolver_create`
/// reads them: a host name stands for all its addresses, port 53 unless
/// given; `valid=`, `ipv4=`, `ipv6=`. nginx's `status_zone=` (shared-memory
/// statistics) has no meaning here and is refused.
fn set_resolver(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    if let [off] = d.args.as_slice() {
        if off == "off" {
            s.resolver = Some(None);
            return Ok(());
        }
    }
    let mut resolver = ResolverConfig {
        servers: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
    };
    for arg in &d.args {
        let invalid = || format!("invalid parameter: {arg}");
        if let Some(time) = arg.strip_prefix("valid=") {
            resolver.valid = Some(values::parse_time(time).ok_or_else(invalid)?);
        } else if let Some(flag) = arg.strip_prefix("ipv4=") {
            resolver.ipv4 = values::parse_flag(flag).ok_or_else(invalid)?;
        } else if let Some(flag) = arg.strip_prefix("ipv6=") {
            resolver.ipv6 = values::parse_flag(flag).ok_or_else(invalid)?;
        } else {
            let addrs =
                address::resolver_addrs(arg, &mut env.resolver).map_err(|e| format!("{e} in resolver \"{arg}\""))?;
            resolver.servers.extend(addrs);
        }
    }
    if !resolver.ipv4 && !resolver.ipv6 {
        return Err("\"ipv4\" and \"ipv6\" cannot both be \"off\"".to_string());
    }
    if resolver.servers.is_empty() {
        return Err("no name servers defined".to_string());
    }
    s.resolver = Some(Some(resolver));
    Ok(())
}

fn set_resolver_timeout(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.resolver_timeout = Some(time_arg(d)?);
    Ok(())
}

fn set_proxy_buffer(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.proxy_buffer = Some(buffer_size_arg(d)?);
    Ok(())
}

fn set_proxy_timeout(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.proxy_timeout = Some(time_arg(d)?);
    Ok(())
}

/// `off`, or a time of at least one second (the kernel's keepalive timers
/// count whole seconds).
fn set_proxy_dead_peer_timeout(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    s.proxy_dead_peer_timeout = Some(if value == "off" {
        None
    } else {
        match values::parse_time(value) {
            Some(t) if t >= std::time::Duration::from_secs(1) => Some(t),
            _ => return Err(invalid_value(value, &d.name)),
        }
    });
    Ok(())
}

/// `off`, or `N per TIME` (TIME at least one second).
fn set_auth_fail_limit(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.auth_fail_limit = Some(match d.args.as_slice() {
        [off] if off == "off" => None,
        [count, per, window] if per == "per" => {
            let count = values::parse_number(count)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| invalid_value(count, &d.name))?;
            let window = values::parse_time(window)
                .filter(|&t| t >= std::time::Duration::from_secs(1))
                .ok_or_else(|| invalid_value(window, &d.name))?;
            Some((count, window))
        }
        _ => return Err(invalid_arguments(d)),
    });
    Ok(())
}

fn count_arg(d: &Directive) -> Result<usize, String> {
    let value = only(d)?;
    values::parse_number(value).ok_or_else(|| invalid_value(value, &d.name))
}

fn set_client_preauth_limit(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.client_preauth_limit = Some(count_arg(d)?);
    Ok(())
}

fn set_auth_http_concurrency(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.auth_http_concurrency = Some(count_arg(d)?);
    Ok(())
}

fn set_auth_http_queue(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.auth_http_queue = Some(count_arg(d)?);
    Ok(())
}

fn set_imap_capabilities(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    add_capabilities(&mut s.imap_capabilities, d);
    Ok(())
}

/// Each protocol's `*_auth` methods, in the order nginx advertises them
/// (its bitmask order: plain, login, apop, cram-md5, external, none),
/// whatever the order in the file.
const IMAP_AUTH_METHODS: &[(&str, AuthMethod)] = &[
    ("plain", AuthMethod::Plain),
    ("login", AuthMethod::Login),
    ("cram-md5", AuthMethod::CramMd5),
    ("external", AuthMethod::External),
    ("oauthbearer", AuthMethod::OAuthBearer),
    ("xoauth2", AuthMethod::XOAuth2),
];

/// nginx has no `login` for POP3: it advertises SASL LOGIN whenever
/// `plain` is on.
const POP3_AUTH_METHODS: &[(&str, AuthMethod)] = &[
    ("plain", AuthMethod::Plain),
    ("apop", AuthMethod::Apop),
    ("cram-md5", AuthMethod::CramMd5),
    ("external", AuthMethod::External),
    ("oauthbearer", AuthMethod::OAuthBearer),
    ("xoauth2", AuthMethod::XOAuth2),
];

const SMTP_AUTH_METHODS: &[(&str, AuthMethod)] = &[
    ("plain", AuthMethod::Plain),
    ("login", AuthMethod::Login),
    ("cram-md5", AuthMethod::CramMd5),
    ("external", AuthMethod::External),
    ("oauthbearer", AuthMethod::OAuthBearer),
    ("xoauth2", AuthMethod::XOAuth2),
    ("none", AuthMethod::None),
];

/// Adds the directive's methods to `methods` (nginx ORs repeated
/// directives into one bitmask), names compared without case, and keeps
/// them in `known`'s order.
fn add_auth_methods(
    methods: &mut Option<Vec<AuthMethod>>,
    known: &[(&str, AuthMethod)],
    d: &Directive,
) -> Result<(), String> {
    let methods = methods.get_or_insert_with(Vec::new);
    for word in &d.args {
        let (_, method) = known
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .ok_or_else(|| invalid_value(word, &d.name))?;
        if !methods.contains(method) {
            methods.push(*method);
        }
    }
    methods.sort_by_key(|m| known.iter().position(|(_, k)| k == m));
    Ok(())
}

/// Capabilities are appended, repeated directives included (nginx's array);
/// a quoted word with spaces (`"SIZE 10485760"`) stays one capability.
fn add_capabilities(capabilities: &mut Option<Vec<String>>, d: &Directive) {
    capabilities.get_or_insert_with(Vec::new).extend(d.args.iter().cloned());
}

fn set_imap_auth(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    add_auth_methods(&mut s.imap_auth, IMAP_AUTH_METHODS, d)
}

fn set_oauth_max_token_size(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.oauth_max_token_size = Some(buffer_size_arg(d)?);
    Ok(())
}

fn set_imap_client_buffer(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.imap_client_buffer = Some(buffer_size_arg(d)?);
    Ok(())
}

fn set_imap_id_forward(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.imap_id_forward = Some(flag_arg(d)?);
    Ok(())
}

fn set_pop3_capabilities(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    add_capabilities(&mut s.pop3_capabilities, d);
    Ok(())
}

fn set_pop3_auth(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    add_auth_methods(&mut s.pop3_auth, POP3_AUTH_METHODS, d)
}

fn set_pop3_client_buffer(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.pop3_client_buffer = Some(buffer_size_arg(d)?);
    Ok(())
}

fn set_smtp_capabilities(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    add_capabilities(&mut s.smtp_capabilities, d);
    Ok(())
}

fn set_smtp_auth(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    add_auth_methods(&mut s.smtp_auth, SMTP_AUTH_METHODS, d)
}

fn set_smtp_client_buffer(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.smtp_client_buffer = Some(buffer_size_arg(d)?);
    Ok(())
}

fn set_smtp_greeting_delay(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.smtp_greeting_delay = Some(time_arg(d)?);
    Ok(())
}

fn set_xclient(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.xclient = Some(flag_arg(d)?);
    Ok(())
}

fn set_proxy_protocol(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    s.proxy_protocol = Some(super::realip::send_mode(value).ok_or_else(|| invalid_value(value, &d.name))?);
    Ok(())
}

fn set_real_ip_from(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let (peers, warning) = super::realip::parse(only(d)?, &mut env.resolver)?;
    if let Some(warning) = warning {
        env.warn(format!("{warning} in {}", d.location));
    }
    s.set_real_ip_from.get_or_insert_with(Vec::new).extend(peers);
    Ok(())
}

fn set_proxy_smtp_auth(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.proxy_smtp_auth = Some(flag_arg(d)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn contexts_of(setter: Setter) -> Contexts {
        match setter {
            Setter::Main(_) => Contexts(MAIN.0 | EVENTS.0),
            Setter::Server(_) => MAIL_SERVER,
        }
    }

    /// A setter only fills settings of the contexts its row names, so the
    /// build can tell from the context alone which settings a row fills.
    #[test]
    fn setters_match_their_contexts() {
        for row in TABLE {
            if let Status::Supported(setter) = row.status {
                // A process-wide setting nginx users look for at mail
                // level too: its setter fills the main settings wherever.
                let main_in_mail = matches!(setter, Setter::Main(_)) && row.contexts == MAIN_MAIL;
                assert!(
                    contexts_of(setter).contains(row.contexts) || main_in_mail,
                    "{}: setter of the wrong kind for its contexts",
                    row.name
                );
            }
        }
    }

    /// The build looks rows up by name and context: two rows may share a name
    /// only for different contexts.
    #[test]
    fn one_row_per_name_and_context() {
        let mut seen = HashSet::new();
        for row in TABLE {
            for bit in [MAIN, EVENTS, MAIL, SERVER] {
                if row.contexts.contains(bit) {
                    assert!(seen.insert((row.name, bit.0)), "{} twice", row.name);
                }
            }
        }
    }

    #[test]
    fn defaults_only_on_supported_rows() {
        for row in TABLE {
            if row.default.is_some() {
                assert!(
                    matches!(row.status, Status::Supported(_)),
                    "{}: a default on a row that sets nothing",
                    row.name
                );
            }
        }
    }

    /// Once refused as not built; each now has a row that acts.
    #[test]
    fn built_since_the_first_slice() {
        let rows: &[(&str, Contexts)] = &[
            ("include", MAIN),
            ("include", EVENTS),
            ("include", MAIL),
            ("include", SERVER),
            ("worker_rlimit_nofile", MAIN),
            ("user", MAIN),
            ("so_keepalive", MAIL),
            ("resolver", MAIL),
            ("resolver_timeout", SERVER),
            ("max_errors", MAIL),
            ("auth_http_header", SERVER),
            ("proxy_buffer", SERVER),
            ("proxy_timeout", MAIL),
            ("pop3_auth", MAIL),
            ("pop3_capabilities", SERVER),
            ("smtp_auth", SERVER),
            ("smtp_capabilities", MAIL),
            ("smtp_client_buffer", MAIL),
            ("smtp_greeting_delay", SERVER),
            ("xclient", MAIL),
            ("proxy_smtp_auth", SERVER),
            ("starttls", MAIL),
            ("ssl_certificate", SERVER),
            ("ssl_certificate_key", MAIL),
            ("ssl_protocols", SERVER),
            ("ssl_ciphers", MAIL),
            ("ssl_prefer_server_ciphers", SERVER),
            ("ssl_ecdh_curve", MAIL),
            ("ssl_session_cache", SERVER),
            ("ssl_session_tickets", MAIL),
            ("ssl_session_timeout", SERVER),
            ("ssl_verify_client", MAIL),
            ("ssl_verify_depth", SERVER),
            ("ssl_client_certificate", MAIL),
            ("ssl_trusted_certificate", SERVER),
            ("ssl_crl", MAIL),
            ("auth_http_pass_client_cert", SERVER),
            ("proxy_ssl", MAIL),
            ("proxy_ssl_verify", SERVER),
            ("proxy_ssl_trusted_certificate", MAIL),
            ("proxy_ssl_name", SERVER),
            ("proxy_protocol", MAIL),
            ("set_real_ip_from", SERVER),
        ];
        for &(name, context) in rows {
            let d = Directive {
                name: name.to_string(),
                args: Vec::new(),
                location: crate::config::Location {
                    file: "x".into(),
                    line: 1,
                },
                block: None,
            };
            let row = lookup(&d, context).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                matches!(row.status, Status::Supported(_) | Status::Include),
                "{name}: not built"
            );
        }
    }

    #[test]
    fn arity() {
        let rows: &[(Arity, usize, bool)] = &[
            (Exact(1), 0, false),
            (Exact(1), 1, true),
            (Exact(1), 2, false),
            (Range(1, 2), 0, false),
            (Range(1, 2), 2, true),
            (Range(1, 2), 3, false),
            (AtLeast(1), 0, false),
            (AtLeast(1), 9, true),
            (Flag, 1, true),
            (Flag, 2, false),
        ];
        for &(arity, count, want) in rows {
            assert_eq!(arity.accepts(count), want, "{arity:?} {count}");
        }
    }
}
