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
        oauth: vec![OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2],
        max_token: 100,
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
        backend_tls: None,
        backend_method: None,
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
        sasl_error: None,
    }));
    assert_eq!(drain(&mut m), vec!["send 535 5.7.0 Go away\r\n", "close LoginRefused"]);

    let mut m = authenticated();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Try later".to_vec(),
        wait: Some(Duration::from_secs(1)),
        error_code: Some(b"451 4.3.0".to_vec()),
        sasl_error: None,
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
        backend_tls: None,
        backend_method: None,
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

/// A server block with `directives` and `starttls` as given, and this
/// file's limits.
fn settings_in(mode: config::Starttls, directives: &str) -> SmtpFrontSettings {
    let mut server = crate::config::parse_str(
        &format!(
            "mail {{ auth_http 127.0.0.1:9/a; {directives}\n\
             server {{ listen 127.0.0.1:1025; protocol smtp; server_name mx.postern.test; }} }}"
        ),
        std::path::Path::new("t.conf"),
    )
    .unwrap()
    .servers
    .remove(0);
    server.starttls = mode;
    SmtpFrontSettings {
        client_buffer: 128,
        max_errors: 3,
        ..SmtpFrontSettings::from_server(&server)
    }
}

/// How far a session has come with TLS when a row starts.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Plaintext, nothing said yet.
    Plain,
    /// `EHLO before` then STARTTLS answered and its handshake completed.
    AfterStarttls,
    /// `listen ... ssl`: TLS from the first byte.
    Implicit,
}

fn session_with(s: SmtpFrontSettings, stage: Stage) -> SmtpFront {
    let tls = matches!(stage, Stage::Implicit);
    let mut m = SmtpFront::new(s, SessionSeed { tls, ..seed() });
    assert_eq!(drain(&mut m), vec!["send 220 mx.postern.test ESMTP ready\r\n"]);
    if let Stage::AfterStarttls = stage {
        let input = b"EHLO before\r\nSTARTTLS\r\n";
        assert_eq!(m.feed(input), input.len());
        let steps = drain(&mut m);
        assert!(
            steps[0].ends_with("250 STARTTLS\r\n220 2.0.0 Start TLS\r\n"),
            "{steps:?}"
        );
        assert_eq!(steps[1..], ["starttls"]);
        assert!(!m.wants_input(), "nothing is read during the handshake");
        m.on_tls_started();
        assert_eq!(drain(&mut m), Vec::<String>::new(), "no second greeting");
        assert!(m.wants_input());
    }
    m
}

fn session(mode: config::Starttls, stage: Stage) -> SmtpFront {
    session_with(settings_in(mode, ""), stage)
}

#[test]
fn ehlo_by_starttls_and_privacy() {
    use config::Starttls::{Off, On, Only};
    const NORMAL: &str = "250-mx.postern.test\r\n250 AUTH PLAIN LOGIN\r\n";
    let rows: &[(config::Starttls, &str, Stage, &str)] = &[
        (Off, "", Stage::Plain, NORMAL),
        (Off, "", Stage::Implicit, NORMAL),
        (
            On,
            "",
            Stage::Plain,
            "250-mx.postern.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
        ),
        (On, "", Stage::AfterStarttls, NORMAL),
        (On, "", Stage::Implicit, NORMAL),
        // nginx advertises no AUTH while no login is possible.
        (Only, "", Stage::Plain, "250-mx.postern.test\r\n250 STARTTLS\r\n"),
        (Only, "", Stage::AfterStarttls, NORMAL),
        (Only, "", Stage::Implicit, NORMAL),
        (
            Only,
            "smtp_capabilities \"SIZE 10485760\" 8BITMIME;",
            Stage::Plain,
            "250-mx.postern.test\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
        ),
        (
            Only,
            "smtp_capabilities \"SIZE 10485760\" 8BITMIME;",
            Stage::Implicit,
            "250-mx.postern.test\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n",
        ),
        (
            On,
            "smtp_auth none;",
            Stage::Plain,
            "250-mx.postern.test\r\n250 STARTTLS\r\n",
        ),
        (On, "smtp_auth none;", Stage::AfterStarttls, "250 mx.postern.test\r\n"),
    ];
    for &(mode, directives, stage, reply) in rows {
        let mut m = session_with(settings_in(mode, directives), stage);
        m.feed(b"EHLO c\r\n");
        let label = format!("{mode:?} {directives} {stage:?}");
        assert_eq!(drain(&mut m), vec![format!("send {reply}")], "{label}");
        // HELO has no capabilities to offer, STARTTLS or not.
        m.feed(b"HELO c\r\n");
        assert_eq!(drain(&mut m), vec!["send 250 mx.postern.test\r\n"], "{label}");
    }
}

