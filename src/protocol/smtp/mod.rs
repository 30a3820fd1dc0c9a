//! The SMTP front end (RFC 5321, RFC 4954), as nginx serves it before the
//! backend takes over: greeting (after `smtp_greeting_delay`), HELO/EHLO,
//! STARTTLS (RFC 3207), AUTH PLAIN/LOGIN/CRAM-MD5/EXTERNAL/OAUTHBEARER/
//! XOAUTH2, RSET, NOOP,
//! QUIT, and with `smtp_auth none` MAIL and RCPT, which go to the auth
//! server instead.

use std::rc::Rc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::auth::{AuthError, AuthMethod, AuthReply, AuthRequest, Secret, SmtpEnvelope};
use crate::config::{self, Protocol, ServerConfig};
use crate::protocol::backend::smtp::{Helo, SmtpBackend, SmtpLogin};
use crate::protocol::backend::BackendLogin;
use crate::protocol::line::feed_lines_sized;
use crate::protocol::oauth::{self, OAuthMechanism};
use crate::protocol::sasl::{decode_response, split_cram_md5, split_plain, Response as SaslResponse};
use crate::protocol::{BackendOutcome, BackendPlan, ClientTls, CloseReason, Outbox, SessionSeed, Step};

pub const INTERNAL_ERROR: &[u8] = b"451 4.3.2 Internal server error\r\n";
const OK: &[u8] = b"250 2.0.0 OK\r\n";
const BYE: &[u8] = b"221 2.0.0 Bye\r\n";
const INVALID_COMMAND: &[u8] = b"500 5.5.1 Invalid command\r\n";
const INVALID_ARGUMENT: &[u8] = b"501 5.5.4 Invalid argument\r\n";
const BAD_SEQUENCE: &[u8] = b"503 5.5.1 Bad sequence of commands\r\n";
const AUTH_REQUIRED: &[u8] = b"530 5.7.1 Authentication required\r\n";
const INVALID_PIPELINING: &[u8] = b"503 5.5.0 Improper use of SMTP command pipelining\r\n";
const SHUTTING_DOWN: &[u8] = b"421 4.3.2 Service shutting down\r\n";
const START_TLS: &[u8] = b"220 2.0.0 Start TLS\r\n";
/// RFC 3207 4. nginx has no such reply: with `smtp_auth none` it lets MAIL
/// and RCPT through in plaintext even with `starttls only`.
const MUST_STARTTLS: &[u8] = b"530 5.7.0 Must issue a STARTTLS command first\r\n";
const PROMPT_EMPTY: &[u8] = b"334 \r\n";
const PROMPT_USERNAME: &[u8] = b"334 VXNlcm5hbWU6\r\n";
const PROMPT_PASSWORD: &[u8] = b"334 UGFzc3dvcmQ6\r\n";
/// nginx's word for an unknown client address or host name.
const UNAVAILABLE: &str = "[UNAVAILABLE]";
/// nginx's default reply code for a refused login (`Auth-Error-Code` overrides).
const DEFAULT_ERROR_CODE: &[u8] = b"535 5.7.0";
/// RFC 4954 6, for an OAuth line over `oauth_max_token_size`.
const AUTH_LINE_TOO_LONG: &[u8] = b"500 5.5.6 Authentication Exchange line is too long\r\n";

/// What one SMTP server block needs per session, computed once per core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpFrontSettings {
    server_name: String,
    /// The EHLO reply's lines after the name: capabilities, then `AUTH ...`;
    /// what a private session (or any, with `starttls off`) is told.
    ehlo_lines: Vec<Vec<u8>>,
    /// The lines before TLS: with `starttls on` the same plus `STARTTLS`;
    /// with `only`, no AUTH (no login is possible yet), then `STARTTLS`.
    plaintext_ehlo_lines: Vec<Vec<u8>>,
    starttls: config::Starttls,
    client_buffer: usize,
    max_errors: u32,
    greeting_delay: Duration,
    cram_md5: bool,
    external: bool,
    /// `smtp_auth` lists oauthbearer / xoauth2: only those are accepted.
    oauth: Vec<OAuthMechanism>,
    /// `oauth_max_token_size`.
    max_token: usize,
    /// `smtp_auth none`: MAIL/RCPT without authentication.
    none: bool,
    xclient: bool,
    proxy_smtp_auth: bool,
    proxy_buffer: usize,
    pass_error_message: bool,
}

