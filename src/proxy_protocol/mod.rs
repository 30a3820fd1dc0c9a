//! HAProxy's PROXY protocol, versions 1 (text) and 2 (binary), sans-IO: a
//! balancer in front of Postern states the connection it accepted before
//! the client's first byte (`listen ... proxy_protocol`), and Postern states
//! its client's to the backend (`proxy_protocol on|v2`).
//!
//! - [`parse`] reads a header off the bytes received so far: `Incomplete`
//!   until it is whole (never an error), then `Done` with the bytes it took;
//!   the bytes after it belong to the mail protocol (or TLS).
//! - [`v1`] and [`v2`] build the header for the backend.
//!
//! No clock and no socket: the caller bounds the wait (`timeout`) and feeds
//! what it peeked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[cfg(test)]
mod tests;

/// The longest version 1 header, CRLF included (the specification's
/// figure for `PROXY TCP6` with the longest addresses and ports).
pub const V1_MAX_HEADER: usize = 107;

/// The longest version 2 header taken, TLVs included. The specification
/// allows 16 + 65535 bytes; a balancer's TLVs (ALPN, authority, SSL facts,
/// unique id) fit well within this, and a peer announcing more is holding
/// memory for nothing Postern reads.
pub const MAX_HEADER: usize = 4096;

/// The twelve bytes that open a version 2 header: chosen never to begin any
/// text protocol, and sure to fail one that read them.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Signature, version and command, family and transport, length.
const V2_FIXED: usize = 16;
/// Source and destination address and port, per family.
const V2_INET_BLOCK: usize = 12;
const V2_INET6_BLOCK: usize = 36;

const V1_PREFIX: &[u8] = b"PROXY ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The connection the balancer accepted: its client and its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    pub version: Version,
    /// `None` when the header states no TCP connection: v1 `UNKNOWN`, v2
    /// `LOCAL` (the balancer's own health check), v2 `AF_UNSPEC` or
    /// `AF_UNIX`. The connection's own addresses then stand.
    pub addresses: Option<Addresses>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Parsed {
    /// Every byte so far may open a header: wait for more.
    Incomplete,
    /// The header, and how many bytes of the input it took.
    Done { header: ProxyHeader, consumed: usize },
}

/// A header that is not one: the peer is not the balancer, or is broken.
/// Each is final: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The first bytes are neither `PROXY ` nor the v2 signature.
    NotProxy,
    /// v1: no CRLF within [`V1_MAX_HEADER`] bytes.
    V1TooLong,
    /// v1: the line is not `PROXY TCP4|TCP6 src dst sport dport` or
    /// `PROXY UNKNOWN...`.
    V1Malformed,
    /// v2: a version other than 2.
    V2Version(u8),
    /// v2: a command other than LOCAL (0) or PROXY (1).
    V2Command(u8),
    /// v2: a family or transport the specification does not define.
    V2Family(u8),
    /// v2: the address block is shorter than its family's.
    V2ShortAddresses,
    /// v2: the header announces more bytes than the limit.
    TooLarge { len: usize, limit: usize },
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::NotProxy => f.write_str("not a PROXY protocol header"),
            HeaderError::V1TooLong => write!(f, "PROXY protocol v1 header longer than {V1_MAX_HEADER} bytes"),
            HeaderError::V1Malformed => f.write_str("broken PROXY protocol v1 header"),
            HeaderError::V2Version(v) => write!(f, "PROXY protocol v2 header of unknown version {v}"),
            HeaderError::V2Command(c) => write!(f, "PROXY protocol v2 header with unknown command {c}"),
            HeaderError::V2Family(x) => write!(f, "PROXY protocol v2 header with unknown family 0x{x:02x}"),
            HeaderError::V2ShortAddresses => f.write_str("PROXY protocol v2 address block too short"),
            HeaderError::TooLarge { len, limit } => {
                write!(f, "PROXY protocol v2 header of {len} bytes, over the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Reads a header off `input`, the bytes received so far. `limit` bounds a
/// v2 header as a whole (at least [`V2_FIXED`] + 36 makes sense; Postern
/// passes [`MAX_HEADER`]); a v1 header is bounded by [`V1_MAX_HEADER`].
/// Garbage is refused as soon as a byte tells it apart, not at the limit.
pub fn parse(input: &[u8], limit: usize) -> Result<Parsed, HeaderError> {
    match input.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'\r') => parse_v2(input, limit),
        Some(_) => parse_v1(input),
    }
}

/// `input` so far agrees with `expected` byte for byte.
fn agrees(input: &[u8], expected: &[u8]) -> bool {
    let n = input.len().min(expected.len());
    input[..n] == expected[..n]
}