#[test]
fn starttls_transcripts() {
    use config::Starttls::{Off, On, Only};
    const EHLO_ON: &str = "250-mx.postern.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n";
    const EHLO_ONLY: &str = "250-mx.postern.test\r\n250 STARTTLS\r\n";
    const EHLO: &str = "250-mx.postern.test\r\n250 AUTH PLAIN LOGIN\r\n";
    const INVALID: &str = "500 5.5.1 Invalid command\r\n";
    const STARTED: &[&str] = &["send 220 2.0.0 Start TLS\r\n", "starttls"];
    let ehlo_then = |ehlo: &str, then: &str| format!("send {ehlo}{then}");
    let rows: Vec<(config::Starttls, Stage, &[u8], Vec<String>)> = vec![
        (Off, Stage::Plain, b"STARTTLS\r\n", vec![format!("send {INVALID}")]),
        (On, Stage::Plain, b"STARTTLS\r\n", to_strings(STARTED)),
        (On, Stage::Plain, b"starttls\n", to_strings(STARTED)),
        (Only, Stage::Plain, b"STARTTLS\r\n", to_strings(STARTED)),
        (
            On,
            Stage::Plain,
            b"EHLO c\r\nSTARTTLS\r\n",
            vec![ehlo_then(EHLO_ON, "220 2.0.0 Start TLS\r\n"), "starttls".into()],
        ),
        // nginx ignores arguments; RFC 3207 answers them with 501.
        (
            On,
            Stage::Plain,
            b"STARTTLS now\r\n",
            vec!["send 501 5.5.4 Invalid argument\r\n".into()],
        ),
        // Once private, STARTTLS is an invalid command.
        (
            On,
            Stage::AfterStarttls,
            b"STARTTLS\r\n",
            vec![format!("send {INVALID}")],
        ),
        (
            Only,
            Stage::AfterStarttls,
            b"STARTTLS\r\n",
            vec![format!("send {INVALID}")],
        ),
        (On, Stage::Implicit, b"STARTTLS\r\n", vec![format!("send {INVALID}")]),
        // `on`: plaintext logins still allowed.
        (
            On,
            Stage::Plain,
            b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            vec![ehlo_then(EHLO_ON, ""), "auth plain bob:secret".into()],
        ),
        // `only`: no AUTH before TLS, as nginx (500, no prompt).
        (
            Only,
            Stage::Plain,
            b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            vec![ehlo_then(EHLO_ONLY, INVALID)],
        ),
        (
            Only,
            Stage::Plain,
            b"EHLO c\r\nAUTH LOGIN\r\n",
            vec![ehlo_then(EHLO_ONLY, INVALID)],
        ),
        (Only, Stage::Plain, b"AUTH PLAIN\r\n", vec![format!("send {INVALID}")]),
        (
            Only,
            Stage::Plain,
            b"NOOP\r\nRSET\r\n",
            vec!["send 250 2.0.0 OK\r\n250 2.0.0 OK\r\n".into()],
        ),
        // ... and allowed after it (EHLO again first), or with implicit TLS.
        (
            Only,
            Stage::AfterStarttls,
            b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            vec![ehlo_then(EHLO, ""), "auth plain bob:secret".into()],
        ),
        (
            Only,
            Stage::Implicit,
            b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            vec![ehlo_then(EHLO, ""), "auth plain bob:secret".into()],
        ),
        // The EHLO before STARTTLS is forgotten (RFC 3207 4.2).
        (
            On,
            Stage::AfterStarttls,
            b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            vec!["send 503 5.5.1 Bad sequence of commands\r\n".into()],
        ),
    ];
    for (mode, stage, input, want) in rows {
        let mut m = session(mode, stage);
        let used = m.feed(input);
        let label = format!("{mode:?} {stage:?} {:?}", String::from_utf8_lossy(input));
        assert_eq!(drain(&mut m), want, "{label}");
        assert_eq!(used, input.len(), "{label}");
    }
}

