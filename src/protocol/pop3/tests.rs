use std::time::Duration;

use super::*;
use crate::protocol::backend::{BackendLogin, BackendStep};

const CAPA_PLAIN: &str = "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN\r\n.\r\n";
const AUTH_PLAIN: &str = "+OK methods supported:\r\nPLAIN\r\nLOGIN\r\n.\r\n";
const CAPA_ALL: &str =
    "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n.\r\n";
const AUTH_ALL: &str = "+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\nEXTERNAL\r\n.\r\n";
/// `salt(seed(), "mail.example")`, and its base64 (the CRAM-MD5 challenge).
const SALT: &str = "<253190604933268355.0@mail.example>";
const SALT_BASE64: &str = "PDI1MzE5MDYwNDkzMzI2ODM1NS4wQG1haWwuZXhhbXBsZT4=";
const DIGEST: &str = "b913a602c7eda7a495b4e6e7334d3890";

/// `pop3_auth plain` (the default).
fn settings() -> Pop3FrontSettings {
    Pop3FrontSettings {
        capa_reply: CAPA_PLAIN.as_bytes().to_vec(),
        plaintext_capa_reply: CAPA_PLAIN.as_bytes().to_vec(),
        starttls: config::Starttls::Off,
        auth_reply: AUTH_PLAIN.as_bytes().to_vec(),
        client_buffer: 64,
        max_errors: 3,
        proxy_buffer: 4096,
        pass_error_message: false,
        apop: false,
        cram_md5: false,
        external: false,
        oauth: vec![OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2],
        max_token: 100,
        server_name: "mail.example".to_string(),
    }
}

