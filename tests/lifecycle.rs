//! Start, stop, logs and the auth server on a unix socket.

mod common;

use std::process::Command;

use common::*;

#[test]
fn sigterm_stops_and_removes_the_pid_file() {
    let mut postern = start_postern_with(
        "error_log stderr info;\npid {dir}/postern.pid;",
        "    auth_http 127.0.0.1:9/auth;",
    );
    let pid_file = postern.dir.path("postern.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", postern.proc.pid())
    );
    let status = Command::new("kill")
        .args(["-TERM", &postern.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = postern.proc.wait_exit();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(!pid_file.exists(), "pid file left behind");
    assert!(postern.proc.log().contains("[notice]"), "{}", postern.proc.log());
    assert!(
        postern.proc.log().contains("signal 15 received, exiting"),
        "{}",
        postern.proc.log()
    );
    // nginx's start-up notices: the limit, each core, the version.
    let log = postern.proc.log();
    for notice in ["getrlimit(RLIMIT_NOFILE): ", "start core 0", "start core 1", "postern/"] {
        assert!(log.contains(notice), "no {notice:?} in {log}");
    }
}

/// The error log as a file: a FIFO, so the test reads each line as Postern
/// writes it (through the same append-mode file sink) and needs no polling.
#[test]
fn error_log_file_gets_nginx_lines() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let dir = TempDir::new("logfile");
    let log = dir.path("error.log");
    assert!(Command::new("mkfifo").arg(&log).status().unwrap().success());
    let (tx, lines) = std::sync::mpsc::channel();
    let reader_path = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let fifo = std::fs::File::open(reader_path).unwrap();
        for line in std::io::BufReader::new(fifo).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next_with = |needle: &str| loop {
        let line = lines.recv_timeout(IO_TIMEOUT).expect("a log line");
        if line.contains(needle) {
            return line;
        }
    };
    let port = free_port();
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "error_log {} info;\nmail {{\n    auth_http {}/auth;\n    server {{ listen 127.0.0.1:{port}; protocol imap; }}\n}}\n",
            log.display(),
            auth.addr
        ),
    )
    .unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let _postern = Proc::spawn(cmd);
    let started = next_with("started");
    assert!(started.contains(" [notice] "), "{started}");
    let mut client = Client::imap(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    client.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    client.expect("b LOGOUT\r\n", &["* BYE logging out\r\n", "b OK LOGOUT completed\r\n"]);
    assert_eq!(client.read_to_close(), b"");
    let line = next_with("session done");
    let (stamp, rest) = line.split_at(19);
    assert!(stamp.chars().all(|c| c.is_ascii_digit() || "/ :".contains(c)), "{line}");
    assert!(rest.starts_with(" [info] "), "{line}");
    assert!(rest.contains(": *"), "{line}");
    assert!(rest.contains("login: \"bob\""), "{line}");
    assert!(!line.contains("secret"), "password in the log: {line}");
}

#[test]
fn auth_server_on_a_unix_socket() {
    let dir = TempDir::new("unix-auth");
    let socket = dir.path("auth.sock");
    let backend = start_backend(&["bob:secret"], 1, 10);
    let listen = format!("unix:{}", socket.display());
    let route = format!("imap={}", backend.addr);
    let _auth = start_bench_any(&["auth", "--listen", &listen, "--user", "bob:secret", "--backend", &route]);
    let postern = start_postern(&format!("    auth_http unix:{}:/auth;", socket.display()));
    let mut c = Client::imap(postern.addr);
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
}

