//! `error_log TARGET [LEVEL]`: its targets (a file, `stderr`, `syslog:...`)
//! and levels, read as nginx's `ngx_log_set_log` and `ngx_syslog_process_conf`
//! read them, with their error messages.

use std::net::{IpAddr, SocketAddr};

use super::build::Env;
use super::model::{ErrorLog, LogLevel, LogTarget, SyslogServer, SyslogTarget};
use super::parser::Directive;

/// RFC 3164's facility names in number order (nginx's list).
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp", "clock", "authpriv", "ftp", "ntp",
    "audit", "alert", "cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// nginx's default: local7.
const DEFAULT_FACILITY: u8 = 23;
const DEFAULT_PORT: u16 = 514;
/// nginx's is "nginx"; a receiver filtering on the tag must tell us apart.
pub(crate) const DEFAULT_TAG: &str = "postern";
/// RFC 3164: the TAG is at most 32 characters.
const MAX_TAG: usize = 32;

/// nginx's debug masks (`debug_mail`...): Postern has one debug level, so
/// each means `debug`.
const DEBUG_MASKS: &[&str] = &[
    "debug_core",
    "debug_alloc",
    "debug_mutex",
    "debug_event",
    "debug_http",
    "debug_mail",
    "debug_stream",
];

/// One `error_log` directive.
pub(crate) fn directive(d: &Directive, env: &mut Env) -> Result<ErrorLog, String> {
    let Some((target, levels)) = d.args.split_first() else {
        return Err(super::directives::invalid_arguments(d));
    };
    Ok(ErrorLog {
        target: target_of(target, env)?,
        level: level_of(levels)?,
    })
}

/// The words after the target: at most one level (`error` when none), or
/// debug masks, which mean `debug`.
fn level_of(words: &[String]) -> Result<LogLevel, String> {
    let mut level = None;
    let mut masks = false;
    for word in words {
        if let Some(found) = LogLevel::parse(word) {
            if level.is_some() || masks {
                return Err(format!("duplicate log level \"{word}\""));
            }
            level = Some(found);
        } else if DEBUG_MASKS.contains(&word.as_str()) {
            // nginx: a mask after a level other than debug is invalid.
            if level.is_some_and(|l| l != LogLevel::Debug) {
                return Err(format!("invalid log level \"{word}\""));
            }
            masks = true;
        } else {
            return Err(format!("invalid log level \"{word}\""));
        }
    }
    Ok(match (level, masks) {
        (_, true) => LogLevel::Debug,
        (Some(level), false) => level,
        (None, false) => LogLevel::Error,
    })
}

/// `stderr`, `syslog:...`, or a file relative to the prefix or the file's
/// folder; the command line's `-e` too.
pub(crate) fn target_of(text: &str, env: &mut Env) -> Result<LogTarget, String> {
    if text == "stderr" {
        return Ok(LogTarget::Stderr);
    }
    if let Some(params) = text.strip_prefix("syslog:") {
        return syslog(params, env).map(LogTarget::Syslog);
    }
    if text.starts_with("memory:") {
        return Err("\"error_log memory:\" is not supported: it is nginx's debugging buffer".to_string());
    }
    Ok(LogTarget::File(env.path(text)))
}

/// The comma-separated parameters after `syslog:`.
fn syslog(params: &str, env: &mut Env) -> Result<SyslogTarget, String> {
    let mut server = None;
    let mut facility = None;
    let mut severity = false;
    let mut tag: Option<&str> = None;
    let mut nohostname = false;
    for param in params.split(',') {
        if let Some(addr) = param.strip_prefix("server=") {
            if server.is_some() {
                return Err("duplicate syslog \"server\"".to_string());
            }
            server = Some(syslog_server(addr, env)?);
        } else if let Some(name) = param.strip_prefix("facility=") {
            if facility.is_some() {
                return Err("duplicate syslog \"facility\"".to_string());
            }
            let at = FACILITIES
                .iter()
                .position(|f| *f == name)
                .ok_or_else(|| format!("unknown syslog facility \"{name}\""))?;
            facility = Some(u8::try_from(at).unwrap_or(DEFAULT_FACILITY));
        } else if let Some(name) = param.strip_prefix("severity=") {
            // Checked as nginx does, and ignored as nginx does for error
            // logs: each message's own level is its severity.
            if severity {
                return Err("duplicate syslog \"severity\"".to_string());
            }
            LogLevel::parse(name).ok_or_else(|| format!("unknown syslog severity \"{name}\""))?;
            severity = true;
        } else if let Some(text) = param.strip_prefix("tag=") {
            if tag.is_some() {
                return Err("duplicate syslog \"tag\"".to_string());
            }
            if text.len() > MAX_TAG {
                return Err("syslog tag length exceeds 32".to_string());
            }
            if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err("syslog \"tag\" only allows alphanumeric characters and underscore".to_string());
            }
            tag = Some(text);
        } else if param == "nohostname" {
            nohostname = true;
        } else {
            return Err(format!("unknown syslog parameter \"{param}\""));
        }
    }
    let server = server.ok_or("no syslog server specified")?;
    Ok(SyslogTarget {
        server,
        facility: facility.unwrap_or(DEFAULT_FACILITY),
        tag: tag.unwrap_or(DEFAULT_TAG).to_string(),
        nohostname,
    })
}