impl SmtpFrontSettings {
    pub fn from_server(server: &ServerConfig) -> Self {
        let auth = &server.smtp.auth;
        let mut ehlo_lines: Vec<Vec<u8>> = server.smtp.capabilities.iter().map(|c| c.as_bytes().to_vec()).collect();
        let mut mechanisms = Vec::new();
        // nginx advertises in its own fixed order.
        for (method, name) in [
            (config::AuthMethod::Plain, " PLAIN"),
            (config::AuthMethod::Login, " LOGIN"),
            (config::AuthMethod::CramMd5, " CRAM-MD5"),
            (config::AuthMethod::External, " EXTERNAL"),
            (config::AuthMethod::OAuthBearer, " OAUTHBEARER"),
            (config::AuthMethod::XOAuth2, " XOAUTH2"),
        ] {
            if auth.contains(&method) {
                mechanisms.extend_from_slice(name.as_bytes());
            }
        }
        let capabilities = ehlo_lines.len();
        if !mechanisms.is_empty() {
            let mut line = b"AUTH".to_vec();
            line.extend_from_slice(&mechanisms);
            ehlo_lines.push(line);
        }
        let starttls = b"STARTTLS".to_vec();
        let plaintext_ehlo_lines = match server.starttls {
            config::Starttls::Off => ehlo_lines.clone(),
            config::Starttls::On => [&ehlo_lines[..], &[starttls]].concat(),
            config::Starttls::Only => [&ehlo_lines[..capabilities], &[starttls]].concat(),
        };
        SmtpFrontSettings {
            server_name: server.server_name.clone(),
            ehlo_lines,
            plaintext_ehlo_lines,
            starttls: server.starttls,
            client_buffer: server.smtp.client_buffer,
            max_errors: server.max_errors,
            greeting_delay: server.smtp.greeting_delay,
            cram_md5: auth.contains(&config::AuthMethod::CramMd5),
            external: auth.contains(&config::AuthMethod::External),
            oauth: oauth::enabled(auth),
            max_token: server.oauth_max_token_size,
            none: auth.contains(&config::AuthMethod::None),
            xclient: server.smtp.xclient,
            proxy_smtp_auth: server.smtp.proxy_smtp_auth,
            proxy_buffer: server.proxy_buffer,
            pass_error_message: server.proxy_pass_error_message,
        }
    }
}

/// One client's SMTP dialogue up to the relay.
///
/// The same surface as `ImapFront`: `feed` (returns bytes consumed),
/// `on_auth`, `on_backend`, `on_shutdown`, then `poll` until `None`. One
/// more input: after `Step::Pause` (the greeting delay) the driver calls
/// `on_pause_end`; bytes fed during the pause mark an early talker. And
/// `on_tls_started` once the handshake ordered by `Step::StartTls` is done.
#[derive(Debug)]
pub struct SmtpFront {
    /// Shared by every session of the server block on this core.
    settings: Rc<SmtpFrontSettings>,
    seed: SessionSeed,
    phase: Phase,
    tls: ClientTls,
    helo: Option<Helo>,
    /// With `smtp_auth none`: the MAIL FROM line.
    mail_from: Option<Vec<u8>>,
    errors: u32,
    attempts: u32,
    salt: Vec<u8>,
    /// XCLIENT `NAME=`: the client's host name as the driver's resolver
    /// found it, `[UNAVAILABLE]` until told.
    client_name: String,
    out: Outbox,
}

