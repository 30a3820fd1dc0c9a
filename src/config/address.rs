//! Addresses in directives: the `listen` forms and the `auth_http` URL, with
//! host names resolved once, while the configuration is read (as nginx's
//! `ngx_parse_url` does), never per connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::model::{AuthHttp, AuthHttpTarget};

/// Looks host names up through the system resolver, at most once per
/// `(host, port)`: a name used at `mail` level is applied to every server.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    cache: HashMap<(String, u16), Vec<SocketAddr>>,
    /// Resolve nothing but IP literals: the fuzz targets read arbitrary
    /// text and must not wait on DNS for every word they make up.
    pub(crate) offline: bool,
}

impl Resolver {
    /// Every address of `host`, in the resolver's order; `None` when there
    /// is none. IP literals are taken as they are.
    pub(crate) fn resolve(&mut self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(vec![SocketAddr::new(ip, port)]);
        }
        if self.offline {
            return None;
        }
        let key = (host.to_string(), port);
        if let Some(found) = self.cache.get(&key) {
            return Some(found.clone());
        }
        let mut found: Vec<SocketAddr> = Vec::new();
        for addr in (host, port).to_socket_addrs().ok()? {
            if !found.contains(&addr) {
                found.push(addr);
            }
        }
        if found.is_empty() {
            return None;
        }
        self.cache.insert(key, found.clone());
        Some(found)
    }
}

/// A `host[:port]` split as written.
#[derive(Debug, PartialEq, Eq)]
struct HostPort<'a> {
    /// As written, brackets included for IPv6: what goes in a `Host` header.
    written: &'a str,
    /// What to resolve: brackets removed.
    bare: &'a str,
    port: Option<u16>,
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`. The errors are
/// `ngx_parse_url`'s words.
fn split_host_port(text: &str) -> Result<HostPort<'_>, &'static str> {
    let (written, bare, port) = if let Some(inner_and_rest) = text.strip_prefix('[') {
        let close = inner_and_rest.find(']').ok_or("invalid IPv6 address")?;
        let bare = &inner_and_rest[..close];
        if bare.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address");
        }
        let rest = &inner_and_rest[close + 1..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':').ok_or("invalid host")?),
        };
        (&text[..close + 2], bare, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, host, Some(port)),
            None => (text, text, None),
        }
    };
    if bare.is_empty() {
        return Err("no host");
    }
    let port = port.map(parse_port).transpose()?;
    Ok(HostPort { written, bare, port })
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    match super::values::parse_number(text) {
        Some(n @ 1..=65535) => u16::try_from(n).map_err(|_| "invalid port"),
        _ => Err("invalid port"),
    }
}

/// The addresses a `listen` address stands for: `*:110`, `110` (all IPv4
/// addresses, as nginx), `1.2.3.4:143`, `[::1]:110`, `[::]:110`, or a host
/// name with a port (every address it resolves to). `unix:` is the caller's.
/// Errors are `ngx_parse_url`'s words, for `... in "addr" of the "listen"
/// directive`.
pub(crate) fn listen_addrs(text: &str, resolver: &mut Resolver) -> Result<Vec<SocketAddr>, &'static str> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let port = parse_port(text)?;
        return Ok(vec![SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)]);
    }
    let hp = split_host_port(text)?;
    let port = hp.port.ok_or("no port")?;
    if hp.bare == "*" {
        return Ok(vec![SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)]);
    }
    resolver.resolve(hp.bare, port).ok_or("host not found")
}

/// The port of a `resolver` address written without one.
const DNS_PORT: u16 = 53;

/// The name servers one `resolver` address stands for: an IP (IPv6 in
/// brackets), or a host name and all its addresses, port 53 unless given.
pub(crate) fn resolver_addrs(text: &str, resolver: &mut Resolver) -> Result<Vec<SocketAddr>, &'static str> {
    // nginx also takes a bare IPv6 address, which has colons of its own.
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Ok(vec![SocketAddr::new(ip.into(), DNS_PORT)]);
    }
    let hp = split_host_port(text)?;
    resolver
        .resolve(hp.bare, hp.port.unwrap_or(DNS_PORT))
        .ok_or("host not found")
}

