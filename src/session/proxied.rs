//! The PROXY protocol on a session's two sides: the header a balancer sends
//! before anything else (`listen ... proxy_protocol`), which may give the
//! client's address (`set_real_ip_from`), and the header sent to the
//! backend (`proxy_protocol on|v2`). The parsing and building are
//! `crate::proxy_protocol`'s; this is the socket side.

use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use crate::config::{SendProxyProtocol, TrustedPeer};
use crate::proxy_protocol::{self, Addresses, Parsed, ProxyHeader};

/// Reads the PROXY header, all of it and nothing past it, within
/// `timeout` (zero: no limit) as a whole, so that a balancer, or whoever
/// connects in its place, trickling bytes cannot hold the session.
///
/// The socket is peeked, not read: what follows the header (a command, or
/// a TLS ClientHello) stays in the socket for the next reader, rustls
/// included. Bytes peeked while the header is incomplete are all header,
/// so they are consumed before peeking again: a peek then waits for new
/// bytes instead of returning the same ones at once.
pub(super) async fn read_header(client: &mut TcpStream, timeout: Duration) -> Result<ProxyHeader, String> {
    if timeout.is_zero() {
        return read_header_unbounded(client).await;
    }
    match glommio::timer::timeout(timeout, async { Ok(read_header_unbounded(client).await) }).await {
        Ok(read) => read,
        Err(_) => Err("client timed out while sending the PROXY protocol header".to_string()),
    }
}

async fn read_header_unbounded(client: &mut TcpStream) -> Result<ProxyHeader, String> {
    let limit = proxy_protocol::MAX_HEADER;
    let mut taken: Vec<u8> = Vec::new();
    let mut peeked = vec![0u8; limit];
    loop {
        // The parser refuses a header before it reaches the limit, so
        // there is always room; an empty window would read as end of file.
        let room = limit.saturating_sub(taken.len());
        if room == 0 {
            return Err("PROXY protocol header over its limit".to_string());
        }
        let n = client
            .peek(&mut peeked[..room])
            .await
            .map_err(|e| format!("reading the PROXY protocol header: {e}"))?;
        if n == 0 {
            return Err("client closed connection while sending the PROXY protocol header".to_string());
        }
        let so_far = [taken.as_slice(), &peeked[..n]].concat();
        match proxy_protocol::parse(&so_far, limit) {
            Ok(Parsed::Done { header, consumed }) => {
                // `consumed` is past `taken`: what was taken was incomplete.
                let rest = consumed.saturating_sub(taken.len());
                consume(client, rest).await?;
                return Ok(header);
            }
            Ok(Parsed::Incomplete) => {
                consume(client, n).await?;
                taken.extend_from_slice(&peeked[..n]);
            }
            Err(e) => {
                let shown =
                    crate::protocol::line::printable(&so_far[..so_far.len().min(proxy_protocol::V1_MAX_HEADER)]);
                return Err(format!("{e}: \"{shown}\""));
            }
        }
    }
}

/// Reads and drops `n` bytes known to be in the socket already (peeked).
async fn consume(client: &mut TcpStream, n: usize) -> Result<(), String> {
    let mut sink = vec![0u8; n];
    client
        .read_exact(&mut sink)
        .await
        .map_err(|e| format!("reading the PROXY protocol header: {e}"))
}

/// The address the session gives its client: the header's source when the
/// connection's peer (`None`: a unix socket) is trusted, else the peer, as
/// nginx's mail realip module.
pub(super) fn real_client(
    peer: Option<SocketAddr>,
    header: &ProxyHeader,
    trusted: &[TrustedPeer],
) -> Option<SocketAddr> {
    match header.addresses {
        Some(a) if crate::config::trusted(trusted, peer.map(|p| p.ip())) => Some(a.source),
        _ => peer,
    }
}