fn to_strings(steps: &[&str]) -> Vec<String> {
    steps.iter().map(|s| s.to_string()).collect()
}

/// `smtp_auth none` with `starttls only`: nginx lets MAIL and RCPT (and so
/// the whole envelope, and the relay) through in plaintext; Postern
/// refuses them until TLS, as RFC 3207 4 words it.
#[test]
fn smtp_auth_none_waits_for_tls_under_starttls_only() {
    const MUST: &str = "530 5.7.0 Must issue a STARTTLS command first\r\n";
    let none_only = || settings_in(config::Starttls::Only, "smtp_auth none;");
    let mut m = session_with(none_only(), Stage::Plain);
    m.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
    assert_eq!(
        drain(&mut m),
        vec![format!("send 250-mx.postern.test\r\n250 STARTTLS\r\n{MUST}{MUST}")]
    );
    for stage in [Stage::AfterStarttls, Stage::Implicit] {
        let mut m = session_with(none_only(), stage);
        m.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
        assert_eq!(
            drain(&mut m),
            vec![
                "send 250 mx.postern.test\r\n250 2.0.0 OK\r\n".to_string(),
                "auth none : [c|MAIL FROM:<a@b>|RCPT TO:<c@d>]".to_string()
            ],
            "{stage:?}"
        );
    }
    // Without `smtp_auth none`, MAIL still needs AUTH first, as nginx says.
    let mut m = session(config::Starttls::Only, Stage::Plain);
    m.feed(b"MAIL FROM:<a@b>\r\n");
    assert_eq!(drain(&mut m), vec!["send 530 5.7.1 Authentication required\r\n"]);
}

/// RFC 3207 4.2, nginx likewise: after the handshake the session has
/// forgotten HELO, MAIL FROM and RCPT TO; the client starts over.
#[test]
fn starttls_forgets_helo_and_envelope() {
    let mut m = session_with(settings_in(config::Starttls::On, "smtp_auth none;"), Stage::Plain);
    let input = b"EHLO plain.example\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\n";
    assert_eq!(m.feed(input), input.len());
    assert_eq!(
        drain(&mut m),
        vec![
            "send 250-mx.postern.test\r\n250 STARTTLS\r\n250 2.0.0 OK\r\n220 2.0.0 Start TLS\r\n",
            "starttls"
        ]
    );
    m.on_tls_started();
    // No MAIL FROM any more, and no HELO either.
    m.feed(b"RCPT TO:<c@d>\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["send 503 5.5.1 Bad sequence of commands\r\n503 5.5.1 Bad sequence of commands\r\n"]
    );
    m.feed(b"EHLO private.example\r\nMAIL FROM:<x@y>\r\nRCPT TO:<c@d>\r\n");
    assert_eq!(
        drain(&mut m),
        vec![
            "send 250 mx.postern.test\r\n250 2.0.0 OK\r\n",
            "auth none : [private.example|MAIL FROM:<x@y>|RCPT TO:<c@d>]"
        ]
    );
}

