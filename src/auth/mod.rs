//! The auth_http client: what a front end asks (`AuthRequest`), what the auth
//! server answers (`AuthReply`), the HTTP/1.0 codec for both (sans-IO), and
//! the glommio side that performs the round trip.

pub mod client;
pub mod reply;
pub mod request;

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Protocol;

/// Bytes that must never reach a log: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `Auth-Method`: how the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// LOGIN, AUTHENTICATE PLAIN/LOGIN, USER/PASS, AUTH PLAIN/LOGIN.
    Plain,
    /// POP3 APOP: Auth-Pass is the client's MD5 digest of salt and secret.
    Apop,
    /// CRAM-MD5: Auth-Pass is the client's HMAC-MD5 digest of the salt.
    CramMd5,
    /// SASL EXTERNAL: the TLS client certificate vouches; Auth-Pass is empty.
    External,
    /// SMTP with `smtp_auth none`: no credentials, the envelope instead.
    None,
    /// OAUTHBEARER or XOAUTH2: Auth-Pass is the client's bearer token.
    OAuth(OAuthMechanism),
}

/// The SASL mechanisms that carry an OAuth 2.0 bearer token
/// (`protocol::oauth` parses and builds their messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// RFC 7628.
    OAuthBearer,
    /// Google's XOAUTH2, which Microsoft and most clients also speak.
    XOAuth2,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Plain => "plain",
            AuthMethod::Apop => "apop",
            AuthMethod::CramMd5 => "cram-md5",
            AuthMethod::External => "external",
            AuthMethod::None => "none",
            AuthMethod::OAuth(OAuthMechanism::OAuthBearer) => "oauthbearer",
            AuthMethod::OAuth(OAuthMechanism::XOAuth2) => "xoauth2",
        }
    }

    /// Methods whose Auth-Pass is not a password the backend could take:
    /// the auth server must then send one (nginx's rule for IMAP and POP3).
    pub fn needs_backend_pass(self) -> bool {
        matches!(self, AuthMethod::Apop | AuthMethod::CramMd5 | AuthMethod::External)
    }
}

/// What an SMTP client said before `smtp_auth none` lets it through, for
/// Auth-SMTP-Helo / -From / -To.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SmtpEnvelope {
    /// The HELO/EHLO argument.
    pub helo: Vec<u8>,
    /// The whole MAIL FROM line, as nginx sends it.
    pub from: Vec<u8>,
    /// The whole RCPT TO line.
    pub to: Vec<u8>,
}

/// One login attempt, as a front end hands it to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub method: AuthMethod,
    pub user: Vec<u8>,
    pub pass: Secret,
    pub protocol: Protocol,
    /// `Auth-Login-Attempt`: 1 for the first attempt of the session.
    pub attempt: u32,
    /// `Auth-Salt`, for APOP and CRAM-MD5: `<random.time@server_name>`.
    pub salt: Option<Vec<u8>>,
    /// SMTP with `smtp_auth none`.
    pub envelope: Option<SmtpEnvelope>,
}

/// What the auth server decided, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// `Auth-Status: OK`: log in to `backend`, with the credentials the auth
    /// server substituted (`Auth-User`/`Auth-Pass`), if any.
    Accept {
        backend: SocketAddr,
        user: Option<Vec<u8>>,
        pass: Option<Secret>,
        /// `Auth-SSL-Backend: on|off` (Postern's own): TLS to this backend
        /// or not, whatever `proxy_ssl` says.
        backend_tls: Option<bool>,
        /// `Auth-Method: oauthbearer|xoauth2` (Postern's own): log in to the
        /// backend with this mechanism, the password being the token,
        /// instead of as a password login.
        backend_method: Option<OAuthMechanism>,
    },
    /// Any other status: tell the client `message`. With `wait` the client may
    /// try again after that delay; without it the session ends.
    /// `error_code` is `Auth-Error-Code` (SMTP): the code and enhanced
    /// status to use instead of `535 5.7.0`.
    Reject {
        message: Vec<u8>,
        wait: Option<Duration>,
        error_code: Option<Vec<u8>>,
        /// `Auth-Error-SASL` (Postern's own), base64, printable: the error
        /// challenge of a failed OAUTHBEARER / XOAUTH2 exchange.
        sasl_error: Option<Vec<u8>>,
    },
    /// `Auth-Status: WAIT`: ask again, with the same request, after the delay.
    Retry { wait: Duration },
}

/// Why the auth round trip produced no decision. Every variant gives the
/// client the protocol's internal-error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Connect(String),
    Io(String),
    TimedOut,
    /// The reply did not fit the limit (`reply::MAX_REPLY_BYTES`).
    TooLarge,
    /// Not HTTP, or a header the protocol defines had an invalid value.
    Malformed(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Connect(e) => write!(f, "auth http server connect failed: {e}"),
            AuthError::Io(e) => write!(f, "auth http server I/O error: {e}"),
            AuthError::TimedOut => f.write_str("auth http server timed out"),
            AuthError::TooLarge => f.write_str("auth http server sent a too large response"),
            AuthError::Malformed(e) => write!(f, "auth http server sent invalid response: {e}"),
        }
    }
}
