//! `postern-bench`: companions for exercising Postern.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use postern_bench::auth;
use postern_bench::backend::{self, Mailbox, Protocol, Queue};
use postern_bench::certs;
use postern_bench::chart;
use postern_bench::fetch;
use postern_bench::load;
use postern_bench::net::{self, Listener};
use postern_bench::record::Record;
use postern_bench::tls;
use postern_bench::users::Users;

#[derive(Parser)]
#[command(name = "postern-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an HTTP auth server speaking nginx's auth_http protocol.
    Auth(AuthArgs),
    /// Run a fake mail backend.
    Backend(BackendArgs),
    /// Fetch one message over and over through IMAP and report the throughput.
    Fetch(FetchArgs),
    /// Generate login, session, idle or bulk load against an IMAP, POP3 or SMTP server.
    Load(LoadArgs),
    /// Write a throwaway test PKI (CAs, server and client certificates, a CRL) as PEM files.
    Certs(CertsArgs),
    /// Draw a PNG bar chart of the Postern/nginx ratios in a scripts/bench.sh results file.
    Chart(ChartArgs),
}

#[derive(Args)]
struct AuthArgs {
    /// Address to listen on: IP:PORT or unix:/path/to.sock.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// A user accepted by the server (repeatable; any bytes but NUL, split at the first ':').
    #[arg(long = "user", value_name = "NAME:PASS")]
    user: Vec<OsString>,
    /// File of name:pass lines ('#' comments and blank lines ignored).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Backend returned for a protocol (repeatable; PROTO is imap, pop3 or smtp).
    #[arg(long = "backend", value_name = "PROTO=IP:PORT")]
    backend: Vec<auth::Backend>,
    /// Add `Auth-Wait: SECS` to failed-login replies.
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Auth-Status text of failed-login replies.
    #[arg(long, value_name = "MSG", default_value = "Invalid login or password")]
    error: String,
    /// Add `Auth-Error-Code: CODE` to failed-login replies (e.g. "454 4.7.0").
    #[arg(long, value_name = "CODE")]
    error_code: Option<String>,
    /// Add `Auth-Error-SASL: JSON` to failed-login replies (the OAuth error
    /// challenge Postern gives OAUTHBEARER / XOAUTH2 clients).
    #[arg(long, value_name = "JSON")]
    error_sasl: Option<String>,
    /// Leave Auth-Pass out of OK replies to apop, cram-md5 and external logins.
    #[arg(long)]
    no_backend_pass: bool,
    /// A header added to every OK reply, e.g. "Auth-SSL-Backend: on" (repeatable).
    #[arg(long = "ok-header", value_name = "NAME: VALUE")]
    ok_headers: Vec<String>,
    /// Milliseconds to sleep before answering each request.
    #[arg(long, value_name = "N", default_value_t = 0)]
    delay_ms: u64,
    /// Append every raw request head to this file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Answer the first N requests (across all connections) with Auth-Status: WAIT and Auth-Wait: 1.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_first: u64,
    /// Send Auth-User: USER and Auth-Pass: PASS when NAME logs in (repeatable).
    #[arg(long = "override", value_name = "NAME=USER:PASS")]
    overrides: Vec<OsString>,
    /// Print `connection N` on stderr for each connection accepted (tests
    /// count them to see keep-alive at work).
    #[arg(long)]
    log_connections: bool,
    /// Answer every request with the exact bytes of FILE, then close.
    #[arg(long, value_name = "FILE", conflicts_with = "hang")]
    reply_file: Option<PathBuf>,
    /// Never answer; keep each connection open until the peer closes it.
    #[arg(long)]
    hang: bool,
}

