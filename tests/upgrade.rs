//! SIGUSR2: the new binary starts with the listening sockets inherited,
//! the old one drains on SIGQUIT; no connection is refused during the
//! handover and a relayed session in the old process goes on to its end.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn conf_text(dir: &TempDir, auth: &Companion, port: u16, capability: &str) -> String {
    format!(
        "worker_processes 2;\nerror_log stderr info;\npid {};\nmail {{\n    auth_http {}/auth;\n    server {{\n        listen 127.0.0.1:{port};\n        protocol imap;\n        imap_capabilities IMAP4rev1 {capability};\n    }}\n}}\n",
        dir.path("postern.pid").display(),
        auth.addr
    )
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

fn capability(addr: SocketAddr) -> String {
    let mut c = Client::imap(addr);
    c.send(b"a CAPABILITY\r\n");
    let line = c.line();
    assert_eq!(c.line(), "a OK completed\r\n");
    line
}

/// Kills the new binary if the test fails half-way: it holds the old one's
/// stderr open, and the old one's output readers wait for its end.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
    }
}

/// Waits, bounded, for a process that is not our child to be gone.
fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "pid {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn binary_upgrade_hands_over_without_refusing_or_dropping() {
    let backend = start_backend(&["bob:secret"], 1, 100);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("upgrade");
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conf = dir.path("postern.conf");
    std::fs::write(&conf, conf_text(&dir, &auth, port, "XOLD")).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let mut old = Proc::spawn(cmd);
    old.wait_for("started");

    // A long session in the old process, as an IMAP IDLE would be.
    let mut session = Client::imap(addr);
    session.expect(
        "a1 LOGIN bob secret\r\n",
        &["a1 OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (greeted, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hammer = {
        let (stop, greeted, failed) = (stop.clone(), greeted.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = TcpStream::connect(addr)
                    .and_then(|stream| {
                        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                        let mut line = String::new();
                        BufReader::new(stream).read_line(&mut line)?;
                        Ok(line)
                    })
                    .is_ok_and(|line| line == "* OK IMAP4 ready\r\n");
                (if ok { &greeted } else { &failed }).fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The new binary reads the configuration afresh.
    std::fs::write(&conf, conf_text(&dir, &auth, port, "XNEW")).unwrap();
    kill(old.pid(), "USR2");
    let line = old.wait_for("started the new binary, pid ");
    let new_pid: u32 = line
        .split("started the new binary, pid ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|pid| pid.parse().ok())
        .expect("the new binary's pid");
    let _successor = KillOnDrop(new_pid);
    // Its stderr is the old one's: its start-up notices come through it,
    // maybe before the old one's own line about it (so: counted in the
    // whole output, not waited for after that line).
    old.wait_for_count("using 2 inherited listening socket(s)", 1);
    old.wait_for_count(" started: ", 2);
    let pid_text = std::fs::read_to_string(dir.path("postern.pid")).unwrap();
    assert_eq!(pid_text.trim(), new_pid.to_string());
    let old_text = std::fs::read_to_string(dir.path("postern.pid.oldbin")).unwrap();
    assert_eq!(old_text.trim(), old.pid().to_string());

    kill(old.pid(), "QUIT");
    old.wait_for_count("stopped accepting", 2);
    // Only the new process accepts now: every new connection is its.
    assert_eq!(capability(addr), "* CAPABILITY IMAP4rev1 XNEW AUTH=PLAIN\r\n");
    // The old process's session goes on to its own end.
    session.expect("a2 NOOP\r\n", &["a2 OK NOOP completed\r\n"]);
    session.expect(
        "a3 LOGOUT\r\n",
        &["* BYE logging out\r\n", "a3 OK LOGOUT completed\r\n"],
    );
    old.wait_for("graceful shutdown done");
    let before = greeted.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while greeted.load(Ordering::Relaxed) < before + 20 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "connections refused or dropped");
    assert!(greeted.load(Ordering::Relaxed) >= before + 20);
    assert_eq!(capability(addr), "* CAPABILITY IMAP4rev1 XNEW AUTH=PLAIN\r\n");

    kill(new_pid, "TERM");
    wait_gone(new_pid);
    // The new binary wrote to the old one's stderr: only now does it end.
    assert!(old.wait_exit().success());
    assert!(!dir.path("postern.pid.oldbin").exists());
    let log = old.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// Under systemd (`Type=notify`, `NotifyAccess=all`): `READY=1` with the
/// main pid once serving; after SIGUSR2 the new binary names itself the
/// main pid, so systemd follows it; a new binary that fails hands the main
/// pid back to the old one.
#[test]
fn systemd_is_told_ready_and_the_new_main_pid() {
    let backend = start_backend(&["bob:secret"], 1, 100);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("notify");
    let notify_path = dir.path("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let next = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conf = dir.path("postern.conf");
    std::fs::write(&conf, conf_text(&dir, &auth, port, "XOLD")).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf).env("NOTIFY_SOCKET", &notify_path);
    let old = Proc::spawn(cmd);
    old.wait_for("started");
    assert_eq!(next(), format!("READY=1\nMAINPID={}\n", old.pid()));

    // A new binary that cannot start (its configuration broken meanwhile):
    // the old one is the main process again.
    std::fs::write(&conf, "mail {\n").unwrap();
    kill(old.pid(), "USR2");
    old.wait_for("this one keeps serving");
    assert_eq!(next(), format!("MAINPID={}\n", old.pid()));

    std::fs::write(&conf, conf_text(&dir, &auth, port, "XNEW")).unwrap();
    kill(old.pid(), "USR2");
    let said = next();
    let new_pid: u32 = said
        .strip_prefix("READY=1\nMAINPID=")
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{said:?}"));
    let _successor = KillOnDrop(new_pid);
    assert_ne!(new_pid, old.pid());
    kill(old.pid(), "QUIT");
    old.wait_for("graceful shutdown done");
    assert_eq!(capability(addr), "* CAPABILITY IMAP4rev1 XNEW AUTH=PLAIN\r\n");
    kill(new_pid, "TERM");
    wait_gone(new_pid);
}
