//! The `user` directive: started as root, Postern binds, then runs as the
//! user with CAP_NET_BIND_SERVICE only, on every thread, and a reload can
//! still bind a port below 1024.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

/// The `Uid:`, `Gid:`, `CapEff:` and `CapPrm:` lines of a status file.
fn identity(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| {
            ["Uid:", "Gid:", "CapEff:", "CapPrm:", "CapInh:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// A port below 1024 that nothing listens on now.
fn free_privileged_port() -> u16 {
    (900..1024)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 1024")
}

#[test]
fn user_drops_to_nobody_keeping_only_bind_service() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the user directive needs a test run as root");
        return;
    }
    let backend = start_backend(&["bob:secret"], 1, 100);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("privilege");
    let port = free_port();
    let conf = dir.path("postern.conf");
    let write = |ports: &[u16]| {
        let mut text = format!(
            "worker_processes 2;\nerror_log stderr info;\nuser nobody nogroup;\nmail {{\n    auth_http {}/auth;\n",
            auth.addr
        );
        for port in ports {
            text.push_str(&format!(
                "    server {{\n        listen 127.0.0.1:{port};\n        protocol imap;\n    }}\n"
            ));
        }
        text.push_str("}\n");
        std::fs::write(&conf, text).unwrap();
    };
    write(&[port]);
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let mut postern = Proc::spawn(cmd);
    let line = postern.wait_for("running as user");
    assert!(line.contains("\"nobody\" (uid 65534, gid 65534)"), "{line}");
    postern.wait_for("started");

    let expected = vec![
        "Uid: 65534 65534 65534 65534".to_string(),
        "Gid: 65534 65534 65534 65534".to_string(),
        "CapInh: 0000000000000000".to_string(),
        "CapPrm: 0000000000000400".to_string(),
        "CapEff: 0000000000000400".to_string(),
    ];
    let tasks = std::fs::read_dir(format!("/proc/{}/task", postern.pid())).unwrap();
    let mut seen = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let mut got = identity(&status);
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "{status}");
        seen += 1;
    }
    // The main thread, the signal thread, two cores and their watchers.
    assert!(seen >= 4, "{seen} threads");

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = Client::imap(addr);
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    c.expect("b NOOP\r\n", &["b OK NOOP completed\r\n"]);

    // A reload binds a privileged port as nobody.
    let low = free_privileged_port();
    write(&[port, low]);
    let status = Command::new("kill")
        .args(["-HUP", &postern.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    postern.wait_for_count(": reconfigured, 2 listener(s)", 2);
    let mut low_client = Client::imap(SocketAddr::from(([127, 0, 0, 1], low)));
    low_client.expect("a NOOP\r\n", &["a OK completed\r\n"]);

    let status = Command::new("kill")
        .args(["-TERM", &postern.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    postern.wait_exit();
    assert!(!postern.log().contains("panicked"));
}
