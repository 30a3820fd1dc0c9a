//! What the fuzz targets share: reading the fuzz input as settings, a seed
//! for cut points and driver choices, and a byte stream; and a driver for
//! the front-end machines that checks their invariants on every step.
//!
//! Input layout (missing bytes read as zero, so any input is valid):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | flags, see `Knobs` |
//! | 1 | client buffer: with flag `SMALL`, 1 + this byte, else the default |
//! | 2 | `max_errors`: 1 + this byte % 8 |
//! | 3 | `proxy_buffer` (backend line limit): this byte, 0 for 4096 |
//! | 4..8 | seed for the cut points and the auth / backend answers |
//! | 8.. | the byte stream (client's or backend's) |
//!
//! A fixed layout rather than `arbitrary` so that seed inputs can be written
//! by hand: eight header bytes, then a readable session.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use postern::auth::{AuthError, AuthReply, Secret};
use postern::config::{self, AuthMethod, ServerConfig};
use postern::protocol::{BackendOutcome, FrontEnd, SessionSeed, Step};

pub const HEADER: usize = 8;

/// Flag bits of byte 0.
pub mod flag {
    pub const PASS_ERROR: u8 = 1;
    /// Every auth method the protocol has, not only the defaults.
    pub const ALL_METHODS: u8 = 2;
    pub const NO_XCLIENT: u8 = 4;
    pub const PROXY_SMTP_AUTH: u8 = 8;
    pub const SMTP_AUTH_NONE: u8 = 16;
    pub const GREETING_DELAY: u8 = 32;
    /// A graceful stop arrives at a point the seed picks.
    pub const SHUTDOWN: u8 = 64;
    pub const SMALL: u8 = 128;
}

/// The fuzz input, split per the layout above.
pub struct Input<'a> {
    pub header: [u8; HEADER],
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let mut header = [0u8; HEADER];
        let n = data.len().min(HEADER);
        header[..n].copy_from_slice(&data[..n]);
        Input {
            header,
            stream: &data[n..],
        }
    }

    pub fn has(&self, bit: u8) -> bool {
        self.header[0] & bit != 0
    }

    pub fn rng(&self) -> Rng {
        let seed = u32::from_le_bytes([self.header[4], self.header[5], self.header[6], self.header[7]]);
        Rng(u64::from(seed) << 1 | 1)
    }

    /// The backend line limit (`proxy_buffer`).
    pub fn line_limit(&self) -> usize {
        match self.header[3] {
            0 => 4096,
            n => usize::from(n),
        }
    }

    /// Token pass-through in a backend login (the auth server's
    /// `Auth-Method`), or a password login; from byte 2's upper bits.
    pub fn backend_oauth(&self) -> Option<postern::auth::OAuthMechanism> {
        match (self.header[2] >> 3) % 3 {
            0 => None,
            1 => Some(postern::auth::OAuthMechanism::OAuthBearer),
            _ => Some(postern::auth::OAuthMechanism::XOAuth2),
        }
    }

    /// One `server {}` of `protocol`, with the settings the header picks.
    pub fn server(&self, protocol: config::Protocol) -> ServerConfig {
        let mut server = base_server().clone();
        server.protocol = protocol;
        server.proxy_pass_error_message = self.has(flag::PASS_ERROR);
        server.max_errors = 1 + u32::from(self.header[2] % 8);
        server.proxy_buffer = self.line_limit();
        if self.has(flag::ALL_METHODS) {
            use AuthMethod::*;
            server.imap.auth = vec![Plain, Login, CramMd5, External, OAuthBearer, XOAuth2];
            server.pop3.auth = vec![Plain, Apop, CramMd5, External, OAuthBearer, XOAuth2];
            server.smtp.auth = vec![Plain, Login, CramMd5, External, OAuthBearer, XOAuth2];
        }
        if self.has(flag::SMTP_AUTH_NONE) {
            server.smtp.auth.push(AuthMethod::None);
        }
        server.smtp.xclient = !self.has(flag::NO_XCLIENT);
        server.smtp.proxy_smtp_auth = self.has(flag::PROXY_SMTP_AUTH);
        if self.has(flag::GREETING_DELAY) {
            server.smtp.greeting_delay = Duration::from_secs(1);
        }
        if self.has(flag::SMALL) {
            let small = 1 + usize::from(self.header[1]);
            server.imap.client_buffer = small;
            server.pop3.client_buffer = small;
            server.smtp.client_buffer = small;
            // The token bound, as small as the buffers.
            server.oauth_max_token_size = small;
        }
        server
    }
}

