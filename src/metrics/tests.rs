use std::collections::HashSet;
use std::time::Duration;

use super::http::{decide, response, Decision, Reply};
use super::text::{escape_label_value, render, FAMILIES};
use super::*;

/// The lines of `family` (HELP, TYPE and samples) in `text`.
fn family_lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            name.split(['{', ' ']).next() == Some(family)
        })
        .collect()
}

#[test]
fn every_series_has_a_family_and_every_family_a_series() {
    let families: HashSet<&str> = FAMILIES.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(families.len(), FAMILIES.len(), "a family listed twice");
    for (counter, family, _) in SERIES {
        assert!(families.contains(family), "{counter:?} is in no family");
    }
    for (name, _, _) in FAMILIES {
        assert!(SERIES.iter().any(|(_, f, _)| f == name), "{name} has no series");
    }
    // The table is in `Counter` order: the variant is the index.
    for (i, (counter, _, _)) in SERIES.iter().enumerate() {
        assert_eq!(*counter as usize, i);
    }
}

#[test]
fn label_values_are_escaped() {
    let rows = [
        ("plain", "plain"),
        ("cram-md5", "cram-md5"),
        (r"a\b", r"a\\b"),
        ("say \"hi\"", r#"say \"hi\""#),
        ("two\nlines", r"two\nlines"),
        ("\\\"\n", r#"\\\"\n"#),
        ("", ""),
    ];
    for (raw, escaped) in rows {
        assert_eq!(escape_label_value(raw), escaped, "{raw:?}");
    }
}

#[test]
fn one_family_exactly() {
    let registry = Registry::new(2);
    let (core0, core1) = (registry.core(0).unwrap(), registry.core(1).unwrap());
    core0.add(Protocol::Imap, Counter::TlsOk, 3);
    core1.add(Protocol::Imap, Counter::TlsOk, 4);
    core1.add(Protocol::Smtp, Counter::TlsFailed, 1);
    let text = render(&registry.snapshot());
    let want = "\
# HELP postern_tls_handshakes_total TLS handshakes with clients (implicit TLS and STARTTLS), by result.
# TYPE postern_tls_handshakes_total counter
postern_tls_handshakes_total{protocol=\"imap\",core=\"0\",result=\"ok\"} 3
postern_tls_handshakes_total{protocol=\"imap\",core=\"1\",result=\"ok\"} 4
postern_tls_handshakes_total{protocol=\"pop3\",core=\"0\",result=\"ok\"} 0
postern_tls_handshakes_total{protocol=\"pop3\",core=\"1\",result=\"ok\"} 0
postern_tls_handshakes_total{protocol=\"smtp\",core=\"0\",result=\"ok\"} 0
postern_tls_handshakes_total{protocol=\"smtp\",core=\"1\",result=\"ok\"} 0
postern_tls_handshakes_total{protocol=\"imap\",core=\"0\",result=\"failed\"} 0
postern_tls_handshakes_total{protocol=\"imap\",core=\"1\",result=\"failed\"} 0
postern_tls_handshakes_total{protocol=\"pop3\",core=\"0\",result=\"failed\"} 0
postern_tls_handshakes_total{protocol=\"pop3\",core=\"1\",result=\"failed\"} 0
postern_tls_handshakes_total{protocol=\"smtp\",core=\"0\",result=\"failed\"} 0
postern_tls_handshakes_total{protocol=\"smtp\",core=\"1\",result=\"failed\"} 1";
    assert_eq!(family_lines(&text, "postern_tls_handshakes_total").join("\n"), want);
}

#[test]
fn histogram_exactly_summed_over_cores() {
    let registry = Registry::new(2);
    let (core0, core1) = (registry.core(0).unwrap(), registry.core(1).unwrap());
    core0.observe_auth(Protocol::Pop3, Duration::from_micros(800));
    core1.observe_auth(Protocol::Pop3, Duration::from_micros(1_000));
    core1.observe_auth(Protocol::Pop3, Duration::from_millis(30));
    core0.observe_auth(Protocol::Pop3, Duration::from_secs(9));
    let text = render(&registry.snapshot());
    let pop3: Vec<&str> = family_lines(&text, "postern_auth_request_duration_seconds_bucket")
        .into_iter()
        .chain(family_lines(&text, "postern_auth_request_duration_seconds_sum"))
        .chain(family_lines(&text, "postern_auth_request_duration_seconds_count"))
        .filter(|l| l.contains("pop3"))
        .collect();
    let want = "\
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.001\"} 2
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.0025\"} 2
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.005\"} 2
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.01\"} 2
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.025\"} 2
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.05\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.1\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.25\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"0.5\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"1\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"2.5\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"5\"} 3
postern_auth_request_duration_seconds_bucket{protocol=\"pop3\",le=\"+Inf\"} 4
postern_auth_request_duration_seconds_sum{protocol=\"pop3\"} 9.031800
postern_auth_request_duration_seconds_count{protocol=\"pop3\"} 4";
    assert_eq!(pop3.join("\n"), want);
    assert!(text.contains("# TYPE postern_auth_request_duration_seconds histogram\n"));
    assert!(text.contains("postern_auth_request_duration_seconds_count{protocol=\"imap\"} 0\n"));
}

#[test]
fn totals_sum_the_cores() {
    let registry = Registry::new(3);
    for (core, n) in [(0, 5), (1, 7), (2, u64::MAX)] {
        registry.core(core).unwrap().add(Protocol::Smtp, Counter::Accepted, n);
    }
    registry.core(1).unwrap().add(Protocol::Imap, Counter::Accepted, 2);
    let snapshot = registry.snapshot();
    // Counters wrap as Prometheus expects of a 64-bit counter, never panic.
    assert_eq!(snapshot.total(Protocol::Smtp, Counter::Accepted), 11);
    assert_eq!(snapshot.total(Protocol::Imap, Counter::Accepted), 2);
    assert_eq!(snapshot.total(Protocol::Pop3, Counter::Accepted), 0);
    assert_eq!(snapshot.get(1, Protocol::Smtp, Counter::Accepted), 7);
    assert_eq!(snapshot.get(9, Protocol::Smtp, Counter::Accepted), 0);
}

#[test]
fn every_sample_line_is_well_formed() {
    let registry = Registry::new(2);
    let text = render(&registry.snapshot());
    let mut samples = 0;
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP postern_") || line.starts_with("# TYPE postern_"),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let (name, labels) = series.split_once('{').unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        assert!(labels.ends_with('}') && labels.contains("protocol=\""), "{line}");
        samples += 1;
    }
    // Series per protocol and core, and 15 lines of histogram per protocol.
    assert_eq!(samples, SERIES.len() * 3 * 2 + 3 * 15);
    assert!(text.ends_with('\n'));
}

#[test]
fn counter_calls_reach_the_attached_core_only() {
    // Off a core (nothing attached) every call is a no-op.
    inc(Protocol::Imap, Counter::Accepted);
    let registry: &'static Registry = Box::leak(Box::new(Registry::new(2)));
    let core1 = registry.core(1).unwrap();
    std::thread::spawn(move || {
        attach(core1);
        let active = session_started(Protocol::Imap);
        tls_handshake(Protocol::Imap, true);
        auth_answered(
            Protocol::Imap,
            AuthMethod::CramMd5,
            &Ok(AuthReply::Reject {
                message: Vec::new(),
                wait: None,
                error_code: None,
                sasl_error: None,
            }),
            Duration::from_millis(3),
        );
        auth_answered(
            Protocol::Imap,
            AuthMethod::Plain,
            &Err(AuthError::TimedOut),
            Duration::ZERO,
        );
        auth_answered(
            Protocol::Imap,
            AuthMethod::Plain,
            &Ok(AuthReply::Retry { wait: Duration::ZERO }),
            Duration::ZERO,
        );
        backend_login(Protocol::Imap, false);
        let snapshot = registry.snapshot();
        assert_eq!(snapshot.get(1, Protocol::Imap, Counter::Active), 1);
        active.closed_early(CloseReason::LoginRefused.describe());
        let pop3 = session_started(Protocol::Pop3);
        let tally = RelayTally(Protocol::Pop3);
        tally.moved(true, 10, false);
        tally.moved(false, 400, false);
        tally.moved(false, 600, true);
        pop3.relay_done(&RelayStats {
            client_to_backend: 10,
            backend_to_client: 1000,
            spliced: 600,
            error: Some("proxy_timeout: no data for 5s".into()),
        });
    })
    .join()
    .unwrap();
    let s = registry.snapshot();
    let imap = |c| s.get(1, Protocol::Imap, c);
    let pop3 = |c| s.get(1, Protocol::Pop3, c);
    assert_eq!(imap(Counter::Accepted), 1);
    assert_eq!(imap(Counter::Active), 0);
    assert_eq!(imap(Counter::TlsOk), 1);
    assert_eq!(imap(Counter::AuthRequests), 3);
    assert_eq!(imap(Counter::LoginFailedCramMd5), 1);
    assert_eq!(imap(Counter::AuthErrorTimeout), 1);
    assert_eq!(imap(Counter::BackendLoginFailed), 1);
    assert_eq!(imap(Counter::ClosedLoginRefused), 1);
    assert_eq!(pop3(Counter::BytesClientToBackend), 10);
    assert_eq!(pop3(Counter::BytesBackendToClient), 1000);
    assert_eq!(pop3(Counter::BytesSpliced), 600);
    assert_eq!(pop3(Counter::BytesCopied), 410);
    assert_eq!(pop3(Counter::RelayProxyTimeout), 1);
    assert_eq!(s.get(0, Protocol::Imap, Counter::Accepted), 0);
    assert_eq!(s.auth_histogram(Protocol::Imap).0.iter().sum::<u64>(), 3);
}

#[test]
fn close_reasons_become_label_words() {
    let rows = [
        ("client logged out", Counter::ClosedClientLoggedOut),
        ("client sent too long command", Counter::ClosedCommandTooLong),
        ("closed by graceful shutdown", Counter::ClosedShuttingDown),
        ("client closed connection", Counter::ClosedClientClosed),
        ("client timed out", Counter::ClosedClientTimedOut),
        ("client timed out in TLS handshake", Counter::ClosedClientTimedOut),
        (
            "client timed out: command not complete within timeout",
            Counter::ClosedClientTimedOut,
        ),
        ("TLS handshake failed: bad record", Counter::ClosedTlsFailed),
        ("reading from client: connection reset", Counter::ClosedClientIoError),
        ("writing to client: broken pipe", Counter::ClosedClientIoError),
        ("session machine stalled", Counter::ClosedOther),
    ];
    for (reason, counter) in rows {
        assert_eq!(close_counter(reason), counter, "{reason}");
    }
    for reason in &CLOSE_REASONS {
        assert_eq!(close_counter(reason.describe()), close_reason_counter(reason));
    }
}

#[test]
fn requests_and_their_answers() {
    let rows: &[(&[u8], Decision)] = &[
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            Decision::Reply(Reply::Metrics { head: false }),
        ),
        (
            b"GET /metrics HTTP/1.0\r\n\r\n",
            Decision::Reply(Reply::Metrics { head: false }),
        ),
        (
            b"GET /metrics?x=1 HTTP/1.1\r\n\r\n",
            Decision::Reply(Reply::Metrics { head: false }),
        ),
        (
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
            Decision::Reply(Reply::Metrics { head: true }),
        ),
        (b"GET / HTTP/1.1\r\n\r\n", Decision::Reply(Reply::NotFound)),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", Decision::Reply(Reply::NotFound)),
        (
            b"POST /metrics HTTP/1.1\r\n\r\n",
            Decision::Reply(Reply::MethodNotAllowed),
        ),
        (b"GET /metrics HTTP/1.1\r\n", Decision::More),
        (b"GE", Decision::More),
        (b"\x01\x02 nonsense\r\n\r\n", Decision::Reply(Reply::BadRequest)),
        (b"GET /metrics HTTP/9.9\r\n\r\n", Decision::Reply(Reply::BadRequest)),
    ];
    for (request, want) in rows {
        assert_eq!(decide(request), *want, "{:?}", String::from_utf8_lossy(request));
    }
    let registry = Registry::new(1);
    let ok = String::from_utf8(response(Reply::Metrics { head: false }, &registry)).unwrap();
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    let head_only = response(Reply::Metrics { head: true }, &registry);
    assert!(head_only.ends_with(b"\r\n\r\n"));
    assert_eq!(
        response(Reply::NotFound, &registry),
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nNot found: try /metrics\n"
    );
}

fn parse(text: &str) -> Result<crate::config::Config, String> {
    crate::config::parse_str_offline(text, std::path::Path::new("/etc/postern/postern.conf")).map_err(|e| e.to_string())
}

const SERVER: &str = "auth_http 127.0.0.1:9000/auth; server { listen 127.0.0.1:143; }";

#[test]
fn metrics_listen_in_main_or_mail() {
    let addr = |text: &str| parse(text).unwrap().main.metrics_listen;
    assert_eq!(addr(&format!("mail {{ {SERVER} }}")), None);
    assert_eq!(
        addr(&format!("metrics_listen 127.0.0.1:9187;\nmail {{ {SERVER} }}")),
        Some("127.0.0.1:9187".parse().unwrap())
    );
    assert_eq!(
        addr(&format!("mail {{ metrics_listen [::1]:9187; {SERVER} }}")),
        Some("[::1]:9187".parse().unwrap())
    );
    assert_eq!(
        addr(&format!("metrics_listen 9187;\nmail {{ {SERVER} }}")),
        Some("0.0.0.0:9187".parse().unwrap())
    );
}

#[test]
fn metrics_listen_errors() {
    let rows = [
        (
            format!("metrics_listen 127.0.0.1:9187;\nmail {{ metrics_listen 127.0.0.1:9188; {SERVER} }}"),
            "\"metrics_listen\" directive is duplicate in /etc/postern/postern.conf:2",
        ),
        (
            format!("metrics_listen 127.0.0.1:143;\nmail {{ {SERVER} }}"),
            "duplicate \"127.0.0.1:143\" address and port pair in /etc/postern/postern.conf:2",
        ),
        (
            format!("metrics_listen 127.0.0.1;\nmail {{ {SERVER} }}"),
            "no port in \"127.0.0.1\" of the \"metrics_listen\" directive in /etc/postern/postern.conf:1",
        ),
        (
            format!("mail {{ {SERVER} server {{ metrics_listen 127.0.0.1:9187; }} }}"),
            "\"metrics_listen\" directive is not allowed here in /etc/postern/postern.conf:1",
        ),
    ];
    for (text, want) in rows {
        assert_eq!(parse(&text).unwrap_err(), want, "{text}");
    }
}
