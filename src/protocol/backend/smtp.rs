//! Logs in to an SMTP backend on the client's behalf, as nginx does: EHLO
//! with our name, XCLIENT to hand over the client's address and login (or a
//! HELO/EHLO mirroring the client's), AUTH PLAIN with `proxy_smtp_auth`, and
//! with `smtp_auth none` the client's MAIL and RCPT replayed. With
//! `proxy_smtp_auth` and the auth server's `Auth-Method: oauthbearer|xoauth2`,
//! AUTH goes with that mechanism and the token instead of PLAIN.

use std::collections::VecDeque;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::BackendStep;
use crate::auth::{OAuthMechanism, Secret};
use crate::protocol::BackendOutcome;

/// How the client greeted us: the backend is greeted the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo {
    pub extended: bool,
    pub name: Vec<u8>,
}

/// Everything one backend login needs.
#[derive(Debug)]
pub struct SmtpLogin {
    pub server_name: String,
    /// `ADDR=` of XCLIENT: the client's IP (`IPV6:` prefixed for IPv6), or
    /// `[UNAVAILABLE]` for a unix-socket client.
    pub client_addr: String,
    /// `NAME=`: the client's host name, `[UNAVAILABLE]` without a resolver.
    pub client_name: String,
    pub helo: Option<Helo>,
    pub user: Vec<u8>,
    pub pass: Secret,
    /// With `proxy_smtp_auth`: AUTH with this mechanism, `pass` being the
    /// token, instead of AUTH PLAIN.
    pub oauth: Option<OAuthMechanism>,
    pub xclient: bool,
    pub proxy_smtp_auth: bool,
    /// With `smtp_auth none`: the client's MAIL FROM and RCPT TO lines.
    pub envelope: Option<(Vec<u8>, Vec<u8>)>,
    pub line_limit: usize,
    pub pass_error_message: bool,
}

/// `SmtpBackend` drives one login; the same surface as `ImapBackend`.
#[derive(Debug)]
pub struct SmtpBackend {
    login: SmtpLogin,
    phase: Phase,
    steps: VecDeque<BackendStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    ExpectGreeting,
    /// The reply to our EHLO (XCLIENT on) or mirrored HELO/EHLO (off).
    ExpectHelo,
    ExpectXclient,
    /// The reply to the client's HELO/EHLO replayed after XCLIENT.
    ExpectReplayedHelo,
    ExpectAuth,
    /// `AUTH MECH` without an initial response: the message goes after `334`.
    ExpectAuthContinuation,
    /// The dummy response to an OAuth error challenge is sent: the failure
    /// reply follows.
    ExpectAuthFailure,
    ExpectMail,
    ExpectRcpt,
    Done,
}

/// RFC 4954 4: the longest AUTH command line a server must accept.
const MAX_AUTH_LINE: usize = 12288;

/// An SMTP reply line's code and whether it is the last line of the reply.
fn reply_code(line: &[u8]) -> Option<(u16, bool)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = std::str::from_utf8(digits).ok()?.parse().ok()?;
    match line.get(3) {
        None | Some(b' ') => Some((code, true)),
        Some(b'-') => Some((code, false)),
        _ => None,
    }
}

/// RFC 3461 xtext: `+XX` for `+`, `=` and anything outside `!`..`~`.
pub fn xtext(input: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'+', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
    out
}

impl SmtpBackend {
    pub fn new(login: SmtpLogin) -> Self {
        SmtpBackend {
            login,
            phase: Phase::ExpectGreeting,
            steps: VecDeque::new(),
        }
    }

    #[must_use]
    pub fn poll(&mut self) -> Option<BackendStep> {
        self.steps.pop_front()
    }

    pub fn feed(&mut self, input: &[u8]) -> usize {
        let limit = self.login.line_limit;
        // An endless line cannot be forwarded whole; it is never a valid
        // login step either.
        let too_long = |m: &mut Self| m.finish(BackendOutcome::Failed { client_reply: None });
        crate::protocol::line::feed_lines(self, input, limit, |m| m.phase != Phase::Done, Self::on_line, too_long)
    }