#[derive(Debug)]
enum Phase {
    GreetingDelay,
    ExpectCommand,
    ExpectPlainResponse,
    ExpectLoginUser,
    ExpectLoginPass {
        user: Vec<u8>,
    },
    ExpectCramMd5Response,
    ExpectExternalResponse,
    ExpectOAuthResponse {
        mechanism: OAuthMechanism,
    },
    /// The auth server refused a token and the `334` error challenge is
    /// out; the client's dummy response brings this refusal.
    ExpectOAuthDummy {
        line: Vec<u8>,
        wait: Option<Duration>,
    },
    ExpectAuthReply {
        request: AuthRequest,
    },
    ExpectBackend,
    Relaying,
    Closed,
}

impl SmtpFront {
    pub fn new(settings: impl Into<Rc<SmtpFrontSettings>>, seed: SessionSeed) -> Self {
        let settings = settings.into();
        let salt = super::salt(&seed, &settings.server_name);
        let tls = ClientTls::new(settings.starttls, &seed);
        let mut front = SmtpFront {
            settings,
            seed,
            phase: Phase::GreetingDelay,
            tls,
            helo: None,
            mail_from: None,
            errors: 0,
            attempts: 0,
            salt,
            client_name: UNAVAILABLE.to_string(),
            out: Outbox::default(),
        };
        if front.settings.greeting_delay.is_zero() {
            front.greet();
        } else {
            front.out.push(Step::Pause(front.settings.greeting_delay));
        }
        front
    }

    /// The client's host name (`resolver`), given before the first `feed`:
    /// the name, `[UNAVAILABLE]` or `[TEMPUNAVAIL]`, sent as XCLIENT `NAME=`.
    pub fn set_client_host(&mut self, name: &str) {
        self.client_name = name.to_string();
    }

    #[must_use]
    pub fn poll(&mut self) -> Option<Step> {
        self.out.pop()
    }

    pub fn wants_input(&self) -> bool {
        self.tls.reading()
            && matches!(
                self.phase,
                Phase::GreetingDelay
                    | Phase::ExpectCommand
                    | Phase::ExpectPlainResponse
                    | Phase::ExpectLoginUser
                    | Phase::ExpectLoginPass { .. }
                    | Phase::ExpectCramMd5Response
                    | Phase::ExpectExternalResponse
                    | Phase::ExpectOAuthResponse { .. }
                    | Phase::ExpectOAuthDummy { .. }
            )
    }

    /// The greeting delay has passed with the client silent.
    pub fn on_pause_end(&mut self) {
        if matches!(self.phase, Phase::GreetingDelay) {
            self.greet();
        }
    }

    /// The STARTTLS handshake completed: the session is private and reading
    /// resumes, with no greeting (RFC 3207 4.2); the client starts over with
    /// EHLO.
    pub fn on_tls_started(&mut self) {
        if !self.tls.handshake_done() {
            self.fail_internal(CloseReason::BackendFailed);
        }
    }

    pub fn on_shutdown(&mut self) {
        if self.wants_input() {
            self.out.send(SHUTTING_DOWN);
            self.close(CloseReason::ShuttingDown);
        }
    }

    fn greet(&mut self) {
        let greeting = format!("220 {} ESMTP ready\r\n", self.settings.server_name).into_bytes();
        self.out.send_owned(greeting);
        self.phase = Phase::ExpectCommand;
    }

    pub fn feed(&mut self, input: &[u8]) -> usize {
        if matches!(self.phase, Phase::GreetingDelay) && !input.is_empty() {
            // A client that talks before the greeting is a spammer's
            // shortcut; nginx rejects it so.
            self.out.send(INVALID_PIPELINING);
            self.close(CloseReason::TalkedFirst);
            return 0;
        }
        let too_long = |m: &mut Self, rest: &[u8]| {
            m.out.send(if m.oauth_line(rest) {
                AUTH_LINE_TOO_LONG
            } else {
                INVALID_COMMAND
            });
            m.close(CloseReason::CommandTooLong);
        };
        let limit = |m: &Self, rest: &[u8]| {
            if m.oauth_line(rest) {
                oauth::line_limit(m.settings.client_buffer, m.settings.max_token)
            } else {
                m.settings.client_buffer
            }
        };
        feed_lines_sized(self, input, limit, Self::wants_input, Self::on_line, too_long)
    }

