//! The sans-IO protocol core: one machine per protocol front end and one per
//! backend login, all plain synchronous code. Bytes go in through `feed`,
//! answers through `on_auth` / `on_backend`; `poll` returns the next order for
//! the driver (`session/`). No sockets, no clock, no executor here.

pub mod backend;
pub mod imap;
pub mod line;
pub mod oauth;
pub mod pop3;
pub mod sasl;
pub mod smtp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::AuthRequest;
use crate::config::Starttls;

/// What a machine is given at birth and may not fetch itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSeed {
    /// The client's address; `None` on a unix-socket listener.
    pub client: Option<SocketAddr>,
    /// Per-session random bytes from the driver, for the salts of APOP and
    /// CRAM-MD5 (later issues): the machine never seeds its own randomness.
    pub random: [u8; 16],
    /// Seconds since the epoch when the session began, for salts.
    pub now_unix: u64,
    /// The connection is TLS from its first byte (`listen ... ssl`):
    /// STARTTLS is neither offered nor needed.
    pub tls: bool,
}

/// Where a session stands with TLS on the client side, the same in every
/// protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Privacy {
    /// Plaintext: STARTTLS may still come, as `starttls` allows.
    Plain,
    /// STARTTLS was accepted and answered; the driver runs the handshake.
    /// Nothing is read meanwhile: a byte the client sent behind STARTTLS in
    /// plaintext must never become a command of the private session.
    AwaitingHandshake,
    /// TLS, from the first byte (`listen ... ssl`) or since STARTTLS.
    Tls,
}

/// `starttls` and the session's privacy together: what a front end offers
/// and what it refuses, decided as nginx decides it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientTls {
    mode: Starttls,
    privacy: Privacy,
}

impl ClientTls {
    pub(crate) fn new(mode: Starttls, seed: &SessionSeed) -> Self {
        let privacy = if seed.tls { Privacy::Tls } else { Privacy::Plain };
        ClientTls { mode, privacy }
    }

    /// Still plaintext: the capability lists offer STARTTLS (per `mode`).
    pub(crate) fn plain(&self) -> bool {
        self.privacy == Privacy::Plain
    }

    /// STARTTLS/STLS is accepted now: enabled, and not private already (a
    /// second STARTTLS is an invalid command).
    pub(crate) fn can_start(&self) -> bool {
        self.plain() && self.mode != Starttls::Off
    }

    /// nginx's `ngx_mail_starttls_only`: `starttls only` and still
    /// plaintext, so no credentials may be taken yet.
    pub(crate) fn must_start_first(&self) -> bool {
        self.plain() && self.mode == Starttls::Only
    }

    /// False from STARTTLS until the handshake completes.
    pub(crate) fn reading(&self) -> bool {
        self.privacy != Privacy::AwaitingHandshake
    }

    /// STARTTLS accepted, its reply already queued: order the handshake.
    pub(crate) fn start(&mut self, out: &mut Outbox) {
        debug_assert!(self.can_start());
        self.privacy = Privacy::AwaitingHandshake;
        out.push(Step::StartTls);
    }

    /// The handshake completed. Whether one was awaited: a call at any other
    /// time is a driver bug and changes nothing.
    pub(crate) fn handshake_done(&mut self) -> bool {
        let awaited = self.privacy == Privacy::AwaitingHandshake;
        if awaited {
            self.privacy = Privacy::Tls;
        }
        awaited
    }
}

/// Orders from a front-end machine to its driver, in the order given.
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Ask the auth server; answer with `on_auth`.
    Authenticate(AuthRequest),
    /// Sleep this long, then poll again (Auth-Wait). The core keeps serving
    /// other sessions meanwhile.
    Wait(Duration),
    /// Sleep this long while still reading the client and feeding what it
    /// sends; then call `on_pause_end` (SMTP's greeting delay, which exists
    /// to catch clients that talk first).
    Pause(Duration),
    /// Connect to the backend and drive `login` until it is done; answer with
    /// `on_backend`.
    ConnectBackend(BackendPlan),
    /// Relay bytes both ways from now on: the client bytes `feed` did not
    /// consume go to the backend first.
    Relay,
    /// Start TLS on the client connection now (STARTTLS/STLS accepted, its
    /// reply already sent): every client byte `feed` did not consume is
    /// discarded, never read as a command after the handshake. Then call
    /// `on_tls_started`; a failed handshake ends the session.
    StartTls,
    /// Close the client connection after writing what was sent before.
    Close(CloseReason),
}