/// nginx's default for a URL without a port.
const HTTP_PORT: u16 = 80;

/// Parses an `auth_http` URL: `http://host[:port][/uri]`, the same without
/// the scheme, or `unix:/path[:/uri]`. A host name is resolved now and its
/// first address kept, as nginx does. Errors are whole messages.
pub(crate) fn auth_http(url: &str, resolver: &mut Resolver) -> Result<AuthHttp, String> {
    if strip_prefix_ignore_case(url, "https://").is_some() {
        return Err("https is not supported in \"auth_http\"".to_string());
    }
    let fail = |err: &str| format!("{err} in auth_http \"{url}\"");
    let rest = strip_prefix_ignore_case(url, "http://").unwrap_or(url);

    if let Some(path_and_uri) = rest.strip_prefix("unix:") {
        return auth_http_unix(path_and_uri).map_err(fail);
    }

    let (host_port, uri) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let hp = split_host_port(host_port).map_err(fail)?;
    let port = hp.port.unwrap_or(HTTP_PORT);
    let first = resolver
        .resolve(hp.bare, port)
        .and_then(|addrs| addrs.first().copied())
        .ok_or_else(|| fail("host not found"))?;
    Ok(AuthHttp {
        target: AuthHttpTarget::Tcp(first),
        host: hp.written.to_string(),
        uri: uri.to_string(),
    })
}

