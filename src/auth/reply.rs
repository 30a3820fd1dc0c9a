//! Parses the auth server's HTTP/1.0 reply with `httparse` into an
//! `AuthReply`. Pure and bounded: the caller accumulates bytes and calls
//! `parse` until it stops answering `Partial`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{AuthError, AuthReply, OAuthMechanism, Secret};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Largest reply head accepted. nginx reads the reply into 1 KiB; Postern
/// allows 4 KiB so longer error texts fit, and still refuses a server that
/// streams headers without end.
pub const MAX_REPLY_BYTES: usize = 4096;

/// Headers kept per reply; more is malformed.
const MAX_HEADERS: usize = 32;

/// The longest `Auth-Wait` honoured: a misconfigured server must not park a
/// session for days.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The longest `Auth-Error-SASL` JSON kept (before base64): RFC 7628's
/// error has three short members; more is an auth server's mistake, and
/// the challenge goes to a client that reads it into a line buffer.
const MAX_SASL_ERROR: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Complete(AuthReply),
    /// The head is not complete yet; read more (the caller enforces
    /// `MAX_REPLY_BYTES` and treats end of stream as malformed).
    Partial,
}

/// Where a reply ends, for reusing its connection (`auth_http_keepalive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Bytes of the head, blank line included.
    pub head: usize,
    /// `Content-Length`, if the server sent one (and it is not absurd).
    pub body: Option<usize>,
    /// The server said `Connection: keep-alive`.
    pub keep_alive: bool,
}

impl Framing {
    /// The reply's total length when its connection may carry another
    /// request: only with keep-alive and a known length.
    pub fn reusable_end(&self) -> Option<usize> {
        if self.keep_alive {
            self.body.map(|body| self.head + body)
        } else {
            None
        }
    }
}

pub fn parse(buf: &[u8]) -> Result<Parsed, AuthError> {
    Ok(match parse_framed(buf)? {
        Some((reply, _)) => Parsed::Complete(reply),
        None => Parsed::Partial,
    })
}

/// As `parse`, with the reply's framing; `None` while the head is partial.
pub fn parse_framed(buf: &[u8]) -> Result<Option<(AuthReply, Framing)>, AuthError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REPLY_BYTES => return Err(AuthError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(AuthError::Malformed(e.to_string())),
    };
    let find = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let status = find("Auth-Status").ok_or_else(|| malformed("no Auth-Status header"))?;
    let wait = find("Auth-Wait").map(parse_wait).transpose()?;
    let reply = match status {
        b"OK" => {
            let server = find("Auth-Server").ok_or_else(|| malformed("no Auth-Server header"))?;
            let port = find("Auth-Port").ok_or_else(|| malformed("no Auth-Port header"))?;
            let ip: IpAddr = ascii(server)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| malformed("Auth-Server is not an IP address"))?;
            let port: u16 = ascii(port)
                .and_then(|s| s.parse().ok())
                .filter(|&p| p != 0)
                .ok_or_else(|| malformed("invalid Auth-Port"))?;
            AuthReply::Accept {
                backend: SocketAddr::new(ip, port),
                user: find("Auth-User").map(<[u8]>::to_vec),
                pass: find("Auth-Pass").map(|p| Secret::new(p.to_vec())),
                backend_tls: find("Auth-SSL-Backend").map(parse_on_off).transpose()?,
                backend_method: find("Auth-Method").map(parse_backend_method).transpose()?.flatten(),
            }
        }
        b"WAIT" => AuthReply::Retry {
            wait: wait.ok_or_else(|| malformed("WAIT without Auth-Wait"))?,
        },
        message => AuthReply::Reject {
            message: client_safe(message),
            wait,
            error_code: find("Auth-Error-Code").map(client_safe),
            sasl_error: find("Auth-Error-SASL").map(parse_sasl_error).transpose()?,
        },
    };
    let framing = Framing {
        head,
        body: find("Content-Length")
            .and_then(ascii)
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n <= MAX_REPLY_BYTES),
        keep_alive: find("Connection").is_some_and(|v| v.eq_ignore_ascii_case(b"keep-alive")),
    };
    Ok(Some((reply, framing)))
}

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(what.to_string())
}