    pub fn on_auth(&mut self, reply: Result<AuthReply, AuthError>) {
        let Phase::ExpectAuthReply { request } = std::mem::replace(&mut self.phase, Phase::ExpectBackend) else {
            return self.fail_internal(CloseReason::AuthFailed);
        };
        match reply {
            Ok(AuthReply::Accept {
                backend,
                user,
                pass,
                backend_method,
                ..
            }) => {
                if request.method.needs_backend_pass() && pass.is_none() && self.settings.proxy_smtp_auth {
                    return self.fail_internal(CloseReason::AuthFailed);
                }
                let user = user.unwrap_or(request.user);
                let pass = pass.unwrap_or(request.pass);
                let login = SmtpBackend::new(SmtpLogin {
                    server_name: self.settings.server_name.clone(),
                    client_addr: match self.seed.client {
                        Some(addr) if addr.is_ipv6() => format!("IPV6:{}", addr.ip()),
                        Some(addr) => addr.ip().to_string(),
                        None => UNAVAILABLE.to_string(),
                    },
                    client_name: self.client_name.clone(),
                    helo: self.helo.clone(),
                    user: user.clone(),
                    pass,
                    oauth: backend_method,
                    xclient: self.settings.xclient,
                    proxy_smtp_auth: self.settings.proxy_smtp_auth,
                    envelope: request.envelope.map(|e| (e.from, e.to)),
                    line_limit: self.settings.proxy_buffer,
                    pass_error_message: self.settings.pass_error_message,
                });
                self.out.push(Step::ConnectBackend(BackendPlan {
                    addr: backend,
                    user,
                    login: BackendLogin::Smtp(login),
                }));
            }
            Ok(AuthReply::Reject {
                message,
                wait,
                error_code,
                sasl_error,
            }) => {
                let mut line = error_code.unwrap_or_else(|| DEFAULT_ERROR_CODE.to_vec());
                line.push(b' ');
                line.extend_from_slice(&message);
                line.extend_from_slice(b"\r\n");
                if let AuthMethod::OAuth(_) = request.method {
                    let mut challenge = b"334 ".to_vec();
                    challenge.extend_from_slice(&oauth::error_challenge(sasl_error.as_deref()));
                    challenge.extend_from_slice(b"\r\n");
                    self.out.send_owned(challenge);
                    self.phase = Phase::ExpectOAuthDummy { line, wait };
                } else {
                    self.refuse(line, wait);
                }
            }
            Ok(AuthReply::Retry { wait }) => {
                self.out.push(Step::Wait(wait));
                self.out.push(Step::Authenticate(request.clone()));
                self.phase = Phase::ExpectAuthReply { request };
            }
            Err(_) => self.fail_internal(CloseReason::AuthFailed),
        }
    }

    /// The auth server's refusal: with Auth-Wait the client may try again
    /// after the delay, else the session ends.
    fn refuse(&mut self, line: Vec<u8>, wait: Option<Duration>) {
        match wait {
            Some(delay) => {
                self.out.push(Step::Wait(delay));
                self.out.send_owned(line);
                self.mail_from = None;
                self.phase = Phase::ExpectCommand;
            }
            None => {
                self.out.send_owned(line);
                self.close(CloseReason::LoginRefused);
            }
        }
    }

    pub fn on_backend(&mut self, outcome: BackendOutcome) {
        if !matches!(self.phase, Phase::ExpectBackend) {
            return self.fail_internal(CloseReason::BackendFailed);
        }
        self.phase = if self.out.finish_login(outcome, INTERNAL_ERROR) {
            Phase::Relaying
        } else {
            Phase::Closed
        };
    }