/// The most a front end of `protocol` may leave to the driver while it
/// wants input: its client buffer, or with OAuth enabled the longer line
/// that carries a token (`oauth_max_token_size`).
pub fn input_bound(server: &ServerConfig) -> usize {
    let (buffer, auth) = match server.protocol {
        config::Protocol::Imap => (server.imap.client_buffer, &server.imap.auth),
        config::Protocol::Pop3 => (server.pop3.client_buffer, &server.pop3.auth),
        config::Protocol::Smtp => (server.smtp.client_buffer, &server.smtp.auth),
    };
    if postern::protocol::oauth::enabled(auth).is_empty() {
        buffer
    } else {
        postern::protocol::oauth::line_limit(buffer, server.oauth_max_token_size)
    }
}

/// The defaults of a real configuration, read once per process.
fn base_server() -> &'static ServerConfig {
    static BASE: OnceLock<ServerConfig> = OnceLock::new();
    BASE.get_or_init(|| {
        let text = "mail {\n  server_name mx.fuzz.test;\n  auth_http 127.0.0.1:9000/auth;\n  \
                    server { listen 127.0.0.1:1143; protocol imap; }\n}\n";
        let config = config::parse_str_offline(text, Path::new("/nonexistent/fuzz.conf")).expect("base config parses");
        config.servers.into_iter().next().expect("one server")
    })
}

pub fn seed() -> SessionSeed {
    SessionSeed {
        client: Some("192.0.2.1:40000".parse().expect("literal")),
        random: [7; 16],
        now_unix: 1_700_000_000,
        tls: false,
    }
}

/// xorshift64: cut points and answers that follow from the input alone.
pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// The length of the next read: single bytes, short reads, long reads or
    /// everything left, so both ends of the splitting range are hit.
    pub fn read_len(&mut self, left: usize) -> usize {
        let max = match self.below(4) {
            0 => 1,
            1 => 16,
            2 => 512,
            _ => left,
        };
        1 + self.below(max.clamp(1, left.max(1)))
    }
}

/// Splits `stream` into reads at the seed's cut points.
pub fn chunks<'a>(stream: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = rng.read_len(rest.len()).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// Plays the driver (`session/`) for one front end: feeds the client's bytes
/// as reads, answers each Authenticate and ConnectBackend with an outcome
/// the seed picks, and checks after each call that
/// - `feed` consumes no more than it was given, and nothing once the
///   machine stops wanting input;
/// - while it wants input, the bytes it leaves to the driver stay under
///   `bound` (`input_bound`: else the driver's buffer would grow unbounded
///   or the session hang);
/// - every Send is whole CRLF-ended lines;
/// - nothing follows Relay or Close.
pub fn drive_front(mut front: FrontEnd, input: &Input<'_>, bound: usize) {
    let mut rng = input.rng();
    let reads = chunks(input.stream, &mut rng);
    let mut reads = reads.into_iter();
    let mut buffered: Vec<u8> = Vec::new();
    let mut answers = 0u32;
    let mut paused = false;
    let mut shutdown = input.has(flag::SHUTDOWN);
    loop {
        let mut auth = None;
        let mut backend = None;
        let mut ended = false;
        while let Some(step) = front.poll() {
            assert!(!ended, "a step after Relay or Close: {step:?}");
            match step {
                Step::Send(bytes) => assert!(bytes.ends_with(b"\r\n"), "send without CRLF: {bytes:?}"),
                Step::Authenticate(request) => auth = Some(request),
                Step::Wait(_) => {}
                Step::Pause(_) => paused = true,
                Step::ConnectBackend(mut plan) => {
                    // The login machine the front end built must start cleanly.
                    while plan.login.poll().is_some() {}
                    backend = Some(plan);
                }
                Step::Relay | Step::Close(_) => ended = true,
                // The handshake is the driver's; the machine goes on as private.
                Step::StartTls => front.on_tls_started(),
            }
        }
        if ended {
            assert!(!front.wants_input(), "wants input after Relay or Close");
            assert_eq!(front.feed(b"a NOOP\r\n"), 0, "consumed after Relay or Close");
            return;
        }
        if shutdown && rng.below(8) == 0 {
            shutdown = false;
            front.on_shutdown();
            continue;
        }
        if auth.is_some() {
            answers += 1;
            front.on_auth(auth_answer(&mut rng, answers));
            continue;
        }
        if backend.is_some() {
            front.on_backend(backend_answer(&mut rng));
            continue;
        }
        if paused && (rng.below(4) == 0 || reads.len() == 0) {
            paused = false;
            front.on_pause_end();
            continue;
        }
        let Some(read) = reads.next() else {
            if shutdown {
                shutdown = false;
                front.on_shutdown();
                continue;
            }
            return;
        };
        buffered.extend_from_slice(read);
        let wanted = front.wants_input();
        let used = front.feed(&buffered);
        assert!(used <= buffered.len(), "consumed {used} of {}", buffered.len());
        if !wanted {
            assert_eq!(used, 0, "consumed while not wanting input");
        }
        buffered.drain(..used);
        if front.wants_input() {
            assert!(
                buffered.len() < bound,
                "{} bytes left buffered, bound {bound}",
                buffered.len()
            );
        }
    }
}

