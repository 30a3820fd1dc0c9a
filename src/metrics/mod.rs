//! Counters for `metrics_listen`: each core owns a block of them and is its
//! only writer, so an increment is a relaxed load and a relaxed store on a
//! cache line no other core writes (no lock, no atomic read-modify-write,
//! no line bouncing between cores). The scrape, on its own thread, reads
//! every core's block and renders the sum (`text.rs`), served by `http.rs`.
//!
//! The blocks live with the cores, not with the configuration: a reload
//! (SIGHUP) keeps them. With `metrics_listen` off no block exists and every
//! call here is a thread-local read and a branch.

pub mod http;
pub mod text;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::auth::{AuthError, AuthMethod, AuthReply, OAuthMechanism};
use crate::config::Protocol;
use crate::protocol::CloseReason;
use crate::relay::RelayStats;

/// The protocols in the order of a block's rows.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Imap, Protocol::Pop3, Protocol::Smtp];

fn row(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Imap => 0,
        Protocol::Pop3 => 1,
        Protocol::Smtp => 2,
    }
}

/// One row per counter: the variant, its family (`text::FAMILIES`) and the
/// labels it adds to `protocol` and `core`. The enum and the table come from
/// one list so an index can never point at the wrong series.
macro_rules! counters {
    ($($variant:ident => $family:literal, $labels:expr;)*) => {
        /// One series of a family, per protocol and core.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter {
            $($variant),*
        }

        /// `(counter, family, extra labels)`, in `Counter` order.
        pub(crate) const SERIES: &[(Counter, &str, Labels)] = &[$((Counter::$variant, $family, $labels)),*];
    };
}

