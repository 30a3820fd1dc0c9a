//! Whole-file tests: each directive's happy path, inheritance, defaults, and
//! every error with its `file:line`, as rows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const FILE: &str = "/etc/postern/postern.conf";

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(text, Path::new(FILE))
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- in ---\n{text}"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("accepted: {config:?}\n--- in ---\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn at(line: u32) -> Location {
    Location {
        file: PathBuf::from(FILE),
        line,
    }
}

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// One IMAP server on 143 with `mail`-level and `server`-level lines added,
/// and an `auth_http` at mail level unless they have one. The `server`
/// directive is on line 3.
fn one_server(mail_lines: &str, server_lines: &str) -> ServerConfig {
    let has_auth_http = mail_lines.contains("auth_http ") || server_lines.contains("auth_http ");
    let auth_http = if has_auth_http {
        ""
    } else {
        "auth_http 127.0.0.1:9000/auth;"
    };
    let text = format!(
        "mail {{\n    {auth_http}\n    server {{\n        listen 143;\n        \
         {server_lines}\n    }}\n    {mail_lines}\n}}\n"
    );
    let mut config = ok(&text);
    assert_eq!(config.servers.len(), 1);
    config.servers.remove(0)
}

fn main_with(lines: &str) -> MainConfig {
    ok(lines).main
}

/// What the machine's host name should come out as, read independently of
/// the code under test.
fn expected_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[test]
fn minimal_config_gets_exactly_the_defaults() {
    let config = ok("mail {\n  auth_http 127.0.0.1:9000/auth;\n  server { listen 143; }\n}\n");
    assert_eq!(
        config,
        Config {
            file: PathBuf::from(FILE),
            main: MainConfig {
                worker_processes: Workers::Auto,
                error_log: vec![ErrorLog {
                    target: LogTarget::Stderr,
                    level: LogLevel::Error,
                }],
                pid: None,
                worker_connections: 512,
                worker_rlimit_nofile: None,
                worker_shutdown_timeout: None,
                user: None,
                metrics_listen: None,
            },
            servers: vec![ServerConfig {
                location: at(3),
                listen: vec![Listen {
                    addr: ListenAddr::Tcp(sa("0.0.0.0:143")),
                    location: at(3),
                    params: ListenParams {
                        bind: false,
                        backlog: 511,
                        rcvbuf: None,
                        sndbuf: None,
                        ipv6only: true,
                        keepalive: None,
                        ssl: false,
                        proxy_protocol: false,
                    },
                }],
                protocol: Protocol::Imap,
                server_name: expected_hostname(),
                timeout: Duration::from_secs(60),
                auth_http: AuthHttp {
                    target: AuthHttpTarget::Tcp(sa("127.0.0.1:9000")),
                    host: "127.0.0.1".to_string(),
                    uri: "/auth".to_string(),
                },
                auth_http_timeout: Duration::from_secs(60),
                error_log: vec![],
                auth_http_keepalive: 0,
                auth_http_headers: Vec::new(),
                proxy_pass_error_message: false,
                so_keepalive: false,
                max_errors: 5,
                oauth_max_token_size: 65536,
                proxy_buffer: 4096,
                proxy_timeout: Duration::from_secs(24 * 3600),
                proxy_dead_peer_timeout: Some(Duration::from_secs(300)),
                client_preauth_limit: 0,
                auth_http_concurrency: 0,
                auth_http_queue: 128,
                auth_fail_limit: None,
                resolver: None,
                resolver_timeout: Duration::from_secs(30),
                imap: ImapSettings {
                    capabilities: vec!["IMAP4".to_string(), "IMAP4rev1".to_string(), "UIDPLUS".to_string()],
                    auth: vec![AuthMethod::Plain],
                    client_buffer: 4096,
                    id_forward: false,
                },
                pop3: Pop3Settings {
                    capabilities: vec!["TOP".to_string(), "USER".to_string(), "UIDL".to_string()],
                    auth: vec![AuthMethod::Plain],
                    client_buffer: 128,
                },
                smtp: SmtpSettings {
                    capabilities: Vec::new(),
                    auth: vec![AuthMethod::Plain, AuthMethod::Login],
                    client_buffer: 4096,
                    greeting_delay: Duration::ZERO,
                    xclient: true,
                    proxy_smtp_auth: false,
                },
                starttls: Starttls::Off,
                ssl: TlsSettings {
                    certificates: Vec::new(),
                    certificate_keys: Vec::new(),
                    protocols: vec![TlsVersion::V1_2, TlsVersion::V1_3],
                    ciphers: "HIGH:!aNULL:!MD5".to_string(),
                    prefer_server_ciphers: false,
                    ecdh_curve: "auto".to_string(),
                    session_cache: SessionCache::None,
                    session_tickets: true,
                    session_timeout: Duration::from_secs(300),
                    verify_client: VerifyClient::Off,
                    verify_depth: 1,
                    client_certificate: None,
                    trusted_certificate: None,
                    crl: None,
                },
                auth_http_pass_client_cert: false,
                proxy_ssl: ProxyTls {
                    enabled: false,
                    verify: false,
                    trusted_certificate: None,
                    name: None,
                },
                proxy_protocol: SendProxyProtocol::Off,
                set_real_ip_from: Vec::new(),
            }],
            warnings: Vec::new(),
        }
    );
}

