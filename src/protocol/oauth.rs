//! OAuth 2.0 bearer tokens over SASL, shared by the three front ends and
//! the backend logins: OAUTHBEARER (RFC 7628) and Google's XOAUTH2.
//!
//! OAUTHBEARER's message is a GS2 header (RFC 5801) and key/value pairs:
//! `n,a=user,` `\x01host=imap.example.com\x01port=993\x01auth=Bearer TOKEN\x01\x01`.
//! XOAUTH2's is `user=USER\x01auth=Bearer TOKEN\x01\x01`. Either way the
//! client proves nothing but possession of the token: Postern hands it to
//! the auth server as `Auth-Pass`, and on failure plays the mechanism's
//! error exchange (a base64 JSON challenge, the client's dummy answer,
//! then the failure).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

pub use crate::auth::OAuthMechanism;

/// The error challenge when the auth server sends no `Auth-Error-SASL`:
/// RFC 7628 3.2.2's `invalid_token`, with the scheme as Google and Dovecot
/// name it. Empty scope: Postern does not know what the auth server wants.
pub const DEFAULT_ERROR_JSON: &str = r#"{"status":"invalid_token","schemes":"bearer","scope":""}"#;

/// What a client's OAUTHBEARER or XOAUTH2 message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    /// OAUTHBEARER's authzid (`a=`, unescaped; empty when absent: the
    /// auth server then names the user with `Auth-User`), XOAUTH2's `user=`.
    pub user: Vec<u8>,
    /// The b64token of `auth=Bearer <token>`, checked against RFC 6750's
    /// alphabet: it goes into an HTTP header and backend command lines.
    pub token: Vec<u8>,
    /// OAUTHBEARER's optional `host=` and `port=`; informational only.
    pub host: Option<Vec<u8>>,
    pub port: Option<u16>,
}

/// Why a client's message was refused; each is the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not the mechanism's syntax.
    Malformed,
    /// OAUTHBEARER with `y` or `p=` in the GS2 header: RFC 7628 defines no
    /// channel binding, and a client that asks for it must not be let
    /// through as if it had none.
    ChannelBinding,
    /// No `auth=` pair, or not `Bearer` with a b64token.
    NoBearer,
}

impl OAuthMechanism {
    /// The SASL name, as advertised and as clients spell it (any case).
    pub fn sasl_name(self) -> &'static str {
        match self {
            OAuthMechanism::OAuthBearer => "OAUTHBEARER",
            OAuthMechanism::XOAuth2 => "XOAUTH2",
        }
    }

    pub fn from_sasl_name(word: &[u8]) -> Option<OAuthMechanism> {
        [OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2]
            .into_iter()
            .find(|m| word.eq_ignore_ascii_case(m.sasl_name().as_bytes()))
    }

    /// Parses a decoded client message.
    pub fn parse(self, message: &[u8]) -> Result<Bearer, Invalid> {
        match self {
            OAuthMechanism::OAuthBearer => parse_oauthbearer(message),
            OAuthMechanism::XOAuth2 => parse_xoauth2(message),
        }
    }

    /// The message a client (Postern, to a backend) sends for `user` and
    /// `token`; `host` and `port` are left out, as RFC 7628 allows.
    pub fn message(self, user: &[u8], token: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(user.len() + token.len() + 32);
        match self {
            OAuthMechanism::OAuthBearer => {
                out.extend_from_slice(b"n,");
                if !user.is_empty() {
                    out.extend_from_slice(b"a=");
                    // RFC 5801 saslname: `,` and `=` are escaped.
                    for &b in user {
                        match b {
                            b',' => out.extend_from_slice(b"=2C"),
                            b'=' => out.extend_from_slice(b"=3D"),
                            _ => out.push(b),
                        }
                    }
                }
                out.extend_from_slice(b",\x01auth=Bearer ");
            }
            OAuthMechanism::XOAuth2 => {
                out.extend_from_slice(b"user=");
                out.extend_from_slice(user);
                out.extend_from_slice(b"\x01auth=Bearer ");
            }
        }
        out.extend_from_slice(token);
        out.extend_from_slice(b"\x01\x01");
        out
    }

    /// The client's answer to an error challenge: `\x01` for OAUTHBEARER
    /// (RFC 7628 3.2.3), an empty response for XOAUTH2 (Google's). Base64,
    /// as sent on a line; empty means an empty line.
    pub fn dummy_response(self) -> &'static [u8] {
        match self {
            OAuthMechanism::OAuthBearer => b"AQ==",
            OAuthMechanism::XOAuth2 => b"",
        }
    }
}

