use std::time::Duration;

use super::*;
use crate::protocol::backend::BackendStep;

fn settings() -> SmtpFrontSettings {
    SmtpFrontSettings {
        server_name: "mx.postern.test".into(),
        ehlo_lines: vec![b"SIZE 10485760".to_vec(), b"AUTH PLAIN LOGIN".to_vec()],
        plaintext_ehlo_lines: vec![b"SIZE 10485760".to_vec(), b"AUTH PLAIN LOGIN".to_vec()],
        starttls: config::Starttls::Off,
        client_buffer: 128,
        max_errors: 3,
        greeting_delay: Duration::ZERO,
        cram_md5: true,
        external: false,
        none: false,
        xclient: true,
        proxy_smtp_auth: false,
        proxy_buffer: 4096,
        pass_error_message: false,
    }
}

fn seed() -> SessionSeed {
    SessionSeed {
        client: Some("192.0.2.1:4000".parse().unwrap()),
        random: [2; 16],
        now_unix: 1700000000,
        tls: false,
    }
}

fn render(step: Step) -> String {
    match step {
        Step::Send(bytes) => format!("send {}", String::from_utf8_lossy(&bytes)),
        Step::Authenticate(r) => format!(
            "auth {} {}:{}{}{}",
            r.method.name(),
            String::from_utf8_lossy(&r.user),
            String::from_utf8_lossy(r.pass.expose()),
            r.salt
                .map(|s| format!(" salt {}", String::from_utf8_lossy(&s)))
                .unwrap_or_default(),
            r.envelope
                .map(|e| format!(
                    " [{}|{}|{}]",
                    String::from_utf8_lossy(&e.helo),
                    String::from_utf8_lossy(&e.from),
                    String::from_utf8_lossy(&e.to)
                ))
                .unwrap_or_default(),
        ),
        Step::Wait(d) => format!("wait {}ms", d.as_millis()),
        Step::Pause(d) => format!("pause {}ms", d.as_millis()),
        Step::ConnectBackend(plan) => format!("connect {} as {}", plan.addr, String::from_utf8_lossy(&plan.user)),
        Step::Relay => "relay".to_string(),
        Step::StartTls => "starttls".to_string(),
        Step::Close(reason) => format!("close {reason:?}"),
    }
}

fn drain(m: &mut SmtpFront) -> Vec<String> {
    std::iter::from_fn(|| m.poll()).map(render).collect()
}

fn machine_with(s: SmtpFrontSettings) -> SmtpFront {
    let mut m = SmtpFront::new(s, seed());
    assert_eq!(drain(&mut m), vec!["send 220 mx.postern.test ESMTP ready\r\n"]);
    m
}

fn run(input: &[u8]) -> Vec<String> {
    let mut m = machine_with(settings());
    let used = m.feed(input);
    assert_eq!(used, input.len());
    drain(&mut m)
}

const SALT: &str = "<72340172838076673.1700000000@mx.postern.test>";

