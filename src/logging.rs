//! Error logs as nginx writes them, so log parsers and fail2ban filters
//! written for nginx keep working:
//! `YYYY/MM/DD HH:MM:SS [level] PID#TID: *CONN message, client: ADDR, server: ADDR, login: "user"`.
//!
//! Two ways in:
//! - Process-wide messages (start-up, signals, reloads) come through the
//!   `log` facade and go to the main-level `error_log`s. nginx has more
//!   levels than `log`: `notice`, `crit`, `alert` and `emerg` are given as
//!   the record's target (`log::info!(target: "notice", ...)`); the macros
//!   below spell that.
//! - A session's lines go through its server's [`SessionLog`], one per core
//!   and server block: the server's own logs, else the `mail` level's, else
//!   the main ones (nginx's merge). Each core holds its own handles (a file
//!   handle checked against the reopen generation, a dup of stderr, a UDP
//!   socket per syslog log), so a line costs one write(2) or send(2) per log
//!   and takes no lock shared with another core.
//!
//! Files are opened with O_APPEND, so lines from several cores never
//! interleave. SIGUSR1 reopens every file by name ([`reopen`]).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::{Config, ErrorLog, LogLevel, LogTarget, SyslogServer, SyslogTarget};
use crate::protocol::line::printable;

/// `notice!(...)`: an nginx `[notice]` line.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)+) => { log::info!(target: "notice", $($arg)+) };
}

/// `emerg!(...)`: an nginx `[emerg]` line, for what stops Postern.
#[macro_export]
macro_rules! emerg {
    ($($arg:tt)+) => { log::error!(target: "emerg", $($arg)+) };
}

/// nginx's NGX_MAX_ERROR_STR: a syslog message is cut there, as nginx does,
/// so a datagram stays well under any UDP limit.
const MAX_SYSLOG_MESSAGE: usize = 2048;

/// A log file by name, shared by every log and core that writes to it.
struct OpenFile {
    path: PathBuf,
    current: Mutex<Arc<File>>,
    /// Bumped by each reopen: a core's cached handle from an older
    /// generation is refreshed before its next line.
    generation: AtomicU64,
}

impl OpenFile {
    fn open(path: &Path) -> Result<OpenFile, String> {
        Ok(OpenFile {
            path: path.to_path_buf(),
            current: Mutex::new(Arc::new(open_log(path)?)),
            generation: AtomicU64::new(0),
        })
    }

