//! The Prometheus text exposition format, version 0.0.4, of a `Snapshot`.

use std::fmt::Write;

use super::{Snapshot, AUTH_BUCKETS, PROTOCOLS, SERIES};

/// The `Content-Type` of `render`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Each family of `SERIES`, in output order: name, type, help.
pub(crate) const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        "postern_connections_accepted_total",
        Kind::Counter,
        "Client connections accepted.",
    ),
    (
        "postern_connections_active",
        Kind::Gauge,
        "Client sessions open now, logging in or relayed.",
    ),
    (
        "postern_connections_refused_total",
        Kind::Counter,
        "Client connections refused at once, by reason.",
    ),
    (
        "postern_worker_connections_full_total",
        Kind::Counter,
        "Times a listener stopped accepting because the core served worker_connections sessions; the kernel queued new connections meanwhile.",
    ),
    (
        "postern_tls_handshakes_total",
        Kind::Counter,
        "TLS handshakes with clients (implicit TLS and STARTTLS), by result.",
    ),
    (
        "postern_logins_total",
        Kind::Counter,
        "Logins the auth server decided, by method and result (ok: Auth-Status OK; failed: refused).",
    ),
    (
        "postern_logins_deferred_total",
        Kind::Counter,
        "Logins told to retry because auth_http_concurrency and auth_http_queue were full.",
    ),
    (
        "postern_logins_throttled_total",
        Kind::Counter,
        "Logins refused by auth_fail_limit without asking the auth server.",
    ),
    (
        "postern_auth_requests_total",
        Kind::Counter,
        "Requests sent to the auth_http server.",
    ),
    (
        "postern_auth_errors_total",
        Kind::Counter,
        "Auth requests that got no decision, by kind.",
    ),
    (
        "postern_backend_logins_total",
        Kind::Counter,
        "Logins to the backend, by result (failed includes connect errors).",
    ),
    (
        "postern_backend_connect_errors_total",
        Kind::Counter,
        "Connections to the backend that could not be made.",
    ),
    (
        "postern_relayed_bytes_total",
        Kind::Counter,
        "Bytes relayed after login, by direction, counted as they move.",
    ),
    (
        "postern_ktls_handoffs_total",
        Kind::Counter,
        "Logged-in sessions with TLS on a side, where kernel TLS is on: handed to the kernel, kept in rustls, or failed (the kernel refused the keys).",
    ),
    (
        "postern_relayed_bytes_by_mode_total",
        Kind::Counter,
        "Bytes relayed after login, both directions, by splice (never in user space) or copy.",
    ),
    (
        "postern_sessions_closed_total",
        Kind::Counter,
        "Sessions ended, by reason: before the relay as the session log line says, after it normal, proxy_timeout or error.",
    ),
];

const AUTH_HISTOGRAM: &str = "postern_auth_request_duration_seconds";
const AUTH_HISTOGRAM_HELP: &str = "Time from sending an auth request to its decision or error, all cores.";

/// `value` as a label value: backslash, double quote and line feed escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out
}

/// `text` as a HELP line's docstring: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Seconds with microsecond precision, without a float's rounding.
fn seconds(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Every family: counters and gauges per protocol and core, the auth
/// latency histogram per protocol, summed over the cores.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(32 * 1024);
    for &(family, kind, help) in FAMILIES {
        header(&mut out, family, kind.word(), help);
        for &(counter, _, extra) in SERIES.iter().filter(|(_, f, _)| *f == family) {
            for protocol in PROTOCOLS {
                for core in 0..snapshot.cores.len() {
                    let core_text = core.to_string();
                    let mut pairs = vec![("protocol", protocol.name()), ("core", core_text.as_str())];
                    pairs.extend_from_slice(extra);
                    let value = snapshot.get(core, protocol, counter);
                    let _ = writeln!(out, "{family}{} {value}", labels(&pairs));
                }
            }
        }
    }
    header(&mut out, AUTH_HISTOGRAM, "histogram", AUTH_HISTOGRAM_HELP);
    for protocol in PROTOCOLS {
        let (buckets, micros) = snapshot.auth_histogram(protocol);
        let mut cumulative = 0u64;
        for (i, count) in buckets.iter().enumerate() {
            cumulative = cumulative.wrapping_add(*count);
            let le = AUTH_BUCKETS.get(i).map_or("+Inf", |(le, _)| le);
            let _ = writeln!(
                out,
                "{AUTH_HISTOGRAM}_bucket{} {cumulative}",
                labels(&[("protocol", protocol.name()), ("le", le)])
            );
        }
        let only = labels(&[("protocol", protocol.name())]);
        let _ = writeln!(out, "{AUTH_HISTOGRAM}_sum{only} {}", seconds(micros));
        let _ = writeln!(out, "{AUTH_HISTOGRAM}_count{only} {cumulative}");
    }
    out
}
