//! Logs in to a POP3 backend on the client's behalf, as nginx's
//! `ngx_mail_proxy_pop3_handler` does: USER, then PASS, each after a `+OK`.
//! When the auth server asks for it (`Auth-Method: oauthbearer|xoauth2`),
//! the password is a bearer token and goes with AUTH (RFC 5034) instead.

use std::collections::VecDeque;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::BackendStep;
use crate::auth::{OAuthMechanism, Secret};

/// RFC 5034 4: an AUTH command with its initial response may not exceed
/// 255 octets; a longer one sends the response after the `+`.
const MAX_AUTH_LINE: usize = 255;
use crate::protocol::BackendOutcome;

/// `Pop3Backend` drives one login.
///
/// Input: `feed(bytes)` with what the backend sent; it returns how many bytes
/// it consumed (it stops at the end of the login, the rest belongs to the
/// relay). Output: `poll()` until `None` after creation and after each
/// `feed`. The last step is always `Done`.
#[derive(Debug)]
pub struct Pop3Backend {
    user: Vec<u8>,
    pass: Secret,
    /// Longest backend line (`proxy_buffer`).
    line_limit: usize,
    pass_error_message: bool,
    /// Log in with AUTH and this mechanism, `pass` being the token.
    oauth: Option<OAuthMechanism>,
    phase: Phase,
    steps: VecDeque<BackendStep>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    ExpectGreeting,
    ExpectUserOk,
    ExpectPassOk,
    /// `AUTH MECH` without an initial response: the message goes after `+`.
    ExpectSaslContinuation {
        mechanism: OAuthMechanism,
    },
    /// The message is sent: `+OK`, or an error challenge.
    ExpectAuthOk {
        mechanism: OAuthMechanism,
    },
    /// The dummy response to an error challenge is sent: `-ERR` follows.
    ExpectSaslFailure,
    Done,
}

impl Pop3Backend {
    pub fn new(user: Vec<u8>, pass: Secret, line_limit: usize, pass_error_message: bool) -> Self {
        let mut login = Pop3Backend {
            user,
            pass,
            line_limit,
            pass_error_message,
            oauth: None,
            phase: Phase::ExpectGreeting,
            steps: VecDeque::new(),
        };
        // POP3 has no literals nor quoting: USER and PASS take the rest of
        // the line. A CR or LF in either (SASL responses and the auth
        // server's Auth-User / Auth-Pass can carry any byte) would end the
        // command early and let the rest be read as a command of its own;
        // a NUL is cut or refused by many servers. No such credential can
        // be sent safely, so the login fails before a byte is written.
        let unsafe_byte = |b: &u8| matches!(b, b'\r' | b'\n' | b'\0');
        if login.user.iter().any(unsafe_byte) || login.pass.expose().iter().any(unsafe_byte) {
            login.finish(BackendOutcome::Failed { client_reply: None });
        }
        login
    }

    /// Log in with AUTH and this mechanism (the auth server's
    /// `Auth-Method`) rather than USER/PASS; `None` keeps USER/PASS.
    pub fn with_oauth(mut self, mechanism: Option<OAuthMechanism>) -> Self {
        self.oauth = mechanism;
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
        let challenge = line == b"+" || line.starts_with(b"+ ");
        match (&self.phase, self.oauth) {
            (Phase::ExpectGreeting, Some(mechanism)) if line.starts_with(b"+OK") => {
                return self.authenticate(mechanism)
            }
            (&Phase::ExpectSaslContinuation { mechanism }, _) if challenge => {
                let mut response = oauth_response(mechanism, &self.user, &self.pass);
                response.extend_from_slice(b"\r\n");
                self.send(response);
                self.phase = Phase::ExpectAuthOk { mechanism };
                return;
            }
            // RFC 7628 3.2.3: the error challenge wants a dummy answer
            // before the server's -ERR.
            (&Phase::ExpectAuthOk { mechanism }, _) if challenge => {
                let mut dummy = mechanism.dummy_response().to_vec();
                dummy.extend_from_slice(b"\r\n");
                self.send(dummy);
                self.phase = Phase::ExpectSaslFailure;
                return;
            }
            (Phase::ExpectSaslFailure, _) => return self.fail(line),
            _ => {}
        }
        // nginx checks the three bytes `+OK`, case and all.
        if !line.starts_with(b"+OK") {
            return self.fail(line);
        }
        match self.phase {
            Phase::ExpectGreeting => {
                let mut cmd = b"USER ".to_vec();
                cmd.extend_from_slice(&self.user);
                cmd.extend_from_slice(b"\r\n");
                self.send(cmd);
                self.phase = Phase::ExpectUserOk;
            }
            Phase::ExpectUserOk => {
                let mut cmd = b"PASS ".to_vec();
                cmd.extend_from_slice(self.pass.expose());
                cmd.extend_from_slice(b"\r\n");
                self.send(cmd);
                self.phase = Phase::ExpectPassOk;
            }
            Phase::ExpectPassOk | Phase::ExpectAuthOk { .. } => {
                let mut reply = line.to_vec();
                reply.extend_from_slice(b"\r\n");
                self.finish(BackendOutcome::LoggedIn { client_reply: reply });
            }
            Phase::ExpectSaslContinuation { .. } | Phase::ExpectSaslFailure => self.fail(line),
            Phase::Done => {}
        }
    }