/// The header for the backend, stating the client (after realip) and the
/// address it connected to (Postern's own socket, as nginx: not the
/// balancer's). A client on a unix socket has no address to state.
pub(super) fn backend_preface(
    mode: SendProxyProtocol,
    client: Option<SocketAddr>,
    local: Option<SocketAddr>,
) -> Option<Vec<u8>> {
    let addresses = client.map(|source| Addresses {
        source,
        // A TCP client reached through a unix-socket listener (realip):
        // no local address, the loopback of its family stands in, as nginx.
        destination: local.unwrap_or_else(|| match source {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
        }),
    });
    match mode {
        SendProxyProtocol::Off => None,
        SendProxyProtocol::V1 => Some(proxy_protocol::v1(addresses)),
        SendProxyProtocol::V2 => Some(proxy_protocol::v2(addresses)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_protocol::Version;

    fn header(source: &str) -> ProxyHeader {
        ProxyHeader {
            version: Version::V1,
            addresses: Some(Addresses {
                source: source.parse().unwrap(),
                destination: "192.0.2.1:143".parse().unwrap(),
            }),
        }
    }

    #[test]
    fn realip_only_from_trusted_peers() {
        let lb: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        let net = |a: &str, bits| TrustedPeer::Net {
            addr: a.parse().unwrap(),
            bits,
        };
        let real: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let none = ProxyHeader {
            version: Version::V2,
            addresses: None,
        };
        type Row = (Option<SocketAddr>, ProxyHeader, Vec<TrustedPeer>, Option<SocketAddr>);
        let rows: Vec<Row> = vec![
            (
                Some(lb),
                header("203.0.113.9:5555"),
                vec![net("10.0.0.0", 8)],
                Some(real),
            ),
            (
                Some(lb),
                header("203.0.113.9:5555"),
                vec![net("10.0.0.6", 32)],
                Some(lb),
            ),
            (Some(lb), header("203.0.113.9:5555"), vec![], Some(lb)),
            (Some(lb), none, vec![net("10.0.0.0", 8)], Some(lb)),
            (None, header("203.0.113.9:5555"), vec![TrustedPeer::Unix], Some(real)),
            (None, header("203.0.113.9:5555"), vec![net("0.0.0.0", 0)], None),
        ];
        for (peer, header, trusted, want) in rows {
            assert_eq!(real_client(peer, &header, &trusted), want, "{peer:?} {trusted:?}");
        }
    }

    #[test]
    fn backend_prefaces() {
        let (source, destination) = ("203.0.113.9:5555".parse().unwrap(), "192.0.2.1:143".parse().unwrap());
        let (client, local) = (Some(source), Some(destination));
        assert_eq!(backend_preface(SendProxyProtocol::Off, client, local), None);
        assert_eq!(
            backend_preface(SendProxyProtocol::V1, client, local).unwrap(),
            b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 143\r\n"
        );
        assert_eq!(
            backend_preface(SendProxyProtocol::V1, None, None).unwrap(),
            b"PROXY UNKNOWN\r\n"
        );
        assert_eq!(
            backend_preface(SendProxyProtocol::V1, client, None).unwrap(),
            b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 0\r\n"
        );
        let v2 = backend_preface(SendProxyProtocol::V2, client, local).unwrap();
        assert_eq!(v2, proxy_protocol::v2(Some(Addresses { source, destination })));
    }

    /// nginx's place for them: after Client-Host, before the SMTP envelope.
    #[test]
    fn auth_request_headers_in_nginx_order() {
        use crate::auth::request::{build, RequestContext};
        use crate::auth::{AuthMethod, AuthRequest, Secret, SmtpEnvelope};
        let req = AuthRequest {
            method: AuthMethod::None,
            user: Vec::new(),
            pass: Secret::default(),
            protocol: crate::config::Protocol::Smtp,
            attempt: 1,
            salt: None,
            envelope: Some(SmtpEnvelope {
                helo: b"h".to_vec(),
                from: b"MAIL FROM:<a@b>".to_vec(),
                to: b"RCPT TO:<c@d>".to_vec(),
            }),
        };
        let ctx = RequestContext {
            uri: "/",
            host: "auth",
            client_ip: Some("203.0.113.9".parse().unwrap()),
            headers: &[],
            client_host: Some("[UNAVAILABLE]"),
            keep_alive: false,
            tls: None,
            proxy_protocol: header("203.0.113.9:5555").addresses,
            client_port: None,
            server_addr: None,
            server_name: "mx",
            client_id: None,
        };
        assert_eq!(
            String::from_utf8(build(&req, &ctx)).unwrap(),
            "GET / HTTP/1.0\r\nHost: auth\r\nAuth-Method: none\r\nAuth-User: \r\nAuth-Pass: \r\n\
             Auth-Protocol: smtp\r\nAuth-Login-Attempt: 1\r\nClient-IP: 203.0.113.9\r\n\
             Client-Host: [UNAVAILABLE]\r\nProxy-Protocol-Addr: 203.0.113.9\r\nProxy-Protocol-Port: 5555\r\n\
             Proxy-Protocol-Server-Addr: 192.0.2.1\r\nProxy-Protocol-Server-Port: 143\r\n\
             Auth-SMTP-Helo: h\r\nAuth-SMTP-From: MAIL%20FROM:<a@b>\r\nAuth-SMTP-To: RCPT%20TO:<c@d>\r\n\r\n"
        );
    }
}
