//! The IMAP front end (RFC 3501/9051, pre-login subset as nginx serves it):
//! greeting, CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE
//! PLAIN/LOGIN/CRAM-MD5/EXTERNAL/OAUTHBEARER/XOAUTH2, and ID.

mod syntax;

use std::rc::Rc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use std::time::Duration;

use crate::auth::{AuthError, AuthMethod, AuthReply, AuthRequest, Secret};
use crate::config::{self, Protocol, ServerConfig};
use crate::protocol::backend::{BackendLogin, ImapBackend};
use crate::protocol::line::{next_line, Line};
use crate::protocol::oauth::{self, OAuthMechanism};
use crate::protocol::sasl::{decode_response, split_cram_md5, split_plain, Response as SaslResponse};
use crate::protocol::{BackendOutcome, BackendPlan, ClientTls, CloseReason, Outbox, SessionSeed, Step};
pub use syntax::{push_id_pair, push_quoted};
use syntax::{Arg, LineEnd};

pub const GREETING: &[u8] = b"* OK IMAP4 ready\r\n";
pub const INTERNAL_ERROR: &[u8] = b"* BAD internal server error\r\n";
const BYE: &[u8] = b"* BYE\r\n";
const SHUTDOWN_BYE: &[u8] = b"* BYE Server shutting down\r\n";
const OK: &[u8] = b"OK completed";
const INVALID: &[u8] = b"BAD invalid command";
const CONTINUE_LITERAL: &[u8] = b"+ OK\r\n";
const PROMPT_EMPTY: &[u8] = b"+ \r\n";
const PROMPT_USERNAME: &[u8] = b"+ VXNlcm5hbWU6\r\n";
const PROMPT_PASSWORD: &[u8] = b"+ UGFzc3dvcmQ6\r\n";

/// RFC 2971 bounds on what a client may say in ID: 30 pairs, field names of
/// 30 bytes, values of 1024.
const MAX_ID_PAIRS: usize = 30;
const MAX_ID_FIELD: usize = 30;
const MAX_ID_VALUE: usize = 1024;

/// The client's ID parameters (RFC 2971), field and value (`None` for NIL).
pub type ClientId = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What one IMAP server block needs per session, computed once per core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapFrontSettings {
    /// `* CAPABILITY ...\r\n`: imap_capabilities, then AUTH= per imap_auth;
    /// what a private session (or any, with `starttls off`) is told.
    capability_line: Vec<u8>,
    /// The line before TLS: with `starttls on` the same plus ` STARTTLS`;
    /// with `only`, no AUTH= (no login is possible yet) and ` STARTTLS
    /// LOGINDISABLED` (RFC 3501 6.2.3).
    plaintext_capability_line: Vec<u8>,
    starttls: config::Starttls,
    /// `imap_client_buffer`: the longest command, literals included.
    client_buffer: usize,
    max_errors: u32,
    /// `proxy_buffer`: the longest backend line during login.
    proxy_buffer: usize,
    pass_error_message: bool,
    /// `imap_auth` lists cram-md5 / external: only then are they accepted.
    cram_md5: bool,
    external: bool,
    /// `imap_auth` lists oauthbearer / xoauth2: only those are accepted.
    oauth: Vec<OAuthMechanism>,
    /// `oauth_max_token_size`.
    max_token: usize,
    /// For the CRAM-MD5 salt.
    server_name: String,
    /// `imap_id_forward`.
    id_forward: bool,
}