counters! {
    Accepted => "postern_connections_accepted_total", &[];
    Active => "postern_connections_active", &[];
    RefusedPreauth => "postern_connections_refused_total", &[("reason", "client_preauth_limit")];
    WorkerConnectionsFull => "postern_worker_connections_full_total", &[];
    TlsOk => "postern_tls_handshakes_total", &[("result", "ok")];
    TlsFailed => "postern_tls_handshakes_total", &[("result", "failed")];
    LoginOkPlain => "postern_logins_total", &[("method", "plain"), ("result", "ok")];
    LoginOkApop => "postern_logins_total", &[("method", "apop"), ("result", "ok")];
    LoginOkCramMd5 => "postern_logins_total", &[("method", "cram-md5"), ("result", "ok")];
    LoginOkExternal => "postern_logins_total", &[("method", "external"), ("result", "ok")];
    LoginOkNone => "postern_logins_total", &[("method", "none"), ("result", "ok")];
    LoginOkOAuthBearer => "postern_logins_total", &[("method", "oauthbearer"), ("result", "ok")];
    LoginOkXOAuth2 => "postern_logins_total", &[("method", "xoauth2"), ("result", "ok")];
    LoginFailedPlain => "postern_logins_total", &[("method", "plain"), ("result", "failed")];
    LoginFailedApop => "postern_logins_total", &[("method", "apop"), ("result", "failed")];
    LoginFailedCramMd5 => "postern_logins_total", &[("method", "cram-md5"), ("result", "failed")];
    LoginFailedExternal => "postern_logins_total", &[("method", "external"), ("result", "failed")];
    LoginFailedNone => "postern_logins_total", &[("method", "none"), ("result", "failed")];
    LoginFailedOAuthBearer => "postern_logins_total", &[("method", "oauthbearer"), ("result", "failed")];
    LoginFailedXOAuth2 => "postern_logins_total", &[("method", "xoauth2"), ("result", "failed")];
    LoginsDeferred => "postern_logins_deferred_total", &[];
    LoginsThrottled => "postern_logins_throttled_total", &[];
    AuthRequests => "postern_auth_requests_total", &[];
    AuthErrorConnect => "postern_auth_errors_total", &[("kind", "connect")];
    AuthErrorIo => "postern_auth_errors_total", &[("kind", "io")];
    AuthErrorTimeout => "postern_auth_errors_total", &[("kind", "timeout")];
    AuthErrorTooLarge => "postern_auth_errors_total", &[("kind", "too_large")];
    AuthErrorMalformed => "postern_auth_errors_total", &[("kind", "malformed")];
    BackendLoginOk => "postern_backend_logins_total", &[("result", "ok")];
    BackendLoginFailed => "postern_backend_logins_total", &[("result", "failed")];
    BackendConnectErrors => "postern_backend_connect_errors_total", &[];
    BytesClientToBackend => "postern_relayed_bytes_total", &[("direction", "client_to_backend")];
    BytesBackendToClient => "postern_relayed_bytes_total", &[("direction", "backend_to_client")];
    KtlsKernel => "postern_ktls_handoffs_total", &[("result", "kernel")];
    KtlsKept => "postern_ktls_handoffs_total", &[("result", "kept")];
    KtlsFailed => "postern_ktls_handoffs_total", &[("result", "failed")];
    BytesSpliced => "postern_relayed_bytes_by_mode_total", &[("mode", "splice")];
    BytesCopied => "postern_relayed_bytes_by_mode_total", &[("mode", "copy")];
    ClosedClientLoggedOut => "postern_sessions_closed_total", &[("reason", "client_logged_out")];
    ClosedCommandTooLong => "postern_sessions_closed_total", &[("reason", "command_too_long")];
    ClosedTooManyErrors => "postern_sessions_closed_total", &[("reason", "too_many_invalid_commands")];
    ClosedLoginRefused => "postern_sessions_closed_total", &[("reason", "login_refused")];
    ClosedAuthFailed => "postern_sessions_closed_total", &[("reason", "auth_server_failed")];
    ClosedBackendFailed => "postern_sessions_closed_total", &[("reason", "backend_login_failed")];
    ClosedTalkedFirst => "postern_sessions_closed_total", &[("reason", "talked_before_greeting")];
    ClosedShuttingDown => "postern_sessions_closed_total", &[("reason", "graceful_shutdown")];
    ClosedPreauthLimit => "postern_sessions_closed_total", &[("reason", "client_preauth_limit")];
    ClosedClientClosed => "postern_sessions_closed_total", &[("reason", "client_closed")];
    ClosedClientTimedOut => "postern_sessions_closed_total", &[("reason", "client_timed_out")];
    ClosedClientIoError => "postern_sessions_closed_total", &[("reason", "client_io_error")];
    ClosedTlsFailed => "postern_sessions_closed_total", &[("reason", "tls_handshake_failed")];
    ClosedOther => "postern_sessions_closed_total", &[("reason", "other")];
    RelayNormal => "postern_sessions_closed_total", &[("reason", "normal")];
    RelayProxyTimeout => "postern_sessions_closed_total", &[("reason", "proxy_timeout")];
    RelayError => "postern_sessions_closed_total", &[("reason", "error")];
}

/// Labels a series adds to `protocol` and `core`: name and value.
pub(crate) type Labels = &'static [(&'static str, &'static str)];

/// Counters per protocol.
pub const COUNTERS: usize = SERIES.len();

/// Upper bounds of the auth request latency buckets: `le` as written, and
/// in microseconds. From a local auth server's millisecond to the 5 s at
/// which a slow one is an outage.
pub(crate) const AUTH_BUCKETS: [(&str, u64); 12] = [
    ("0.001", 1_000),
    ("0.0025", 2_500),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("5", 5_000_000),
];

/// Buckets stored per protocol: one per bound, and the one above the last.
const BUCKET_SLOTS: usize = AUTH_BUCKETS.len() + 1;

/// One core's counters. Aligned to 128 bytes so that two cores' blocks
/// never share a cache line, nor the pair of lines Intel's adjacent-line
/// prefetcher fetches together.
#[repr(align(128))]
pub struct CoreMetrics {
    counters: [[AtomicU64; COUNTERS]; 3],
    /// Auth latencies, not cumulative: slot `i` counts those in
    /// `(bound[i-1], bound[i]]`.
    auth_buckets: [[AtomicU64; BUCKET_SLOTS]; 3],
    auth_micros: [AtomicU64; 3],
}

