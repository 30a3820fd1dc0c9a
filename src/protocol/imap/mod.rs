//! The IMAP front end (RFC 3501/9051, pre-login subset as nginx serves it):
//! greeting, CAPABILITY, NOOP, LOGOUT, LOGIN, AUTHENTICATE PLAIN/LOGIN.

use std::collections::VecDeque;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::auth::{AuthError, AuthMethod, AuthReply, AuthRequest, Secret};
use crate::config::{self, Protocol, ServerConfig};
use crate::protocol::backend::{BackendLogin, ImapBackend};
use crate::protocol::line::{next_line, Line};
use crate::protocol::{BackendOutcome, BackendPlan, CloseReason, SessionSeed, Step};

pub const GREETING: &[u8] = b"* OK IMAP4 ready\r\n";
pub const INTERNAL_ERROR: &[u8] = b"* BAD internal server error\r\n";
const BYE: &[u8] = b"* BYE\r\n";
const OK: &[u8] = b"OK completed";
const INVALID: &[u8] = b"BAD invalid command";
const CONTINUE_LITERAL: &[u8] = b"+ OK\r\n";
const PROMPT_EMPTY: &[u8] = b"+ \r\n";
const PROMPT_USERNAME: &[u8] = b"+ VXNlcm5hbWU6\r\n";
const PROMPT_PASSWORD: &[u8] = b"+ UGFzc3dvcmQ6\r\n";

/// nginx closes a session after this many invalid commands (`max_errors`).
pub const DEFAULT_MAX_ERRORS: u32 = 5;

/// The longest tag nginx accepts; tags are echoed into backend commands, so
/// they are also kept to a safe alphabet (`tag_char`).
const MAX_TAG: usize = 32;

/// Longest literal length written in a command, in digits: anything longer
/// is over every buffer limit anyway.
const MAX_LITERAL_DIGITS: usize = 10;

/// What one IMAP server block needs per session, computed once per core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapFrontSettings {
    /// `* CAPABILITY ...\r\n`: imap_capabilities, then AUTH= per imap_auth.
    capability_line: Vec<u8>,
    /// `imap_client_buffer`: the longest command, literals included.
    client_buffer: usize,
    max_errors: u32,
    /// `proxy_buffer`: the longest backend line during login.
    proxy_buffer: usize,
    pass_error_message: bool,
}

impl ImapFrontSettings {
    pub fn from_server(server: &ServerConfig) -> Self {
        let mut line = b"* CAPABILITY".to_vec();
        for cap in &server.imap.capabilities {
            line.push(b' ');
            line.extend_from_slice(cap.as_bytes());
        }
        // nginx lists AUTH= in its own fixed order, whatever the config's.
        for (method, name) in [
            (config::AuthMethod::Plain, "PLAIN"),
            (config::AuthMethod::Login, "LOGIN"),
            (config::AuthMethod::CramMd5, "CRAM-MD5"),
            (config::AuthMethod::External, "EXTERNAL"),
        ] {
            if server.imap.auth.contains(&method) {
                line.extend_from_slice(b" AUTH=");
                line.extend_from_slice(name.as_bytes());
            }
        }
        line.extend_from_slice(b"\r\n");
        ImapFrontSettings {
            capability_line: line,
            client_buffer: server.imap.client_buffer,
            max_errors: DEFAULT_MAX_ERRORS,
            proxy_buffer: crate::config::DEFAULT_PROXY_BUFFER,
            pass_error_message: server.proxy_pass_error_message,
        }
    }
}

/// One client's IMAP dialogue up to the relay.
///
/// Inputs: `feed(bytes)` with the client's bytes, returning how many it
/// consumed (keep the rest and offer it again with more); `on_auth` with the
/// auth server's decision after `Step::Authenticate`; `on_backend` after
/// `Step::ConnectBackend`. Output: after creation and after every input,
/// call `poll` until it returns `None`, performing each `Step` in order.
/// `wants_input` says whether the machine is waiting for client bytes.
#[derive(Debug)]
pub struct ImapFront {
    settings: ImapFrontSettings,
    seed: SessionSeed,
    phase: Phase,
    /// A command whose literal(s) are still arriving.
    pending: Option<PendingCommand>,
    errors: u32,
    attempts: u32,
    steps: VecDeque<Step>,
}

