//! `error_log` end to end: several logs per context with their own levels,
//! inheritance (server, `mail`, main), syslog datagrams as nginx sends them,
//! the failed-login line fail2ban reads, SIGUSR1 after logrotate's rename,
//! and no password at debug.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Starts Postern with `conf` (`{dir}` replaced) and waits for its start-up
/// notice on stderr (the main config must log notices to stderr).
fn start(dir: &TempDir, conf: &str) -> Proc {
    let path = dir.path("postern.conf");
    std::fs::write(&path, conf.replace("{dir}", &dir.0.display().to_string())).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&path);
    let proc = Proc::spawn(cmd);
    proc.wait_for("started");
    proc
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the file has a line containing each needle.
fn wait_lines(path: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let text = read(path);
        if needles.iter().all(|n| text.lines().any(|l| l.contains(n))) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needles:?} not in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn login(addr: SocketAddr, pass: &str) -> String {
    let mut c = Client::imap(addr);
    c.send(format!("a LOGIN bob {pass}\r\n").as_bytes());
    let reply = c.line();
    if reply.starts_with("a OK") {
        c.expect("b LOGOUT\r\n", &["* BYE logging out\r\n", "b OK LOGOUT completed\r\n"]);
    }
    let _ = c.read_to_close();
    reply
}

/// Every line has nginx's prefix: `YYYY/MM/DD HH:MM:SS [level] PID#TID: `.
fn assert_nginx_lines(text: &str) {
    for line in text.lines() {
        let (stamp, rest) = line.split_at(19);
        assert!(stamp.chars().all(|c| c.is_ascii_digit() || "/ :".contains(c)), "{line}");
        let level = rest.strip_prefix(" [").and_then(|r| r.split_once("] ")).map(|(l, _)| l);
        assert!(
            matches!(
                level,
                Some("debug" | "info" | "notice" | "warn" | "error" | "crit" | "alert" | "emerg")
            ),
            "{line}"
        );
    }
}

fn levels(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| {
            l.get(19..)
                .and_then(|r| r.strip_prefix(" ["))
                .and_then(|r| r.split_once(']'))
        })
        .map(|(level, _)| level)
        .collect()
}

#[test]
fn several_logs_get_the_lines_their_context_and_level_admit() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let (_refusing, no_auth) = refusing_addr();
    let dir = TempDir::new("errlog-contexts");
    let (a, b) = (free_port(), free_port());
    let conf = format!(
        "worker_processes 2;\nerror_log stderr info;\nerror_log {{dir}}/main.log notice;\n\
         mail {{\n  auth_http {}/auth;\n  error_log {{dir}}/mail.log info;\n\
         server {{\n    listen 127.0.0.1:{a};\n    protocol imap;\n    auth_http {no_auth}/auth;\n\
         error_log {{dir}}/a.log info;\n    error_log {{dir}}/a-err.log error;\n  }}\n\
         server {{\n    listen 127.0.0.1:{b};\n    protocol imap;\n  }}\n}}\n",
        auth.addr
    );
    let postern = start(&dir, &conf);
    let a_addr = SocketAddr::from(([127, 0, 0, 1], a));
    let b_addr = SocketAddr::from(([127, 0, 0, 1], b));
    assert!(login(a_addr, "secret").contains("internal server error"));
    assert!(login(b_addr, "wrong").starts_with("a NO "));
    assert!(login(b_addr, "secret").starts_with("a OK "));
    let server_a = format!("server: 127.0.0.1:{a}");
    let server_b = format!("server: 127.0.0.1:{b}");
    let a_log = wait_lines(
        &dir.path("a.log"),
        &["connected to", "while in http auth state", "auth server failed"],
    );
    let a_err = wait_lines(&dir.path("a-err.log"), &["while in http auth state"]);
    let mail_log = wait_lines(&dir.path("mail.log"), &["client login failed", "session done"]);
    for text in [&a_log, &a_err, &mail_log] {
        assert_nginx_lines(text);
    }
    // Server A's own logs: its lines only, each log at its level.
    assert_eq!(a_log.lines().count(), 3, "{a_log}");
    assert!(a_log.lines().all(|l| l.contains(&format!("127.0.0.1:{a}"))), "{a_log}");
    assert!(
        a_log
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!(" connected to 127.0.0.1:{a}")),
        "no context on the connect line, as nginx: {a_log}"
    );
    assert_eq!(levels(&a_log), ["info", "error", "info"], "{a_log}");
    assert_eq!(a_err.lines().count(), 1, "{a_err}");
    assert_eq!(levels(&a_err), ["error"], "{a_err}");
    assert!(
        a_err.contains(&format!(
            " while in http auth state, client: 127.0.0.1, {server_a}, login: \"bob\"\n"
        )),
        "{a_err}"
    );
    // Server B has none: the mail level's log has its lines, and only its.
    assert!(
        !mail_log.contains(&server_a) && mail_log.contains(&server_b),
        "{mail_log}"
    );
    assert!(!a_log.contains(&server_b), "{a_log}");
    assert!(
        mail_log.contains(&format!(
            "client login failed: \"Invalid login or password\" while in http auth state, client: 127.0.0.1, \
             {server_b}, login: \"bob\"\n"
        )),
        "{mail_log}"
    );
    assert!(
        mail_log.contains(&format!(
            "logged in, client: 127.0.0.1, {server_b}, login: \"bob\", upstream: {}\n",
            backend.addr
        )),
        "{mail_log}"
    );
    assert_eq!(mail_log.matches("connected to").count(), 2, "{mail_log}");
    // The main logs: process notices, no session lines; main.log at notice
    // has no info line.
    let main_log = read(&dir.path("main.log"));
    assert_nginx_lines(&main_log);
    assert!(
        main_log.contains("postern/") && main_log.contains("start core 1"),
        "{main_log}"
    );
    assert!(
        levels(&main_log).iter().all(|l| *l != "info" && *l != "debug"),
        "{main_log}"
    );
    let stderr = postern.log();
    for text in [&main_log, &stderr] {
        assert!(!text.contains(" client: "), "a session line in a main log: {text}");
    }
}

