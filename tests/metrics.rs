//! `metrics_listen` end to end: the real binary with the bench auth server
//! and backend, scraped over HTTP before and after sessions run.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;

const MESSAGE_BYTES: usize = 200_000;

struct Stack {
    _backend: Companion,
    _auth: Companion,
    postern: Postern,
    metrics: SocketAddr,
}

fn stack() -> Stack {
    let backend = start_backend(&["bob:secret"], 1, MESSAGE_BYTES);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let postern = start_postern_with(
        &format!("error_log stderr info;\nmetrics_listen {metrics};"),
        &auth_http(&auth),
    );
    Stack {
        _backend: backend,
        _auth: auth,
        postern,
        metrics,
    }
}

/// Sends `request` whole and returns the whole response (the server closes).
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8(response).unwrap()
}

/// Samples of one scrape, `name{labels}` to value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn take(addr: SocketAddr) -> Scrape {
        let response = http(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        let mut samples = BTreeMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            samples.insert(series.to_string(), value.parse().unwrap());
        }
        Scrape(samples)
    }

    /// `family` summed over the series whose labels hold every one of
    /// `labels` (`protocol="imap"` and the like): over cores, for one.
    fn sum(&self, family: &str, labels: &[&str]) -> f64 {
        let matched: Vec<f64> = self
            .0
            .iter()
            .filter(|(series, _)| {
                let (name, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
                name == family && labels.iter().all(|l| rest.contains(l))
            })
            .map(|(_, v)| *v)
            .collect();
        assert!(!matched.is_empty(), "no series {family} with {labels:?}");
        matched.iter().sum()
    }

    fn imap(&self, family: &str, labels: &[&str]) -> f64 {
        let mut all = vec![r#"protocol="imap""#];
        all.extend_from_slice(labels);
        self.sum(family, &all)
    }
}

#[test]
fn counters_move_by_what_the_sessions_did() {
    let s = stack();
    let before = Scrape::take(s.metrics);
    // One series per core: the test's Postern runs two.
    assert!(before
        .0
        .contains_key(r#"postern_connections_accepted_total{protocol="imap",core="1"}"#));

    // A login and a relayed FETCH.
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    c.send(b"s SELECT INBOX\r\n");
    while !c.line().starts_with("s OK") {}
    assert_eq!(c.fetch("b", 1).len(), MESSAGE_BYTES);
    // Counted as they move: the open session's bytes are there already
    // (give or take the instant between a write and its count: Postern's
    // core counts right after the write the client has just read).
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let during = loop {
        let during = Scrape::take(s.metrics);
        let relayed = during.imap("postern_relayed_bytes_total", &[r#"direction="backend_to_client""#])
            - before.imap("postern_relayed_bytes_total", &[r#"direction="backend_to_client""#]);
        if relayed >= MESSAGE_BYTES as f64 {
            break during;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backend_to_client {relayed} while open"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(during.imap("postern_connections_active", &[]), 1.0);
    c.expect("c LOGOUT\r\n", &["* BYE logging out\r\n", "c OK LOGOUT completed\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    // A wrong password.
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob wrong\r\n", &["a NO Invalid login or password\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    // No login at all.
    let mut c = Client::imap(s.postern.addr);
    c.send(b"a LOGOUT\r\n");
    c.read_to_close();
    // Each session counts its end before its last log line.
    s.postern.proc.wait_for_count("session done", 1);
    s.postern.proc.wait_for_count("login refused by auth server", 1);
    s.postern.proc.wait_for_count("client logged out", 1);

    let after = Scrape::take(s.metrics);
    let moved = |family: &str, labels: &[&str]| after.imap(family, labels) - before.imap(family, labels);
    assert_eq!(moved("postern_connections_accepted_total", &[]), 3.0);
    assert_eq!(after.imap("postern_connections_active", &[]), 0.0);
    assert_eq!(moved("postern_logins_total", &[r#"result="ok""#]), 1.0);
    assert_eq!(moved("postern_logins_total", &[r#"result="failed""#]), 1.0);
    assert_eq!(
        moved("postern_logins_total", &[r#"method="plain""#, r#"result="ok""#]),
        1.0
    );
    assert_eq!(moved("postern_auth_requests_total", &[]), 2.0);
    assert_eq!(moved("postern_auth_errors_total", &[]), 0.0);
    assert_eq!(
        after.sum("postern_auth_request_duration_seconds_count", &[r#"protocol="imap""#])
            - before.sum("postern_auth_request_duration_seconds_count", &[r#"protocol="imap""#]),
        2.0
    );
    assert_eq!(moved("postern_backend_logins_total", &[r#"result="ok""#]), 1.0);
    assert_eq!(moved("postern_backend_connect_errors_total", &[]), 0.0);
    let down = moved("postern_relayed_bytes_total", &[r#"direction="backend_to_client""#]);
    let up = moved("postern_relayed_bytes_total", &[r#"direction="client_to_backend""#]);
    assert!(down >= MESSAGE_BYTES as f64, "backend_to_client {down}");
    assert!(up > 0.0);
    // Every relayed byte went by splice or by copy.
    assert_eq!(moved("postern_relayed_bytes_by_mode_total", &[]), up + down);
    for (reason, n) in [("normal", 1.0), ("login_refused", 1.0), ("client_logged_out", 1.0)] {
        assert_eq!(
            moved("postern_sessions_closed_total", &[&format!("reason=\"{reason}\"")]),
            n,
            "{reason}"
        );
    }
    // Every session accepted is open or closed for one reason.
    assert_eq!(
        after.imap("postern_connections_accepted_total", &[]),
        after.imap("postern_connections_active", &[]) + after.imap("postern_sessions_closed_total", &[])
    );
}

/// Logins that never reach the auth server are counted too: those refused
/// by `auth_fail_limit`.
#[test]
fn throttled_logins_are_counted() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let postern = start_postern_with(
        &format!("error_log stderr info;\nworker_processes 1;\nmetrics_listen {metrics};"),
        &format!("{}\n    auth_fail_limit 1 per 1m;", auth_http(&auth)),
    );
    let before = Scrape::take(metrics);
    let mut c = Client::imap(postern.addr);
    c.expect("a LOGIN bob wrong\r\n", &["a NO Invalid login or password\r\n"]);
    let mut c = Client::imap(postern.addr);
    c.expect(
        "b LOGIN bob secret\r\n",
        &["b NO [UNAVAILABLE] Too many failed logins, try again later\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    let after = Scrape::take(metrics);
    let moved = |family: &str, labels: &[&str]| after.imap(family, labels) - before.imap(family, labels);
    assert_eq!(moved("postern_logins_throttled_total", &[]), 1.0);
    assert_eq!(moved("postern_auth_requests_total", &[]), 1.0);
    assert_eq!(moved("postern_logins_total", &[r#"result="failed""#]), 1.0);
}

#[test]
fn bad_requests_get_4xx() {
    let s = stack();
    let rows: &[(&[u8], &str)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
        (b"GET /metric HTTP/1.0\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"),
        (b"hello\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
    ];
    for (request, status) in rows {
        let response = http(s.metrics, request);
        assert!(
            response.starts_with(status),
            "{:?}: {response}",
            String::from_utf8_lossy(request)
        );
    }
    // A header past the size limit.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.resize(64 * 1024, b'a');
    let mut stream = TcpStream::connect(s.metrics).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // The server answers once it has read its limit; the rest may be refused.
    let _ = stream.write_all(&huge);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    // HEAD: the header only.
    let response = http(s.metrics, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\n"));
    // The server still serves after all that.
    Scrape::take(s.metrics);
    assert!(s
        .postern
        .proc
        .log()
        .contains(&format!("metrics on http://{}/metrics", s.metrics)));
}

#[test]
fn counters_survive_a_reload() {
    let s = stack();
    let c = Client::imap(s.postern.addr);
    drop(c);
    s.postern.proc.wait_for_count("client closed connection", 1);
    let before = Scrape::take(s.metrics);
    assert_eq!(before.imap("postern_connections_accepted_total", &[]), 1.0);
    let pid = s.postern.proc.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    s.postern.proc.wait_for_count("reconfigured", 3);
    let after = Scrape::take(s.metrics);
    assert_eq!(after.imap("postern_connections_accepted_total", &[]), 1.0);
    assert_eq!(
        after.imap("postern_sessions_closed_total", &[r#"reason="client_closed""#]),
        1.0
    );
}