impl Default for CoreMetrics {
    fn default() -> Self {
        CoreMetrics {
            counters: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            auth_buckets: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            auth_micros: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Only the owning core calls these: a load and a store suffice because no
/// other thread writes the cell, and the scrape reads whole values (an
/// aligned 64-bit store is never torn).
fn bump(cell: &AtomicU64, n: u64) {
    cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
}

impl CoreMetrics {
    pub fn add(&self, protocol: Protocol, counter: Counter, n: u64) {
        bump(&self.counters[row(protocol)][counter as usize], n);
    }

    /// The gauge goes down on the core that raised it (sessions never
    /// change core), so it never wraps below zero.
    fn sub(&self, protocol: Protocol, counter: Counter, n: u64) {
        let cell = &self.counters[row(protocol)][counter as usize];
        cell.store(cell.load(Relaxed).wrapping_sub(n), Relaxed);
    }

    pub fn observe_auth(&self, protocol: Protocol, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = AUTH_BUCKETS
            .iter()
            .position(|&(_, bound)| micros <= bound)
            .unwrap_or(AUTH_BUCKETS.len());
        let p = row(protocol);
        bump(&self.auth_buckets[p][slot], 1);
        bump(&self.auth_micros[p], micros);
    }

    fn snapshot(&self) -> CoreSnapshot {
        CoreSnapshot {
            counters: std::array::from_fn(|p| std::array::from_fn(|c| self.counters[p][c].load(Relaxed))),
            auth_buckets: std::array::from_fn(|p| std::array::from_fn(|b| self.auth_buckets[p][b].load(Relaxed))),
            auth_micros: std::array::from_fn(|p| self.auth_micros[p].load(Relaxed)),
        }
    }
}

/// Every core's block, indexed by core.
pub struct Registry {
    cores: Box<[CoreMetrics]>,
}

impl Registry {
    pub fn new(cores: usize) -> Registry {
        Registry {
            cores: (0..cores).map(|_| CoreMetrics::default()).collect(),
        }
    }

    pub fn core(&self, index: usize) -> Option<&CoreMetrics> {
        self.cores.get(index)
    }

    /// The values now. Each is read once; values of different counters may
    /// be a few increments apart, as with any scrape of live counters.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            cores: self.cores.iter().map(CoreMetrics::snapshot).collect(),
        }
    }
}

/// One core's values at a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreSnapshot {
    pub counters: [[u64; COUNTERS]; 3],
    pub auth_buckets: [[u64; BUCKET_SLOTS]; 3],
    pub auth_micros: [u64; 3],
}

impl Default for CoreSnapshot {
    fn default() -> Self {
        CoreSnapshot {
            counters: [[0; COUNTERS]; 3],
            auth_buckets: [[0; BUCKET_SLOTS]; 3],
            auth_micros: [0; 3],
        }
    }
}

/// Every core's values at a scrape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub cores: Vec<CoreSnapshot>,
}

impl Snapshot {
    pub fn get(&self, core: usize, protocol: Protocol, counter: Counter) -> u64 {
        self.cores
            .get(core)
            .map_or(0, |c| c.counters[row(protocol)][counter as usize])
    }

    /// `counter` summed over the cores.
    pub fn total(&self, protocol: Protocol, counter: Counter) -> u64 {
        self.cores.iter().fold(0u64, |sum, c| {
            sum.wrapping_add(c.counters[row(protocol)][counter as usize])
        })
    }

    /// The auth latency histogram of `protocol` summed over the cores:
    /// per-slot counts (not cumulative) and the sum in microseconds.
    pub fn auth_histogram(&self, protocol: Protocol) -> ([u64; BUCKET_SLOTS], u64) {
        let p = row(protocol);
        let mut buckets = [0u64; BUCKET_SLOTS];
        let mut micros = 0u64;
        for core in &self.cores {
            for (sum, n) in buckets.iter_mut().zip(core.auth_buckets[p]) {
                *sum = sum.wrapping_add(n);
            }
            micros = micros.wrapping_add(core.auth_micros[p]);
        }
        (buckets, micros)
    }
}

