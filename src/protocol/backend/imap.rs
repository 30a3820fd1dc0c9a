//! Logs in to an IMAP backend on the client's behalf with LOGIN and the
//! client's tag. nginx always sends user and password as synchronizing
//! literals: three writes and two round trips to the backend per login.
//! Postern sends the whole command in one write whenever the syntax allows
//! it: as quoted strings when both are 7-bit text without CR or LF (escaping
//! `"` and `\`), else as non-synchronizing literals when the greeting
//! advertises LITERAL+, and only else as nginx does. In every form no byte of
//! either can be read as IMAP syntax.
//!
//! When the auth server asks for it (`Auth-Method: oauthbearer|xoauth2`),
//! the password is a bearer token and goes with AUTHENTICATE instead: as an
//! initial response when the greeting advertises SASL-IR, else after the
//! backend's `+`. A refusal comes as an error challenge, which gets the
//! mechanism's dummy response before the tagged NO.
//!
//! With `imap_id_forward on` the client's ID parameters go first, in the
//! same write as the login (RFC 2971 allows ID in any state), so the
//! backend's login log names the real client at no extra round trip. Only
//! to a backend whose greeting lists ID, and only the pairs that fit the
//! RFC's bounds as quoted strings; the ID's replies are not the client's
//! and are dropped.

use std::collections::VecDeque;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::BackendStep;
use crate::auth::{OAuthMechanism, Secret};
use crate::protocol::imap::{push_id_pair, push_quoted, ClientId};
use crate::protocol::BackendOutcome;

/// The tag of the forwarded ID; its replies end before the login's.
const ID_TAG: &[u8] = b"postern-id";
/// RFC 2971 3.3: field strings up to 30 octets, values up to 1024, at most
/// 30 pairs.
const ID_MAX_FIELD: usize = 30;
const ID_MAX_VALUE: usize = 1024;
const ID_MAX_PAIRS: usize = 30;

/// `ImapBackend` drives one login.
///
/// Input: `feed(bytes)` with what the backend sent; it returns how many bytes
/// it consumed (it stops at the end of the login, the rest belongs to the
/// relay). Output: `poll()` until `None` after creation and after each
/// `feed`. The last step is always `Done`.
#[derive(Debug)]
pub struct ImapBackend {
    tag: Vec<u8>,
    user: Vec<u8>,
    pass: Secret,
    /// Longest backend line, and the most untagged bytes kept for the client
    /// (`proxy_buffer`).
    line_limit: usize,
    pass_error_message: bool,
    /// Log in with this SASL mechanism, `pass` being the token.
    oauth: Option<OAuthMechanism>,
    /// `tag ID (...)\r\n` to send before the login, if the backend has ID.
    id_command: Option<Vec<u8>>,
    /// The forwarded ID's tagged reply has not come yet.
    id_pending: bool,
    phase: Phase,
    steps: VecDeque<BackendStep>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    ExpectGreeting,
    ExpectUserContinuation,
    ExpectPassContinuation,
    /// AUTHENTICATE without SASL-IR: the message goes after the `+`.
    ExpectSaslContinuation {
        mechanism: OAuthMechanism,
    },
    /// The dummy response to an OAuth error challenge is sent: the tagged
    /// NO follows.
    ExpectSaslFailure,
    /// Untagged lines (`* CAPABILITY ...`) before the tagged reply are kept
    /// and forwarded with it.
    ExpectLoginResult {
        untagged: Vec<u8>,
    },
    Done,
}

impl ImapBackend {
    pub fn new(tag: Vec<u8>, user: Vec<u8>, pass: Secret, line_limit: usize, pass_error_message: bool) -> Self {
        ImapBackend {
            tag,
            user,
            pass,
            line_limit,
            pass_error_message,
            oauth: None,
            id_command: None,
            id_pending: false,
            phase: Phase::ExpectGreeting,
            steps: VecDeque::new(),
        }
    }

    /// Log in with AUTHENTICATE and this mechanism (the auth server's
    /// `Auth-Method`) rather than LOGIN; `None` keeps LOGIN.
    pub fn with_oauth(mut self, mechanism: Option<OAuthMechanism>) -> Self {
        self.oauth = mechanism;
        self
    }

