//! The splice relay under pressure and the process lifecycle: slow readers,
//! refused pipe sizes, idle limits, graceful stop, pid lock, log reopening.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const LOGIN_OK: &str = "a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

/// Postern with `flags`, in front of a backend of one `size`-byte message.
fn start(size: usize, main: &str, mail_extra: &str, flags: &[&str]) -> (Companion, Companion, Postern) {
    let backend = start_backend(&["bob:secret"], 1, size);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let postern = start_postern_flags(main, &format!("{}\n{mail_extra}", auth_http(&auth)), flags);
    (backend, auth, postern)
}

fn login(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::imap(addr);
    c.expect("a LOGIN bob secret\r\n", &[LOGIN_OK]);
    c
}

fn select(c: &mut Client) {
    c.send(b"s SELECT INBOX\r\n");
    while !c.line().starts_with("s OK") {}
}

/// A client that reads slowly through a small receive buffer: Postern's
/// splice into the client socket meets a full socket again and again and
/// must spill and wait, not lose or reorder bytes.
#[test]
fn slow_reader_gets_every_byte() {
    const SIZE: usize = 8 * 1024 * 1024;
    let (_b, _a, postern) = start(SIZE, "error_log stderr info;", "", &[]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&postern.addr.into()).unwrap();
    let mut c = Client::from_stream(socket.into());
    assert_eq!(c.line(), "* OK IMAP4 ready\r\n");
    c.expect("a LOGIN bob secret\r\n", &[LOGIN_OK]);
    select(&mut c);
    c.send(b"f FETCH 1 BODY[]\r\n");
    let head = c.line();
    assert!(head.ends_with(&format!("{{{SIZE}}}\r\n")), "{head}");
    let mut body = Vec::with_capacity(SIZE);
    let mut chunk = [0u8; 1000];
    while body.len() < SIZE {
        let want = chunk.len().min(SIZE - body.len());
        let n = c.read_some(&mut chunk[..want]);
        body.extend_from_slice(&chunk[..n]);
        if body.len() < 1 << 20 {
            // Pace the first megabyte so the proxy's writes hit a full socket.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    assert!(body == postern_bench::message::seeded_message(1, SIZE), "bytes differ");
    assert_eq!(c.line(), ")\r\n");
    assert_eq!(c.line(), "f OK FETCH completed\r\n");
    c.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
    let done = postern.proc.wait_for("session done");
    assert!(done.contains("(splice)"), "{done}");
    assert!(
        !done.contains(", 0 spliced"),
        "the slow reader's bytes went by copy only: {done}"
    );
}

/// A pipe size no kernel grants (above 2^31 F_SETPIPE_SZ is EINVAL even for
/// root): smaller pipes, a warning, and the relay still byte-exact.
#[test]
fn refused_pipe_size_falls_back_to_smaller_pipes() {
    const SIZE: usize = 3 * 1024 * 1024;
    let (_b, _a, postern) = start(SIZE, "error_log stderr info;", "", &["--pipe-size", "3g"]);
    let mut c = login(postern.addr);
    select(&mut c);
    assert!(c.fetch("f", 1) == postern_bench::message::seeded_message(1, SIZE));
    let warning = postern.proc.wait_for("F_SETPIPE_SZ");
    assert!(
        warning.contains("[warn]") && warning.contains("F_SETPIPE_SZ(3221225472) refused"),
        "{warning}"
    );
    c.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
    assert!(postern.proc.wait_for("session done").contains("(splice)"));
}

/// The same for a user the kernel limits: as `nobody`, a pipe above
/// /proc/sys/fs/pipe-max-size is EPERM. Skipped where setpriv is missing or
/// the tests do not run as root.
#[test]
fn pipe_size_above_the_user_limit_as_nobody() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv to become nobody");
        return;
    }
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    const SIZE: usize = 2 * 1024 * 1024;
    let backend = start_backend(&["bob:secret"], 1, SIZE);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("nobody");
    let port = free_port();
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\nerror_log stderr info;\nmail {{\n    auth_http {}/auth;\n    server {{ listen 127.0.0.1:{port}; protocol imap; }}\n}}\n",
            auth.addr
        ),
    )
    .unwrap();
    // The scratch directory is root's 0700 by default; nobody must read the file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(postern_bin())
        .arg("-c")
        .arg(&conf)
        .args(["--pipe-size", &(max * 4).to_string()]);
    let postern = Proc::spawn(cmd);
    postern.wait_for("started");
    let mut c = login(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    select(&mut c);
    assert!(c.fetch("f", 1) == postern_bench::message::seeded_message(1, SIZE));
    assert!(postern.wait_for("F_SETPIPE_SZ").contains("refused"));
}

#[test]
fn copy_relay_when_asked() {
    const SIZE: usize = 1024 * 1024;
    let (_b, _a, postern) = start(SIZE, "error_log stderr info;", "", &["--relay", "copy"]);
    let mut c = login(postern.addr);
    select(&mut c);
    assert!(c.fetch("f", 1) == postern_bench::message::seeded_message(1, SIZE));
    c.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
    assert!(postern.proc.wait_for("session done").contains("(copy)"));
}