/// CVE-2011-0411's class (found in Postfix by Wietse Venema): commands sent
/// in plaintext behind STARTTLS, in the same packet, must never run inside
/// the TLS session.
#[test]
fn pipelined_behind_starttls_is_never_executed() {
    for mode in [config::Starttls::On, config::Starttls::Only] {
        let mut m = session(mode, Stage::Plain);
        let input = b"STARTTLS\r\nEHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n";
        assert_eq!(m.feed(input), 10, "only the STARTTLS line is consumed");
        assert_eq!(drain(&mut m), vec!["send 220 2.0.0 Start TLS\r\n", "starttls"]);
        assert!(!m.wants_input());
        assert_eq!(m.feed(&input[10..]), 0);
        assert_eq!(drain(&mut m), Vec::<String>::new());
        m.on_tls_started();
        assert_eq!(drain(&mut m), Vec::<String>::new());
        m.feed(b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
        assert_eq!(
            drain(&mut m),
            vec![
                "send 250-mx.postern.test\r\n250 AUTH PLAIN LOGIN\r\n",
                "auth plain bob:secret"
            ]
        );
    }
}

#[test]
fn tls_started_out_of_turn_ends_the_session() {
    let mut m = session(config::Starttls::On, Stage::Plain);
    m.on_tls_started();
    assert_eq!(
        drain(&mut m),
        vec!["send 451 4.3.2 Internal server error\r\n", "close BackendFailed"]
    );
}

/// The split property across STARTTLS: a script that ends with it (or
/// pipelines behind it) gives the same steps however split, and none past
/// the handshake; the private session's script likewise.
#[test]
fn split_anywhere_around_starttls() {
    let on = || session(config::Starttls::On, Stage::Plain);
    let whole = crate::protocol::same_steps_however_split(
        b"EHLO c\r\nSTARTTLS\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
        on,
        SmtpFront::feed,
        drain,
    );
    assert!(whole.ends_with("220 2.0.0 Start TLS\r\n[starttls]"), "{whole}");
    let after = || session(config::Starttls::Only, Stage::AfterStarttls);
    let whole = crate::protocol::same_steps_however_split(
        b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
        after,
        SmtpFront::feed,
        drain,
    );
    assert!(whole.ends_with("[auth plain bob:secret]"), "{whole}");
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
        b"STARTTLS\r\n",
        b"AUTH XOAUTH2\r\n",
        b"dXNlcj1ib2IBYXV0aD1CZWFyZXIgVE9LRU4BAQ==\r\n",
        b"AUTH OAUTHBEARER bixhPWJvYiwBYXV0aD1CZWFyZXIgVE9LRU4BAQ==\r\n",
        b"AUTH OAUTHBEARER ",
        b"AQ==\r\n",
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
                sasl_error: None,
            }));
        }
    }

    fn check(settings: fn() -> SmtpFrontSettings, script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
        let split = Split {
            start: &|| machine_with(settings()),
            feed: SmtpFront::feed,
            render: &drain_refusing,
            reading: SmtpFront::wants_input,
            limit: oauth::line_limit(settings().client_buffer, settings().max_token),
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

    fn settings_on() -> SmtpFrontSettings {
        settings_in(config::Starttls::On, "")
    }

    /// `smtp_auth none` under `starttls only`: MAIL and RCPT wait for TLS.
    fn settings_none_only() -> SmtpFrontSettings {
        SmtpFrontSettings {
            client_buffer: 40,
            ..settings_in(config::Starttls::Only, "smtp_auth none;")
        }
    }

    proptest! {
        #![proptest_config(strategy::config())]

        #[test]
        fn commands_split_anywhere((script, cuts) in strategy::cut(strategy::script(WORDS, 16))) {
            check(settings, &script, &cuts)?;
            check(settings_none, &script, &cuts)?;
            check(settings_on, &script, &cuts)?;
            check(settings_none_only, &script, &cuts)?;
        }

        #[test]
        fn bytes_split_anywhere((script, cuts) in strategy::cut(proptest::collection::vec(any::<u8>(), 0..400))) {
            check(settings, &script, &cuts)?;
        }
    }
}

/// RFC 7628 4.1's initial response and token, 4.3's error challenge.
const RFC7628_IR: &str = "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB";
const RFC7628_TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
const RFC7628_ERROR: &str = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=";

fn b64(message: &[u8]) -> String {
    BASE64.encode(message)
}

#[test]
fn oauth_transcripts() {
    let xoauth2 = b64(b"user=bob\x01auth=Bearer TOKEN\x01\x01");
    let ehlo = "send 250-mx.postern.test\r\n250-SIZE 10485760\r\n250 AUTH PLAIN LOGIN\r\n";
    let rows: Vec<(String, Vec<String>)> = vec![
        (
            format!("EHLO c\r\nAUTH OAUTHBEARER {RFC7628_IR}\r\n"),
            vec![
                ehlo.to_string(),
                format!("auth oauthbearer user@example.com:{RFC7628_TOKEN}"),
            ],
        ),
        (
            format!("EHLO c\r\nAUTH XOAUTH2\r\n{xoauth2}\r\n"),
            vec![format!("{ehlo}334 \r\n"), "auth xoauth2 bob:TOKEN".to_string()],
        ),
        (
            "EHLO c\r\nAUTH XOAUTH2\r\n*\r\n".to_string(),
            vec![format!("{ehlo}334 \r\n501 5.5.4 Invalid argument\r\n")],
        ),
        (
            format!("AUTH XOAUTH2 {xoauth2}\r\n"),
            vec!["send 503 5.5.1 Bad sequence of commands\r\n".to_string()],
        ),
    ];
    for (input, want) in rows {
        assert_eq!(run(input.as_bytes()), want, "input {input:?}");
    }
    let s = SmtpFrontSettings::from_server(
        &crate::config::parse_str(
            "mail { auth_http 127.0.0.1:9/a; server { listen 127.0.0.1:1025; protocol smtp; \
             server_name mx; smtp_auth login xoauth2 plain oauthbearer; } }",
            std::path::Path::new("t.conf"),
        )
        .unwrap()
        .servers[0],
    );
    assert_eq!(s.ehlo_lines, vec![b"AUTH PLAIN LOGIN OAUTHBEARER XOAUTH2".to_vec()]);
}

fn oauth_request() -> SmtpFront {
    let mut m = machine_with(settings());
    m.feed(format!("EHLO c\r\nAUTH OAUTHBEARER {RFC7628_IR}\r\n").as_bytes());
    let _ = drain(&mut m);
    m
}

#[test]
fn oauth_failure_exchange() {
    let mut m = oauth_request();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Authentication credentials invalid".to_vec(),
        wait: None,
        error_code: Some(b"535 5.7.8".to_vec()),
        sasl_error: Some(RFC7628_ERROR.as_bytes().to_vec()),
    }));
    assert_eq!(drain(&mut m), vec![format!("send 334 {RFC7628_ERROR}\r\n")]);
    m.feed(b"AQ==\r\n");
    assert_eq!(
        drain(&mut m),
        vec![
            "send 535 5.7.8 Authentication credentials invalid\r\n",
            "close LoginRefused"
        ]
    );

    let mut m = oauth_request();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Go away".to_vec(),
        wait: Some(Duration::from_secs(1)),
        error_code: None,
        sasl_error: None,
    }));
    let challenge = b64(oauth::DEFAULT_ERROR_JSON.as_bytes());
    assert_eq!(drain(&mut m), vec![format!("send 334 {challenge}\r\n")]);
    m.feed(b"\r\nNOOP\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["wait 1000ms", "send 535 5.7.0 Go away\r\n250 2.0.0 OK\r\n"]
    );
}