#[test]
fn ignored_directives_become_warnings() {
    let config = ok("events {\n  use epoll;\n  multi_accept on;\n}\n");
    assert_eq!(config.warnings.len(), 2);
    assert!(
        config.warnings[0].starts_with("\"use\" directive is ignored: "),
        "{:?}",
        config.warnings
    );
    assert!(
        config.warnings[1].ends_with(&format!("in {FILE}:3")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn no_mail_block_gives_no_servers() {
    let config = ok("worker_processes 2;\n");
    assert!(config.servers.is_empty());
    assert_eq!(config.main.worker_processes, Workers::Count(2));
    assert!(ok("").servers.is_empty());
    assert!(ok("mail { timeout 5s; }").servers.is_empty());
}

/// A row's expectation on the parsed settings.
type MainCheck = fn(&MainConfig) -> bool;
type ServerCheck = fn(&ServerConfig) -> bool;

#[test]
fn main_directives() {
    let rows: &[(&str, MainCheck)] = &[
        ("worker_processes 4;", |m| m.worker_processes == Workers::Count(4)),
        ("worker_processes auto;", |m| m.worker_processes == Workers::Auto),
        ("error_log stderr;", |m| {
            m.error_log[0]
                == ErrorLog {
                    target: LogTarget::Stderr,
                    level: LogLevel::Error,
                }
        }),
        ("error_log stderr debug;", |m| m.error_log[0].level == LogLevel::Debug),
        ("error_log /var/log/postern.log emerg;", |m| {
            m.error_log[0]
                == ErrorLog {
                    target: LogTarget::File(PathBuf::from("/var/log/postern.log")),
                    level: LogLevel::Emerg,
                }
        }),
        ("error_log logs/error.log info;", |m| {
            m.error_log[0].target == LogTarget::File(PathBuf::from("/etc/postern/logs/error.log"))
                && m.error_log[0].level == LogLevel::Info
        }),
        ("pid /run/postern.pid;", |m| {
            m.pid == Some(PathBuf::from("/run/postern.pid"))
        }),
        ("pid run/postern.pid;", |m| {
            m.pid == Some(PathBuf::from("/etc/postern/run/postern.pid"))
        }),
        ("daemon off;", |m| m.pid.is_none()),
        ("load_module modules/ngx_mail_module.so;", |m| m.pid.is_none()),
        (
            "load_module /usr/lib/nginx/modules/ngx_mail_module.so;\n\
             load_module modules/ngx_mail_module.so;",
            |m| m.pid.is_none(),
        ),
        ("events { worker_connections 1024; }", |m| m.worker_connections == 1024),
        ("worker_rlimit_nofile 65536;", |m| m.worker_rlimit_nofile == Some(65536)),
        ("worker_rlimit_nofile 1;", |m| m.worker_rlimit_nofile == Some(1)),
        ("user www-data;", |m| {
            m.user
                == Some(RunAs {
                    user: "www-data".into(),
                    group: "www-data".into(),
                })
        }),
        ("user nobody nogroup;", |m| {
            m.user
                == Some(RunAs {
                    user: "nobody".into(),
                    group: "nogroup".into(),
                })
        }),
        ("worker_shutdown_timeout 10s;", |m| {
            m.worker_shutdown_timeout == Some(Duration::from_secs(10))
        }),
        ("worker_processes 1;", |m| m.worker_shutdown_timeout.is_none()),
        ("worker_processes 1;", |m| m.worker_rlimit_nofile.is_none()),
        ("events { }", |m| m.worker_connections == 512),
        (
            "events {\n use epoll;\n multi_accept on;\n accept_mutex off;\n \
             accept_mutex_delay 500ms;\n}",
            |m| m.worker_connections == 512,
        ),
    ];
    for (text, check) in rows {
        let main = main_with(text);
        assert!(check(&main), "{text}: {main:?}");
    }
}

#[test]
fn server_directives() {
    let rows: &[(&str, ServerCheck)] = &[
        ("server_name mail.example.com;", |s| s.server_name == "mail.example.com"),
        ("server_name \"\";", |s| s.server_name == expected_hostname()),
        ("timeout 5m;", |s| s.timeout == Duration::from_secs(300)),
        ("timeout 1h30m;", |s| s.timeout == Duration::from_secs(5400)),
        ("timeout 0;", |s| s.timeout == Duration::ZERO),
        ("auth_http_timeout 2500ms;", |s| {
            s.auth_http_timeout == Duration::from_millis(2500)
        }),
        ("proxy_pass_error_message on;", |s| s.proxy_pass_error_message),
        ("auth_http_keepalive 8;", |s| s.auth_http_keepalive == 8),
        ("client_preauth_limit 3;", |s| s.client_preauth_limit == 3),
        ("auth_http_concurrency 16;", |s| s.auth_http_concurrency == 16),
        ("auth_http_queue 0;", |s| s.auth_http_queue == 0),
        ("auth_fail_limit 5 per 1m;", |s| {
            s.auth_fail_limit == Some((5, Duration::from_secs(60)))
        }),
        ("auth_fail_limit off;", |s| s.auth_fail_limit.is_none()),
        ("proxy_dead_peer_timeout off;", |s| s.proxy_dead_peer_timeout.is_none()),
        ("proxy_dead_peer_timeout 90s;", |s| {
            s.proxy_dead_peer_timeout == Some(Duration::from_secs(90))
        }),
        ("proxy_pass_error_message OFF;", |s| !s.proxy_pass_error_message),
        ("imap_capabilities IMAP4rev1 \"IDLE\" 'LITERAL+';", |s| {
            s.imap.capabilities == ["IMAP4rev1", "IDLE", "LITERAL+"]
        }),
        ("imap_capabilities A;\nimap_capabilities B C;", |s| {
            s.imap.capabilities == ["A", "B", "C"]
        }),
        ("imap_auth login plain;", |s| {
            s.imap.auth == [AuthMethod::Plain, AuthMethod::Login]
        }),
        ("imap_auth login;", |s| s.imap.auth == [AuthMethod::Login]),
        ("imap_auth LOGIN login;\nimap_auth PLAIN;", |s| {
            s.imap.auth == [AuthMethod::Plain, AuthMethod::Login]
        }),
        ("imap_auth cram-md5 EXTERNAL plain login;", |s| {
            s.imap.auth
                == [
                    AuthMethod::Plain,
                    AuthMethod::Login,
                    AuthMethod::CramMd5,
                    AuthMethod::External,
                ]
        }),
        ("imap_auth external;\nimap_auth Cram-MD5;", |s| {
            s.imap.auth == [AuthMethod::CramMd5, AuthMethod::External]
        }),
        ("imap_client_buffer 8k;", |s| s.imap.client_buffer == 8192),
        ("imap_client_buffer 100;", |s| s.imap.client_buffer == 100),
        ("imap_id_forward on;", |s| s.imap.id_forward),
        ("imap_id_forward off;", |s| !s.imap.id_forward),
        ("pop3_capabilities LAST TOP USER PIPELINING UIDL;", |s| {
            s.pop3.capabilities == ["LAST", "TOP", "USER", "PIPELINING", "UIDL"]
        }),
        ("pop3_capabilities TOP;\npop3_capabilities \"RESP-CODES\" 'X Y';", |s| {
            s.pop3.capabilities == ["TOP", "RESP-CODES", "X Y"]
        }),
        ("pop3_auth plain apop cram-md5;", |s| {
            s.pop3.auth == [AuthMethod::Plain, AuthMethod::Apop, AuthMethod::CramMd5]
        }),
        ("pop3_auth external CRAM-MD5 APOP plain;", |s| {
            s.pop3.auth
                == [
                    AuthMethod::Plain,
                    AuthMethod::Apop,
                    AuthMethod::CramMd5,
                    AuthMethod::External,
                ]
        }),
        ("pop3_auth apop;", |s| s.pop3.auth == [AuthMethod::Apop]),
        ("pop3_auth apop apop;\npop3_auth plain;", |s| {
            s.pop3.auth == [AuthMethod::Plain, AuthMethod::Apop]
        }),
        ("pop3_client_buffer 1k;", |s| s.pop3.client_buffer == 1024),
        ("pop3_client_buffer 1;", |s| s.pop3.client_buffer == 1),
        (
            "smtp_capabilities \"SIZE 10485760\" ENHANCEDSTATUSCODES 8BITMIME DSN;",
            |s| s.smtp.capabilities == ["SIZE 10485760", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"],
        ),
        ("smtp_capabilities PIPELINING;\nsmtp_capabilities 'SIZE 1';", |s| {
            s.smtp.capabilities == ["PIPELINING", "SIZE 1"]
        }),
        ("smtp_auth login plain cram-md5;", |s| {
            s.smtp.auth == [AuthMethod::Plain, AuthMethod::Login, AuthMethod::CramMd5]
        }),
        ("smtp_auth none external cram-md5 login plain;", |s| {
            s.smtp.auth
                == [
                    AuthMethod::Plain,
                    AuthMethod::Login,
                    AuthMethod::CramMd5,
                    AuthMethod::External,
                    AuthMethod::None,
                ]
        }),
        ("smtp_auth NONE;", |s| s.smtp.auth == [AuthMethod::None]),
        ("smtp_auth login;\nsmtp_auth external;", |s| {
            s.smtp.auth == [AuthMethod::Login, AuthMethod::External]
        }),
        ("smtp_client_buffer 16k;", |s| s.smtp.client_buffer == 16384),
        ("smtp_greeting_delay 500ms;", |s| {
            s.smtp.greeting_delay == Duration::from_millis(500)
        }),
        ("smtp_greeting_delay 2;", |s| {
            s.smtp.greeting_delay == Duration::from_secs(2)
        }),
        ("xclient off;", |s| !s.smtp.xclient),
        ("xclient ON;", |s| s.smtp.xclient),
        ("proxy_smtp_auth on;", |s| s.smtp.proxy_smtp_auth),
        ("proxy_smtp_auth off;", |s| !s.smtp.proxy_smtp_auth),
        ("protocol imap;", |s| s.protocol == Protocol::Imap),
        ("protocol pop3;", |s| s.protocol == Protocol::Pop3),
        ("protocol smtp;", |s| s.protocol == Protocol::Smtp),
        ("so_keepalive on;", |s| s.so_keepalive),
        ("so_keepalive off;", |s| !s.so_keepalive),
        ("max_errors 1;", |s| s.max_errors == 1),
        ("max_errors 100;", |s| s.max_errors == 100),
        ("oauth_max_token_size 1m;", |s| s.oauth_max_token_size == 1 << 20),
        ("imap_auth xoauth2 plain OAUTHBEARER;", |s| {
            s.imap.auth == [AuthMethod::Plain, AuthMethod::OAuthBearer, AuthMethod::XOAuth2]
        }),
        ("pop3_auth xoauth2;", |s| s.pop3.auth == [AuthMethod::XOAuth2]),
        ("smtp_auth none oauthbearer;", |s| {
            s.smtp.auth == [AuthMethod::OAuthBearer, AuthMethod::None]
        }),
        ("resolver off;", |s| {
            s.resolver.is_none() && s.resolver_timeout == Duration::from_secs(30)
        }),
        ("resolver 127.0.0.1;", |s| {
            s.resolver
                == Some(ResolverConfig {
                    servers: vec!["127.0.0.1:53".parse().unwrap()],
                    valid: None,
                    ipv4: true,
                    ipv6: true,
                })
        }),
        ("resolver 127.0.0.1:5353 [::1] [::1]:54 ::2 valid=30s ipv6=off;", |s| {
            s.resolver
                == Some(ResolverConfig {
                    servers: ["127.0.0.1:5353", "[::1]:53", "[::1]:54", "[::2]:53"]
                        .iter()
                        .map(|a| a.parse().unwrap())
                        .collect(),
                    valid: Some(Duration::from_secs(30)),
                    ipv4: true,
                    ipv6: false,
                })
        }),
        ("resolver_timeout 2s;", |s| s.resolver_timeout == Duration::from_secs(2)),
        ("proxy_buffer 16k;", |s| s.proxy_buffer == 16384),
        ("proxy_buffer 1;", |s| s.proxy_buffer == 1),
        ("proxy_timeout 10m;", |s| s.proxy_timeout == Duration::from_secs(600)),
        ("proxy_timeout 0;", |s| s.proxy_timeout == Duration::ZERO),
        ("auth_http_header X-Auth-Key \"secret string\";", |s| {
            s.auth_http_headers == [("X-Auth-Key".to_string(), "secret string".to_string())]
        }),
        (
            "auth_http_header X-A 1;\nauth_http_header X-B \"\";\nauth_http_header X-A 2;",
            |s| {
                s.auth_http_headers
                    == [
                        ("X-A".to_string(), "1".to_string()),
                        ("X-B".to_string(), String::new()),
                        ("X-A".to_string(), "2".to_string()),
                    ]
            },
        ),
        ("auth_http_header !#$%&'*+-.^_`|~09az \"a\tb é\";", |s| {
            s.auth_http_headers == [("!#$%&'*+-.^_`|~09az".to_string(), "a\tb é".to_string())]
        }),
        ("auth_http unix:/run/auth.sock:/login;", |s| {
            s.auth_http
                == AuthHttp {
                    target: AuthHttpTarget::Unix(PathBuf::from("/run/auth.sock")),
                    host: "localhost".to_string(),
                    uri: "/login".to_string(),
                }
        }),
    ];
    for (line, check) in rows {
        let server = one_server("", line);
        assert!(check(&server), "server level, {line}: {server:?}");
        // The same at mail level is inherited; `protocol` is server-only.
        if !line.starts_with("protocol") {
            let server = one_server(line, "");
            assert!(check(&server), "mail level, {line}: {server:?}");
        }
    }
}

#[test]
fn listen_forms() {
    let text = "mail {\n auth_http 127.0.0.1:9000;\n server {\n  protocol imap;\n  \
                listen *:1143;\n  listen 1144;\n  listen [::1]:1145;\n  listen [::]:1146;\n  \
                listen 127.0.0.2:1147;\n }\n}\n";
    let server = &ok(text).servers[0];
    let got: Vec<(SocketAddr, u32)> = server
        .listen
        .iter()
        .map(|l| match &l.addr {
            ListenAddr::Tcp(addr) => (*addr, l.location.line),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (sa("0.0.0.0:1143"), 5),
            (sa("0.0.0.0:1144"), 6),
            (sa("[::1]:1145"), 7),
            (sa("[::]:1146"), 8),
            (sa("127.0.0.2:1147"), 9),
        ]
    );
}

#[test]
fn listen_on_a_host_name_takes_every_address() {
    let server = one_server("", "listen localhost:1148;");
    let ports: Vec<u16> = server
        .listen
        .iter()
        .filter_map(|l| match &l.addr {
            ListenAddr::Tcp(addr) if addr.ip().is_loopback() => Some(addr.port()),
            _ => None,
        })
        .collect();
    assert!(!ports.is_empty() && ports.iter().all(|&p| p == 1148), "{server:?}");
    assert_eq!(server.listen.len(), ports.len() + 1);
}

#[test]
fn auth_http_forms() {
    let rows: &[(&str, AuthHttpTarget, &str, &str)] = &[
        (
            "127.0.0.1:9000/auth",
            AuthHttpTarget::Tcp(sa("127.0.0.1:9000")),
            "127.0.0.1",
            "/auth",
        ),
        (
            "http://127.0.0.1/",
            AuthHttpTarget::Tcp(sa("127.0.0.1:80")),
            "127.0.0.1",
            "/",
        ),
        (
            "unix:/tmp/a.sock:/auth",
            AuthHttpTarget::Unix(PathBuf::from("/tmp/a.sock")),
            "localhost",
            "/auth",
        ),
        (
            "unix:/tmp/a.sock",
            AuthHttpTarget::Unix(PathBuf::from("/tmp/a.sock")),
            "localhost",
            "/",
        ),
    ];
    for (url, target, host, uri) in rows {
        let server = one_server("", &format!("auth_http {url};"));
        let want = AuthHttp {
            target: target.clone(),
            host: host.to_string(),
            uri: uri.to_string(),
        };
        assert_eq!(server.auth_http, want, "{url}");
    }
    let server = one_server("", "auth_http localhost:9000/cgi-bin/nginxauth.cgi;");
    assert_eq!(server.auth_http.host, "localhost");
    assert!(matches!(
        server.auth_http.target,
        AuthHttpTarget::Tcp(addr) if addr.ip().is_loopback() && addr.port() == 9000
    ));
}

#[test]
fn server_settings_override_mail_settings() {
    let text = "mail {\n\
                timeout 10s;\n\
                imap_capabilities A B;\n\
                auth_http 127.0.0.1:9000/mail;\n\
                server { listen 143; }\n\
                server { listen 993; timeout 20s; imap_capabilities C; auth_http 127.0.0.1:9001/s; }\n\
                server_name mail.example.org;\n\
                }\n";
    let config = ok(text);
    let [first, second] = config.servers.as_slice() else {
        panic!("{config:?}");
    };
    assert_eq!(first.timeout, Duration::from_secs(10));
    assert_eq!(first.imap.capabilities, ["A", "B"]);
    assert_eq!(first.auth_http.uri, "/mail");
    assert_eq!(second.timeout, Duration::from_secs(20));
    assert_eq!(second.imap.capabilities, ["C"]);
    assert_eq!(second.auth_http.uri, "/s");
    // Set after the servers in the file, inherited all the same (nginx).
    assert_eq!(first.server_name, "mail.example.org");
    assert_eq!(second.server_name, "mail.example.org");
    // Neither level set it: the default.
    assert_eq!(second.auth_http_timeout, Duration::from_secs(60));
}

#[test]
fn protocol_inference() {
    let rows: &[(&str, Result<Protocol, &str>)] = &[
        ("listen 143;", Ok(Protocol::Imap)),
        ("listen 993;", Ok(Protocol::Imap)),
        ("listen 127.0.0.1:143;", Ok(Protocol::Imap)),
        ("listen 8143;\n listen 143;", Ok(Protocol::Imap)),
        ("listen 110;\n protocol imap;", Ok(Protocol::Imap)),
        ("listen 8143;\n protocol imap;", Ok(Protocol::Imap)),
        (
            "listen 8143;",
            Err("unknown mail protocol for server in /etc/postern/postern.conf:3"),
        ),
        ("listen 110;", Ok(Protocol::Pop3)),
        ("listen 995;", Ok(Protocol::Pop3)),
        ("listen 25;", Ok(Protocol::Smtp)),
        ("listen 465;", Ok(Protocol::Smtp)),
        ("listen 8000;\n listen 587;", Ok(Protocol::Smtp)),
        ("listen 587;\n listen 110;", Ok(Protocol::Smtp)),
        ("listen unix:/run/pop3.sock;\n listen [::1]:995;", Ok(Protocol::Pop3)),
        ("listen 143;\n protocol pop3;", Ok(Protocol::Pop3)),
        ("protocol smtp;\n listen 143;", Ok(Protocol::Smtp)),
        ("protocol pop3;\n listen unix:/run/pop3.sock;", Ok(Protocol::Pop3)),
    ];
    for (lines, want) in rows {
        let text = format!("mail {{\n auth_http 127.0.0.1:9000;\n server {{\n {lines}\n }}\n}}\n");
        let got = parse(&text).map(|c| c.servers[0].protocol).map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_string), "{lines}");
    }
}

#[test]
fn errors_with_file_and_line() {
    let rows: &[(&str, &str)] = &[
        // names and places
        ("foo 1;", "unknown directive \"foo\" in /etc/postern/postern.conf:1"),
        (
            "mail {\n  tiemout 5s;\n}",
            "unknown directive \"tiemout\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n  ssl_password_file /etc/pass;\n}",
            "\"ssl_password_file\" directive is not supported: encrypted private keys are not supported: \
             decrypt the key in /etc/postern/postern.conf:2",
        ),
        (
            "listen 143;",
            "\"listen\" directive is not allowed here in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n protocol imap;\n}",
            "\"protocol\" directive is not allowed here in /etc/postern/postern.conf:2",
        ),
        (
            "server { }",
            "\"server\" directive is not allowed here in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n server {\n  server { }\n }\n}",
            "\"server\" directive is not allowed here in /etc/postern/postern.conf:3",
        ),
        (
            "timeout 5s;",
            "\"timeout\" directive is not allowed here in /etc/postern/postern.conf:1",
        ),
        (
            "events {\n timeout 5s;\n}",
            "\"timeout\" directive is not allowed here in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n worker_connections 5;\n}",
            "\"worker_connections\" directive is not allowed here in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n error_log /var/log/mail.log info warn;\n}",
            "duplicate log level \"warn\" in /etc/postern/postern.conf:2",
        ),
        (
            "include /nonexistent/mail.conf;",
            "open() \"/nonexistent/mail.conf\" failed (No such file or directory (os error 2)) in \
             /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n include /nonexistent/servers.conf;\n}",
            "open() \"/nonexistent/servers.conf\" failed (No such file or directory (os error 2)) in \
             /etc/postern/postern.conf:2",
        ),
        (
            "include;",
            "invalid number of arguments in \"include\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "include a b;",
            "invalid number of arguments in \"include\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "include a { }",
            "directive \"include\" is not terminated by \";\" in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n proxy_protocol v3;\n}",
            "invalid value \"v3\" in \"proxy_protocol\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "user a b c;",
            "invalid number of arguments in \"user\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "worker_priority -5;",
            "\"worker_priority\" directive is not supported yet in /etc/postern/postern.conf:1",
        ),
        (
            "events {\n debug_connection 127.0.0.1;\n}",
            "\"debug_connection\" directive is not supported yet in /etc/postern/postern.conf:2",
        ),
        (
            "http {\n server { listen 80; }\n}",
            "\"http\" directive is not supported: Postern serves mail only in /etc/postern/postern.conf:1",
        ),
        (
            "stream { }",
            "\"stream\" directive is not supported: Postern serves mail only in /etc/postern/postern.conf:1",
        ),
        // form
        (
            "mail;",
            "directive \"mail\" has no opening \"{\" in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n timeout 5s { }\n}",
            "directive \"timeout\" is not terminated by \";\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail x { }",
            "invalid number of arguments in \"mail\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n timeout;\n}",
            "invalid number of arguments in \"timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n timeout 1s 2s;\n}",
            "invalid number of arguments in \"timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n server_name a b;\n}",
            "invalid number of arguments in \"server_name\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_capabilities;\n}",
            "invalid number of arguments in \"imap_capabilities\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "error_log a b c;",
            "invalid log level \"b\" in /etc/postern/postern.conf:1",
        ),
        (
            "events {\n use;\n}",
            "invalid number of arguments in \"use\" directive in /etc/postern/postern.conf:2",
        ),
        // duplicates
        (
            "mail {\n timeout 1s;\n timeout 2s;\n}",
            "\"timeout\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        (
            "mail { }\nmail { }",
            "\"mail\" directive is duplicate in /etc/postern/postern.conf:2",
        ),
        (
            "events { }\nevents { }",
            "\"events\" directive is duplicate in /etc/postern/postern.conf:2",
        ),
        (
            "events {\n worker_connections 1;\n worker_connections 2;\n}",
            "\"worker_connections\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        // values
        (
            "mail {\n client_preauth_limit -1;\n}",
            "invalid value \"-1\" in \"client_preauth_limit\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n server {\n  auth_http_concurrency many;\n }\n}",
            "invalid value \"many\" in \"auth_http_concurrency\" directive in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n auth_fail_limit 5 in 1m;\n}",
            "invalid number of arguments in \"auth_fail_limit\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_fail_limit 0 per 1m;\n}",
            "invalid value \"0\" in \"auth_fail_limit\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_queue 1k;\n}",
            "invalid value \"1k\" in \"auth_http_queue\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n proxy_dead_peer_timeout 500ms;\n}",
            "invalid value \"500ms\" in \"proxy_dead_peer_timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n client_preauth_limit 1 2;\n}",
            "invalid number of arguments in \"client_preauth_limit\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n timeout abc;\n}",
            "invalid value \"abc\" in \"timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_timeout 5x;\n}",
            "invalid value \"5x\" in \"auth_http_timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n proxy_pass_error_message yes;\n}",
            "invalid value \"yes\" in \"proxy_pass_error_message\" directive, it must be \"on\" or \
             \"off\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_auth plain digest-md5;\n}",
            "invalid value \"digest-md5\" in \"imap_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n pop3_auth plain login;\n}",
            "invalid value \"login\" in \"pop3_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n pop3_auth none;\n}",
            "invalid value \"none\" in \"pop3_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n server {\n  listen 110;\n  pop3_auth plain;\n  pop3_auth PLAIN sasl;\n }\n}",
            "invalid value \"sasl\" in \"pop3_auth\" directive in /etc/postern/postern.conf:5",
        ),
        (
            "mail {\n pop3_auth;\n}",
            "invalid number of arguments in \"pop3_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n pop3_capabilities;\n}",
            "invalid number of arguments in \"pop3_capabilities\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n pop3_client_buffer 0;\n}",
            "invalid value \"0\" in \"pop3_client_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n pop3_client_buffer 128b;\n}",
            "invalid value \"128b\" in \"pop3_client_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n pop3_client_buffer 128;\n pop3_client_buffer 256;\n}",
            "\"pop3_client_buffer\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n smtp_auth plain apop;\n}",
            "invalid value \"apop\" in \"smtp_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_auth apop;\n}",
            "invalid value \"apop\" in \"imap_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_auth none;\n}",
            "invalid value \"none\" in \"imap_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n smtp_auth;\n}",
            "invalid number of arguments in \"smtp_auth\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n smtp_capabilities;\n}",
            "invalid number of arguments in \"smtp_capabilities\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n smtp_client_buffer 0;\n}",
            "invalid value \"0\" in \"smtp_client_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n smtp_client_buffer 4k;\n smtp_client_buffer 8k;\n}",
            "\"smtp_client_buffer\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n smtp_greeting_delay soon;\n}",
            "invalid value \"soon\" in \"smtp_greeting_delay\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n smtp_greeting_delay 1s 2s;\n}",
            "invalid number of arguments in \"smtp_greeting_delay\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n xclient yes;\n}",
            "invalid value \"yes\" in \"xclient\" directive, it must be \"on\" or \"off\" in \
             /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n xclient on;\n xclient off;\n}",
            "\"xclient\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n proxy_smtp_auth 1;\n}",
            "invalid value \"1\" in \"proxy_smtp_auth\" directive, it must be \"on\" or \"off\" in \
             /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_client_buffer 4x;\n}",
            "invalid value \"4x\" in \"imap_client_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_client_buffer 0;\n}",
            "invalid value \"0\" in \"imap_client_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n so_keepalive maybe;\n}",
            "invalid value \"maybe\" in \"so_keepalive\" directive, it must be \"on\" or \"off\" in \
             /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n so_keepalive on;\n so_keepalive off;\n}",
            "\"so_keepalive\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n max_errors 0;\n}",
            "invalid value \"0\" in \"max_errors\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n max_errors -1;\n}",
            "invalid value \"-1\" in \"max_errors\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n max_errors 4294967296;\n}",
            "invalid value \"4294967296\" in \"max_errors\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n max_errors;\n}",
            "invalid number of arguments in \"max_errors\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver off 127.0.0.1;\n}",
            "host not found in resolver \"off\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver 127.0.0.1 valid=x;\n}",
            "invalid parameter: valid=x in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver 127.0.0.1 ipv6=maybe;\n}",
            "invalid parameter: ipv6=maybe in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver 127.0.0.1 ipv4=off ipv6=off;\n}",
            "\"ipv4\" and \"ipv6\" cannot both be \"off\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver valid=10s;\n}",
            "no name servers defined in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver 127.0.0.1:0;\n}",
            "invalid port in resolver \"127.0.0.1:0\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver_timeout 5x;\n}",
            "invalid value \"5x\" in \"resolver_timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver;\n}",
            "invalid number of arguments in \"resolver\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n resolver off;\n resolver off;\n}",
            "\"resolver\" directive is duplicate in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n proxy_buffer 0;\n}",
            "invalid value \"0\" in \"proxy_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n proxy_buffer 4kb;\n}",
            "invalid value \"4kb\" in \"proxy_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n proxy_timeout forever;\n}",
            "invalid value \"forever\" in \"proxy_timeout\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-A;\n}",
            "invalid number of arguments in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-A b c;\n}",
            "invalid number of arguments in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header \"X A\" b;\n}",
            "invalid value \"X A\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-A: b;\n}",
            "invalid value \"X-A:\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header \"\" b;\n}",
            "invalid value \"\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-Ä b;\n}",
            "invalid value \"X-Ä\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header \"X\\nY\" b;\n}",
            "invalid value \"X\\nY\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-A \"b\\r\\nX-Evil: 1\";\n}",
            "invalid value \"b\\r\\nX-Evil: 1\" in \"auth_http_header\" directive in \
             /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-A \"two\nlines\";\n}",
            "invalid value \"two\\nlines\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http_header X-A \"nul\0\";\n}",
            "invalid value \"nul\\0\" in \"auth_http_header\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "worker_rlimit_nofile 0;",
            "invalid value \"0\" in \"worker_rlimit_nofile\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "worker_rlimit_nofile lots;",
            "invalid value \"lots\" in \"worker_rlimit_nofile\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "worker_rlimit_nofile 1;\nworker_rlimit_nofile 2;",
            "\"worker_rlimit_nofile\" directive is duplicate in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n worker_rlimit_nofile 1;\n}",
            "\"worker_rlimit_nofile\" directive is not allowed here in /etc/postern/postern.conf:2",
        ),
        (
            "worker_processes 0;",
            "invalid value \"0\" in \"worker_processes\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "worker_processes many;",
            "invalid value \"many\" in \"worker_processes\" directive in /etc/postern/postern.conf:1",
        ),
        (
            "events {\n worker_connections 0;\n}",
            "invalid value \"0\" in \"worker_connections\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "error_log stderr loud;",
            "invalid log level \"loud\" in /etc/postern/postern.conf:1",
        ),
        (
            "error_log syslog:tag=x;",
            "no syslog server specified in /etc/postern/postern.conf:1",
        ),
        (
            "daemon on;",
            "\"daemon on\" is not supported yet: Postern runs in the foreground in \
             /etc/postern/postern.conf:1",
        ),
        (
            "daemon yes;",
            "invalid value \"yes\" in \"daemon\" directive, it must be \"on\" or \"off\" in \
             /etc/postern/postern.conf:1",
        ),
        (
            "load_module modules/ngx_stream_module.so;",
            "module \"modules/ngx_stream_module.so\" is not supported: Postern has the mail module \
             built in and loads no other in /etc/postern/postern.conf:1",
        ),
        (
            "events {\n multi_accept maybe;\n}",
            "invalid value \"maybe\" in \"multi_accept\" directive, it must be \"on\" or \"off\" in \
             /etc/postern/postern.conf:2",
        ),
        (
            "events {\n multi_accept on off;\n}",
            "invalid number of arguments in \"multi_accept\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http https://127.0.0.1/auth;\n}",
            "https is not supported in \"auth_http\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n auth_http no-such-host.invalid:9000/auth;\n}",
            "host not found in auth_http \"no-such-host.invalid:9000/auth\" in \
             /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n server {\n  listen 143;\n  protocol ftp;\n }\n}",
            "unknown protocol \"ftp\" in /etc/postern/postern.conf:4",
        ),
        // listen
        (
            "mail {\n server {\n  listen 993 ssl;\n }\n}",
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 multipath;\n }\n}",
            "\"listen ... multipath\" is not supported yet in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 backlog=0;\n }\n}",
            "invalid backlog \"backlog=0\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 backlog=-1;\n }\n}",
            "invalid backlog \"backlog=-1\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 rcvbuf=big;\n }\n}",
            "invalid rcvbuf \"rcvbuf=big\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 sndbuf=;\n }\n}",
            "invalid sndbuf \"sndbuf=\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen [::]:143 ipv6only=yes;\n }\n}",
            "invalid ipv6only flags \"yes\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 so_keepalive=::;\n }\n}",
            "invalid so_keepalive value: \"::\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 so_keepalive=1ms;\n }\n}",
            "invalid so_keepalive value: \"1ms\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen unix:;\n }\n}",
            "no path in the unix domain socket in \"unix:\" of the \"listen\" directive in \
             /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n auth_http 127.0.0.1:9000;\n server {\n  listen unix:/run/imap.sock;\n }\n}",
            "unknown mail protocol for server in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n auth_http 127.0.0.1:9000;\n server {\n  protocol imap;\n  listen unix:/run/imap.sock;\n \
             }\n server {\n  protocol imap;\n  listen unix:/run/../run/imap.sock;\n  listen \
             unix:/run/imap.sock;\n }\n}",
            "duplicate \"unix:/run/imap.sock\" address and port pair in /etc/postern/postern.conf:10",
        ),
        (
            "mail {\n server {\n  listen unix:imap.sock;\n  listen unix:/etc/postern/imap.sock;\n }\n}",
            "duplicate \"unix:/etc/postern/imap.sock\" address and port pair in /etc/postern/postern.conf:4",
        ),
        (
            "mail {\n server {\n  listen 143 bind;\n  listen *:143 bind;\n }\n}",
            "duplicate \"0.0.0.0:143\" address and port pair in /etc/postern/postern.conf:4",
        ),
        (
            "mail {\n server {\n  listen 143 fast;\n }\n}",
            "the invalid \"fast\" parameter in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 bind fast;\n }\n}",
            "the invalid \"fast\" parameter in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 0;\n }\n}",
            "invalid port in \"0\" of the \"listen\" directive in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen no-such-host.invalid:143;\n }\n}",
            "host not found in \"no-such-host.invalid:143\" of the \"listen\" directive in \
             /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 127.0.0.1;\n }\n}",
            "no port in \"127.0.0.1\" of the \"listen\" directive in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n auth_http 127.0.0.1:9000;\n server {\n  listen 143;\n }\n server {\n  \
             listen *:143;\n }\n}",
            "duplicate \"0.0.0.0:143\" address and port pair in /etc/postern/postern.conf:7",
        ),
        (
            "mail {\n server {\n  listen [::1]:143;\n  listen [::1]:143;\n }\n}",
            "duplicate \"[::1]:143\" address and port pair in /etc/postern/postern.conf:4",
        ),
        (
            "mail {\n server {\n  listen localhost:143;\n }\n server {\n  listen 127.0.0.1:143;\n \
             }\n}",
            "duplicate \"127.0.0.1:143\" address and port pair in /etc/postern/postern.conf:6",
        ),
        // servers
        (
            "mail {\n auth_http 127.0.0.1:9000;\n server {\n  protocol imap;\n }\n}",
            "no \"listen\" is defined for server in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143;\n }\n}",
            "no \"auth_http\" is defined for server in /etc/postern/postern.conf:2",
        ),
        // syntax, through the whole pipeline
        (
            "mail {\n",
            "unexpected end of file, expecting \"}\" in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n timeout 5s\n}",
            "unexpected \"}\" in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server_name \"mail\"x;\n}",
            "unexpected \"x\" in /etc/postern/postern.conf:2",
        ),
    ];
    for (text, want) in rows {
        assert_eq!(err(text), *want, "--- in ---\n{text}");
    }
}

#[test]
fn the_first_error_in_the_file_is_the_one_reported() {
    let server_first = "mail {\n server {\n  listen 143;\n  bogus;\n }\n timeout x;\n}";
    assert_eq!(
        err(server_first),
        "unknown directive \"bogus\" in /etc/postern/postern.conf:4"
    );
    let mail_first = "mail {\n timeout x;\n server {\n  listen 143;\n  bogus;\n }\n}";
    assert_eq!(
        err(mail_first),
        "invalid value \"x\" in \"timeout\" directive in /etc/postern/postern.conf:2"
    );
}

#[test]
fn error_structure() {
    let e = parse("mail {\n bogus;\n}").unwrap_err();
    assert_eq!(
        e,
        ConfigError {
            message: "unknown directive \"bogus\"".to_string(),
            location: Some(at(2)),
        }
    );
    let unlocated = ConfigError {
        message: "something".to_string(),
        location: None,
    };
    assert_eq!(unlocated.to_string(), "something");
}

/// The example at the top of nginx's mail documentation (the seed), as
/// written there, with each `server {` closed.
const SEED: &str = "\
worker_processes 1;

error_log /var/log/nginx/error.log info;

mail {
    auth_http         localhost:9000/cgi-bin/nginxauth.cgi;

    imap_capabilities IMAP4rev1 UIDPLUS IDLE LITERAL+ QUOTA;

    pop3_auth         plain apop cram-md5;
    pop3_capabilities LAST TOP USER PIPELINING UIDL;

    smtp_auth         login plain cram-md5;
    smtp_capabilities \"SIZE 10485760\" ENHANCEDSTATUSCODES 8BITMIME DSN;
    xclient           off;

    server {
        listen   25;
        protocol smtp;
    }
    server {
        listen   110;
        protocol pop3;
        proxy_pass_error_message on;
    }
    server {
        listen   143;
        protocol imap;
    }
    server {
        listen   587;
        protocol smtp;
    }
}
";

#[test]
fn seed_parses_fully() {
    let config = ok(SEED);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.main.worker_processes, Workers::Count(1));
    assert_eq!(
        config.main.error_log[0],
        ErrorLog {
            target: LogTarget::File(PathBuf::from("/var/log/nginx/error.log")),
            level: LogLevel::Info,
        }
    );
    let [smtp25, pop3, imap, smtp587] = config.servers.as_slice() else {
        panic!("{config:?}");
    };
    let summary: Vec<(u32, Protocol, u16, bool)> = config
        .servers
        .iter()
        .map(|s| {
            let port = match &s.listen[..] {
                [Listen {
                    addr: ListenAddr::Tcp(addr),
                    ..
                }] => addr.port(),
                other => panic!("{other:?}"),
            };
            (s.location.line, s.protocol, port, s.proxy_pass_error_message)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (17, Protocol::Smtp, 25, false),
            (21, Protocol::Pop3, 110, true),
            (26, Protocol::Imap, 143, false),
            (30, Protocol::Smtp, 587, false),
        ]
    );
    // Every mail-level setting reaches every server, whatever its protocol.
    for server in &config.servers {
        assert_eq!(
            server.imap.capabilities,
            ["IMAP4rev1", "UIDPLUS", "IDLE", "LITERAL+", "QUOTA"]
        );
        assert_eq!(server.imap.auth, [AuthMethod::Plain]);
        assert_eq!(
            server.pop3.auth,
            [AuthMethod::Plain, AuthMethod::Apop, AuthMethod::CramMd5]
        );
        assert_eq!(server.pop3.capabilities, ["LAST", "TOP", "USER", "PIPELINING", "UIDL"]);
        assert_eq!(server.pop3.client_buffer, 128);
        // Written `login plain cram-md5`, kept in nginx's order.
        assert_eq!(
            server.smtp.auth,
            [AuthMethod::Plain, AuthMethod::Login, AuthMethod::CramMd5]
        );
        assert_eq!(
            server.smtp.capabilities,
            ["SIZE 10485760", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
        );
        assert!(!server.smtp.xclient);
        assert!(!server.smtp.proxy_smtp_auth);
        assert_eq!(server.smtp.greeting_delay, Duration::ZERO);
        assert_eq!(server.smtp.client_buffer, 4096);
        assert_eq!(server.auth_http.host, "localhost");
        assert_eq!(server.auth_http.uri, "/cgi-bin/nginxauth.cgi");
    }
    for server in [smtp25, imap, smtp587] {
        assert!(!server.proxy_pass_error_message);
    }
    assert!(pop3.proxy_pass_error_message);
}

#[test]
fn pop3_and_smtp_settings_are_inherited_and_overridden() {
    let text = "mail {\n\
                auth_http 127.0.0.1:9000;\n\
                pop3_auth apop;\n\
                pop3_capabilities TOP;\n\
                pop3_client_buffer 256;\n\
                smtp_auth none;\n\
                smtp_capabilities PIPELINING;\n\
                smtp_capabilities \"SIZE 1000\";\n\
                smtp_greeting_delay 1s;\n\
                proxy_smtp_auth on;\n\
                server { listen 110; }\n\
                server { listen 25; }\n\
                server { listen 995; pop3_auth plain; pop3_auth external; pop3_capabilities USER; \
                pop3_client_buffer 512; }\n\
                server { listen 587; smtp_auth login; smtp_capabilities DSN; smtp_greeting_delay 0; \
                smtp_client_buffer 1k; xclient off; proxy_smtp_auth off; }\n\
                }\n";
    let config = ok(text);
    let [pop3, smtp, pop3s, submission] = config.servers.as_slice() else {
        panic!("{config:?}");
    };
    assert_eq!(
        [pop3.protocol, smtp.protocol, pop3s.protocol, submission.protocol],
        [Protocol::Pop3, Protocol::Smtp, Protocol::Pop3, Protocol::Smtp]
    );
    for server in [pop3, smtp] {
        assert_eq!(server.pop3.auth, [AuthMethod::Apop]);
        assert_eq!(server.pop3.capabilities, ["TOP"]);
        assert_eq!(server.pop3.client_buffer, 256);
        assert_eq!(server.smtp.auth, [AuthMethod::None]);
        assert_eq!(server.smtp.capabilities, ["PIPELINING", "SIZE 1000"]);
        assert_eq!(server.smtp.greeting_delay, Duration::from_secs(1));
        assert_eq!(server.smtp.client_buffer, 4096);
        assert!(server.smtp.xclient);
        assert!(server.smtp.proxy_smtp_auth);
    }
    // Server-level methods replace the mail-level ones, as nginx's bitmask
    // merge; repeated ones in one block add up.
    assert_eq!(pop3s.pop3.auth, [AuthMethod::Plain, AuthMethod::External]);
    assert_eq!(pop3s.pop3.capabilities, ["USER"]);
    assert_eq!(pop3s.pop3.client_buffer, 512);
    assert_eq!(submission.smtp.auth, [AuthMethod::Login]);
    assert_eq!(submission.smtp.capabilities, ["DSN"]);
    assert_eq!(submission.smtp.greeting_delay, Duration::ZERO);
    assert_eq!(submission.smtp.client_buffer, 1024);
    assert!(!submission.smtp.xclient);
    assert!(!submission.smtp.proxy_smtp_auth);
}

/// A file in a fresh folder, removed on drop.
struct TempConfig {
    dir: PathBuf,
}

impl TempConfig {
    fn new(name: &str, contents: &[u8]) -> TempConfig {
        let dir = std::env::temp_dir().join(format!("postern-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("postern.conf"), contents).unwrap();
        TempConfig { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("postern.conf")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn load_reads_the_file_and_resolves_paths_from_its_folder() {
    let file = TempConfig::new("ok", b"pid run/postern.pid;\nerror_log logs/error.log;\n");
    let config = load(&file.path()).unwrap();
    assert_eq!(config.file, file.path());
    assert_eq!(config.main.pid, Some(file.dir.join("run/postern.pid")));
    assert_eq!(
        config.main.error_log[0].target,
        LogTarget::File(file.dir.join("logs/error.log"))
    );
}

#[test]
fn load_errors() {
    let missing = Path::new("/nonexistent/postern.conf");
    let e = load(missing).unwrap_err();
    assert!(
        e.message.starts_with("open() \"/nonexistent/postern.conf\" failed ("),
        "{e}"
    );
    assert_eq!(e.location, None);

    let file = TempConfig::new("utf8", b"worker_processes 1;\n# caf\xe9\n");
    let e = load(&file.path()).unwrap_err();
    assert_eq!(e.message, "invalid UTF-8 in the configuration file");
    assert_eq!(e.location.map(|l| l.line), Some(2));

    let file = TempConfig::new("bad", b"mail {\n  timeout abc;\n}\n");
    let e = load(&file.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "invalid value \"abc\" in \"timeout\" directive in {}:2",
            file.path().display()
        )
    );
}

#[test]
fn listen_parameters_are_kept_per_address() {
    let text = "mail {\n auth_http 127.0.0.1:9000;\n server {\n  protocol imap;\n  \
                listen 1143 bind backlog=64 so_keepalive=30m::10;\n  \
                listen localhost:1150 rcvbuf=8k sndbuf=16k reuseport;\n  \
                listen [::]:1151 ipv6only=off so_keepalive=on;\n }\n}\n";
    let server = &ok(text).servers[0];
    let d = ListenParams::default;
    let first = ListenParams {
        bind: true,
        backlog: 64,
        keepalive: Some(Keepalive::Tuned {
            idle: Some(Duration::from_secs(1800)),
            interval: None,
            count: Some(10),
        }),
        ..d()
    };
    let resolved = ListenParams {
        rcvbuf: Some(8192),
        sndbuf: Some(16384),
        ..d()
    };
    let v6 = ListenParams {
        ipv6only: false,
        keepalive: Some(Keepalive::On),
        ..d()
    };
    assert_eq!(server.listen[0].params, first);
    assert_eq!(server.listen[0].location, at(5));
    // Every address of the name, with the same parameters.
    let by_name: Vec<&Listen> = server.listen.iter().filter(|l| l.location.line == 6).collect();
    assert!(!by_name.is_empty());
    assert!(by_name.iter().all(|l| l.params == resolved), "{by_name:?}");
    let last = server.listen.last().unwrap();
    assert_eq!(last.addr, ListenAddr::Tcp(sa("[::]:1151")));
    assert_eq!(last.params, v6);
}

#[test]
fn unix_listeners() {
    let text = "mail {\n auth_http 127.0.0.1:9000;\n server {\n  protocol imap;\n  \
                listen unix:/run/postern/imap.sock backlog=10;\n  listen unix:imap.sock;\n  \
                listen 1143;\n }\n}\n";
    let server = &ok(text).servers[0];
    let got: Vec<(&ListenAddr, i32, u32)> = server
        .listen
        .iter()
        .map(|l| (&l.addr, l.params.backlog, l.location.line))
        .collect();
    assert_eq!(
        got,
        vec![
            (&ListenAddr::Unix(PathBuf::from("/run/postern/imap.sock")), 10, 5),
            (&ListenAddr::Unix(PathBuf::from("/etc/postern/imap.sock")), 511, 6),
            (&ListenAddr::Tcp(sa("0.0.0.0:1143")), 511, 7),
        ]
    );
    // A unix listener names no port, so no protocol; the TCP one after it
    // still may.
    let inferred = "mail {\n auth_http 127.0.0.1:9000;\n server {\n  listen unix:/run/a.sock;\n  \
                    listen 143;\n }\n}\n";
    assert_eq!(ok(inferred).servers[0].protocol, Protocol::Imap);
}

#[test]
fn unix_listener_path_length() {
    // sun_path holds 107 bytes and the final NUL.
    let longest = format!("/{}", "a".repeat(106));
    let text = |path: &str| {
        format!("mail {{\n auth_http 127.0.0.1:9000;\n server {{\n  protocol imap;\n  listen unix:{path};\n }}\n}}\n")
    };
    let server = &ok(&text(&longest)).servers[0];
    assert_eq!(server.listen[0].addr, ListenAddr::Unix(PathBuf::from(&longest)));
    let too_long = format!("{longest}a");
    assert_eq!(
        err(&text(&too_long)),
        format!(
            "too long path in the unix domain socket in \"unix:{too_long}\" of the \"listen\" directive in \
             /etc/postern/postern.conf:5"
        )
    );
}

#[test]
fn new_server_settings_are_inherited_and_overridden() {
    let text = "mail {\n\
                auth_http 127.0.0.1:9000;\n\
                auth_http_header X-A 1;\n\
                auth_http_header X-B 2;\n\
                so_keepalive on;\n\
                max_errors 3;\n\
                proxy_timeout 5m;\n\
                resolver off;\n\
                server { listen 1143; protocol imap; }\n\
                server { listen 1144; protocol imap; auth_http_header X-C 3; }\n\
                server { listen 1145; protocol imap; so_keepalive off; max_errors 2; proxy_buffer 1k; \
                proxy_timeout 1h; resolver off; }\n\
                }\n";
    let config = ok(text);
    let [first, second, third] = config.servers.as_slice() else {
        panic!("{config:?}");
    };
    let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    };
    assert_eq!(first.auth_http_headers, headers(&[("X-A", "1"), ("X-B", "2")]));
    // Server-level headers replace the mail-level set, as nginx's array merge.
    assert_eq!(second.auth_http_headers, headers(&[("X-C", "3")]));
    assert_eq!(third.auth_http_headers, headers(&[("X-A", "1"), ("X-B", "2")]));
    for server in [first, second] {
        assert!(server.so_keepalive);
        assert_eq!(server.max_errors, 3);
        assert_eq!(server.proxy_buffer, DEFAULT_PROXY_BUFFER);
        assert_eq!(server.proxy_timeout, Duration::from_secs(300));
    }
    assert!(!third.so_keepalive);
    assert_eq!(third.max_errors, 2);
    assert_eq!(third.proxy_buffer, 1024);
    assert_eq!(third.proxy_timeout, Duration::from_secs(3600));
}

/// A fresh folder of files, removed on drop.
struct TempTree {
    dir: PathBuf,
}

impl TempTree {
    fn new(name: &str, files: &[(&str, &[u8])]) -> TempTree {
        let dir = std::env::temp_dir().join(format!("postern-tree-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, contents) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        TempTree { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `load` of `postern.conf`.
    fn load(&self) -> Result<Config, ConfigError> {
        load(&self.path("postern.conf"))
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn include_splices_files_in_every_context() {
    let tree = TempTree::new(
        "contexts",
        &[
            (
                "postern.conf",
                b"include main.conf;\nevents {\n    include events.conf;\n}\nmail {\n    include mail.conf;\n    \
                  server {\n        include server.conf;\n    }\n}\n",
            ),
            ("main.conf", b"worker_processes 3;\npid run/p.pid;\n"),
            ("events.conf", b"worker_connections 100;\n"),
            ("mail.conf", b"auth_http 127.0.0.1:9000/auth;\ntimeout 7s;\n"),
            ("server.conf", b"# the server\nlisten 1143;\nprotocol imap;\n"),
        ],
    );
    let config = tree.load().unwrap();
    assert_eq!(config.main.worker_processes, Workers::Count(3));
    assert_eq!(config.main.pid, Some(tree.path("run/p.pid")));
    assert_eq!(config.main.worker_connections, 100);
    let [server] = config.servers.as_slice() else {
        panic!("{config:?}");
    };
    // Mail-level settings from an included file are inherited as usual.
    assert_eq!(server.timeout, Duration::from_secs(7));
    assert_eq!(server.auth_http.uri, "/auth");
    assert_eq!(server.location.file, tree.path("postern.conf"));
    assert_eq!(server.location.line, 7);
    assert_eq!(
        server.listen[0].location,
        Location {
            file: tree.path("server.conf"),
            line: 2,
        }
    );
}

#[test]
fn include_is_relative_to_the_including_file_and_globs_are_sorted() {
    let tree = TempTree::new(
        "relative",
        &[
            (
                "postern.conf",
                b"mail {\n auth_http 127.0.0.1:9000;\n include conf.d/servers.conf;\n}\n",
            ),
            (
                "conf.d/servers.conf",
                b"include servers/*.conf;\ninclude none/*.conf;\n",
            ),
            ("conf.d/servers/b.conf", b"server { listen 1202; protocol imap; }\n"),
            ("conf.d/servers/a.conf", b"\nserver { listen 1201; protocol imap; }\n"),
            ("conf.d/servers/.hidden.conf", b"bogus;\n"),
            ("conf.d/servers/c.conf.off", b"bogus;\n"),
        ],
    );
    let config = tree.load().unwrap();
    let got: Vec<(SocketAddr, PathBuf, u32)> = config
        .servers
        .iter()
        .map(|s| match &s.listen[0].addr {
            ListenAddr::Tcp(addr) => (*addr, s.location.file.clone(), s.location.line),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (sa("0.0.0.0:1201"), tree.path("conf.d/servers/a.conf"), 2),
            (sa("0.0.0.0:1202"), tree.path("conf.d/servers/b.conf"), 1),
        ]
    );
}

#[test]
fn the_same_file_may_be_included_twice() {
    let tree = TempTree::new(
        "twice",
        &[
            (
                "postern.conf",
                b"mail {\n auth_http 127.0.0.1:9000;\n include h.conf;\n server {\n  listen 1143;\n  \
                  protocol imap;\n  include h.conf;\n }\n}\n",
            ),
            ("h.conf", b"auth_http_header X-A 1;\n"),
        ],
    );
    let config = tree.load().unwrap();
    assert_eq!(
        config.servers[0].auth_http_headers,
        [("X-A".to_string(), "1".to_string())]
    );
}

#[test]
fn include_errors() {
    type Files = &'static [(&'static str, &'static [u8])];
    let rows: &[(Files, &str)] = &[
        (
            &[("postern.conf", b"\ninclude missing.conf;\n")],
            "open() \"{d}/missing.conf\" failed (No such file or directory (os error 2)) in {d}/postern.conf:2",
        ),
        (
            &[("postern.conf", b"include sub;\n"), ("sub/x.conf", b"")],
            "open() \"{d}/sub\" failed (Is a directory (os error 21)) in {d}/postern.conf:1",
        ),
        (
            &[
                ("postern.conf", b"mail {\n include mail.conf;\n}\n"),
                ("mail.conf", b"timeout 1s;\n\nbogus;\n"),
            ],
            "unknown directive \"bogus\" in {d}/mail.conf:3",
        ),
        (
            &[
                ("postern.conf", b"mail {\n timeout 1s;\n include mail.conf;\n}\n"),
                ("mail.conf", b"\ntimeout 2s;\n"),
            ],
            "\"timeout\" directive is duplicate in {d}/mail.conf:2",
        ),
        (
            &[
                ("postern.conf", b"mail {\n include a.conf;\n include b.conf;\n}\n"),
                ("a.conf", b"timeout 1s;\n"),
                ("b.conf", b"timeout 2s;\n"),
            ],
            "\"timeout\" directive is duplicate in {d}/b.conf:1",
        ),
        (
            &[
                ("postern.conf", b"include listen.conf;\n"),
                ("listen.conf", b"listen 143;\n"),
            ],
            "\"listen\" directive is not allowed here in {d}/listen.conf:1",
        ),
        (
            &[("postern.conf", b"include open.conf;\n"), ("open.conf", b"mail {\n")],
            "unexpected end of file, expecting \"}\" in {d}/open.conf:2",
        ),
        (
            &[
                ("postern.conf", b"mail {\n include close.conf;\n}\n"),
                ("close.conf", b"timeout 1s;\n}\n"),
            ],
            "unexpected \"}\" in {d}/close.conf:2",
        ),
        (
            &[("postern.conf", b"include postern.conf;\n")],
            "include loop: \"{d}/postern.conf\" is already being read in {d}/postern.conf:1",
        ),
        (
            &[
                ("postern.conf", b"include a.conf;\n"),
                ("a.conf", b"\ninclude b.conf;\n"),
                ("b.conf", b"include a.conf;\n"),
            ],
            "include loop: \"{d}/a.conf\" is already being read in {d}/b.conf:1",
        ),
        (
            &[
                ("postern.conf", b"include *.conf;\n"),
                ("a.conf", b"worker_processes 1;\n"),
            ],
            "include loop: \"{d}/postern.conf\" is already being read in {d}/postern.conf:1",
        ),
        (
            &[
                ("postern.conf", b"include bad.conf;\n"),
                ("bad.conf", b"# ok\n# caf\xe9\n"),
            ],
            "invalid UTF-8 in the configuration file in {d}/bad.conf:2",
        ),
    ];
    for (i, (files, want)) in rows.iter().enumerate() {
        let tree = TempTree::new(&format!("include-error-{i}"), files);
        let want = want.replace("{d}", &tree.dir.display().to_string());
        match tree.load() {
            Ok(config) => panic!("row {i} accepted: {config:?}"),
            Err(e) => assert_eq!(e.to_string(), want, "row {i}"),
        }
    }
}

#[test]
fn include_nesting_is_bounded() {
    // postern.conf -> 1.conf -> ... -> N.conf; N.conf sets worker_processes.
    let chain = |name: &str, depth: usize| {
        let mut files: Vec<(String, Vec<u8>)> = vec![("postern.conf".to_string(), b"include 1.conf;\n".to_vec())];
        for level in 1..depth {
            files.push((
                format!("{level}.conf"),
                format!("include {}.conf;\n", level + 1).into_bytes(),
            ));
        }
        files.push((format!("{depth}.conf"), b"worker_processes 2;\n".to_vec()));
        let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
        TempTree::new(name, &borrowed)
    };
    let deepest = chain("nesting-ok", build::MAX_INCLUDE_NESTING);
    assert_eq!(deepest.load().unwrap().main.worker_processes, Workers::Count(2));
    let too_deep = chain("nesting-deep", build::MAX_INCLUDE_NESTING + 1);
    assert_eq!(
        too_deep.load().unwrap_err().to_string(),
        format!(
            "too deep include nesting in {}",
            too_deep.path(&format!("{}.conf", build::MAX_INCLUDE_NESTING)).display()
        ) + ":1"
    );
}

#[test]
fn include_with_a_bad_pattern() {
    let tree = TempTree::new("pattern", &[("postern.conf", b"include a/**b/*.conf;\n")]);
    let e = tree.load().unwrap_err();
    let d = tree.dir.display();
    assert!(
        e.message.starts_with(&format!("glob() \"{d}/a/**b/*.conf\" failed (")),
        "{e}"
    );
    assert_eq!(e.location.map(|l| l.line), Some(1));
}

/// `conf/postern.conf` under a prefix, with relative paths of every kind.
fn prefix_tree(name: &str, error_log: &str) -> TempTree {
    let main = format!(
        "pid run/postern.pid;\n{error_log}include more.conf;\nmail {{\n  auth_http 127.0.0.1:9000;\n  \
         server {{ listen unix:sock/imap.sock; protocol imap; }}\n}}\n"
    );
    TempTree::new(
        name,
        &[
            ("conf/postern.conf", main.as_bytes()),
            ("conf/more.conf", b"worker_processes 2;\n"),
        ],
    )
}

fn options(prefix: Option<&Path>, error_log: Option<&str>) -> LoadOptions {
    LoadOptions {
        prefix: prefix.map(Path::to_path_buf),
        error_log: error_log.map(str::to_string),
    }
}

#[test]
fn prefix_moves_relative_paths_but_not_includes() {
    let tree = prefix_tree("prefix", "error_log logs/error.log info;\n");
    let prefix = Some(tree.dir.as_path());
    let relative = load_with(Path::new("conf/postern.conf"), &options(prefix, None)).unwrap();
    let absolute = load_with(&tree.path("conf/postern.conf"), &options(prefix, None)).unwrap();
    for config in [&relative, &absolute] {
        assert_eq!(config.file, tree.path("conf/postern.conf"));
        assert_eq!(config.main.pid, Some(tree.path("run/postern.pid")));
        assert_eq!(
            config.main.error_log[0],
            ErrorLog {
                target: LogTarget::File(tree.path("logs/error.log")),
                level: LogLevel::Info,
            }
        );
        // `include more.conf` is conf/more.conf, next to the including file.
        assert_eq!(config.main.worker_processes, Workers::Count(2));
        assert_eq!(
            config.servers[0].listen[0].addr,
            ListenAddr::Unix(tree.path("sock/imap.sock"))
        );
    }
    // Without a prefix, everything starts at the file's folder.
    let plain = load(&tree.path("conf/postern.conf")).unwrap();
    assert_eq!(plain.main.pid, Some(tree.path("conf/run/postern.pid")));
    assert_eq!(
        plain.main.error_log[0].target,
        LogTarget::File(tree.path("conf/logs/error.log"))
    );
    assert_eq!(
        plain.servers[0].listen[0].addr,
        ListenAddr::Unix(tree.path("conf/sock/imap.sock"))
    );
    assert_eq!(
        plain,
        load_with(&tree.path("conf/postern.conf"), &LoadOptions::default()).unwrap()
    );
}

#[test]
fn prefix_and_a_missing_file() {
    let tree = TempTree::new("prefix-missing", &[]);
    let e = load_with(Path::new("nope.conf"), &options(Some(&tree.dir), None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "open() \"{}\" failed (No such file or directory (os error 2))",
            tree.path("nope.conf").display()
        )
    );
}

#[test]
fn error_log_option_replaces_the_target_and_keeps_the_level() {
    let with_level = prefix_tree("elog-level", "error_log logs/error.log info;\n");
    let without = prefix_tree("elog-default", "");
    let file = |tree: &TempTree| tree.path("conf/postern.conf");
    let rows: Vec<(&TempTree, Option<&Path>, &str, LogTarget, LogLevel)> = vec![
        (&with_level, None, "stderr", LogTarget::Stderr, LogLevel::Info),
        (&without, None, "stderr", LogTarget::Stderr, LogLevel::Error),
        (
            &with_level,
            None,
            "other.log",
            LogTarget::File(with_level.path("conf/other.log")),
            LogLevel::Info,
        ),
        (
            &with_level,
            Some(&with_level.dir),
            "logs/other.log",
            LogTarget::File(with_level.path("logs/other.log")),
            LogLevel::Info,
        ),
        (
            &without,
            Some(&without.dir),
            "/var/log/postern.log",
            LogTarget::File(PathBuf::from("/var/log/postern.log")),
            LogLevel::Error,
        ),
    ];
    for (tree, prefix, target, want_target, want_level) in rows {
        let config = load_with(&file(tree), &options(prefix, Some(target))).unwrap();
        assert_eq!(
            config.main.error_log[0],
            ErrorLog {
                target: want_target,
                level: want_level,
            },
            "{target} {prefix:?}"
        );
    }
    let refused: &[(&str, &str)] = &[
        (
            "syslog:server=127.0.0.1,facility=lpt",
            "unknown syslog facility \"lpt\"",
        ),
        ("", "invalid error log \"\""),
    ];
    for (target, want) in refused {
        let e = load_with(&file(&without), &options(None, Some(target))).unwrap_err();
        assert_eq!(
            e,
            ConfigError {
                message: want.to_string(),
                location: None,
            }
        );
    }
}

/// The fuzzers' ways in: `parse_str_offline` reads as `parse_str` but looks
/// no name up and reads no file; `check_syntax` stops after the parser.
#[test]
fn offline_and_syntax_only() {
    let text = "mail { auth_http 127.0.0.1:9000/auth; server { listen 127.0.0.1:143; protocol imap; } }\n";
    let file = Path::new(FILE);
    assert_eq!(parse_str_offline(text, file), parse_str(text, file));

    let named = "mail { auth_http localhost:9000/auth; server { listen 127.0.0.1:143; protocol imap; } }\n";
    assert!(parse_str(named, file).is_ok());
    assert!(parse_str_offline(named, file).is_err(), "no DNS offline");

    let include = "include /etc/hostname;\n";
    let e = parse_str_offline(include, file).unwrap_err().to_string();
    assert_eq!(e, format!("include is not read offline in {FILE}:1"));

    assert!(check_syntax("mail { server { nonsense 1 2; } }", file).is_ok());
    let e = check_syntax("mail { server {", file).unwrap_err().to_string();
    assert!(e.starts_with("unexpected end of file"), "{e}");
}

fn etc(file: &str) -> PathBuf {
    Path::new("/etc/postern").join(file)
}

#[test]
fn ssl_directives_are_read() {
    let s = one_server(
        "",
        "listen 993 ssl; starttls only; ssl_certificate rsa.pem; ssl_certificate_key rsa.key; \
         ssl_certificate /abs/ec.pem; ssl_certificate_key ec.key; ssl_protocols TLSv1.3; \
         ssl_ciphers ECDHE+AESGCM; ssl_prefer_server_ciphers on; ssl_ecdh_curve X25519:prime256v1; \
         ssl_session_cache builtin:1000 shared:SSL:10m; ssl_session_tickets off; ssl_session_timeout 10m; \
         ssl_verify_client optional; ssl_verify_depth 3; ssl_client_certificate ca.pem; \
         ssl_trusted_certificate more.pem; ssl_crl crl.pem; auth_http_pass_client_cert on; \
         proxy_ssl on; proxy_ssl_verify on; proxy_ssl_trusted_certificate backend-ca.pem; \
         proxy_ssl_name imap.internal;",
    );
    assert!(s.listen[1].params.ssl);
    assert!(!s.listen[0].params.ssl);
    assert_eq!(s.starttls, Starttls::Only);
    let paths = |list: &[(PathBuf, Location)]| list.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        paths(&s.ssl.certificates),
        [etc("rsa.pem"), PathBuf::from("/abs/ec.pem")]
    );
    assert_eq!(paths(&s.ssl.certificate_keys), [etc("rsa.key"), etc("ec.key")]);
    assert_eq!(s.ssl.certificates[0].1, at(5));
    assert_eq!(s.ssl.protocols, [TlsVersion::V1_3]);
    assert_eq!(s.ssl.ciphers, "ECDHE+AESGCM");
    assert!(s.ssl.prefer_server_ciphers);
    assert_eq!(s.ssl.ecdh_curve, "X25519:prime256v1");
    assert_eq!(s.ssl.session_cache, SessionCache::Sessions(1000 + 40000));
    assert!(!s.ssl.session_tickets);
    assert_eq!(s.ssl.session_timeout, Duration::from_secs(600));
    assert_eq!(s.ssl.verify_client, VerifyClient::Optional);
    assert_eq!(s.ssl.verify_depth, 3);
    assert_eq!(s.ssl.client_certificate, Some((etc("ca.pem"), at(5))));
    assert_eq!(s.ssl.trusted_certificate, Some((etc("more.pem"), at(5))));
    assert_eq!(s.ssl.crl, Some((etc("crl.pem"), at(5))));
    assert!(s.auth_http_pass_client_cert);
    assert_eq!(
        s.proxy_ssl,
        ProxyTls {
            enabled: true,
            verify: true,
            trusted_certificate: Some((etc("backend-ca.pem"), at(5))),
            name: Some("imap.internal".to_string()),
        }
    );
}

/// nginx's array merge: a server's own certificates replace the `mail`
/// level's as a whole; without any, it inherits them all.
#[test]
fn ssl_certificates_inherit_as_a_whole() {
    let mail = "ssl_certificate a.pem; ssl_certificate_key a.key; ssl_certificate b.pem; ssl_certificate_key b.key;";
    let s = one_server(mail, "starttls on;");
    let paths = |list: &[(PathBuf, Location)]| list.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&s.ssl.certificates), [etc("a.pem"), etc("b.pem")]);
    assert_eq!(s.ssl.certificates[0].1, at(7));
    let s = one_server(mail, "starttls on; ssl_certificate c.pem; ssl_certificate_key c.key;");
    assert_eq!(paths(&s.ssl.certificates), [etc("c.pem")]);
    assert_eq!(paths(&s.ssl.certificate_keys), [etc("c.key")]);
    let s = one_server(
        "ssl_protocols TLSv1.2; starttls on; ssl_verify_client optional_no_ca;",
        mail,
    );
    assert_eq!(s.ssl.protocols, [TlsVersion::V1_2]);
    assert_eq!(s.starttls, Starttls::On);
    assert_eq!(s.ssl.verify_client, VerifyClient::OptionalNoCa);
}

#[test]
fn ssl_session_cache_forms() {
    let rows: &[(&str, SessionCache)] = &[
        ("off", SessionCache::Off),
        ("none", SessionCache::None),
        ("builtin", SessionCache::Sessions(20480)),
        ("builtin:100", SessionCache::Sessions(100)),
        ("shared:SSL:1m", SessionCache::Sessions(4000)),
        ("shared:SSL:512k", SessionCache::Sessions(2000)),
        ("shared:SSL:32k", SessionCache::Sessions(125)),
        ("builtin:10 shared:x:1m", SessionCache::Sessions(4010)),
        ("shared:x:1m none", SessionCache::None),
        ("builtin off", SessionCache::Off),
        ("builtin:0", SessionCache::Sessions(0)),
    ];
    for &(value, ref want) in rows {
        let s = one_server(&format!("ssl_session_cache {value};"), "");
        assert_eq!(&s.ssl.session_cache, want, "{value}");
    }
}

#[test]
fn ssl_warnings() {
    let text = "mail {\n auth_http 127.0.0.1:9000;\n ssl_protocols SSLv3 TLSv1 TLSv1.2;\n \
                ssl_ciphers HIGH:AES256-SHA:!aNULL;\n ssl_dhparam dh.pem;\n \
                server {\n  listen 143;\n }\n server {\n  listen 110;\n }\n}\n";
    let config = ok(text);
    assert_eq!(config.servers[0].ssl.protocols, [TlsVersion::V1_2]);
    assert_eq!(
        config.warnings,
        [
            "\"ssl_dhparam\" directive is ignored: rustls offers no DHE cipher suites, so the file is not \
             needed in /etc/postern/postern.conf:5",
            "\"ssl_protocols\": SSLv3, TLSv1 not offered: rustls has TLSv1.2 and TLSv1.3 only in \
             /etc/postern/postern.conf:3",
            "\"ssl_ciphers\": \"AES256-SHA\" not offered by rustls, ignored in /etc/postern/postern.conf:4",
        ]
    );
}

#[test]
fn ssl_errors() {
    let server =
        |lines: &str| format!("mail {{\n auth_http 127.0.0.1:9000;\n server {{\n  listen 143;\n  {lines}\n }}\n}}\n");
    let cert = "ssl_certificate a.pem; ssl_certificate_key a.key;";
    let rows: Vec<(String, String)> = vec![
        (
            server("ssl on;"),
            "\"ssl\" directive is not supported: use \"listen ... ssl\" in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_session_ticket_key k;"),
            "\"ssl_session_ticket_key\" directive is not supported: rustls makes and rotates its own ticket keys \
             in /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server("ssl_conf_command Options x;"),
            "\"ssl_conf_command\" directive is not supported: it passes commands to OpenSSL and Postern uses \
             rustls in /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server("starttls yes;"),
            "invalid value \"yes\" in \"starttls\" directive in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("starttls on;"),
            "no \"ssl_certificate\" is defined for the \"starttls\" directive in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("starttls on; ssl_certificate a.pem;"),
            "no \"ssl_certificate_key\" is defined for the \"starttls\" directive in /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server("starttls only; ssl_certificate a.pem; ssl_certificate_key a.key; ssl_certificate b.pem;"),
            "no \"ssl_certificate_key\" is defined for certificate \"/etc/postern/b.pem\" and the \"starttls\" \
             directive in /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server("starttls on; ssl_certificate a.pem; ssl_certificate_key a.key; ssl_certificate_key b.key;"),
            "no \"ssl_certificate\" is defined for certificate key \"/etc/postern/b.key\" in \
             /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server(&format!("starttls on; {cert} ssl_verify_client on;")),
            "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client in \
             /etc/postern/postern.conf:3"
                .into(),
        ),
        (
            server(&format!("starttls on; {cert} ssl_verify_client optional;")),
            "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client in \
             /etc/postern/postern.conf:3"
                .into(),
        ),
        (
            server("ssl_verify_client maybe;"),
            "invalid value \"maybe\" in \"ssl_verify_client\" directive in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_verify_depth -1;"),
            "invalid value \"-1\" in \"ssl_verify_depth\" directive in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_protocols TLSv1 TLSv1.1;"),
            "\"ssl_protocols\" enables no version rustls offers: it has TLSv1.2 and TLSv1.3 only in \
             /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server("ssl_protocols TLSv1.4;"),
            "invalid value \"TLSv1.4\" in \"ssl_protocols\" directive in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_ecdh_curve secp521r1;"),
            "curve \"secp521r1\" is not offered by rustls (X25519, prime256v1, secp384r1) in \"ssl_ecdh_curve\" \
             directive in /etc/postern/postern.conf:5"
                .into(),
        ),
        (
            server(&format!(
                "starttls on; {cert}\n  ssl_ciphers AES256-SHA:DHE-RSA-AES256-GCM-SHA384;"
            )),
            "\"ssl_ciphers\" \"AES256-SHA:DHE-RSA-AES256-GCM-SHA384\" leaves no cipher suite rustls offers for \
             TLSv1.2: change it or drop TLSv1.2 from \"ssl_protocols\" in /etc/postern/postern.conf:6"
                .into(),
        ),
        (
            server("ssl_session_cache shared:SSL:1k;"),
            "session cache \"shared:SSL:1k\" is too small in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_session_cache shared:SSL;"),
            "invalid session cache \"shared:SSL\" in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_session_cache builtin:x;"),
            "invalid session cache \"builtin:x\" in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_session_cache lots;"),
            "invalid session cache \"lots\" in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("proxy_ssl on;\n  proxy_ssl_verify on;"),
            "no proxy_ssl_trusted_certificate for proxy_ssl_verify in /etc/postern/postern.conf:6".into(),
        ),
        (
            server("proxy_ssl_name \"bad name\";"),
            "invalid value \"bad name\" in \"proxy_ssl_name\" directive in /etc/postern/postern.conf:5".into(),
        ),
        (
            server("ssl_certificate data:xyz;"),
            "\"ssl_certificate\" with \"data:\" is not supported: give a PEM file in /etc/postern/postern.conf:5"
                .into(),
        ),
    ];
    for (text, want) in rows {
        assert_eq!(err(&text), want, "{text}");
    }
}

/// TLS 1.3 alone needs no TLS 1.2 suite, so an empty cipher list is fine.
#[test]
fn empty_ciphers_with_tls13_only() {
    let s = one_server(
        "",
        "starttls on; ssl_certificate a.pem; ssl_certificate_key a.key; ssl_protocols TLSv1.3; \
         ssl_ciphers DHE-RSA-AES256-GCM-SHA384;",
    );
    assert_eq!(s.ssl.protocols, [TlsVersion::V1_3]);
}
