//! `postern-bench load`: a load generator for IMAP, POP3 and SMTP servers
//! (the bench backends, or Postern in front of them).
//!
//! Each connection slot runs on its own thread with blocking I/O. All slots
//! first do their setup (a login for `session`, `bulk` and `idle`), then
//! start together; the clock and the CPU samples cover the measured phase
//! only. Modes:
//!
//! - `login`: connect, greeting, login, logout, close, over and over; the
//!   latency runs from the start of the connect to the login reply.
//! - `handshake`: like `login` without the login: connect, TLS handshake
//!   (with `--tls`/`--starttls`), greeting, logout; the latency runs to the
//!   greeting.
//! - `session`: log in once, then repeat one operation (IMAP `FETCH n
//!   BODY[]`, POP3 `RETR n`, SMTP `MAIL`/`RCPT`/`DATA`).
//! - `bulk`: like `session` over IMAP, meant for large messages.
//! - `idle`: open `conns` sessions, sample the memory and descriptors of the
//!   watched processes, hold the sessions for the duration, close them.
//! - `bad`: misbehaving clients, one [`BadKind`] per run: wrong passwords,
//!   garbage lines, over-long lines, clients that vanish, slow clients. An
//!   operation succeeds when the server answers as it should (a refusal, a
//!   close, or for slow clients a login) and ends the session.
//!
//! With TLS (implicit or after STARTTLS) every connection makes a full
//! handshake unless the client config resumes sessions (`--resume`).
//!
//! With a rate, slot `i` starts operation `k` at `t0 + (k * conns + i) / rate`
//! and latency counts from that intended start, so a slow server is not
//! hidden by the client waiting for it (no coordinated omission).

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Barrier, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::smtp::base64;
use crate::backend::Protocol;
use crate::fetch::{literal_size, quoted};
use crate::procstat::{self, json_number, Memory};
use crate::tls::{self, ClientStream, ClientTls};

/// Longest response line accepted outside of message data.
const MAX_LINE: u64 = 64 * 1024;
/// Capacity of each connection's read buffer; larger literal reads bypass it.
const READ_BUFFER: usize = 16 * 1024;
/// Size of the reusable buffer a literal is read into.
const LITERAL_CHUNK: usize = 256 * 1024;
/// Stack of each slot thread.
const STACK: usize = 256 * 1024;
/// Pause after a failed operation in a closed loop, so that a server that
/// refuses connections is not hammered in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Slots that may be setting up a session at the same time. Opening
/// thousands of connections at once overflows the server's accept queue,
/// and the dropped handshakes are retried only after seconds.
const SETUP_AT_ONCE: usize = 64;

/// A counting semaphore.
struct Permits {
    free: Mutex<usize>,
    changed: Condvar,
}

impl Permits {
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            while *free == 0 {
                free = self.changed.wait(free).unwrap_or_else(|e| e.into_inner());
            }
            *free -= 1;
        }
        let out = f();
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.changed.notify_one();
        out
    }
}

/// What each slot does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Login,
    /// Connect (and TLS handshake), greeting, logout: no login.
    Handshake,
    Session,
    Idle,
    Bulk,
    Bad(BadKind),
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Login => "login",
            Mode::Handshake => "handshake",
            Mode::Session => "session",
            Mode::Idle => "idle",
            Mode::Bulk => "bulk",
            Mode::Bad(kind) => kind.name(),
        }
    }
}

/// How a `bad` client misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// Logs in with a wrong password; the server must refuse and close.
    WrongPass,
    /// Sends lines of binary junk; the server must close (`max_errors`).
    Garbage,
    /// Sends 64 KiB without a line end; the server must close.
    LongLine,
    /// Connects and closes at once, every other time after half a command.
    Vanish,
    /// Sends its login one byte every 10 ms, then logs out.
    Slow,
}

impl BadKind {
    pub fn name(self) -> &'static str {
        match self {
            BadKind::WrongPass => "bad-wrong-pass",
            BadKind::Garbage => "bad-garbage",
            BadKind::LongLine => "bad-long-line",
            BadKind::Vanish => "bad-vanish",
            BadKind::Slow => "bad-slow",
        }
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Imap => "imap",
        Protocol::Pop3 => "pop3",
        Protocol::Smtp => "smtp",
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub protocol: Protocol,
    /// `IP:PORT` to connect to.
    pub addr: String,
    pub user: Vec<u8>,
    pub pass: Vec<u8>,
    /// Connection slots, one thread each.
    pub conns: usize,
    /// Length of the measured phase (for `idle`: how long sessions are held).
    pub duration: Duration,
    /// Operations per second over all slots (open loop); `None` runs each
    /// slot as fast as it can (closed loop).
    pub rate: Option<f64>,
    /// Message number for IMAP FETCH and POP3 RETR.
    pub msg: u64,
    /// Size of the SMTP message body sent with DATA.
    pub msg_bytes: usize,
    /// Processes whose CPU time (and, for `idle`, memory) is reported.
    pub pids: Vec<u32>,
    /// Read, write and connect timeout.
    pub timeout: Duration,
    /// Speak TLS: from the first byte, or after STARTTLS with `starttls`.
    pub tls: Option<ClientTls>,
    /// Upgrade with STARTTLS (IMAP), STLS (POP3) or STARTTLS (SMTP) after
    /// the greeting; needs `tls`.
    pub starttls: bool,
    /// Open each connection with a PROXY header (`--proxy-protocol`), as a
    /// balancer would.
    pub proxy_protocol: Option<crate::proxy_header::ProxyVersion>,
}