/// `pop3_auth plain apop cram-md5 external`.
fn settings_all() -> Pop3FrontSettings {
    Pop3FrontSettings {
        capa_reply: CAPA_ALL.as_bytes().to_vec(),
        plaintext_capa_reply: CAPA_ALL.as_bytes().to_vec(),
        auth_reply: AUTH_ALL.as_bytes().to_vec(),
        apop: true,
        cram_md5: true,
        external: true,
        ..settings()
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

/// Steps as text, so rows read like a transcript. Authenticate shows the
/// method, the credentials, the attempt and the salt when there is one.
fn render(step: Step) -> String {
    match step {
        Step::Send(bytes) => format!("send {}", String::from_utf8_lossy(&bytes)),
        Step::Authenticate(r) => {
            assert_eq!(r.protocol, Protocol::Pop3);
            assert_eq!(r.envelope, None);
            let mut text = format!(
                "auth {} {}:{} #{}",
                r.method.name(),
                String::from_utf8_lossy(&r.user),
                String::from_utf8_lossy(r.pass.expose()),
                r.attempt
            );
            if let Some(salt) = r.salt {
                text.push_str(&format!(" salt {}", String::from_utf8_lossy(&salt)));
            }
            text
        }
        Step::Wait(d) => format!("wait {}ms", d.as_millis()),
        Step::ConnectBackend(plan) => format!("connect {} as {}", plan.addr, String::from_utf8_lossy(&plan.user)),
        Step::Relay => "relay".to_string(),
        Step::StartTls => "starttls".to_string(),
        Step::Close(reason) => format!("close {reason:?}"),
        other => format!("{other:?}"),
    }
}

fn drain(m: &mut Pop3Front) -> Vec<String> {
    std::iter::from_fn(|| m.poll()).map(render).collect()
}

/// A new machine with the greeting already taken.
fn machine_with(settings: Pop3FrontSettings) -> Pop3Front {
    let salted = settings.apop || settings.cram_md5;
    let mut m = Pop3Front::new(settings, seed());
    let greeting = if salted {
        format!("send +OK POP3 ready {SALT}\r\n")
    } else {
        "send +OK POP3 ready\r\n".to_string()
    };
    assert_eq!(drain(&mut m), vec![greeting]);
    m
}

fn machine() -> Pop3Front {
    machine_with(settings())
}

/// Feeds `input` whole and returns (bytes consumed, steps).
fn run_with(settings: Pop3FrontSettings, input: &[u8]) -> (usize, Vec<String>) {
    let mut m = machine_with(settings);
    let used = m.feed(input);
    (used, drain(&mut m))
}

fn run(input: &[u8]) -> (usize, Vec<String>) {
    run_with(settings(), input)
}

#[test]
fn transcripts() {
    let capa = format!("send {CAPA_PLAIN}");
    let auth_list = format!("send {AUTH_PLAIN}");
    let rows: &[(&[u8], &[&str])] = &[
        (b"CAPA\r\n", &[&capa]),
        (b"capa\n", &[&capa]),
        (b"CAPA ignored args\r\n", &[&capa]),
        (b"NOOP\r\n", &["send +OK\r\n"]),
        (b"NOOP a b c\r\n", &["send +OK\r\n"]),
        (b"NOOP a b c d\r\n", &["send -ERR invalid command\r\n"]),
        (b"QUIT\r\n", &["send +OK\r\n", "close ClientQuit"]),
        (b"quit\r\n", &["send +OK\r\n", "close ClientQuit"]),
        (
            b"USER bob\r\nPASS secret\r\n",
            &["send +OK\r\n", "auth plain bob:secret #1"],
        ),
        (
            b"user bob\npass secret\n",
            &["send +OK\r\n", "auth plain bob:secret #1"],
        ),
        // USER and PASS take the rest of the line, spaces and all.
        (
            b"USER bob smith\r\nPASS two  words \r\n",
            &["send +OK\r\n", "auth plain bob smith:two  words  #1"],
        ),
        (b"USER bob\r\nPASS \r\n", &["send +OK\r\n-ERR invalid command\r\n"]),
        (b"USER bob\r\nPASS\r\n", &["send +OK\r\n-ERR invalid command\r\n"]),
        (b"USER\r\n", &["send -ERR invalid command\r\n"]),
        (b"USER \r\n", &["send -ERR invalid command\r\n"]),
        (b"PASS secret\r\n", &["send -ERR invalid command\r\n"]),
        // After USER: CAPA, NOOP keep the user; anything else forgets it.
        (
            b"USER bob\r\nNOOP\r\nCAPA\r\nPASS pw\r\n",
            &[&format!("send +OK\r\n+OK\r\n{CAPA_PLAIN}"), "auth plain bob:pw #1"],
        ),
        (
            b"USER bob\r\nUSER al\r\nPASS pw\r\n",
            &["send +OK\r\n-ERR invalid command\r\n-ERR invalid command\r\n"],
        ),
        (b"USER bob\r\nAUTH\r\n", &["send +OK\r\n-ERR invalid command\r\n"]),
        (b"USER bob\r\nQUIT\r\n", &["send +OK\r\n+OK\r\n", "close ClientQuit"]),
        (b"STAT\r\n", &["send -ERR invalid command\r\n"]),
        (b"TOP 1 10\r\n", &["send -ERR invalid command\r\n"]),
        (b"STLS\r\n", &["send -ERR invalid command\r\n"]),
        (b"N00P\r\n", &["send -ERR invalid command\r\n"]),
        (b"NOOPS\r\n", &["send -ERR invalid command\r\n"]),
        (b" NOOP\r\n", &["send -ERR invalid command\r\n"]),
        (b"NOOP\rX\r\n", &["send -ERR invalid command\r\n"]),
        (b"USER b\rob\r\n", &["send -ERR invalid command\r\n"]),
        (b"\r\n", &["send -ERR invalid command\r\n"]),
        (b"AUTH\r\n", &[&auth_list]),
        (b"auth\r\n", &[&auth_list]),
        (b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", &["auth plain bob:secret #1"]),
        (b"AUTH  plain   AGJvYgBzZWNyZXQ=\r\n", &["auth plain bob:secret #1"]),
        (
            b"AUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\n",
            &["send + \r\n", "auth plain bob:secret #1"],
        ),
        (
            b"AUTH PLAIN\r\n*\r\n",
            &["send + \r\n-ERR authentication cancelled\r\n"],
        ),
        (b"AUTH PLAIN\r\n!!\r\n", &["send + \r\n-ERR invalid command\r\n"]),
        (b"AUTH PLAIN !!\r\n", &["send -ERR invalid command\r\n"]),
        (b"AUTH PLAIN AGJvYg==\r\n", &["send -ERR invalid command\r\n"]),
        (b"AUTH PLAIN AGJvYgBzZWNyZXQ= x\r\n", &["send -ERR invalid command\r\n"]),
        (
            b"AUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\n",
            &["send + VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n", "auth plain bob:secret #1"],
        ),
        (
            b"AUTH login Ym9i\r\nc2VjcmV0\r\n",
            &["send + UGFzc3dvcmQ6\r\n", "auth plain bob:secret #1"],
        ),
        (
            b"AUTH LOGIN\r\n*\r\n",
            &["send + VXNlcm5hbWU6\r\n-ERR authentication cancelled\r\n"],
        ),
        (
            b"AUTH LOGIN Ym9i\r\n*\r\nNOOP\r\n",
            &["send + UGFzc3dvcmQ6\r\n-ERR authentication cancelled\r\n+OK\r\n"],
        ),
        (b"AUTH LOGIN !!\r\n", &["send -ERR invalid command\r\n"]),
        // Not enabled by `pop3_auth plain`.
        (b"AUTH CRAM-MD5\r\n", &["send -ERR invalid command\r\n"]),
        (b"AUTH EXTERNAL\r\n", &["send -ERR invalid command\r\n"]),
        (b"AUTH EXTERNAL Ym9i\r\n", &["send -ERR invalid command\r\n"]),
        (
            b"APOP bob b913a602c7eda7a495b4e6e7334d3890\r\n",
            &["send -ERR invalid command\r\n"],
        ),
        (b"AUTH XOAUTH2 abc\r\n", &["send -ERR invalid command\r\n"]),
        (b"AUTH DIGEST-MD5\r\n", &["send -ERR invalid command\r\n"]),
    ];
    for (input, want) in rows {
        let (used, steps) = run(input);
        assert_eq!(steps, *want, "input {:?}", String::from_utf8_lossy(input));
        assert_eq!(used, input.len(), "input {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn transcripts_with_apop_cram_md5_external() {
    let capa = format!("send {CAPA_ALL}");
    let auth_list = format!("send {AUTH_ALL}");
    let apop = format!("auth apop bob:{DIGEST} #1 salt {SALT}");
    let cram = format!("auth cram-md5 tim:{DIGEST} #1 salt {SALT}");
    let challenge = format!("send + {SALT_BASE64}\r\n");
    let cram_bad = format!("{challenge}-ERR invalid command\r\n");
    let cram_cancel = format!("{challenge}-ERR authentication cancelled\r\n");
    let rows: Vec<(&[u8], Vec<&str>)> = vec![
        (b"CAPA\r\n", vec![&capa]),
        (b"AUTH\r\n", vec![&auth_list]),
        (b"APOP bob b913a602c7eda7a495b4e6e7334d3890\r\n", vec![&apop]),
        (b"apop  bob  b913a602c7eda7a495b4e6e7334d3890 \r\n", vec![&apop]),
        (
            b"APOP bob b913a602c7eda7a495b4e6e7334d389\r\n",
            vec!["send -ERR invalid command\r\n"],
        ),
        (
            b"APOP bob b913a602c7eda7a495b4e6e7334d389x\r\n",
            vec!["send -ERR invalid command\r\n"],
        ),
        (b"APOP bob\r\n", vec!["send -ERR invalid command\r\n"]),
        (
            b"APOP bob smith b913a602c7eda7a495b4e6e7334d3890\r\n",
            vec!["send -ERR invalid command\r\n"],
        ),
        (
            b"USER bob\r\nAPOP bob b913a602c7eda7a495b4e6e7334d3890\r\n",
            vec!["send +OK\r\n-ERR invalid command\r\n"],
        ),
        (
            b"AUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n",
            vec![&challenge, &cram],
        ),
        (b"AUTH CRAM-MD5\r\nYm9i\r\n", vec![&cram_bad]),
        (b"AUTH CRAM-MD5\r\n*\r\n", vec![&cram_cancel]),
        (b"AUTH CRAM-MD5 Ym9i\r\n", vec!["send -ERR invalid command\r\n"]),
        (
            b"AUTH EXTERNAL\r\nZXh0IHVzZXI=\r\n",
            vec!["send + VXNlcm5hbWU6\r\n", "auth external ext user: #1"],
        ),
        (b"AUTH EXTERNAL ZXh0IHVzZXI=\r\n", vec!["auth external ext user: #1"]),
        (b"AUTH EXTERNAL =\r\n", vec!["send -ERR invalid command\r\n"]),
        (
            b"AUTH EXTERNAL\r\n=\r\n",
            vec!["send + VXNlcm5hbWU6\r\n-ERR invalid command\r\n"],
        ),
        // The plaintext methods are unchanged, and carry no salt.
        (b"USER bob\r\nPASS pw\r\n", vec!["send +OK\r\n", "auth plain bob:pw #1"]),
    ];
    for (input, want) in rows {
        let (used, steps) = run_with(settings_all(), input);
        assert_eq!(steps, want, "input {:?}", String::from_utf8_lossy(input));
        assert_eq!(used, input.len(), "input {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn greeting_has_the_salt_only_for_apop_or_cram_md5() {
    let mut m = Pop3Front::new(settings(), seed());
    assert_eq!(drain(&mut m), vec!["send +OK POP3 ready\r\n"]);
    let greeting = format!("send +OK POP3 ready {SALT}\r\n");
    for s in [
        Pop3FrontSettings {
            apop: true,
            ..settings()
        },
        Pop3FrontSettings {
            cram_md5: true,
            ..settings()
        },
    ] {
        let mut m = Pop3Front::new(s, seed());
        assert_eq!(drain(&mut m), vec![greeting.clone()]);
    }
    let mut m = Pop3Front::new(
        Pop3FrontSettings {
            external: true,
            ..settings()
        },
        seed(),
    );
    assert_eq!(drain(&mut m), vec!["send +OK POP3 ready\r\n"]);
}

#[test]
fn each_method_alone() {
    let apop = Pop3FrontSettings {
        apop: true,
        ..settings()
    };
    assert_eq!(
        run_with(apop.clone(), format!("APOP bob {DIGEST}\r\n").as_bytes()).1,
        vec![format!("auth apop bob:{DIGEST} #1 salt {SALT}")]
    );
    assert_eq!(
        run_with(apop, b"AUTH CRAM-MD5\r\n").1,
        vec!["send -ERR invalid command\r\n"]
    );
    let cram = Pop3FrontSettings {
        cram_md5: true,
        ..settings()
    };
    assert_eq!(
        run_with(cram.clone(), format!("APOP bob {DIGEST}\r\n").as_bytes()).1,
        vec!["send -ERR invalid command\r\n"]
    );
    assert_eq!(
        run_with(cram, b"AUTH CRAM-MD5\r\n").1,
        vec![format!("send + {SALT_BASE64}\r\n")]
    );
    let external = Pop3FrontSettings {
        external: true,
        ..settings()
    };
    assert_eq!(
        run_with(external, b"AUTH EXTERNAL Ym9i\r\n").1,
        vec!["auth external bob: #1"]
    );
}

#[test]
fn shutdown_says_so_only_before_login() {
    let mut m = machine();
    m.feed(b"USER bob\r\n");
    let _ = drain(&mut m);
    m.on_shutdown();
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR Server shutting down\r\n", "close ShuttingDown"]
    );
    let mut m = machine();
    m.feed(b"AUTH LOGIN\r\n");
    let _ = drain(&mut m);
    m.on_shutdown();
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR Server shutting down\r\n", "close ShuttingDown"]
    );
    let mut m = login_request();
    m.on_shutdown();
    assert_eq!(drain(&mut m), Vec::<String>::new(), "a login under way goes on");
}

#[test]
fn too_long_line_closes() {
    let mut input = b"USER ".to_vec();
    input.resize(64, b'x');
    let (used, steps) = run(&input);
    assert_eq!(used, 0);
    assert_eq!(steps, vec!["send -ERR invalid command\r\n", "close CommandTooLong"]);
    // Up to the limit, a line is fine.
    let mut input = b"USER ".to_vec();
    input.resize(62, b'x');
    input.extend_from_slice(b"\r\n");
    assert_eq!(run(&input).1, vec!["send +OK\r\n"]);
    // SASL responses count too.
    let mut input = b"AUTH PLAIN\r\n".to_vec();
    input.resize(12 + 64, b'A');
    assert_eq!(
        run(&input).1,
        vec!["send + \r\n-ERR invalid command\r\n", "close CommandTooLong"]
    );
}

#[test]
fn max_errors_closes() {
    let (used, steps) = run(b"STAT\r\nLIST\r\nRETR 1\r\nNOOP\r\n");
    assert_eq!(used, 20, "nothing after the close is consumed");
    assert_eq!(
        steps,
        vec![
            "send -ERR invalid command\r\n-ERR invalid command\r\n-ERR invalid command\r\n",
            "close TooManyErrors"
        ]
    );
    // A cancelled exchange is no error.
    let (_, steps) = run(b"AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n*\r\nNOOP\r\n");
    assert_eq!(steps.len(), 1);
    assert!(steps[0].ends_with("-ERR authentication cancelled\r\n+OK\r\n"));
}

#[test]
fn pipelined_commands_stop_at_pass() {
    let input = b"CAPA\r\nUSER bob\r\nPASS pw\r\nSTAT\r\nLIST\r\n";
    let (used, steps) = run(input);
    assert_eq!(used, input.len() - b"STAT\r\nLIST\r\n".len());
    assert_eq!(
        steps,
        vec![format!("send {CAPA_PLAIN}+OK\r\n"), "auth plain bob:pw #1".to_string()]
    );
}

fn login_request() -> Pop3Front {
    let mut m = machine();
    m.feed(b"USER bob\r\nPASS pw\r\n");
    assert_eq!(drain(&mut m), vec!["send +OK\r\n", "auth plain bob:pw #1"]);
    m
}

fn accept(user: Option<&[u8]>, pass: Option<&[u8]>) -> Result<AuthReply, AuthError> {
    Ok(AuthReply::Accept {
        backend: "10.0.0.2:110".parse().unwrap(),
        user: user.map(<[u8]>::to_vec),
        pass: pass.map(|p| Secret::new(p.to_vec())),
        backend_tls: None,
        backend_method: None,
    })
}

/// Drives the plan's login machine through a backend that says `+OK` to
/// everything and returns what it was sent.
fn backend_commands(plan: &mut BackendPlan) -> Vec<String> {
    let BackendLogin::Pop3(login) = &mut plan.login else {
        panic!("expected a POP3 login")
    };
    let mut sent = Vec::new();
    for line in [&b"+OK hi\r\n"[..], b"+OK\r\n", b"+OK in\r\n"] {
        assert_eq!(login.feed(line), line.len());
        while let Some(step) = login.poll() {
            match step {
                BackendStep::Send(bytes) => sent.push(String::from_utf8_lossy(&bytes).into_owned()),
                BackendStep::Done(outcome) => {
                    assert_eq!(
                        outcome,
                        BackendOutcome::LoggedIn {
                            client_reply: b"+OK in\r\n".to_vec()
                        }
                    )
                }
            }
        }
    }
    sent
}

#[test]
fn accept_connects_with_overrides() {
    let mut m = login_request();
    m.on_auth(accept(Some(b"robert"), None));
    let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
        panic!("expected a backend plan")
    };
    assert_eq!(plan.addr, "10.0.0.2:110".parse().unwrap());
    assert_eq!(plan.user, b"robert");
    // The override user and the client's own password.
    assert_eq!(backend_commands(&mut plan), vec!["USER robert\r\n", "PASS pw\r\n"]);
    assert!(!m.wants_input());
    m.on_backend(BackendOutcome::LoggedIn {
        client_reply: b"+OK in\r\n".to_vec(),
    });
    assert_eq!(drain(&mut m), vec!["send +OK in\r\n", "relay"]);
    assert!(!m.wants_input());
    assert_eq!(m.feed(b"STAT\r\n"), 0, "relay bytes are not the machine's");
}

#[test]
fn digest_methods_need_auth_pass() {
    for input in [
        format!("APOP bob {DIGEST}\r\n"),
        "AUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n".to_string(),
        "AUTH EXTERNAL Ym9i\r\n".to_string(),
    ] {
        let mut m = machine_with(settings_all());
        m.feed(input.as_bytes());
        let _ = drain(&mut m);
        m.on_auth(accept(None, None));
        assert_eq!(
            drain(&mut m),
            vec!["send -ERR internal server error\r\n", "close AuthFailed"],
            "{input:?}"
        );

        let mut m = machine_with(settings_all());
        m.feed(input.as_bytes());
        let _ = drain(&mut m);
        m.on_auth(accept(None, Some(b"real secret")));
        let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
            panic!("expected a backend plan for {input:?}")
        };
        let user = String::from_utf8_lossy(&plan.user).into_owned();
        assert_eq!(
            backend_commands(&mut plan),
            vec![format!("USER {user}\r\n"), "PASS real secret\r\n".to_string()]
        );
    }
}

#[test]
fn backend_failure_gives_internal_error_or_its_line() {
    let mut m = login_request();
    m.on_auth(accept(None, None));
    let _ = drain(&mut m);
    m.on_backend(BackendOutcome::Failed { client_reply: None });
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR internal server error\r\n", "close BackendFailed"]
    );

    let mut m = login_request();
    m.on_auth(accept(None, None));
    let _ = drain(&mut m);
    m.on_backend(BackendOutcome::Failed {
        client_reply: Some(b"-ERR [AUTH] go away\r\n".to_vec()),
    });
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR [AUTH] go away\r\n", "close BackendFailed"]
    );
}

#[test]
fn reject_without_wait_closes() {
    let mut m = login_request();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Invalid login".to_vec(),
        wait: None,
        error_code: None,
        sasl_error: None,
    }));
    assert_eq!(drain(&mut m), vec!["send -ERR Invalid login\r\n", "close LoginRefused"]);
}