impl ImapFrontSettings {
    pub fn from_server(server: &ServerConfig) -> Self {
        let mut line = b"* CAPABILITY".to_vec();
        for cap in &server.imap.capabilities {
            line.push(b' ');
            line.extend_from_slice(cap.as_bytes());
        }
        let mut plaintext_line = line.clone();
        // nginx lists AUTH= in its own fixed order, whatever the config's.
        for (method, name) in [
            (config::AuthMethod::Plain, "PLAIN"),
            (config::AuthMethod::Login, "LOGIN"),
            (config::AuthMethod::CramMd5, "CRAM-MD5"),
            (config::AuthMethod::External, "EXTERNAL"),
            (config::AuthMethod::OAuthBearer, "OAUTHBEARER"),
            (config::AuthMethod::XOAuth2, "XOAUTH2"),
        ] {
            if server.imap.auth.contains(&method) {
                line.extend_from_slice(b" AUTH=");
                line.extend_from_slice(name.as_bytes());
            }
        }
        match server.starttls {
            config::Starttls::Off => plaintext_line.clone_from(&line),
            config::Starttls::On => {
                plaintext_line.clone_from(&line);
                plaintext_line.extend_from_slice(b" STARTTLS");
            }
            config::Starttls::Only => plaintext_line.extend_from_slice(b" STARTTLS LOGINDISABLED"),
        }
        line.extend_from_slice(b"\r\n");
        plaintext_line.extend_from_slice(b"\r\n");
        ImapFrontSettings {
            capability_line: line,
            plaintext_capability_line: plaintext_line,
            starttls: server.starttls,
            client_buffer: server.imap.client_buffer,
            id_forward: server.imap.id_forward,
            max_errors: server.max_errors,
            proxy_buffer: server.proxy_buffer,
            pass_error_message: server.proxy_pass_error_message,
            cram_md5: server.imap.auth.contains(&config::AuthMethod::CramMd5),
            external: server.imap.auth.contains(&config::AuthMethod::External),
            oauth: oauth::enabled(&server.imap.auth),
            max_token: server.oauth_max_token_size,
            server_name: server.server_name.clone(),
        }
    }
}

/// One client's IMAP dialogue up to the relay.
///
/// Inputs: `feed(bytes)` with the client's bytes, returning how many it
/// consumed (keep the rest and offer it again with more); `on_auth` with the
/// auth server's decision after `Step::Authenticate`; `on_backend` after
/// `Step::ConnectBackend`; `on_tls_started` once the handshake ordered by
/// `Step::StartTls` has completed. Output: after creation and after every
/// input, call `poll` until it returns `None`, performing each `Step` in
/// order. `wants_input` says whether the machine is waiting for client bytes.
#[derive(Debug)]
pub struct ImapFront {
    /// Shared by every session of the server block on this core.
    settings: Rc<ImapFrontSettings>,
    seed: SessionSeed,
    phase: Phase,
    tls: ClientTls,
    /// A command whose literal(s) are still arriving.
    pending: Option<PendingCommand>,
    errors: u32,
    attempts: u32,
    /// What the client said in ID, kept for the auth server (a later issue).
    client_id: Option<ClientId>,
    /// This session's `<random.time@server_name>`, for CRAM-MD5.
    salt: Vec<u8>,
    out: Outbox,
}

#[derive(Debug)]
enum Phase {
    ExpectCommand,
    ExpectPlainResponse {
        tag: Vec<u8>,
    },
    ExpectLoginUser {
        tag: Vec<u8>,
    },
    ExpectLoginPass {
        tag: Vec<u8>,
        user: Vec<u8>,
    },
    ExpectCramMd5Response {
        tag: Vec<u8>,
    },
    ExpectExternalResponse {
        tag: Vec<u8>,
    },
    ExpectOAuthResponse {
        tag: Vec<u8>,
        mechanism: OAuthMechanism,
    },
    /// The auth server refused a token and the error challenge is out; the
    /// client's dummy response brings this refusal (RFC 7628 3.2.3).
    ExpectOAuthDummy {
        tag: Vec<u8>,
        text: Vec<u8>,
        wait: Option<Duration>,
    },
    ExpectAuthReply {
        tag: Vec<u8>,
        request: AuthRequest,
    },
    ExpectBackend,
    Relaying,
    Closed,
}