/// Memory of one watched process in `idle` mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemReport {
    pub pss_kib_per_session: f64,
    pub rss_kib_per_session: f64,
    /// Open descriptors with the sessions open, and before connecting.
    pub fds: u64,
    pub fds_before: u64,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub mode: Mode,
    pub protocol: Protocol,
    pub conns: usize,
    pub rate: Option<f64>,
    /// Length of the measured phase (for `idle`: the time to open the sessions).
    pub seconds: f64,
    /// Successful operations (for `idle`: sessions opened).
    pub ops: u64,
    pub errors: u64,
    /// p50, p99 and p99.9 latency in microseconds.
    pub latency_us: [u32; 3],
    /// CPU seconds of each `--pid` over the measured phase, in `--pid` order.
    pub cpu: Vec<(u32, f64)>,
    /// CPU seconds of this process over the measured phase.
    pub client_cpu: f64,
    /// Cores this process may use.
    pub cores: usize,
    /// Payload bytes moved (session and bulk).
    pub bytes: Option<u64>,
    /// Memory per session of each `--pid` (idle).
    pub mem: Vec<(u32, MemReport)>,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// What the first TLS connection negotiated (version, suite, group).
    pub tls: Option<String>,
    /// Connections whose TLS session was resumed (`--resume`).
    pub tls_resumed: u64,
}

impl Report {
    pub fn ops_per_s(&self) -> f64 {
        ratio(self.ops as f64, self.seconds)
    }

    /// CPU microseconds per operation.
    fn us_per_op(&self, seconds: f64) -> f64 {
        ratio(seconds * 1e6, self.ops as f64)
    }

    /// This process's CPU time as a share of all the cores it may use.
    pub fn client_cpu_share(&self) -> f64 {
        ratio(self.client_cpu, self.seconds * self.cores as f64)
    }

    pub fn mb_per_s(&self) -> Option<f64> {
        self.bytes.map(|bytes| ratio(bytes as f64 / 1e6, self.seconds))
    }