#[derive(Debug)]
enum Phase {
    ExpectCommand,
    ExpectPlainResponse { tag: Vec<u8> },
    ExpectLoginUser { tag: Vec<u8> },
    ExpectLoginPass { tag: Vec<u8>, user: Vec<u8> },
    ExpectAuthReply { tag: Vec<u8>, request: AuthRequest },
    ExpectBackend,
    Relaying,
    Closed,
}

#[derive(Debug)]
struct PendingCommand {
    tag: Vec<u8>,
    name: Vec<u8>,
    args: Vec<Vec<u8>>,
    /// Bytes of the command so far, lines and literals, against the buffer.
    size: usize,
    /// Bytes of literal still to read before the command line continues.
    literal: Option<usize>,
}

/// The result of parsing one line of a command.
enum LineParse {
    Complete,
    /// The line ended with `{n}` or `{n+}`: `n` bytes follow.
    Literal {
        len: usize,
        synchronizing: bool,
    },
}

/// The line is not valid IMAP.
struct Invalid;

/// A first command line that is not valid IMAP, and its tag if that was.
struct InvalidCommand {
    tag: Option<Vec<u8>>,
}

impl ImapFront {
    pub fn new(settings: ImapFrontSettings, seed: SessionSeed) -> Self {
        let mut front = ImapFront {
            settings,
            seed,
            phase: Phase::ExpectCommand,
            pending: None,
            errors: 0,
            attempts: 0,
            steps: VecDeque::new(),
        };
        front.send(GREETING);
        front
    }