    fn on_line(&mut self, line: &[u8]) {
        let Some((code, last)) = reply_code(line) else {
            return self.fail(line);
        };
        if !last {
            // Continuation lines of a multi-line reply (EHLO's list).
            return;
        }
        match (self.phase, code) {
            (Phase::ExpectGreeting, 220) => {
                let verb = match &self.login.helo {
                    Some(helo) if !self.login.xclient && !helo.extended => "HELO",
                    _ => "EHLO",
                };
                let command = format!("{verb} {}\r\n", self.login.server_name).into_bytes();
                self.send(command);
                self.phase = Phase::ExpectHelo;
            }
            (Phase::ExpectHelo, 250) if self.login.xclient => {
                let mut command = b"XCLIENT ADDR=".to_vec();
                command.extend_from_slice(self.login.client_addr.as_bytes());
                if !self.login.user.is_empty() && !self.login.proxy_smtp_auth {
                    command.extend_from_slice(b" LOGIN=");
                    command.extend_from_slice(&xtext(&self.login.user));
                }
                command.extend_from_slice(b" NAME=");
                command.extend_from_slice(self.login.client_name.as_bytes());
                command.extend_from_slice(b"\r\n");
                self.send(command);
                self.phase = Phase::ExpectXclient;
            }
            (Phase::ExpectHelo | Phase::ExpectReplayedHelo, 250) => self.after_helo(),
            (Phase::ExpectXclient, 220 | 250) => match self.login.helo.clone() {
                // XCLIENT resets the backend's session: greet it again as the
                // client did, so its logs show the client's own name.
                Some(helo) => {
                    let mut command = if helo.extended {
                        b"EHLO ".to_vec()
                    } else {
                        b"HELO ".to_vec()
                    };
                    command.extend_from_slice(&helo.name);
                    command.extend_from_slice(b"\r\n");
                    self.send(command);
                    self.phase = Phase::ExpectReplayedHelo;
                }
                None => self.after_helo(),
            },
            (Phase::ExpectAuth, 235) => self.after_auth(),
            (Phase::ExpectAuthContinuation, 334) => {
                let mut response = self.oauth_response();
                response.extend_from_slice(b"\r\n");
                self.send(response);
                self.phase = Phase::ExpectAuth;
            }
            // RFC 7628 3.2.3: the error challenge wants a dummy answer before
            // the server's 535.
            (Phase::ExpectAuth, 334) if self.login.oauth.is_some() => {
                let dummy = self.login.oauth.map_or(&b""[..], OAuthMechanism::dummy_response);
                let mut line = dummy.to_vec();
                line.extend_from_slice(b"\r\n");
                self.send(line);
                self.phase = Phase::ExpectAuthFailure;
            }
            (Phase::ExpectMail, 250) => {
                let rcpt = self
                    .login
                    .envelope
                    .as_ref()
                    .map(|(_, rcpt)| rcpt.clone())
                    .unwrap_or_default();
                self.send_line(&rcpt);
                self.phase = Phase::ExpectRcpt;
            }
            (Phase::ExpectRcpt, _) => {
                // Whatever the backend thinks of the recipient is the client's
                // answer, as nginx forwards it.
                let mut reply = line.to_vec();
                reply.extend_from_slice(b"\r\n");
                self.finish(BackendOutcome::LoggedIn { client_reply: reply });
            }
            _ => self.fail(line),
        }
    }

    fn after_helo(&mut self) {
        if let (true, Some(mechanism)) = (self.login.proxy_smtp_auth, self.login.oauth) {
            let mut command = b"AUTH ".to_vec();
            command.extend_from_slice(mechanism.sasl_name().as_bytes());
            let response = self.oauth_response();
            // RFC 4954 4: servers take AUTH lines of 12288 octets; a longer
            // token goes after the 334 instead.
            if command.len() + 1 + response.len() + 2 <= MAX_AUTH_LINE {
                command.push(b' ');
                command.extend_from_slice(&response);
                self.phase = Phase::ExpectAuth;
            } else {
                self.phase = Phase::ExpectAuthContinuation;
            }
            command.extend_from_slice(b"\r\n");
            self.send(command);
        } else if self.login.proxy_smtp_auth {
            let mut plain = vec![0u8];
            plain.extend_from_slice(&self.login.user);
            plain.push(0);
            plain.extend_from_slice(self.login.pass.expose());
            let mut command = b"AUTH PLAIN ".to_vec();
            command.extend_from_slice(BASE64.encode(plain).as_bytes());
            command.extend_from_slice(b"\r\n");
            self.send(command);
            self.phase = Phase::ExpectAuth;
        } else {
            self.after_auth();
        }
    }

    /// The OAuth message for the user and token, in base64 (empty without
    /// a mechanism, which `after_helo` never lets happen).
    fn oauth_response(&self) -> Vec<u8> {
        match self.login.oauth {
            Some(mechanism) => {
                let message = mechanism.message(&self.login.user, self.login.pass.expose());
                BASE64.encode(message).into_bytes()
            }
            None => Vec::new(),
        }
    }