fn ascii(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok().map(str::trim)
}

fn parse_on_off(value: &[u8]) -> Result<bool, AuthError> {
    match ascii(value) {
        Some(v) if v.eq_ignore_ascii_case("on") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(malformed("Auth-SSL-Backend is neither on nor off")),
    }
}

/// `Auth-Method` in an OK reply: how to log in to the backend. `plain` (or
/// `login`) is the password login nginx does, as without the header.
fn parse_backend_method(value: &[u8]) -> Result<Option<OAuthMechanism>, AuthError> {
    match ascii(value).map(str::to_ascii_lowercase).as_deref() {
        // An auth server that echoes the request's method means no
        // pass-through.
        Some("plain" | "login" | "apop" | "cram-md5" | "external" | "none") => Ok(None),
        Some("oauthbearer") => Ok(Some(OAuthMechanism::OAuthBearer)),
        Some("xoauth2") => Ok(Some(OAuthMechanism::XOAuth2)),
        _ => Err(malformed("Auth-Method is none of plain, login, oauthbearer, xoauth2")),
    }
}

/// `Auth-Error-SASL`: the JSON of RFC 7628 3.2.2, written either as JSON
/// (`{...}`, what an auth server script most easily prints) or already
/// base64 (what goes on the wire). Either way the result is the base64 to
/// send, checked: printable ASCII JSON within `MAX_SASL_ERROR`, so the
/// auth server cannot make Postern send a client control bytes.
fn parse_sasl_error(value: &[u8]) -> Result<Vec<u8>, AuthError> {
    let value = value.trim_ascii();
    let json = if value.starts_with(b"{") {
        value.to_vec()
    } else {
        BASE64
            .decode(value)
            .map_err(|_| malformed("Auth-Error-SASL is neither JSON nor base64"))?
    };
    let printable = json.iter().all(|&b| (0x20..0x7f).contains(&b));
    if json.is_empty() || json.len() > MAX_SASL_ERROR || !printable || !json.starts_with(b"{") {
        return Err(malformed("Auth-Error-SASL is not a short printable JSON object"));
    }
    Ok(BASE64.encode(json).into_bytes())
}

fn parse_wait(value: &[u8]) -> Result<Duration, AuthError> {
    ascii(value)
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .filter(|&d| d <= MAX_WAIT)
        .ok_or_else(|| malformed("invalid Auth-Wait"))
}