    /// Forward the client's ID parameters (`imap_id_forward on`); `None`,
    /// or no pair fit to send, forwards nothing.
    pub fn with_client_id(mut self, id: Option<&ClientId>) -> Self {
        self.id_command = id.and_then(|id| id_command(id));
        self
    }

    #[must_use]
    pub fn poll(&mut self) -> Option<BackendStep> {
        self.steps.pop_front()
    }

    pub fn feed(&mut self, input: &[u8]) -> usize {
        let limit = self.line_limit;
        // An endless line cannot be forwarded whole; it is never a valid
        // login step either.
        let too_long = |m: &mut Self| m.finish(BackendOutcome::Failed { client_reply: None });
        crate::protocol::line::feed_lines(self, input, limit, |m| m.phase != Phase::Done, Self::on_line, too_long)
    }

    fn on_line(&mut self, line: &[u8]) {
        if self.id_pending {
            // The forwarded ID's answers: the server's own ID and the tagged
            // reply, whatever its status. In order, before the login's.
            if line.starts_with(b"* ID ") {
                return;
            }
            if line.strip_prefix(ID_TAG).is_some_and(|rest| rest.starts_with(b" ")) {
                self.id_pending = false;
                return;
            }
        }
        if self.phase == Phase::ExpectGreeting && line.starts_with(b"* OK") && greeting_has(line, b"ID") {
            if let Some(id) = self.id_command.take() {
                self.send(id);
                self.id_pending = true;
            }
        }
        let tagged_ok = self.is_tagged_ok(line);
        match &mut self.phase {
            Phase::ExpectGreeting if line.starts_with(b"* OK") && self.oauth.is_some() => self.authenticate(line),
            &mut Phase::ExpectSaslContinuation { mechanism } if line.starts_with(b"+") => {
                let mut response = self.oauth_response(mechanism);
                response.extend_from_slice(b"\r\n");
                self.send(response);
                self.phase = Phase::ExpectLoginResult { untagged: Vec::new() };
            }
            Phase::ExpectLoginResult { .. } if line.starts_with(b"+") => match self.oauth {
                // RFC 7628 3.2.3: the error challenge wants a dummy answer
                // before the server says NO.
                Some(mechanism) => {
                    let mut dummy = mechanism.dummy_response().to_vec();
                    dummy.extend_from_slice(b"\r\n");
                    self.send(dummy);
                    self.phase = Phase::ExpectSaslFailure;
                }
                None => self.fail(line),
            },
            Phase::ExpectSaslFailure if line.starts_with(b"* ") => {}
            Phase::ExpectGreeting if line.starts_with(b"* OK") => {
                let mut cmd = self.tag.clone();
                cmd.extend_from_slice(b" LOGIN ");
                let pass = self.pass.expose();
                if quotable(&self.user) && quotable(pass) {
                    push_quoted(&mut cmd, &self.user);
                    cmd.push(b' ');
                    push_quoted(&mut cmd, pass);
                    cmd.extend_from_slice(b"\r\n");
                    self.phase = Phase::ExpectLoginResult { untagged: Vec::new() };
                } else if greeting_has(line, b"LITERAL+") {
                    cmd.extend_from_slice(format!("{{{}+}}\r\n", self.user.len()).as_bytes());
                    cmd.extend_from_slice(&self.user);
                    cmd.extend_from_slice(format!(" {{{}+}}\r\n", pass.len()).as_bytes());
                    cmd.extend_from_slice(pass);
                    cmd.extend_from_slice(b"\r\n");
                    self.phase = Phase::ExpectLoginResult { untagged: Vec::new() };
                } else {
                    cmd.extend_from_slice(format!("{{{}}}\r\n", self.user.len()).as_bytes());
                    self.phase = Phase::ExpectUserContinuation;
                }
                self.send(cmd);
            }
            Phase::ExpectUserContinuation if line.starts_with(b"+") => {
                let mut cmd = self.user.clone();
                cmd.extend_from_slice(format!(" {{{}}}\r\n", self.pass.expose().len()).as_bytes());
                self.send(cmd);
                self.phase = Phase::ExpectPassContinuation;
            }
            Phase::ExpectPassContinuation if line.starts_with(b"+") => {
                let mut cmd = self.pass.expose().to_vec();
                cmd.extend_from_slice(b"\r\n");
                self.send(cmd);
                self.phase = Phase::ExpectLoginResult { untagged: Vec::new() };
            }
            Phase::ExpectLoginResult { untagged } if line.starts_with(b"* ") => {
                if untagged.len() + line.len() + 2 > self.line_limit {
                    self.fail(line);
                } else {
                    untagged.extend_from_slice(line);
                    untagged.extend_from_slice(b"\r\n");
                }
            }
            Phase::ExpectLoginResult { untagged } if tagged_ok => {
                let mut reply = std::mem::take(untagged);
                reply.extend_from_slice(line);
                reply.extend_from_slice(b"\r\n");
                self.finish(BackendOutcome::LoggedIn { client_reply: reply });
            }
            _ => self.fail(line),
        }
    }

