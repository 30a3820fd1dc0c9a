use std::time::Duration;

use super::*;
use crate::protocol::backend::BackendLogin;

fn settings() -> ImapFrontSettings {
    ImapFrontSettings {
        capability_line: b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n".to_vec(),
        plaintext_capability_line: b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n".to_vec(),
        starttls: config::Starttls::Off,
        client_buffer: 64,
        max_errors: 3,
        proxy_buffer: 4096,
        pass_error_message: false,
        cram_md5: true,
        external: true,
        oauth: vec![OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2],
        max_token: 100,
        server_name: "mx.postern.test".to_string(),
        id_forward: false,
    }
}

fn seed() -> SessionSeed {
    SessionSeed {
        client: Some("192.0.2.1:4000".parse().unwrap()),
        random: [7; 16],
        now_unix: 0,
        tls: false,
    }
}

/// Steps as text, so rows read like a transcript.
fn render(step: Step) -> String {
    match step {
        Step::Send(bytes) => format!("send {}", String::from_utf8_lossy(&bytes)),
        Step::Authenticate(r) => format!(
            "auth {}:{} #{}",
            String::from_utf8_lossy(&r.user),
            String::from_utf8_lossy(r.pass.expose()),
            r.attempt
        ),
        Step::Wait(d) => format!("wait {}ms", d.as_millis()),
        Step::Pause(d) => format!("pause {}ms", d.as_millis()),
        Step::ConnectBackend(plan) => format!("connect {} as {}", plan.addr, String::from_utf8_lossy(&plan.user)),
        Step::Relay => "relay".to_string(),
        Step::StartTls => "starttls".to_string(),
        Step::Close(reason) => format!("close {reason:?}"),
    }
}

fn drain(m: &mut ImapFront) -> Vec<String> {
    std::iter::from_fn(|| m.poll()).map(render).collect()
}

/// A new machine with the greeting already taken.
fn machine() -> ImapFront {
    let mut m = ImapFront::new(settings(), seed());
    assert_eq!(drain(&mut m), vec!["send * OK IMAP4 ready\r\n"]);
    m
}

/// Feeds `input` whole and returns (bytes consumed, steps).
fn run(input: &[u8]) -> (usize, Vec<String>) {
    let mut m = machine();
    let used = m.feed(input);
    (used, drain(&mut m))
}