/// A unix-socket listener: bound once, shared by both cores, removed at exit;
/// the auth server hears `Client-IP: unix:`.
#[test]
fn unix_listener() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("unix-listen");
    let record = dir.path("requests");
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &["--record", record.to_str().unwrap()]);
    let socket = dir.path("imap.sock");
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;\nerror_log stderr info;\nmail {{\n    auth_http {}/auth;\n    server {{\n        listen unix:{};\n        protocol imap;\n    }}\n}}\n",
            auth.addr,
            socket.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let mut postern = Proc::spawn(cmd);
    postern.wait_for("started");
    for round in 0..4 {
        let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "* OK IMAP4 ready\r\n");
        (&stream)
            .write_all(format!("u{round} LOGIN bob secret\r\n").as_bytes())
            .unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            format!("u{round} OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n")
        );
    }
    let requests = String::from_utf8(read_file(&record)).unwrap();
    assert_eq!(requests.matches("\r\nClient-IP: unix:\r\n").count(), 4, "{requests}");
    postern.wait_for(&format!("connected to unix:{}", socket.display()));
    assert!(Command::new("kill")
        .args(["-TERM", &postern.pid().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(postern.wait_exit().success());
    assert!(!socket.exists(), "the socket file is left behind");
}

/// nginx's test harness starts `BIN -p DIR/ -c nginx.conf -e error.log`.
#[test]
fn prefix_and_error_log_flags() {
    let dir = TempDir::new("prefix");
    std::fs::create_dir_all(dir.path("logs")).unwrap();
    let port = free_port();
    std::fs::write(
        dir.path("postern.conf"),
        format!(
            "pid logs/postern.pid;\nerror_log logs/ignored.log info;\nmail {{\n    auth_http 127.0.0.1:9/auth;\n    server {{ listen 127.0.0.1:{port}; protocol imap; }}\n}}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-p")
        .arg(format!("{}/", dir.0.display()))
        .args(["-c", "postern.conf", "-e", "stderr"]);
    let mut postern = Proc::spawn(cmd);
    // -e moved the log to stderr, at the config's level (info).
    postern.wait_for("started");
    let pid = std::fs::read_to_string(dir.path("logs/postern.pid")).unwrap();
    assert_eq!(pid.trim(), postern.pid().to_string());
    assert!(!dir.path("logs/ignored.log").exists());
    let _ = Client::imap(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    postern.wait_for("[info]");
    assert!(Command::new("kill")
        .args(["-INT", &postern.pid().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(postern.wait_exit().success());
}

/// Every listen parameter at once; the socket options themselves are read
/// back with getsockopt in `runtime::listener`'s tests. Here: the backlog as
/// `ss` reports it, once per core (one SO_REUSEPORT socket each).
#[test]
fn listen_parameters_and_per_core_sockets() {
    let dir = TempDir::new("params");
    let port = free_port();
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;\nerror_log stderr info;\nmail {{\n    auth_http 127.0.0.1:9/auth;\n    server {{\n        listen 127.0.0.1:{port} bind backlog=37 rcvbuf=64k sndbuf=64k so_keepalive=30m::10 reuseport;\n        protocol imap;\n    }}\n}}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let postern = Proc::spawn(cmd);
    postern.wait_for("started");
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let backlogs: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert_eq!(backlogs, ["37", "37"], "ss says:\n{text}");
    let _ = Client::imap(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
}

/// `--max-conns 1` on one core: a second client is not even greeted until
/// the first session ends; `worker_rlimit_nofile` is applied; `--cpus`
/// pins the executor.
#[test]
fn session_cap_rlimit_and_cpu_pinning() {
    let dir = TempDir::new("caps");
    let port = free_port();
    let conf = dir.path("postern.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\nworker_rlimit_nofile 1234;\nerror_log stderr info;\nmail {{\n    auth_http 127.0.0.1:9/auth;\n    server {{ listen 127.0.0.1:{port}; protocol imap; }}\n}}\n"
        ),
    )
    .unwrap();
    let cpus = std::fs::read_to_string("/proc/self/status").unwrap();
    let last_cpu = cpus
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|l| l.trim().rsplit(['-', ',']).next().map(str::to_string))
        .unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf).args(["--max-conns", "1", "--cpus", &last_cpu]);
    let postern = Proc::spawn(cmd);
    postern.wait_for("started");

    let limits = std::fs::read_to_string(format!("/proc/{}/limits", postern.pid())).unwrap();
    let files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["1234", "1234"],
        "{files}"
    );
    // glommio names its executor thread and a helper thread alike
    // (postern-0-N); the executor pins itself as it starts, which may be
    // just after the start-up notice: look again briefly.
    let pinned = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                comm.starts_with("postern-0-")
                    && status
                        .lines()
                        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                        .map(str::trim)
                        == Some(last_cpu.as_str())
            })
    };
    let found = (0..40).any(|_| {
        let ok = pinned(postern.pid());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        ok
    });
    assert!(found, "no executor thread pinned to CPU {last_cpu}");

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let first = Client::imap(addr);
    let mut second = Client::connect(addr);
    // Nothing to wait for but silence: the second greeting must not come
    // while the first session lives.
    second
        .stream
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut second.stream, &mut byte);
    assert!(early.is_err(), "greeted past --max-conns: {early:?}");
    drop(first);
    second.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(second.line(), "* OK IMAP4 ready\r\n");
}
