//! `postern-bench fetch`: an IMAP client that measures how fast a message
//! crosses a relay.
//!
//! Each connection runs on its own thread with blocking I/O: it logs in,
//! selects INBOX, waits for the start signal, fetches one message `count`
//! times and logs out. The clock and the CPU samples of the watched
//! processes cover the fetches only: they start just before the first
//! FETCH of any connection and stop when the last connection has read its
//! last tagged OK.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::message::seeded_message;
pub use crate::procstat::{clock_ticks, parse_stat_ticks, process_ticks};
use crate::procstat::{cpu_sample, json_number};
use crate::tls::{ClientStream, ClientTls};

/// Size of the reusable buffer a literal is read into.
pub const READ_CHUNK: usize = 1 << 20;
/// Longest response line accepted (the literal's bytes are not part of it).
const MAX_LINE: usize = 64 * 1024;
/// Capacity of the line reader; reads of a literal larger than this bypass it.
const LINE_BUFFER: usize = 64 * 1024;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// `IP:PORT` to connect to.
    pub addr: String,
    pub user: Vec<u8>,
    pub pass: Vec<u8>,
    /// Message sequence number to fetch.
    pub msg: u64,
    /// FETCHes per connection.
    pub count: u64,
    /// Parallel connections.
    pub conns: usize,
    /// Processes whose CPU time is reported.
    pub pids: Vec<u32>,
    /// Read and write timeout on every socket.
    pub timeout: Duration,
    /// Compare every fetched message with `seeded_message(msg, size)`.
    pub verify: bool,
    /// Speak TLS: from the first byte, or after STARTTLS with `starttls`.
    pub tls: Option<ClientTls>,
    pub starttls: bool,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub conns: usize,
    pub count: u64,
    /// Size of one fetched message.
    pub msg_bytes: u64,
    /// Payload bytes, i.e. literal bytes, over all connections.
    pub bytes: u64,
    pub seconds: f64,
    /// CPU seconds of each `--pid` during the fetches, in `--pid` order.
    pub cpu: Vec<(u32, f64)>,
    /// CPU seconds of this process during the fetches.
    pub client_cpu: f64,
}

impl Report {
    /// Throughput in MB/s, MB being 10^6 bytes.
    pub fn mb_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds / 1e6
        } else {
            0.0
        }
    }

    /// One line for people.
    pub fn human(&self) -> String {
        let mut line = format!(
            "fetch: {} conn(s) x {} x {} bytes = {} bytes in {:.3} s: {:.1} MB/s; cpu",
            self.conns,
            self.count,
            self.msg_bytes,
            self.bytes,
            self.seconds,
            self.mb_per_s()
        );
        for (pid, seconds) in &self.cpu {
            let _ = write!(line, " pid {pid} {seconds:.2} s,");
        }
        let _ = write!(line, " client {:.2} s", self.client_cpu);
        line
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        let cpu = self
            .cpu
            .iter()
            .map(|(pid, seconds)| format!("\"{pid}\":{}", json_number(*seconds, 2)))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{{\"mode\":\"fetch\",\"conns\":{},\"count\":{},\"msg_bytes\":{},\"bytes\":{},\"seconds\":{},\
             \"mb_per_s\":{},\"cpu\":{{{cpu}}},\"client_cpu\":{}}}",
            self.conns,
            self.count,
            self.msg_bytes,
            self.bytes,
            json_number(self.seconds, 6),
            json_number(self.mb_per_s(), 3),
            json_number(self.client_cpu, 2),
        )
    }
}

/// Writes `s` as an IMAP quoted string.
pub fn quoted(s: &[u8]) -> Result<Vec<u8>, String> {
    if s.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err("user names and passwords with CR, LF or NUL cannot be sent as quoted strings".into());
    }
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Ok(out)
}

/// The size of the literal that ends `line` (`... {123}\r\n`), if any.
pub fn literal_size(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}\r\n")?;
    let open = memchr::memrchr(b'{', body)?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn show(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let mut text = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
    if line.len() > 200 {
        text.push_str("...");
    }
    text
}

/// One client connection.
pub struct Connection {
    reader: BufReader<ClientStream>,
    writer: ClientStream,
    line: Vec<u8>,
    buf: Vec<u8>,
    timeout: Duration,
    /// Message number to check literals against, with `--verify`.
    verify: Option<usize>,
    /// The expected message, made when the first literal arrives.
    expect: Option<Vec<u8>>,
    /// Size of the last fetched literal.
    pub last_size: u64,
}