/// The error text goes into a protocol line to the client: keep it to
/// printable ASCII so the auth server cannot break the client's framing.
fn client_safe(message: &[u8]) -> Vec<u8> {
    message
        .iter()
        .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(head: &str) -> Result<Parsed, AuthError> {
        parse(head.as_bytes())
    }

    #[test]
    fn rows() {
        let accept = |ip: &str, user: Option<&[u8]>, pass: Option<&[u8]>| {
            Ok(Parsed::Complete(AuthReply::Accept {
                backend: ip.parse().unwrap(),
                user: user.map(<[u8]>::to_vec),
                pass: pass.map(|p| Secret::new(p.to_vec())),
                backend_tls: None,
                backend_method: None,
            }))
        };
        let rows: Vec<(&str, Result<Parsed, AuthError>)> = vec![
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 143\r\n\r\n",
                accept("127.0.0.1:143", None, None),
            ),
            (
                "HTTP/1.1 200 OK\r\nauth-status: OK\r\nAUTH-SERVER: ::1\r\nAuth-Port: 1143\r\n\
                 Auth-User: alice\r\nAuth-Pass: s3cret\r\n\r\nbody ignored",
                accept("[::1]:1143", Some(b"alice"), Some(b"s3cret")),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login\r\n\r\n",
                Ok(Parsed::Complete(AuthReply::Reject {
                    message: b"Invalid login".to_vec(),
                    wait: None,
                    error_code: None,
                    sasl_error: None,
                })),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login\r\nAuth-Wait: 3\r\nAuth-Error-Code: 450 4.7.1\r\n\r\n",
                Ok(Parsed::Complete(AuthReply::Reject {
                    message: b"Invalid login".to_vec(),
                    wait: Some(Duration::from_secs(3)),
                    error_code: Some(b"450 4.7.1".to_vec()),
                    sasl_error: None,
                })),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n",
                Ok(Parsed::Complete(AuthReply::Retry {
                    wait: Duration::from_secs(1),
                })),
            ),
            ("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n", Ok(Parsed::Partial)),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\n\r\n",
                Err(malformed("WAIT without Auth-Wait")),
            ),
            ("HTTP/1.0 200 OK\r\n\r\n", Err(malformed("no Auth-Status header"))),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: mail.example\r\nAuth-Port: 143\r\n\r\n",
                Err(malformed("Auth-Server is not an IP address")),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 0\r\n\r\n",
                Err(malformed("invalid Auth-Port")),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 65536\r\n\r\n",
                Err(malformed("invalid Auth-Port")),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n\r\n",
                Err(malformed("no Auth-Port header")),
            ),
            (
                "HTTP/1.0 200 OK\r\nAuth-Status: no\r\nAuth-Wait: soon\r\n\r\n",
                Err(malformed("invalid Auth-Wait")),
            ),
        ];
        for (head, want) in rows {
            assert_eq!(reply(head), want, "reply {head:?}");
        }
    }

    #[test]
    fn framing_for_keep_alive() {
        let head = "HTTP/1.0 200 OK\r\nAuth-Status: no\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc";
        let (_, framing) = parse_framed(head.as_bytes()).unwrap().unwrap();
        assert_eq!(
            framing,
            Framing {
                head: head.len() - 3,
                body: Some(3),
                keep_alive: true
            }
        );
        assert_eq!(framing.reusable_end(), Some(head.len()));
        let close = "HTTP/1.0 200 OK\r\nAuth-Status: no\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_framed(close.as_bytes()).unwrap().unwrap().1.reusable_end(), None);
        let unknown = "HTTP/1.0 200 OK\r\nAuth-Status: no\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(
            parse_framed(unknown.as_bytes()).unwrap().unwrap().1.reusable_end(),
            None
        );
    }

    #[test]
    fn oauth_headers() {
        let ok = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 143\r\n";
        let method = |value: &str| match reply(&format!("{ok}Auth-Method: {value}\r\n\r\n")) {
            Ok(Parsed::Complete(AuthReply::Accept { backend_method, .. })) => Ok(backend_method),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(method("XOAUTH2"), Ok(Some(OAuthMechanism::XOAuth2)));
        assert_eq!(method("oauthbearer"), Ok(Some(OAuthMechanism::OAuthBearer)));
        assert_eq!(method("plain"), Ok(None));
        assert!(matches!(method("kerberos"), Err(AuthError::Malformed(_))));

        let no = "HTTP/1.0 200 OK\r\nAuth-Status: Invalid token\r\n";
        let sasl = |value: &str| match reply(&format!("{no}Auth-Error-SASL: {value}\r\n\r\n")) {
            Ok(Parsed::Complete(AuthReply::Reject { sasl_error, .. })) => Ok(sasl_error.map(String::from_utf8)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let json = r#"{"status":"invalid_token","scope":"mail"}"#;
        let encoded = BASE64.encode(json);
        // Raw JSON is encoded; base64 is checked and kept.
        assert_eq!(sasl(json), Ok(Some(Ok(encoded.clone()))));
        assert_eq!(sasl(&encoded), Ok(Some(Ok(encoded.clone()))));
        for bad in [
            "not base64!",
            &BASE64.encode("{\"a\":\"\x1b\"}"),
            &BASE64.encode("[]"),
            &"{".repeat(1025),
        ] {
            assert!(matches!(sasl(bad), Err(AuthError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn not_http_is_malformed() {
        assert!(matches!(reply("SMTP/1.0 200 OK\r\n\r\n"), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn endless_head_is_too_large() {
        let mut head = b"HTTP/1.0 200 OK\r\nX-Padding: ".to_vec();
        head.resize(MAX_REPLY_BYTES, b'a');
        assert_eq!(parse(&head), Err(AuthError::TooLarge));
    }

    #[test]
    fn error_text_cannot_carry_control_bytes() {
        assert_eq!(client_safe(b"bad\x1b[31m\xff"), b"bad?[31m?".to_vec());
    }
}