/// The base64 error challenge for the client: the auth server's
/// `Auth-Error-SASL` (already base64, see `auth::reply`), else the default.
pub fn error_challenge(sasl_error: Option<&[u8]>) -> Vec<u8> {
    match sasl_error {
        Some(encoded) => encoded.to_vec(),
        None => BASE64.encode(DEFAULT_ERROR_JSON).into_bytes(),
    }
}

/// The longest client line that may carry an OAuth message: the token at
/// its bound, base64-encoded, and the client buffer again for the command,
/// the GS2 header and the other pairs (whose own size the client buffer
/// already bounds for every other command).
pub fn line_limit(client_buffer: usize, max_token: usize) -> usize {
    client_buffer.saturating_add(base64_len(max_token.saturating_add(client_buffer)))
}

/// The OAuth mechanisms a `*_auth` list enables, in advertising order.
pub fn enabled(auth: &[crate::config::AuthMethod]) -> Vec<OAuthMechanism> {
    use crate::config::AuthMethod;
    [
        (AuthMethod::OAuthBearer, OAuthMechanism::OAuthBearer),
        (AuthMethod::XOAuth2, OAuthMechanism::XOAuth2),
    ]
    .into_iter()
    .filter_map(|(method, mechanism)| auth.contains(&method).then_some(mechanism))
    .collect()
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}

/// `gs2-header kvsep *(kvpair kvsep) kvsep`, RFC 7628 3.1.
fn parse_oauthbearer(message: &[u8]) -> Result<Bearer, Invalid> {
    let (flag, rest) = split_at_byte(message, b',').ok_or(Invalid::Malformed)?;
    match flag {
        b"n" => {}
        b"y" => return Err(Invalid::ChannelBinding),
        f if f.starts_with(b"p=") => return Err(Invalid::ChannelBinding),
        _ => return Err(Invalid::Malformed),
    }
    let (authzid, pairs) = split_at_byte(rest, b',').ok_or(Invalid::Malformed)?;
    let user = match authzid {
        b"" => Vec::new(),
        a => unescape_saslname(a.strip_prefix(b"a=").ok_or(Invalid::Malformed)?)?,
    };
    let pairs = pairs.strip_prefix(b"\x01").ok_or(Invalid::Malformed)?;
    let mut bearer = Bearer {
        user,
        token: Vec::new(),
        host: None,
        port: None,
    };
    for (key, value) in kv_pairs(pairs)? {
        match key {
            b"auth" => bearer.token = bearer_token(value)?,
            b"host" => bearer.host = Some(value.to_vec()),
            b"port" => {
                let port = std::str::from_utf8(value).ok().and_then(|p| p.parse().ok());
                bearer.port = Some(port.ok_or(Invalid::Malformed)?);
            }
            // RFC 7628 3.1: other keys are extensions, ignored.
            _ => {}
        }
    }
    if bearer.token.is_empty() {
        return Err(Invalid::NoBearer);
    }
    Ok(bearer)
}