    fn on_line(&mut self, line: &[u8]) {
        if line.contains(&b'\r') || line.contains(&0) {
            // A lone CR or NUL inside a line could be read by a backend as a
            // line end when the line is replayed (HELO, MAIL, RCPT).
            return self.invalid(INVALID_ARGUMENT);
        }
        match std::mem::replace(&mut self.phase, Phase::ExpectCommand) {
            Phase::ExpectCommand => self.command(line),
            Phase::ExpectPlainResponse => match decode_response(line) {
                SaslResponse::Data(data) => match split_plain(&data) {
                    Some((user, pass)) => self.authenticate(AuthMethod::Plain, user, pass),
                    None => self.invalid(INVALID_ARGUMENT),
                },
                _ => self.invalid(INVALID_ARGUMENT),
            },
            Phase::ExpectLoginUser => match decode_response(line) {
                SaslResponse::Data(user) => {
                    self.out.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { user };
                }
                _ => self.invalid(INVALID_ARGUMENT),
            },
            Phase::ExpectLoginPass { user } => match decode_response(line) {
                SaslResponse::Data(pass) => self.authenticate(AuthMethod::Plain, user, pass),
                _ => self.invalid(INVALID_ARGUMENT),
            },
            Phase::ExpectCramMd5Response => match decode_response(line) {
                SaslResponse::Data(data) => match split_cram_md5(&data) {
                    Some((user, digest)) => self.authenticate(AuthMethod::CramMd5, user, digest),
                    None => self.invalid(INVALID_ARGUMENT),
                },
                _ => self.invalid(INVALID_ARGUMENT),
            },
            Phase::ExpectExternalResponse => match decode_response(line) {
                SaslResponse::Data(user) if !user.is_empty() => {
                    self.authenticate(AuthMethod::External, user, Vec::new())
                }
                _ => self.invalid(INVALID_ARGUMENT),
            },
            Phase::ExpectOAuthResponse { mechanism } => self.oauth_response(mechanism, line),
            // Whatever the client answers (`AQ==`, an empty line, `*`), the
            // exchange has failed.
            Phase::ExpectOAuthDummy { line, wait } => self.refuse(line, wait),
            other => self.phase = other,
        }
    }

    /// One handler per command, as nginx's `ngx_mail_smtp_*`.
    fn command(&mut self, line: &[u8]) {
        let (verb, arg) = match memchr::memchr(b' ', line) {
            Some(i) => (&line[..i], line[i + 1..].trim_ascii()),
            None => (line, &b""[..]),
        };
        match verb.to_ascii_uppercase().as_slice() {
            b"HELO" => self.helo(false, arg),
            b"EHLO" => self.helo(true, arg),
            b"STARTTLS" => self.starttls(arg),
            b"AUTH" => self.auth(arg),
            b"MAIL" => self.mail(line),
            b"RCPT" => self.rcpt(line),
            b"RSET" => {
                self.mail_from = None;
                self.out.send(OK);
            }
            b"NOOP" => self.out.send(OK),
            b"QUIT" => {
                self.out.send(BYE);
                self.close(CloseReason::ClientQuit);
            }
            _ => self.invalid(INVALID_COMMAND),
        }
    }

    fn helo(&mut self, extended: bool, name: &[u8]) {
        if name.is_empty() {
            return self.invalid(INVALID_ARGUMENT);
        }
        self.helo = Some(Helo {
            extended,
            name: name.to_vec(),
        });
        self.mail_from = None;
        let mut reply = Vec::new();
        let server_name = self.settings.server_name.as_bytes();
        if !extended {
            reply.extend_from_slice(b"250 ");
            reply.extend_from_slice(server_name);
            reply.extend_from_slice(b"\r\n");
        } else {
            let ehlo_lines = if self.tls.plain() {
                &self.settings.plaintext_ehlo_lines
            } else {
                &self.settings.ehlo_lines
            };
            let lines = std::iter::once(server_name).chain(ehlo_lines.iter().map(Vec::as_slice));
            let count = 1 + ehlo_lines.len();
            for (i, text) in lines.enumerate() {
                reply.extend_from_slice(if i + 1 == count { b"250 " } else { b"250-" });
                reply.extend_from_slice(text);
                reply.extend_from_slice(b"\r\n");
            }
        }
        self.out.send_owned(reply);
    }