/// The steps a front-end machine has decided and the driver has not polled
/// yet, in order.
#[derive(Debug, Default)]
pub(crate) struct Outbox(VecDeque<Step>);

impl Outbox {
    pub(crate) fn pop(&mut self) -> Option<Step> {
        self.0.pop_front()
    }

    pub(crate) fn push(&mut self, step: Step) {
        self.0.push_back(step);
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.send_owned(bytes.to_vec());
    }

    /// The end of a backend login, the same in every protocol: the reply
    /// (the backend's, or `internal_error`) to the client, then the relay or
    /// the close. Whether the session goes on to the relay.
    pub(crate) fn finish_login(&mut self, outcome: BackendOutcome, internal_error: &[u8]) -> bool {
        match outcome {
            BackendOutcome::LoggedIn { client_reply } => {
                self.send_owned(client_reply);
                self.push(Step::Relay);
                true
            }
            BackendOutcome::Failed { client_reply } => {
                self.send(client_reply.as_deref().unwrap_or(internal_error));
                self.push(Step::Close(CloseReason::BackendFailed));
                false
            }
        }
    }

    /// Replies to pipelined commands join one write.
    pub(crate) fn send_owned(&mut self, bytes: Vec<u8>) {
        if let Some(Step::Send(last)) = self.0.back_mut() {
            last.extend_from_slice(&bytes);
        } else {
            self.0.push_back(Step::Send(bytes));
        }
    }
}

/// A front-end machine of any protocol: the driver's one type.
#[derive(Debug)]
pub enum FrontEnd {
    Imap(imap::ImapFront),
    Pop3(pop3::Pop3Front),
    Smtp(smtp::SmtpFront),
}

/// Calls the same method on whichever machine this is.
macro_rules! each {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            FrontEnd::Imap($m) => $body,
            FrontEnd::Pop3($m) => $body,
            FrontEnd::Smtp($m) => $body,
        }
    };
}

impl FrontEnd {
    #[must_use]
    pub fn poll(&mut self) -> Option<Step> {
        each!(self, m => m.poll())
    }

    pub fn feed(&mut self, input: &[u8]) -> usize {
        each!(self, m => m.feed(input))
    }

    pub fn wants_input(&self) -> bool {
        each!(self, m => m.wants_input())
    }

    pub fn on_auth(&mut self, reply: Result<crate::auth::AuthReply, crate::auth::AuthError>) {
        each!(self, m => m.on_auth(reply))
    }

    pub fn on_backend(&mut self, outcome: BackendOutcome) {
        each!(self, m => m.on_backend(outcome))
    }

    pub fn on_shutdown(&mut self) {
        each!(self, m => m.on_shutdown())
    }

    /// The client's IMAP ID parameters, if it sent ID before logging in.
    pub fn client_id(&self) -> Option<&imap::ClientId> {
        match self {
            FrontEnd::Imap(m) => m.client_id(),
            _ => None,
        }
    }

    /// The STARTTLS handshake completed: the session is now private.
    pub fn on_tls_started(&mut self) {
        each!(self, m => m.on_tls_started())
    }

    /// Only SMTP pauses (its greeting delay).
    pub fn on_pause_end(&mut self) {
        if let FrontEnd::Smtp(m) = self {
            m.on_pause_end();
        }
    }
}

/// A session's APOP / CRAM-MD5 salt as nginx makes it:
/// `<random.time@server_name>`.
pub fn salt(seed: &SessionSeed, server_name: &str) -> Vec<u8> {
    let mut random = [0u8; 8];
    random.copy_from_slice(&seed.random[..8]);
    // nginx prints a positive C long; keep it to 63 bits likewise.
    let random = u64::from_le_bytes(random) >> 1;
    format!("<{random}.{}@{server_name}>", seed.now_unix).into_bytes()
}

/// Why a session ended before the relay, for the session's log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client said goodbye (LOGOUT).
    ClientQuit,
    /// A command longer than the client buffer.
    CommandTooLong,
    /// `max_errors` invalid commands.
    TooManyErrors,
    /// The auth server refused the login without Auth-Wait.
    LoginRefused,
    /// The auth server could not be asked, or answered nonsense.
    AuthFailed,
    /// The backend refused, failed or could not be reached.
    BackendFailed,
    /// An SMTP client talked before the greeting.
    TalkedFirst,
    /// A graceful stop closed a session that had not logged in.
    ShuttingDown,
}