#[derive(Args)]
struct BackendArgs {
    /// Address to listen on: IP:PORT or unix:/path/to.sock.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// A user accepted at login (repeatable; any bytes but NUL); with no users every login succeeds.
    #[arg(long = "user", value_name = "NAME:PASS")]
    user: Vec<OsString>,
    /// File of name:pass lines ('#' comments and blank lines ignored).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Number of seeded messages in the mailbox.
    #[arg(long, value_name = "N", default_value_t = 3)]
    messages: usize,
    /// Size of each seeded message in bytes.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    msg_bytes: usize,
    /// Protocol to speak.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Imap)]
    protocol: ProtocolArg,
    /// Append every byte received from clients to this file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// SMTP only: write each accepted message to DIR/<n>.eml (created if missing).
    #[arg(long, value_name = "DIR")]
    deliveries: Option<PathBuf>,
    /// Speak implicit TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Args)]
struct FetchArgs {
    /// IMAP server (a backend, or Postern in front of one) as IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    addr: String,
    /// Login, sent as `LOGIN "NAME" "PASS"` (split at the first ':').
    #[arg(long, value_name = "NAME:PASS")]
    user: OsString,
    /// Message sequence number to fetch.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    msg: u64,
    /// FETCHes per connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Parallel connections, one thread each.
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    conns: u64,
    /// A process whose CPU time during the fetches is reported (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Check every message against the seeded bytes the backend serves
    /// (costs client CPU).
    #[arg(long)]
    verify: bool,
    /// Socket read and write timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Args)]
struct LoadArgs {
    /// What each connection slot does.
    #[arg(long, value_enum)]
    mode: ModeArg,
    /// Protocol to speak.
    #[arg(long, value_enum)]
    protocol: ProtocolArg,
    /// The server (a backend, or Postern in front of one) as IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    addr: String,
    /// Login (split at the first ':').
    #[arg(long, value_name = "NAME:PASS")]
    user: OsString,
    /// Connection slots, one thread each (idle: sessions held open).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    conns: u64,
    /// Seconds of load (idle: seconds the sessions are held).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    duration: f64,
    /// Operations per second over all slots (open loop); default: closed loop.
    #[arg(long, value_name = "PER_SEC")]
    rate: Option<f64>,
    /// Message number for IMAP FETCH and POP3 RETR.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    msg: u64,
    /// Size of the message sent with SMTP DATA.
    #[arg(long, value_name = "N", default_value_t = 10240)]
    msg_bytes: usize,
    /// A process whose CPU time (and, for idle, memory) is reported (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Print only the JSON line.
    #[arg(long)]
    json_only: bool,
    /// Socket connect, read and write timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Open each connection with a PROXY protocol header (v1 or v2) stating
    /// the connection itself, as a balancer would (not in --mode bad).
    #[arg(long, value_enum, value_name = "VERSION")]
    proxy_protocol: Option<ProxyProtocolArg>,
    /// With --mode bad: how the clients misbehave.
    #[arg(long, value_enum, default_value_t = BadArg::WrongPass)]
    bad: BadArg,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Client-side TLS options of `load` and `fetch`.
#[derive(Args)]
struct TlsArgs {
    /// Speak implicit TLS from the first byte (IMAPS, POP3S, SMTPS).
    #[arg(long, conflicts_with = "starttls")]
    tls: bool,
    /// Upgrade each connection after the greeting: IMAP STARTTLS, POP3 STLS, SMTP EHLO + STARTTLS.
    #[arg(long)]
    starttls: bool,
    /// Trust the CA certificates in this PEM file (with --tls or --starttls).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate.
    #[arg(long)]
    insecure: bool,
    /// Name to check the certificate against and send as SNI (default: the host of --addr).
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
    /// Resume TLS sessions (tickets or IDs) instead of a full handshake per connection.
    #[arg(long)]
    resume: bool,
}

impl TlsArgs {
    fn client(&self, addr: &str) -> Result<Option<tls::ClientTls>, String> {
        if !(self.tls || self.starttls) {
            if self.ca.is_some() || self.insecure || self.tls_name.is_some() || self.resume {
                return Err("--ca, --insecure, --tls-name and --resume need --tls or --starttls".into());
            }
            return Ok(None);
        }
        let trust = match (&self.ca, self.insecure) {
            (Some(ca), _) => tls::Trust::Ca(ca),
            (None, true) => tls::Trust::Insecure,
            (None, false) => return Err("--tls and --starttls need --ca FILE or --insecure".into()),
        };
        Ok(Some(tls::ClientTls {
            config: tls::client_config(trust, self.resume)?,
            name: tls::server_name(self.tls_name.as_deref(), addr)?,
        }))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ProxyProtocolArg {
    V1,
    V2,
}

#[derive(Clone, Copy, ValueEnum)]
enum BadArg {
    /// Log in with a wrong password (the server must refuse and close).
    WrongPass,
    /// Send lines of binary junk (the server must close after max_errors).
    Garbage,
    /// Send 64 KiB without a line end (the server must close).
    LongLine,
    /// Connect and close at once, or after half a command.
    Vanish,
    /// Send the login one byte every 10 ms, then log out.
    Slow,
}

#[derive(Args)]
struct CertsArgs {
    /// Directory to write into (created if missing; existing files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args)]
struct ChartArgs {
    /// Results file (JSON lines) with a summary line, as scripts/bench.sh writes it.
    #[arg(long, value_name = "FILE.jsonl")]
    input: PathBuf,
    /// PNG file to write.
    #[arg(long, value_name = "FILE.png")]
    output: PathBuf,
    /// TrueType font for the text (default: DejaVu Sans or another system .ttf).
    #[arg(long, value_name = "FILE.ttf")]
    font: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Login,
    /// Connect, TLS handshake if any, greeting, logout (no login).
    Handshake,
    Session,
    Idle,
    Bulk,
    /// Misbehaving clients (see --bad).
    Bad,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Imap,
    Pop3,
    Smtp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Auth(args) => run_auth(args),
        Command::Backend(args) => run_backend(args),
        Command::Fetch(args) => run_fetch(args),
        Command::Load(args) => run_load(args),
        Command::Chart(args) => run_chart(args),
        Command::Certs(args) => run_certs(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("postern-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--user` values as raw bytes: they need not be UTF-8.
fn user_bytes(values: &[OsString]) -> Vec<&[u8]> {
    values.iter().map(|v| v.as_bytes()).collect()
}

fn bind(spec: &str) -> Result<Listener, String> {
    let listener = Listener::bind(spec).map_err(|e| format!("cannot listen on {spec}: {e}"))?;
    net::announce(&listener).map_err(|e| format!("cannot write to stdout: {e}"))?;
    Ok(listener)
}

fn run_auth(args: AuthArgs) -> Result<(), String> {
    if args.error.contains(['\r', '\n']) {
        return Err("--error must not contain CR or LF".into());
    }
    if args.error_code.as_ref().is_some_and(|c| c.contains(['\r', '\n'])) {
        return Err("--error-code must not contain CR or LF".into());
    }
    if args.error_sasl.as_ref().is_some_and(|c| c.contains(['\r', '\n'])) {
        return Err("--error-sasl must not contain CR or LF".into());
    }
    let users = Users::load(&user_bytes(&args.user), args.users.as_deref())?;
    let overrides = args
        .overrides
        .iter()
        .map(|spec| auth::Override::parse(spec.as_bytes()).map_err(|e| format!("--override {e}")))
        .collect::<Result<Vec<_>, String>>()?;
    let mode = match (&args.reply_file, args.hang) {
        (Some(path), _) => auth::Mode::ReplyFile(
            std::fs::read(path).map_err(|e| format!("cannot read reply file {}: {e}", path.display()))?,
        ),
        (None, true) => auth::Mode::Hang,
        (None, false) => auth::Mode::Decide,
    };
    let record = args.record.as_deref().map(Record::open).transpose()?;
    let config = auth::Config {
        users,
        backends: args.backend,
        wait: args.wait,
        error: args.error,
        error_code: args.error_code,
        error_sasl: args.error_sasl,
        no_backend_pass: args.no_backend_pass,
        ok_headers: args.ok_headers,
        delay: Duration::from_millis(args.delay_ms),
        record,
        wait_first: args.wait_first,
        overrides,
        mode,
        log_connections: args.log_connections,
        ..auth::Config::default()
    };
    let listener = bind(&args.listen)?;
    auth::run(listener, config)
}

fn run_backend(args: BackendArgs) -> Result<(), String> {
    let users = Users::load(&user_bytes(&args.user), args.users.as_deref())?;
    let record = args.record.as_deref().map(Record::open).transpose()?.map(Arc::new);
    let protocol = protocol(args.protocol);
    if let Some(dir) = &args.deliveries {
        if protocol != Protocol::Smtp {
            return Err("--deliveries needs --protocol smtp".into());
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create deliveries directory {}: {e}", dir.display()))?;
    }
    let config = backend::Config {
        protocol,
        users,
        mailbox: Mailbox::seeded(args.messages, args.msg_bytes),
        record,
        queue: Queue::new(args.deliveries),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        },
    };
    let listener = bind(&args.listen)?;
    backend::run(listener, config)
}

fn run_fetch(args: FetchArgs) -> Result<(), String> {
    let (user, pass) = postern_bench::users::split_pair(args.user.as_bytes())
        .ok_or_else(|| format!("--user {:?}: expected NAME:PASS", args.user))?;
    let tls = args.tls.client(&args.addr)?;
    let config = fetch::Config {
        addr: args.addr,
        user,
        pass,
        msg: args.msg,
        count: args.count,
        conns: args.conns as usize,
        pids: args.pids,
        timeout: Duration::from_secs(args.timeout),
        verify: args.verify,
        tls,
        starttls: args.tls.starttls,
    };
    let report = fetch::run(config)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.human())
        .and_then(|()| writeln!(out, "{}", report.json()))
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

fn protocol(arg: ProtocolArg) -> Protocol {
    match arg {
        ProtocolArg::Imap => Protocol::Imap,
        ProtocolArg::Pop3 => Protocol::Pop3,
        ProtocolArg::Smtp => Protocol::Smtp,
    }
}

fn run_load(args: LoadArgs) -> Result<(), String> {
    let (user, pass) = postern_bench::users::split_pair(args.user.as_bytes())
        .ok_or_else(|| format!("--user {:?}: expected NAME:PASS", args.user))?;
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        return Err("--duration must be a number of seconds".into());
    }
    let tls = args.tls.client(&args.addr)?;
    let config = load::Config {
        mode: match args.mode {
            ModeArg::Login => load::Mode::Login,
            ModeArg::Handshake => load::Mode::Handshake,
            ModeArg::Session => load::Mode::Session,
            ModeArg::Idle => load::Mode::Idle,
            ModeArg::Bulk => load::Mode::Bulk,
            ModeArg::Bad => load::Mode::Bad(match args.bad {
                BadArg::WrongPass => load::BadKind::WrongPass,
                BadArg::Garbage => load::BadKind::Garbage,
                BadArg::LongLine => load::BadKind::LongLine,
                BadArg::Vanish => load::BadKind::Vanish,
                BadArg::Slow => load::BadKind::Slow,
            }),
        },
        protocol: protocol(args.protocol),
        addr: args.addr,
        user,
        pass,
        conns: args.conns as usize,
        duration: Duration::from_secs_f64(args.duration),
        rate: args.rate,
        msg: args.msg,
        msg_bytes: args.msg_bytes,
        pids: args.pids,
        timeout: Duration::from_secs(args.timeout),
        tls,
        starttls: args.tls.starttls,
        proxy_protocol: args.proxy_protocol.map(|v| match v {
            ProxyProtocolArg::V1 => postern_bench::proxy_header::ProxyVersion::V1,
            ProxyProtocolArg::V2 => postern_bench::proxy_header::ProxyVersion::V2,
        }),
    };
    let report = load::run(config)?;
    let mut out = std::io::stdout().lock();
    let human = if args.json_only {
        Ok(())
    } else {
        writeln!(out, "{}", report.human())
    };
    human
        .and_then(|()| writeln!(out, "{}", report.json()))
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    if let Some(e) = &report.first_error {
        eprintln!("postern-bench: load: {} error(s); first: {e}", report.errors);
    }
    if report.ops == 0 {
        return Err("load: no operation succeeded".into());
    }
    Ok(())
}

fn run_certs(args: CertsArgs) -> Result<(), String> {
    let pki = certs::write_test_pki(&args.dir)
        .map_err(|e| format!("cannot write test PKI in {}: {e}", args.dir.display()))?;
    // One `name path` line per file, so scripts can pick the ones they need.
    let files = [
        ("ca", &pki.ca),
        ("ca_key", &pki.ca_key),
        ("server_cert", &pki.server_cert),
        ("server_key", &pki.server_key),
        ("server_rsa_cert", &pki.server_rsa_cert),
        ("server_rsa_key", &pki.server_rsa_key),
        ("client_cert", &pki.client_cert),
        ("client_key", &pki.client_key),
        ("revoked_cert", &pki.revoked_cert),
        ("revoked_key", &pki.revoked_key),
        ("crl", &pki.crl),
        ("other_ca", &pki.other_ca),
        ("other_server_cert", &pki.other_server_cert),
        ("other_server_key", &pki.other_server_key),
        ("wrong_name_cert", &pki.wrong_name_cert),
        ("wrong_name_key", &pki.wrong_name_key),
    ];
    let mut out = std::io::stdout().lock();
    for (name, path) in files {
        writeln!(out, "{name} {}", path.display()).map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    Ok(())
}

fn run_chart(args: ChartArgs) -> Result<(), String> {
    let message = chart::run(&args.input, &args.output, args.font.as_deref())?;
    println!("{message}");
    Ok(())
}