#[test]
fn transcripts() {
    let rows: &[(&[u8], &[&str])] = &[
        (b"HELO c.example\r\n", &["send 250 mx.postern.test\r\n"]),
        (b"EHLO c.example\r\n", &["send 250-mx.postern.test\r\n250-SIZE 10485760\r\n250 AUTH PLAIN LOGIN\r\n"]),
        (b"ehlo\r\n", &["send 501 5.5.4 Invalid argument\r\n"]),
        (b"NOOP\r\nRSET\r\n", &["send 250 2.0.0 OK\r\n250 2.0.0 OK\r\n"]),
        (b"QUIT\r\n", &["send 221 2.0.0 Bye\r\n", "close ClientQuit"]),
        (b"FOO\r\n", &["send 500 5.5.1 Invalid command\r\n"]),
        (b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", &["send 503 5.5.1 Bad sequence of commands\r\n"]),
        (b"EHLO c\r\nMAIL FROM:<a@b>\r\n", &[
            "send 250-mx.postern.test\r\n250-SIZE 10485760\r\n250 AUTH PLAIN LOGIN\r\n530 5.7.1 Authentication required\r\n",
        ]),
        (b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", &[
            "send 250-mx.postern.test\r\n250-SIZE 10485760\r\n250 AUTH PLAIN LOGIN\r\n",
            "auth plain bob:secret",
        ]),
        (b"HELO c\r\nAUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\n", &["send 250 mx.postern.test\r\n334 \r\n", "auth plain bob:secret"]),
        (b"HELO c\r\nAUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\n", &[
            "send 250 mx.postern.test\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n",
            "auth plain bob:secret",
        ]),
        (b"HELO c\r\nAUTH LOGIN Ym9i\r\nc2VjcmV0\r\n", &["send 250 mx.postern.test\r\n334 UGFzc3dvcmQ6\r\n", "auth plain bob:secret"]),
        (b"HELO c\r\nAUTH EXTERNAL\r\n", &["send 250 mx.postern.test\r\n501 5.5.4 Invalid argument\r\n"]),
        (b"HELO c\r\nAUTH PLAIN *\r\n", &["send 250 mx.postern.test\r\n501 5.5.4 Invalid argument\r\n"]),
        (b"HELO a\rb\r\n", &["send 501 5.5.4 Invalid argument\r\n"]),
    ];
    for (input, want) in rows {
        assert_eq!(run(input), *want, "input {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn cram_md5_sends_the_salt() {
    let mut m = machine_with(settings());
    m.feed(b"EHLO c\r\nAUTH CRAM-MD5\r\n");
    let steps = drain(&mut m);
    let challenge = BASE64.encode(SALT);
    assert_eq!(
        steps.last().unwrap(),
        &format!("send 250-mx.postern.test\r\n250-SIZE 10485760\r\n250 AUTH PLAIN LOGIN\r\n334 {challenge}\r\n")
    );
    let answer = BASE64.encode("bob b913a602c7eda7a495b4e6e7334d3890");
    m.feed(format!("{answer}\r\n").as_bytes());
    assert_eq!(
        drain(&mut m),
        vec![format!(
            "auth cram-md5 bob:b913a602c7eda7a495b4e6e7334d3890 salt {SALT}"
        )]
    );
}

#[test]
fn greeting_delay_rejects_early_talkers() {
    let delayed = SmtpFrontSettings {
        greeting_delay: Duration::from_millis(500),
        ..settings()
    };
    let mut m = SmtpFront::new(delayed.clone(), seed());
    assert_eq!(drain(&mut m), vec!["pause 500ms"]);
    assert_eq!(m.feed(b"EHLO spam\r\n"), 0);
    assert_eq!(
        drain(&mut m),
        vec![
            "send 503 5.5.0 Improper use of SMTP command pipelining\r\n",
            "close TalkedFirst"
        ]
    );
    let mut m = SmtpFront::new(delayed, seed());
    let _ = drain(&mut m);
    m.on_pause_end();
    assert_eq!(drain(&mut m), vec!["send 220 mx.postern.test ESMTP ready\r\n"]);
}

#[test]
fn smtp_auth_none_sends_the_envelope() {
    let mut m = machine_with(SmtpFrontSettings {
        none: true,
        ..settings()
    });
    let input = b"EHLO c.example\r\nRCPT TO:<x@y>\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<c@d>\r\nDATA\r\n";
    let used = m.feed(input);
    assert_eq!(used, input.len() - b"DATA\r\n".len(), "DATA waits for the backend");
    let steps = drain(&mut m);
    assert_eq!(
        steps[1],
        "auth none : [c.example|MAIL FROM:<a@b> SIZE=10|RCPT TO:<c@d>]"
    );
    assert!(
        steps[0].ends_with("503 5.5.1 Bad sequence of commands\r\n250 2.0.0 OK\r\n"),
        "{}",
        steps[0]
    );
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.1:25".parse().unwrap(),
        user: None,
        pass: None,
    }));
    let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
        panic!("no plan")
    };
    let BackendLogin::Smtp(login) = &mut plan.login else {
        panic!("not smtp")
    };
    login.feed(b"220 mx\r\n250 mx\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 2.1.5 ok\r\n");
    let sent: Vec<_> = std::iter::from_fn(|| login.poll()).collect();
    assert_eq!(
        sent.last(),
        Some(&BackendStep::Done(BackendOutcome::LoggedIn {
            client_reply: b"250 2.1.5 ok\r\n".to_vec()
        }))
    );
    assert_eq!(
        sent[1],
        BackendStep::Send(b"XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]\r\n".to_vec())
    );
    assert_eq!(sent[3], BackendStep::Send(b"MAIL FROM:<a@b> SIZE=10\r\n".to_vec()));
}

