//! Starts Postern as shipped and its bench companions as real processes on
//! loopback, and speaks to them over real sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every read in a test gives up after this, so a broken proxy fails the
/// test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub fn postern_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postern"))
}

/// `postern-bench` is built into the same target directory by
/// `cargo test --workspace` (scripts/test.sh).
pub fn bench_bin() -> PathBuf {
    let path = postern_bin().with_file_name("postern-bench");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("postern-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped on drop.
pub struct Proc {
    child: Child,
    /// Lines of the child's stderr, as they arrive and all of them so far.
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
    /// The threads copying the child's output; joined by `wait_exit`, so the
    /// log is complete once the child has exited.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child process");
        let (tx, lines) = mpsc::channel();
        let mut readers = Vec::new();
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().expect("piped stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped stderr")),
        ] {
            let tx = tx.clone();
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    if tx.send(line).is_err() {
                        // Nobody waits for lines any more; keep collecting the log.
                    }
                }
            }));
        }
        Proc {
            child,
            lines,
            log,
            readers,
        }
    }

    /// Waits for an output line containing `needle` and returns it. The
    /// limit is for the whole wait: a child logging other lines without end
    /// must not keep a test waiting forever.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + 3 * IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no line with {needle:?}; output so far:\n{}", self.log()),
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait for child");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// Waits until the output holds `count` lines containing `needle`.
    pub fn wait_for_count(&self, needle: &str, count: usize) {
        while self.log().lines().filter(|l| l.contains(needle)).count() < count {
            if self.lines.recv_timeout(IO_TIMEOUT).is_err() {
                panic!(
                    "fewer than {count} lines with {needle:?}; output so far:\n{}",
                    self.log()
                );
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bench companion and the address it listens on.
pub struct Companion {
    pub proc: Proc,
    pub addr: SocketAddr,
}

pub fn start_bench(args: &[&str]) -> Companion {
    let (proc, line) = start_bench_any(args);
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("listening line")
        .parse()
        .expect("address");
    Companion { proc, addr }
}

/// Starts a companion and returns its `listening ...` line (any address form).
pub fn start_bench_any(args: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(bench_bin());
    cmd.args(args);
    let proc = Proc::spawn(cmd);
    let line = proc.wait_for("listening ");
    (proc, line)
}

/// The fake IMAP backend with `user:pass`, `messages` seeded messages of `size` bytes.
pub fn start_backend(users: &[&str], messages: usize, size: usize) -> Companion {
    let (m, s) = (messages.to_string(), size.to_string());
    let mut args = vec!["backend", "--messages", &m, "--msg-bytes", &s];
    for u in users {
        args.extend(["--user", u]);
    }
    start_bench(&args)
}

/// The auth server sending IMAP logins to `backend`; `extra` flags as given.
pub fn start_auth(users: &[&str], backend: SocketAddr, extra: &[&str]) -> Companion {
    let route = format!("imap={backend}");
    let mut args = vec!["auth", "--backend", &route];
    for u in users {
        args.extend(["--user", u]);
    }
    args.extend_from_slice(extra);
    start_bench(&args)
}

/// A port nothing listens on now: bound, then released.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An address that refuses connections for as long as the socket returned
/// lives: bound but not listening, so no other test can take the port
/// meanwhile (a port merely freed can be, and then it answers).
pub fn refusing_addr() -> (socket2::Socket, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// A running Postern with its config file.
pub struct Postern {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

/// Starts Postern on a free port with `mail_body` inside `mail { }` and a
/// server block listening on that port; waits for its start-up notice.
/// Postern binds every listener before that notice, so connecting cannot race.
pub fn start_postern(mail_body: &str) -> Postern {
    start_postern_with("error_log stderr info;", mail_body)
}

/// As `start_postern`, with `main` in the main context; `{dir}` in either is
/// replaced by the scratch directory. Without an `error_log` to stderr in
/// `main`, the start-up notice is not seen: don't.
pub fn start_postern_with(main: &str, mail_body: &str) -> Postern {
    start_postern_flags(main, mail_body, &[])
}

/// As `start_postern_with`, with command-line `flags` after `-c`.
pub fn start_postern_flags(main: &str, mail_body: &str, flags: &[&str]) -> Postern {
    start_postern_protocol("imap", main, mail_body, flags)
}

/// As `start_postern_flags` for a server of `protocol` (imap, pop3, smtp).
pub fn start_postern_protocol(protocol: &str, main: &str, mail_body: &str, flags: &[&str]) -> Postern {
    let dir = TempDir::new("postern");
    let port = free_port();
    let dir_text = dir.0.display().to_string();
    let (main, mail_body) = (main.replace("{dir}", &dir_text), mail_body.replace("{dir}", &dir_text));
    let workers = if main.contains("worker_processes") {
        ""
    } else {
        "worker_processes 2;\n"
    };
    let conf = format!(
        "{workers}{main}\nmail {{\n{mail_body}\n    server {{\n        listen 127.0.0.1:{port};\n        protocol {protocol};\n    }}\n}}\n"
    );
    let path = dir.path("postern.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&path).args(flags);
    let proc = Proc::spawn(cmd);
    proc.wait_for("started");
    Postern {
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    }
}

pub fn auth_http(auth: &Companion) -> String {
    format!("    auth_http {}/auth;", auth.addr)
}

/// A line-oriented client over a real socket, with exact-byte helpers.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// Bytes written and read so far, to check the proxy's byte counts.
    pub sent: usize,
    pub received: usize,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wraps a stream connected some other way (socket options set first).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client {
            stream,
            reader,
            sent: 0,
            received: 0,
        }
    }

    /// Connects and checks the greeting.
    pub fn imap(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        assert_eq!(c.line(), "* OK IMAP4 ready\r\n");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
        self.sent += bytes.len();
    }

    /// One line, CRLF included ("" at end of stream).
    pub fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read line");
        self.received += line.len();
        String::from_utf8(line).expect("UTF-8 line")
    }

    /// At most `buf.len()` bytes, at least one (end of stream fails).
    pub fn read_some(&mut self, buf: &mut [u8]) -> usize {
        let n = self.reader.read(buf).expect("read");
        assert!(n > 0, "connection closed early");
        self.received += n;
        n
    }

    pub fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.reader.read_exact(&mut buf).expect("read exact");
        self.received += n;
        buf
    }

    /// Reads until the peer closes; the bytes read.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("read to end");
        self.received += rest.len();
        rest
    }

    /// As `read_to_close`, but a reset by the peer ends the read instead of
    /// failing it (a peer that closes with unread input resets).
    pub fn read_to_close_lossy(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) | Err(_) => return rest,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Sends a command and checks the whole reply, line by line.
    pub fn expect(&mut self, command: &str, reply: &[&str]) {
        self.send(command.as_bytes());
        for want in reply {
            assert_eq!(self.line(), *want, "reply to {command:?}");
        }
    }

    /// `tag FETCH n BODY[]`: the message bytes, the trailing lines checked.
    pub fn fetch(&mut self, tag: &str, n: usize) -> Vec<u8> {
        self.send(format!("{tag} FETCH {n} BODY[]\r\n").as_bytes());
        let head = self.line();
        let size: usize = head
            .rsplit_once('{')
            .and_then(|(_, s)| s.strip_suffix("}\r\n"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected FETCH line {head:?}"));
        let body = self.exact(size);
        assert_eq!(self.line(), ")\r\n");
        assert_eq!(self.line(), format!("{tag} OK FETCH completed\r\n"));
        body
    }
}

pub fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Open fds of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Waits (polling, at most 15 s) until `pid` holds `want` fds or fewer: a
/// session's sockets close some time after its client sees the end, and
/// there is no signal for that.
pub fn wait_fds_settle(pid: u32, want: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = fd_count(pid);
        if now <= want {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|e| std::fs::read_link(e.path()).ok())
                        .map(|p| p.display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            panic!("fd leak: {now} fds open, {want} before: {fds:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User plus system CPU time of `pid` so far (from /proc/PID/stat).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which may hold spaces: utime is the
    // 14th field of the line, the 12th after ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf reads no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let t: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(t * 1000 / ticks)
}

/// A TCP server in this process for fault cases: each accepted connection
/// runs `handler` on its own thread.
pub fn fake_server(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let handler = handler.clone();
            std::thread::spawn(move || handler(stream));
        }
    });
    addr
}

/// Closes `stream` with a reset (RST) instead of a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Reads one request or command up to `end` (inclusive) or the end of the
/// stream; the bytes read.
pub fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(end) {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    got
}

/// Resets a client's connection: every handle of its socket closes.
pub fn reset_client(client: Client) {
    socket2::SockRef::from(&client.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
}