#[test]
fn reject_with_wait_starts_over() {
    let mut m = login_request();
    m.on_auth(Ok(AuthReply::Reject {
        message: b"Try later".to_vec(),
        wait: Some(Duration::from_secs(2)),
        error_code: None,
        sasl_error: None,
    }));
    assert_eq!(drain(&mut m), vec!["wait 2000ms", "send -ERR Try later\r\n"]);
    assert!(m.wants_input());
    // The user is forgotten: PASS alone is out of order.
    m.feed(b"PASS pw2\r\n");
    assert_eq!(drain(&mut m), vec!["send -ERR invalid command\r\n"]);
    m.feed(b"USER bob\r\nPASS pw2\r\n");
    assert_eq!(drain(&mut m), vec!["send +OK\r\n", "auth plain bob:pw2 #2"]);
}

#[test]
fn wait_status_asks_again() {
    let mut m = login_request();
    m.on_auth(Ok(AuthReply::Retry {
        wait: Duration::from_secs(1),
    }));
    assert_eq!(drain(&mut m), vec!["wait 1000ms", "auth plain bob:pw #1"]);
    assert!(!m.wants_input());
    m.on_auth(Ok(AuthReply::Reject {
        message: b"no".to_vec(),
        wait: None,
        error_code: None,
        sasl_error: None,
    }));
    assert_eq!(drain(&mut m), vec!["send -ERR no\r\n", "close LoginRefused"]);
}