#[derive(Debug)]
struct PendingCommand {
    tag: Vec<u8>,
    name: Vec<u8>,
    args: Vec<Arg>,
    /// Bytes of the command so far, lines and literals, against the buffer.
    size: usize,
    /// Bytes of literal still to read before the command line continues.
    literal: Option<usize>,
}

impl ImapFront {
    pub fn new(settings: impl Into<Rc<ImapFrontSettings>>, seed: SessionSeed) -> Self {
        let settings = settings.into();
        let tls = ClientTls::new(settings.starttls, &seed);
        let mut front = ImapFront {
            settings,
            seed,
            phase: Phase::ExpectCommand,
            tls,
            pending: None,
            errors: 0,
            attempts: 0,
            client_id: None,
            salt: Vec::new(),
            out: Outbox::default(),
        };
        front.salt = super::salt(&front.seed, &front.settings.server_name);
        front.out.send(GREETING);
        front
    }

    #[must_use]
    pub fn poll(&mut self) -> Option<Step> {
        self.out.pop()
    }

    /// The STARTTLS handshake completed: the session is private, the
    /// dialogue starts over (RFC 3501 6.2.1: the client asks CAPABILITY
    /// again) and reading resumes.
    pub fn on_tls_started(&mut self) {
        if !self.tls.handshake_done() {
            self.internal_error();
        }
    }

    /// A graceful stop: a session still waiting for the client's commands
    /// is told BYE (RFC 3501 7.1.5) and closed; one already logging in goes
    /// on to its relay.
    pub fn on_shutdown(&mut self) {
        if self.wants_input() {
            self.out.send(SHUTDOWN_BYE);
            self.close(CloseReason::ShuttingDown);
        }
    }

    pub fn wants_input(&self) -> bool {
        self.tls.reading()
            && matches!(
                self.phase,
                Phase::ExpectCommand
                    | Phase::ExpectPlainResponse { .. }
                    | Phase::ExpectLoginUser { .. }
                    | Phase::ExpectLoginPass { .. }
                    | Phase::ExpectCramMd5Response { .. }
                    | Phase::ExpectExternalResponse { .. }
                    | Phase::ExpectOAuthResponse { .. }
                    | Phase::ExpectOAuthDummy { .. }
            )
    }

    pub fn client(&self) -> &SessionSeed {
        &self.seed
    }

