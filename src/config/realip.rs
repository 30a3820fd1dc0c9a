//! `set_real_ip_from` and `proxy_protocol`, read as nginx's mail realip and
//! proxy modules read them: who may state the client's address in a PROXY
//! header, and which header Postern sends the backend.

use std::net::IpAddr;

use super::address::Resolver;

/// One `set_real_ip_from`: a network, or every unix-socket peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedPeer {
    /// An address and how many leading bits must match (32 or 128 for a
    /// single address).
    Net { addr: IpAddr, bits: u8 },
    /// `unix:`: connections on a unix-socket listener.
    Unix,
}

impl TrustedPeer {
    /// `peer` (`None` on a unix socket) is this one. An IPv4-mapped IPv6
    /// peer (a listener with `ipv6only=off`) is compared as the IPv4
    /// address it is.
    pub fn matches(&self, peer: Option<IpAddr>) -> bool {
        match (self, peer.map(|ip| ip.to_canonical())) {
            (TrustedPeer::Unix, None) => true,
            (TrustedPeer::Net { addr, bits }, Some(ip)) => match (addr, ip) {
                (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(&net.octets(), &ip.octets(), *bits),
                (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches(&net.octets(), &ip.octets(), *bits),
                _ => false,
            },
            _ => false,
        }
    }
}

/// The first `bits` bits of `a` and `b` agree.
fn prefix_matches(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let whole = bits / 8;
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Any of `trusted` matches `peer`.
pub fn trusted(trusted: &[TrustedPeer], peer: Option<IpAddr>) -> bool {
    trusted.iter().any(|t| t.matches(peer))
}

/// What one `set_real_ip_from` argument stands for: `unix:`, an address, a
/// CIDR (`192.0.2.0/24`, `2001:db8::/32`), or a host name resolved now to
/// every address it has. A CIDR with bits set past its prefix is taken
/// with them cleared, and a warning (nginx's "low address bits ... are
/// meaningless").
pub(crate) fn parse(text: &str, resolver: &mut Resolver) -> Result<(Vec<TrustedPeer>, Option<String>), String> {
    if text == "unix:" {
        return Ok((vec![TrustedPeer::Unix], None));
    }
    if let Some((addr, bits)) = text.split_once('/') {
        // nginx tries a text that is no CIDR as a host name: its words.
        let invalid = || format!("host not found in set_real_ip_from \"{text}\"");
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits: u8 = match super::values::parse_number(bits) {
            Some(n) if n <= max => u8::try_from(n).map_err(|_| invalid())?,
            _ => return Err(invalid()),
        };
        let net = cleared(addr, bits);
        let warning = (net != addr).then(|| format!("low address bits of {text} are meaningless"));
        return Ok((vec![TrustedPeer::Net { addr: net, bits }], warning));
    }
    let found = resolver
        .resolve(text, 0)
        .ok_or_else(|| format!("host not found in set_real_ip_from \"{text}\""))?;
    let peers = found
        .into_iter()
        .map(|a| TrustedPeer::Net {
            addr: a.ip(),
            bits: if a.is_ipv4() { 32 } else { 128 },
        })
        .collect();
    Ok((peers, None))
}

/// `addr` with the bits past `bits` cleared.
fn cleared(addr: IpAddr, bits: u8) -> IpAddr {
    let keep = |octets: &mut [u8]| {
        for (i, byte) in octets.iter_mut().enumerate() {
            let start = i * 8;
            let bits = usize::from(bits);
            if start >= bits {
                *byte = 0;
            } else if bits - start < 8 {
                *byte &= 0xffu8 << (8 - (bits - start));
            }
        }
    };
    match addr {
        IpAddr::V4(ip) => {
            let mut o = ip.octets();
            keep(&mut o);
            IpAddr::from(o)
        }
        IpAddr::V6(ip) => {
            let mut o = ip.octets();
            keep(&mut o);
            IpAddr::from(o)
        }
    }
}

/// `proxy_protocol off|on|v2`: the header sent to the backend before its
/// greeting. nginx has `on` (v1) and `off`; `v2` is Postern's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProxyProtocol {
    Off,
    V1,
    V2,
}

pub(crate) fn send_mode(word: &str) -> Option<SendProxyProtocol> {
    match word {
        "off" => Some(SendProxyProtocol::Off),
        "on" => Some(SendProxyProtocol::V1),
        "v2" => Some(SendProxyProtocol::V2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = Result<(Vec<TrustedPeer>, Option<String>), String>;

    fn one(text: &str) -> Read {
        let mut resolver = Resolver::default();
        resolver.offline = true;
        parse(text, &mut resolver)
    }

    fn net(text: &str, bits: u8) -> TrustedPeer {
        TrustedPeer::Net {
            addr: text.parse().unwrap(),
            bits,
        }
    }

    #[test]
    fn forms() {
        let rows: &[(&str, Read)] = &[
            ("unix:", Ok((vec![TrustedPeer::Unix], None))),
            ("127.0.0.1", Ok((vec![net("127.0.0.1", 32)], None))),
            ("::1", Ok((vec![net("::1", 128)], None))),
            ("10.0.0.0/8", Ok((vec![net("10.0.0.0", 8)], None))),
            ("0.0.0.0/0", Ok((vec![net("0.0.0.0", 0)], None))),
            ("2001:db8::/32", Ok((vec![net("2001:db8::", 32)], None))),
            (
                "10.1.2.3/8",
                Ok((
                    vec![net("10.0.0.0", 8)],
                    Some("low address bits of 10.1.2.3/8 are meaningless".into()),
                )),
            ),
            (
                "192.168.1.255/23",
                Ok((
                    vec![net("192.168.0.0", 23)],
                    Some("low address bits of 192.168.1.255/23 are meaningless".into()),
                )),
            ),
            (
                "10.0.0.0/33",
                Err("host not found in set_real_ip_from \"10.0.0.0/33\"".into()),
            ),
            ("::/129", Err("host not found in set_real_ip_from \"::/129\"".into())),
            (
                "10.0.0.0/",
                Err("host not found in set_real_ip_from \"10.0.0.0/\"".into()),
            ),
            ("x/8", Err("host not found in set_real_ip_from \"x/8\"".into())),
            (
                "unix:/tmp/x",
                Err("host not found in set_real_ip_from \"unix:/tmp/x\"".into()),
            ),
            (
                "no.such.host.invalid",
                Err("host not found in set_real_ip_from \"no.such.host.invalid\"".into()),
            ),
        ];
        for (text, want) in rows {
            assert_eq!(&one(text), want, "{text}");
        }
    }

    #[test]
    fn matching() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let rows: &[(TrustedPeer, Option<IpAddr>, bool)] = &[
            (net("127.0.0.1", 32), ip("127.0.0.1"), true),
            (net("127.0.0.1", 32), ip("127.0.0.2"), false),
            (net("10.0.0.0", 8), ip("10.255.1.2"), true),
            (net("10.0.0.0", 8), ip("11.0.0.1"), false),
            (net("192.168.0.0", 23), ip("192.168.1.200"), true),
            (net("192.168.0.0", 23), ip("192.168.2.1"), false),
            (net("0.0.0.0", 0), ip("203.0.113.9"), true),
            (net("0.0.0.0", 0), ip("::1"), false),
            (net("::", 0), ip("::1"), true),
            (net("2001:db8::", 32), ip("2001:db8:ffff::1"), true),
            (net("2001:db8::", 32), ip("2001:db9::1"), false),
            (net("127.0.0.1", 32), ip("::ffff:127.0.0.1"), true),
            (net("127.0.0.1", 32), None, false),
            (TrustedPeer::Unix, None, true),
            (TrustedPeer::Unix, ip("127.0.0.1"), false),
        ];
        for (peer, addr, want) in rows {
            assert_eq!(peer.matches(*addr), *want, "{peer:?} {addr:?}");
        }
        assert!(!trusted(&[], ip("127.0.0.1")));
        assert!(trusted(&[TrustedPeer::Unix, net("127.0.0.0", 8)], ip("127.9.9.9")));
    }
}

#[cfg(test)]
mod whole_file {
    use super::*;
    use crate::config::parse_str;
    use std::path::Path;

    const FILE: &str = "/etc/postern/postern.conf";

    fn servers(text: &str) -> Vec<crate::config::ServerConfig> {
        parse_str(text, Path::new(FILE))
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .servers
    }

    #[test]
    fn inherited_replaced_and_defaults() {
        let text = "mail {\n auth_http 127.0.0.1:9000;\n proxy_protocol on;\n set_real_ip_from 127.0.0.1;\n \
                    set_real_ip_from 10.0.0.0/8;\n server {\n  listen 143 proxy_protocol;\n }\n server {\n  \
                    listen 144 ssl proxy_protocol;\n  protocol imap;\n  ssl_certificate a;\n  ssl_certificate_key b;\n  \
                    proxy_protocol v2;\n  set_real_ip_from unix:;\n }\n}\n";
        let got = servers(text);
        assert_eq!(got[0].proxy_protocol, SendProxyProtocol::V1);
        assert_eq!(
            got[0].set_real_ip_from,
            vec![
                TrustedPeer::Net {
                    addr: "127.0.0.1".parse().unwrap(),
                    bits: 32
                },
                TrustedPeer::Net {
                    addr: "10.0.0.0".parse().unwrap(),
                    bits: 8
                },
            ]
        );
        assert!(got[0].listen[0].params.proxy_protocol);
        assert_eq!(got[1].proxy_protocol, SendProxyProtocol::V2);
        assert_eq!(got[1].set_real_ip_from, vec![TrustedPeer::Unix]);
        assert!(got[1].listen[0].params.proxy_protocol && got[1].listen[0].params.ssl);
        let plain = servers("mail {\n auth_http 127.0.0.1:9000;\n server {\n  listen 143;\n }\n}\n");
        assert_eq!(plain[0].proxy_protocol, SendProxyProtocol::Off);
        assert!(plain[0].set_real_ip_from.is_empty());
        assert!(!plain[0].listen[0].params.proxy_protocol);
    }

    #[test]
    fn errors_and_warnings() {
        let e = parse_str(
            "mail {\n auth_http 127.0.0.1:9000;\n server {\n  listen 143;\n  set_real_ip_from 1.2.3.4/40;\n }\n}\n",
            Path::new(FILE),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!("host not found in set_real_ip_from \"1.2.3.4/40\" in {FILE}:5")
        );
        let e = parse_str("mail {\n set_real_ip_from;\n}\n", Path::new(FILE))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("invalid number of arguments in \"set_real_ip_from\" directive in {FILE}:2")
        );
        let config = parse_str(
            "mail {\n auth_http 127.0.0.1:9000;\n set_real_ip_from 10.1.0.0/8;\n server {\n  listen 143;\n }\n}\n",
            Path::new(FILE),
        )
        .unwrap();
        assert_eq!(
            config.warnings,
            vec![format!("low address bits of 10.1.0.0/8 are meaningless in {FILE}:3")]
        );
    }
}