    /// `tag AUTHENTICATE MECH [initial response]`.
    fn authenticate(&mut self, greeting: &[u8]) {
        let Some(mechanism) = self.oauth else {
            return self.fail(greeting);
        };
        let mut cmd = self.tag.clone();
        cmd.extend_from_slice(b" AUTHENTICATE ");
        cmd.extend_from_slice(mechanism.sasl_name().as_bytes());
        if greeting_has(greeting, b"SASL-IR") {
            cmd.push(b' ');
            cmd.extend_from_slice(&self.oauth_response(mechanism));
            self.phase = Phase::ExpectLoginResult { untagged: Vec::new() };
        } else {
            self.phase = Phase::ExpectSaslContinuation { mechanism };
        }
        cmd.extend_from_slice(b"\r\n");
        self.send(cmd);
    }

    /// The mechanism's message for the user and token, in base64.
    fn oauth_response(&self, mechanism: OAuthMechanism) -> Vec<u8> {
        let message = mechanism.message(&self.user, self.pass.expose());
        BASE64.encode(message).into_bytes()
    }

    fn is_tagged_ok(&self, line: &[u8]) -> bool {
        line.strip_prefix(self.tag.as_slice())
            .and_then(|rest| rest.strip_prefix(b" "))
            .is_some_and(|rest| rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"OK"))
    }

    fn fail(&mut self, line: &[u8]) {
        self.finish(super::refusal(self.pass_error_message, line));
    }

    /// Queues `bytes`; what follows the forwarded ID joins it in one write.
    fn send(&mut self, bytes: Vec<u8>) {
        if let Some(BackendStep::Send(id)) = self.steps.back_mut().filter(|_| self.id_pending) {
            if id.starts_with(ID_TAG) {
                id.extend_from_slice(&bytes);
                return;
            }
        }
        self.steps.push_back(BackendStep::Send(bytes));
    }

    fn finish(&mut self, outcome: BackendOutcome) {
        self.phase = Phase::Done;
        self.steps.push_back(BackendStep::Done(outcome));
    }
}

/// A quoted string holds any 7-bit character but NUL, CR and LF (RFC 3501
/// `quoted`); an empty value is quoted as `""`.
fn quotable(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (1..=0x7f).contains(&b) && b != b'\r' && b != b'\n')
}

/// `postern-id ID ("name" "value" ...)\r\n` from the client's parameters:
/// the pairs whose field and value are quotable and within RFC 2971's
/// bounds, at most 30 of them; `None` when none is left.
fn id_command(id: &[(Vec<u8>, Option<Vec<u8>>)]) -> Option<Vec<u8>> {
    let mut list = Vec::new();
    let fit = |field: &[u8], value: Option<&[u8]>| {
        quotable(field)
            && !field.is_empty()
            && field.len() <= ID_MAX_FIELD
            && value.is_none_or(|v| quotable(v) && v.len() <= ID_MAX_VALUE)
    };
    for (field, value) in id.iter().filter(|(f, v)| fit(f, v.as_deref())).take(ID_MAX_PAIRS) {
        list.push(if list.is_empty() { b'(' } else { b' ' });
        push_id_pair(&mut list, field, value.as_deref());
    }
    if list.is_empty() {
        return None;
    }
    let mut cmd = ID_TAG.to_vec();
    cmd.extend_from_slice(b" ID ");
    cmd.extend_from_slice(&list);
    cmd.extend_from_slice(b")\r\n");
    Some(cmd)
}