    fn handle(&self) -> Arc<File> {
        // A writer that panicked held the lock only to clone an Arc.
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reopen(&self) -> Result<(), String> {
        let fresh = Arc::new(open_log(&self.path)?);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        // After the swap: a core seeing the new generation finds the new file.
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("open() \"{}\" failed ({e})", path.display()))
}

/// Every log file in use by name: the main logs' (opened by [`init`]) and
/// the servers' of the running configuration ([`open_server_logs`]).
struct Registry {
    main: Vec<Arc<OpenFile>>,
    servers: Vec<Arc<OpenFile>>,
}

static FILES: Mutex<Registry> = Mutex::new(Registry {
    main: Vec::new(),
    servers: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    FILES.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    fn find(&self, path: &Path) -> Option<Arc<OpenFile>> {
        self.main.iter().chain(&self.servers).find(|f| f.path == path).cloned()
    }
}

/// The file `path` names, opened now unless it is open already.
fn file(path: &Path) -> Result<Arc<OpenFile>, String> {
    let mut files = registry();
    if let Some(found) = files.find(path) {
        return Ok(found);
    }
    let opened = Arc::new(OpenFile::open(path)?);
    files.servers.push(opened.clone());
    Ok(opened)
}

/// Opens every server-level log file of `config` (a start, or a reload
/// before it is applied), so that one that cannot be opened stops it with
/// nginx's message. Files no longer named are closed once the sessions
/// writing to them end.
pub fn open_server_logs(config: &Config) -> Result<(), String> {
    let mut wanted = Vec::new();
    for log in config.servers.iter().flat_map(|s| &s.error_log) {
        if let LogTarget::File(path) = &log.target {
            if !wanted.iter().any(|f: &Arc<OpenFile>| f.path == *path) {
                wanted.push(file(path)?);
            }
        }
    }
    registry().servers = wanted;
    Ok(())
}

/// Opens (creating, as a start would) every log file the configuration
/// names, main and servers', as `nginx -t` does: a log that cannot be
/// written fails the test instead of the start.
pub fn check_files(config: &Config) -> Result<(), String> {
    let logs = config
        .main
        .error_log
        .iter()
        .chain(config.servers.iter().flat_map(|s| &s.error_log));
    for log in logs {
        if let LogTarget::File(path) = &log.target {
            open_log(path)?;
        }
    }
    Ok(())
}

/// The log files in use, for `user` to hand them over before dropping
/// root (so SIGUSR1 can reopen them afterwards).
pub fn file_paths() -> Vec<PathBuf> {
    let files = registry();
    files
        .main
        .iter()
        .chain(&files.servers)
        .map(|f| f.path.clone())
        .collect()
}

/// SIGUSR1: opens every log file again by name, so logrotate can move the
/// old ones away. A file that cannot be opened keeps its old handle; every
/// failure is reported.
pub fn reopen() -> Result<(), String> {
    let files: Vec<Arc<OpenFile>> = {
        let files = registry();
        files.main.iter().chain(&files.servers).cloned().collect()
    };
    let failures: Vec<String> = files.iter().filter_map(|f| f.reopen().err()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// What nginx's mail module appends to a session's lines
/// (`ngx_mail_log_error`): `, client: ADDR[ using starttls], server: ADDR`,
/// then `, login: "user"` once known and `, upstream: ADDR` once chosen.
#[derive(Debug, Clone, Copy)]
pub struct MailContext<'a> {
    /// The client's address without the port, as nginx; `None` on a unix
    /// socket.
    pub client: Option<IpAddr>,
    pub starttls: bool,
    /// The listening address (`127.0.0.1:143`, `unix:/path`).
    pub server: &'a str,
    /// Escaped when written: it is the client's text.
    pub login: Option<&'a [u8]>,
    pub upstream: Option<SocketAddr>,
}

impl fmt::Display for MailContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.client {
            Some(ip) => write!(f, ", client: {ip}")?,
            None => f.write_str(", client: unix:")?,
        }
        if self.starttls {
            f.write_str(" using starttls")?;
        }
        write!(f, ", server: {}", self.server)?;
        if let Some(login) = self.login.filter(|l| !l.is_empty()) {
            write!(f, ", login: \"{}\"", printable(login))?;
            if let Some(upstream) = self.upstream {
                write!(f, ", upstream: {upstream}")?;
            }
        }
        Ok(())
    }
}

/// The clock readings a line needs, taken once per line.
struct Stamp {
    /// `YYYY/MM/DD HH:MM:SS`, the error log's.
    log: String,
    /// `Mmm dd HH:MM:SS`, RFC 3164's (the day padded with a space).
    syslog: String,
}

impl Stamp {
    fn now() -> Stamp {
        let now = chrono::Local::now();
        Stamp {
            log: now.format("%Y/%m/%d %H:%M:%S").to_string(),
            syslog: now.format("%b %e %H:%M:%S").to_string(),
        }
    }
}

/// One line in nginx's format, newline included. `id` is the session's
/// (`*ID`); `context` is appended except at debug, as nginx does.
pub fn format_line(
    stamp: &str,
    level: LogLevel,
    pid: u32,
    tid: u32,
    id: Option<u64>,
    message: &fmt::Arguments<'_>,
    context: Option<&MailContext<'_>>,
) -> String {
    let mut line = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(line, "{stamp} [{}] {pid}#{tid}: ", level.name());
    if let Some(id) = id {
        let _ = write!(line, "*{id} ");
    }
    let _ = line.write_fmt(*message);
    if let Some(context) = context.filter(|_| level != LogLevel::Debug) {
        let _ = write!(line, "{context}");
    }
    line.push('\n');
    line
}

/// RFC 3164 severity of an nginx level (nginx maps them the same way).
pub fn syslog_severity(level: LogLevel) -> u8 {
    match level {
        LogLevel::Emerg => 0,
        LogLevel::Alert => 1,
        LogLevel::Crit => 2,
        LogLevel::Error => 3,
        LogLevel::Warn => 4,
        LogLevel::Notice => 5,
        LogLevel::Info => 6,
        LogLevel::Debug => 7,
    }
}

/// One datagram as nginx sends it: `<PRI>Mmm dd HH:MM:SS HOSTNAME TAG: ` and
/// the whole error-log line without its newline, cut at nginx's limit.
pub fn syslog_packet(target: &SyslogTarget, hostname: &str, stamp: &str, level: LogLevel, line: &str) -> Vec<u8> {
    let pri = u32::from(target.facility) * 8 + u32::from(syslog_severity(level));
    let mut packet = if target.nohostname {
        format!("<{pri}>{stamp} {}: ", target.tag)
    } else {
        format!("<{pri}>{stamp} {hostname} {}: ", target.tag)
    };
    let mut message = line.strip_suffix('\n').unwrap_or(line);
    if message.len() > MAX_SYSLOG_MESSAGE {
        let mut cut = MAX_SYSLOG_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message = &message[..cut];
    }
    packet.push_str(message);
    packet.into_bytes()
}

/// The machine's name for the syslog header, lower-cased as nginx's.
fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_ascii_lowercase())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