/// A server without `error_log` anywhere: the main logs get its lines.
#[test]
fn without_mail_or_server_logs_the_main_ones_get_session_lines() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let s = start_postern_with(
        "error_log stderr info;\nerror_log {dir}/main.log warn;",
        &format!("    auth_http {}/auth;", auth.addr),
    );
    assert!(login(s.addr, "secret").starts_with("a OK "));
    let line = s.proc.wait_for("session done");
    assert!(
        line.contains(&format!(", client: 127.0.0.1, server: {}, login: \"bob\"", s.addr)),
        "{line}"
    );
    // The warn-level main log admits none of the info lines.
    assert!(!read(&s.dir.path("main.log")).contains(" client: "));
}

/// Each datagram until `count` have come, or the timeout.
fn receive(socket: &UdpSocket, count: usize, until: impl Fn(&str) -> bool) -> Vec<String> {
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.len() >= count && got.iter().any(|p| until(p)) {
                break;
            }
        }
    }
    got
}

/// `<PRI>Mmm dd HH:MM:SS HOST TAG: LINE`, split; `host` is `None` with
/// `nohostname`.
fn parse_packet(packet: &str, nohostname: bool) -> (u32, Option<&str>, &str, &str) {
    let rest = packet.strip_prefix('<').expect(packet);
    let (pri, rest) = rest.split_once('>').expect(packet);
    let (stamp, rest) = rest.split_at(15);
    let month = &stamp[..3];
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].contains(&month),
        "{packet}"
    );
    let shape: String = stamp[3..]
        .chars()
        .map(|c| if c.is_ascii_digit() { 'D' } else { c })
        .collect();
    assert!(shape == " DD DD:DD:DD" || shape == "  D DD:DD:DD", "{packet}");
    let rest = rest.strip_prefix(' ').expect(packet);
    let (host, rest) = if nohostname {
        (None, rest)
    } else {
        let (host, rest) = rest.split_once(' ').expect(packet);
        (Some(host), rest)
    };
    let (tag, line) = rest.split_once(": ").expect(packet);
    (pri.parse().expect(packet), host, tag, line)
}

