//! `postern -t` and start-up failures, as an operator sees them.

mod common;

use std::process::Command;

use common::*;

/// Runs `postern -t -c FILE` on `text`; (exit status, stderr, file path).
fn test_config(text: &str) -> (bool, String, String) {
    let dir = TempDir::new("conf");
    let path = dir.path("postern.conf");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(postern_bin())
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stderr).unwrap(),
        path.display().to_string(),
    )
}

const GOOD: &str = "mail {\n    auth_http 127.0.0.1:9000/auth;\n    server {\n        listen 127.0.0.1:1143;\n        protocol imap;\n    }\n}\n";

#[test]
fn good_config_is_ok() {
    let (ok, stderr, path) = test_config(GOOD);
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "postern: the configuration file {path} syntax is ok\npostern: configuration file {path} test is successful\n"
        )
    );
}

/// As `nginx -t`: every error log is opened (and so created); one that
/// cannot be fails the test, in main or in a server.
#[test]
fn test_opens_the_error_logs() {
    let dir = TempDir::new("logs");
    let main_log = dir.path("main.log");
    let server_log = dir.path("server.log");
    let text = format!(
        "error_log {} info;\nmail {{\n    auth_http 127.0.0.1:9000/auth;\n    server {{\n        listen 127.0.0.1:1143;\n        protocol imap;\n        error_log {};\n    }}\n}}\n",
        main_log.display(),
        server_log.display()
    );
    let (ok, stderr, _) = test_config(&text);
    assert!(ok, "{stderr}");
    assert!(main_log.exists() && server_log.exists());

    let missing = dir.path("no-such-dir/server.log");
    let text = text.replace(&server_log.display().to_string(), &missing.display().to_string());
    let (ok, stderr, path) = test_config(&text);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "postern: [emerg] open() \"{}\" failed (No such file or directory (os error 2))\n\
             postern: configuration file {path} test failed\n",
            missing.display()
        )
    );
}

#[test]
fn errors_name_file_and_line() {
    let rows: &[(&str, &str)] = &[
        (
            "mail {\n    auth_http 127.0.0.1:9000/auth;\n    imap_capabilitie IMAP4;\n}\n",
            "unknown directive \"imap_capabilitie\" in {path}:3",
        ),
        (
            "mail {\n    auth_http 127.0.0.1:9000/auth;\n\n    ssl_session_ticket_key k;\n}\n",
            "\"ssl_session_ticket_key\" directive is not supported: rustls makes and rotates its own ticket \
             keys in {path}:4",
        ),
        (
            "http {\n}\n",
            "\"http\" directive is not supported: Postern serves mail only in {path}:1",
        ),
        (
            "mail {\n    timeout 10x;\n}\n",
            "invalid value \"10x\" in \"timeout\" directive in {path}:2",
        ),
        (
            "mail {\n    server {\n        listen 127.0.0.1:1143;\n        protocol imap\n    }\n}\n",
            "in {path}:5",
        ),
    ];
    for (text, want) in rows {
        let (ok, stderr, path) = test_config(text);
        assert!(!ok, "accepted: {text}");
        let want = want.replace("{path}", &path);
        assert!(stderr.starts_with("postern: [emerg] "), "{stderr}");
        assert!(
            stderr.lines().next().unwrap().ends_with(&want),
            "want {want:?}, got {stderr}"
        );
        assert!(
            stderr.ends_with(&format!("postern: configuration file {path} test failed\n")),
            "{stderr}"
        );
    }
}