/// `user=USER\x01auth=Bearer TOKEN\x01\x01`.
fn parse_xoauth2(message: &[u8]) -> Result<Bearer, Invalid> {
    let mut user = None;
    let mut token = None;
    for (key, value) in kv_pairs(message)? {
        match key {
            b"user" => user = Some(value.to_vec()),
            b"auth" => token = Some(bearer_token(value)?),
            _ => {}
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or(Invalid::Malformed)?;
    Ok(Bearer {
        user,
        token: token.ok_or(Invalid::NoBearer)?,
        host: None,
        port: None,
    })
}

/// One `key=value` of an OAuth message, borrowed from it.
type KvPair<'a> = (&'a [u8], &'a [u8]);

/// `*(key "=" value %x01) %x01`, the whole of `pairs`: keys are letters,
/// values any byte but `\x01` (RFC 7628 allows VCHAR, SP, HTAB, CR, LF;
/// the value that matters, the token, is checked on its own).
fn kv_pairs(pairs: &[u8]) -> Result<Vec<KvPair<'_>>, Invalid> {
    let body = pairs.strip_suffix(b"\x01").ok_or(Invalid::Malformed)?;
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let body = body.strip_suffix(b"\x01").ok_or(Invalid::Malformed)?;
    body.split(|&b| b == 1)
        .map(|pair| {
            let (key, value) = split_at_byte(pair, b'=').ok_or(Invalid::Malformed)?;
            if key.is_empty() || !key.iter().all(u8::is_ascii_alphabetic) {
                return Err(Invalid::Malformed);
            }
            Ok((key, value))
        })
        .collect()
}

/// `Bearer 1*SP b64token` (RFC 6750 2.1), the scheme in any case.
fn bearer_token(value: &[u8]) -> Result<Vec<u8>, Invalid> {
    let scheme = value.get(..7).ok_or(Invalid::NoBearer)?;
    if !scheme.eq_ignore_ascii_case(b"Bearer ") {
        return Err(Invalid::NoBearer);
    }
    let token = value[7..].trim_ascii_start();
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let body_ok = token[..body_len]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if body_len == 0 || !body_ok {
        return Err(Invalid::NoBearer);
    }
    Ok(token.to_vec())
}

/// RFC 5801 saslname: `=2C` is `,`, `=3D` is `=`, any other `=` or a raw
/// `,` is invalid.
fn unescape_saslname(name: &[u8]) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'=' => {
                match name.get(i + 1..i + 3) {
                    Some(b"2C") | Some(b"2c") => out.push(b','),
                    Some(b"3D") | Some(b"3d") => out.push(b'='),
                    _ => return Err(Invalid::Malformed),
                }
                i += 3;
            }
            b',' | 0 => return Err(Invalid::Malformed),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn split_at_byte(input: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = memchr::memchr(sep, input)?;
    Some((&input[..at], &input[at + 1..]))
}

/// Whether `line` (the first bytes of a client line, at most a client
/// buffer of them) starts a command that carries an OAuth initial response
/// with one of `enabled`: `prefix` is the command (`AUTH `, or IMAP's
/// `tag AUTHENTICATE `), then the mechanism, then a space. Such a line may
/// be longer than the client buffer (`line_limit`).
pub fn starts_initial_response(line: &[u8], prefix_len: usize, enabled: &[OAuthMechanism]) -> Option<OAuthMechanism> {
    let rest = line.get(prefix_len..)?;
    let space = memchr::memchr(b' ', rest)?;
    OAuthMechanism::from_sasl_name(&rest[..space]).filter(|m| enabled.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(user: &str, token: &str) -> Bearer {
        Bearer {
            user: user.as_bytes().to_vec(),
            token: token.as_bytes().to_vec(),
            host: None,
            port: None,
        }
    }

    /// RFC 7628 section 4.1's example message, byte for byte.
    #[test]
    fn rfc7628_example() {
        let message = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
                        auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        assert_eq!(
            BASE64.encode(message),
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
        );
        assert_eq!(
            OAuthMechanism::OAuthBearer.parse(message),
            Ok(Bearer {
                host: Some(b"server.example.com".to_vec()),
                port: Some(143),
                ..bearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")
            })
        );
    }

    #[test]
    fn oauthbearer_rows() {
        let m = OAuthMechanism::OAuthBearer;
        let rows: &[(&[u8], Result<Bearer, Invalid>)] = &[
            (b"n,a=bob,\x01auth=Bearer T0k.en\x01\x01", Ok(bearer("bob", "T0k.en"))),
            (b"n,,\x01auth=bearer  abc\x01\x01", Ok(bearer("", "abc"))),
            (b"n,a=a=2Cb=3Dc,\x01auth=BEARER x\x01\x01", Ok(bearer("a,b=c", "x"))),
            (b"n,a=bob,\x01x=1\x01auth=Bearer t\x01\x01", Ok(bearer("bob", "t"))),
            (b"y,a=bob,\x01auth=Bearer t\x01\x01", Err(Invalid::ChannelBinding)),
            (
                b"p=tls-unique,a=bob,\x01auth=Bearer t\x01\x01",
                Err(Invalid::ChannelBinding),
            ),
            (b"n,a=bob,\x01\x01", Err(Invalid::NoBearer)),
            (b"n,a=bob,\x01auth=Basic dDp0\x01\x01", Err(Invalid::NoBearer)),
            (b"n,a=bob,\x01auth=Bearer a b\x01\x01", Err(Invalid::NoBearer)),
            (b"n,a=bob,\x01auth=Bearer a\r\nb\x01\x01", Err(Invalid::NoBearer)),
            (b"n,a=bob,\x01auth=Bearer ==\x01\x01", Err(Invalid::NoBearer)),
            (b"n,a=bob,\x01auth=Bearer t\x01", Err(Invalid::Malformed)),
            (b"n,a=bob,auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"n,a=b=4,\x01auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"n,u=bob,\x01auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"n,a=bob,\x01port=x\x01auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"x,,\x01auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"", Err(Invalid::Malformed)),
            (b"\x01", Err(Invalid::Malformed)),
        ];
        for (input, want) in rows {
            assert_eq!(&m.parse(input), want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn xoauth2_rows() {
        let m = OAuthMechanism::XOAuth2;
        let rows: &[(&[u8], Result<Bearer, Invalid>)] = &[
            (
                b"user=bob@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01",
                Ok(bearer(
                    "bob@example.com",
                    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
                )),
            ),
            (b"auth=Bearer t\x01user=bob\x01\x01", Ok(bearer("bob", "t"))),
            (b"user=bob\x01\x01", Err(Invalid::NoBearer)),
            (b"user=\x01auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"auth=Bearer t\x01\x01", Err(Invalid::Malformed)),
            (b"user=bob\x01auth=Bearer t", Err(Invalid::Malformed)),
            (b"\x01", Err(Invalid::Malformed)),
        ];
        for (input, want) in rows {
            assert_eq!(&m.parse(input), want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    /// What Postern sends a backend parses back to the same user and token.
    #[test]
    fn messages_round_trip() {
        for m in [OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2] {
            let message = m.message(b"a,b=c@example.com", b"tok/en+==");
            assert_eq!(m.parse(&message), Ok(bearer("a,b=c@example.com", "tok/en+==")), "{m:?}");
        }
        assert_eq!(
            OAuthMechanism::XOAuth2.message(b"bob", b"T"),
            b"user=bob\x01auth=Bearer T\x01\x01".to_vec()
        );
        assert_eq!(
            OAuthMechanism::OAuthBearer.message(b"bob", b"T"),
            b"n,a=bob,\x01auth=Bearer T\x01\x01".to_vec()
        );
    }

    #[test]
    fn names_and_prefixes() {
        let both = [OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2];
        assert_eq!(
            OAuthMechanism::from_sasl_name(b"xoauth2"),
            Some(OAuthMechanism::XOAuth2)
        );
        assert_eq!(
            OAuthMechanism::from_sasl_name(b"OAuthBearer"),
            Some(OAuthMechanism::OAuthBearer)
        );
        assert_eq!(OAuthMechanism::from_sasl_name(b"PLAIN"), None);
        assert_eq!(
            starts_initial_response(b"AUTH XOAUTH2 dXNl", 5, &both),
            Some(OAuthMechanism::XOAuth2)
        );
        assert_eq!(starts_initial_response(b"AUTH XOAUTH2", 5, &both), None);
        assert_eq!(starts_initial_response(b"AUTH XOAUTH2 x", 5, &both[..1]), None);
        assert_eq!(starts_initial_response(b"AUTH PLAIN x", 5, &both), None);
    }

    #[test]
    fn limits_and_challenges() {
        assert_eq!(line_limit(4096, 65536), 4096 + 4 * (65536usize + 4096).div_ceil(3));
        assert_eq!(line_limit(usize::MAX, 1), usize::MAX);
        assert_eq!(
            BASE64.decode(error_challenge(None)).unwrap(),
            DEFAULT_ERROR_JSON.as_bytes()
        );
        assert_eq!(error_challenge(Some(b"e30=")), b"e30=".to_vec());
    }
}