    fn after_auth(&mut self) {
        match self.login.envelope.as_ref().map(|(mail, _)| mail.clone()) {
            Some(mail) => {
                self.send_line(&mail);
                self.phase = Phase::ExpectMail;
            }
            None => self.finish(BackendOutcome::LoggedIn {
                client_reply: b"235 2.0.0 OK\r\n".to_vec(),
            }),
        }
    }

    fn fail(&mut self, line: &[u8]) {
        self.finish(super::refusal(self.login.pass_error_message, line));
    }

    fn send_line(&mut self, line: &[u8]) {
        let mut command = line.to_vec();
        command.extend_from_slice(b"\r\n");
        self.send(command);
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.steps.push_back(BackendStep::Send(bytes));
    }

    fn finish(&mut self, outcome: BackendOutcome) {
        self.phase = Phase::Done;
        self.steps.push_back(BackendStep::Done(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> SmtpLogin {
        SmtpLogin {
            server_name: "mx.postern.test".into(),
            client_addr: "192.0.2.1".into(),
            client_name: "[UNAVAILABLE]".into(),
            helo: Some(Helo {
                extended: true,
                name: b"client.example".to_vec(),
            }),
            user: b"b+o=b\xc3\xa9".to_vec(),
            pass: Secret::new(b"pw".to_vec()),
            oauth: None,
            xclient: true,
            proxy_smtp_auth: false,
            envelope: None,
            line_limit: 4096,
            pass_error_message: false,
        }
    }

    /// Feeds the backend's lines; the commands sent and the outcome, as text.
    fn run(login: SmtpLogin, lines: &[&str]) -> Vec<String> {
        let mut m = SmtpBackend::new(login);
        let mut out = Vec::new();
        for line in lines {
            assert_eq!(m.feed(line.as_bytes()), line.len());
            while let Some(step) = m.poll() {
                out.push(match step {
                    BackendStep::Send(b) => String::from_utf8_lossy(&b).into_owned(),
                    BackendStep::Done(o) => format!("{o:?}"),
                });
            }
        }
        out
    }

    fn logged_in(reply: &str) -> String {
        format!(
            "{:?}",
            BackendOutcome::LoggedIn {
                client_reply: reply.as_bytes().to_vec()
            }
        )
    }

    #[test]
    fn oauth_with_proxy_smtp_auth() {
        let oauth = || SmtpLogin {
            xclient: false,
            proxy_smtp_auth: true,
            user: b"bob".to_vec(),
            pass: Secret::new(b"TOKEN".to_vec()),
            oauth: Some(OAuthMechanism::OAuthBearer),
            pass_error_message: true,
            ..login()
        };
        let message = BASE64.encode(b"n,a=bob,\x01auth=Bearer TOKEN\x01\x01");
        let out = run(oauth(), &["220 mx\r\n", "250 mx\r\n", "235 2.7.0 ok\r\n"]);
        assert_eq!(
            out,
            vec![
                "EHLO mx.postern.test\r\n".to_string(),
                format!("AUTH OAUTHBEARER {message}\r\n"),
                logged_in("235 2.0.0 OK\r\n"),
            ]
        );
        // RFC 7628 3.2.3: the challenge gets `AQ==`, the 535 is the outcome.
        let out = run(
            oauth(),
            &["220 mx\r\n", "250 mx\r\n", "334 eyJ9\r\n", "535 5.7.8 no\r\n"],
        );
        assert_eq!(out[2], "AQ==\r\n");
        assert_eq!(
            out[3],
            format!(
                "{:?}",
                BackendOutcome::Failed {
                    client_reply: Some(b"535 5.7.8 no\r\n".to_vec())
                }
            )
        );
        // A token too long for one AUTH line goes after the 334.
        let long = SmtpLogin {
            pass: Secret::new(vec![b'T'; MAX_AUTH_LINE]),
            ..oauth()
        };
        let out = run(long, &["220 mx\r\n", "250 mx\r\n", "334 \r\n"]);
        assert_eq!(out[1], "AUTH OAUTHBEARER\r\n");
        assert!(out[2].len() > MAX_AUTH_LINE, "{}", out[2].len());
    }

    #[test]
    fn xclient_flow() {
        let out = run(
            login(),
            &[
                "220 mx ESMTP\r\n",
                "250-mx\r\n250-XCLIENT ADDR LOGIN NAME\r\n250 8BITMIME\r\n",
                "220 mx\r\n",
                "250 ok\r\n",
            ],
        );
        assert_eq!(
            out,
            vec![
                "EHLO mx.postern.test\r\n".to_string(),
                "XCLIENT ADDR=192.0.2.1 LOGIN=b+2Bo+3Db+C3+A9 NAME=[UNAVAILABLE]\r\n".to_string(),
                "EHLO client.example\r\n".to_string(),
                logged_in("235 2.0.0 OK\r\n"),
            ]
        );
    }

    #[test]
    fn helo_mirrored_without_xclient_then_auth_plain() {
        let mut l = login();
        l.xclient = false;
        l.proxy_smtp_auth = true;
        l.helo = Some(Helo {
            extended: false,
            name: b"c".to_vec(),
        });
        let out = run(l, &["220 mx\r\n", "250 mx\r\n", "235 ok\r\n"]);
        assert_eq!(
            out,
            vec![
                "HELO mx.postern.test\r\n".to_string(),
                format!("AUTH PLAIN {}\r\n", BASE64.encode(b"\0b+o=b\xc3\xa9\0pw")),
                logged_in("235 2.0.0 OK\r\n"),
            ]
        );
    }

    #[test]
    fn smtp_auth_none_replays_the_envelope() {
        let mut l = login();
        l.user = Vec::new();
        l.envelope = Some((b"MAIL FROM:<a@b>".to_vec(), b"RCPT TO:<c@d>".to_vec()));
        let out = run(
            l,
            &[
                "220 mx\r\n",
                "250 mx\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "250 2.1.0 sender ok\r\n",
                "250 2.1.5 rcpt ok\r\n",
            ],
        );
        assert_eq!(
            out,
            vec![
                "EHLO mx.postern.test\r\n".to_string(),
                "XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]\r\n".to_string(),
                "EHLO client.example\r\n".to_string(),
                "MAIL FROM:<a@b>\r\n".to_string(),
                "RCPT TO:<c@d>\r\n".to_string(),
                logged_in("250 2.1.5 rcpt ok\r\n"),
            ]
        );
    }

    #[test]
    fn refusals() {
        let failed = |reply: Option<&str>| {
            format!(
                "{:?}",
                BackendOutcome::Failed {
                    client_reply: reply.map(|r| r.as_bytes().to_vec())
                }
            )
        };
        assert_eq!(run(login(), &["554 go away\r\n"]), vec![failed(None)]);
        let mut l = login();
        l.pass_error_message = true;
        assert_eq!(
            run(l, &["220 mx\r\n", "550 no\r\n"]).last(),
            Some(&failed(Some("550 no\r\n")))
        );
        assert_eq!(run(login(), &["garbage\r\n"]), vec![failed(None)]);
    }

    #[test]
    fn xtext_rows() {
        assert_eq!(xtext(b"plain"), b"plain");
        assert_eq!(xtext(b"a+b=c d"), b"a+2Bb+3Dc+20d");
        assert_eq!(xtext("é\r\n".as_bytes()), b"+C3+A9+0D+0A");
    }

    /// The split property for generated backend replies and cut points,
    /// and the bound on what the login leaves to the driver until it is done.
    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::protocol::{strategy, Split};

        const WORDS: &[&[u8]] = &[
            b"220 mx ESMTP\r\n",
            b"250-mx\r\n",
            b"250-XCLIENT ADDR LOGIN NAME\r\n",
            b"250 8BITMIME\r\n",
            b"250 ok\r\n",
            b"220 mx\r\n",
            b"235 2.7.0 ok\r\n",
            b"550 5.7.1 no\r\n",
            b"421 bye\r\n",
            b"\r\n",
            b"\n",
            b"x",
        ];

        /// Short enough that generated replies reach it.
        const LIMIT: usize = 48;

        fn render(m: &mut SmtpBackend) -> Vec<String> {
            std::iter::from_fn(|| m.poll())
                .map(|step| format!("{step:?}"))
                .collect()
        }

        fn check(script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
            let split = Split {
                start: &|| {
                    SmtpBackend::new(SmtpLogin {
                        line_limit: LIMIT,
                        proxy_smtp_auth: true,
                        envelope: Some((b"MAIL FROM:<a@b>".to_vec(), b"RCPT TO:<c@d>".to_vec())),
                        ..login()
                    })
                },
                feed: SmtpBackend::feed,
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
