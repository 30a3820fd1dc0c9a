//! `load --proxy-protocol v1|v2`: the load generator plays the balancer and
//! opens each connection with a PROXY header stating itself, so a server
//! listening with `proxy_protocol` can be measured.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// The header for a connection from `source` to `destination`: TCP4 or
/// TCP6 by the source's family (both ends of a loopback connection share
/// it).
pub fn header(version: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        ProxyVersion::V2 => {
            let mut out = b"\r\n\r\n\0\r\nQUIT\n\x21".to_vec();
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.extend_from_slice(&[0x11, 0, 12]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    let v6 = |ip: IpAddr| match ip {
                        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
                        IpAddr::V6(ip) => ip.octets(),
                    };
                    out.extend_from_slice(&[0x21, 0, 36]);
                    out.extend_from_slice(&v6(s));
                    out.extend_from_slice(&v6(d));
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
            out
        }
    }
}

/// Writes the header for `stream`'s own connection, in one write.
pub fn send(version: ProxyVersion, stream: &mut TcpStream) -> io::Result<()> {
    let bytes = header(version, stream.local_addr()?, stream.peer_addr()?);
    stream.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let (s, d) = ("192.0.2.7:50000".parse().unwrap(), "127.0.0.1:143".parse().unwrap());
        assert_eq!(
            header(ProxyVersion::V1, s, d),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 50000 143\r\n"
        );
        assert_eq!(
            header(ProxyVersion::V2, s, d),
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x07\x7f\x00\x00\x01\xc3\x50\x00\x8f"
        );
    }
}