#[test]
fn auth_failure_is_internal_error() {
    let mut m = login_request();
    m.on_auth(Err(AuthError::TimedOut));
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR internal server error\r\n", "close AuthFailed"]
    );
}

#[test]
fn answers_out_of_turn_end_the_session() {
    let mut m = machine();
    m.on_auth(accept(None, None));
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR internal server error\r\n", "close BackendFailed"]
    );
    let mut m = login_request();
    m.on_backend(BackendOutcome::Failed { client_reply: None });
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR internal server error\r\n", "close BackendFailed"]
    );
}

fn server(directives: &str) -> ServerConfig {
    crate::config::parse_str(
        &format!(
            "mail {{ auth_http 127.0.0.1:9/a; {directives}\n\
             server {{ listen 127.0.0.1:1110; protocol pop3; server_name mail.example; }} }}"
        ),
        std::path::Path::new("t.conf"),
    )
    .unwrap()
    .servers
    .remove(0)
}

#[test]
fn replies_from_config() {
    let s = Pop3FrontSettings::from_server(&server(""));
    assert_eq!(s, settings_with_limits(settings(), &s));

    let s = Pop3FrontSettings::from_server(&server("pop3_auth external cram-md5 apop plain;"));
    assert_eq!(s, settings_with_limits(settings_all(), &s));

    let s = Pop3FrontSettings::from_server(&server(
        "pop3_capabilities TOP \"RESP-CODES\"; pop3_auth apop; pop3_client_buffer 1k; max_errors 9;",
    ));
    assert_eq!(
        String::from_utf8_lossy(&s.capa_reply),
        "+OK Capability list follows\r\nTOP\r\nRESP-CODES\r\nSASL\r\n.\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&s.auth_reply),
        "+OK methods supported:\r\n.\r\n"
    );
    assert!(s.apop && !s.cram_md5 && !s.external);
    assert_eq!((s.client_buffer, s.max_errors), (1024, 9));
}