    /// The parameters of the client's last ID command, if it sent one.
    pub fn client_id(&self) -> Option<&ClientId> {
        self.client_id.as_ref()
    }

    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while self.wants_input() {
            let rest = &input[used..];
            if let Some(left) = self.pending.as_ref().and_then(|p| p.literal) {
                if rest.len() < left {
                    break;
                }
                let pending = self.pending.as_mut().expect("checked just above");
                pending.args.push(Arg::Str(rest[..left].to_vec()));
                pending.literal = None;
                used += left;
                continue;
            }
            let oauth_tag = self.oauth_line(rest);
            let budget = match oauth_tag {
                Some(_) => oauth::line_limit(self.settings.client_buffer, self.settings.max_token),
                None => self.settings.client_buffer - self.pending.as_ref().map_or(0, |p| p.size),
            };
            match next_line(rest, budget) {
                Line::Complete { line, consumed } => {
                    used += consumed;
                    self.on_line(line, consumed);
                }
                Line::Partial => break,
                Line::TooLong => {
                    self.pending = None;
                    match oauth_tag {
                        Some(tag) => self.token_too_long(&tag),
                        None => {
                            self.reply(b"*", INVALID);
                            self.close(CloseReason::CommandTooLong);
                        }
                    }
                }
            }
        }
        used
    }

    pub fn on_auth(&mut self, reply: Result<AuthReply, AuthError>) {
        let Phase::ExpectAuthReply { tag, request } = std::mem::replace(&mut self.phase, Phase::ExpectBackend) else {
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
                let login = ImapBackend::new(
                    tag,
                    user.clone(),
                    pass,
                    self.settings.proxy_buffer,
                    self.settings.pass_error_message,
                )
                .with_oauth(backend_method)
                .with_client_id(self.client_id.as_ref().filter(|_| self.settings.id_forward));
                self.out.push(Step::ConnectBackend(BackendPlan {
                    addr: backend,
                    user,
                    login: BackendLogin::Imap(login),
                }));
            }
            Ok(AuthReply::Reject {
                message,
                wait,
                sasl_error,
                ..
            }) => {
                let mut text = b"NO ".to_vec();
                text.extend_from_slice(&message);
                if let AuthMethod::OAuth(_) = request.method {
                    let mut challenge = b"+ ".to_vec();
                    challenge.extend_from_slice(&oauth::error_challenge(sasl_error.as_deref()));
                    challenge.extend_from_slice(b"\r\n");
                    self.out.send_owned(challenge);
                    self.phase = Phase::ExpectOAuthDummy { tag, text, wait };
                } else {
                    self.refuse(&tag, &text, wait);
                }
            }
            Ok(AuthReply::Retry { wait }) => {
                self.out.push(Step::Wait(wait));
                self.out.push(Step::Authenticate(request.clone()));
                self.phase = Phase::ExpectAuthReply { tag, request };
            }
            Err(_) => {
                self.out.send(INTERNAL_ERROR);
                self.close(CloseReason::AuthFailed);
            }
        }
    }

    /// The auth server's refusal: with Auth-Wait the client may try again
    /// after the delay, else the session ends.
    fn refuse(&mut self, tag: &[u8], text: &[u8], wait: Option<Duration>) {
        match wait {
            Some(delay) => {
                self.out.push(Step::Wait(delay));
                self.reply(tag, text);
                self.phase = Phase::ExpectCommand;
            }
            None => {
                self.reply(tag, text);
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

    fn on_line(&mut self, line: &[u8], consumed: usize) {
        match std::mem::replace(&mut self.phase, Phase::ExpectCommand) {
            Phase::ExpectCommand => self.on_command_line(line, consumed),
            Phase::ExpectPlainResponse { tag } => match decode_response(line) {
                SaslResponse::Data(data) => match split_plain(&data) {
                    Some((user, pass)) => self.authenticate(tag, user, pass),
                    None => self.invalid(&tag),
                },
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                SaslResponse::Invalid => self.invalid(&tag),
            },
            Phase::ExpectLoginUser { tag } => match decode_response(line) {
                SaslResponse::Data(user) => {
                    self.out.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { tag, user };
                }
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                SaslResponse::Invalid => self.invalid(&tag),
            },
            Phase::ExpectCramMd5Response { tag } => match decode_response(line) {
                SaslResponse::Data(data) => match split_cram_md5(&data) {
                    Some((user, digest)) => self.authenticate_with(tag, AuthMethod::CramMd5, user, digest),
                    None => self.invalid(&tag),
                },
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                SaslResponse::Invalid => self.invalid(&tag),
            },
            Phase::ExpectExternalResponse { tag } => match decode_response(line) {
                SaslResponse::Data(user) if !user.is_empty() => {
                    self.authenticate_with(tag, AuthMethod::External, user, Vec::new())
                }
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                _ => self.invalid(&tag),
            },
            Phase::ExpectOAuthResponse { tag, mechanism } => self.oauth_response(tag, mechanism, line),
            // Whatever the client answers (`AQ==`, an empty line, `*`), the
            // exchange has failed.
            Phase::ExpectOAuthDummy { tag, text, wait } => self.refuse(&tag, &text, wait),
            Phase::ExpectLoginPass { tag, user } => match decode_response(line) {
                SaslResponse::Data(pass) => self.authenticate(tag, user, pass),
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                SaslResponse::Invalid => self.invalid(&tag),
            },
            other => self.phase = other,
        }
    }

    fn on_command_line(&mut self, line: &[u8], consumed: usize) {
        let end = match self.pending.as_mut() {
            Some(pending) => {
                pending.size += consumed;
                syntax::parse_args(line, &mut pending.args)
            }
            None => match syntax::parse_first_line(line) {
                Ok(first) => {
                    self.pending = Some(PendingCommand {
                        tag: first.tag,
                        name: first.name,
                        args: first.args,
                        size: consumed,
                        literal: None,
                    });
                    Ok(first.end)
                }
                Err(tag) => return self.invalid(tag.as_deref().unwrap_or(b"*")),
            },
        };
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        match end {
            Ok(LineEnd::Complete) => {
                if let Some(command) = self.pending.take() {
                    self.dispatch(command);
                }
            }
            Ok(LineEnd::Literal { len, synchronizing }) => {
                if pending.size + len > self.settings.client_buffer {
                    // nginx would accept the literal and then fail on the
                    // full buffer; refusing now spares reading it.
                    self.pending = None;
                    self.reply(b"*", INVALID);
                    return self.close(CloseReason::CommandTooLong);
                }
                pending.size += len;
                pending.literal = Some(len);
                if synchronizing {
                    self.out.send(CONTINUE_LITERAL);
                }
            }
            Err(syntax::Invalid) => {
                let tag = pending.tag.clone();
                self.pending = None;
                self.invalid(&tag);
            }
        }
    }

    /// One handler per command, as nginx's `ngx_mail_imap_*`.
    fn dispatch(&mut self, cmd: PendingCommand) {
        match cmd.name.to_ascii_uppercase().as_slice() {
            b"CAPABILITY" => self.capability(&cmd.tag),
            b"NOOP" => self.reply(&cmd.tag, OK),
            b"LOGOUT" => self.logout(&cmd.tag),
            b"STARTTLS" => self.starttls(cmd),
            // nginx: with `starttls only`, no credentials in plaintext.
            b"LOGIN" | b"AUTHENTICATE" if self.tls.must_start_first() => self.invalid(&cmd.tag),
            b"LOGIN" => self.login(cmd),
            b"AUTHENTICATE" => self.authenticate_command(cmd),
            b"ID" => self.id(cmd),
            _ => self.invalid(&cmd.tag),
        }
    }

    fn capability(&mut self, tag: &[u8]) {
        let line = if self.tls.plain() {
            self.settings.plaintext_capability_line.clone()
        } else {
            self.settings.capability_line.clone()
        };
        self.out.send_owned(line);
        self.reply(tag, OK);
    }

    /// RFC 3501 6.2.1. nginx answers `OK completed` like any command, then
    /// drops what it had read past the command line; here `feed` stops
    /// right after it, and the driver discards the rest.
    fn starttls(&mut self, cmd: PendingCommand) {
        // nginx ignores arguments; the grammar has none, so Postern refuses
        // them rather than start TLS for a client it misreads.
        if !self.tls.can_start() || !cmd.args.is_empty() {
            return self.invalid(&cmd.tag);
        }
        self.reply(&cmd.tag, OK);
        self.tls.start(&mut self.out);
    }

    fn logout(&mut self, tag: &[u8]) {
        self.out.send(BYE);
        self.reply(tag, OK);
        self.close(CloseReason::ClientQuit);
    }

    fn login(&mut self, cmd: PendingCommand) {
        match cmd.args.as_slice() {
            [user, pass] => match (user.astring(), pass.astring()) {
                (Some(user), Some(pass)) => {
                    let (user, pass) = (user.to_vec(), pass.to_vec());
                    self.authenticate(cmd.tag, user, pass);
                }
                _ => self.invalid(&cmd.tag),
            },
            _ => self.invalid(&cmd.tag),
        }
    }

    /// RFC 2971 ID. nginx answers BAD; clients such as Thunderbird send ID
    /// before login, so Postern answers `* ID NIL` and keeps what the client
    /// said. ID is advertised only when `imap_capabilities` lists it.
    fn id(&mut self, cmd: PendingCommand) {
        match parse_id(&cmd.args) {
            Some(params) => {
                self.client_id = Some(params);
                self.out.send(b"* ID NIL\r\n");
                self.reply(&cmd.tag, OK);
            }
            None => self.invalid(&cmd.tag),
        }
    }

    fn authenticate_command(&mut self, cmd: PendingCommand) {
        let (mechanism, initial) = match cmd.args.as_slice() {
            [Arg::Atom(m)] => (m.to_ascii_uppercase(), None),
            [Arg::Atom(m), ir] => match ir.astring() {
                Some(ir) => (m.to_ascii_uppercase(), Some(ir.to_vec())),
                None => return self.invalid(&cmd.tag),
            },
            _ => return self.invalid(&cmd.tag),
        };
        let oauth = OAuthMechanism::from_sasl_name(&mechanism).filter(|m| self.settings.oauth.contains(m));
        if let Some(oauth) = oauth {
            return match initial {
                None => {
                    self.out.send(PROMPT_EMPTY);
                    self.phase = Phase::ExpectOAuthResponse {
                        tag: cmd.tag,
                        mechanism: oauth,
                    };
                }
                Some(ir) => self.oauth_response(cmd.tag, oauth, &ir),
            };
        }
        match (mechanism.as_slice(), initial) {
            (b"PLAIN", None) => {
                self.out.send(PROMPT_EMPTY);
                self.phase = Phase::ExpectPlainResponse { tag: cmd.tag };
            }
            (b"PLAIN", Some(ir)) => match decode_response(&ir) {
                SaslResponse::Data(data) => match split_plain(&data) {
                    Some((user, pass)) => self.authenticate(cmd.tag, user, pass),
                    None => self.invalid(&cmd.tag),
                },
                _ => self.invalid(&cmd.tag),
            },
            (b"LOGIN", None) => {
                self.out.send(PROMPT_USERNAME);
                self.phase = Phase::ExpectLoginUser { tag: cmd.tag };
            }
            (b"CRAM-MD5", None) if self.settings.cram_md5 => {
                let mut prompt = b"+ ".to_vec();
                prompt.extend_from_slice(BASE64.encode(&self.salt).as_bytes());
                prompt.extend_from_slice(b"\r\n");
                self.out.send_owned(prompt);
                self.phase = Phase::ExpectCramMd5Response { tag: cmd.tag };
            }
            (b"EXTERNAL", None) if self.settings.external => {
                self.out.send(PROMPT_EMPTY);
                self.phase = Phase::ExpectExternalResponse { tag: cmd.tag };
            }
            (b"EXTERNAL", Some(ir)) if self.settings.external => match decode_response(&ir) {
                SaslResponse::Data(user) if !user.is_empty() => {
                    self.authenticate_with(cmd.tag, AuthMethod::External, user, Vec::new())
                }
                _ => self.invalid(&cmd.tag),
            },
            (b"LOGIN", Some(ir)) => match decode_response(&ir) {
                SaslResponse::Data(user) => {
                    self.out.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { tag: cmd.tag, user };
                }
                _ => self.invalid(&cmd.tag),
            },
            _ => self.invalid(&cmd.tag),
        }
    }

    /// An OAUTHBEARER / XOAUTH2 message, as the initial response or after
    /// the `+ ` prompt: the token goes to the auth server as the password.
    fn oauth_response(&mut self, tag: Vec<u8>, mechanism: OAuthMechanism, line: &[u8]) {
        match decode_response(line) {
            SaslResponse::Data(data) => match mechanism.parse(&data) {
                Ok(bearer) if bearer.token.len() > self.settings.max_token => self.token_too_long(&tag),
                Ok(bearer) => self.authenticate_with(tag, AuthMethod::OAuth(mechanism), bearer.user, bearer.token),
                Err(_) => self.invalid(&tag),
            },
            SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
            SaslResponse::Invalid => self.invalid(&tag),
        }
    }

    /// The tag of a line that may carry an OAuth message, which
    /// `oauth_max_token_size` bounds instead of the client buffer: the
    /// response after the `+ ` prompt, or `tag AUTHENTICATE OAUTHBEARER
    /// <initial response>`. Only the first client buffer of `rest` is
    /// looked at, so the answer does not depend on how the line arrives.
    fn oauth_line(&self, rest: &[u8]) -> Option<Vec<u8>> {
        match &self.phase {
            Phase::ExpectOAuthResponse { tag, .. } => return Some(tag.clone()),
            Phase::ExpectCommand if self.pending.is_none() && !self.tls.must_start_first() => {}
            _ => return None,
        }
        let window = &rest[..rest.len().min(self.settings.client_buffer)];
        let space = memchr::memchr(b' ', window)?;
        let (tag, command) = (&window[..space], &window[space + 1..]);
        let authenticate = command.get(..13)?.eq_ignore_ascii_case(b"AUTHENTICATE ");
        (syntax::valid_tag(tag)
            && authenticate
            && oauth::starts_initial_response(command, 13, &self.settings.oauth).is_some())
        .then(|| tag.to_vec())
    }

    /// A token over `oauth_max_token_size`: refused, and the session ends,
    /// as for any too long command (its line may not even be read whole).
    fn token_too_long(&mut self, tag: &[u8]) {
        self.reply(tag, b"BAD token too long");
        self.close(CloseReason::CommandTooLong);
    }

    fn authenticate(&mut self, tag: Vec<u8>, user: Vec<u8>, pass: Vec<u8>) {
        self.authenticate_with(tag, AuthMethod::Plain, user, pass);
    }

    fn authenticate_with(&mut self, tag: Vec<u8>, method: AuthMethod, user: Vec<u8>, pass: Vec<u8>) {
        self.attempts += 1;
        let request = AuthRequest {
            method,
            user,
            pass: Secret::new(pass),
            protocol: Protocol::Imap,
            attempt: self.attempts,
            salt: (method == AuthMethod::CramMd5).then(|| self.salt.clone()),
            envelope: None,
        };
        self.out.push(Step::Authenticate(request.clone()));
        self.phase = Phase::ExpectAuthReply { tag, request };
    }

    /// Answers an invalid command and counts it against `max_errors`.
    fn invalid(&mut self, tag: &[u8]) {
        self.reply(tag, INVALID);
        self.errors += 1;
        if self.errors >= self.settings.max_errors {
            self.close(CloseReason::TooManyErrors);
        }
    }

    fn internal_error(&mut self) {
        self.out.send(INTERNAL_ERROR);
        self.close(CloseReason::BackendFailed);
    }

    fn reply(&mut self, tag: &[u8], text: &[u8]) {
        let mut line = Vec::with_capacity(tag.len() + text.len() + 3);
        line.extend_from_slice(tag);
        line.push(b' ');
        line.extend_from_slice(text);
        line.extend_from_slice(b"\r\n");
        self.out.send_owned(line);
    }

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed;
        self.out.push(Step::Close(reason));
    }
}

/// `ID NIL` or `ID ("field" "value"|NIL ...)`, within RFC 2971's bounds.
fn parse_id(args: &[Arg]) -> Option<ClientId> {
    match args {
        [Arg::Atom(nil)] if nil.eq_ignore_ascii_case(b"NIL") => Some(Vec::new()),
        [Arg::Open, inner @ .., Arg::Close] if inner.len() % 2 == 0 && inner.len() / 2 <= MAX_ID_PAIRS => inner
            .chunks(2)
            .map(|pair| {
                let field = match &pair[0] {
                    Arg::Str(f) if f.len() <= MAX_ID_FIELD => f.clone(),
                    _ => return None,
                };
                let value = match &pair[1] {
                    Arg::Str(v) if v.len() <= MAX_ID_VALUE => Some(v.clone()),
                    Arg::Atom(nil) if nil.eq_ignore_ascii_case(b"NIL") => None,
                    _ => return None,
                };
                Some((field, value))
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
