//! The sans-IO protocol core: one machine per protocol front end and one per
//! backend login, all plain synchronous code. Bytes go in through `feed`,
//! answers through `on_auth` / `on_backend`; `poll` returns the next order for
//! the driver (`session/`). No sockets, no clock, no executor here.

pub mod backend;
pub mod imap;
pub mod line;
pub mod sasl;

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::AuthRequest;

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
    /// Connect to the backend and drive `login` until it is done; answer with
    /// `on_backend`.
    ConnectBackend(BackendPlan),
    /// Relay bytes both ways from now on: the client bytes `feed` did not
    /// consume go to the backend first.
    Relay,
    /// Close the client connection after writing what was sent before.
    Close(CloseReason),
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