#[test]
fn oauth_token_bound() {
    let s = settings();
    let limit = oauth::line_limit(s.client_buffer, s.max_token);
    let token = "T".repeat(100);
    let over = format!(
        "EHLO c\r\nAUTH XOAUTH2 {}\r\n",
        b64(format!("user=bob\x01auth=Bearer {token}T\x01\x01").as_bytes())
    );
    assert_eq!(
        run(over.as_bytes()).last().map(String::as_str),
        Some("close CommandTooLong")
    );
    let mut m = machine_with(settings());
    m.feed(b"EHLO c\r\n");
    let _ = drain(&mut m);
    let mut endless = b"AUTH OAUTHBEARER ".to_vec();
    endless.resize(limit, b'A');
    assert_eq!(m.feed(&endless), 0);
    assert_eq!(
        drain(&mut m),
        vec![
            "send 500 5.5.6 Authentication Exchange line is too long\r\n",
            "close CommandTooLong"
        ]
    );
}

#[test]
fn oauth_split_anywhere_same_steps() {
    let script = format!("EHLO c\r\nAUTH OAUTHBEARER {RFC7628_IR}\r\n");
    let whole = crate::protocol::same_steps_however_split(
        script.as_bytes(),
        || machine_with(settings()),
        SmtpFront::feed,
        drain,
    );
    assert!(whole.contains("[auth "), "{whole}");
}

#[test]
fn the_resolved_host_name_goes_to_xclient() {
    for host in ["a.example.net", "[TEMPUNAVAIL]"] {
        let mut m = machine_with(settings());
        m.set_client_host(host);
        m.feed(b"EHLO c\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
        let _ = drain(&mut m);
        m.on_auth(Ok(AuthReply::Accept {
            backend: "10.0.0.1:25".parse().unwrap(),
            user: None,
            pass: None,
            backend_tls: None,
            backend_method: None,
        }));
        let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
            panic!("no plan")
        };
        let BackendLogin::Smtp(login) = &mut plan.login else {
            panic!("not smtp")
        };
        login.feed(b"220 mx\r\n250 mx\r\n");
        let sent: Vec<_> = std::iter::from_fn(|| login.poll()).collect();
        let want = format!("XCLIENT ADDR=192.0.2.1 LOGIN=bob NAME={host}\r\n");
        assert_eq!(sent[1], BackendStep::Send(want.into_bytes()), "{host}");
    }
}
