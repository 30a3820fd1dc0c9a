//! `postern-bench`: companions for exercising Postern.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use postern_bench::auth;
use postern_bench::backend::{self, Mailbox, Protocol};
use postern_bench::net::{self, Listener};
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
}

#[derive(Args)]
struct AuthArgs {
    /// Address to listen on: IP:PORT or unix:/path/to.sock.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// A user accepted by the server (repeatable).
    #[arg(long = "user", value_name = "NAME:PASS")]
    user: Vec<String>,
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
    /// Milliseconds to sleep before answering each request.
    #[arg(long, value_name = "N", default_value_t = 0)]
    delay_ms: u64,
    /// Append every raw request head to this file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

#[derive(Args)]
struct BackendArgs {
    /// Address to listen on: IP:PORT or unix:/path/to.sock.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// A user accepted at login (repeatable); with no users every login succeeds.
    #[arg(long = "user", value_name = "NAME:PASS")]
    user: Vec<String>,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Imap,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Auth(args) => run_auth(args),
        Command::Backend(args) => run_backend(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("postern-bench: {message}");
            ExitCode::FAILURE
        }
    }
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
    let users = Users::load(&args.user, args.users.as_deref())?;
    let record = match &args.record {
        Some(path) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open record file {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let config = auth::Config {
        users,
        backends: args.backend,
        wait: args.wait,
        error: args.error,
        delay: Duration::from_millis(args.delay_ms),
        record,
    };
    let listener = bind(&args.listen)?;
    auth::run(listener, config)
}

fn run_backend(args: BackendArgs) -> Result<(), String> {
    let users = Users::load(&args.user, args.users.as_deref())?;
    let protocol = match args.protocol {
        ProtocolArg::Imap => Protocol::Imap,
    };
    let config = backend::Config {
        protocol,
        users,
        mailbox: Mailbox::seeded(args.messages, args.msg_bytes),
    };
    let listener = bind(&args.listen)?;
    backend::run(listener, config)
}