#[test]
fn transcripts() {
    let rows: &[(&[u8], &[&str])] = &[
        (
            b"a1 CAPABILITY\r\n",
            &["send * CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\na1 OK completed\r\n"],
        ),
        (
            b"a1 capability\n",
            &["send * CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\na1 OK completed\r\n"],
        ),
        (b"x.Y_z-9 NOOP\r\n", &["send x.Y_z-9 OK completed\r\n"]),
        (
            b"a LOGOUT\r\n",
            &["send * BYE\r\na OK completed\r\n", "close ClientQuit"],
        ),
        (b"a LOGIN bob secret\r\n", &["auth bob:secret #1"]),
        (b"a login \"b\\\"o b\" \"p\\\\w\"\r\n", &["auth b\"o b:p\\w #1"]),
        (b"a LOGIN  bob   pw  \r\n", &["auth bob:pw #1"]),
        (
            b"a LOGIN {3}\r\nbob {2}\r\npw\r\n",
            &["send + OK\r\n+ OK\r\n", "auth bob:pw #1"],
        ),
        (b"a LOGIN {3+}\r\nbob {2+}\r\npw\r\n", &["auth bob:pw #1"]),
        (b"a LOGIN {0}\r\n \"\"\r\n", &["send + OK\r\n", "auth : #1"]),
        (b"a LOGIN bob\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN a b c\r\n", &["send a BAD invalid command\r\n"]),
        (b"a FETCH 1 BODY[]\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN \"bob\"\"x\" pw\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN \"bo\\b\" pw\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN \"bob pw\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN {x}\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN {3} pw\r\n", &["send a BAD invalid command\r\n"]),
        (b"a+b NOOP\r\n", &["send * BAD invalid command\r\n"]),
        (b"NOOP\r\n", &["send * BAD invalid command\r\n"]),
        (b"\r\n", &["send * BAD invalid command\r\n"]),
        (
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa NOOP\r\n",
            &["send * BAD invalid command\r\n"],
        ),
        (b"a N00P\r\n", &["send a BAD invalid command\r\n"]),
        (b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n", &["auth bob:secret #1"]),
        (
            b"a AUTHENTICATE PLAIN\r\nAGJvYgBzZWNyZXQ=\r\n",
            &["send + \r\n", "auth bob:secret #1"],
        ),
        (
            b"a AUTHENTICATE plain\r\n*\r\n",
            &["send + \r\na BAD authentication cancelled\r\n"],
        ),
        (b"a AUTHENTICATE PLAIN !!\r\n", &["send a BAD invalid command\r\n"]),
        (
            b"a AUTHENTICATE PLAIN AGJvYg==\r\n",
            &["send a BAD invalid command\r\n"],
        ),
        (
            b"a AUTHENTICATE LOGIN\r\nYm9i\r\nc2VjcmV0\r\n",
            &["send + VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n", "auth bob:secret #1"],
        ),
        (
            b"a AUTHENTICATE LOGIN Ym9i\r\nc2VjcmV0\r\n",
            &["send + UGFzc3dvcmQ6\r\n", "auth bob:secret #1"],
        ),
        (b"a AUTHENTICATE X-UNKNOWN\r\n", &["send a BAD invalid command\r\n"]),
        (b"a AUTHENTICATE EXTERNAL Ym9i\r\n", &["auth bob: #1"]),
        (b"a AUTHENTICATE EXTERNAL\r\nYm9i\r\n", &["send + \r\n", "auth bob: #1"]),
        (b"a AUTHENTICATE EXTERNAL =\r\n", &["send a BAD invalid command\r\n"]),
        (b"a ID NIL\r\n", &["send * ID NIL\r\na OK completed\r\n"]),
        (b"a id (\"name\" \"x\")\r\n", &["send * ID NIL\r\na OK completed\r\n"]),
        (
            b"a ID (\"name\" {3}\r\nabc \"os\" NIL)\r\n",
            &["send + OK\r\n* ID NIL\r\na OK completed\r\n"],
        ),
        (b"a ID (\"name\")\r\n", &["send a BAD invalid command\r\n"]),
        (b"a ID (\"name\" \"x\"\r\n", &["send a BAD invalid command\r\n"]),
        (b"a ID\r\n", &["send a BAD invalid command\r\n"]),
        (b"a LOGIN (bob) pw\r\n", &["send a BAD invalid command\r\n"]),
    ];
    for (input, want) in rows {
        let (used, steps) = run(input);
        assert_eq!(steps, *want, "input {:?}", String::from_utf8_lossy(input));
        assert_eq!(used, input.len(), "input {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn cram_md5_and_the_rule_for_auth_pass() {
    let mut m = machine();
    m.feed(b"c AUTHENTICATE CRAM-MD5\r\n");
    let salt = "<253190604933268355.0@mx.postern.test>";
    assert_eq!(drain(&mut m), vec![format!("send + {}\r\n", BASE64.encode(salt))]);
    m.feed(format!("{}\r\n", BASE64.encode("bob b913a602c7eda7a495b4e6e7334d3890")).as_bytes());
    let Some(Step::Authenticate(request)) = m.poll() else {
        panic!("no auth request")
    };
    assert_eq!(request.method, AuthMethod::CramMd5);
    assert_eq!(request.salt.as_deref(), Some(salt.as_bytes()));
    assert_eq!(request.pass.expose(), b"b913a602c7eda7a495b4e6e7334d3890");
    // The digest cannot log in to the backend: without Auth-Pass, nginx
    // gives an internal error.
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.2:143".parse().unwrap(),
        user: None,
        pass: None,
        backend_tls: None,
        backend_method: None,
    }));
    assert_eq!(
        drain(&mut m),
        vec!["send * BAD internal server error\r\n", "close AuthFailed"]
    );
    let disabled = ImapFrontSettings {
        cram_md5: false,
        external: false,
        ..settings()
    };
    let mut m = ImapFront::new(disabled, seed());
    let _ = drain(&mut m);
    m.feed(b"c AUTHENTICATE CRAM-MD5\r\nd AUTHENTICATE EXTERNAL\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["send c BAD invalid command\r\nd BAD invalid command\r\n"]
    );
}

#[test]
fn id_parameters_are_kept() {
    let mut m = machine();
    assert_eq!(m.client_id(), None);
    m.feed(b"a ID (\"name\" \"Thunderbird\" \"version\" \"115.0\" \"os\" NIL)\r\n");
    let _ = drain(&mut m);
    let pair = |k: &str, v: Option<&str>| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()));
    assert_eq!(
        m.client_id(),
        Some(&vec![
            pair("name", Some("Thunderbird")),
            pair("version", Some("115.0")),
            pair("os", None)
        ])
    );
    m.feed(b"b ID NIL\r\n");
    assert_eq!(m.client_id(), Some(&vec![]));
}

#[test]
fn id_over_rfc_2971_bounds_is_refused() {
    let long_field = format!("a ID (\"{}\" \"v\")\r\n", "f".repeat(31));
    let mut m = ImapFront::new(
        ImapFrontSettings {
            client_buffer: 8192,
            ..settings()
        },
        seed(),
    );
    let _ = drain(&mut m);
    m.feed(long_field.as_bytes());
    assert_eq!(drain(&mut m), vec!["send a BAD invalid command\r\n"]);
    let pairs: String = (0..31).map(|i| format!("\"k{i}\" \"v\" ")).collect();
    m.feed(format!("b ID ({})\r\n", pairs.trim_end()).as_bytes());
    assert_eq!(drain(&mut m), vec!["send b BAD invalid command\r\n"]);
}

#[test]
fn shutdown_says_bye_only_before_login() {
    let mut m = machine();
    m.feed(b"a NOOP\r\n");
    let _ = drain(&mut m);
    m.on_shutdown();
    assert_eq!(
        drain(&mut m),
        vec!["send * BYE Server shutting down\r\n", "close ShuttingDown"]
    );
    let mut m = logged_in_request();
    m.on_shutdown();
    assert_eq!(drain(&mut m), Vec::<String>::new(), "a login under way goes on");
}