/// `unix:/path` or `unix:/path:/uri`: the path ends at the first colon, as in
/// nginx's `ngx_parse_unix_domain_url`.
fn auth_http_unix(path_and_uri: &str) -> Result<AuthHttp, &'static str> {
    let (path, uri) = match path_and_uri.split_once(':') {
        Some((path, uri)) => (path, uri),
        None => (path_and_uri, ""),
    };
    if path.is_empty() {
        return Err("no path in the unix domain socket");
    }
    let uri = match uri {
        "" => "/",
        // nginx would send it as is and the request line would be invalid.
        u if !u.starts_with('/') => return Err("invalid URI"),
        u => u,
    };
    Ok(AuthHttp {
        target: AuthHttpTarget::Unix(PathBuf::from(path)),
        host: "localhost".to_string(),
        uri: uri.to_string(),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_port_forms() {
        let hp = |written, bare, port| Ok(HostPort { written, bare, port });
        let rows: &[(&str, Result<HostPort<'_>, &str>)] = &[
            ("a", hp("a", "a", None)),
            ("a:1", hp("a", "a", Some(1))),
            ("1.2.3.4:65535", hp("1.2.3.4", "1.2.3.4", Some(65535))),
            ("[::1]", hp("[::1]", "::1", None)),
            ("[::1]:9000", hp("[::1]", "::1", Some(9000))),
            ("[::1]x", Err("invalid host")),
            ("[::1", Err("invalid IPv6 address")),
            ("[zz]:1", Err("invalid IPv6 address")),
            (":1", Err("no host")),
            ("", Err("no host")),
            ("a:0", Err("invalid port")),
            ("a:65536", Err("invalid port")),
            ("a:", Err("invalid port")),
            ("a:x", Err("invalid port")),
            ("a:-1", Err("invalid port")),
        ];
        for (text, want) in rows {
            assert_eq!(&split_host_port(text), want, "{text:?}");
        }
    }

    #[test]
    fn listen_forms() {
        let rows: &[(&str, Result<Vec<SocketAddr>, &str>)] = &[
            ("*:110", Ok(vec![sa("0.0.0.0:110")])),
            ("110", Ok(vec![sa("0.0.0.0:110")])),
            ("1.2.3.4:143", Ok(vec![sa("1.2.3.4:143")])),
            ("[::1]:110", Ok(vec![sa("[::1]:110")])),
            ("[::]:110", Ok(vec![sa("[::]:110")])),
            ("0", Err("invalid port")),
            ("70000", Err("invalid port")),
            ("*", Err("no port")),
            ("1.2.3.4", Err("no port")),
            ("[::1]", Err("no port")),
            (":143", Err("no host")),
            ("*:x", Err("invalid port")),
            ("no-such-host.invalid:143", Err("host not found")),
        ];
        for (text, want) in rows {
            assert_eq!(&listen_addrs(text, &mut Resolver::default()), want, "{text:?}");
        }
    }

    #[test]
    fn listen_host_name_gives_every_address() {
        let addrs = listen_addrs("localhost:110", &mut Resolver::default()).unwrap();
        assert!(addrs.contains(&sa("127.0.0.1:110")), "{addrs:?}");
        assert!(addrs.iter().all(|a| a.port() == 110 && a.ip().is_loopback()));
    }

    #[test]
    fn auth_http_forms() {
        let tcp = |addr: &str, host: &str, uri: &str| {
            Ok(AuthHttp {
                target: AuthHttpTarget::Tcp(sa(addr)),
                host: host.to_string(),
                uri: uri.to_string(),
            })
        };
        let unix = |path: &str, uri: &str| {
            Ok(AuthHttp {
                target: AuthHttpTarget::Unix(PathBuf::from(path)),
                host: "localhost".to_string(),
                uri: uri.to_string(),
            })
        };
        let rows: &[(&str, Result<AuthHttp, String>)] = &[
            ("127.0.0.1:9000/auth", tcp("127.0.0.1:9000", "127.0.0.1", "/auth")),
            ("http://127.0.0.1/", tcp("127.0.0.1:80", "127.0.0.1", "/")),
            ("http://127.0.0.1", tcp("127.0.0.1:80", "127.0.0.1", "/")),
            (
                "HTTP://127.0.0.1:81/a/b?c=d",
                tcp("127.0.0.1:81", "127.0.0.1", "/a/b?c=d"),
            ),
            ("127.0.0.1", tcp("127.0.0.1:80", "127.0.0.1", "/")),
            ("[::1]:9000/auth", tcp("[::1]:9000", "[::1]", "/auth")),
            ("unix:/tmp/a.sock:/auth", unix("/tmp/a.sock", "/auth")),
            ("unix:/tmp/a.sock", unix("/tmp/a.sock", "/")),
            ("http://unix:/tmp/a.sock:/x", unix("/tmp/a.sock", "/x")),
            (
                "https://127.0.0.1/auth",
                Err("https is not supported in \"auth_http\"".to_string()),
            ),
            (
                "HTTPS://127.0.0.1/auth",
                Err("https is not supported in \"auth_http\"".to_string()),
            ),
            (
                "unix:",
                Err("no path in the unix domain socket in auth_http \"unix:\"".to_string()),
            ),
            (
                "unix:/tmp/a.sock:auth",
                Err("invalid URI in auth_http \"unix:/tmp/a.sock:auth\"".to_string()),
            ),
            (
                "127.0.0.1:0/auth",
                Err("invalid port in auth_http \"127.0.0.1:0/auth\"".to_string()),
            ),
            ("/auth", Err("no host in auth_http \"/auth\"".to_string())),
            ("http://", Err("no host in auth_http \"http://\"".to_string())),
            (
                "no-such-host.invalid/auth",
                Err("host not found in auth_http \"no-such-host.invalid/auth\"".to_string()),
            ),
        ];
        for (url, want) in rows {
            assert_eq!(&auth_http(url, &mut Resolver::default()), want, "{url:?}");
        }
    }

    #[test]
    fn auth_http_host_name_keeps_the_name_for_the_host_header() {
        let got = auth_http("localhost:9000/cgi-bin/nginxauth.cgi", &mut Resolver::default()).unwrap();
        assert_eq!(got.host, "localhost");
        assert_eq!(got.uri, "/cgi-bin/nginxauth.cgi");
        match got.target {
            AuthHttpTarget::Tcp(addr) => {
                assert!(addr.ip().is_loopback());
                assert_eq!(addr.port(), 9000);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolver_caches_names() {
        let mut resolver = Resolver::default();
        let first = resolver.resolve("localhost", 1).unwrap();
        assert_eq!(resolver.cache.len(), 1);
        assert_eq!(resolver.resolve("localhost", 1).unwrap(), first);
        assert_eq!(resolver.cache.len(), 1);
        resolver.resolve("127.0.0.1", 1).unwrap();
        assert_eq!(resolver.cache.len(), 1, "literals are not cached");
    }
}
