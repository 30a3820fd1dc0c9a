//! The `load` subcommand against the bench backends, with no proxy between.

mod common;

use std::process::{Command, Stdio};

use common::Server;

/// Runs `load ARGS`, which must succeed, and returns its stdout lines.
fn load(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_postern-bench"))
        .arg("load")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run postern-bench load");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "load {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// The value after `"key":` in a one-line JSON object.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

fn backend(protocol: &str) -> Server {
    Server::start(&["backend", "--protocol", protocol, "--user", "bob:secret"])
}

/// Runs one load against a fresh backend of `protocol`; checks the common
/// fields and returns the JSON line.
fn run(mode: &str, protocol: &str, extra: &[&str]) -> String {
    let server = backend(protocol);
    let pid = server.pid().to_string();
    let mut args = vec![
        "--mode",
        mode,
        "--protocol",
        protocol,
        "--addr",
        &server.addr,
        "--user",
        "bob:secret",
        "--conns",
        "4",
        "--pid",
        &pid,
    ];
    if !extra.contains(&"--duration") {
        args.extend_from_slice(&["--duration", "1"]);
    }
    args.extend_from_slice(extra);
    let lines = load(&args);
    let json = lines.last().expect("a JSON line").clone();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert_eq!(field(&json, "mode"), format!("\"{mode}\""));
    assert_eq!(field(&json, "protocol"), format!("\"{protocol}\""));
    assert_eq!(field(&json, "conns"), "4");
    assert_eq!(field(&json, "errors"), "0", "{json}");
    assert!(field(&json, "ops").parse::<u64>().unwrap() > 0, "{json}");
    assert!(field(&json, "ops_per_s").parse::<f64>().unwrap() > 0.0, "{json}");
    assert!(field(&json, "p50").parse::<u32>().unwrap() <= field(&json, "p99").parse().unwrap());
    assert!(field(&json, "p99").parse::<u32>().unwrap() <= field(&json, "p999").parse().unwrap());
    assert!(json.contains(&format!("\"cpu\":{{\"{pid}\":{{\"s\":")), "{json}");
    assert!(json.contains("\"us_per_op\":"), "{json}");
    assert!(field(&json, "client_cpu_share").parse::<f64>().unwrap() >= 0.0);
    if extra.contains(&"--json-only") {
        assert_eq!(lines.len(), 1, "{lines:?}");
    } else {
        assert!(
            lines[0].starts_with(&format!("load        {mode} {protocol}, 4 conn(s)")),
            "{lines:?}"
        );
    }
    json
}

#[test]
fn login_all_protocols() {
    for protocol in ["imap", "pop3", "smtp"] {
        let json = run("login", protocol, &[]);
        assert_eq!(field(&json, "rate"), "null");
        assert!(!json.contains("mb_per_s"), "{json}");
    }
}

#[test]
fn login_open_loop() {
    let json = run("login", "imap", &["--rate", "200", "--json-only"]);
    assert_eq!(field(&json, "rate"), "200.000");
    // 200/s for 1 s; a slot that falls behind still does all of its share.
    assert_eq!(field(&json, "ops"), "200", "{json}");
}

#[test]
fn session_all_protocols() {
    for protocol in ["imap", "pop3", "smtp"] {
        let json = run("session", protocol, &["--msg-bytes", "2000"]);
        assert!(field(&json, "mb_per_s").parse::<f64>().unwrap() > 0.0, "{json}");
    }
}

#[test]
fn session_open_loop() {
    let json = run("session", "pop3", &["--rate", "400", "--msg", "2"]);
    assert_eq!(field(&json, "ops"), "400", "{json}");
}

#[test]
fn idle_reports_memory() {
    for protocol in ["imap", "pop3", "smtp"] {
        let json = run("idle", protocol, &["--duration", "0.2"]);
        assert_eq!(field(&json, "ops"), "4", "{json}");
        assert!(json.contains("\"mem\":{\""), "{json}");
        assert!(json.contains("\"pss_kib_per_session\":"), "{json}");
        assert!(json.contains("\"rss_kib_per_session\":"), "{json}");
        let fds: u64 = field(&json, "fds").parse().unwrap();
        let before: u64 = field(&json, "fds_before").parse().unwrap();
        assert!(fds >= before + 4, "{json}");
    }
}

#[test]
fn bulk_fetches_large_messages() {
    let server = Server::start(&["backend", "--user", "bob:secret", "--msg-bytes", "1000000"]);
    let lines = load(&[
        "--mode",
        "bulk",
        "--protocol",
        "imap",
        "--addr",
        &server.addr,
        "--user",
        "bob:secret",
        "--conns",
        "2",
        "--duration",
        "1",
        "--json-only",
    ]);
    let json = &lines[0];
    assert_eq!(field(json, "errors"), "0", "{json}");
    let ops: f64 = field(json, "ops").parse().unwrap();
    let seconds: f64 = field(json, "seconds").parse().unwrap();
    let mb: f64 = field(json, "mb_per_s").parse().unwrap();
    assert!(ops > 0.0, "{json}");
    assert!((mb - ops / seconds).abs() < 0.01 * mb + 0.01, "{json}");
}

#[test]
fn failures_are_counted_and_reported() {
    let server = backend("pop3");
    let out = Command::new(env!("CARGO_BIN_EXE_postern-bench"))
        .args([
            "load",
            "--mode",
            "login",
            "--protocol",
            "pop3",
            "--addr",
            &server.addr,
            "--user",
            "bob:wrong",
            "--conns",
            "2",
            "--duration",
            "0.2",
        ])
        .output()
        .expect("run postern-bench load");
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = stdout.lines().last().unwrap();
    assert_eq!(field(json, "ops"), "0", "{json}");
    assert!(field(json, "errors").parse::<u64>().unwrap() > 0, "{json}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PASS: server answered -ERR"), "{stderr}");
}