thread_local! {
    /// The block of the core this thread runs; `None` off the cores and
    /// when metrics are off.
    static CORE: Cell<Option<&'static CoreMetrics>> = const { Cell::new(None) };
}

/// Makes `block` the calling core's, for every counter call on its thread.
pub fn attach(block: &'static CoreMetrics) {
    CORE.with(|c| c.set(Some(block)));
}

fn with(f: impl FnOnce(&CoreMetrics)) {
    if let Some(block) = CORE.with(Cell::get) {
        f(block);
    }
}

/// Adds one to `counter` on this core.
pub fn inc(protocol: Protocol, counter: Counter) {
    with(|m| m.add(protocol, counter, 1));
}

/// A session counted as accepted and active; active again less one when
/// it ends (one of the methods below, which consume it) or drops (a
/// session cut short by `worker_shutdown_timeout`). Ending through a method
/// counts the end before the session's last log line.
#[must_use]
pub struct ActiveSession(Protocol);

impl Drop for ActiveSession {
    fn drop(&mut self) {
        with(|m| m.sub(self.0, Counter::Active, 1));
    }
}

pub fn session_started(protocol: Protocol) -> ActiveSession {
    with(|m| {
        m.add(protocol, Counter::Accepted, 1);
        m.add(protocol, Counter::Active, 1);
    });
    ActiveSession(protocol)
}

impl ActiveSession {
    /// Refused at once by `client_preauth_limit`.
    pub fn refused_preauth(self) {
        with(|m| {
            m.add(self.0, Counter::RefusedPreauth, 1);
            m.add(self.0, Counter::ClosedPreauthLimit, 1);
        });
    }

    /// Ended before the relay; `reason` is the text of its log line.
    pub fn closed_early(self, reason: &str) {
        inc(self.0, close_counter(reason));
    }

    /// A relayed session ended: how it ended (its bytes were counted as
    /// they moved, by its `RelayTally`).
    pub fn relay_done(self, stats: &RelayStats) {
        let protocol = self.0;
        with(|m| {
            let end = match &stats.error {
                None => Counter::RelayNormal,
                Some(e) if e.starts_with("proxy_timeout") => Counter::RelayProxyTimeout,
                Some(_) => Counter::RelayError,
            };
            m.add(protocol, end, 1);
        });
    }
}

/// A relay's bytes, counted as they move (a long IMAP IDLE session's
/// traffic shows while it lasts, not when it ends).
#[derive(Debug, Clone, Copy)]
pub struct RelayTally(pub Protocol);

impl RelayTally {
    /// `n` bytes moved one way, through a pipe or through memory.
    pub fn moved(self, to_backend: bool, n: u64, spliced: bool) {
        with(|m| {
            let way = if to_backend {
                Counter::BytesClientToBackend
            } else {
                Counter::BytesBackendToClient
            };
            m.add(self.0, way, n);
            m.add(
                self.0,
                if spliced {
                    Counter::BytesSpliced
                } else {
                    Counter::BytesCopied
                },
                n,
            );
        });
    }
}

pub fn tls_handshake(protocol: Protocol, ok: bool) {
    inc(protocol, if ok { Counter::TlsOk } else { Counter::TlsFailed });
}

/// One auth_http round trip, `took` long.
pub fn auth_answered(protocol: Protocol, method: AuthMethod, reply: &Result<AuthReply, AuthError>, took: Duration) {
    with(|m| {
        m.add(protocol, Counter::AuthRequests, 1);
        m.observe_auth(protocol, took);
        let counter = match reply {
            Ok(AuthReply::Accept { .. }) => login_counter(method, true),
            Ok(AuthReply::Reject { .. }) => login_counter(method, false),
            // Asked again after the wait: not a decision yet.
            Ok(AuthReply::Retry { .. }) => return,
            Err(e) => auth_error_counter(e),
        };
        m.add(protocol, counter, 1);
    });
}