    /// RFC 3207: `220`, then the handshake. Everything learnt before it is
    /// forgotten (4.2), as nginx does: HELO, MAIL FROM, RCPT TO.
    fn starttls(&mut self, arg: &[u8]) {
        if !self.tls.can_start() {
            return self.invalid(INVALID_COMMAND);
        }
        // nginx ignores arguments; RFC 3207 answers them with 501.
        if !arg.is_empty() {
            return self.invalid(INVALID_ARGUMENT);
        }
        self.helo = None;
        self.mail_from = None;
        self.out.send(START_TLS);
        self.tls.start(&mut self.out);
    }

    fn auth(&mut self, arg: &[u8]) {
        // nginx: with `starttls only`, no credentials in plaintext.
        if self.tls.must_start_first() {
            return self.invalid(INVALID_COMMAND);
        }
        if self.helo.is_none() {
            return self.invalid(BAD_SEQUENCE);
        }
        let (mechanism, initial) = match memchr::memchr(b' ', arg) {
            Some(i) => (&arg[..i], Some(arg[i + 1..].trim_ascii())),
            None => (arg, None),
        };
        let oauth = OAuthMechanism::from_sasl_name(mechanism).filter(|m| self.settings.oauth.contains(m));
        if let Some(oauth) = oauth {
            return match initial {
                None => {
                    self.out.send(PROMPT_EMPTY);
                    self.phase = Phase::ExpectOAuthResponse { mechanism: oauth };
                }
                Some(ir) => self.oauth_response(oauth, ir),
            };
        }
        match (mechanism.to_ascii_uppercase().as_slice(), initial) {
            (b"PLAIN", None) => {
                self.out.send(PROMPT_EMPTY);
                self.phase = Phase::ExpectPlainResponse;
            }
            (b"PLAIN", Some(ir)) => match decode_response(ir) {
                SaslResponse::Data(data) => match split_plain(&data) {
                    Some((user, pass)) => self.authenticate(AuthMethod::Plain, user, pass),
                    None => self.invalid(INVALID_ARGUMENT),
                },
                _ => self.invalid(INVALID_ARGUMENT),
            },
            (b"LOGIN", None) => {
                self.out.send(PROMPT_USERNAME);
                self.phase = Phase::ExpectLoginUser;
            }
            (b"LOGIN", Some(ir)) => match decode_response(ir) {
                SaslResponse::Data(user) => {
                    self.out.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { user };
                }
                _ => self.invalid(INVALID_ARGUMENT),
            },
            (b"CRAM-MD5", None) if self.settings.cram_md5 => {
                let mut prompt = b"334 ".to_vec();
                prompt.extend_from_slice(BASE64.encode(&self.salt).as_bytes());
                prompt.extend_from_slice(b"\r\n");
                self.out.send_owned(prompt);
                self.phase = Phase::ExpectCramMd5Response;
            }
            (b"EXTERNAL", None) if self.settings.external => {
                self.out.send(PROMPT_EMPTY);
                self.phase = Phase::ExpectExternalResponse;
            }
            (b"EXTERNAL", Some(ir)) if self.settings.external => match decode_response(ir) {
                SaslResponse::Data(user) if !user.is_empty() => {
                    self.authenticate(AuthMethod::External, user, Vec::new())
                }
                _ => self.invalid(INVALID_ARGUMENT),
            },
            _ => self.invalid(INVALID_ARGUMENT),
        }
    }

