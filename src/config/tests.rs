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
                error_log: ErrorLog {
                    target: LogTarget::Stderr,
                    level: LogLevel::Error,
                },
                pid: None,
                worker_connections: 512,
            },
            servers: vec![ServerConfig {
                location: at(3),
                listen: vec![Listen {
                    addr: ListenAddr::Tcp(sa("0.0.0.0:143")),
                    location: at(3),
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
                proxy_pass_error_message: false,
                imap: ImapSettings {
                    capabilities: vec!["IMAP4".to_string(), "IMAP4rev1".to_string(), "UIDPLUS".to_string()],
                    auth: vec![AuthMethod::Plain],
                    client_buffer: 4096,
                },
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
            m.error_log
                == ErrorLog {
                    target: LogTarget::Stderr,
                    level: LogLevel::Error,
                }
        }),
        ("error_log stderr debug;", |m| m.error_log.level == LogLevel::Debug),
        ("error_log /var/log/postern.log emerg;", |m| {
            m.error_log
                == ErrorLog {
                    target: LogTarget::File(PathBuf::from("/var/log/postern.log")),
                    level: LogLevel::Emerg,
                }
        }),
        ("error_log logs/error.log info;", |m| {
            m.error_log.target == LogTarget::File(PathBuf::from("/etc/postern/logs/error.log"))
                && m.error_log.level == LogLevel::Info
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
        ("imap_client_buffer 8k;", |s| s.imap.client_buffer == 8192),
        ("imap_client_buffer 100;", |s| s.imap.client_buffer == 100),
        ("protocol imap;", |s| s.protocol == Protocol::Imap),
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
        (
            "listen 110;",
            Err("\"pop3\" protocol is not supported yet in /etc/postern/postern.conf:4"),
        ),
        (
            "listen 995;",
            Err("\"pop3\" protocol is not supported yet in /etc/postern/postern.conf:4"),
        ),
        (
            "listen 25;",
            Err("\"smtp\" protocol is not supported yet in /etc/postern/postern.conf:4"),
        ),
        (
            "listen 465;",
            Err("\"smtp\" protocol is not supported yet in /etc/postern/postern.conf:4"),
        ),
        (
            "listen 8000;\n listen 587;",
            Err("\"smtp\" protocol is not supported yet in /etc/postern/postern.conf:5"),
        ),
        (
            "listen 143;\n protocol pop3;",
            Err("\"pop3\" protocol is not supported yet in /etc/postern/postern.conf:5"),
        ),
        (
            "protocol smtp;\n listen 143;",
            Err("\"smtp\" protocol is not supported yet in /etc/postern/postern.conf:4"),
        ),
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
            "mail {\n  ssl_certificate /etc/cert.pem;\n}",
            "\"ssl_certificate\" directive is not supported yet in /etc/postern/postern.conf:2",
        ),
        (
            "listen 143;",
            "\"listen\" directive is not allowed here in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n  imap_auth plain CRAM-MD5;\n}",
            "\"imap_auth cram-md5\" is not supported yet in /etc/postern/postern.conf:2",
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
            "mail {\n error_log /var/log/mail.log;\n}",
            "\"error_log\" directive is not supported yet in /etc/postern/postern.conf:2",
        ),
        (
            "include mail.conf;",
            "\"include\" directive is not supported yet in /etc/postern/postern.conf:1",
        ),
        (
            "mail {\n include servers/*.conf;\n}",
            "\"include\" directive is not supported yet in /etc/postern/postern.conf:2",
        ),
        (
            "user nobody;",
            "\"user\" directive is not supported yet in /etc/postern/postern.conf:1",
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
            "invalid number of arguments in \"error_log\" directive in /etc/postern/postern.conf:1",
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
            "mail {\n imap_client_buffer 4x;\n}",
            "invalid value \"4x\" in \"imap_client_buffer\" directive in /etc/postern/postern.conf:2",
        ),
        (
            "mail {\n imap_client_buffer 0;\n}",
            "invalid value \"0\" in \"imap_client_buffer\" directive in /etc/postern/postern.conf:2",
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
            "error_log syslog:server=127.0.0.1;",
            "\"error_log syslog:\" is not supported yet in /etc/postern/postern.conf:1",
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
            "mail {\n server {\n  listen unix:/run/imap.sock;\n }\n}",
            "\"unix:\" listen is not supported yet in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 993 ssl;\n }\n}",
            "\"listen ... ssl\" is not supported yet in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 backlog=64;\n }\n}",
            "\"listen ... backlog=\" is not supported yet in /etc/postern/postern.conf:3",
        ),
        (
            "mail {\n server {\n  listen 143 fast;\n }\n}",
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

/// The example at the top of nginx's mail documentation (the seed), with
/// its braces closed and only an IMAP server.
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
        listen   143;
        protocol imap;
    }
}
";

#[test]
fn seed_stops_at_the_first_directive_not_built() {
    assert_eq!(
        err(SEED),
        "\"pop3_auth\" directive is not supported yet in /etc/postern/postern.conf:10"
    );
}

#[test]
fn seed_without_pop3_and_smtp_settings_parses() {
    let imap_only: String = SEED
        .lines()
        .filter(|line| {
            let word = line.split_whitespace().next().unwrap_or("");
            !(word.starts_with("pop3_") || word.starts_with("smtp_") || word == "xclient")
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let config = ok(&imap_only);
    assert_eq!(config.main.worker_processes, Workers::Count(1));
    assert_eq!(
        config.main.error_log,
        ErrorLog {
            target: LogTarget::File(PathBuf::from("/var/log/nginx/error.log")),
            level: LogLevel::Info,
        }
    );
    let [server] = config.servers.as_slice() else {
        panic!("{config:?}");
    };
    assert_eq!(server.protocol, Protocol::Imap);
    assert_eq!(
        server.imap.capabilities,
        ["IMAP4rev1", "UIDPLUS", "IDLE", "LITERAL+", "QUOTA"]
    );
    assert_eq!(server.auth_http.host, "localhost");
    assert_eq!(server.auth_http.uri, "/cgi-bin/nginxauth.cgi");
}

#[test]
fn seed_pop3_server_is_refused_at_its_protocol_line() {
    let text = "mail {\n\
                auth_http localhost:9000/cgi-bin/nginxauth.cgi;\n\
                server {\n\
                listen   110;\n\
                protocol pop3;\n\
                proxy_pass_error_message on;\n\
                }\n\
                }\n";
    assert_eq!(
        err(text),
        "\"pop3\" protocol is not supported yet in /etc/postern/postern.conf:5"
    );
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
        config.main.error_log.target,
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