    /// `AUTH MECH [initial response]`.
    fn authenticate(&mut self, mechanism: OAuthMechanism) {
        let mut cmd = b"AUTH ".to_vec();
        cmd.extend_from_slice(mechanism.sasl_name().as_bytes());
        let response = oauth_response(mechanism, &self.user, &self.pass);
        if cmd.len() + 1 + response.len() + 2 <= MAX_AUTH_LINE {
            cmd.push(b' ');
            cmd.extend_from_slice(&response);
            self.phase = Phase::ExpectAuthOk { mechanism };
        } else {
            self.phase = Phase::ExpectSaslContinuation { mechanism };
        }
        cmd.extend_from_slice(b"\r\n");
        self.send(cmd);
    }

    fn fail(&mut self, line: &[u8]) {
        self.finish(super::refusal(self.pass_error_message, line));
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.steps.push_back(BackendStep::Send(bytes));
    }

    fn finish(&mut self, outcome: BackendOutcome) {
        self.phase = Phase::Done;
        self.steps.push_back(BackendStep::Done(outcome));
    }
}

/// The mechanism's message for the user and token, in base64.
fn oauth_response(mechanism: OAuthMechanism, user: &[u8], token: &Secret) -> Vec<u8> {
    BASE64.encode(mechanism.message(user, token.expose())).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(pass_error_message: bool) -> Pop3Backend {
        Pop3Backend::new(
            b"bob smith".to_vec(),
            Secret::new(b"p w".to_vec()),
            4096,
            pass_error_message,
        )
    }

    /// Feeds each backend line and collects the steps after it.
    fn run(m: &mut Pop3Backend, lines: &[&[u8]]) -> Vec<BackendStep> {
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

    fn failed(reply: Option<&[u8]>) -> BackendStep {
        BackendStep::Done(BackendOutcome::Failed {
            client_reply: reply.map(<[u8]>::to_vec),
        })
    }

    #[test]
    fn login() {
        let steps = run(
            &mut machine(false),
            &[b"+OK POP3 ready <1.2@x>\r\n", b"+OK\r\n", b"+OK 2 messages\r\n"],
        );
        assert_eq!(
            steps,
            vec![
                send(b"USER bob smith\r\n"),
                send(b"PASS p w\r\n"),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"+OK 2 messages\r\n".to_vec()
                }),
            ]
        );
    }

    #[test]
    fn bare_lf_lines_are_lines() {
        let steps = run(&mut machine(false), &[b"+OK\n", b"+OK\n", b"+OK in\n"]);
        assert_eq!(
            steps.last(),
            Some(&BackendStep::Done(BackendOutcome::LoggedIn {
                client_reply: b"+OK in\r\n".to_vec()
            }))
        );
    }

    #[test]
    fn failures_hidden_or_passed() {
        let rows: &[&[&[u8]]] = &[
            &[b"-ERR busy\r\n"],
            &[b"+ok lower case\r\n"],
            &[b"+OK\r\n", b"-ERR no such user\r\n"],
            &[b"+OK\r\n", b"+OK\r\n", b"-ERR [AUTH] bad password\r\n"],
        ];
        for lines in rows {
            let last = lines.last().unwrap();
            let steps = run(&mut machine(false), lines);
            assert_eq!(steps.last(), Some(&failed(None)), "{lines:?}");
            let steps = run(&mut machine(true), lines);
            assert_eq!(steps.last(), Some(&failed(Some(last))), "{lines:?}");
        }
    }

    #[test]
    fn line_breaks_in_credentials_fail_before_sending() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"bob\r\nDELE 1", b"pw"),
            (b"bob\n", b"pw"),
            (b"bob", b"pw\rQUIT"),
            (b"bob", b"p\0w"),
        ];
        for (user, pass) in rows {
            let mut m = Pop3Backend::new(user.to_vec(), Secret::new(pass.to_vec()), 4096, true);
            assert_eq!(m.poll(), Some(failed(None)), "{user:?} {pass:?}");
            assert_eq!(m.poll(), None);
            assert_eq!(m.feed(b"+OK\r\n"), 0, "nothing is read, nothing sent");
            assert_eq!(m.poll(), None);
        }
    }

    #[test]
    fn stops_consuming_after_login() {
        let mut m = machine(false);
        let _ = run(&mut m, &[b"+OK\r\n", b"+OK\r\n"]);
        assert_eq!(m.feed(b"+OK\r\n+OK 1 200\r\n"), 5);
    }

    #[test]
    fn endless_line_fails() {
        let mut m = Pop3Backend::new(b"u".to_vec(), Secret::new(b"p".to_vec()), 16, true);
        m.feed(&[b'x'; 16]);
        assert_eq!(m.poll(), Some(failed(None)));
    }

    #[test]
    fn split_anywhere_same_steps() {
        let script: &[u8] = b"+OK hi\r\n+OK\r\n+OK welcome\r\n";
        let collect = |cuts: &[usize]| {
            let mut m = machine(false);
            let mut buffered: Vec<u8> = Vec::new();
            let mut steps = Vec::new();
            let mut last = 0;
            for &cut in cuts.iter().chain(std::iter::once(&script.len())) {
                buffered.extend_from_slice(&script[last..cut]);
                last = cut;
                let used = m.feed(&buffered);
                buffered.drain(..used);
                while let Some(s) = m.poll() {
                    steps.push(s);
                }
            }
            steps
        };
        let whole = collect(&[]);
        assert_eq!(whole.len(), 3);
        for cut in 0..=script.len() {
            assert_eq!(collect(&[cut]), whole, "cut at {cut}");
        }
        let every_byte: Vec<usize> = (1..script.len()).collect();
        assert_eq!(collect(&every_byte), whole);
    }

    fn oauth(token: &[u8]) -> Pop3Backend {
        Pop3Backend::new(b"bob".to_vec(), Secret::new(token.to_vec()), 4096, true)
            .with_oauth(Some(OAuthMechanism::XOAuth2))
    }

    #[test]
    fn oauth_login() {
        let steps = run(&mut oauth(b"TOKEN"), &[b"+OK hi\r\n", b"+OK in\r\n"]);
        let message = BASE64.encode(b"user=bob\x01auth=Bearer TOKEN\x01\x01");
        assert_eq!(
            steps,
            vec![
                send(format!("AUTH XOAUTH2 {message}\r\n").as_bytes()),
                BackendStep::Done(BackendOutcome::LoggedIn {
                    client_reply: b"+OK in\r\n".to_vec()
                }),
            ]
        );
    }

    /// RFC 5034 4: past 255 octets the response waits for the `+`.
    #[test]
    fn oauth_long_token_after_the_continuation() {
        let token = vec![b'T'; 300];
        let steps = run(&mut oauth(&token), &[b"+OK hi\r\n", b"+ \r\n", b"+OK in\r\n"]);
        let mut message = b"user=bob\x01auth=Bearer ".to_vec();
        message.extend_from_slice(&token);
        message.extend_from_slice(b"\x01\x01");
        assert_eq!(steps[0], send(b"AUTH XOAUTH2\r\n"));
        assert_eq!(steps[1], send(format!("{}\r\n", BASE64.encode(message)).as_bytes()));
        assert!(matches!(steps[2], BackendStep::Done(BackendOutcome::LoggedIn { .. })));
    }

    #[test]
    fn oauth_refusal_answers_the_challenge() {
        let steps = run(
            &mut oauth(b"TOKEN"),
            &[b"+OK hi\r\n", b"+ eyJ9\r\n", b"-ERR [AUTH] no\r\n"],
        );
        assert_eq!(steps[1], send(b"\r\n"));
        assert_eq!(steps[2], failed(Some(b"-ERR [AUTH] no\r\n")));
    }

    /// The split property for generated backend replies and cut points,
    /// and the bound on what the login leaves to the driver until it is done.
    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::protocol::{strategy, Split};

        const WORDS: &[&[u8]] = &[
            b"+OK POP3 ready\r\n",
            b"+OK\r\n",
            b"-ERR no\r\n",
            b"+OK logged in\r\n",
            b"\r\n",
            b"\n",
            b"x",
            b" ",
        ];

        /// Short enough that generated replies reach it.
        const LIMIT: usize = 48;

        fn render(m: &mut Pop3Backend) -> Vec<String> {
            std::iter::from_fn(|| m.poll())
                .map(|step| format!("{step:?}"))
                .collect()
        }

        fn check(script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
            let split = Split {
                start: &|| Pop3Backend::new(b"bob".to_vec(), Secret::new(b"pw".to_vec()), LIMIT, true),
                feed: Pop3Backend::feed,
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
