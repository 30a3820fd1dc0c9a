//! The command line: nginx's flags first, then Postern's per-core tuning,
//! each of which overrides the configuration file.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{LogLevel, Workers};
use crate::relay::RelayMode;
use crate::runtime::cpus::parse_cpu_list;
use crate::tls::ktls::KtlsMode;

pub const DEFAULT_CONFIG: &str = "/etc/postern/postern.conf";

/// `-s`: the orders nginx's `-s` gives, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signal {
    Stop,
    Quit,
    Reopen,
    Reload,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Stop => libc::SIGTERM,
            Signal::Quit => libc::SIGQUIT,
            Signal::Reopen => libc::SIGUSR1,
            Signal::Reload => libc::SIGHUP,
        }
    }
}

/// Postern: a mail proxy for IMAP, POP3 and SMTP that reads nginx's `mail {}`
/// configuration and runs one io_uring executor per core.
#[derive(Debug, Parser)]
#[command(name = "postern", version)]
pub struct Args {
    /// Configuration file (nginx syntax). Relative to the prefix when `-p`
    /// is given.
    #[arg(short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// Test the configuration and exit: "syntax is ok" / "test failed", exit
    /// status 0 or 1, as `nginx -t`.
    #[arg(short = 't')]
    pub test: bool,

    /// Signal the running Postern, found through the configuration's pid
    /// file, as `nginx -s`: stop (SIGTERM), quit (SIGQUIT, graceful),
    /// reopen (SIGUSR1, log files), reload (SIGHUP, configuration).
    #[arg(short = 's', value_name = "SIGNAL", value_enum)]
    pub signal: Option<Signal>,

    /// Prefix: relative paths in the configuration (pid, error_log, unix
    /// sockets) and of `-c` start here, as nginx's `-p`.
    #[arg(short = 'p', value_name = "PREFIX")]
    pub prefix: Option<PathBuf>,

    /// Error log file, or `stderr`, replacing the main `error_log` target
    /// (its level stays), as nginx's `-e`.
    #[arg(short = 'e', value_name = "FILE|stderr")]
    pub error_log: Option<String>,

    /// Executors to run, one per core: a number or `auto` (one per CPU of
    /// `--cpus`, else of the process's affinity). Overrides
    /// `worker_processes`.
    #[arg(long, value_name = "N|auto", value_parser = parse_workers)]
    pub cores: Option<Workers>,

    /// CPUs to run the executors on, e.g. `0-3,6`; core i takes the i-th CPU
    /// of the list. Default: the CPUs this process may use.
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,

    /// Do not pin executors to CPUs; let the kernel move them.
    #[arg(long)]
    pub no_pin: bool,

    /// io_uring registered-buffer memory per executor, in bytes (`k`, `m`
    /// suffixes). Sockets do not use it; keep it under RLIMIT_MEMLOCK.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "512k")]
    pub io_memory: usize,

    /// Sessions per core; past it a core stops accepting until one ends.
    /// Overrides `events { worker_connections }`.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub max_conns: Option<usize>,

    /// How relayed bytes move: `splice` (zero copy, through a per-core pool
    /// of pipes) or `copy` (through a buffer).
    #[arg(long, value_name = "splice|copy", value_parser = parse_relay, default_value = "splice")]
    pub relay: RelayMode,

    /// Capacity asked for each splice pipe (F_SETPIPE_SZ), in bytes (`k`, `m`
    /// suffixes). When the kernel refuses it, smaller pipes are used.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "1m")]
    pub pipe_size: usize,

    /// Kernel TLS: `auto` hands the TLS sides of a logged-in session to
    /// the kernel, where it offers TLS, and splices the session; `off`
    /// keeps every TLS session in rustls.
    #[arg(long, value_name = "auto|off", value_parser = parse_ktls, default_value = "auto")]
    pub ktls: KtlsMode,

    /// Microseconds an idle executor spins before it sleeps in the kernel
    /// (glommio's spin_before_park). Trades CPU for fewer wake-ups; 0 = off.
    #[arg(long, value_name = "MICROS", default_value = "0")]
    pub spin_before_park: u64,