impl CloseReason {
    pub fn describe(&self) -> &'static str {
        match self {
            CloseReason::ClientQuit => "client logged out",
            CloseReason::CommandTooLong => "client sent too long command",
            CloseReason::TooManyErrors => "client sent too many invalid commands",
            CloseReason::LoginRefused => "login refused by auth server",
            CloseReason::AuthFailed => "auth server failed",
            CloseReason::BackendFailed => "backend login failed",
            CloseReason::TalkedFirst => "client was rejected before greeting",
            CloseReason::ShuttingDown => "closed by graceful shutdown",
        }
    }
}

/// Where to go and how to log in there, decided after the auth server's OK.
#[derive(Debug)]
pub struct BackendPlan {
    pub addr: SocketAddr,
    /// The login user, for the session log line (the password stays inside
    /// `login`).
    pub user: Vec<u8>,
    pub login: backend::BackendLogin,
}

/// How the backend login ended, as the driver reports it to the front end.
#[derive(Debug, PartialEq, Eq)]
pub enum BackendOutcome {
    /// Logged in: `client_reply` is what the client is sent before the relay.
    LoggedIn { client_reply: Vec<u8> },
    /// Refused or failed. `client_reply` is the backend's own line when
    /// `proxy_pass_error_message` is on, else `None` (internal error line).
    Failed { client_reply: Option<Vec<u8>> },
}

/// Postern's refusal of a client at connection time (`client_preauth_limit`),
/// each protocol's way of saying "not now" before a greeting; the
/// connection closes after it.
pub fn busy_greeting(protocol: crate::config::Protocol) -> &'static [u8] {
    use crate::config::Protocol;
    match protocol {
        Protocol::Imap => b"* BYE Too many connections from your address, try again later\r\n",
        Protocol::Pop3 => b"-ERR [SYS/TEMP] Too many connections from your address, try again later\r\n",
        Protocol::Smtp => b"421 4.7.0 Too many connections from your address, try again later\r\n",
    }
}

/// What the front end is told in place of the auth server's answer when
/// the login got no auth slot (`auth_http_concurrency`): a refusal the
/// client may retry at once, worded as the protocol's temporary failure
/// (IMAP `NO [UNAVAILABLE]`, RFC 5530; POP3 `-ERR [SYS/TEMP]`, RFC 3206;
/// SMTP `451 4.3.0`).
pub fn busy_auth_reply(protocol: crate::config::Protocol) -> crate::auth::AuthReply {
    use crate::config::Protocol;
    let (message, error_code): (&[u8], Option<&[u8]>) = match protocol {
        Protocol::Imap => (b"[UNAVAILABLE] Server busy, try again later", None),
        Protocol::Pop3 => (b"[SYS/TEMP] Server busy, try again later", None),
        Protocol::Smtp => (b"Server busy, try again later", Some(b"451 4.3.0")),
    };
    crate::auth::AuthReply::Reject {
        message: message.to_vec(),
        wait: Some(Duration::ZERO),
        error_code: error_code.map(<[u8]>::to_vec),
        sasl_error: None,
    }
}

/// What the front end is told when `auth_fail_limit` refuses a login
/// without asking the auth server: the protocol's temporary failure, and the
/// session closes (no Auth-Wait: a client refused this often is not invited
/// to go on).
pub fn throttled_auth_reply(protocol: crate::config::Protocol) -> crate::auth::AuthReply {
    use crate::config::Protocol;
    let (message, error_code): (&[u8], Option<&[u8]>) = match protocol {
        Protocol::Imap => (b"[UNAVAILABLE] Too many failed logins, try again later", None),
        Protocol::Pop3 => (b"[SYS/TEMP] Too many failed logins, try again later", None),
        Protocol::Smtp => (b"Too many failed logins, try again later", Some(b"454 4.7.0")),
    };
    crate::auth::AuthReply::Reject {
        message: message.to_vec(),
        wait: None,
        error_code: error_code.map(<[u8]>::to_vec),
        sasl_error: None,
    }
}

