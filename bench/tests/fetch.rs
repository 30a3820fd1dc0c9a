//! The `fetch` subcommand against the bench backend, with no proxy between.

mod common;

use std::process::{Command, Output, Stdio};

use common::Server;

const SIZE: u64 = 70_000;

fn fetch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postern-bench"))
        .arg("fetch")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run postern-bench fetch")
}

/// The number after `"key":` in a one-line JSON object.
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

/// Runs `fetch ARGS`, which must succeed, and returns its JSON line.
fn json_line(args: &[&str]) -> String {
    let out = fetch(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "fetch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("fetch: "), "{stdout}");
    assert!(
        lines[1].starts_with("{\"mode\":\"fetch\",") && lines[1].ends_with('}'),
        "{stdout}"
    );
    lines[1].to_string()
}

fn backend() -> Server {
    Server::start(&[
        "backend",
        "--user",
        "bench:b\"e\\n ch",
        "--messages",
        "2",
        "--msg-bytes",
        &SIZE.to_string(),
    ])
}

#[test]
fn counts_the_payload_bytes() {
    let server = backend();
    let pid = server.pid().to_string();
    let json = json_line(&[
        "--addr",
        &server.addr,
        "--user",
        "bench:b\"e\\n ch",
        "--msg",
        "1",
        "--count",
        "20",
        "--pid",
        &pid,
    ]);
    assert_eq!(field(&json, "conns"), "1");
    assert_eq!(field(&json, "count"), "20");
    assert_eq!(field(&json, "msg_bytes"), SIZE.to_string());
    assert_eq!(field(&json, "bytes"), (20 * SIZE).to_string());
    assert!(field(&json, "seconds").parse::<f64>().unwrap() > 0.0);
    assert!(field(&json, "mb_per_s").parse::<f64>().unwrap() > 0.0);
    assert!(json.contains(&format!("\"cpu\":{{\"{pid}\":")), "{json}");
    assert!(field(&json, "client_cpu").parse::<f64>().unwrap() >= 0.0);
}

#[test]
fn parallel_connections_and_verify() {
    let server = backend();
    let json = json_line(&[
        "--addr",
        &server.addr,
        "--user",
        "bench:b\"e\\n ch",
        "--msg",
        "2",
        "--count",
        "5",
        "--conns",
        "3",
        "--verify",
    ]);
    assert_eq!(field(&json, "conns"), "3");
    assert_eq!(field(&json, "bytes"), (3 * 5 * SIZE).to_string());
    assert!(json.contains("\"cpu\":{}"), "{json}");
}

#[test]
fn failures_exit_non_zero() {
    let server = backend();
    for (args, error) in [
        (
            vec!["--user", "bench:wrong", "--count", "1"],
            "LOGIN: server answered a NO",
        ),
        (
            vec!["--user", "bench:b\"e\\n ch", "--count", "1", "--msg", "3"],
            "FETCH: server answered c1 BAD",
        ),
        (
            vec!["--user", "bench:b\"e\\n ch", "--count", "1", "--pid", "0"],
            "cannot read /proc/0/stat",
        ),
    ] {
        let out = fetch(&[&["--addr", server.addr.as_str()], &args[..]].concat());
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error), "{args:?}: {stderr}");
    }
}

#[test]
fn silent_server_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = fetch(&["--addr", &addr, "--user", "a:b", "--count", "1", "--timeout", "1"]);
    drop(listener);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection 1: read: timed out after 1 s"), "{stderr}");
}
