//! The POP3 front end (RFC 1939, 2449, 5034; pre-login subset as nginx's
//! `ngx_mail_pop3_handler.c` serves it): greeting, CAPA, NOOP, QUIT, STLS
//! (RFC 2595), USER/PASS, APOP, AUTH PLAIN/LOGIN/CRAM-MD5/EXTERNAL/
//! OAUTHBEARER/XOAUTH2.

use std::rc::Rc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::auth::{AuthError, AuthMethod, AuthReply, AuthRequest, Secret};
use crate::config::{self, Protocol, ServerConfig};
use crate::protocol::backend::{BackendLogin, Pop3Backend};
use crate::protocol::line::feed_lines_sized;
use crate::protocol::oauth::{self, OAuthMechanism};
use crate::protocol::sasl::{decode_response, split_cram_md5, split_plain, Response as SaslResponse};
use crate::protocol::{BackendOutcome, BackendPlan, ClientTls, CloseReason, Outbox, SessionSeed, Step};

pub const GREETING: &[u8] = b"+OK POP3 ready\r\n";
pub const INTERNAL_ERROR: &[u8] = b"-ERR internal server error\r\n";
const OK: &[u8] = b"+OK\r\n";
const INVALID: &[u8] = b"-ERR invalid command\r\n";
const CANCELLED: &[u8] = b"-ERR authentication cancelled\r\n";
const SHUTDOWN: &[u8] = b"-ERR Server shutting down\r\n";
const PROMPT_EMPTY: &[u8] = b"+ \r\n";
const PROMPT_USERNAME: &[u8] = b"+ VXNlcm5hbWU6\r\n";
const PROMPT_PASSWORD: &[u8] = b"+ UGFzc3dvcmQ6\r\n";
const TOKEN_TOO_LONG: &[u8] = b"-ERR token too long\r\n";

/// nginx parses at most three arguments to a command (USER and PASS take
/// the rest of the line as one); a fourth makes the command invalid.
const MAX_ARGS: usize = 3;

/// What one POP3 server block needs per session, computed once per core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3FrontSettings {
    /// The whole CAPA reply: `+OK Capability list follows`, each of
    /// pop3_capabilities, the SASL line per pop3_auth, `.`. What a private
    /// session (or any, with `starttls off`) is told, and, as nginx does,
    /// any session after USER (where STLS is no longer accepted).
    capa_reply: Vec<u8>,
    /// CAPA before TLS: with `starttls on` the same plus `STLS`; with
    /// `only`, neither USER nor SASL (no login is possible yet), then `STLS`.
    plaintext_capa_reply: Vec<u8>,
    starttls: config::Starttls,
    /// The whole reply to a bare AUTH: `+OK methods supported:`, one
    /// mechanism a line, `.`.
    auth_reply: Vec<u8>,
    /// `pop3_client_buffer` (nginx: 128): the longest command line.
    client_buffer: usize,
    max_errors: u32,
    /// `proxy_buffer`: the longest backend line during login.
    proxy_buffer: usize,
    pass_error_message: bool,
    /// `pop3_auth` lists apop / cram-md5 / external: only then are they
    /// accepted (plaintext methods always are).
    apop: bool,
    cram_md5: bool,
    external: bool,
    /// `pop3_auth` lists oauthbearer / xoauth2: only those are accepted.
    oauth: Vec<OAuthMechanism>,
    /// `oauth_max_token_size`.
    max_token: usize,
    /// For the APOP / CRAM-MD5 salt.
    server_name: String,
}