fn login_counter(method: AuthMethod, ok: bool) -> Counter {
    match (method, ok) {
        (AuthMethod::Plain, true) => Counter::LoginOkPlain,
        (AuthMethod::Apop, true) => Counter::LoginOkApop,
        (AuthMethod::CramMd5, true) => Counter::LoginOkCramMd5,
        (AuthMethod::External, true) => Counter::LoginOkExternal,
        (AuthMethod::None, true) => Counter::LoginOkNone,
        (AuthMethod::Plain, false) => Counter::LoginFailedPlain,
        (AuthMethod::Apop, false) => Counter::LoginFailedApop,
        (AuthMethod::CramMd5, false) => Counter::LoginFailedCramMd5,
        (AuthMethod::External, false) => Counter::LoginFailedExternal,
        (AuthMethod::None, false) => Counter::LoginFailedNone,
        (AuthMethod::OAuth(OAuthMechanism::OAuthBearer), true) => Counter::LoginOkOAuthBearer,
        (AuthMethod::OAuth(OAuthMechanism::XOAuth2), true) => Counter::LoginOkXOAuth2,
        (AuthMethod::OAuth(OAuthMechanism::OAuthBearer), false) => Counter::LoginFailedOAuthBearer,
        (AuthMethod::OAuth(OAuthMechanism::XOAuth2), false) => Counter::LoginFailedXOAuth2,
    }
}

fn auth_error_counter(e: &AuthError) -> Counter {
    match e {
        AuthError::Connect(_) => Counter::AuthErrorConnect,
        AuthError::Io(_) => Counter::AuthErrorIo,
        AuthError::TimedOut => Counter::AuthErrorTimeout,
        AuthError::TooLarge => Counter::AuthErrorTooLarge,
        AuthError::Malformed(_) => Counter::AuthErrorMalformed,
    }
}

/// The backend login ended, logged in or not (a connect error included).
pub fn backend_login(protocol: Protocol, ok: bool) {
    inc(
        protocol,
        if ok {
            Counter::BackendLoginOk
        } else {
            Counter::BackendLoginFailed
        },
    );
}

/// Every `CloseReason`, to tell its description from the driver's own
/// reasons.
const CLOSE_REASONS: [CloseReason; 8] = [
    CloseReason::ClientQuit,
    CloseReason::CommandTooLong,
    CloseReason::TooManyErrors,
    CloseReason::LoginRefused,
    CloseReason::AuthFailed,
    CloseReason::BackendFailed,
    CloseReason::TalkedFirst,
    CloseReason::ShuttingDown,
];

fn close_reason_counter(reason: &CloseReason) -> Counter {
    // Exhaustive: a new reason does not compile until it has its series
    // (and should join `CLOSE_REASONS`).
    match reason {
        CloseReason::ClientQuit => Counter::ClosedClientLoggedOut,
        CloseReason::CommandTooLong => Counter::ClosedCommandTooLong,
        CloseReason::TooManyErrors => Counter::ClosedTooManyErrors,
        CloseReason::LoginRefused => Counter::ClosedLoginRefused,
        CloseReason::AuthFailed => Counter::ClosedAuthFailed,
        CloseReason::BackendFailed => Counter::ClosedBackendFailed,
        CloseReason::TalkedFirst => Counter::ClosedTalkedFirst,
        CloseReason::ShuttingDown => Counter::ClosedShuttingDown,
    }
}

/// The session driver reports its end as the log line's text; the words
/// it uses are matched here, in one place, rather than threading an enum
/// through every return of the driver.
fn close_counter(reason: &str) -> Counter {
    if let Some(known) = CLOSE_REASONS.iter().find(|r| r.describe() == reason) {
        return close_reason_counter(known);
    }
    if reason == "client closed connection" {
        Counter::ClosedClientClosed
    } else if reason.starts_with("client timed out") {
        Counter::ClosedClientTimedOut
    } else if reason.starts_with("TLS handshake failed") {
        Counter::ClosedTlsFailed
    } else if reason.starts_with("reading from client") || reason.starts_with("writing to client") {
        Counter::ClosedClientIoError
    } else {
        Counter::ClosedOther
    }
}

#[cfg(test)]
mod tests;
