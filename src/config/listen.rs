//! The parameters after a `listen` address, read as nginx's mail module
//! reads them (`ngx_mail_core_listen`), with its words for each error.

use std::time::Duration;

use super::model::{Keepalive, ListenParams};
use super::values::{parse_flag, parse_number, parse_seconds, parse_size};

/// Parameters nginx has that Postern does not do yet: refused, never run
/// without.
const NOT_YET: &[&str] = &["multipath"];

/// The parameters of one `listen`, nginx's defaults for those not given; a
/// parameter given twice keeps the last value, as nginx.
pub(crate) fn params(words: &[String]) -> Result<ListenParams, String> {
    let mut params = ListenParams::default();
    for word in words {
        param(&mut params, word)?;
    }
    Ok(params)
}

fn param(params: &mut ListenParams, word: &str) -> Result<(), String> {
    match word {
        "bind" => params.bind = true,
        "ssl" => params.ssl = true,
        "proxy_protocol" => params.proxy_protocol = true,
        // Every Postern listener is already one SO_REUSEPORT socket per core.
        "reuseport" => {}
        _ if NOT_YET.contains(&word) => return Err(format!("\"listen ... {word}\" is not supported yet")),
        _ => {
            if let Some(value) = word.strip_prefix("backlog=") {
                params.backlog = backlog(value).ok_or_else(|| format!("invalid backlog \"{word}\""))?;
            } else if let Some(value) = word.strip_prefix("rcvbuf=") {
                params.rcvbuf = Some(socket_buffer(value).ok_or_else(|| format!("invalid rcvbuf \"{word}\""))?);
            } else if let Some(value) = word.strip_prefix("sndbuf=") {
                params.sndbuf = Some(socket_buffer(value).ok_or_else(|| format!("invalid sndbuf \"{word}\""))?);
            } else if let Some(value) = word.strip_prefix("ipv6only=") {
                params.ipv6only = ipv6only(value).ok_or_else(|| format!("invalid ipv6only flags \"{value}\""))?;
            } else if let Some(value) = word.strip_prefix("so_keepalive=") {
                params.keepalive =
                    Some(keepalive(value).ok_or_else(|| format!("invalid so_keepalive value: \"{value}\""))?);
            } else {
                return Err(format!("the invalid \"{word}\" parameter"));
            }
        }
    }
    Ok(())
}

/// A positive `int`, as listen(2) takes it (nginx: digits only, not 0).
fn backlog(value: &str) -> Option<i32> {
    parse_number(value)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|&n| n > 0)
}

/// An nginx size that fits the `int` of SO_RCVBUF / SO_SNDBUF; 0 is taken,
/// as nginx does (the kernel then applies its minimum).
fn socket_buffer(value: &str) -> Option<usize> {
    parse_size(value).filter(|&n| i32::try_from(n).is_ok())
}

/// `on` or `off` exactly, as nginx compares them here (not `ON`).
fn ipv6only(value: &str) -> Option<bool> {
    match value {
        "on" | "off" => parse_flag(value),
        _ => None,
    }
}