fn authenticated() -> SmtpFront {
    let mut m = machine_with(settings());
    m.feed(b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
    let _ = drain(&mut m);
    m
}

#[test]
fn auth_replies() {
    let mut m = authenticated();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Go away".to_vec(),
        wait: None,
        error_code: None,
    }));
    assert_eq!(drain(&mut m), vec!["send 535 5.7.0 Go away\r\n", "close LoginRefused"]);

    let mut m = authenticated();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Try later".to_vec(),
        wait: Some(Duration::from_secs(1)),
        error_code: Some(b"451 4.3.0".to_vec()),
    }));
    assert_eq!(drain(&mut m), vec!["wait 1000ms", "send 451 4.3.0 Try later\r\n"]);
    m.feed(b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
    assert_eq!(drain(&mut m), vec!["auth plain bob:secret"]);

    let mut m = authenticated();
    m.on_auth(Err(AuthError::TimedOut));
    assert_eq!(
        drain(&mut m),
        vec!["send 451 4.3.2 Internal server error\r\n", "close AuthFailed"]
    );

    let mut m = authenticated();
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.1:25".parse().unwrap(),
        user: None,
        pass: None,
    }));
    assert_eq!(drain(&mut m), vec!["connect 10.0.0.1:25 as bob"]);
    m.on_backend(BackendOutcome::LoggedIn {
        client_reply: b"235 2.0.0 OK\r\n".to_vec(),
    });
    assert_eq!(drain(&mut m), vec!["send 235 2.0.0 OK\r\n", "relay"]);
}

#[test]
fn too_long_and_max_errors() {
    let mut m = machine_with(settings());
    m.feed(&[b'x'; 128]);
    assert_eq!(
        drain(&mut m),
        vec!["send 500 5.5.1 Invalid command\r\n", "close CommandTooLong"]
    );
    let mut m = machine_with(settings());
    assert_eq!(m.feed(b"A\r\nB\r\nC\r\nNOOP\r\n"), 9);
    assert_eq!(drain(&mut m).last().unwrap(), "close TooManyErrors");
}

#[test]
fn split_anywhere_same_steps() {
    let script: &[u8] = b"EHLO c\r\nNOOP\r\nAUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\n";
    crate::protocol::same_steps_however_split(script, || machine_with(settings()), SmtpFront::feed, drain);
}

/// The split property for generated scripts and cut points, and the bound
/// on what the machine leaves to the driver while it reads.
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::{strategy, Split};

    const WORDS: &[&[u8]] = &[
        b"EHLO client.example\r\n",
        b"HELO c\r\n",
        b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
        b"AUTH PLAIN\r\n",
        b"AGJvYgBzZWNyZXQ=\r\n",
        b"AUTH LOGIN\r\n",
        b"AUTH LOGIN Ym9i\r\n",
        b"Ym9i\r\n",
        b"c2VjcmV0\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"*\r\n",
        b"MAIL FROM:<a@example.org>\r\n",
        b"RCPT TO:<b@example.org>\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
        b"\r\n",
        b"\n",
        b" ",
        b"x",
    ];

    /// Drains, refusing each login with Auth-Wait so the dialogue goes on
    /// past it.
    fn drain_refusing(m: &mut SmtpFront) -> Vec<String> {
        let mut steps = Vec::new();
        loop {
            let new = drain(m);
            let asked = new.iter().any(|s| s.starts_with("auth "));
            steps.extend(new);
            if !asked {
                return steps;
            }
            m.on_auth(Ok(AuthReply::Reject {
                message: b"no".to_vec(),
                wait: Some(Duration::from_secs(1)),
                error_code: None,
            }));
        }
    }

    fn check(settings: fn() -> SmtpFrontSettings, script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
        let split = Split {
            start: &|| machine_with(settings()),
            feed: SmtpFront::feed,
            render: &drain_refusing,
            reading: SmtpFront::wants_input,
            limit: settings().client_buffer,
        };
        prop_assert_eq!(split.steps(script, cuts), split.steps(script, &[]));
        Ok(())
    }

    /// `smtp_auth none`: MAIL and RCPT go to the auth server.
    fn settings_none() -> SmtpFrontSettings {
        SmtpFrontSettings {
            none: true,
            client_buffer: 40,
            ..settings()
        }
    }

    proptest! {
        #![proptest_config(strategy::config())]

        #[test]
        fn commands_split_anywhere((script, cuts) in strategy::cut(strategy::script(WORDS, 16))) {
            check(settings, &script, &cuts)?;
            check(settings_none, &script, &cuts)?;
        }

        #[test]
        fn bytes_split_anywhere((script, cuts) in strategy::cut(proptest::collection::vec(any::<u8>(), 0..400))) {
            check(settings, &script, &cuts)?;
        }
    }
}
