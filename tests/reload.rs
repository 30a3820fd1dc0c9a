//! SIGHUP and `-s`: a reload applies to new connections, sessions in flight
//! keep going, kept addresses never refuse a connection, removed ones close,
//! and an invalid configuration leaves the running one serving.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The bench backend and auth server, and Postern started on `conf`.
struct Stack {
    _backend: Companion,
    auth: Companion,
    postern: Proc,
    dir: TempDir,
    conf: std::path::PathBuf,
}

/// A configuration with one IMAP server per `(port, capability)`.
fn conf_text(dir: &TempDir, auth: &Companion, servers: &[(u16, &str)]) -> String {
    let mut text = format!(
        "worker_processes 2;\nerror_log stderr info;\npid {};\nmail {{\n    auth_http {}/auth;\n",
        dir.path("postern.pid").display(),
        auth.addr
    );
    for (port, capability) in servers {
        text.push_str(&format!(
            "    server {{\n        listen 127.0.0.1:{port};\n        protocol imap;\n        imap_capabilities IMAP4rev1 {capability};\n    }}\n"
        ));
    }
    text.push_str("}\n");
    text
}

fn start(servers: &[(u16, &str)]) -> Stack {
    let backend = start_backend(&["bob:secret"], 1, 100);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("reload");
    let conf = dir.path("postern.conf");
    std::fs::write(&conf, conf_text(&dir, &auth, servers)).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let postern = Proc::spawn(cmd);
    postern.wait_for("started");
    Stack {
        _backend: backend,
        auth,
        postern,
        dir,
        conf,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `postern -s NAME -c conf`: the way an operator signals it.
fn dash_s(conf: &Path, name: &str) {
    let out = Command::new(postern_bin())
        .arg("-c")
        .arg(conf)
        .args(["-s", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "-s {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn capability(port: u16) -> String {
    let mut c = Client::imap(addr(port));
    c.send(b"a CAPABILITY\r\n");
    let line = c.line();
    assert_eq!(c.line(), "a OK completed\r\n");
    line
}

#[test]
fn reload_applies_to_new_connections_and_keeps_sessions() {
    let (p1, p2) = (free_port(), free_port());
    let mut s = start(&[(p1, "XONE")]);
    assert_eq!(capability(p1), "* CAPABILITY IMAP4rev1 XONE AUTH=PLAIN\r\n");
    // A relayed session across the reload.
    let mut session = Client::imap(addr(p1));
    session.expect(
        "a1 LOGIN bob secret\r\n",
        &["a1 OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    // A session still in its dialogue across the reload keeps its settings.
    let mut waiting = Client::imap(addr(p1));

    std::fs::write(&s.conf, conf_text(&s.dir, &s.auth, &[(p1, "XTWO"), (p2, "XNEW")])).unwrap();
    dash_s(&s.conf, "reload");
    // Each core says when new connections get the new configuration.
    s.postern.wait_for_count(": reconfigured, 2 listener(s)", 2);

    assert_eq!(capability(p1), "* CAPABILITY IMAP4rev1 XTWO AUTH=PLAIN\r\n");
    assert_eq!(capability(p2), "* CAPABILITY IMAP4rev1 XNEW AUTH=PLAIN\r\n");
    session.expect("a2 NOOP\r\n", &["a2 OK NOOP completed\r\n"]);
    waiting.expect(
        "b CAPABILITY\r\n",
        &["* CAPABILITY IMAP4rev1 XONE AUTH=PLAIN\r\n", "b OK completed\r\n"],
    );
    let log = s.postern.log();
    assert!(log.contains("2 listener(s), 1 new, 0 closed"), "{log}");

    // -s quit: a graceful stop, once the relayed session ends.
    dash_s(&s.conf, "quit");
    s.postern.wait_for("shutting down gracefully");
    session.expect(
        "a3 LOGOUT\r\n",
        &["* BYE logging out\r\n", "a3 OK LOGOUT completed\r\n"],
    );
    drop(waiting);
    assert!(s.postern.wait_exit().success());
    assert!(!s.postern.log().contains("panicked"));
}

#[test]
fn invalid_configuration_keeps_the_running_one() {
    let p1 = free_port();
    let mut s = start(&[(p1, "XONE")]);
    std::fs::write(
        &s.conf,
        "worker_processes 2;\nmail {\n    server {\n        listen 127.0.0.1:1;\n        bogus on;\n    }\n}\n",
    )
    .unwrap();
    // `-s` reads the configuration first and refuses an invalid one, as
    // nginx's does; the operator's way around it is the signal itself.
    let out = Command::new(postern_bin())
        .arg("-c")
        .arg(&s.conf)
        .args(["-s", "reload"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let status = Command::new("kill")
        .args(["-HUP", &s.postern.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let line = s.postern.wait_for("reload failed");
    assert!(line.contains("unknown directive \"bogus\""), "{line}");
    assert!(line.contains("postern.conf:5"), "{line}");
    assert_eq!(capability(p1), "* CAPABILITY IMAP4rev1 XONE AUTH=PLAIN\r\n");

    // A new address that cannot be bound fails the whole reload, too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    std::fs::write(&s.conf, conf_text(&s.dir, &s.auth, &[(p1, "XTWO"), (busy, "XNEW")])).unwrap();
    dash_s(&s.conf, "reload");
    s.postern.wait_for_count("reload failed", 2);
    assert_eq!(capability(p1), "* CAPABILITY IMAP4rev1 XONE AUTH=PLAIN\r\n");

    dash_s(&s.conf, "stop");
    s.postern.wait_exit();
    let log = s.postern.log();
    assert!(!log.contains("reconfigured"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// Clients connect without pause while the configuration changes: the kept
/// address answers every one of them; the removed one stops accepting.
#[test]
fn kept_addresses_never_refuse_and_removed_ones_close() {
    let (p1, p2) = (free_port(), free_port());
    let mut s = start(&[(p1, "XONE"), (p2, "XTWO")]);
    let stop = Arc::new(AtomicBool::new(false));
    let (greeted, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hammer = {
        let (stop, greeted, failed) = (stop.clone(), greeted.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = TcpStream::connect(addr(p1))
                    .and_then(|stream| {
                        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                        let mut line = String::new();
                        BufReader::new(stream).read_line(&mut line)?;
                        Ok(line)
                    })
                    .is_ok_and(|line| line == "* OK IMAP4 ready\r\n");
                let counter = if ok { &greeted } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Some connections before, during and after the reload.
    let deadline = Instant::now() + Duration::from_secs(10);
    while greeted.load(Ordering::Relaxed) < 50 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    std::fs::write(&s.conf, conf_text(&s.dir, &s.auth, &[(p1, "XTHREE")])).unwrap();
    dash_s(&s.conf, "reload");
    s.postern.wait_for("1 listener(s), 0 new, 1 closed");
    // Each core closes its own socket of the removed address.
    s.postern.wait_for_count(": reconfigured, 1 listener(s)", 2);
    let before = greeted.load(Ordering::Relaxed);
    while greeted.load(Ordering::Relaxed) < before + 50 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();

    assert_eq!(failed.load(Ordering::Relaxed), 0, "connections refused or dropped");
    assert!(greeted.load(Ordering::Relaxed) >= before + 50);
    let refused = TcpStream::connect(addr(p2)).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(capability(p1), "* CAPABILITY IMAP4rev1 XTHREE AUTH=PLAIN\r\n");
    dash_s(&s.conf, "stop");
    s.postern.wait_exit();
}

#[test]
fn dash_s_without_a_running_postern_says_why() {
    let dir = TempDir::new("reload-none");
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {};\nmail {{\n    auth_http 127.0.0.1:1/auth;\n    server {{\n        listen 127.0.0.1:1;\n        protocol imap;\n    }}\n}}\n",
            dir.path("postern.pid").display()
        ),
    )
    .unwrap();
    let out = Command::new(postern_bin())
        .arg("-c")
        .arg(&conf)
        .args(["-s", "reload"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postern.pid\" failed"), "{err}");

    std::fs::write(
        &conf,
        "mail {\n    auth_http 127.0.0.1:1/auth;\n    server {\n        listen 127.0.0.1:1;\n        protocol imap;\n    }\n}\n",
    )
    .unwrap();
    let out = Command::new(postern_bin())
        .arg("-c")
        .arg(&conf)
        .args(["-s", "stop"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no \"pid\" directive"));
}
