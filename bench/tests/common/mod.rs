//! Starting `postern-bench` as a child process for integration tests.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Debug;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

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