/// `addr[:port]`, `[v6][:port]` or `host[:port]`, the first address a host
/// name resolves to (as nginx). Errors are `ngx_parse_url`'s words.
fn syslog_server(text: &str, env: &mut Env) -> Result<SyslogServer, String> {
    let in_server = |err: &str| format!("{err} in syslog server \"{text}\"");
    if let Some(path) = text.strip_prefix("unix:") {
        // ngx_parse_unix_domain_url's checks: a path that fits sun_path.
        if path.is_empty() {
            return Err(in_server("no path in the unix domain socket"));
        }
        if path.len() >= 108 {
            return Err(in_server("too long path in the unix domain socket"));
        }
        return Ok(SyslogServer::Unix(std::path::PathBuf::from(path)));
    }
    udp_server(text, env).map(SyslogServer::Udp)
}

fn udp_server(text: &str, env: &mut Env) -> Result<SocketAddr, String> {
    let in_server = |err: &str| format!("{err} in syslog server \"{text}\"");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| in_server("invalid IPv6 address"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(in_server("invalid IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or_else(|| in_server("invalid host"))?),
            ),
        }
    } else if text.parse::<IpAddr>().is_ok() {
        // A bare IPv6 address has colons but no port.
        (text, None)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(in_server("no host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match super::values::parse_number(p) {
            Some(n @ 1..=65535) => u16::try_from(n).map_err(|_| in_server("invalid port"))?,
            _ => return Err(in_server("invalid port")),
        },
    };
    env.resolver
        .resolve(host, port)
        .and_then(|found| found.into_iter().next())
        .ok_or_else(|| in_server("host not found"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{parse_str, Config, ErrorLog, LogLevel, LogTarget, SyslogServer, SyslogTarget};

    const FILE: &str = "/etc/postern/postern.conf";

    fn parse(text: &str) -> Result<Config, String> {
        parse_str(text, Path::new(FILE)).map_err(|e| e.to_string())
    }

    fn with_mail(main: &str, mail: &str, servers: &[&str]) -> String {
        let mut text = format!("{main}\nmail {{\n auth_http 127.0.0.1:9000;\n{mail}\n");
        for (i, server) in servers.iter().enumerate() {
            text.push_str(&format!(
                " server {{\n  listen 127.0.0.1:{};\n  protocol imap;\n{server}\n }}\n",
                1143 + i
            ));
        }
        text.push_str("}\n");
        text
    }

    fn file(path: &str, level: LogLevel) -> ErrorLog {
        ErrorLog {
            target: LogTarget::File(PathBuf::from(path)),
            level,
        }
    }

    fn syslog(server: &str, facility: u8, tag: &str, nohostname: bool) -> SyslogTarget {
        SyslogTarget {
            server: match server.strip_prefix("unix:") {
                Some(path) => SyslogServer::Unix(PathBuf::from(path)),
                None => SyslogServer::Udp(server.parse().unwrap()),
            },
            facility,
            tag: tag.to_string(),
            nohostname,
        }
    }

    #[test]
    fn targets_and_levels() {
        let rows: &[(&str, ErrorLog)] = &[
            (
                "error_log stderr;",
                ErrorLog {
                    target: LogTarget::Stderr,
                    level: LogLevel::Error,
                },
            ),
            (
                "error_log /var/log/p.log notice;",
                file("/var/log/p.log", LogLevel::Notice),
            ),
            (
                "error_log logs/e.log debug_mail;",
                file("/etc/postern/logs/e.log", LogLevel::Debug),
            ),
            (
                "error_log logs/e.log debug debug_core;",
                file("/etc/postern/logs/e.log", LogLevel::Debug),
            ),
            (
                "error_log syslog:server=127.0.0.1 info;",
                ErrorLog {
                    target: LogTarget::Syslog(syslog("127.0.0.1:514", 23, "postern", false)),
                    level: LogLevel::Info,
                },
            ),
            (
                "error_log syslog:server=127.0.0.1:5140,facility=mail,tag=edge_1,severity=crit,nohostname warn;",
                ErrorLog {
                    target: LogTarget::Syslog(syslog("127.0.0.1:5140", 2, "edge_1", true)),
                    level: LogLevel::Warn,
                },
            ),
            (
                "error_log syslog:facility=kern,server=[::1]:9;",
                ErrorLog {
                    target: LogTarget::Syslog(syslog("[::1]:9", 0, "postern", false)),
                    level: LogLevel::Error,
                },
            ),
            (
                "error_log syslog:server=::1;",
                ErrorLog {
                    target: LogTarget::Syslog(syslog("[::1]:514", 23, "postern", false)),
                    level: LogLevel::Error,
                },
            ),
            (
                "error_log syslog:server=unix:/dev/log,tag=mail info;",
                ErrorLog {
                    target: LogTarget::Syslog(syslog("unix:/dev/log", 23, "mail", false)),
                    level: LogLevel::Info,
                },
            ),
        ];
        for (line, want) in rows {
            let config = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(config.main.error_log, vec![want.clone()], "{line}");
        }
    }

    #[test]
    fn several_logs_per_context() {
        let text = with_mail(
            "error_log stderr notice;\nerror_log /var/log/main.log info;",
            " error_log /var/log/mail.log warn;\n error_log syslog:server=127.0.0.1:5514 info;",
            &[
                "  error_log /var/log/one.log debug;\n  error_log /var/log/one-err.log error;",
                "",
            ],
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.main.error_log,
            vec![
                ErrorLog {
                    target: LogTarget::Stderr,
                    level: LogLevel::Notice
                },
                file("/var/log/main.log", LogLevel::Info),
            ]
        );
        // A server's own replace the mail level's as a whole.
        assert_eq!(
            config.servers[0].error_log,
            vec![
                file("/var/log/one.log", LogLevel::Debug),
                file("/var/log/one-err.log", LogLevel::Error)
            ]
        );
        assert_eq!(
            config.servers[1].error_log,
            vec![
                file("/var/log/mail.log", LogLevel::Warn),
                ErrorLog {
                    target: LogTarget::Syslog(syslog("127.0.0.1:5514", 23, "postern", false)),
                    level: LogLevel::Info,
                },
            ]
        );
        // Neither: the main logs get the server's lines (an empty list).
        let config = parse(&with_mail("", "", &[""])).unwrap();
        assert!(config.servers[0].error_log.is_empty());
        assert_eq!(
            config.main.error_log,
            vec![ErrorLog {
                target: LogTarget::Stderr,
                level: LogLevel::Error
            }]
        );
    }

    #[test]
    fn refusals_name_file_and_line() {
        let rows: &[(&str, &str)] = &[
            ("error_log;", "invalid number of arguments in \"error_log\" directive"),
            ("error_log stderr loud;", "invalid log level \"loud\""),
            ("error_log stderr info warn;", "duplicate log level \"warn\""),
            ("error_log stderr info debug_mail;", "invalid log level \"debug_mail\""),
            (
                "error_log memory:32m debug;",
                "\"error_log memory:\" is not supported: it is nginx's debugging buffer",
            ),
            ("error_log syslog:;", "unknown syslog parameter \"\""),
            ("error_log syslog:tag=a;", "no syslog server specified"),
            (
                "error_log syslog:server=127.0.0.1,server=127.0.0.2;",
                "duplicate syslog \"server\"",
            ),
            (
                "error_log syslog:server=127.0.0.1,facility=local8;",
                "unknown syslog facility \"local8\"",
            ),
            (
                "error_log syslog:server=127.0.0.1,facility=mail,facility=user;",
                "duplicate syslog \"facility\"",
            ),
            (
                "error_log syslog:server=127.0.0.1,severity=loud;",
                "unknown syslog severity \"loud\"",
            ),
            (
                "error_log syslog:server=127.0.0.1,severity=info,severity=warn;",
                "duplicate syslog \"severity\"",
            ),
            (
                "error_log syslog:server=127.0.0.1,tag=a-b;",
                "syslog \"tag\" only allows alphanumeric characters and underscore",
            ),
            (
                "error_log syslog:server=127.0.0.1,tag=a,tag=b;",
                "duplicate syslog \"tag\"",
            ),
            (
                "error_log syslog:server=127.0.0.1,tag=abcdefghijabcdefghijabcdefghijabc;",
                "syslog tag length exceeds 32",
            ),
            (
                "error_log syslog:server=127.0.0.1,bogus;",
                "unknown syslog parameter \"bogus\"",
            ),
            (
                "error_log syslog:server=127.0.0.1:0;",
                "invalid port in syslog server \"127.0.0.1:0\"",
            ),
            (
                "error_log syslog:server=[::1;",
                "invalid IPv6 address in syslog server \"[::1\"",
            ),
            ("error_log syslog:server=:514;", "no host in syslog server \":514\""),
            (
                "error_log syslog:server=unix:;",
                "no path in the unix domain socket in syslog server \"unix:\"",
            ),
        ];
        for (line, want) in rows {
            let text = format!("\n{line}\n");
            assert_eq!(parse(&text).unwrap_err(), format!("{want} in {FILE}:2"), "{line}");
        }
        let text = with_mail("", " error_log syslog:server=127.0.0.1,nohostname=1;", &[""]);
        assert_eq!(
            parse(&text).unwrap_err(),
            format!("unknown syslog parameter \"nohostname=1\" in {FILE}:4")
        );
        let text = with_mail("", "", &["  error_log /x info error;"]);
        assert_eq!(
            parse(&text).unwrap_err(),
            format!("duplicate log level \"error\" in {FILE}:8")
        );
    }
}