#[test]
fn syslog_gets_rfc3164_packets_with_facility_severity_and_tag() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let main_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let s = start_postern_with(
        &format!(
            "error_log stderr info;\nerror_log syslog:server={},facility=mail,tag=edge_1,severity=debug notice;",
            main_rx.local_addr().unwrap()
        ),
        &format!(
            "    auth_http {}/auth;\n    error_log syslog:server={},nohostname info;",
            auth.addr,
            server_rx.local_addr().unwrap()
        ),
    );
    // Main level: the process's notices, mail (2) * 8 + notice (5).
    let notices = receive(&main_rx, 1, |p| p.contains(" started: "));
    let started = notices
        .iter()
        .find(|p| p.contains(" started: "))
        .expect("the start-up notice");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (pri, host, tag, line) = parse_packet(started, false);
    assert_eq!(
        (pri, host, tag),
        (21, Some(hostname.trim().to_ascii_lowercase().as_str()), "edge_1"),
        "{started}"
    );
    assert!(line.contains(" [notice] ") && line.contains("postern/"), "{started}");
    assert!(!line.ends_with('\n'), "{started}");
    assert!(!line.contains(" client: "));

    // Server level: session lines, default facility local7 (23), the
    // message's level as severity, the default tag, no host name.
    assert!(login(s.addr, "wrong").starts_with("a NO "));
    let packets = receive(&server_rx, 3, |p| p.contains("client login failed"));
    let parsed: Vec<_> = packets.iter().map(|p| parse_packet(p, true)).collect();
    assert!(
        parsed
            .iter()
            .all(|(pri, _, tag, _)| *pri == 23 * 8 + 6 && *tag == "postern"),
        "{packets:?}"
    );
    let failed = parsed
        .iter()
        .find(|(_, _, _, line)| line.contains("client login failed"))
        .expect("the failed login");
    assert!(failed.3.contains(&format!(" [info] {}#", s.proc.pid())), "{packets:?}");
    assert!(
        failed.3.ends_with(&format!(
            "client login failed: \"Invalid login or password\" while in http auth state, client: 127.0.0.1, \
             server: {}, login: \"bob\"",
            s.addr
        )),
        "{packets:?}"
    );
    // An error-level session line: severity 3.
    let (_refusing, dead) = refusing_addr();
    drop(s);
    let s = start_postern_with(
        "error_log stderr info;",
        &format!(
            "    auth_http {dead}/auth;\n    error_log syslog:server={},facility=local0 error;",
            server_rx.local_addr().unwrap()
        ),
    );
    assert!(login(s.addr, "secret").contains("internal server error"));
    let packets = receive(&server_rx, 1, |p| p.contains("while in http auth state"));
    let error = packets
        .iter()
        .find(|p| p.contains("while in http auth state"))
        .expect("{packets:?}");
    let (pri, _, tag, line) = parse_packet(error, false);
    assert_eq!((pri, tag), (16 * 8 + 3, "postern"), "{error}");
    assert!(line.contains(" [error] "), "{error}");
    // Only error and above reached this log.
    assert!(packets.iter().all(|p| p.starts_with("<131>")), "{packets:?}");
}

/// `syslog:server=unix:PATH`, as `/dev/log`: the same packets over a unix
/// datagram socket, and still delivered after the daemon makes its socket
/// anew (Postern addresses each datagram instead of connecting once).
#[test]
fn syslog_over_a_unix_datagram_socket() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("unix-syslog");
    let path = dir.path("log.sock");
    let receiver = || {
        let _ = std::fs::remove_file(&path);
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        socket
    };
    let until = |socket: &std::os::unix::net::UnixDatagram, needle: &str| -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let packet = String::from_utf8_lossy(&buf[..n]).into_owned();
                if packet.contains(needle) {
                    return packet;
                }
            }
        }
        panic!("no datagram with {needle:?}");
    };
    let rx = receiver();
    let s = start_postern_with(
        "error_log stderr info;",
        &format!(
            "    auth_http {}/auth;\n    error_log syslog:server=unix:{},tag=mail info;",
            auth.addr,
            path.display()
        ),
    );
    assert!(login(s.addr, "wrong").starts_with("a NO "));
    let packet = until(&rx, "client login failed");
    let (pri, _, tag, line) = parse_packet(&packet, false);
    assert_eq!((pri, tag), (23 * 8 + 6, "mail"), "{packet}");
    assert!(line.ends_with("login: \"bob\""), "{packet}");
    // The daemon restarts: a new socket at the same path.
    drop(rx);
    let rx = receiver();
    assert!(login(s.addr, "wrong").starts_with("a NO "));
    until(&rx, "client login failed");
}