/// `on`, `off`, or `[idle]:[intvl]:[cnt]`: times in whole seconds and a
/// count, each may be left empty (`30m::10`, `::5`, `1h`). A field of 0 is
/// no value, as in nginx, and at least one field must have one.
fn keepalive(value: &str) -> Option<Keepalive> {
    match value {
        "on" => return Some(Keepalive::On),
        "off" => return Some(Keepalive::Off),
        _ => {}
    }
    let mut fields = value.splitn(3, ':');
    let mut time = || -> Option<Option<Duration>> {
        match fields.next().unwrap_or("") {
            "" => Some(None),
            text => Some(Some(parse_seconds(text)?).filter(|t| !t.is_zero())),
        }
    };
    let idle = time()?;
    let interval = time()?;
    let count = match fields.next().unwrap_or("") {
        "" => None,
        text => Some(u32::try_from(parse_number(text)?).ok()?).filter(|&n| n > 0),
    };
    if idle.is_none() && interval.is_none() && count.is_none() {
        return None;
    }
    Some(Keepalive::Tuned { idle, interval, count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::DEFAULT_BACKLOG;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn tuned(idle: Option<u64>, interval: Option<u64>, count: Option<u32>) -> Option<Keepalive> {
        Some(Keepalive::Tuned {
            idle: idle.map(Duration::from_secs),
            interval: interval.map(Duration::from_secs),
            count,
        })
    }

    #[test]
    fn defaults() {
        let got = params(&[]).unwrap();
        assert_eq!(
            got,
            ListenParams {
                bind: false,
                backlog: DEFAULT_BACKLOG,
                rcvbuf: None,
                sndbuf: None,
                ipv6only: true,
                keepalive: None,
                ssl: false,
                proxy_protocol: false,
            }
        );
        assert_eq!(DEFAULT_BACKLOG, 511);
    }

    #[test]
    fn accepted() {
        let d = ListenParams::default;
        let rows: Vec<(&str, ListenParams)> = vec![
            ("bind", ListenParams { bind: true, ..d() }),
            ("reuseport", d()),
            ("ssl", ListenParams { ssl: true, ..d() }),
            (
                "ssl proxy_protocol",
                ListenParams {
                    ssl: true,
                    proxy_protocol: true,
                    ..d()
                },
            ),
            ("backlog=1", ListenParams { backlog: 1, ..d() }),
            ("backlog=4096", ListenParams { backlog: 4096, ..d() }),
            (
                "backlog=2147483647",
                ListenParams {
                    backlog: i32::MAX,
                    ..d()
                },
            ),
            ("backlog=1 backlog=2", ListenParams { backlog: 2, ..d() }),
            (
                "rcvbuf=64k",
                ListenParams {
                    rcvbuf: Some(65536),
                    ..d()
                },
            ),
            ("rcvbuf=0", ListenParams { rcvbuf: Some(0), ..d() }),
            (
                "sndbuf=1m",
                ListenParams {
                    sndbuf: Some(1 << 20),
                    ..d()
                },
            ),
            (
                "sndbuf=1000",
                ListenParams {
                    sndbuf: Some(1000),
                    ..d()
                },
            ),
            ("ipv6only=off", ListenParams { ipv6only: false, ..d() }),
            ("ipv6only=on", ListenParams { ipv6only: true, ..d() }),
            (
                "so_keepalive=on",
                ListenParams {
                    keepalive: Some(Keepalive::On),
                    ..d()
                },
            ),
            (
                "so_keepalive=off",
                ListenParams {
                    keepalive: Some(Keepalive::Off),
                    ..d()
                },
            ),
            (
                "bind backlog=64 rcvbuf=8k sndbuf=16k ipv6only=off so_keepalive=30m::10 reuseport",
                ListenParams {
                    bind: true,
                    backlog: 64,
                    rcvbuf: Some(8192),
                    sndbuf: Some(16384),
                    ipv6only: false,
                    keepalive: tuned(Some(1800), None, Some(10)),
                    ssl: false,
                    proxy_protocol: false,
                },
            ),
        ];
        for (text, want) in rows {
            assert_eq!(params(&words(text)), Ok(want), "{text}");
        }
    }

    #[test]
    fn keepalive_forms() {
        let rows: &[(&str, Option<Keepalive>)] = &[
            ("on", Some(Keepalive::On)),
            ("off", Some(Keepalive::Off)),
            ("30m::10", tuned(Some(1800), None, Some(10))),
            ("1h:30s:5", tuned(Some(3600), Some(30), Some(5))),
            ("60", tuned(Some(60), None, None)),
            ("60:", tuned(Some(60), None, None)),
            (":10", tuned(None, Some(10), None)),
            ("::3", tuned(None, None, Some(3))),
            ("0:10:0", tuned(None, Some(10), None)),
            ("1m30s::", tuned(Some(90), None, None)),
            ("", None),
            (":", None),
            ("::", None),
            ("0:0:0", None),
            ("0", None),
            ("ON", None),
            ("500ms::", None),
            ("x::", None),
            (":x:", None),
            ("::x", None),
            ("::-1", None),
            ("::1:2", None),
            ("::4294967296", None),
        ];
        for &(text, want) in rows {
            assert_eq!(keepalive(text), want, "{text:?}");
        }
    }

    #[test]
    fn refused() {
        let rows: &[(&str, &str)] = &[
            ("multipath", "\"listen ... multipath\" is not supported yet"),
            ("backlog=0", "invalid backlog \"backlog=0\""),
            ("backlog=-1", "invalid backlog \"backlog=-1\""),
            ("backlog=", "invalid backlog \"backlog=\""),
            ("backlog=1k", "invalid backlog \"backlog=1k\""),
            ("backlog=2147483648", "invalid backlog \"backlog=2147483648\""),
            ("rcvbuf=", "invalid rcvbuf \"rcvbuf=\""),
            ("rcvbuf=1x", "invalid rcvbuf \"rcvbuf=1x\""),
            ("rcvbuf=2g", "invalid rcvbuf \"rcvbuf=2g\""),
            ("sndbuf=-5", "invalid sndbuf \"sndbuf=-5\""),
            ("ipv6only=yes", "invalid ipv6only flags \"yes\""),
            ("ipv6only=ON", "invalid ipv6only flags \"ON\""),
            ("ipv6only=", "invalid ipv6only flags \"\""),
            ("so_keepalive=", "invalid so_keepalive value: \"\""),
            ("so_keepalive=::", "invalid so_keepalive value: \"::\""),
            ("so_keepalive=1x", "invalid so_keepalive value: \"1x\""),
            ("ssl=1", "the invalid \"ssl=1\" parameter"),
            ("backlog", "the invalid \"backlog\" parameter"),
            ("BIND", "the invalid \"BIND\" parameter"),
            ("fast", "the invalid \"fast\" parameter"),
            ("bind fast", "the invalid \"fast\" parameter"),
            ("fast ssl", "the invalid \"fast\" parameter"),
        ];
        for &(text, want) in rows {
            assert_eq!(params(&words(text)), Err(want.to_string()), "{text}");
        }
    }
}