/// A capability in a `[CAPABILITY ...]` response code of the greeting:
/// LITERAL+ (RFC 7888), without which literals must wait for the backend's
/// continuation; SASL-IR (RFC 4959), without which so must a SASL response.
fn greeting_has(line: &[u8], capability: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"* OK [") else {
        return false;
    };
    let code = rest.split(|&b| b == b']').next().unwrap_or_default();
    let mut words = code.split(|&b| b == b' ');
    words.next().is_some_and(|w| w.eq_ignore_ascii_case(b"CAPABILITY"))
        && words.any(|w| w.eq_ignore_ascii_case(capability))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(pass_error_message: bool) -> ImapBackend {
        ImapBackend::new(
            b"a1".to_vec(),
            b"b\"o b".to_vec(),
            Secret::new(b"p\r\nw".to_vec()),
            4096,
            pass_error_message,
        )
    }

    /// Feeds each backend line and collects the steps after it.
    fn run(m: &mut ImapBackend, lines: &[&[u8]]) -> Vec<BackendStep> {
        let mut steps = Vec::new();
        for line in lines {
            assert_eq!(m.feed(line), line.len());
            while let Some(s) = m.poll() {
                steps.push(s);
            }
        }
        steps
    }

    fn send(bytes: &[u8]) -> BackendStep {
        BackendStep::Send(bytes.to_vec())
    }

    fn id_pair(field: &[u8], value: Option<&[u8]>) -> (Vec<u8>, Option<Vec<u8>>) {
        (field.to_vec(), value.map(<[u8]>::to_vec))
    }

    fn with_id(m: ImapBackend, id: &ClientId) -> ImapBackend {
        m.with_client_id(Some(id))
    }

    /// The ID goes in the login's write; its replies never reach the client.
    #[test]
    fn client_id_goes_with_the_login_and_its_replies_are_dropped() {
        let id = vec![
            id_pair(b"name", Some(b"Thunderbird")),
            id_pair(b"os", None),
            id_pair(b"vendor", Some(b"say \"hi\" \\o/")),
        ];
        let mut m = with_id(backend(b"bob", b"pw"), &id);
        let steps = run(
            &mut m,
            &[
                b"* OK [CAPABILITY IMAP4rev1 ID LITERAL+] ready\r\n",
                b"* ID (\"name\" \"Dovecot\")\r\n",
                b"postern-id OK ID completed\r\n",
                b"* CAPABILITY IMAP4rev1\r\n",
                b"a1 OK done\r\n",
            ],
        );
        assert_eq!(
            steps,
            vec![
                send(
                    b"postern-id ID (\"name\" \"Thunderbird\" \"os\" NIL \"vendor\" \"say \\\"hi\\\" \\\\o/\")\r\n\
                      a1 LOGIN \"bob\" \"pw\"\r\n"
                ),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"* CAPABILITY IMAP4rev1\r\na1 OK done\r\n".to_vec()
                }),
            ]
        );
    }

    /// Synchronizing literals: the ID's answers may come before the `+`;
    /// a BAD (a backend that lists ID but refuses ours) changes nothing.
    #[test]
    fn client_id_before_literals_and_refused() {
        let id = vec![id_pair(b"name", Some(b"x"))];
        let mut m = with_id(backend("bö".as_bytes(), b"pw"), &id);
        let steps = run(
            &mut m,
            &[
                b"* OK [CAPABILITY IMAP4rev1 ID] ready\r\n",
                b"postern-id BAD no\r\n",
                b"+ go\r\n",
                b"+ go\r\n",
                b"a1 OK done\r\n",
            ],
        );
        assert_eq!(
            steps,
            vec![
                send(b"postern-id ID (\"name\" \"x\")\r\na1 LOGIN {3}\r\n"),
                send("bö {2}\r\n".as_bytes()),
                send(b"pw\r\n"),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"a1 OK done\r\n".to_vec()
                }),
            ]
        );
    }

    /// Nothing is forwarded to a backend without ID, nor a pair that cannot
    /// be a quoted string (CR, LF, NUL, 8-bit: a literal from the client) or
    /// passes RFC 2971's bounds; a list left empty sends no ID at all.
    #[test]
    fn client_id_only_to_id_backends_and_only_safe_pairs() {
        let id = vec![id_pair(b"name", Some(b"x"))];
        let steps = run(&mut with_id(backend(b"bob", b"pw"), &id), &[b"* OK ready\r\n"]);
        assert_eq!(steps, vec![send(b"a1 LOGIN \"bob\" \"pw\"\r\n")]);

        let long_value = vec![b'v'; ID_MAX_VALUE + 1];
        let id = vec![
            id_pair(b"name", Some(b"x\r\na2 DELETE INBOX")),
            id_pair(b"os", Some(b"a\0b")),
            id_pair(b"vendor", Some("é".as_bytes())),
            id_pair(&[b'f'; ID_MAX_FIELD + 1], Some(b"v")),
            id_pair(b"version", Some(&long_value)),
            id_pair(b"", Some(b"v")),
            id_pair(b"support-url", Some(b"ok")),
        ];
        assert_eq!(
            id_command(&id),
            Some(b"postern-id ID (\"support-url\" \"ok\")\r\n".to_vec())
        );
        assert_eq!(id_command(&id[..6]), None);
        assert_eq!(id_command(&[]), None);
        let many: ClientId = (0..40).map(|i| id_pair(format!("k{i}").as_bytes(), None)).collect();
        let cmd = id_command(&many).unwrap();
        assert_eq!(String::from_utf8(cmd).unwrap().matches(" NIL").count(), ID_MAX_PAIRS);
    }

    #[test]
    fn login_with_literals() {
        let steps = run(
            &mut machine(false),
            &[
                b"* OK ready\r\n",
                b"+ go\r\n",
                b"+ go\r\n",
                b"* CAPABILITY IMAP4rev1\r\n",
                b"a1 OK done\r\n",
            ],
        );
        assert_eq!(
            steps,
            vec![
                send(b"a1 LOGIN {5}\r\n"),
                send(b"b\"o b {4}\r\n"),
                send(b"p\r\nw\r\n"),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"* CAPABILITY IMAP4rev1\r\na1 OK done\r\n".to_vec()
                }),
            ]
        );
    }

    fn backend(user: &[u8], pass: &[u8]) -> ImapBackend {
        ImapBackend::new(b"a1".to_vec(), user.to_vec(), Secret::new(pass.to_vec()), 4096, false)
    }

    #[test]
    fn text_logins_go_quoted_in_one_write() {
        let steps = run(
            &mut backend(b"b\"o\\b", b"p w"),
            &[b"* OK ready\r\n", b"a1 OK done\r\n"],
        );
        assert_eq!(
            steps,
            vec![
                send(b"a1 LOGIN \"b\\\"o\\\\b\" \"p w\"\r\n"),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"a1 OK done\r\n".to_vec()
                }),
            ]
        );
        // An empty password is a valid quoted string.
        let steps = run(&mut backend(b"u", b""), &[b"* OK\r\n"]);
        assert_eq!(steps, vec![send(b"a1 LOGIN \"u\" \"\"\r\n")]);
    }

    #[test]
    fn literal_plus_sends_literals_in_one_write() {
        let steps = run(
            &mut machine(false),
            &[b"* OK [CAPABILITY IMAP4rev1 literal+ IDLE] ready\r\n", b"a1 OK\r\n"],
        );
        assert_eq!(
            steps,
            vec![
                send(b"a1 LOGIN {5+}\r\nb\"o b {4+}\r\np\r\nw\r\n"),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"a1 OK\r\n".to_vec()
                }),
            ]
        );
    }

    #[test]
    fn eight_bit_without_literal_plus_waits_for_continuations() {
        for greeting in [
            &b"* OK ready\r\n"[..],
            b"* OK [CAPABILITY IMAP4rev1 LITERAL-] ready\r\n",
            b"* OK LITERAL+ is only text here\r\n",
        ] {
            let steps = run(&mut backend("jos\u{e9}".as_bytes(), b"pw"), &[greeting]);
            assert_eq!(steps, vec![send(b"a1 LOGIN {5}\r\n")], "{greeting:?}");
        }
    }

    #[test]
    fn refusal_hidden_or_passed() {
        let lines: &[&[u8]] = &[b"* OK\r\n", b"+\r\n", b"+\r\n", b"a1 NO [AUTHENTICATIONFAILED] no\r\n"];
        let last = |pass| run(&mut machine(pass), lines).pop();
        assert_eq!(
            last(false),
            Some(BackendStep::Done(BackendOutcome::Failed { client_reply: None }))
        );
        assert_eq!(
            last(true),
            Some(BackendStep::Done(BackendOutcome::Failed {
                client_reply: Some(b"a1 NO [AUTHENTICATIONFAILED] no\r\n".to_vec())
            }))
        );
    }

    #[test]
    fn bad_greeting_fails() {
        let steps = run(&mut machine(false), &[b"* BYE go away\r\n"]);
        assert_eq!(
            steps,
            vec![BackendStep::Done(BackendOutcome::Failed { client_reply: None })]
        );
    }

    #[test]
    fn other_tag_is_not_ours() {
        let steps = run(&mut machine(false), &[b"* OK\r\n", b"+\r\n", b"+\r\n", b"a10 OK\r\n"]);
        assert_eq!(
            steps.last(),
            Some(&BackendStep::Done(BackendOutcome::Failed { client_reply: None }))
        );
    }

    #[test]
    fn stops_consuming_after_login() {
        let mut m = machine(false);
        let _ = run(&mut m, &[b"* OK\r\n", b"+\r\n", b"+\r\n"]);
        assert_eq!(m.feed(b"a1 OK\r\n* 3 EXISTS\r\n"), 7);
    }

    #[test]
    fn endless_line_fails() {
        let mut m = ImapBackend::new(b"a".to_vec(), b"u".to_vec(), Secret::new(b"p".to_vec()), 16, true);
        m.feed(&[b'x'; 16]);
        assert_eq!(
            m.poll(),
            Some(BackendStep::Done(BackendOutcome::Failed { client_reply: None }))
        );
    }

    #[test]
    fn split_anywhere_same_steps() {
        let script: &[u8] = b"* OK\r\n+\r\n+\r\n* X\r\na1 OK\r\n";
        let whole = {
            let mut m = machine(false);
            let mut fed = 0;
            let mut steps = Vec::new();
            // Feed one byte more each time, as a driver whose reads return one byte.
            for end in 1..=script.len() {
                fed += m.feed(&script[fed..end]);
                while let Some(s) = m.poll() {
                    steps.push(s);
                }
            }
            steps
        };
        for cut in 0..script.len() {
            let mut m = machine(false);
            let mut steps = Vec::new();
            let used = m.feed(&script[..cut]);
            while let Some(s) = m.poll() {
                steps.push(s);
            }
            m.feed(&script[used..]);
            while let Some(s) = m.poll() {
                steps.push(s);
            }
            assert_eq!(steps, whole, "cut at {cut}");
        }
    }

    fn oauth(mechanism: OAuthMechanism) -> ImapBackend {
        backend(b"bob", b"TOKEN").with_oauth(Some(mechanism))
    }

    #[test]
    fn oauth_with_sasl_ir() {
        let steps = run(
            &mut oauth(OAuthMechanism::XOAuth2),
            &[
                b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n",
                b"a1 OK in\r\n",
            ],
        );
        let message = BASE64.encode(b"user=bob\x01auth=Bearer TOKEN\x01\x01");
        assert_eq!(
            steps,
            vec![
                send(format!("a1 AUTHENTICATE XOAUTH2 {message}\r\n").as_bytes()),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"a1 OK in\r\n".to_vec()
                }),
            ]
        );
    }

    #[test]
    fn oauth_without_sasl_ir_waits_for_the_continuation() {
        let steps = run(
            &mut oauth(OAuthMechanism::OAuthBearer),
            &[b"* OK ready\r\n", b"+ \r\n", b"a1 OK in\r\n"],
        );
        let message = BASE64.encode(b"n,a=bob,\x01auth=Bearer TOKEN\x01\x01");
        assert_eq!(
            steps,
            vec![
                send(b"a1 AUTHENTICATE OAUTHBEARER\r\n"),
                send(format!("{message}\r\n").as_bytes()),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"a1 OK in\r\n".to_vec()
                }),
            ]
        );
    }

    /// RFC 7628 3.2.3: the error challenge gets the dummy response, then
    /// the NO is the outcome.
    #[test]
    fn oauth_refusal_answers_the_challenge() {
        for (mechanism, dummy) in [
            (OAuthMechanism::OAuthBearer, &b"AQ==\r\n"[..]),
            (OAuthMechanism::XOAuth2, b"\r\n"),
        ] {
            let mut m = oauth(mechanism);
            m.pass_error_message = true;
            let steps = run(
                &mut m,
                &[
                    b"* OK [CAPABILITY SASL-IR] hi\r\n",
                    b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
                    b"a1 NO bad token\r\n",
                ],
            );
            assert_eq!(steps[1], send(dummy), "{mechanism:?}");
            assert_eq!(
                steps[2],
                BackendStep::Done(BackendOutcome::Failed {
                    client_reply: Some(b"a1 NO bad token\r\n".to_vec())
                })
            );
        }
        // A continuation to a LOGIN is no challenge.
        let steps = run(&mut backend(b"u", b"p"), &[b"* OK\r\n", b"+ what\r\n"]);
        assert_eq!(
            steps.last(),
            Some(&BackendStep::Done(BackendOutcome::Failed { client_reply: None }))
        );
    }

    /// The split property for generated backend replies and cut points,
    /// and the bound on what the login leaves to the driver until it is done.
    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::protocol::{strategy, Split};

        const WORDS: &[&[u8]] = &[
            b"* OK ready\r\n",
            b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n",
            b"+ go\r\n",
            b"+\r\n",
            b"* CAPABILITY IMAP4rev1\r\n",
            b"a1 OK done\r\n",
            b"a1 NO bad\r\n",
            b"a1 BAD\r\n",
            b"* BYE\r\n",
            b"\r\n",
            b"\n",
            b"x",
        ];

        /// Short enough that generated replies reach it.
        const LIMIT: usize = 48;

        fn render(m: &mut ImapBackend) -> Vec<String> {
            std::iter::from_fn(|| m.poll())
                .map(|step| format!("{step:?}"))
                .collect()
        }

        fn check(script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
            let split = Split {
                start: &|| {
                    ImapBackend::new(
                        b"a1".to_vec(),
                        b"b\"o b".to_vec(),
                        Secret::new(b"p\r\nw".to_vec()),
                        LIMIT,
                        true,
                    )
                },
                feed: ImapBackend::feed,
                render: &render,
                reading: |m| m.phase != Phase::Done,
                limit: LIMIT,
            };
            prop_assert_eq!(split.steps(script, cuts), split.steps(script, &[]));
            Ok(())
        }

        proptest! {
            #![proptest_config(strategy::config())]

            #[test]
            fn replies_split_anywhere((script, cuts) in strategy::cut(strategy::script(WORDS, 12))) {
                check(&script, &cuts)?;
            }

            #[test]
            fn bytes_split_anywhere((script, cuts) in strategy::cut(proptest::collection::vec(any::<u8>(), 0..300))) {
                check(&script, &cuts)?;
            }
        }
    }
}