impl Connection {
    /// Connects and reads the greeting; with `tls`, speaks TLS from the
    /// first byte or, with `starttls`, after a STARTTLS following the greeting.
    /// With `verify: Some(n)`, every literal must be `seeded_message(n, size)`.
    pub fn open(
        addr: &str,
        timeout: Duration,
        verify: Option<usize>,
        tls: Option<&ClientTls>,
        starttls: bool,
    ) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let setup = |stream: &TcpStream| -> io::Result<()> {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))
        };
        setup(&stream).map_err(|e| format!("socket setup: {e}"))?;
        let stream = match tls {
            Some(tls) if !starttls => ClientStream::start_tls(stream, tls)?,
            _ => ClientStream::Plain(stream),
        };
        let mut conn = Connection::over(stream, timeout, verify)?;
        conn.read_line()?;
        if !(conn.line.starts_with(b"* OK") || conn.line.starts_with(b"* PREAUTH")) {
            return Err(format!("unexpected greeting: {}", show(&conn.line)));
        }
        if let (Some(tls), true) = (tls, starttls) {
            conn.command("t", b"STARTTLS").map_err(|e| format!("STARTTLS: {e}"))?;
            if !conn.reader.buffer().is_empty() {
                return Err("the server sent data after agreeing to start TLS".into());
            }
            let stream = match conn.reader.into_inner() {
                ClientStream::Plain(tcp) => ClientStream::start_tls(tcp, tls)?,
                ClientStream::Tls(_) => return Err("STARTTLS inside TLS".into()),
            };
            conn = Connection::over(stream, timeout, verify)?;
        }
        Ok(conn)
    }

    fn over(stream: ClientStream, timeout: Duration, verify: Option<usize>) -> Result<Connection, String> {
        let writer = stream.try_clone().map_err(|e| format!("socket setup: {e}"))?;
        Ok(Connection {
            reader: BufReader::with_capacity(LINE_BUFFER, stream),
            writer,
            line: Vec::new(),
            buf: vec![0; READ_CHUNK],
            timeout,
            verify,
            expect: None,
            last_size: 0,
        })
    }

    /// Reads one CRLF-terminated line into `self.line`.
    fn read_line(&mut self) -> Result<(), String> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut self.line)
            .map_err(|e| self.io_error("read", e))?;
        if n == 0 {
            return Err("connection closed by the server".into());
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(format!("bad or overlong response line: {}", show(&self.line)));
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer.write_all(bytes).map_err(|e| self.io_error("write", e))
    }

    fn io_error(&self, what: &str, e: io::Error) -> String {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("{what}: timed out after {} s", self.timeout.as_secs_f64())
            }
            _ => format!("{what}: {e}"),
        }
    }

    /// Reads a literal of `size` bytes into the reusable buffer; with
    /// `check` and `--verify`, compares it with the expected message.
    fn read_literal(&mut self, size: u64, check: bool) -> Result<(), String> {
        let expect = match self.verify {
            Some(n) if check => {
                let size = usize::try_from(size).map_err(|_| format!("literal of {size} bytes is too large"))?;
                match self.expect.take() {
                    Some(expect) if expect.len() == size => Some(expect),
                    _ => Some(seeded_message(n, size)),
                }
            }
            _ => None,
        };
        let mut done = 0u64;
        while done < size {
            let chunk = (size - done).min(self.buf.len() as u64) as usize;
            self.reader
                .read_exact(&mut self.buf[..chunk])
                .map_err(|e| self.io_error(&format!("reading a literal at byte {done} of {size}"), e))?;
            if let Some(expect) = &expect {
                let start = done as usize;
                if self.buf[..chunk] != expect[start..start + chunk] {
                    return Err(format!(
                        "literal differs from the expected message in bytes {start}..{}",
                        start + chunk
                    ));
                }
            }
            done += chunk as u64;
        }
        if expect.is_some() {
            self.expect = expect;
        }
        Ok(())
    }

    /// Sends `tag text` and reads the responses up to the tagged one, which
    /// must be OK. Untagged responses are skipped, literals included.
    pub fn command(&mut self, tag: &str, text: &[u8]) -> Result<(), String> {
        self.send(&[tag.as_bytes(), b" ", text, b"\r\n"].concat())?;
        self.until_tagged(tag, |_, _| Ok(false))
    }

    /// Reads responses up to the one tagged `tag`. A line that ends with a
    /// literal is offered to `on_literal(conn, size)` first; if it returns
    /// false the literal is read and dropped along with its continuation.
    fn until_tagged(
        &mut self,
        tag: &str,
        mut on_literal: impl FnMut(&mut Connection, u64) -> Result<bool, String>,
    ) -> Result<(), String> {
        loop {
            self.read_line()?;
            if let Some(rest) = self
                .line
                .strip_prefix(tag.as_bytes())
                .and_then(|r| r.strip_prefix(b" "))
            {
                if (rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"OK ")) || rest.eq_ignore_ascii_case(b"OK\r\n") {
                    return Ok(());
                }
                return Err(format!("server answered {}", show(&self.line)));
            }
            let mut size = literal_size(&self.line);
            while let Some(n) = size {
                if on_literal(self, n)? {
                    break;
                }
                self.read_literal(n, false)?;
                self.read_line()?;
                size = literal_size(&self.line);
            }
        }
    }

    /// `LOGIN "user" "pass"` then `SELECT INBOX`.
    pub fn login_select(&mut self, user: &[u8], pass: &[u8]) -> Result<(), String> {
        let login = [&b"LOGIN "[..], &quoted(user)?, b" ", &quoted(pass)?].concat();
        self.command("a", &login).map_err(|e| format!("LOGIN: {e}"))?;
        self.command("b", b"SELECT INBOX").map_err(|e| format!("SELECT: {e}"))
    }

    /// `tag FETCH msg BODY[]`: reads the one literal and returns its size.
    pub fn fetch(&mut self, tag: &str, msg: u64) -> Result<u64, String> {
        self.send(format!("{tag} FETCH {msg} BODY[]\r\n").as_bytes())?;
        let mut literals = 0u32;
        let mut bytes = 0u64;
        self.until_tagged(tag, |conn, size| {
            if !(conn.line.starts_with(b"* ") && memchr::memmem::find(&conn.line, b" FETCH (").is_some()) {
                return Ok(false);
            }
            conn.read_literal(size, true)?;
            conn.read_line()?;
            if conn.line != b")\r\n" {
                return Err(format!("expected \")\" after the message, got {}", show(&conn.line)));
            }
            literals += 1;
            bytes += size;
            conn.last_size = size;
            Ok(true)
        })
        .map_err(|e| format!("FETCH: {e}"))?;
        if literals != 1 {
            return Err(format!("FETCH {msg} returned {literals} messages, expected 1"));
        }
        Ok(bytes)
    }

    /// `LOGOUT`, then waits for the server to close.
    pub fn logout(&mut self) -> Result<(), String> {
        self.command("z", b"LOGOUT").map_err(|e| format!("LOGOUT: {e}"))?;
        let mut rest = [0u8; 256];
        let _ = self.reader.read(&mut rest);
        Ok(())
    }
}