    /// An OAUTHBEARER / XOAUTH2 message, as the initial response or after
    /// the `334 ` prompt: the token goes to the auth server as the password.
    fn oauth_response(&mut self, mechanism: OAuthMechanism, line: &[u8]) {
        match decode_response(line) {
            SaslResponse::Data(data) => match mechanism.parse(&data) {
                Ok(bearer) if bearer.token.len() > self.settings.max_token => {
                    self.out.send(AUTH_LINE_TOO_LONG);
                    self.close(CloseReason::CommandTooLong);
                }
                Ok(bearer) => self.authenticate(AuthMethod::OAuth(mechanism), bearer.user, bearer.token),
                Err(_) => self.invalid(INVALID_ARGUMENT),
            },
            _ => self.invalid(INVALID_ARGUMENT),
        }
    }

    /// Whether the line at the start of `rest` may carry an OAuth message,
    /// which `oauth_max_token_size` bounds instead of the client buffer:
    /// the response after the `334 ` prompt, or `AUTH OAUTHBEARER <initial
    /// response>` where AUTH is allowed. Only the first client buffer of
    /// `rest` is looked at, so the answer does not depend on the reads.
    fn oauth_line(&self, rest: &[u8]) -> bool {
        match self.phase {
            Phase::ExpectOAuthResponse { .. } => true,
            Phase::ExpectCommand if self.helo.is_some() && !self.tls.must_start_first() => {
                let window = &rest[..rest.len().min(self.settings.client_buffer)];
                window.get(..5).is_some_and(|verb| verb.eq_ignore_ascii_case(b"AUTH "))
                    && oauth::starts_initial_response(window, 5, &self.settings.oauth).is_some()
            }
            _ => false,
        }
    }

    fn mail(&mut self, line: &[u8]) {
        if !self.settings.none {
            return self.invalid(AUTH_REQUIRED);
        }
        if self.tls.must_start_first() {
            return self.invalid(MUST_STARTTLS);
        }
        if self.helo.is_none() {
            return self.invalid(BAD_SEQUENCE);
        }
        self.mail_from = Some(line.to_vec());
        self.out.send(OK);
    }

    /// With `smtp_auth none` the first RCPT asks the auth server, carrying
    /// the envelope; what follows waits for the backend.
    fn rcpt(&mut self, line: &[u8]) {
        if !self.settings.none {
            return self.invalid(AUTH_REQUIRED);
        }
        // MAIL is refused first, so no envelope can exist here; checked
        // again because this RCPT would be the auth request.
        if self.tls.must_start_first() {
            return self.invalid(MUST_STARTTLS);
        }
        let Some(from) = self.mail_from.clone() else {
            return self.invalid(BAD_SEQUENCE);
        };
        let helo = self.helo.as_ref().map(|h| h.name.clone()).unwrap_or_default();
        self.attempts += 1;
        let request = AuthRequest {
            method: AuthMethod::None,
            user: Vec::new(),
            pass: Secret::default(),
            protocol: Protocol::Smtp,
            attempt: self.attempts,
            salt: None,
            envelope: Some(SmtpEnvelope {
                helo,
                from,
                to: line.to_vec(),
            }),
        };
        self.out.push(Step::Authenticate(request.clone()));
        self.phase = Phase::ExpectAuthReply { request };
    }

    fn authenticate(&mut self, method: AuthMethod, user: Vec<u8>, pass: Vec<u8>) {
        self.attempts += 1;
        let request = AuthRequest {
            method,
            user,
            pass: Secret::new(pass),
            protocol: Protocol::Smtp,
            attempt: self.attempts,
            salt: (method == AuthMethod::CramMd5).then(|| self.salt.clone()),
            envelope: None,
        };
        self.out.push(Step::Authenticate(request.clone()));
        self.phase = Phase::ExpectAuthReply { request };
    }

    /// Answers an invalid command and counts it against `max_errors`.
    fn invalid(&mut self, reply: &[u8]) {
        self.out.send(reply);
        self.errors += 1;
        if self.errors >= self.settings.max_errors {
            self.close(CloseReason::TooManyErrors);
        }
    }

    fn fail_internal(&mut self, reason: CloseReason) {
        self.out.send(INTERNAL_ERROR);
        self.close(reason);
    }

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed;
        self.out.push(Step::Close(reason));
    }
}

#[cfg(test)]
mod tests;