/// fail2ban's form for nginx error logs (its nginx-error-common prefix:
/// time, `[level]`, `PID#TID: *CONN `), with the mail module's failed-login
/// message and context; `<HOST>` is the client address nginx prints.
const FAIL2BAN_NGINX_MAIL: &str = r#"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(?:info|error)\] \d+#\d+: \*\d+ client login failed: "[^"]*" while in http auth state, client: (?P<host>[0-9A-Fa-f:.]+), server: \S+(?:, login: ".*")?$"#;

#[test]
fn failed_logins_match_a_fail2ban_filter_and_no_password_is_logged_at_debug() {
    const SECRET: &str = "Tr0ub4dor3xyz";
    const WRONG: &str = "N0tTheP4ssw0rd";
    let backend = start_backend(&[&format!("bob:{SECRET}")], 1, 10);
    let auth = start_auth(&[&format!("bob:{SECRET}")], backend.addr, &[]);
    let s = start_postern_with(
        "error_log stderr debug;\nerror_log {dir}/main.log debug;",
        &format!(
            "    auth_http {}/auth;\n    error_log {{dir}}/mail.log debug;",
            auth.addr
        ),
    );
    for _ in 0..3 {
        assert!(login(s.addr, WRONG).starts_with("a NO "));
    }
    assert!(login(s.addr, SECRET).starts_with("a OK "));
    let mail_log = wait_lines(&s.dir.path("mail.log"), &["session done"]);
    let failed: Vec<&str> = mail_log.lines().filter(|l| l.contains("client login failed")).collect();
    assert_eq!(failed.len(), 3, "{mail_log}");
    // Python's re, as fail2ban itself runs the filter.
    let script = "import re,sys\n\
                  rx=re.compile(sys.argv[1])\n\
                  for line in sys.stdin.read().splitlines():\n\
                  \x20   m=rx.match(line)\n\
                  \x20   print(m.group('host') if m else 'NO MATCH: '+line)\n";
    let mut python = Command::new("python3")
        .args(["-c", script, FAIL2BAN_NGINX_MAIL])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        let mut stdin = python.stdin.take().unwrap();
        stdin.write_all(failed.join("\n").as_bytes()).unwrap();
    }
    let out = python.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "127.0.0.1\n".repeat(3),
        "{mail_log}"
    );
    // Never [alert], [crit] or [emerg] for what a client did.
    let stderr = s.proc.log();
    let main_log = read(&s.dir.path("main.log"));
    for text in [&mail_log, &stderr, &main_log] {
        assert!(
            !text.contains(SECRET) && !text.contains(WRONG),
            "a password in the log:\n{text}"
        );
        for level in ["[alert]", "[crit]", "[emerg]"] {
            assert!(!text.contains(level), "{level} in:\n{text}");
        }
    }
}

#[test]
fn sigusr1_reopens_every_log_file_after_a_rename() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let s = start_postern_with(
        "error_log stderr info;\nerror_log {dir}/main.log notice;",
        &format!(
            "    auth_http {}/auth;\n    error_log {{dir}}/mail.log info;",
            auth.addr
        ),
    );
    let (mail, main) = (s.dir.path("mail.log"), s.dir.path("main.log"));
    assert!(login(s.addr, "secret").starts_with("a OK "));
    wait_lines(&mail, &["session done"]);
    let (mail_old, main_old) = (s.dir.path("mail.log.1"), s.dir.path("main.log.1"));
    std::fs::rename(&mail, &mail_old).unwrap();
    std::fs::rename(&main, &main_old).unwrap();
    let kill = Command::new("kill")
        .args(["-USR1", &s.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    s.proc.wait_for("reopening logs");
    // Both files are there again as soon as the signal is handled.
    let deadline = Instant::now() + IO_TIMEOUT;
    while !(mail.exists() && main.exists()) {
        assert!(Instant::now() < deadline, "the logs were not reopened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(login(s.addr, "wrong").starts_with("a NO "));
    let fresh = wait_lines(&mail, &["connected to", "client login failed"]);
    assert_nginx_lines(&fresh);
    assert!(!fresh.contains("session done"), "an old line in the new file: {fresh}");
    let old = read(&mail_old);
    assert!(
        old.contains("session done") && !old.contains("client login failed"),
        "{old}"
    );
    assert!(read(&main_old).contains("reopening logs"), "{}", read(&main_old));
}