#[test]
fn too_long_line_closes() {
    let mut input = b"a LOGIN ".to_vec();
    input.resize(64, b'x');
    let (_, steps) = run(&input);
    assert_eq!(steps, vec!["send * BAD invalid command\r\n", "close CommandTooLong"]);
    // Up to the limit, a line is fine.
    let mut input = b"a LOGIN b ".to_vec();
    input.resize(62, b'x');
    input.extend_from_slice(b"\r\n");
    assert_eq!(run(&input).1, vec![format!("auth b:{} #1", "x".repeat(52))]);
}

#[test]
fn literal_over_the_buffer_closes_before_reading_it() {
    let (used, steps) = run(b"a LOGIN {60}\r\n");
    assert_eq!(used, 14);
    assert_eq!(steps, vec!["send * BAD invalid command\r\n", "close CommandTooLong"]);
}

#[test]
fn literals_count_against_the_buffer() {
    // 14 + 40 + 6 = 60 bytes fit; a second literal of 10 does not.
    let mut input = b"a LOGIN {40}\r\n".to_vec();
    input.extend_from_slice(&[b'u'; 40]);
    input.extend_from_slice(b" {10}\r\n");
    let (_, steps) = run(&input);
    assert_eq!(
        steps,
        vec!["send + OK\r\n* BAD invalid command\r\n", "close CommandTooLong"]
    );
}

#[test]
fn max_errors_closes() {
    let (used, steps) = run(b"a X\r\nb Y\r\nc Z\r\nd NOOP\r\n");
    assert_eq!(used, 15, "nothing after the close is consumed");
    assert_eq!(
        steps,
        vec![
            "send a BAD invalid command\r\nb BAD invalid command\r\nc BAD invalid command\r\n",
            "close TooManyErrors"
        ]
    );
}

#[test]
fn pipelined_commands_stop_at_login() {
    let input = b"a CAPABILITY\r\nb LOGIN bob pw\r\nc SELECT INBOX\r\n";
    let (used, steps) = run(input);
    assert_eq!(used, input.len() - b"c SELECT INBOX\r\n".len());
    assert_eq!(
        steps,
        vec![
            "send * CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\na OK completed\r\n",
            "auth bob:pw #1"
        ]
    );
}

fn logged_in_request() -> ImapFront {
    let mut m = machine();
    m.feed(b"t1 LOGIN bob pw\r\n");
    assert_eq!(drain(&mut m), vec!["auth bob:pw #1"]);
    m
}

#[test]
fn accept_connects_with_overrides() {
    let mut m = logged_in_request();
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.2:143".parse().unwrap(),
        user: Some(b"robert".to_vec()),
        pass: None,
        backend_tls: None,
        backend_method: None,
    }));
    let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
        panic!("expected a backend plan")
    };
    assert_eq!(plan.addr, "10.0.0.2:143".parse().unwrap());
    assert_eq!(plan.user, b"robert");
    // The login machine carries the client's tag, the override user and the
    // client's own password.
    let BackendLogin::Imap(login) = &mut plan.login else {
        panic!("not an IMAP login")
    };
    login.feed(b"* OK hi\r\n");
    let sent: Vec<_> = std::iter::from_fn(|| login.poll()).collect();
    assert_eq!(
        sent,
        vec![crate::protocol::backend::BackendStep::Send(
            b"t1 LOGIN \"robert\" \"pw\"\r\n".to_vec()
        )]
    );
    m.on_backend(BackendOutcome::LoggedIn {
        client_reply: b"t1 OK done\r\n".to_vec(),
    });
    assert_eq!(drain(&mut m), vec!["send t1 OK done\r\n", "relay"]);
    assert!(!m.wants_input());
    assert_eq!(m.feed(b"t2 SELECT INBOX\r\n"), 0, "relay bytes are not the machine's");
}

/// `imap_id_forward`: the client's ID reaches the backend login only when on.
#[test]
fn client_id_is_forwarded_only_when_asked() {
    for forward in [false, true] {
        let mut m = ImapFront::new(
            ImapFrontSettings {
                id_forward: forward,
                ..settings()
            },
            seed(),
        );
        let _ = drain(&mut m);
        m.feed(b"a ID (\"name\" \"Mutt\")\r\nb LOGIN bob pw\r\n");
        let _ = drain(&mut m);
        m.on_auth(Ok(AuthReply::Accept {
            backend: "10.0.0.2:143".parse().unwrap(),
            user: None,
            pass: None,
            backend_tls: None,
            backend_method: None,
        }));
        let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
            panic!("expected a backend plan")
        };
        let BackendLogin::Imap(login) = &mut plan.login else {
            panic!("not an IMAP login")
        };
        login.feed(b"* OK [CAPABILITY IMAP4rev1 ID] hi\r\n");
        let sent: Vec<_> = std::iter::from_fn(|| login.poll()).collect();
        let want: &[u8] = if forward {
            b"postern-id ID (\"name\" \"Mutt\")\r\nb LOGIN \"bob\" \"pw\"\r\n"
        } else {
            b"b LOGIN \"bob\" \"pw\"\r\n"
        };
        assert_eq!(
            sent,
            vec![crate::protocol::backend::BackendStep::Send(want.to_vec())],
            "forward {forward}"
        );
    }
}