    /// Lowest level written to the error log (debug, info, notice, warn,
    /// error, crit, alert, emerg). Overrides the `error_log` level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub log_level: Option<LogLevel>,
}

/// `--cpus`: one argument holding a whole list (clap would read a bare
/// `Vec` as a repeated flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

fn parse_cpus(text: &str) -> Result<CpuList, String> {
    parse_cpu_list(text).map(CpuList)
}

fn parse_workers(text: &str) -> Result<Workers, String> {
    if text == "auto" {
        return Ok(Workers::Auto);
    }
    parse_positive(text)
        .map(Workers::Count)
        .map_err(|_| format!("expected a positive number or \"auto\", got \"{text}\""))
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive number, got \"{text}\"")),
    }
}

fn parse_bytes(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("expected a size such as 524288, 512k or 1m, got \"{text}\""))
}

fn parse_relay(text: &str) -> Result<RelayMode, String> {
    match text {
        "splice" => Ok(RelayMode::Splice),
        "copy" => Ok(RelayMode::Copy),
        _ => Err(format!("expected \"splice\" or \"copy\", got \"{text}\"")),
    }
}

fn parse_ktls(text: &str) -> Result<KtlsMode, String> {
    match text {
        "auto" => Ok(KtlsMode::Auto),
        "off" => Ok(KtlsMode::Off),
        _ => Err(format!("expected \"auto\" or \"off\", got \"{text}\"")),
    }
}

fn parse_level(text: &str) -> Result<LogLevel, String> {
    LogLevel::parse(text).ok_or_else(|| format!("unknown log level \"{text}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let args = Args::try_parse_from(["postern", "-c", "x.conf", "-t", "--cores", "3"]).unwrap();
        assert_eq!(args.config, PathBuf::from("x.conf"));
        assert!(args.test);
        assert_eq!(args.cores, Some(Workers::Count(3)));
        let args = Args::try_parse_from(["postern", "--cores", "auto"]).unwrap();
        assert_eq!(args.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(args.cores, Some(Workers::Auto));
        assert_eq!(args.io_memory, 512 << 10);
        assert_eq!(args.relay, RelayMode::Splice);
        assert_eq!(args.pipe_size, 1 << 20);
        assert_eq!(args.spin_before_park, 0);
        assert_eq!(args.ktls, KtlsMode::Auto);
        assert_eq!(
            Args::try_parse_from(["postern", "--ktls", "off"]).unwrap().ktls,
            KtlsMode::Off
        );
        assert!(Args::try_parse_from(["postern", "--ktls", "on"]).is_err());
        let args = Args::try_parse_from(["postern", "--relay", "copy", "--pipe-size", "64k"]).unwrap();
        assert_eq!((args.relay, args.pipe_size), (RelayMode::Copy, 64 << 10));
        assert!(Args::try_parse_from(["postern", "--relay", "sendfile"]).is_err());
        assert!(!args.no_pin);
        assert!(Args::try_parse_from(["postern", "--cores", "0"]).is_err());
    }

    #[test]
    fn nginx_and_tuning_flags() {
        let args = Args::try_parse_from([
            "postern",
            "-p",
            "/srv/p/",
            "-c",
            "p.conf",
            "-e",
            "stderr",
            "--cpus",
            "0-1,3",
            "--no-pin",
            "--io-memory",
            "1m",
            "--max-conns",
            "100",
            "--log-level",
            "notice",
        ])
        .unwrap();
        assert_eq!(args.prefix, Some(PathBuf::from("/srv/p/")));
        assert_eq!(args.error_log.as_deref(), Some("stderr"));
        assert_eq!(args.cpus, Some(CpuList(vec![0, 1, 3])));
        assert!(args.no_pin);
        assert_eq!(args.io_memory, 1 << 20);
        assert_eq!(args.max_conns, Some(100));
        assert_eq!(args.log_level, Some(LogLevel::Notice));
        for bad in [
            ["--cpus", "3-1"],
            ["--io-memory", "lots"],
            ["--max-conns", "0"],
            ["--log-level", "loud"],
        ] {
            assert!(Args::try_parse_from(["postern", bad[0], bad[1]]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("2M"), Ok(2 << 20));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("k").is_err());
        assert!(parse_bytes("99999999999999999999g").is_err());
    }
}