fn parse_v1(input: &[u8]) -> Result<Parsed, HeaderError> {
    if !agrees(input, V1_PREFIX) {
        return Err(HeaderError::NotProxy);
    }
    let window = &input[..input.len().min(V1_MAX_HEADER)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if input.len() >= V1_MAX_HEADER {
            Err(HeaderError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    // The line ends in CRLF; `lf` is past the prefix, which holds no LF.
    let line = match window[..lf].strip_suffix(b"\r") {
        Some(line) => &line[V1_PREFIX.len()..],
        None => return Err(HeaderError::V1Malformed),
    };
    let addresses = v1_fields(line).ok_or(HeaderError::V1Malformed)?;
    Ok(Parsed::Done {
        header: ProxyHeader {
            version: Version::V1,
            addresses,
        },
        consumed: lf + 1,
    })
}

/// The fields after `PROXY `: `None` when malformed, `Some(None)` for
/// UNKNOWN (whose rest the specification says to ignore).
fn v1_fields(line: &[u8]) -> Option<Option<Addresses>> {
    if line == b"UNKNOWN" || line.starts_with(b"UNKNOWN ") {
        return Some(None);
    }
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split(' ');
    let family = fields.next()?;
    let (source, destination, sport, dport) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let ip = |text: &str| -> Option<IpAddr> {
        match family {
            "TCP4" => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            "TCP6" => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            _ => None,
        }
    };
    Some(Some(Addresses {
        source: SocketAddr::new(ip(source)?, v1_port(sport)?),
        destination: SocketAddr::new(ip(destination)?, v1_port(dport)?),
    }))
}

/// 1 to 5 decimal digits, at most 65535.
fn v1_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(input: &[u8], limit: usize) -> Result<Parsed, HeaderError> {
    if !agrees(input, &V2_SIGNATURE) {
        return Err(HeaderError::NotProxy);
    }
    let Some(fixed) = input.get(..V2_FIXED) else {
        return Ok(Parsed::Incomplete);
    };
    let version_command = fixed[12];
    if version_command >> 4 != 2 {
        return Err(HeaderError::V2Version(version_command >> 4));
    }
    let proxied = match version_command & 0x0f {
        0 => false,
        1 => true,
        other => return Err(HeaderError::V2Command(other)),
    };
    let family_transport = fixed[13];
    // Families: UNSPEC, INET, INET6, UNIX; transports: UNSPEC, STREAM, DGRAM.
    if family_transport >> 4 > 3 || family_transport & 0x0f > 2 {
        return Err(HeaderError::V2Family(family_transport));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let total = V2_FIXED + len;
    if total > limit {
        return Err(HeaderError::TooLarge { len: total, limit });
    }
    let Some(block) = input.get(V2_FIXED..total) else {
        return Ok(Parsed::Incomplete);
    };
    // A LOCAL header's addresses, if any, are to be ignored; so are TLVs.
    let addresses = if proxied {
        v2_addresses(family_transport >> 4, block)?
    } else {
        None
    };
    Ok(Parsed::Done {
        header: ProxyHeader {
            version: Version::V2,
            addresses,
        },
        consumed: total,
    })
}

fn v2_addresses(family: u8, block: &[u8]) -> Result<Option<Addresses>, HeaderError> {
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family {
        1 => {
            if block.len() < V2_INET_BLOCK {
                return Err(HeaderError::V2ShortAddresses);
            }
            let ip = |at: usize| IpAddr::from([block[at], block[at + 1], block[at + 2], block[at + 3]]);
            Ok(Some(Addresses {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }))
        }
        2 => {
            if block.len() < V2_INET6_BLOCK {
                return Err(HeaderError::V2ShortAddresses);
            }
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::from(octets)
            };
            Ok(Some(Addresses {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }))
        }
        // UNSPEC and UNIX: no address Postern could use as a client's.
        _ => Ok(None),
    }
}

/// Both addresses in one family, as a header has one: an IPv4 one beside
/// an IPv6 one becomes IPv4-mapped, and two IPv4-mapped ones plain IPv4.
fn one_family(a: Addresses) -> Addresses {
    let v6 = |addr: SocketAddr| match addr.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    };
    let v4 = |addr: SocketAddr| match addr.ip() {
        IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(IpAddr::V4(ip), addr.port())),
        IpAddr::V4(_) => Some(addr),
    };
    if let (Some(source), Some(destination)) = (v4(a.source), v4(a.destination)) {
        return Addresses { source, destination };
    }
    Addresses {
        source: v6(a.source),
        destination: v6(a.destination),
    }
}

/// A version 1 header stating `addresses`; `PROXY UNKNOWN` without them
/// (a client on a unix socket).
pub fn v1(addresses: Option<Addresses>) -> Vec<u8> {
    let Some(a) = addresses.map(one_family) else {
        return b"PROXY UNKNOWN\r\n".to_vec();
    };
    let family = if a.source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        a.source.ip(),
        a.destination.ip(),
        a.source.port(),
        a.destination.port()
    )
    .into_bytes()
}

/// A version 2 header (command PROXY, TCP) stating `addresses`, without
/// TLVs; family UNSPEC without them, which the receiver reads as "use the
/// connection's own addresses".
pub fn v2(addresses: Option<Addresses>) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED + V2_INET6_BLOCK);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    let Some(a) = addresses.map(one_family) else {
        out.extend_from_slice(&[0x00, 0, 0]);
        return out;
    };
    match (a.source.ip(), a.destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&(V2_INET_BLOCK as u16).to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21);
            out.extend_from_slice(&(V2_INET6_BLOCK as u16).to_be_bytes());
            out.extend_from_slice(&v6_octets(s));
            out.extend_from_slice(&v6_octets(d));
        }
    }
    out.extend_from_slice(&a.source.port().to_be_bytes());
    out.extend_from_slice(&a.destination.port().to_be_bytes());
    out
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        IpAddr::V6(ip) => ip.octets(),
    }
}