/// The auth server's decision, as the seed picks it. A session that keeps
/// being told to wait is failed after a while, as a real one would time out.
fn auth_answer(rng: &mut Rng, answers: u32) -> Result<AuthReply, AuthError> {
    let backend: SocketAddr = "192.0.2.10:1143".parse().expect("literal");
    if answers > 32 {
        return Err(AuthError::TimedOut);
    }
    Ok(match rng.below(8) {
        0 | 1 => AuthReply::Accept {
            backend,
            user: None,
            pass: None,
            backend_tls: None,
            backend_method: None,
        },
        2 => AuthReply::Accept {
            backend,
            // Substituted credentials may hold any byte.
            user: Some(b"al\"ice {3}\r\n".to_vec()),
            pass: Some(Secret::new(b"p\\w\0\r\nx".to_vec())),
            backend_tls: None,
            backend_method: None,
        },
        3 => AuthReply::Accept {
            backend,
            user: None,
            pass: Some(Secret::new(b"backend-pw".to_vec())),
            backend_tls: None,
            backend_method: None,
        },
        4 => AuthReply::Reject {
            message: b"Invalid login or password".to_vec(),
            wait: None,
            error_code: rng.below(2).eq(&0).then(|| b"451 4.3.0".to_vec()),
            sasl_error: None,
        },
        5 => AuthReply::Reject {
            message: b"Try later".to_vec(),
            wait: Some(Duration::from_secs(1)),
            error_code: None,
            sasl_error: None,
        },
        6 => AuthReply::Retry {
            wait: Duration::from_millis(10),
        },
        _ => return Err(AuthError::Malformed("fuzz".to_string())),
    })
}

fn backend_answer(rng: &mut Rng) -> BackendOutcome {
    match rng.below(3) {
        0 => BackendOutcome::LoggedIn {
            client_reply: b"a OK logged in\r\n".to_vec(),
        },
        1 => BackendOutcome::Failed {
            client_reply: Some(b"a NO backend says no\r\n".to_vec()),
        },
        _ => BackendOutcome::Failed { client_reply: None },
    }
}

/// Plays the driver for one backend login machine: feeds the backend's
/// bytes as reads and checks that `feed` consumes no more than it is given
/// and nothing after Done, that exactly one Done ends the steps, and that
/// while the login goes on the bytes left over stay under the line limit.
pub fn drive_backend<M>(
    machine: &mut M,
    input: &Input<'_>,
    limit: usize,
    feed: fn(&mut M, &[u8]) -> usize,
    poll: fn(&mut M) -> Option<postern::protocol::backend::BackendStep>,
    check_send: fn(&[u8]),
) {
    use postern::protocol::backend::BackendStep;
    let mut rng = input.rng();
    let mut buffered: Vec<u8> = Vec::new();
    let mut done = false;
    let drain = |machine: &mut M, done: &mut bool| {
        while let Some(step) = poll(machine) {
            assert!(!*done, "a step after Done: {step:?}");
            match step {
                BackendStep::Send(bytes) => check_send(&bytes),
                BackendStep::Done(_) => *done = true,
            }
        }
    };
    drain(machine, &mut done);
    for read in chunks(input.stream, &mut rng) {
        buffered.extend_from_slice(read);
        let used = feed(machine, &buffered);
        assert!(used <= buffered.len(), "consumed {used} of {}", buffered.len());
        if done {
            assert_eq!(used, 0, "consumed after Done");
        }
        buffered.drain(..used);
        drain(machine, &mut done);
        if !done {
            assert!(
                buffered.len() < limit,
                "{} bytes left, line limit {limit}",
                buffered.len()
            );
        }
    }
}

/// Login credentials: plain ones, or (flag `ALL_METHODS`) ones full of the
/// bytes that are syntax somewhere (quotes, literals, CRLF, NUL, 8-bit).
pub fn credentials(input: &Input<'_>) -> (Vec<u8>, Vec<u8>) {
    if input.has(flag::ALL_METHODS) {
        (b"b\"o\\b {3}".to_vec(), "p\u{e9}\r\nA1 LOGOUT\0".as_bytes().to_vec())
    } else {
        (b"bob".to_vec(), b"secret".to_vec())
    }
}