    /// A short table for people.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let rate = match self.rate {
            Some(rate) => format!("open loop at {rate}/s"),
            None => "closed loop".into(),
        };
        let phase = if self.mode == Mode::Idle { " to open" } else { "" };
        let _ = writeln!(
            out,
            "load        {} {}, {} conn(s), {rate}, {:.3} s{phase}",
            self.mode.name(),
            protocol_name(self.protocol),
            self.conns,
            self.seconds
        );
        let unit = if self.mode == Mode::Idle { "sessions" } else { "ops" };
        let _ = writeln!(
            out,
            "{unit:<11} {} ({:.1}/s), {} error(s)",
            self.ops,
            self.ops_per_s(),
            self.errors
        );
        let [p50, p99, p999] = self.latency_us;
        let _ = writeln!(out, "latency us  p50 {p50}  p99 {p99}  p99.9 {p999}");
        if let Some(mb) = self.mb_per_s() {
            let _ = writeln!(out, "throughput  {mb:.1} MB/s");
        }
        for (pid, seconds) in &self.cpu {
            let _ = writeln!(
                out,
                "{:<11} {seconds:.2} s, {:.1} us/op",
                format!("cpu {pid}"),
                self.us_per_op(*seconds)
            );
        }
        let _ = writeln!(
            out,
            "client cpu  {:.2} s, {:.1}% of {} core(s)",
            self.client_cpu,
            self.client_cpu_share() * 100.0,
            self.cores
        );
        for (pid, mem) in &self.mem {
            let _ = writeln!(
                out,
                "{:<11} pss {:.1} KiB/session, rss {:.1} KiB/session, {} fds (before {})",
                format!("mem {pid}"),
                mem.pss_kib_per_session,
                mem.rss_kib_per_session,
                mem.fds,
                mem.fds_before
            );
        }
        out.pop();
        out
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        let cpu = self
            .cpu
            .iter()
            .map(|(pid, seconds)| {
                format!(
                    "\"{pid}\":{{\"s\":{},\"us_per_op\":{}}}",
                    json_number(*seconds, 2),
                    json_number(self.us_per_op(*seconds), 1)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let [p50, p99, p999] = self.latency_us;
        let mut out = format!(
            "{{\"mode\":\"{}\",\"protocol\":\"{}\",\"conns\":{},\"rate\":{},\"seconds\":{},\"ops\":{},\
             \"ops_per_s\":{},\"errors\":{},\"latency_us\":{{\"p50\":{p50},\"p99\":{p99},\"p999\":{p999}}},\
             \"cpu\":{{{cpu}}},\"client_cpu_s\":{},\"client_cpu_share\":{}",
            self.mode.name(),
            protocol_name(self.protocol),
            self.conns,
            self.rate.map_or("null".into(), |rate| json_number(rate, 3)),
            json_number(self.seconds, 6),
            self.ops,
            json_number(self.ops_per_s(), 1),
            self.errors,
            json_number(self.client_cpu, 2),
            json_number(self.client_cpu_share(), 4),
        );
        if let Some(mb) = self.mb_per_s() {
            let _ = write!(out, ",\"mb_per_s\":{}", json_number(mb, 3));
        }
        if let Some(tls) = &self.tls {
            let _ = write!(out, ",\"tls\":\"{tls}\",\"tls_resumed\":{}", self.tls_resumed);
        }
        if self.mode == Mode::Idle {
            let mem = self
                .mem
                .iter()
                .map(|(pid, mem)| {
                    format!(
                        "\"{pid}\":{{\"pss_kib_per_session\":{},\"rss_kib_per_session\":{},\"fds\":{},\"fds_before\":{}}}",
                        json_number(mem.pss_kib_per_session, 2),
                        json_number(mem.rss_kib_per_session, 2),
                        mem.fds,
                        mem.fds_before
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let _ = write!(out, ",\"mem\":{{{mem}}}");
        }
        out.push('}');
        out
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The nearest-rank `q` quantile of `sorted` (0 when empty).
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A dot-safe message of `size` bytes (a little more if `size` is smaller
/// than the header): CRLF lines of at most 78 characters, none starting with `.`.
pub fn smtp_body(size: usize) -> Vec<u8> {
    let mut body = b"From: <a@b>\r\nTo: <c@d>\r\nSubject: postern-bench load\r\n\r\n".to_vec();
    let mut line = 0usize;
    while body.len() + 2 <= size {
        let width = (size - body.len() - 2).min(76);
        body.extend((0..width).map(|col| b'a' + ((line + col) % 26) as u8));
        body.extend_from_slice(b"\r\n");
        line += 1;
    }
    if body.len() < size && line > 0 {
        // One byte short: widen the last body line (it starts with a letter or is empty).
        let at = body.len() - 2;
        body.insert(at, b'z');
    }
    body
}

/// The bytes each slot sends, made once.
struct Script {
    protocol: Protocol,
    /// IMAP: the LOGIN line; POP3: USER; SMTP: EHLO.
    login1: Vec<u8>,
    /// POP3: PASS; SMTP: AUTH PLAIN; IMAP: unused.
    login2: Vec<u8>,
    /// IMAP: the FETCH line; POP3: RETR; SMTP: the message, dot-encoded.
    op: Vec<u8>,
    /// Payload bytes of one SMTP message.
    body_bytes: u64,
}

impl Script {
    fn new(config: &Config) -> Result<Script, String> {
        let (user, pass) = (&config.user[..], &config.pass[..]);
        let mut script = Script {
            protocol: config.protocol,
            login1: Vec::new(),
            login2: Vec::new(),
            op: Vec::new(),
            body_bytes: 0,
        };
        match config.protocol {
            Protocol::Imap => {
                script.login1 = [&b"a LOGIN "[..], &quoted(user)?, b" ", &quoted(pass)?, b"\r\n"].concat();
                script.op = format!("f FETCH {} BODY[]\r\n", config.msg).into_bytes();
            }
            Protocol::Pop3 => {
                if [user, pass]
                    .iter()
                    .any(|s| s.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)))
                {
                    return Err("POP3 user names and passwords cannot contain CR, LF or NUL".into());
                }
                script.login1 = [&b"USER "[..], user, b"\r\n"].concat();
                script.login2 = [&b"PASS "[..], pass, b"\r\n"].concat();
                script.op = format!("RETR {}\r\n", config.msg).into_bytes();
            }
            Protocol::Smtp => {
                script.login1 = b"EHLO load.example\r\n".to_vec();
                let plain = [&b"\0"[..], user, b"\0", pass].concat();
                script.login2 = format!("AUTH PLAIN {}\r\n", base64::encode(&plain)).into_bytes();
                let body = smtp_body(config.msg_bytes);
                script.body_bytes = body.len() as u64;
                script.op = body;
                script.op.extend_from_slice(b".\r\n");
            }
        }
        Ok(script)
    }
}

fn show(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let mut text = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
    if line.len() > 200 {
        text.push_str("...");
    }
    text
}

fn io_error(what: &str, e: io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("{what}: timed out"),
        _ => format!("{what}: {e}"),
    }
}

/// One client connection.
struct Client {
    reader: BufReader<ClientStream>,
    writer: BufWriter<ClientStream>,
    line: Vec<u8>,
    /// Literal buffer, allocated on first use.
    buf: Vec<u8>,
}

impl Client {
    /// Connects in plain text.
    fn connect(addr: &SocketAddr, timeout: Duration) -> Result<Client, String> {
        let stream = tls::connect_tcp(addr, timeout).map_err(|e| io_error("connect", e))?;
        Client::over(ClientStream::Plain(stream))
    }

    /// Connects and, with implicit TLS, makes the handshake.
    /// With `--proxy-protocol`, the header goes first, before TLS.
    fn open(addr: &SocketAddr, config: &Config) -> Result<Client, String> {
        let mut stream = tls::connect_tcp(addr, config.timeout).map_err(|e| io_error("connect", e))?;
        if let Some(version) = config.proxy_protocol {
            crate::proxy_header::send(version, &mut stream).map_err(|e| io_error("PROXY header", e))?;
        }
        match &config.tls {
            Some(tls) if !config.starttls => Client::over(ClientStream::start_tls(stream, tls)?),
            _ => Client::over(ClientStream::Plain(stream)),
        }
    }

    fn over(stream: ClientStream) -> Result<Client, String> {
        let writer = stream.try_clone().map_err(|e| format!("socket setup: {e}"))?;
        Ok(Client {
            reader: BufReader::with_capacity(READ_BUFFER, stream),
            writer: BufWriter::with_capacity(READ_BUFFER, writer),
            line: Vec::with_capacity(256),
            buf: Vec::new(),
        })
    }

    /// Makes the TLS handshake on a plain connection after the server
    /// agreed to STARTTLS. Bytes the server sent after its agreement would
    /// be plaintext injected before TLS: they are an error.
    fn start_tls(self, tls: &ClientTls) -> Result<Client, String> {
        if !self.reader.buffer().is_empty() {
            return Err("the server sent data after agreeing to start TLS".into());
        }
        match self.reader.into_inner() {
            ClientStream::Plain(tcp) => Client::over(ClientStream::start_tls(tcp, tls)?),
            ClientStream::Tls(_) => Err("STARTTLS inside TLS".into()),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| io_error("write", e))
    }

    /// Reads one CRLF-terminated line into `self.line`, at most `limit` bytes.
    fn read_line_max(&mut self, limit: u64) -> Result<(), String> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.line)
            .map_err(|e| io_error("read", e))?;
        if n == 0 {
            return Err("connection closed by the server".into());
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(format!("bad or overlong response line: {}", show(&self.line)));
        }
        Ok(())
    }

    fn read_line(&mut self) -> Result<(), String> {
        self.read_line_max(MAX_LINE)
    }

    /// Reads a line that must start with `prefix`.
    fn expect(&mut self, prefix: &[u8], what: &str) -> Result<(), String> {
        self.read_line()?;
        if self.line.starts_with(prefix) {
            Ok(())
        } else {
            Err(format!("{what}: server answered {}", show(&self.line)))
        }
    }

    /// Reads an SMTP reply (all its lines) whose code must be `code`.
    fn smtp_reply(&mut self, code: &[u8; 3], what: &str) -> Result<(), String> {
        loop {
            self.read_line()?;
            if self.line.len() < 5 || !self.line.starts_with(code) {
                return Err(format!("{what}: server answered {}", show(&self.line)));
            }
            match self.line[3] {
                b' ' | b'\r' => return Ok(()),
                b'-' => {}
                _ => return Err(format!("{what}: bad reply line {}", show(&self.line))),
            }
        }
    }

    /// Reads IMAP responses up to the one tagged `tag`, which must be OK.
    /// Literals are read into the reusable buffer; returns their total size.
    fn imap_tagged(&mut self, tag: u8, what: &str) -> Result<u64, String> {
        let mut bytes = 0;
        loop {
            self.read_line()?;
            if self.line.len() >= 2 && self.line[0] == tag && self.line[1] == b' ' {
                let rest = &self.line[2..];
                if rest.len() >= 4 && rest[..2].eq_ignore_ascii_case(b"OK") && matches!(rest[2], b' ' | b'\r') {
                    return Ok(bytes);
                }
                return Err(format!("{what}: server answered {}", show(&self.line)));
            }
            if let Some(size) = literal_size(&self.line) {
                self.read_literal(size)?;
                bytes += size;
            }
        }
    }

    fn read_literal(&mut self, size: u64) -> Result<(), String> {
        if self.buf.is_empty() {
            self.buf = vec![0; LITERAL_CHUNK];
        }
        let mut done = 0u64;
        while done < size {
            let chunk = (size - done).min(self.buf.len() as u64) as usize;
            self.reader
                .read_exact(&mut self.buf[..chunk])
                .map_err(|e| io_error("reading a literal", e))?;
            done += chunk as u64;
        }
        Ok(())
    }

    /// Reads a POP3 multi-line block after its `+OK` line, up to `.` CRLF;
    /// returns the bytes read before the final line.
    fn pop3_block(&mut self) -> Result<u64, String> {
        let mut bytes = 0;
        loop {
            self.read_line_max(u64::MAX)?;
            if self.line == b".\r\n" {
                return Ok(bytes);
            }
            bytes += self.line.len() as u64;
        }
    }

    /// Over TLS, says goodbye as a mail client does after its logout
    /// reply. A server that sends its own close_notify and then waits for
    /// ours (nginx) would otherwise hold its alert behind Nagle until our
    /// delayed ACK, 40 ms later, and the bench would measure that wait.
    fn close_notify(&mut self) {
        if let ClientStream::Tls(tls) = self.writer.get_ref() {
            let mut tls = tls.lock();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }

    /// Reads until the server closes the connection (or a read fails), so
    /// that the server side keeps the TIME_WAIT and client ports are not used up.
    fn drain(mut self) {
        let mut rest = [0u8; 512];
        while matches!(self.reader.read(&mut rest), Ok(n) if n > 0) {}
    }
}

/// Connects (with TLS as configured) and reads the greeting; with
/// STARTTLS, upgrades the connection after it.
fn connect(addr: &SocketAddr, config: &Config) -> Result<Client, String> {
    let mut client = Client::open(addr, config)?;
    match config.protocol {
        Protocol::Imap => {
            client.read_line()?;
            if !client.line.starts_with(b"* OK") {
                return Err(format!("unexpected greeting: {}", show(&client.line)));
            }
        }
        Protocol::Pop3 => client.expect(b"+OK", "greeting")?,
        Protocol::Smtp => client.smtp_reply(b"220", "greeting")?,
    }
    let tls = match &config.tls {
        Some(tls) if config.starttls => tls,
        _ => return Ok(client),
    };
    match config.protocol {
        Protocol::Imap => {
            client.send(b"t STARTTLS\r\n")?;
            client.imap_tagged(b't', "STARTTLS")?;
        }
        Protocol::Pop3 => {
            client.send(b"STLS\r\n")?;
            client.expect(b"+OK", "STLS")?;
        }
        Protocol::Smtp => {
            client.send(b"EHLO load.example\r\n")?;
            client.smtp_reply(b"250", "EHLO")?;
            client.send(b"STARTTLS\r\n")?;
            client.smtp_reply(b"220", "STARTTLS")?;
        }
    }
    client.start_tls(tls)
}

/// Connects, reads the greeting and logs in.
fn login(addr: &SocketAddr, script: &Script, config: &Config) -> Result<Client, String> {
    let mut client = connect(addr, config)?;
    match script.protocol {
        Protocol::Imap => {
            client.send(&script.login1)?;
            client.imap_tagged(b'a', "LOGIN")?;
        }
        Protocol::Pop3 => {
            client.send(&script.login1)?;
            client.expect(b"+OK", "USER")?;
            client.send(&script.login2)?;
            client.expect(b"+OK", "PASS")?;
        }
        Protocol::Smtp => {
            client.send(&script.login1)?;
            client.smtp_reply(b"250", "EHLO")?;
            client.send(&script.login2)?;
            client.smtp_reply(b"235", "AUTH PLAIN")?;
        }
    }
    Ok(client)
}

/// Logs out and waits for the server to close the connection.
fn logout(mut client: Client, protocol: Protocol) -> Result<(), String> {
    match protocol {
        Protocol::Imap => {
            client.send(b"b LOGOUT\r\n")?;
            client.imap_tagged(b'b', "LOGOUT")?;
        }
        Protocol::Pop3 => {
            client.send(b"QUIT\r\n")?;
            client.expect(b"+OK", "QUIT")?;
        }
        Protocol::Smtp => {
            client.send(b"QUIT\r\n")?;
            client.smtp_reply(b"221", "QUIT")?;
        }
    }
    client.close_notify();
    client.drain();
    Ok(())
}

/// Logs in and, for IMAP, selects INBOX: ready for [`operation`].
fn open_session(addr: &SocketAddr, script: &Script, config: &Config) -> Result<Client, String> {
    let mut client = login(addr, script, config)?;
    if script.protocol == Protocol::Imap {
        client.send(b"s SELECT INBOX\r\n")?;
        client.imap_tagged(b's', "SELECT")?;
    }
    Ok(client)
}

/// One session operation; returns the payload bytes moved.
fn operation(client: &mut Client, script: &Script) -> Result<u64, String> {
    match script.protocol {
        Protocol::Imap => {
            client.send(&script.op)?;
            let bytes = client.imap_tagged(b'f', "FETCH")?;
            if bytes == 0 {
                return Err("FETCH: no message literal".into());
            }
            Ok(bytes)
        }
        Protocol::Pop3 => {
            client.send(&script.op)?;
            client.expect(b"+OK", "RETR")?;
            client.pop3_block()
        }
        Protocol::Smtp => {
            client.send(b"MAIL FROM:<a@b>\r\n")?;
            client.smtp_reply(b"250", "MAIL")?;
            client.send(b"RCPT TO:<c@d>\r\n")?;
            client.smtp_reply(b"250", "RCPT")?;
            client.send(b"DATA\r\n")?;
            client.smtp_reply(b"354", "DATA")?;
            client.send(&script.op)?;
            client.smtp_reply(b"250", "message")?;
            Ok(script.body_bytes)
        }
    }
}

/// Reads until the server closes; a reset counts as a close (a server that
/// closes with unread input resets). Fails when the server stays silent.
fn await_close(mut client: Client) -> Result<(), String> {
    let mut rest = [0u8; 4096];
    loop {
        match client.reader.read(&mut rest) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err("the server kept the session open".into())
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Writes `bytes`, taking a reset or broken pipe as the server's close.
fn send_lossy(client: &mut Client, bytes: &[u8]) {
    let _ = client.send(bytes);
}

/// One misbehaving client; `k` is the slot's operation number.
fn bad(addr: &SocketAddr, shared: &Shared, kind: BadKind, k: u64, timeout: Duration) -> Result<(), String> {
    let protocol = shared.script.protocol;
    match kind {
        BadKind::WrongPass => {
            let wrong = &shared.wrong;
            let mut client = connect(addr, &shared.config)?;
            match protocol {
                Protocol::Imap => {
                    client.send(&wrong.login1)?;
                    loop {
                        client.read_line()?;
                        if client.line.starts_with(b"a ") {
                            break;
                        }
                    }
                    if !client.line.starts_with(b"a NO ") {
                        return Err(format!("wrong password: server answered {}", show(&client.line)));
                    }
                }
                Protocol::Pop3 => {
                    client.send(&wrong.login1)?;
                    client.expect(b"+OK", "USER")?;
                    client.send(&wrong.login2)?;
                    client.expect(b"-ERR", "wrong password")?;
                }
                Protocol::Smtp => {
                    client.send(&wrong.login1)?;
                    client.smtp_reply(b"250", "EHLO")?;
                    client.send(&wrong.login2)?;
                    client.smtp_reply(b"535", "wrong password")?;
                }
            }
            await_close(client)
        }
        BadKind::Garbage => {
            let mut client = connect(addr, &shared.config)?;
            let mut junk = Vec::new();
            for i in 0..16u64 {
                let x = (k * 16 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                junk.extend(x.to_le_bytes().iter().map(|b| if *b == b'\n' { b'?' } else { *b }));
                junk.extend_from_slice(b" %\x01\x7f junk\r\n");
            }
            send_lossy(&mut client, &junk);
            await_close(client)
        }
        BadKind::LongLine => {
            let mut client = connect(addr, &shared.config)?;
            send_lossy(&mut client, &vec![b'a'; 64 * 1024]);
            await_close(client)
        }
        BadKind::Vanish => {
            if k % 2 == 1 {
                let mut client = connect(addr, &shared.config)?;
                send_lossy(&mut client, &shared.script.login1[..shared.script.login1.len() / 2]);
            } else {
                Client::connect(addr, timeout)?;
            }
            Ok(())
        }
        BadKind::Slow => {
            let script = &shared.script;
            let mut client = connect(addr, &shared.config)?;
            for byte in &script.login1 {
                client.send(std::slice::from_ref(byte))?;
                thread::sleep(Duration::from_millis(10));
            }
            match protocol {
                Protocol::Imap => {
                    client.imap_tagged(b'a', "LOGIN")?;
                }
                Protocol::Pop3 => {
                    client.expect(b"+OK", "USER")?;
                    client.send(&script.login2)?;
                    client.expect(b"+OK", "PASS")?;
                }
                Protocol::Smtp => {
                    client.smtp_reply(b"250", "EHLO")?;
                    client.send(&script.login2)?;
                    client.smtp_reply(b"235", "AUTH PLAIN")?;
                }
            }
            logout(client, protocol)
        }
    }
}

/// State shared by all slots.
struct Shared {
    config: Config,
    addr: SocketAddr,
    script: Script,
    /// The same login with a wrong password (`bad-wrong-pass`).
    wrong: Script,
    /// All slots have done their setup.
    ready: Barrier,
    /// The measured phase starts; `t0` is set.
    go: Barrier,
    /// All slots have finished the measured phase.
    stopped: Barrier,
    t0: OnceLock<Instant>,
    /// Limits the slots setting up at once.
    setup: Permits,
}

/// What one slot measured.
#[derive(Default)]
struct SlotResult {
    samples: Vec<u32>,
    errors: u64,
    bytes: u64,
    first_error: Option<String>,
    tls: Option<String>,
    tls_resumed: u64,
}

impl SlotResult {
    fn sample(&mut self, start: Instant, end: Instant) {
        let micros = end.saturating_duration_since(start).as_micros();
        self.samples.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    fn note_tls(&mut self, client: &Client) {
        let stream = client.reader.get_ref();
        if self.tls.is_none() {
            self.tls = stream.describe();
        }
        if stream.resumed() {
            self.tls_resumed += 1;
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

fn slot(index: usize, shared: &Shared) -> SlotResult {
    let config = &shared.config;
    let (addr, script, timeout) = (&shared.addr, &shared.script, config.timeout);
    let mut result = SlotResult {
        samples: Vec::with_capacity(if config.mode == Mode::Idle { 1 } else { 1024 }),
        ..SlotResult::default()
    };
    let mut session = None;
    match config.mode {
        Mode::Login | Mode::Handshake | Mode::Bad(_) => {}
        Mode::Session | Mode::Bulk => match shared.setup.run(|| open_session(addr, script, config)) {
            Ok(client) => {
                result.note_tls(&client);
                session = Some(client);
            }
            Err(e) => result.error(e),
        },
        Mode::Idle => {
            let outcome = shared.setup.run(|| {
                let start = Instant::now();
                login(addr, script, config).map(|client| (start, Instant::now(), client))
            });
            match outcome {
                Ok((start, end, client)) => {
                    result.sample(start, end);
                    result.note_tls(&client);
                    session = Some(client);
                }
                Err(e) => result.error(e),
            }
        }
    }
    shared.ready.wait();
    shared.go.wait();
    if config.mode != Mode::Idle {
        let t0 = *shared.t0.get().expect("t0 is set before go");
        let deadline = t0 + config.duration;
        let stride = config.conns as f64;
        let mut k = 0u64;
        loop {
            let start = match config.rate {
                Some(rate) => {
                    let at = t0 + Duration::from_secs_f64((k as f64 * stride + index as f64) / rate);
                    if at >= deadline {
                        break;
                    }
                    let now = Instant::now();
                    if at > now {
                        thread::sleep(at - now);
                    }
                    at
                }
                None => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    now
                }
            };
            k += 1;
            let outcome = match config.mode {
                Mode::Login => login(addr, script, config).and_then(|client| {
                    let end = Instant::now();
                    result.note_tls(&client);
                    logout(client, script.protocol).map(|()| (end, 0))
                }),
                Mode::Handshake => connect(addr, config).and_then(|client| {
                    let end = Instant::now();
                    result.note_tls(&client);
                    logout(client, script.protocol).map(|()| (end, 0))
                }),
                Mode::Bad(kind) => bad(addr, shared, kind, k, timeout).map(|()| (Instant::now(), 0)),
                _ => {
                    let client = match session.take() {
                        Some(client) => Ok(client),
                        None => open_session(addr, script, config),
                    };
                    client.and_then(|mut client| {
                        let bytes = operation(&mut client, script)?;
                        let end = Instant::now();
                        session = Some(client);
                        Ok((end, bytes))
                    })
                }
            };
            match outcome {
                Ok((end, bytes)) => {
                    result.sample(start, end);
                    result.bytes += bytes;
                }
                Err(e) => {
                    result.error(e);
                    if config.rate.is_none() {
                        thread::sleep(ERROR_PAUSE);
                    }
                }
            }
        }
    }
    shared.stopped.wait();
    if let Some(client) = session {
        let _ = logout(client, script.protocol);
    }
    result
}

/// Memory and descriptors of each watched process.
fn mem_sample(pids: &[u32]) -> Result<Vec<(Memory, u64)>, String> {
    pids.iter()
        .map(|&pid| Ok((procstat::memory(pid)?, procstat::fd_count(pid)?)))
        .collect()
}

/// Runs the load. On an error, threads still running are abandoned: the
/// caller is expected to exit.
pub fn run(config: Config) -> Result<Report, String> {
    if config.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if let Some(rate) = config.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err("--rate must be a positive number".into());
        }
    }
    if config.mode == Mode::Bulk && config.protocol != Protocol::Imap {
        return Err("--mode bulk needs --protocol imap".into());
    }
    let addr = config
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("--addr {}: {e}", config.addr))?
        .next()
        .ok_or_else(|| format!("--addr {}: no address", config.addr))?;
    let script = Script::new(&config)?;
    let mut wrong_config = config.clone();
    wrong_config.pass.extend_from_slice(b"-wrong");
    let wrong = Script::new(&wrong_config)?;
    let ticks = procstat::clock_ticks() as f64;
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let idle = config.mode == Mode::Idle;
    // Fail before connecting when a pid cannot be watched; for idle this is
    // also the "before" sample.
    let mut cpu_before = procstat::cpu_sample(&config.pids)?;
    let mem_before = if idle { mem_sample(&config.pids)? } else { Vec::new() };
    let conns = config.conns;
    let shared = Arc::new(Shared {
        addr,
        script,
        wrong,
        ready: Barrier::new(conns + 1),
        go: Barrier::new(conns + 1),
        stopped: Barrier::new(conns + 1),
        t0: OnceLock::new(),
        setup: Permits {
            free: Mutex::new(SETUP_AT_ONCE),
            changed: Condvar::new(),
        },
        config,
    });
    let open_start = Instant::now();
    let mut threads = Vec::with_capacity(conns);
    for index in 0..conns {
        let shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("load-{index}"))
            .stack_size(STACK)
            .spawn(move || slot(index, &shared))
            .map_err(|e| format!("cannot start thread {}: {e}", index + 1))?;
        threads.push(thread);
    }
    shared.ready.wait();
    let (seconds, cpu_after, mem_after);
    if idle {
        let open_end = Instant::now();
        cpu_after = procstat::cpu_sample(&shared.config.pids)?;
        mem_after = mem_sample(&shared.config.pids)?;
        seconds = open_end.duration_since(open_start).as_secs_f64();
        let _ = shared.t0.set(open_end);
        shared.go.wait();
        thread::sleep(shared.config.duration);
        shared.stopped.wait();
    } else {
        cpu_before = procstat::cpu_sample(&shared.config.pids)?;
        let t0 = Instant::now();
        let _ = shared.t0.set(t0);
        shared.go.wait();
        shared.stopped.wait();
        seconds = t0.elapsed().as_secs_f64();
        cpu_after = procstat::cpu_sample(&shared.config.pids)?;
        mem_after = Vec::new();
    }
    let mut samples = Vec::new();
    let (mut errors, mut bytes, mut first_error) = (0, 0, None);
    let (mut tls, mut tls_resumed) = (None, 0);
    for (index, thread) in threads.into_iter().enumerate() {
        let result = thread
            .join()
            .map_err(|_| format!("connection slot {} panicked", index + 1))?;
        if samples.is_empty() {
            samples = result.samples;
        } else {
            samples.extend_from_slice(&result.samples);
        }
        errors += result.errors;
        bytes += result.bytes;
        tls_resumed += result.tls_resumed;
        if tls.is_none() {
            tls = result.tls;
        }
        if first_error.is_none() {
            first_error = result
                .first_error
                .map(|e| format!("connection slot {}: {e}", index + 1));
        }
    }
    samples.sort_unstable();
    let ops = samples.len() as u64;
    let config = &shared.config;
    let cpu = config
        .pids
        .iter()
        .zip(cpu_before.0.iter().zip(&cpu_after.0))
        .map(|(&pid, (b, a))| (pid, a.saturating_sub(*b) as f64 / ticks))
        .collect();
    let mem = config
        .pids
        .iter()
        .zip(mem_before.iter().zip(&mem_after))
        .map(|(&pid, ((mb, fb), (ma, fa)))| {
            let per = |after: u64, before: u64| ratio(after as f64 - before as f64, ops as f64);
            let report = MemReport {
                pss_kib_per_session: per(ma.pss_kib, mb.pss_kib),
                rss_kib_per_session: per(ma.rss_kib, mb.rss_kib),
                fds: *fa,
                fds_before: *fb,
            };
            (pid, report)
        })
        .collect();
    Ok(Report {
        mode: config.mode,
        protocol: config.protocol,
        conns: config.conns,
        rate: config.rate,
        seconds,
        ops,
        errors,
        latency_us: [
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            percentile(&samples, 0.999),
        ],
        cpu,
        client_cpu: cpu_after.1.saturating_sub(cpu_before.1) as f64 / ticks,
        cores,
        bytes: matches!(config.mode, Mode::Session | Mode::Bulk).then_some(bytes),
        mem,
        first_error,
        tls,
        tls_resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.999), 7);
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&v, 1.0), 1000);
    }

    #[test]
    fn smtp_bodies_are_dot_safe_and_sized() {
        for size in [0, 10, 60, 61, 62, 63, 200, 10240, 10241] {
            let body = smtp_body(size);
            if size >= 57 {
                assert_eq!(body.len(), size, "{size}");
            }
            assert!(body.ends_with(b"\r\n"));
            assert!(memchr::memmem::find(&body, b"\r\n.").is_none());
            assert_eq!(crate::message::dot_stuff(&body), body);
        }
    }

    #[test]
    fn report_lines() {
        let report = Report {
            mode: Mode::Session,
            protocol: Protocol::Pop3,
            conns: 2,
            rate: None,
            seconds: 2.0,
            ops: 1000,
            errors: 0,
            latency_us: [100, 900, 2000],
            cpu: vec![(42, 0.5)],
            client_cpu: 1.0,
            cores: 2,
            bytes: Some(4_000_000),
            mem: Vec::new(),
            first_error: None,
            tls: None,
            tls_resumed: 0,
        };
        assert_eq!(
            report.json(),
            "{\"mode\":\"session\",\"protocol\":\"pop3\",\"conns\":2,\"rate\":null,\"seconds\":2.000000,\
             \"ops\":1000,\"ops_per_s\":500.0,\"errors\":0,\"latency_us\":{\"p50\":100,\"p99\":900,\"p999\":2000},\
             \"cpu\":{\"42\":{\"s\":0.50,\"us_per_op\":500.0}},\"client_cpu_s\":1.00,\"client_cpu_share\":0.2500,\
             \"mb_per_s\":2.000}"
        );
        let human = report.human();
        assert!(human.contains("ops         1000 (500.0/s), 0 error(s)"), "{human}");
        assert!(human.contains("throughput  2.0 MB/s"), "{human}");
        assert!(human.contains("cpu 42      0.50 s, 500.0 us/op"), "{human}");
        let idle = Report {
            mode: Mode::Idle,
            rate: Some(100.0),
            bytes: None,
            mem: vec![(
                42,
                MemReport {
                    pss_kib_per_session: 12.5,
                    rss_kib_per_session: 20.0,
                    fds: 12,
                    fds_before: 10,
                },
            )],
            ..report
        };
        let json = idle.json();
        assert!(json.contains("\"rate\":100.000,"), "{json}");
        assert!(!json.contains("mb_per_s"), "{json}");
        assert!(
            json.ends_with(
                ",\"mem\":{\"42\":{\"pss_kib_per_session\":12.50,\"rss_kib_per_session\":20.00,\"fds\":12,\"fds_before\":10}}}"
            ),
            "{json}"
        );
    }
}