impl Pop3FrontSettings {
    pub fn from_server(server: &ServerConfig) -> Self {
        let auth = &server.pop3.auth;
        let plain = auth.contains(&config::AuthMethod::Plain);
        // nginx's `ngx_mail_pop3_auth_methods_names` order; `plain` brings
        // LOGIN with it, APOP is no SASL mechanism.
        let mechanisms: Vec<&str> = [
            (plain, "PLAIN"),
            (plain || auth.contains(&config::AuthMethod::Login), "LOGIN"),
            (auth.contains(&config::AuthMethod::CramMd5), "CRAM-MD5"),
            (auth.contains(&config::AuthMethod::External), "EXTERNAL"),
            (auth.contains(&config::AuthMethod::OAuthBearer), "OAUTHBEARER"),
            (auth.contains(&config::AuthMethod::XOAuth2), "XOAUTH2"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();

        let mut capa = b"+OK Capability list follows\r\n".to_vec();
        for cap in &server.pop3.capabilities {
            capa.extend_from_slice(cap.as_bytes());
            capa.extend_from_slice(b"\r\n");
        }
        capa.extend_from_slice(b"SASL");
        for name in &mechanisms {
            capa.push(b' ');
            capa.extend_from_slice(name.as_bytes());
        }
        capa.extend_from_slice(b"\r\n");
        let plaintext_capa = match server.starttls {
            config::Starttls::Off => capa.clone(),
            config::Starttls::On => [capa.as_slice(), b"STLS\r\n"].concat(),
            config::Starttls::Only => {
                let mut only = b"+OK Capability list follows\r\n".to_vec();
                for cap in server
                    .pop3
                    .capabilities
                    .iter()
                    .filter(|c| !c.eq_ignore_ascii_case("USER"))
                {
                    only.extend_from_slice(cap.as_bytes());
                    only.extend_from_slice(b"\r\n");
                }
                only.extend_from_slice(b"STLS\r\n");
                only
            }
        };
        let capa = [capa.as_slice(), b".\r\n"].concat();
        let plaintext_capa = [plaintext_capa.as_slice(), b".\r\n"].concat();

        let mut auth_reply = b"+OK methods supported:\r\n".to_vec();
        for name in &mechanisms {
            auth_reply.extend_from_slice(name.as_bytes());
            auth_reply.extend_from_slice(b"\r\n");
        }
        auth_reply.extend_from_slice(b".\r\n");

        Pop3FrontSettings {
            capa_reply: capa,
            plaintext_capa_reply: plaintext_capa,
            starttls: server.starttls,
            auth_reply,
            client_buffer: server.pop3.client_buffer,
            max_errors: server.max_errors,
            proxy_buffer: server.proxy_buffer,
            pass_error_message: server.proxy_pass_error_message,
            apop: auth.contains(&config::AuthMethod::Apop),
            cram_md5: auth.contains(&config::AuthMethod::CramMd5),
            external: auth.contains(&config::AuthMethod::External),
            oauth: oauth::enabled(auth),
            max_token: server.oauth_max_token_size,
            server_name: server.server_name.clone(),
        }
    }
}

/// One client's POP3 dialogue up to the relay.
///
/// Inputs: `feed(bytes)` with the client's bytes, returning how many it
/// consumed (keep the rest and offer it again with more); `on_auth` with the
/// auth server's decision after `Step::Authenticate`; `on_backend` after
/// `Step::ConnectBackend`; `on_tls_started` once the handshake ordered by
/// `Step::StartTls` has completed. Output: after creation and after every
/// input, call `poll` until it returns `None`, performing each `Step` in
/// order. `wants_input` says whether the machine is waiting for client bytes.
#[derive(Debug)]
pub struct Pop3Front {
    /// Shared by every session of the server block on this core.
    settings: Rc<Pop3FrontSettings>,
    seed: SessionSeed,
    phase: Phase,
    tls: ClientTls,
    errors: u32,
    attempts: u32,
    /// This session's `<random.time@server_name>`, for APOP and CRAM-MD5;
    /// empty when neither is enabled (nginx makes none then either).
    salt: Vec<u8>,
    out: Outbox,
}

#[derive(Debug)]
enum Phase {
    /// nginx's `ngx_pop3_start`.
    ExpectCommand,
    /// After USER (`ngx_pop3_user`): PASS, CAPA, NOOP or QUIT; anything
    /// else is invalid and forgets the user.
    ExpectPass {
        user: Vec<u8>,
    },
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
    /// The auth server refused a token and the error challenge is out; the
    /// client's dummy response brings this refusal.
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

impl Pop3Front {
    pub fn new(settings: impl Into<Rc<Pop3FrontSettings>>, seed: SessionSeed) -> Self {
        let settings = settings.into();
        let tls = ClientTls::new(settings.starttls, &seed);
        let mut front = Pop3Front {
            settings,
            seed,
            phase: Phase::ExpectCommand,
            tls,
            errors: 0,
            attempts: 0,
            salt: Vec::new(),
            out: Outbox::default(),
        };
        if front.settings.apop || front.settings.cram_md5 {
            // RFC 1939 7: the APOP timestamp ends the greeting.
            front.salt = super::salt(&front.seed, &front.settings.server_name);
            let mut greeting = GREETING[..GREETING.len() - 2].to_vec();
            greeting.push(b' ');
            greeting.extend_from_slice(&front.salt);
            greeting.extend_from_slice(b"\r\n");
            front.out.send_owned(greeting);
        } else {
            front.out.send(GREETING);
        }
        front
    }

    #[must_use]
    pub fn poll(&mut self) -> Option<Step> {
        self.out.pop()
    }

    /// The STLS handshake completed: the session is private and reading
    /// resumes in the start state.
    pub fn on_tls_started(&mut self) {
        if !self.tls.handshake_done() {
            self.internal_error();
        }
    }

    /// A graceful stop: a session still waiting for the client's commands
    /// is told so and closed; one already logging in goes on to its relay.
    pub fn on_shutdown(&mut self) {
        if self.wants_input() {
            self.out.send(SHUTDOWN);
            self.close(CloseReason::ShuttingDown);
        }
    }

    pub fn wants_input(&self) -> bool {
        self.tls.reading()
            && matches!(
                self.phase,
                Phase::ExpectCommand
                    | Phase::ExpectPass { .. }
                    | Phase::ExpectPlainResponse
                    | Phase::ExpectLoginUser
                    | Phase::ExpectLoginPass { .. }
                    | Phase::ExpectCramMd5Response
                    | Phase::ExpectExternalResponse
                    | Phase::ExpectOAuthResponse { .. }
                    | Phase::ExpectOAuthDummy { .. }
            )
    }

    pub fn client(&self) -> &SessionSeed {
        &self.seed
    }

    pub fn feed(&mut self, input: &[u8]) -> usize {
        // nginx: "client sent too long command", the invalid command line,
        // then close.
        let too_long = |m: &mut Self, rest: &[u8]| {
            m.out.send(if m.oauth_line(rest) { TOKEN_TOO_LONG } else { INVALID });
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
            // The driver only answers an Authenticate step; anything else is a
            // driver bug, and ending the session is the safe reaction.
            return self.internal_error();
        };
        match reply {
            Ok(AuthReply::Accept { pass: None, .. }) if request.method.needs_backend_pass() => {
                // The client's digest is no password for the backend: nginx
                // requires the auth server to send one.
                self.out.send(INTERNAL_ERROR);
                self.close(CloseReason::AuthFailed);
            }
            Ok(AuthReply::Accept {
                backend,
                user,
                pass,
                backend_method,
                ..
            }) => {
                let user = user.unwrap_or(request.user);
                let pass = pass.unwrap_or(request.pass);
                let login = Pop3Backend::new(
                    user.clone(),
                    pass,
                    self.settings.proxy_buffer,
                    self.settings.pass_error_message,
                )
                .with_oauth(backend_method);
                self.out.push(Step::ConnectBackend(BackendPlan {
                    addr: backend,
                    user,
                    login: BackendLogin::Pop3(login),
                }));
            }
            Ok(AuthReply::Reject {
                message,
                wait,
                sasl_error,
                ..
            }) => {
                let mut line = b"-ERR ".to_vec();
                line.extend_from_slice(&message);
                line.extend_from_slice(b"\r\n");
                if let AuthMethod::OAuth(_) = request.method {
                    let mut challenge = b"+ ".to_vec();
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
            Err(_) => {
                self.out.send(INTERNAL_ERROR);
                self.close(CloseReason::AuthFailed);
            }
        }
    }

    /// The auth server's refusal: with Auth-Wait the client may try again
    /// after the delay, else the session ends.
    fn refuse(&mut self, line: Vec<u8>, wait: Option<Duration>) {
        match wait {
            Some(delay) => {
                // Back to the start: the client begins again with USER,
                // APOP or AUTH.
                self.out.push(Step::Wait(delay));
                self.out.send_owned(line);
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
            return self.internal_error();
        }
        self.phase = if self.out.finish_login(outcome, INTERNAL_ERROR) {
            Phase::Relaying
        } else {
            Phase::Closed
        };
    }

    fn on_line(&mut self, line: &[u8]) {
        match std::mem::replace(&mut self.phase, Phase::ExpectCommand) {
            Phase::ExpectCommand => self.on_command_line(line, None),
            Phase::ExpectPass { user } => self.on_command_line(line, Some(user)),
            Phase::ExpectPlainResponse => match decode_response(line) {
                SaslResponse::Data(data) => self.plain(&data),
                SaslResponse::Cancel => self.out.send(CANCELLED),
                SaslResponse::Invalid => self.invalid(),
            },
            Phase::ExpectLoginUser => match decode_response(line) {
                SaslResponse::Data(user) => {
                    self.out.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { user };
                }
                SaslResponse::Cancel => self.out.send(CANCELLED),
                SaslResponse::Invalid => self.invalid(),
            },
            Phase::ExpectLoginPass { user } => match decode_response(line) {
                SaslResponse::Data(pass) => self.authenticate(AuthMethod::Plain, user, pass),
                SaslResponse::Cancel => self.out.send(CANCELLED),
                SaslResponse::Invalid => self.invalid(),
            },
            Phase::ExpectCramMd5Response => match decode_response(line) {
                SaslResponse::Data(data) => match split_cram_md5(&data) {
                    Some((user, digest)) => self.authenticate(AuthMethod::CramMd5, user, digest),
                    None => self.invalid(),
                },
                SaslResponse::Cancel => self.out.send(CANCELLED),
                SaslResponse::Invalid => self.invalid(),
            },
            Phase::ExpectExternalResponse => match decode_response(line) {
                SaslResponse::Data(user) => self.external(user),
                SaslResponse::Cancel => self.out.send(CANCELLED),
                SaslResponse::Invalid => self.invalid(),
            },
            Phase::ExpectOAuthResponse { mechanism } => self.oauth_response(mechanism, line),
            // Whatever the client answers (`AQ==`, an empty line, `*`), the
            // exchange has failed.
            Phase::ExpectOAuthDummy { line, wait } => self.refuse(line, wait),
            other => self.phase = other,
        }
    }

    /// One command line, in the start state (`user` is `None`) or after
    /// USER. nginx's grammar: four ASCII letters, then spaces and arguments;
    /// a CR anywhere but at the end is invalid.
    fn on_command_line(&mut self, line: &[u8], user: Option<Vec<u8>>) {
        let (name, rest) = match memchr::memchr(b' ', line) {
            Some(space) => (&line[..space], Some(&line[space + 1..])),
            None => (line, None),
        };
        if name.len() != 4 || !name.iter().all(u8::is_ascii_alphabetic) || line.contains(&b'\r') {
            return self.invalid();
        }
        let name = name.to_ascii_uppercase();
        // USER and PASS take the rest of the line as it is; the other
        // commands' arguments are words.
        let args = match name.as_slice() {
            b"USER" | b"PASS" => Vec::new(),
            _ => match split_args(rest) {
                Some(args) => args,
                None => return self.invalid(),
            },
        };
        match (name.as_slice(), user) {
            (b"CAPA", user) => {
                // nginx lists STLS only where it is accepted: not after USER.
                let reply = if self.tls.plain() && user.is_none() {
                    self.settings.plaintext_capa_reply.clone()
                } else {
                    self.settings.capa_reply.clone()
                };
                self.out.send_owned(reply);
                self.keep_user(user);
            }
            (b"NOOP", user) => {
                self.out.send(OK);
                self.keep_user(user);
            }
            (b"QUIT", _) => {
                self.out.send(OK);
                self.close(CloseReason::ClientQuit);
            }
            (b"STLS", None) => self.stls(&args),
            // nginx: with `starttls only`, no credentials in plaintext (PASS
            // cannot come: USER is refused).
            (b"USER" | b"APOP" | b"AUTH", None) if self.tls.must_start_first() => self.invalid(),
            (b"USER", None) => match rest {
                Some(user) if !user.is_empty() => {
                    self.out.send(OK);
                    self.phase = Phase::ExpectPass { user: user.to_vec() };
                }
                _ => self.invalid(),
            },
            (b"PASS", Some(user)) => match rest {
                Some(pass) if !pass.is_empty() => self.authenticate(AuthMethod::Plain, user, pass.to_vec()),
                _ => self.invalid(),
            },
            (b"APOP", None) => self.apop(&args),
            (b"AUTH", None) => self.auth(&args),
            // STLS/USER/APOP/AUTH after USER, PASS before it, and
            // everything else.
            _ => self.invalid(),
        }
    }

    /// RFC 2595 4: `+OK`, then the handshake. nginx ignores arguments; the
    /// grammar has none, so Postern refuses them.
    fn stls(&mut self, args: &[&[u8]]) {
        if !self.tls.can_start() || !args.is_empty() {
            return self.invalid();
        }
        self.out.send(OK);
        self.tls.start(&mut self.out);
    }

    /// After CAPA or NOOP the session stays where it was.
    fn keep_user(&mut self, user: Option<Vec<u8>>) {
        if let Some(user) = user {
            self.phase = Phase::ExpectPass { user };
        }
    }

    /// `APOP name digest` (RFC 1939 7), only when `pop3_auth` has apop.
    fn apop(&mut self, args: &[&[u8]]) {
        match args {
            [user, digest] if self.settings.apop && digest.len() == 32 && digest.iter().all(u8::is_ascii_hexdigit) => {
                let (user, digest) = (user.to_vec(), digest.to_vec());
                self.authenticate(AuthMethod::Apop, user, digest);
            }
            _ => self.invalid(),
        }
    }

    /// `AUTH` (RFC 5034): bare, it lists the mechanisms as nginx does;
    /// otherwise a mechanism and perhaps an initial response.
    fn auth(&mut self, args: &[&[u8]]) {
        let Some((mechanism, initial)) = args.split_first() else {
            let reply = self.settings.auth_reply.clone();
            return self.out.send_owned(reply);
        };
        let oauth = OAuthMechanism::from_sasl_name(mechanism).filter(|m| self.settings.oauth.contains(m));
        if let Some(oauth) = oauth {
            return match initial {
                [] => {
                    self.out.send(PROMPT_EMPTY);
                    self.phase = Phase::ExpectOAuthResponse { mechanism: oauth };
                }
                [ir] => self.oauth_response(oauth, ir),
                _ => self.invalid(),
            };
        }
        let initial = match initial {
            [] => None,
            [ir] => Some(decode_response(ir)),
            _ => return self.invalid(),
        };
        match (mechanism.to_ascii_uppercase().as_slice(), initial) {
            (b"PLAIN", None) => {
                self.out.send(PROMPT_EMPTY);
                self.phase = Phase::ExpectPlainResponse;
            }
            (b"PLAIN", Some(SaslResponse::Data(data))) => self.plain(&data),
            (b"LOGIN", None) => {
                self.out.send(PROMPT_USERNAME);
                self.phase = Phase::ExpectLoginUser;
            }
            (b"LOGIN", Some(SaslResponse::Data(user))) => {
                self.out.send(PROMPT_PASSWORD);
                self.phase = Phase::ExpectLoginPass { user };
            }
            (b"CRAM-MD5", None) if self.settings.cram_md5 => {
                let mut prompt = b"+ ".to_vec();
                prompt.extend_from_slice(BASE64.encode(&self.salt).as_bytes());
                prompt.extend_from_slice(b"\r\n");
                self.out.send_owned(prompt);
                self.phase = Phase::ExpectCramMd5Response;
            }
            (b"EXTERNAL", None) if self.settings.external => {
                // nginx prompts for EXTERNAL with the LOGIN username prompt.
                self.out.send(PROMPT_USERNAME);
                self.phase = Phase::ExpectExternalResponse;
            }
            (b"EXTERNAL", Some(SaslResponse::Data(user))) if self.settings.external => self.external(user),
            _ => self.invalid(),
        }
    }

    /// An OAUTHBEARER / XOAUTH2 message, as the initial response or after
    /// the `+ ` prompt: the token goes to the auth server as the password.
    fn oauth_response(&mut self, mechanism: OAuthMechanism, line: &[u8]) {
        match decode_response(line) {
            SaslResponse::Data(data) => match mechanism.parse(&data) {
                Ok(bearer) if bearer.token.len() > self.settings.max_token => {
                    self.out.send(TOKEN_TOO_LONG);
                    self.close(CloseReason::CommandTooLong);
                }
                Ok(bearer) => self.authenticate(AuthMethod::OAuth(mechanism), bearer.user, bearer.token),
                Err(_) => self.invalid(),
            },
            SaslResponse::Cancel => self.out.send(CANCELLED),
            SaslResponse::Invalid => self.invalid(),
        }
    }

    /// Whether the line at the start of `rest` may carry an OAuth message,
    /// which `oauth_max_token_size` bounds instead of the client buffer:
    /// the response after the `+ ` prompt, or `AUTH OAUTHBEARER <initial
    /// response>` where AUTH is allowed. Only the first client buffer of
    /// `rest` is looked at, so the answer does not depend on the reads.
    fn oauth_line(&self, rest: &[u8]) -> bool {
        match self.phase {
            Phase::ExpectOAuthResponse { .. } => true,
            Phase::ExpectCommand if !self.tls.must_start_first() => {
                let window = &rest[..rest.len().min(self.settings.client_buffer)];
                window.get(..5).is_some_and(|verb| verb.eq_ignore_ascii_case(b"AUTH "))
                    && oauth::starts_initial_response(window, 5, &self.settings.oauth).is_some()
            }
            _ => false,
        }
    }

    fn plain(&mut self, data: &[u8]) {
        match split_plain(data) {
            Some((user, pass)) => self.authenticate(AuthMethod::Plain, user, pass),
            None => self.invalid(),
        }
    }

    /// EXTERNAL names the user; the certificate vouches, so no password.
    fn external(&mut self, user: Vec<u8>) {
        if user.is_empty() {
            return self.invalid();
        }
        self.authenticate(AuthMethod::External, user, Vec::new());
    }

    fn authenticate(&mut self, method: AuthMethod, user: Vec<u8>, pass: Vec<u8>) {
        self.attempts += 1;
        let request = AuthRequest {
            method,
            user,
            pass: Secret::new(pass),
            protocol: Protocol::Pop3,
            attempt: self.attempts,
            salt: matches!(method, AuthMethod::Apop | AuthMethod::CramMd5).then(|| self.salt.clone()),
            envelope: None,
        };
        self.out.push(Step::Authenticate(request.clone()));
        self.phase = Phase::ExpectAuthReply { request };
    }

    /// Answers an invalid command and counts it against `max_errors`; the
    /// session is back in the start state (nginx forgets a USER too).
    fn invalid(&mut self) {
        self.out.send(INVALID);
        self.phase = Phase::ExpectCommand;
        self.errors += 1;
        if self.errors >= self.settings.max_errors {
            self.close(CloseReason::TooManyErrors);
        }
    }

    fn internal_error(&mut self) {
        self.out.send(INTERNAL_ERROR);
        self.close(CloseReason::BackendFailed);
    }

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed;
        self.out.push(Step::Close(reason));
    }
}

/// The arguments after a command name, separated by runs of spaces as
/// nginx reads them; `None` past `MAX_ARGS`.
fn split_args(rest: Option<&[u8]>) -> Option<Vec<&[u8]>> {
    let args: Vec<&[u8]> = rest
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .filter(|arg| !arg.is_empty())
        .collect();
    (args.len() <= MAX_ARGS).then_some(args)
}

#[cfg(test)]
mod tests;