#[test]
fn backend_failure_gives_internal_error_or_its_line() {
    let mut m = logged_in_request();
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.2:143".parse().unwrap(),
        user: None,
        pass: None,
        backend_tls: None,
        backend_method: None,
    }));
    let _ = drain(&mut m);
    m.on_backend(BackendOutcome::Failed { client_reply: None });
    assert_eq!(
        drain(&mut m),
        vec!["send * BAD internal server error\r\n", "close BackendFailed"]
    );

    let mut m = logged_in_request();
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.2:143".parse().unwrap(),
        user: None,
        pass: None,
        backend_tls: None,
        backend_method: None,
    }));
    let _ = drain(&mut m);
    m.on_backend(BackendOutcome::Failed {
        client_reply: Some(b"t1 NO go away\r\n".to_vec()),
    });
    assert_eq!(drain(&mut m), vec!["send t1 NO go away\r\n", "close BackendFailed"]);
}

#[test]
fn reject_without_wait_closes() {
    let mut m = logged_in_request();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Invalid login".to_vec(),
        wait: None,
        error_code: None,
        sasl_error: None,
    }));
    assert_eq!(
        drain(&mut m),
        vec!["send t1 NO Invalid login\r\n", "close LoginRefused"]
    );
}

#[test]
fn reject_with_wait_lets_the_client_retry() {
    let mut m = logged_in_request();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Try later".to_vec(),
        wait: Some(Duration::from_secs(2)),
        error_code: None,
        sasl_error: None,
    }));
    assert_eq!(drain(&mut m), vec!["wait 2000ms", "send t1 NO Try later\r\n"]);
    assert!(m.wants_input());
    m.feed(b"t2 LOGIN bob pw2\r\n");
    assert_eq!(drain(&mut m), vec!["auth bob:pw2 #2"]);
}

#[test]
fn wait_status_asks_again() {
    let mut m = logged_in_request();
    m.on_auth(Ok(AuthReply::Retry {
        wait: Duration::from_secs(1),
    }));
    assert_eq!(drain(&mut m), vec!["wait 1000ms", "auth bob:pw #1"]);
    m.on_auth(Ok(AuthReply::Reject {
        message: b"no".to_vec(),
        wait: None,
        error_code: None,
        sasl_error: None,
    }));
    assert_eq!(drain(&mut m), vec!["send t1 NO no\r\n", "close LoginRefused"]);
}

#[test]
fn auth_failure_is_internal_error() {
    let mut m = logged_in_request();
    m.on_auth(Err(AuthError::TimedOut));
    assert_eq!(
        drain(&mut m),
        vec!["send * BAD internal server error\r\n", "close AuthFailed"]
    );
}

#[test]
fn capability_line_from_config() {
    let mut server = crate::config::parse_str(
        "mail { auth_http 127.0.0.1:9/a; imap_capabilities IMAP4rev1 ID; imap_auth login plain;\n\
         server { listen 127.0.0.1:1143; protocol imap; } }",
        std::path::Path::new("t.conf"),
    )
    .unwrap()
    .servers
    .remove(0);
    server.imap.client_buffer = 8192;
    let s = ImapFrontSettings::from_server(&server);
    assert_eq!(
        s.capability_line,
        b"* CAPABILITY IMAP4rev1 ID AUTH=PLAIN AUTH=LOGIN\r\n"
    );
    assert_eq!(s.client_buffer, 8192);
}

/// nginx's defaults (imap_auth plain) with `starttls` as given, and this
/// file's limits.
fn settings_in(mode: config::Starttls) -> ImapFrontSettings {
    let mut server = crate::config::parse_str(
        "mail { auth_http 127.0.0.1:9/a; server { listen 127.0.0.1:1143; protocol imap; } }",
        std::path::Path::new("t.conf"),
    )
    .unwrap()
    .servers
    .remove(0);
    server.starttls = mode;
    ImapFrontSettings {
        client_buffer: 64,
        max_errors: 3,
        ..ImapFrontSettings::from_server(&server)
    }
}

/// How far a session has come with TLS when a row starts.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Plaintext, nothing said yet.
    Plain,
    /// `s STARTTLS` answered and its handshake completed.
    AfterStarttls,
    /// `listen ... ssl`: TLS from the first byte.
    Implicit,
}

fn session(mode: config::Starttls, stage: Stage) -> ImapFront {
    let tls = matches!(stage, Stage::Implicit);
    let mut m = ImapFront::new(settings_in(mode), SessionSeed { tls, ..seed() });
    assert_eq!(drain(&mut m), vec!["send * OK IMAP4 ready\r\n"]);
    if let Stage::AfterStarttls = stage {
        assert_eq!(m.feed(b"s STARTTLS\r\n"), 12);
        assert_eq!(drain(&mut m), vec!["send s OK completed\r\n", "starttls"]);
        assert!(!m.wants_input(), "nothing is read during the handshake");
        m.on_tls_started();
        assert_eq!(drain(&mut m), Vec::<String>::new(), "no second greeting");
        assert!(m.wants_input());
    }
    m
}