/// `want` with the limits of `got`, which come from defaults the test does
/// not pin (they belong to the config module), and its OAuth mechanisms,
/// which this file's settings enable beyond the configuration's (their
/// advertising is checked in `oauth_from_config`).
fn settings_with_limits(want: Pop3FrontSettings, got: &Pop3FrontSettings) -> Pop3FrontSettings {
    Pop3FrontSettings {
        oauth: got.oauth.clone(),
        max_token: got.max_token,
        client_buffer: got.client_buffer,
        max_errors: got.max_errors,
        proxy_buffer: got.proxy_buffer,
        pass_error_message: got.pass_error_message,
        ..want
    }
}

/// nginx's defaults (pop3_auth plain) with `starttls` as given, and this
/// file's limits.
fn settings_in(mode: config::Starttls) -> Pop3FrontSettings {
    let mut server = server("");
    server.starttls = mode;
    Pop3FrontSettings {
        client_buffer: 64,
        max_errors: 3,
        ..Pop3FrontSettings::from_server(&server)
    }
}

/// How far a session has come with TLS when a row starts.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Plaintext, nothing said yet.
    Plain,
    /// STLS answered and its handshake completed.
    AfterStls,
    /// `listen ... ssl`: TLS from the first byte.
    Implicit,
}

fn session(mode: config::Starttls, stage: Stage) -> Pop3Front {
    let tls = matches!(stage, Stage::Implicit);
    let mut m = Pop3Front::new(settings_in(mode), SessionSeed { tls, ..seed() });
    assert_eq!(drain(&mut m), vec!["send +OK POP3 ready\r\n"]);
    if let Stage::AfterStls = stage {
        assert_eq!(m.feed(b"STLS\r\n"), 6);
        assert_eq!(drain(&mut m), vec!["send +OK\r\n", "starttls"]);
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
    const ON: &str = "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN\r\nSTLS\r\n.\r\n";
    // nginx hides USER and SASL while no login is possible.
    const ONLY: &str = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n";
    let rows: &[(config::Starttls, Stage, &str)] = &[
        (Off, Stage::Plain, CAPA_PLAIN),
        (Off, Stage::Implicit, CAPA_PLAIN),
        (On, Stage::Plain, ON),
        (On, Stage::AfterStls, CAPA_PLAIN),
        (On, Stage::Implicit, CAPA_PLAIN),
        (Only, Stage::Plain, ONLY),
        (Only, Stage::AfterStls, CAPA_PLAIN),
        (Only, Stage::Implicit, CAPA_PLAIN),
    ];
    for &(mode, stage, reply) in rows {
        let mut m = session(mode, stage);
        m.feed(b"CAPA\r\n");
        assert_eq!(drain(&mut m), vec![format!("send {reply}")], "{mode:?} {stage:?}");
    }
    // After USER, where STLS is no longer accepted, nginx lists without it.
    let mut m = session(On, Stage::Plain);
    m.feed(b"USER bob\r\nCAPA\r\n");
    assert_eq!(drain(&mut m), vec![format!("send +OK\r\n{CAPA_PLAIN}")]);
}

#[test]
fn stls_transcripts() {
    use config::Starttls::{Off, On, Only};
    const ERR: &[&str] = &["send -ERR invalid command\r\n"];
    const LOGGED_IN: &[&str] = &["send +OK\r\n", "auth plain bob:secret #1"];
    const SASL_LOGGED_IN: &[&str] = &["auth plain bob:secret #1"];
    const STARTED: &[&str] = &["send +OK\r\n", "starttls"];
    let rows: &[(config::Starttls, Stage, &[u8], &[&str])] = &[
        (Off, Stage::Plain, b"STLS\r\n", ERR),
        (On, Stage::Plain, b"STLS\r\n", STARTED),
        (On, Stage::Plain, b"stls\n", STARTED),
        (Only, Stage::Plain, b"STLS\r\n", STARTED),
        // nginx ignores arguments; RFC 2595 has none.
        (On, Stage::Plain, b"STLS now\r\n", ERR),
        // Not after USER (nginx), and the user is forgotten.
        (
            On,
            Stage::Plain,
            b"USER bob\r\nSTLS\r\nPASS secret\r\n",
            &["send +OK\r\n-ERR invalid command\r\n-ERR invalid command\r\n"],
        ),
        // Once private, STLS is an invalid command.
        (On, Stage::AfterStls, b"STLS\r\n", ERR),
        (Only, Stage::AfterStls, b"STLS\r\n", ERR),
        (On, Stage::Implicit, b"STLS\r\n", ERR),
        // `on`: plaintext logins still allowed.
        (On, Stage::Plain, b"USER bob\r\nPASS secret\r\n", LOGGED_IN),
        // `only`: no credentials before TLS, as nginx.
        (
            Only,
            Stage::Plain,
            b"USER bob\r\nPASS secret\r\n",
            &["send -ERR invalid command\r\n-ERR invalid command\r\n"],
        ),
        (Only, Stage::Plain, b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", ERR),
        (Only, Stage::Plain, b"AUTH LOGIN\r\n", ERR),
        (Only, Stage::Plain, b"AUTH\r\n", ERR),
        (
            Only,
            Stage::Plain,
            b"APOP bob b913a602c7eda7a495b4e6e7334d3890\r\n",
            ERR,
        ),
        (Only, Stage::Plain, b"NOOP\r\n", &["send +OK\r\n"]),
        // ... and allowed after it, or with implicit TLS.
        (Only, Stage::AfterStls, b"USER bob\r\nPASS secret\r\n", LOGGED_IN),
        (
            Only,
            Stage::AfterStls,
            b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            SASL_LOGGED_IN,
        ),
        (Only, Stage::Implicit, b"USER bob\r\nPASS secret\r\n", LOGGED_IN),
        (
            Only,
            Stage::Implicit,
            b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
            SASL_LOGGED_IN,
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

/// CVE-2011-0411's class: commands sent in plaintext behind STLS, in the
/// same packet, must never run inside the TLS session.
#[test]
fn pipelined_behind_stls_is_never_executed() {
    for mode in [config::Starttls::On, config::Starttls::Only] {
        let mut m = session(mode, Stage::Plain);
        let input = b"STLS\r\nUSER bob\r\nPASS secret\r\n";
        assert_eq!(m.feed(input), 6, "only the STLS line is consumed");
        assert_eq!(drain(&mut m), vec!["send +OK\r\n", "starttls"]);
        assert!(!m.wants_input());
        assert_eq!(m.feed(&input[6..]), 0);
        assert_eq!(drain(&mut m), Vec::<String>::new());
        m.on_tls_started();
        assert_eq!(drain(&mut m), Vec::<String>::new());
        // Had the USER survived, this PASS would log in; it is invalid.
        m.feed(b"PASS secret\r\n");
        assert_eq!(drain(&mut m), vec!["send -ERR invalid command\r\n"]);
        m.feed(b"USER bob\r\nPASS secret\r\n");
        assert_eq!(drain(&mut m), vec!["send +OK\r\n", "auth plain bob:secret #1"]);
    }
}

#[test]
fn tls_started_out_of_turn_ends_the_session() {
    let mut m = session(config::Starttls::On, Stage::Plain);
    m.on_tls_started();
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR internal server error\r\n", "close BackendFailed"]
    );
}

/// The split property across STLS: a script that ends with it (or
/// pipelines behind it) gives the same steps however split, and none past
/// the handshake; the private session's script likewise.
#[test]
fn split_anywhere_around_stls() {
    let on = || session(config::Starttls::On, Stage::Plain);
    let whole = crate::protocol::same_steps_however_split(
        b"CAPA\r\nSTLS\r\nUSER bob\r\nPASS secret\r\n",
        on,
        Pop3Front::feed,
        drain,
    );
    assert!(whole.ends_with(".\r\n+OK\r\n[starttls]"), "{whole}");
    let after = || session(config::Starttls::Only, Stage::AfterStls);
    let whole = crate::protocol::same_steps_however_split(
        b"CAPA\r\nUSER bob\r\nPASS secret\r\n",
        after,
        Pop3Front::feed,
        drain,
    );
    assert!(whole.ends_with("[auth plain bob:secret #1]"), "{whole}");
}

/// The first property of every machine: however the input is split across
/// reads, the steps are the same.
#[test]
fn split_anywhere_same_steps() {
    type Settings = fn() -> Pop3FrontSettings;
    let scripts: &[(&[u8], Settings)] = &[
        (b"CAPA\r\nNOOP\r\nbad\r\nUSER bob\r\nPASS secret\r\n", settings),
        (b"AUTH\r\nAUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\n", settings),
        (
            b"AUTH CRAM-MD5\r\n*\r\nAUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n",
            settings_all,
        ),
        (b"APOP bob b913a602c7eda7a495b4e6e7334d3890\r\n", settings_all),
    ];
    for &(script, settings) in scripts {
        let whole =
            crate::protocol::same_steps_however_split(script, || machine_with(settings()), Pop3Front::feed, drain);
        assert!(whole.contains("[auth "), "{whole}");
    }
}

/// The split property for generated scripts and cut points, and the bound
/// on what the machine leaves to the driver while it reads.
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::{strategy, Split};

    const WORDS: &[&[u8]] = &[
        b"USER bob\r\n",
        b"PASS secret\r\n",
        b"CAPA\r\n",
        b"NOOP\r\n",
        b"AUTH\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
        b"AGJvYgBzZWNyZXQ=\r\n",
        b"AUTH LOGIN\r\n",
        b"Ym9i\r\n",
        b"c2VjcmV0\r\n",
        b"*\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"AUTH EXTERNAL\r\n",
        b"APOP bob b913a602c7eda7a495b4e6e7334d3890\r\n",
        b"QUIT\r\n",
        b"STLS\r\n",
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
    fn drain_refusing(m: &mut Pop3Front) -> Vec<String> {
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
        check_from(&|| machine_with(settings_all()), script, cuts)?;
        check_from(&|| session(config::Starttls::On, Stage::Plain), script, cuts)?;
        check_from(&|| session(config::Starttls::Only, Stage::Plain), script, cuts)
    }

    fn check_from(start: &dyn Fn() -> Pop3Front, script: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
        let split = Split {
            start,
            feed: Pop3Front::feed,
            render: &drain_refusing,
            reading: Pop3Front::wants_input,
            limit: oauth::line_limit(settings_all().client_buffer, settings_all().max_token),
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
    let rows: Vec<(String, Vec<String>)> = vec![
        (
            format!("AUTH OAUTHBEARER {RFC7628_IR}\r\n"),
            vec![format!("auth oauthbearer user@example.com:{RFC7628_TOKEN} #1")],
        ),
        (
            format!("auth xoauth2 {xoauth2}\r\n"),
            vec!["auth xoauth2 bob:TOKEN #1".to_string()],
        ),
        (
            format!("AUTH XOAUTH2\r\n{xoauth2}\r\n"),
            vec!["send + \r\n".to_string(), "auth xoauth2 bob:TOKEN #1".to_string()],
        ),
        (
            "AUTH OAUTHBEARER\r\n*\r\n".to_string(),
            vec!["send + \r\n-ERR authentication cancelled\r\n".to_string()],
        ),
        (
            format!(
                "AUTH OAUTHBEARER {}\r\n",
                b64(b"p=tls-unique,,\x01auth=Bearer T\x01\x01")
            ),
            vec!["send -ERR invalid command\r\n".to_string()],
        ),
        (
            "AUTH XOAUTH2 x y\r\n".to_string(),
            vec!["send -ERR invalid command\r\n".to_string()],
        ),
    ];
    for (input, want) in rows {
        let (used, steps) = run(input.as_bytes());
        assert_eq!(steps, want, "input {input:?}");
        assert_eq!(used, input.len(), "input {input:?}");
    }
}

#[test]
fn oauth_from_config() {
    let s = Pop3FrontSettings::from_server(&server("pop3_auth plain xoauth2 oauthbearer;"));
    assert_eq!(
        String::from_utf8_lossy(&s.capa_reply),
        "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN OAUTHBEARER XOAUTH2\r\n.\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&s.auth_reply),
        "+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nOAUTHBEARER\r\nXOAUTH2\r\n.\r\n"
    );
    let s = Pop3FrontSettings::from_server(&server(""));
    assert!(s.oauth.is_empty());
    assert_eq!(s.max_token, 65536);
}

fn oauth_request() -> Pop3Front {
    let mut m = machine();
    m.feed(format!("AUTH OAUTHBEARER {RFC7628_IR}\r\n").as_bytes());
    let _ = drain(&mut m);
    m
}

fn reject(wait: Option<u64>, sasl_error: Option<&str>) -> Result<AuthReply, AuthError> {
    Ok(AuthReply::Reject {
        message: b"[AUTH] not authorized".to_vec(),
        wait: wait.map(Duration::from_secs),
        error_code: None,
        sasl_error: sasl_error.map(|e| e.as_bytes().to_vec()),
    })
}

#[test]
fn oauth_failure_exchange() {
    let mut m = oauth_request();
    m.on_auth(reject(None, Some(RFC7628_ERROR)));
    assert_eq!(drain(&mut m), vec![format!("send + {RFC7628_ERROR}\r\n")]);
    m.feed(b"AQ==\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["send -ERR [AUTH] not authorized\r\n", "close LoginRefused"]
    );

    let mut m = oauth_request();
    m.on_auth(reject(Some(1), None));
    let challenge = b64(oauth::DEFAULT_ERROR_JSON.as_bytes());
    assert_eq!(drain(&mut m), vec![format!("send + {challenge}\r\n")]);
    m.feed(b"\r\nNOOP\r\n");
    assert_eq!(
        drain(&mut m),
        vec!["wait 1000ms", "send -ERR [AUTH] not authorized\r\n+OK\r\n"]
    );
}

#[test]
fn oauth_token_bound() {
    let s = settings();
    let limit = oauth::line_limit(s.client_buffer, s.max_token);
    let token = "T".repeat(100);
    let fits = format!(
        "AUTH XOAUTH2 {}\r\n",
        b64(format!("user=bob\x01auth=Bearer {token}\x01\x01").as_bytes())
    );
    assert!(fits.len() > s.client_buffer);
    assert_eq!(run(fits.as_bytes()).1, vec![format!("auth xoauth2 bob:{token} #1")]);
    let over = format!(
        "AUTH XOAUTH2 {}\r\n",
        b64(format!("user=bob\x01auth=Bearer {token}T\x01\x01").as_bytes())
    );
    assert_eq!(
        run(over.as_bytes()).1,
        vec!["send -ERR token too long\r\n", "close CommandTooLong"]
    );
    let mut endless = b"AUTH OAUTHBEARER ".to_vec();
    endless.resize(limit, b'A');
    assert_eq!(
        run(&endless),
        (
            0,
            vec![
                "send -ERR token too long\r\n".to_string(),
                "close CommandTooLong".to_string()
            ]
        )
    );
}

#[test]
fn oauth_token_passed_to_the_backend() {
    let mut m = oauth_request();
    m.on_auth(Ok(AuthReply::Accept {
        backend: "10.0.0.2:110".parse().unwrap(),
        user: None,
        pass: Some(Secret::new(b"BACKENDTOKEN".to_vec())),
        backend_tls: None,
        backend_method: Some(OAuthMechanism::OAuthBearer),
    }));
    let Some(Step::ConnectBackend(mut plan)) = m.poll() else {
        panic!("expected a backend plan")
    };
    assert_eq!(plan.login.feed(b"+OK hi\r\n"), 8);
    let want = format!(
        "AUTH OAUTHBEARER {}\r\n",
        b64(b"n,a=user@example.com,\x01auth=Bearer BACKENDTOKEN\x01\x01")
    );
    assert_eq!(plan.login.poll(), Some(BackendStep::Send(want.into_bytes())));
}

#[test]
fn oauth_split_anywhere_same_steps() {
    let script = format!("CAPA\r\nAUTH OAUTHBEARER {RFC7628_IR}\r\n");
    let prompt = format!("AUTH XOAUTH2\r\n{}\r\n", b64(b"user=bob\x01auth=Bearer TOKEN\x01\x01"));
    for script in [script, prompt] {
        let whole = crate::protocol::same_steps_however_split(script.as_bytes(), machine, Pop3Front::feed, drain);
        assert!(whole.contains("[auth "), "{whole}");
    }
}