/// A socket sending to the syslog server; non-blocking, as a lost datagram
/// is better than a core waiting on its log.
enum SyslogSocket {
    Udp(UdpSocket),
    /// Unconnected, addressed at each send: a syslog daemon that restarts
    /// makes a new socket at the same path, which a connected one would
    /// not reach.
    Unix(UnixDatagram, PathBuf),
}

/// One syslog target and the socket to it (none if it could not be made:
/// its lines are lost, as a datagram that goes nowhere would be).
struct SyslogSink {
    target: SyslogTarget,
    socket: Option<SyslogSocket>,
}

impl SyslogSink {
    fn open(target: &SyslogTarget) -> SyslogSink {
        SyslogSink {
            socket: SyslogSocket::open(&target.server),
            target: target.clone(),
        }
    }

    /// `line` as one datagram, stamped with `stamp` (syslog's own form).
    fn write(&self, stamp: &str, level: LogLevel, line: &str) {
        if let Some(socket) = &self.socket {
            socket.send(&syslog_packet(&self.target, hostname(), stamp, level, line));
        }
    }
}

impl SyslogSocket {
    fn open(server: &SyslogServer) -> Option<SyslogSocket> {
        match server {
            SyslogServer::Udp(addr) => {
                let local: SocketAddr = match addr {
                    SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(local).ok()?;
                socket.connect(addr).ok()?;
                socket.set_nonblocking(true).ok()?;
                Some(SyslogSocket::Udp(socket))
            }
            SyslogServer::Unix(path) => {
                let socket = UnixDatagram::unbound().ok()?;
                socket.set_nonblocking(true).ok()?;
                Some(SyslogSocket::Unix(socket, path.clone()))
            }
        }
    }

    fn send(&self, packet: &[u8]) {
        let _ = match self {
            SyslogSocket::Udp(socket) => socket.send(packet),
            SyslogSocket::Unix(socket, path) => socket.send_to(packet, path),
        };
    }
}

thread_local! {
    static TID: u32 = current_tid();
}

fn current_tid() -> u32 {
    // SAFETY: gettid(2) takes no arguments, cannot fail and touches no memory.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

fn tid() -> u32 {
    TID.with(|t| *t)
}

/// A core's handle on one log.
enum CoreSink {
    /// Its own duplicate of fd 2: no lock shared with other threads.
    Stderr(File),
    File {
        file: Arc<OpenFile>,
        seen: Cell<u64>,
        handle: RefCell<Arc<File>>,
    },
    Syslog(SyslogSink),
}

struct CoreLog {
    level: LogLevel,
    sink: CoreSink,
}

/// One server block's logs on one core: what its sessions' lines go to.
pub struct SessionLog {
    logs: Vec<CoreLog>,
    /// The most verbose level any of them admits: below it a line is not
    /// even formatted.
    threshold: LogLevel,
    pid: u32,
}

impl SessionLog {
    /// `logs`: the server's `error_log`s; empty means the main-level ones.
    /// A log that cannot be opened here (the main thread opened every file
    /// already, so only a descriptor shortage) is said on the main logs and
    /// left out.
    pub fn new(logs: &[ErrorLog]) -> SessionLog {
        let logs = if logs.is_empty() {
            MAIN_LOGS.get().map_or(&[][..], Vec::as_slice)
        } else {
            logs
        };
        let mut built = Vec::with_capacity(logs.len());
        for log in logs {
            let sink = match &log.target {
                LogTarget::Stderr => match std::io::stderr().as_fd().try_clone_to_owned() {
                    Ok(fd) => CoreSink::Stderr(File::from(fd)),
                    Err(e) => {
                        log::error!("dup() of stderr for a session log failed ({e})");
                        continue;
                    }
                },
                LogTarget::File(path) => match file(path) {
                    Ok(file) => CoreSink::File {
                        seen: Cell::new(file.generation.load(Ordering::Acquire)),
                        handle: RefCell::new(file.handle()),
                        file,
                    },
                    Err(e) => {
                        log::error!("{e}");
                        continue;
                    }
                },
                LogTarget::Syslog(target) => CoreSink::Syslog(SyslogSink::open(target)),
            };
            built.push(CoreLog { level: log.level, sink });
        }
        SessionLog {
            threshold: built.iter().map(|l| l.level).min().unwrap_or(LogLevel::Emerg),
            logs: built,
            pid: std::process::id(),
        }
    }

    /// Whether a line at `level` goes anywhere.
    pub fn enabled(&self, level: LogLevel) -> bool {
        !self.logs.is_empty() && level >= self.threshold
    }

    /// A session's line: `*ID message` then nginx's mail context.
    pub fn session(&self, level: LogLevel, id: u64, context: Option<&MailContext<'_>>, message: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        let stamp = Stamp::now();
        let line = format_line(&stamp.log, level, self.pid, tid(), Some(id), &message, context);
        for log in self.logs.iter().filter(|l| level >= l.level) {
            // A failed log write has nowhere to be reported; dropping it is
            // the only choice that does not stop the proxy.
            match &log.sink {
                CoreSink::Stderr(file) => {
                    let _ = (&*file).write_all(line.as_bytes());
                }
                CoreSink::File { file, seen, handle } => {
                    let generation = file.generation.load(Ordering::Acquire);
                    if generation != seen.get() {
                        *handle.borrow_mut() = file.handle();
                        seen.set(generation);
                    }
                    let handle = handle.borrow();
                    let _ = (&**handle).write_all(line.as_bytes());
                }
                CoreSink::Syslog(syslog) => syslog.write(&stamp.syslog, level, &line),
            }
        }
    }
}

/// A main-level log as every thread shares it, for the `log` facade.
enum SharedSink {
    Stderr,
    File(Arc<OpenFile>),
    Syslog(SyslogSink),
}

struct MainLog {
    level: LogLevel,
    sink: SharedSink,
}

struct ErrorLogger {
    logs: Vec<MainLog>,
    threshold: LogLevel,
    pid: u32,
}

static LOGGER: OnceLock<ErrorLogger> = OnceLock::new();
/// The main-level logs as configured: a server without logs of its own
/// builds its per-core [`SessionLog`] from them.
static MAIN_LOGS: OnceLock<Vec<ErrorLog>> = OnceLock::new();

/// Installs the main-level logs for `log`. Fails if a log file cannot be
/// opened, or if the logs were set up already.
pub fn init(logs: &[ErrorLog]) -> Result<(), String> {
    let mut built = Vec::with_capacity(logs.len());
    let mut files = Vec::new();
    for log in logs {
        let sink = match &log.target {
            LogTarget::Stderr => SharedSink::Stderr,
            LogTarget::File(path) => {
                let file = match files.iter().find(|f: &&Arc<OpenFile>| f.path == *path) {
                    Some(file) => Arc::clone(file),
                    None => {
                        let file = Arc::new(OpenFile::open(path)?);
                        files.push(file.clone());
                        file
                    }
                };
                SharedSink::File(file)
            }
            LogTarget::Syslog(target) => SharedSink::Syslog(SyslogSink::open(target)),
        };
        built.push(MainLog { level: log.level, sink });
    }
    let threshold = built.iter().map(|l| l.level).min().unwrap_or(LogLevel::Emerg);
    let logger = ErrorLogger {
        logs: built,
        threshold,
        pid: std::process::id(),
    };
    if LOGGER.set(logger).is_err() || MAIN_LOGS.set(logs.to_vec()).is_err() {
        return Err("the error log is already set up".to_string());
    }
    registry().main = files;
    let logger = LOGGER.get().ok_or("the error log is not set up")?;
    log::set_logger(logger).map_err(|e| e.to_string())?;
    log::set_max_level(match threshold {
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info | LogLevel::Notice => log::LevelFilter::Info,
        LogLevel::Warn => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    });
    Ok(())
}

fn nginx_level(record: &log::Record<'_>) -> LogLevel {
    match (record.target(), record.level()) {
        ("notice", _) => LogLevel::Notice,
        ("crit", _) => LogLevel::Crit,
        ("alert", _) => LogLevel::Alert,
        ("emerg", _) => LogLevel::Emerg,
        (_, log::Level::Error) => LogLevel::Error,
        (_, log::Level::Warn) => LogLevel::Warn,
        (_, log::Level::Info) => LogLevel::Info,
        (_, log::Level::Debug | log::Level::Trace) => LogLevel::Debug,
    }
}

impl log::Log for ErrorLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = nginx_level(record);
        if level < self.threshold {
            return;
        }
        let stamp = Stamp::now();
        let line = format_line(&stamp.log, level, self.pid, tid(), None, record.args(), None);
        for log in self.logs.iter().filter(|l| level >= l.level) {
            // As for session lines: a failed write cannot be reported.
            match &log.sink {
                SharedSink::Stderr => {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
                SharedSink::File(file) => {
                    let _ = (&*file.handle()).write_all(line.as_bytes());
                }
                SharedSink::Syslog(syslog) => syslog.write(&stamp.syslog, level, &line),
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: &str = "2026/01/02 03:04:05";

    fn context<'a>(login: Option<&'a [u8]>, upstream: Option<SocketAddr>, starttls: bool) -> MailContext<'a> {
        MailContext {
            client: Some("127.0.0.1".parse().unwrap()),
            starttls,
            server: "127.0.0.1:143",
            login,
            upstream,
        }
    }

    #[test]
    fn process_line_matches_nginx() {
        let line = format_line(STAMP, LogLevel::Notice, 12, 34, None, &format_args!("hello"), None);
        assert_eq!(line, "2026/01/02 03:04:05 [notice] 12#34: hello\n");
    }

    #[test]
    fn the_clock_gives_nginx_shapes() {
        let stamp = Stamp::now();
        let shape = |s: &str| -> String { s.chars().map(|c| if c.is_ascii_digit() { 'D' } else { c }).collect() };
        assert_eq!(shape(&stamp.log), "DDDD/DD/DD DD:DD:DD");
        assert_eq!(stamp.syslog.len(), 15, "{}", stamp.syslog);
        assert_eq!(&shape(&stamp.syslog)[6..], " DD:DD:DD");
    }

    /// ngx_mail_log_error's order: client, starttls, server, login, upstream.
    #[test]
    fn session_lines_carry_the_mail_context() {
        let upstream: SocketAddr = "127.0.0.1:8143".parse().unwrap();
        let rows: &[(LogLevel, MailContext<'_>, &str, &str)] = &[
            (
                LogLevel::Info,
                context(None, None, false),
                "client timed out",
                "2026/01/02 03:04:05 [info] 1#2: *7 client timed out, client: 127.0.0.1, server: 127.0.0.1:143\n",
            ),
            (
                LogLevel::Info,
                context(Some(b"bob"), None, false),
                "client login failed: \"Invalid login or password\" while in http auth state",
                "2026/01/02 03:04:05 [info] 1#2: *7 client login failed: \"Invalid login or password\" while in \
                 http auth state, client: 127.0.0.1, server: 127.0.0.1:143, login: \"bob\"\n",
            ),
            (
                LogLevel::Info,
                context(Some(b"bob"), Some(upstream), true),
                "logged in",
                "2026/01/02 03:04:05 [info] 1#2: *7 logged in, client: 127.0.0.1 using starttls, server: \
                 127.0.0.1:143, login: \"bob\", upstream: 127.0.0.1:8143\n",
            ),
            (
                LogLevel::Error,
                context(Some(b"a\"b\r\nc\\"), None, false),
                "x",
                "2026/01/02 03:04:05 [error] 1#2: *7 x, client: 127.0.0.1, server: 127.0.0.1:143, login: \
                 \"a\\x22b\\x0D\\x0Ac\\x5C\"\n",
            ),
            // nginx leaves the context off debug lines.
            (
                LogLevel::Debug,
                context(Some(b"bob"), None, false),
                "x",
                "2026/01/02 03:04:05 [debug] 1#2: *7 x\n",
            ),
        ];
        for (level, ctx, message, want) in rows {
            let line = format_line(STAMP, *level, 1, 2, Some(7), &format_args!("{message}"), Some(ctx));
            assert_eq!(line, *want);
        }
        let unix = MailContext {
            client: None,
            ..context(None, None, false)
        };
        let line = format_line(STAMP, LogLevel::Info, 1, 2, Some(7), &format_args!("x"), Some(&unix));
        assert!(line.ends_with("x, client: unix:, server: 127.0.0.1:143\n"), "{line}");
    }

    #[test]
    fn syslog_packets_are_rfc3164_as_nginx_sends_them() {
        let target = SyslogTarget {
            server: SyslogServer::Udp("127.0.0.1:514".parse().unwrap()),
            facility: 23,
            tag: "postern".to_string(),
            nohostname: false,
        };
        let line = "2026/01/02 03:04:05 [error] 1#2: *7 x\n";
        let packet = syslog_packet(&target, "mx1", "Jan  2 03:04:05", LogLevel::Error, line);
        assert_eq!(
            packet,
            b"<187>Jan  2 03:04:05 mx1 postern: 2026/01/02 03:04:05 [error] 1#2: *7 x".to_vec()
        );
        let mail = SyslogTarget {
            facility: 2,
            tag: "edge_1".to_string(),
            nohostname: true,
            ..target.clone()
        };
        let packet = syslog_packet(&mail, "mx1", "Jan 12 03:04:05", LogLevel::Info, line);
        assert_eq!(
            packet,
            b"<22>Jan 12 03:04:05 edge_1: 2026/01/02 03:04:05 [error] 1#2: *7 x".to_vec()
        );
        let pris: Vec<u32> = [
            LogLevel::Emerg,
            LogLevel::Alert,
            LogLevel::Crit,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Notice,
            LogLevel::Info,
            LogLevel::Debug,
        ]
        .iter()
        .map(|l| u32::from(syslog_severity(*l)))
        .collect();
        assert_eq!(pris, [0, 1, 2, 3, 4, 5, 6, 7]);
        let long = "é".repeat(MAX_SYSLOG_MESSAGE);
        let packet = syslog_packet(&target, "mx1", "Jan  2 03:04:05", LogLevel::Info, &long);
        let text = String::from_utf8(packet).unwrap();
        let header = "<190>Jan  2 03:04:05 mx1 postern: ".len();
        assert_eq!(text.len() - header, MAX_SYSLOG_MESSAGE);
    }
}
