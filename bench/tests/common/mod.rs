//! Starting `postern-bench` as a child process for integration tests.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A running `postern-bench`; killed and reaped on drop.
pub struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    /// The address from the `listening` line.
    pub addr: String,
}

impl Server {
    /// Starts `postern-bench ARGS...` and waits for its `listening` line.
    /// Arguments may be `&str` or, for bytes that are not UTF-8, `&OsStr`.
    pub fn start<S: AsRef<OsStr> + Debug>(args: &[S]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_postern-bench"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn postern-bench");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut server = Server {
            child,
            _stdout: BufReader::new(stdout),
            addr: String::new(),
        };
        let mut line = String::new();
        server._stdout.read_line(&mut line).expect("read listening line");
        let addr = line
            .strip_prefix("listening ")
            .and_then(|rest| rest.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?} from {args:?}"));
        server.addr = addr.to_string();
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Runs `postern-bench ARGS...`, which must exit with a failure status
/// before printing anything on stdout; returns its stderr.
pub fn start_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_postern-bench"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run postern-bench");
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh path in the temp directory; removed again on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(name: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("postern-bench-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh directory in the temp directory; removed with its contents on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A path that does not exist yet (the server may create it).
    pub fn new(name: &str) -> TempDir {
        let path = TempPath::new(name);
        let dir = TempDir(path.0.clone());
        let _ = std::fs::remove_dir_all(&dir.0);
        dir
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client for line-based protocols (POP3, SMTP) over TCP.
pub struct LineClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineClient {
    pub fn connect(addr: &str) -> LineClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        LineClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Reads one line, LF included.
    pub fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read line");
        String::from_utf8(line).expect("UTF-8 reply")
    }

    /// Reads lines until `expected` (one or more CRLF-terminated lines) has
    /// been matched line by line.
    pub fn expect(&mut self, expected: &str) {
        for wanted in expected.split_inclusive('\n') {
            assert_eq!(self.line(), wanted);
        }
    }

    /// Sends `bytes` and expects `reply` in return.
    pub fn call(&mut self, bytes: &[u8], reply: &str) {
        self.send(bytes);
        self.expect(reply);
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).expect("read bytes");
        buf
    }

    /// True when the server has closed the connection with nothing more to say.
    pub fn eof(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("read to EOF") == 0
    }
}