/// Start line for the connections: `Some(true)` go, `Some(false)` give up.
struct Gate {
    state: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Gate {
    fn open(&self, go: bool) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(go);
        self.changed.notify_all();
    }

    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go) = *state {
                return go;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

enum Event {
    Ready,
    Done { bytes: u64, size: u64, end: Instant },
    Failed(usize, String),
}

fn connection_thread(index: usize, config: &Config, gate: &Gate, events: &mpsc::Sender<Event>) -> Result<(), String> {
    let fail = |e: String| {
        let _ = events.send(Event::Failed(index, e.clone()));
        e
    };
    let verify = match config.verify {
        true => Some(usize::try_from(config.msg).map_err(|_| fail("--msg is too large".into()))?),
        false => None,
    };
    let mut conn = Connection::open(
        &config.addr,
        config.timeout,
        verify,
        config.tls.as_ref(),
        config.starttls,
    )
    .map_err(fail)?;
    conn.login_select(&config.user, &config.pass).map_err(fail)?;
    let _ = events.send(Event::Ready);
    if !gate.wait() {
        return Ok(());
    }
    let mut bytes = 0;
    for k in 1..=config.count {
        bytes += conn.fetch(&format!("c{k}"), config.msg).map_err(fail)?;
    }
    let end = Instant::now();
    let _ = events.send(Event::Done {
        bytes,
        size: conn.last_size,
        end,
    });
    conn.logout()
}

/// Runs the benchmark. On an error, connections still open are abandoned:
/// the caller is expected to exit.
pub fn run(config: Config) -> Result<Report, String> {
    if config.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    let ticks = clock_ticks() as f64;
    // Fail before connecting when a pid cannot be watched.
    cpu_sample(&config.pids)?;
    let config = Arc::new(config);
    let gate = Arc::new(Gate {
        state: Mutex::new(None),
        changed: Condvar::new(),
    });
    let (events, inbox) = mpsc::channel();
    let mut threads = Vec::with_capacity(config.conns);
    for index in 0..config.conns {
        let (config, gate, events) = (Arc::clone(&config), Arc::clone(&gate), events.clone());
        let thread = thread::Builder::new()
            .name(format!("fetch-{index}"))
            .spawn(move || connection_thread(index, &config, &gate, &events))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        threads.push(thread);
    }
    drop(events);
    let failed = |gate: &Gate, index: usize, e: String| {
        gate.open(false);
        Err(format!("connection {}: {e}", index + 1))
    };
    for _ in 0..config.conns {
        match inbox.recv() {
            Ok(Event::Ready) => {}
            Ok(Event::Failed(index, e)) => return failed(&gate, index, e),
            Ok(Event::Done { .. }) | Err(_) => return failed(&gate, 0, "thread ended early".into()),
        }
    }
    let (before, client_before) = cpu_sample(&config.pids)?;
    let start = Instant::now();
    gate.open(true);
    let (mut bytes, mut size, mut end) = (0, 0, start);
    for _ in 0..config.conns {
        match inbox.recv() {
            Ok(Event::Done {
                bytes: b,
                size: s,
                end: e,
            }) => {
                bytes += b;
                size = s;
                end = end.max(e);
            }
            Ok(Event::Failed(index, e)) => return failed(&gate, index, e),
            Ok(Event::Ready) | Err(_) => return failed(&gate, 0, "thread ended early".into()),
        }
    }
    let (after, client_after) = cpu_sample(&config.pids)?;
    for (index, thread) in threads.into_iter().enumerate() {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("connection {}: {e}", index + 1)),
            Err(_) => return Err(format!("connection {}: thread panicked", index + 1)),
        }
    }
    let cpu = config
        .pids
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(&pid, (b, a))| (pid, a.saturating_sub(*b) as f64 / ticks))
        .collect();
    Ok(Report {
        conns: config.conns,
        count: config.count,
        msg_bytes: size,
        bytes,
        seconds: end.duration_since(start).as_secs_f64(),
        cpu,
        client_cpu: client_after.saturating_sub(client_before) as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_sizes() {
        assert_eq!(literal_size(b"* 1 FETCH (UID 1 BODY[] {5000}\r\n"), Some(5000));
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {0}\r\n"), Some(0));
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {}\r\n"), None);
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {12}\n"), None);
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {1x}\r\n"), None);
        assert_eq!(literal_size(b"* OK done\r\n"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted(b"bench").unwrap(), b"\"bench\"");
        assert_eq!(quoted(b"a\"b\\c d").unwrap(), b"\"a\\\"b\\\\c d\"");
        assert!(quoted(b"a\r\nb").is_err());
    }

    #[test]
    fn report_lines() {
        let report = Report {
            conns: 2,
            count: 3,
            msg_bytes: 1000,
            bytes: 6000,
            seconds: 0.5,
            cpu: vec![(42, 0.25), (7, 0.0)],
            client_cpu: 0.1,
        };
        assert_eq!(report.mb_per_s(), 0.012);
        assert_eq!(
            report.json(),
            "{\"mode\":\"fetch\",\"conns\":2,\"count\":3,\"msg_bytes\":1000,\"bytes\":6000,\"seconds\":0.500000,\
             \"mb_per_s\":0.012,\"cpu\":{\"42\":0.25,\"7\":0.00},\"client_cpu\":0.10}"
        );
        assert_eq!(
            report.human(),
            "fetch: 2 conn(s) x 3 x 1000 bytes = 6000 bytes in 0.500 s: 0.0 MB/s; cpu pid 42 0.25 s, pid 7 0.00 s, client 0.10 s"
        );
    }
}