/// The first property of every front-end machine, shared by their tests:
/// however the client's bytes are split across reads, the steps are the same.
#[cfg(test)]
pub(crate) fn same_steps_however_split<M>(
    script: &[u8],
    start: impl Fn() -> M,
    feed: fn(&mut M, &[u8]) -> usize,
    render: impl Fn(&mut M) -> Vec<String>,
) -> String {
    let split = Split {
        start: &start,
        feed,
        render: &render,
        reading: |_| false,
        limit: 0,
    };
    let whole = split.steps(script, &[]);
    for cut in 0..=script.len() {
        assert_eq!(split.steps(script, &[cut]), whole, "cut at {cut}");
    }
    let every_byte: Vec<usize> = (1..script.len()).collect();
    assert_eq!(split.steps(script, &every_byte), whole, "one byte per read");
    whole
}

/// A machine under test as a driver sees it, for the split properties of
/// `same_steps_however_split` and the proptests.
#[cfg(test)]
pub(crate) struct Split<'a, M> {
    pub(crate) start: &'a dyn Fn() -> M,
    pub(crate) feed: fn(&mut M, &[u8]) -> usize,
    /// The steps polled after a feed, as text.
    pub(crate) render: &'a dyn Fn(&mut M) -> Vec<String>,
    /// Whether the machine still reads; while it does, the bytes it leaves
    /// to the driver must stay under `limit`, or the driver's buffer (of
    /// that size) would fill with no line in it and the session hang.
    pub(crate) reading: fn(&M) -> bool,
    pub(crate) limit: usize,
}

#[cfg(test)]
impl<M> Split<'_, M> {
    /// Feeds `script` cut at `cuts` (ascending, within the script), keeping
    /// what `feed` leaves as a driver does; the sends concatenated (a split
    /// may join or part writes) and the other steps in brackets.
    pub(crate) fn steps(&self, script: &[u8], cuts: &[usize]) -> String {
        let mut machine = (self.start)();
        let mut buffered: Vec<u8> = Vec::new();
        let mut out = String::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&script.len())) {
            buffered.extend_from_slice(&script[last..cut]);
            last = cut;
            // A render that answers the machine (an auth reply) lets it read
            // again: offer what is left until nothing moves, as a driver does.
            loop {
                let used = (self.feed)(&mut machine, &buffered);
                assert!(used <= buffered.len(), "consumed {used} of {}", buffered.len());
                buffered.drain(..used);
                let steps = (self.render)(&mut machine);
                let moved = used > 0 || !steps.is_empty();
                let handshake = steps.iter().position(|s| s == "starttls");
                if let Some(at) = handshake {
                    assert_eq!(at + 1, steps.len(), "steps after StartTls: {steps:?}");
                }
                for step in steps {
                    out.push_str(step.strip_prefix("send ").unwrap_or(&format!("[{step}]")));
                }
                if handshake.is_some() {
                    // The driver discards what the client sent past STARTTLS,
                    // and the rest of a plaintext script would reach the TLS
                    // handshake as garbage: the script ends here, whatever
                    // the split.
                    return out;
                }
                if !moved || buffered.is_empty() {
                    break;
                }
            }
            if (self.reading)(&machine) {
                let (held, limit) = (buffered.len(), self.limit);
                assert!(held < limit, "{held} bytes left to the driver, limit {limit}");
            }
        }
        out
    }
}

/// Proptest strategies for the split properties: scripts made of a
/// protocol's words (so that they reach deep into the dialogue) mixed with
/// arbitrary bytes, and cut points anywhere in them.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// Up to `parts` pieces, each one of `words` or a few arbitrary bytes.
    pub(crate) fn script(words: &'static [&'static [u8]], parts: usize) -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            3 => proptest::sample::select(words).prop_map(<[u8]>::to_vec),
            1 => proptest::collection::vec(any::<u8>(), 0..12),
        ];
        proptest::collection::vec(piece, 0..parts).prop_map(|pieces| pieces.concat())
    }

    /// A script and ascending cut points within it.
    pub(crate) fn cut(script: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
        (script, proptest::collection::vec(any::<Index>(), 0..8)).prop_map(|(script, cuts)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(script.len() + 1)).collect();
            cuts.sort_unstable();
            (script, cuts)
        })
    }

    /// Cases per property: enough to find a split bug in a few runs of CI,
    /// few enough that `cargo test` stays fast on two cores.
    pub(crate) fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 96,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }
}