    #[must_use]
    pub fn poll(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    pub fn wants_input(&self) -> bool {
        matches!(
            self.phase,
            Phase::ExpectCommand
                | Phase::ExpectPlainResponse { .. }
                | Phase::ExpectLoginUser { .. }
                | Phase::ExpectLoginPass { .. }
        )
    }

    pub fn client(&self) -> &SessionSeed {
        &self.seed
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
                pending.args.push(rest[..left].to_vec());
                pending.literal = None;
                used += left;
                continue;
            }
            let budget = self.settings.client_buffer - self.pending.as_ref().map_or(0, |p| p.size);
            match next_line(rest, budget) {
                Line::Complete { line, consumed } => {
                    used += consumed;
                    self.on_line(line, consumed);
                }
                Line::Partial => break,
                Line::TooLong => {
                    self.pending = None;
                    self.reply(b"*", INVALID);
                    self.close(CloseReason::CommandTooLong);
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
            Ok(AuthReply::Accept { backend, user, pass }) => {
                let user = user.unwrap_or(request.user);
                let pass = pass.unwrap_or(request.pass);
                let login = ImapBackend::new(
                    tag,
                    user.clone(),
                    pass,
                    self.settings.proxy_buffer,
                    self.settings.pass_error_message,
                );
                self.steps.push_back(Step::ConnectBackend(BackendPlan {
                    addr: backend,
                    user,
                    login: BackendLogin::Imap(login),
                }));
            }
            Ok(AuthReply::Reject { message, wait }) => {
                let mut text = b"NO ".to_vec();
                text.extend_from_slice(&message);
                match wait {
                    Some(delay) => {
                        self.steps.push_back(Step::Wait(delay));
                        self.reply(&tag, &text);
                        self.phase = Phase::ExpectCommand;
                    }
                    None => {
                        self.reply(&tag, &text);
                        self.close(CloseReason::LoginRefused);
                    }
                }
            }
            Ok(AuthReply::Retry { wait }) => {
                self.steps.push_back(Step::Wait(wait));
                self.steps.push_back(Step::Authenticate(request.clone()));
                self.phase = Phase::ExpectAuthReply { tag, request };
            }
            Err(_) => {
                self.send(INTERNAL_ERROR);
                self.close(CloseReason::AuthFailed);
            }
        }
    }

    pub fn on_backend(&mut self, outcome: BackendOutcome) {
        if !matches!(self.phase, Phase::ExpectBackend) {
            return self.internal_error();
        }
        match outcome {
            BackendOutcome::LoggedIn { client_reply } => {
                self.send(&client_reply);
                self.phase = Phase::Relaying;
                self.steps.push_back(Step::Relay);
            }
            BackendOutcome::Failed { client_reply } => {
                self.send(client_reply.as_deref().unwrap_or(INTERNAL_ERROR));
                self.close(CloseReason::BackendFailed);
            }
        }
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
                    self.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { tag, user };
                }
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                SaslResponse::Invalid => self.invalid(&tag),
            },
            Phase::ExpectLoginPass { tag, user } => match decode_response(line) {
                SaslResponse::Data(pass) => self.authenticate(tag, user, pass),
                SaslResponse::Cancel => self.reply(&tag, b"BAD authentication cancelled"),
                SaslResponse::Invalid => self.invalid(&tag),
            },
            other => self.phase = other,
        }
    }

    fn on_command_line(&mut self, line: &[u8], consumed: usize) {
        let parsed = match self.pending.as_mut() {
            Some(pending) => {
                pending.size += consumed;
                parse_args(line, &mut pending.args)
            }
            None => match parse_first_line(line, consumed) {
                Ok((pending, parsed)) => {
                    self.pending = Some(pending);
                    Ok(parsed)
                }
                Err(InvalidCommand { tag }) => return self.invalid(tag.as_deref().unwrap_or(b"*")),
            },
        };
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        match parsed {
            Ok(LineParse::Complete) => {
                if let Some(command) = self.pending.take() {
                    self.dispatch(command);
                }
            }
            Ok(LineParse::Literal { len, synchronizing }) => {
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
                    self.send(CONTINUE_LITERAL);
                }
            }
            Err(Invalid) => {
                let tag = pending.tag.clone();
                self.pending = None;
                self.invalid(&tag);
            }
        }
    }

    fn dispatch(&mut self, cmd: PendingCommand) {
        let name = cmd.name.to_ascii_uppercase();
        match (name.as_slice(), cmd.args.len()) {
            (b"CAPABILITY", _) => {
                let line = self.settings.capability_line.clone();
                self.send(&line);
                self.reply(&cmd.tag, OK);
            }
            (b"NOOP", _) => self.reply(&cmd.tag, OK),
            (b"LOGOUT", _) => {
                self.send(BYE);
                self.reply(&cmd.tag, OK);
                self.close(CloseReason::ClientQuit);
            }
            (b"LOGIN", 2) => {
                let mut args = cmd.args.into_iter();
                let (user, pass) = (args.next().unwrap_or_default(), args.next().unwrap_or_default());
                self.authenticate(cmd.tag, user, pass);
            }
            (b"AUTHENTICATE", 1 | 2) => self.authenticate_command(cmd),
            _ => self.invalid(&cmd.tag),
        }
    }

    fn authenticate_command(&mut self, cmd: PendingCommand) {
        let mechanism = cmd.args[0].to_ascii_uppercase();
        let initial = cmd.args.get(1);
        match (mechanism.as_slice(), initial) {
            (b"PLAIN", None) => {
                self.send(PROMPT_EMPTY);
                self.phase = Phase::ExpectPlainResponse { tag: cmd.tag };
            }
            (b"PLAIN", Some(ir)) => match decode_response(ir) {
                SaslResponse::Data(data) => match split_plain(&data) {
                    Some((user, pass)) => self.authenticate(cmd.tag, user, pass),
                    None => self.invalid(&cmd.tag),
                },
                _ => self.invalid(&cmd.tag),
            },
            (b"LOGIN", None) => {
                self.send(PROMPT_USERNAME);
                self.phase = Phase::ExpectLoginUser { tag: cmd.tag };
            }
            (b"LOGIN", Some(ir)) => match decode_response(ir) {
                SaslResponse::Data(user) => {
                    self.send(PROMPT_PASSWORD);
                    self.phase = Phase::ExpectLoginPass { tag: cmd.tag, user };
                }
                _ => self.invalid(&cmd.tag),
            },
            _ => self.invalid(&cmd.tag),
        }
    }

    fn authenticate(&mut self, tag: Vec<u8>, user: Vec<u8>, pass: Vec<u8>) {
        self.attempts += 1;
        let request = AuthRequest {
            method: AuthMethod::Plain,
            user,
            pass: Secret::new(pass),
            protocol: Protocol::Imap,
            attempt: self.attempts,
        };
        self.steps.push_back(Step::Authenticate(request.clone()));
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
        self.send(INTERNAL_ERROR);
        self.close(CloseReason::BackendFailed);
    }

    fn reply(&mut self, tag: &[u8], text: &[u8]) {
        let mut line = Vec::with_capacity(tag.len() + text.len() + 3);
        line.extend_from_slice(tag);
        line.push(b' ');
        line.extend_from_slice(text);
        line.extend_from_slice(b"\r\n");
        self.send_owned(line);
    }

    fn send(&mut self, bytes: &[u8]) {
        self.send_owned(bytes.to_vec());
    }

    /// Replies to pipelined commands join one write.
    fn send_owned(&mut self, bytes: Vec<u8>) {
        if let Some(Step::Send(last)) = self.steps.back_mut() {
            last.extend_from_slice(&bytes);
        } else {
            self.steps.push_back(Step::Send(bytes));
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed;
        self.steps.push_back(Step::Close(reason));
    }
}