#[test]
fn ignored_directives_are_said_and_protocol_comes_from_the_port() {
    let (ok, stderr, path) = test_config(
        "events {\n    use epoll;\n}\nmail {\n    auth_http 127.0.0.1:9000/auth;\n    server { listen 127.0.0.1:143; }\n}\n",
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!("postern: [warn] \"use\" directive is ignored: Postern accepts on one io_uring listener per core in {path}:2")
    );
    let (ok, stderr, path) =
        test_config("mail {\n    auth_http 127.0.0.1:9000/auth;\n    server {\n listen 127.0.0.1:1143; }\n}\n");
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!(
            "postern: [emerg] unknown mail protocol for server in {path}:3"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_fails() {
    let out = Command::new(postern_bin())
        .args(["-t", "-c", "/nonexistent/postern.conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/postern.conf"), "{stderr}");
}

#[test]
fn busy_port_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("busy");
    let path = dir.path("postern.conf");
    std::fs::write(&path, GOOD.replace("1143", &port.to_string())).unwrap();
    let out = Command::new(postern_bin()).arg("-c").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("bind() to 127.0.0.1:{port} failed")),
        "{stderr}"
    );
}

#[test]
fn include_globs_relative_to_the_including_file() {
    let dir = TempDir::new("include");
    std::fs::create_dir_all(dir.path("conf.d")).unwrap();
    std::fs::write(
        dir.path("postern.conf"),
        "mail {\n    auth_http 127.0.0.1:9000/auth;\n    include conf.d/*.conf;\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path("conf.d/a.conf"),
        "server {\n    listen 127.0.0.1:1143;\n    protocol imap;\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path("conf.d/b.conf"),
        "server {\n    listen 127.0.0.1:1144;\n    protocol imap;\n}\n",
    )
    .unwrap();
    let run = || {
        Command::new(postern_bin())
            .arg("-t")
            .arg("-c")
            .arg(dir.path("postern.conf"))
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // An error inside an included file names that file and line.
    std::fs::write(
        dir.path("conf.d/b.conf"),
        "server {\n    listen 127.0.0.1:1144;\n    protocl imap;\n}\n",
    )
    .unwrap();
    let out = run();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let want = format!(
        "unknown directive \"protocl\" in {}:3",
        dir.path("conf.d/b.conf").display()
    );
    assert!(stderr.contains(&want), "want {want:?} in {stderr}");
}

/// The example from nginx's mail documentation (the seed), braces closed:
/// `-t` passes as written, and Postern runs it (ports moved to free ones,
/// the log to stderr, since the test is no root daemon).
#[test]
fn nginx_documentation_example_tests_and_runs() {
    let seed = |ports: [u16; 4], log: &str| {
        format!(
            "worker_processes 1;\n\nerror_log {log} info;\n\nmail {{\n    auth_http         localhost:9000/cgi-bin/nginxauth.cgi;\n\n    imap_capabilities IMAP4rev1 UIDPLUS IDLE LITERAL+ QUOTA;\n\n    pop3_auth         plain apop cram-md5;\n    pop3_capabilities LAST TOP USER PIPELINING UIDL;\n\n    smtp_auth         login plain cram-md5;\n    smtp_capabilities \"SIZE 10485760\" ENHANCEDSTATUSCODES 8BITMIME DSN;\n    xclient           off;\n\n    server {{\n        listen   {};\n        protocol smtp;\n    }}\n    server {{\n        listen   {};\n        protocol pop3;\n        proxy_pass_error_message on;\n    }}\n    server {{\n        listen   {};\n        protocol imap;\n    }}\n    server {{\n        listen   {};\n        protocol smtp;\n    }}\n}}\n",
            ports[0], ports[1], ports[2], ports[3]
        )
    };
    let (ok, stderr, _) = test_config(&seed([25, 110, 143, 587], "/var/log/nginx/error.log"));
    assert!(ok, "{stderr}");
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let dir = TempDir::new("seed");
    let conf = dir.path("nginx.conf");
    std::fs::write(&conf, seed(ports, "stderr")).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&conf);
    let postern = Proc::spawn(cmd);
    postern.wait_for("started");
    let greet = |port: u16| {
        let mut c = Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        c.line()
    };
    assert!(greet(ports[0]).starts_with("220 ") && greet(ports[0]).ends_with(" ESMTP ready\r\n"));
    assert!(
        greet(ports[1]).starts_with("+OK POP3 ready <"),
        "APOP's salt in the greeting"
    );
    assert_eq!(greet(ports[2]), "* OK IMAP4 ready\r\n");
    assert!(greet(ports[3]).starts_with("220 "));
}