#[test]
fn capabilities_by_starttls_and_privacy() {
    use config::Starttls::{Off, On, Only};
    const NORMAL: &str = "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n";
    let rows: &[(config::Starttls, Stage, &str)] = &[
        (Off, Stage::Plain, NORMAL),
        (Off, Stage::Implicit, NORMAL),
        (
            On,
            Stage::Plain,
            "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN STARTTLS\r\n",
        ),
        (On, Stage::AfterStarttls, NORMAL),
        (On, Stage::Implicit, NORMAL),
        (
            Only,
            Stage::Plain,
            "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\n",
        ),
        (Only, Stage::AfterStarttls, NORMAL),
        (Only, Stage::Implicit, NORMAL),
    ];
    for &(mode, stage, line) in rows {
        let mut m = session(mode, stage);
        m.feed(b"c CAPABILITY\r\n");
        assert_eq!(
            drain(&mut m),
            vec![format!("send {line}c OK completed\r\n")],
            "{mode:?} {stage:?}"
        );
    }
}

#[test]
fn starttls_transcripts() {
    use config::Starttls::{Off, On, Only};
    const BAD: &[&str] = &["send a BAD invalid command\r\n"];
    const LOGGED_IN: &[&str] = &["auth bob:secret #1"];
    const STARTED: &[&str] = &["send a OK completed\r\n", "starttls"];
    let rows: &[(config::Starttls, Stage, &[u8], &[&str])] = &[
        (Off, Stage::Plain, b"a STARTTLS\r\n", BAD),
        (On, Stage::Plain, b"a STARTTLS\r\n", STARTED),
        (On, Stage::Plain, b"a starttls\n", STARTED),
        (Only, Stage::Plain, b"a STARTTLS\r\n", STARTED),
        // nginx ignores arguments; the grammar has none.
        (On, Stage::Plain, b"a STARTTLS now\r\n", BAD),
        // Once private, STARTTLS is an invalid command.
        (On, Stage::AfterStarttls, b"a STARTTLS\r\n", BAD),
        (Only, Stage::AfterStarttls, b"a STARTTLS\r\n", BAD),
        (On, Stage::Implicit, b"a STARTTLS\r\n", BAD),
        // `on`: plaintext logins still allowed.
        (On, Stage::Plain, b"a LOGIN bob secret\r\n", LOGGED_IN),
        // `only`: no credentials before TLS, as nginx (BAD, no prompt).
        (Only, Stage::Plain, b"a LOGIN bob secret\r\n", BAD),
        (Only, Stage::Plain, b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n", BAD),
        (Only, Stage::Plain, b"a AUTHENTICATE PLAIN\r\n", BAD),
        (Only, Stage::Plain, b"a AUTHENTICATE LOGIN\r\n", BAD),
        (Only, Stage::Plain, b"a NOOP\r\n", &["send a OK completed\r\n"]),
        (
            Only,
            Stage::Plain,
            b"a ID NIL\r\n",
            &["send * ID NIL\r\na OK completed\r\n"],
        ),
        // ... and allowed after it, or with implicit TLS.
        (Only, Stage::AfterStarttls, b"a LOGIN bob secret\r\n", LOGGED_IN),
        (
            Only,
            Stage::AfterStarttls,
            b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
            LOGGED_IN,
        ),
        (Only, Stage::Implicit, b"a LOGIN bob secret\r\n", LOGGED_IN),
        (
            Only,
            Stage::Implicit,
            b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
            LOGGED_IN,
        ),
    ];
    for &(mode, stage, input, want) in rows {
        let mut m = session(mode, stage);
        let used = m.feed(input);
        let label = format!("{mode:?} {stage:?} {:?}", String::from_utf8_lossy(input));
        assert_eq!(drain(&mut m), want, "{label}");
        assert_eq!(used, input.len(), "{label}");
    }
}

/// CVE-2011-0411's class: a command sent in plaintext behind STARTTLS, in
/// the same packet, must never run inside the TLS session.
#[test]
fn pipelined_behind_starttls_is_never_executed() {
    for mode in [config::Starttls::On, config::Starttls::Only] {
        let mut m = session(mode, Stage::Plain);
        let input = b"a STARTTLS\r\nb LOGIN bob secret\r\n";
        assert_eq!(m.feed(input), 12, "only the STARTTLS line is consumed");
        assert_eq!(drain(&mut m), vec!["send a OK completed\r\n", "starttls"]);
        assert!(!m.wants_input());
        // Offered again before the handshake, the rest is still not taken.
        assert_eq!(m.feed(&input[12..]), 0);
        assert_eq!(drain(&mut m), Vec::<String>::new());
        // The driver discarded it; the private session starts clean.
        m.on_tls_started();
        assert_eq!(drain(&mut m), Vec::<String>::new());
        m.feed(b"c LOGIN bob secret\r\n");
        assert_eq!(drain(&mut m), vec!["auth bob:secret #1"]);
    }
}

#[test]
fn tls_started_out_of_turn_ends_the_session() {
    let mut m = session(config::Starttls::On, Stage::Plain);
    m.on_tls_started();
    assert_eq!(
        drain(&mut m),
        vec!["send * BAD internal server error\r\n", "close BackendFailed"]
    );
}

/// The split property across STARTTLS: a script that ends with it (or
/// pipelines behind it) gives the same steps however split, and none past
/// the handshake; the private session's script likewise.
#[test]
fn split_anywhere_around_starttls() {
    let on = || session(config::Starttls::On, Stage::Plain);
    let whole = crate::protocol::same_steps_however_split(
        b"a CAPABILITY\r\nb STARTTLS\r\nc LOGIN bob secret\r\n",
        on,
        ImapFront::feed,
        drain,
    );
    assert!(whole.ends_with("b OK completed\r\n[starttls]"), "{whole}");
    let after = || session(config::Starttls::Only, Stage::AfterStarttls);
    let whole = crate::protocol::same_steps_however_split(
        b"a CAPABILITY\r\nb LOGIN bob secret\r\n",
        after,
        ImapFront::feed,
        drain,
    );
    assert!(whole.ends_with("[auth bob:secret #1]"), "{whole}");
}

/// The first property of every machine: however the input is split across
/// reads, the steps are the same.
#[test]
fn split_anywhere_same_steps() {
    let script: &[u8] = b"a CAPABILITY\r\nb NOOP\r\nc bad\r\nd AUTHENTICATE LOGIN\r\nYm9i\r\nc2VjcmV0\r\n";
    let literal: &[u8] = b"a LOGIN {3}\r\nbob {6+}\r\nsecret\r\n";
    for script in [script, literal] {
        crate::protocol::same_steps_however_split(script, machine, ImapFront::feed, drain);
    }
}

/// The split property for generated scripts and cut points, and the bound
/// on what the machine leaves to the driver while it reads.
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::{strategy, Split};

    const WORDS: &[&[u8]] = &[
        b"a LOGIN bob secret\r\n",
        b"b CAPABILITY\r\n",
        b"c NOOP\r\n",
        b"a LOGIN {3}\r\n",
        b"{3}\r\n",
        b"{2+}\r\n",
        b"bob",
        b" ",
        b"\"p\\\"w\"",
        b"\r\n",
        b"\n",
        b"d AUTHENTICATE PLAIN\r\n",
        b"AGJvYgBzZWNyZXQ=\r\n",
        b"e AUTHENTICATE LOGIN\r\n",
        b"Ym9i\r\n",
        b"*\r\n",
        b"f ID (\"name\" \"x\")\r\n",
        b"g AUTHENTICATE CRAM-MD5\r\n",
        b"h AUTHENTICATE EXTERNAL =\r\n",
        b"i LOGOUT\r\n",
        b"s STARTTLS\r\n",
        b"j AUTHENTICATE XOAUTH2\r\n",
        b"dXNlcj1ib2IBYXV0aD1CZWFyZXIgVE9LRU4BAQ==\r\n",
        b"k AUTHENTICATE OAUTHBEARER bixhPWJvYiwBYXV0aD1CZWFyZXIgVE9LRU4BAQ==\r\n",
        b"l AUTHENTICATE OAUTHBEARER ",
        b"AQ==\r\n",
    ];

    /// Drains, refusing each login with Auth-Wait so the dialogue goes on
    /// past it.
    fn drain_refusing(m: &mut ImapFront) -> Vec<String> {
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

    fn check(script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
        check_from(&machine, script, cuts)?;
        check_from(&|| session(config::Starttls::On, Stage::Plain), script, cuts)?;
        check_from(&|| session(config::Starttls::Only, Stage::Plain), script, cuts)
    }

    fn check_from(start: &dyn Fn() -> ImapFront, script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
        let split = Split {
            start,
            feed: ImapFront::feed,
            render: &drain_refusing,
            reading: ImapFront::wants_input,
            limit: oauth::line_limit(settings().client_buffer, settings().max_token),
        };
        prop_assert_eq!(split.steps(script, cuts), split.steps(script, &[]));
        Ok(())
    }

    proptest! {
        #![proptest_config(strategy::config())]

        #[test]
        fn commands_split_anywhere((script, cuts) in strategy::cut(strategy::script(WORDS, 16))) {
            check(&script, &cuts)?;
        }

        #[test]
        fn bytes_split_anywhere((script, cuts) in strategy::cut(proptest::collection::vec(any::<u8>(), 0..400))) {
            check(&script, &cuts)?;
        }
    }
}

/// RFC 7628 4.1's initial response, verbatim, and its token.
const RFC7628_IR: &str = "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB";
const RFC7628_TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
/// RFC 7628 4.3's error challenge.
const RFC7628_ERROR: &str = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=";

fn b64(message: &[u8]) -> String {
    BASE64.encode(message)
}

#[test]
fn oauth_transcripts() {
    let xoauth2 = b64(b"user=bob\x01auth=Bearer TOKEN\x01\x01");
    let rows: Vec<(String, Vec<String>)> = vec![
        (
            format!("t0 AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\n"),
            vec![format!("auth user@example.com:{RFC7628_TOKEN} #1")],
        ),
        (
            format!("a authenticate xoauth2 {xoauth2}\r\n"),
            vec!["auth bob:TOKEN #1".to_string()],
        ),
        (
            format!("a AUTHENTICATE XOAUTH2\r\n{xoauth2}\r\n"),
            vec!["send + \r\n".to_string(), "auth bob:TOKEN #1".to_string()],
        ),
        (
            "a AUTHENTICATE OAUTHBEARER\r\n*\r\n".to_string(),
            vec!["send + \r\na BAD authentication cancelled\r\n".to_string()],
        ),
        (
            format!(
                "a AUTHENTICATE OAUTHBEARER {}\r\n",
                b64(b"y,a=bob,\x01auth=Bearer T\x01\x01")
            ),
            vec!["send a BAD invalid command\r\n".to_string()],
        ),
        (
            format!(
                "a AUTHENTICATE OAUTHBEARER {}\r\n",
                b64(b"n,a=bob,\x01auth=Basic T\x01\x01")
            ),
            vec!["send a BAD invalid command\r\n".to_string()],
        ),
        (
            "a AUTHENTICATE XOAUTH2 !!\r\n".to_string(),
            vec!["send a BAD invalid command\r\n".to_string()],
        ),
    ];
    for (input, want) in rows {
        let (used, steps) = run(input.as_bytes());
        assert_eq!(steps, want, "input {input:?}");
        assert_eq!(used, input.len(), "input {input:?}");
    }
    let mut m = machine();
    m.feed(format!("t0 AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\n").as_bytes());
    let Some(Step::Authenticate(request)) = m.poll() else {
        panic!("no auth request")
    };
    assert_eq!(request.method, AuthMethod::OAuth(OAuthMechanism::OAuthBearer));
    assert_eq!(request.method.name(), "oauthbearer");
}

/// Mechanisms not in `imap_auth` are unknown, and not advertised.
#[test]
fn oauth_only_when_configured() {
    let m = ImapFront::new(
        ImapFrontSettings {
            oauth: vec![OAuthMechanism::XOAuth2],
            ..settings()
        },
        seed(),
    );
    let mut m = m;
    let _ = drain(&mut m);
    m.feed(format!("a AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\n").as_bytes());
    assert_eq!(
        drain(&mut m),
        vec!["send * BAD invalid command\r\n", "close CommandTooLong"]
    );
    let mut server = crate::config::parse_str(
        "mail { auth_http 127.0.0.1:9/a; server { listen 127.0.0.1:1143; protocol imap; \
         imap_auth plain oauthbearer xoauth2; } }",
        std::path::Path::new("t.conf"),
    )
    .unwrap()
    .servers
    .remove(0);
    server.starttls = config::Starttls::Only;
    let s = ImapFrontSettings::from_server(&server);
    assert_eq!(s.oauth, vec![OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2]);
    assert_eq!(
        String::from_utf8_lossy(&s.capability_line),
        "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN AUTH=OAUTHBEARER AUTH=XOAUTH2\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&s.plaintext_capability_line),
        "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\n"
    );
    // With `starttls only`, no credentials before TLS, and no OAuth line
    // is let past the client buffer.
    let mut m = ImapFront::new(s, seed());
    let _ = drain(&mut m);
    m.feed(format!("a AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\n").as_bytes());
    assert_eq!(drain(&mut m), vec!["send a BAD invalid command\r\n"]);
    let mut long = b"b AUTHENTICATE OAUTHBEARER ".to_vec();
    long.resize(4097, b'A');
    m.feed(&long);
    assert_eq!(
        drain(&mut m),
        vec!["send * BAD invalid command\r\n", "close CommandTooLong"]
    );
}

fn oauth_request() -> ImapFront {
    let mut m = machine();
    m.feed(format!("t0 AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\n").as_bytes());
    assert_eq!(drain(&mut m), vec![format!("auth user@example.com:{RFC7628_TOKEN} #1")]);
    m
}

fn reject(wait: Option<u64>, sasl_error: Option<&str>) -> Result<AuthReply, AuthError> {
    Ok(AuthReply::Reject {
        message: b"not authorized".to_vec(),
        wait: wait.map(Duration::from_secs),
        error_code: None,
        sasl_error: sasl_error.map(|e| e.as_bytes().to_vec()),
    })
}

/// RFC 7628 4.3: the error challenge, the client's `AQ==`, then NO.
#[test]
fn oauth_failure_exchange() {
    let mut m = oauth_request();
    m.on_auth(reject(None, Some(RFC7628_ERROR)));
    assert_eq!(drain(&mut m), vec![format!("send + {RFC7628_ERROR}\r\n")]);
    assert!(m.wants_input());
    m.feed(b"AQ==\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["send t0 NO not authorized\r\n", "close LoginRefused"]
    );

    // Without Auth-Error-SASL, the default JSON; XOAUTH2's empty dummy line,
    // and Auth-Wait: the client may try again after the delay.
    let mut m = oauth_request();
    m.on_auth(reject(Some(2), None));
    let challenge = b64(oauth::DEFAULT_ERROR_JSON.as_bytes());
    assert_eq!(drain(&mut m), vec![format!("send + {challenge}\r\n")]);
    m.feed(b"\r\n");
    assert_eq!(drain(&mut m), vec!["wait 2000ms", "send t0 NO not authorized\r\n"]);
    m.feed(b"t1 NOOP\r\n");
    assert_eq!(drain(&mut m), vec!["send t1 OK completed\r\n"]);

    // A cancel is as good a dummy as any.
    let mut m = oauth_request();
    m.on_auth(reject(None, None));
    let _ = drain(&mut m);
    m.feed(b"*\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["send t0 NO not authorized\r\n", "close LoginRefused"]
    );
}

/// The token bound: over it the line is refused, whole or not, without
/// reading it to its end; under it a line past the client buffer is fine.
#[test]
fn oauth_token_bound() {
    let limit = oauth::line_limit(settings().client_buffer, settings().max_token);
    let token = "T".repeat(100);
    let fits = format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        b64(format!("user=bob\x01auth=Bearer {token}\x01\x01").as_bytes())
    );
    assert!(fits.len() > settings().client_buffer && fits.len() < limit);
    assert_eq!(run(fits.as_bytes()).1, vec![format!("auth bob:{token} #1")]);

    let over = format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        b64(format!("user=bob\x01auth=Bearer {token}T\x01\x01").as_bytes())
    );
    assert_eq!(
        run(over.as_bytes()).1,
        vec!["send a BAD token too long\r\n", "close CommandTooLong"]
    );

    let mut endless = b"a AUTHENTICATE OAUTHBEARER ".to_vec();
    endless.resize(limit + 100, b'A');
    let (used, steps) = run(&endless);
    assert_eq!(steps, vec!["send a BAD token too long\r\n", "close CommandTooLong"]);
    assert_eq!(used, 0, "nothing of the endless line is taken");
    // After the prompt likewise.
    let mut m = machine();
    m.feed(b"a AUTHENTICATE OAUTHBEARER\r\n");
    let _ = drain(&mut m);
    m.feed(&vec![b'A'; limit]);
    assert_eq!(
        drain(&mut m),
        vec!["send a BAD token too long\r\n", "close CommandTooLong"]
    );
    // Other commands keep the client buffer.
    let mut plain = b"a AUTHENTICATE PLAIN ".to_vec();
    plain.resize(settings().client_buffer + 1, b'A');
    assert_eq!(
        run(&plain).1,
        vec!["send * BAD invalid command\r\n", "close CommandTooLong"]
    );
}