/// Parses `tag SP name [args]`. On failure, the tag if it was valid.
fn parse_first_line(line: &[u8], consumed: usize) -> Result<(PendingCommand, LineParse), InvalidCommand> {
    let tag_end = memchr::memchr(b' ', line).ok_or(InvalidCommand { tag: None })?;
    let tag = &line[..tag_end];
    if tag.is_empty() || tag.len() > MAX_TAG || !tag.iter().all(|&b| tag_char(b)) {
        return Err(InvalidCommand { tag: None });
    }
    let rest = &line[tag_end + 1..];
    let name_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() || !name.iter().all(u8::is_ascii_alphabetic) {
        return Err(InvalidCommand {
            tag: Some(tag.to_vec()),
        });
    }
    let mut pending = PendingCommand {
        tag: tag.to_vec(),
        name: name.to_vec(),
        args: Vec::new(),
        size: consumed,
        literal: None,
    };
    match parse_args(&rest[name_end..], &mut pending.args) {
        Ok(parsed) => Ok((pending, parsed)),
        Err(Invalid) => Err(InvalidCommand { tag: Some(pending.tag) }),
    }
}

fn tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Parses ` arg arg ...` up to the end of a line: atoms, quoted strings, and
/// a literal announcement, which must end the line.
fn parse_args(mut s: &[u8], args: &mut Vec<Vec<u8>>) -> Result<LineParse, Invalid> {
    loop {
        let trimmed = s.iter().position(|&b| b != b' ').map_or(&s[s.len()..], |i| &s[i..]);
        if trimmed.is_empty() {
            return Ok(LineParse::Complete);
        }
        if trimmed.len() == s.len() {
            // Arguments are separated by spaces: `"a""b"` is not two strings.
            return Err(Invalid);
        }
        s = trimmed;
        match s[0] {
            b'"' => {
                let (value, rest) = parse_quoted(&s[1..])?;
                args.push(value);
                s = rest;
            }
            b'{' => return parse_literal(&s[1..]),
            _ => {
                let end = memchr::memchr(b' ', s).unwrap_or(s.len());
                let atom = &s[..end];
                if atom.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'"' || b == b'{') {
                    return Err(Invalid);
                }
                args.push(atom.to_vec());
                s = &s[end..];
            }
        }
    }
}

/// After the opening quote: the string up to the closing one, with `\"` and
/// `\\` the only escapes (RFC 3501 quoted).
fn parse_quoted(s: &[u8]) -> Result<(Vec<u8>, &[u8]), Invalid> {
    let mut value = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok((value, &s[i + 1..])),
            b'\\' => match s.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    value.push(c);
                    i += 2;
                }
                _ => return Err(Invalid),
            },
            0 => return Err(Invalid),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    Err(Invalid)
}

/// After the `{`: `n}` or `n+}`, and nothing after it on the line.
fn parse_literal(s: &[u8]) -> Result<LineParse, Invalid> {
    let close = s.strip_suffix(b"}").ok_or(Invalid)?;
    let (digits, synchronizing) = match close.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (close, true),
    };
    if digits.is_empty() || digits.len() > MAX_LITERAL_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Invalid);
    }
    let len = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(Invalid)?;
    Ok(LineParse::Literal { len, synchronizing })
}

enum SaslResponse {
    Data(Vec<u8>),
    /// `*`: the client gave up the exchange (RFC 3501 6.2.2).
    Cancel,
    Invalid,
}

fn decode_response(line: &[u8]) -> SaslResponse {
    if line == b"*" {
        return SaslResponse::Cancel;
    }
    // RFC 4959: a lone `=` is an empty initial response.
    let line = if line == b"=" { &b""[..] } else { line };
    match BASE64.decode(line) {
        Ok(data) => SaslResponse::Data(data),
        Err(_) => SaslResponse::Invalid,
    }
}

/// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`. nginx logs in
/// as the authcid and ignores the authzid.
fn split_plain(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = data.splitn(3, |&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    (!user.is_empty()).then(|| (user.to_vec(), pass.to_vec()))
}

#[cfg(test)]
mod tests;