#[test]
fn proxy_timeout_closes_an_idle_relay() {
    let (_b, _a, postern) = start(10, "error_log stderr info;", "    proxy_timeout 1s;", &[]);
    let mut c = login(postern.addr);
    // The relay's clock starts before this side has read the login reply, so
    // the idle second is timed from a command sent now: its answer moves
    // bytes, which must push the close at least a second past this instant.
    let idle_since = Instant::now();
    c.expect("n NOOP\r\n", &["n OK NOOP completed\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    let idle = idle_since.elapsed();
    assert!(idle >= Duration::from_secs(1), "closed after {idle:?}");
    assert!(postern.proc.wait_for("session done").contains("proxy_timeout"));
}

fn signal(postern: &Postern, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &postern.proc.pid().to_string()])
        .status();
    assert!(status.unwrap().success());
}

/// SIGQUIT: new connections refused, a session that has not logged in told
/// BYE, a relayed session carried on to its end, then exit status 0.
#[test]
fn graceful_stop_lets_relayed_sessions_finish() {
    let (_b, _a, mut postern) = start(1000, "error_log stderr info;", "", &[]);
    let mut relayed = login(postern.addr);
    let mut waiting = Client::imap(postern.addr);
    signal(&postern, "QUIT");
    assert_eq!(waiting.read_to_close(), b"* BYE Server shutting down\r\n");
    // Each core says so once its listeners are closed.
    postern.proc.wait_for("stopped accepting");
    postern.proc.wait_for("stopped accepting");
    assert!(
        std::net::TcpStream::connect(postern.addr).is_err(),
        "still accepting after SIGQUIT"
    );
    select(&mut relayed);
    assert_eq!(relayed.fetch("f", 1).len(), 1000);
    relayed.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
    assert_eq!(relayed.read_to_close(), b"");
    let status = postern.proc.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        postern.proc.log().contains("graceful shutdown done"),
        "{}",
        postern.proc.log()
    );
}

#[test]
fn worker_shutdown_timeout_bounds_the_wait() {
    let (_b, _a, mut postern) = start(10, "error_log stderr info;\nworker_shutdown_timeout 1s;", "", &[]);
    let _relayed = login(postern.addr);
    let asked = Instant::now();
    signal(&postern, "QUIT");
    let status = postern.proc.wait_exit();
    assert!(status.success(), "{status:?}");
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(postern.proc.log().contains("worker_shutdown_timeout passed"));
}

#[test]
fn a_second_instance_with_the_same_pid_file_refuses_to_start() {
    let postern = start_postern_with(
        "error_log stderr info;\npid {dir}/p.pid;",
        "    auth_http 127.0.0.1:9/auth;",
    );
    let conf = postern.dir.path("postern.conf");
    let out = Command::new(postern_bin()).arg("-c").arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let want = format!(
        "another postern (pid {}) holds the pid file \"{}\"",
        postern.proc.pid(),
        postern.dir.path("p.pid").display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    // The first one is untouched: its pid file still names it.
    let pid = std::fs::read_to_string(postern.dir.path("p.pid")).unwrap();
    assert_eq!(pid.trim(), postern.proc.pid().to_string());
}

/// logrotate moves the file away and sends SIGUSR1: new lines go to a new
/// file of the old name.
#[test]
fn sigusr1_reopens_the_log_file() {
    let dir = TempDir::new("reopen");
    let log = dir.path("error.log");
    let port = free_port();
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "error_log {} info;\nmail {{\n    auth_http 127.0.0.1:9/auth;\n    server {{ listen 127.0.0.1:{port}; protocol imap; }}\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let postern = Proc::spawn(cmd);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_text(&log, "started");
    let rotated = dir.path("error.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    assert!(Command::new("kill")
        .args(["-USR1", &postern.pid().to_string()])
        .status()
        .unwrap()
        .success());
    // The notice is written to the old file, then the new one is opened.
    wait_for_text(&rotated, "reopening logs");
    wait_for_text(&log, "");
    let mut c = Client::imap(addr);
    c.expect("a LOGOUT\r\n", &["* BYE\r\n", "a OK completed\r\n"]);
    let text = wait_for_text(&log, "client logged out");
    assert!(text.contains(" connected to "), "{text}");
    assert!(!std::fs::read_to_string(&rotated).unwrap().contains("client logged out"));
}

/// Another process writes the file and offers no other signal: bounded poll.
fn wait_for_text(path: &std::path::Path, needle: &str) -> String {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.contains(needle) {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no {needle:?} in {}", path.display());
}

/// An idle relayed session costs Postern its two sockets and nothing more:
/// no pipe, no duplicate fd. (Each core keeps a few empty pipes in its pool.)
#[test]
fn idle_relayed_sessions_hold_two_fds_each() {
    let (_b, _a, postern) = start(10, "error_log stderr info;", "", &[]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", postern.proc.pid()))
            .unwrap()
            .count()
    };
    // One session first, so each core's pool and lazily made fds exist.
    let warm: Vec<Client> = (0..4).map(|_| login(postern.addr)).collect();
    let before = fds();
    let sessions: Vec<Client> = (0..20).map(|_| login(postern.addr)).collect();
    let after = fds();
    assert!(
        (40..=44).contains(&(after - before)),
        "20 idle sessions took {} fds (expected 2 each, plus at most a pipe per core)",
        after - before
    );
    drop((warm, sessions));
}