/// `Auth-Method: xoauth2` in the reply: the backend login passes the token
/// on with AUTHENTICATE rather than LOGIN.
#[test]
fn oauth_token_passed_to_the_backend() {
    let mut m = oauth_request();
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.2:143".parse().unwrap(),
        user: None,
        pass: None,
        backend_tls: None,
        backend_method: Some(OAuthMechanism::XOAuth2),
    }));
    let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
        panic!("expected a backend plan")
    };
    assert_eq!(plan.user, b"user@example.com");
    assert_eq!(plan.login.feed(b"* OK [CAPABILITY IMAP4rev1 SASL-IR] hi\r\n"), 40);
    let want = format!(
        "t0 AUTHENTICATE XOAUTH2 {}\r\n",
        b64(format!("user=user@example.com\x01auth=Bearer {RFC7628_TOKEN}\x01\x01").as_bytes())
    );
    assert_eq!(
        plan.login.poll(),
        Some(crate::protocol::backend::BackendStep::Send(want.into_bytes()))
    );
}

#[test]
fn oauth_split_anywhere_same_steps() {
    let ir = format!("t0 AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\n");
    let prompt = format!(
        "a NOOP\r\nb AUTHENTICATE XOAUTH2\r\n{}\r\n",
        b64(b"user=bob\x01auth=Bearer TOKEN\x01\x01")
    );
    for script in [ir, prompt] {
        let whole = crate::protocol::same_steps_however_split(script.as_bytes(), machine, ImapFront::feed, drain);
        assert!(whole.contains("[auth "), "{whole}");
    }
    // Through the failure exchange.
    let refusing = |m: &mut ImapFront| {
        let steps = drain(m);
        if steps.iter().any(|s| s.starts_with("auth ")) {
            m.on_auth(reject(None, Some(RFC7628_ERROR)));
            return steps.into_iter().chain(drain(m)).collect();
        }
        steps
    };
    let script = format!("t0 AUTHENTICATE OAUTHBEARER {RFC7628_IR}\r\nAQ==\r\n");
    let whole = crate::protocol::same_steps_however_split(script.as_bytes(), machine, ImapFront::feed, refusing);
    assert!(
        whole.ends_with("t0 NO not authorized\r\n[close LoginRefused]"),
        "{whole}"
    );
}
