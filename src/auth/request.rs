//! Builds the HTTP/1.0 request of nginx's auth_http protocol. Pure: the
//! caller supplies the client address and configuration.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use super::AuthRequest;
use crate::protocol::imap::ClientId;
use crate::tls::TlsFacts;

/// The most bytes of a client's IMAP ID list sent as `Auth-ID` (before
/// escaping); pairs that do not fit are left out whole.
pub const MAX_AUTH_ID: usize = 1024;

/// Connection facts the request carries beside the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext<'a> {
    pub uri: &'a str,
    pub host: &'a str,
    /// `Client-IP`; `None` for a client on a unix socket.
    pub client_ip: Option<IpAddr>,
    /// `auth_http_header`s, validated by the config (token names, no CR/LF).
    pub headers: &'a [(String, String)],
    /// `Client-Host` (SMTP only): the client's verified host name, or
    /// `[UNAVAILABLE]` without a resolver.
    pub client_host: Option<&'a str>,
    /// `auth_http_keepalive`: ask the server to keep the connection.
    pub keep_alive: bool,
    /// The client connection's TLS, when it has it: the `Auth-SSL*` headers.
    pub tls: Option<&'a TlsFacts>,
    /// `Client-Port` (Postern's own); `None` on a unix socket.
    pub client_port: Option<u16>,
    /// `Server-IP` and `Server-Port` (Postern's own): the address the client
    /// connected to; `None` on a unix socket.
    pub server_addr: Option<SocketAddr>,
    /// `server_name`, for `$server_name` in `auth_http_header` values.
    pub server_name: &'a str,
    /// The client's IMAP ID parameters, sent as `Auth-ID` (Postern's own).
    pub client_id: Option<&'a ClientId>,
    /// What a balancer's PROXY header stated (`listen ... proxy_protocol`):
    /// the `Proxy-Protocol-*` headers.
    pub proxy_protocol: Option<crate::proxy_protocol::Addresses>,
}

/// The request bytes, headers in nginx's order. User and password are
/// escaped (`escape`), so no client input can end a header line.
pub fn build(req: &AuthRequest, ctx: &RequestContext<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + req.user.len() * 3 + req.pass.expose().len() * 3);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(ctx.uri.as_bytes());
    out.extend_from_slice(b" HTTP/1.0\r\nHost: ");
    out.extend_from_slice(ctx.host.as_bytes());
    out.extend_from_slice(b"\r\nAuth-Method: ");
    out.extend_from_slice(req.method.name().as_bytes());
    out.extend_from_slice(b"\r\nAuth-User: ");
    escape(&req.user, &mut out);
    out.extend_from_slice(b"\r\nAuth-Pass: ");
    escape(req.pass.expose(), &mut out);
    if let Some(salt) = &req.salt {
        out.extend_from_slice(b"\r\nAuth-Salt: ");
        escape(salt, &mut out);
    }
    out.extend_from_slice(b"\r\nAuth-Protocol: ");
    out.extend_from_slice(req.protocol.name().as_bytes());
    out.extend_from_slice(format!("\r\nAuth-Login-Attempt: {}", req.attempt).as_bytes());
    out.extend_from_slice(b"\r\nClient-IP: ");
    match ctx.client_ip {
        Some(ip) => out.extend_from_slice(ip.to_string().as_bytes()),
        None => out.extend_from_slice(b"unix:"),
    }
    out.extend_from_slice(b"\r\n");
    if let Some(host) = ctx.client_host {
        out.extend_from_slice(b"Client-Host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(pp) = &ctx.proxy_protocol {
        proxy_protocol_headers(pp, &mut out);
    }
    if let Some(envelope) = &req.envelope {
        for (name, value) in [
            (&b"Auth-SMTP-Helo: "[..], &envelope.helo),
            (b"Auth-SMTP-From: ", &envelope.from),
            (b"Auth-SMTP-To: ", &envelope.to),
        ] {
            out.extend_from_slice(name);
            escape(value, &mut out);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(tls) = ctx.tls {
        ssl_headers(tls, &mut out);
    }
    // Postern's own: what nginx's users have long asked the auth server to
    // be told, after every header nginx sends.
    if let Some(port) = ctx.client_port {
        out.extend_from_slice(format!("Client-Port: {port}\r\n").as_bytes());
    }
    if let Some(server) = ctx.server_addr {
        out.extend_from_slice(format!("Server-IP: {}\r\nServer-Port: {}\r\n", server.ip(), server.port()).as_bytes());
    }
    if let Some(id) = ctx.client_id {
        out.extend_from_slice(b"Auth-ID: ");
        escape(&id_list(id), &mut out);
        out.extend_from_slice(b"\r\n");
    }
    if ctx.keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    for (name, value) in ctx.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // The variables' values are addresses, numbers and configured
        // names: none can hold CR or LF.
        out.extend_from_slice(expand(value, req, ctx).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The client's ID parameters as an IMAP list, `("name" "value" "os" NIL)`,
/// at most `MAX_AUTH_ID` bytes: a pair that would pass the bound is left out
/// with every pair after it, so the list stays well formed.
fn id_list(id: &ClientId) -> Vec<u8> {
    let mut list = b"(".to_vec();
    for (field, value) in id {
        let mut pair = Vec::new();
        if list.len() > 1 {
            pair.push(b' ');
        }
        crate::protocol::imap::push_id_pair(&mut pair, field, value.as_deref());
        if list.len() + pair.len() + 1 > MAX_AUTH_ID {
            break;
        }
        list.extend_from_slice(&pair);
    }
    list.push(b')');
    list
}

/// `auth_http_header` values with Postern's variables replaced: `$remote_addr`,
/// `$remote_port`, `$server_addr`, `$server_port`, `$protocol`,
/// `$server_name` (also as `${name}`). Any other `$` stays as written, so a
/// value nginx would send literally (a key holding `$`) still does.
fn expand<'v>(value: &'v str, req: &AuthRequest, ctx: &RequestContext<'_>) -> Cow<'v, str> {
    if !value.contains('$') {
        return Cow::Borrowed(value);
    }
    let lookup = |name: &str| -> Option<String> {
        Some(match name {
            "remote_addr" => ctx.client_ip.map_or_else(|| "unix:".to_string(), |ip| ip.to_string()),
            "remote_port" => ctx.client_port.map_or_else(String::new, |p| p.to_string()),
            "server_addr" => ctx.server_addr.map_or_else(String::new, |a| a.ip().to_string()),
            "server_port" => ctx.server_addr.map_or_else(String::new, |a| a.port().to_string()),
            "protocol" => req.protocol.name().to_string(),
            "server_name" => ctx.server_name.to_string(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(value.len() + 16);
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after
            .strip_prefix('{')
            .and_then(|b| b.find('}').map(|end| (&b[..end], end + 2)))
        {
            Some(braced) => braced,
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match lookup(name) {
            Some(v) => {
                out.push_str(&v);
                rest = &after[used..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// nginx's four `Proxy-Protocol-*` headers, after `Client-Host`: the
/// balancer's client and its own address, whatever `set_real_ip_from` made
/// of `Client-IP`.
fn proxy_protocol_headers(pp: &crate::proxy_protocol::Addresses, out: &mut Vec<u8>) {
    out.extend_from_slice(
        format!(
            "Proxy-Protocol-Addr: {}\r\nProxy-Protocol-Port: {}\r\n\
             Proxy-Protocol-Server-Addr: {}\r\nProxy-Protocol-Server-Port: {}\r\n",
            pp.source.ip(),
            pp.source.port(),
            pp.destination.ip(),
            pp.destination.port()
        )
        .as_bytes(),
    );
}

/// nginx's `Auth-SSL*` headers, in its order, after the SMTP envelope;
/// empty values are left out, as nginx does. The certificate PEM is
/// escaped as Auth-User; the other values that come from the client
/// (subject, issuer) are already escaped by their RFC 2253 form, and go
/// through [`escape_controls`] as well, so no value can ever end a line.
fn ssl_headers(tls: &TlsFacts, out: &mut Vec<u8>) {
    out.extend_from_slice(b"Auth-SSL: on\r\n");
    let header = |name: &[u8], value: &str, out: &mut Vec<u8>| {
        if !value.is_empty() {
            out.extend_from_slice(name);
            escape_controls(value.as_bytes(), out);
            out.extend_from_slice(b"\r\n");
        }
    };
    header(b"Auth-SSL-Protocol: ", tls.protocol, out);
    header(b"Auth-SSL-Cipher: ", &tls.cipher, out);
    let Some(cert) = &tls.client_cert else {
        return;
    };
    header(b"Auth-SSL-Verify: ", &cert.verify, out);
    header(b"Auth-SSL-Subject: ", &cert.subject, out);
    header(b"Auth-SSL-Issuer: ", &cert.issuer, out);
    header(b"Auth-SSL-Serial: ", &cert.serial, out);
    header(b"Auth-SSL-Fingerprint: ", &cert.fingerprint, out);
    if let Some(pem) = cert.pem.as_deref().filter(|pem| !pem.is_empty()) {
        out.extend_from_slice(b"Auth-SSL-Cert: ");
        escape(pem.as_bytes(), out);
        out.extend_from_slice(b"\r\n");
    }
}

/// Percent-encodes only the control bytes (0x00-0x1F, 0x7F): the last
/// guard for values whose own form should never hold one.
fn escape_controls(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
}

/// Percent-encodes (uppercase hex) what nginx encodes in Auth-User and
/// Auth-Pass — space, `%`, and the control bytes 0x00-0x1F — and also DEL
/// (0x7F), which nginx passes raw although no HTTP parser accepts it in a
/// header value. Auth servers decode with any URL decoder.
pub fn escape(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        if b <= 0x20 || b == b'%' || b == 0x7f {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMethod, Secret};
    use crate::config::Protocol;

    #[test]
    fn request_in_nginx_order() {
        let req = AuthRequest {
            method: AuthMethod::Plain,
            user: b"bob".to_vec(),
            pass: Secret::new(b"pa ss".to_vec()),
            protocol: Protocol::Imap,
            attempt: 2,
            salt: None,
            envelope: None,
        };
        let ctx = RequestContext {
            uri: "/auth",
            host: "localhost",
            client_ip: Some("192.0.2.7".parse().unwrap()),
            headers: &[("X-Auth-Key".to_string(), "s3cr3t key".to_string())],
            client_host: None,
            keep_alive: false,
            tls: None,
            client_port: None,
            server_addr: None,
            server_name: "mail.example",
            client_id: None,
            proxy_protocol: None,
        };
        assert_eq!(
            String::from_utf8(build(&req, &ctx)).unwrap(),
            "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: bob\r\n\
             Auth-Pass: pa%20ss\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 2\r\n\
             Client-IP: 192.0.2.7\r\nX-Auth-Key: s3cr3t key\r\n\r\n"
        );
    }

    #[test]
    fn smtp_request_with_salt_host_and_envelope() {
        let req = AuthRequest {
            method: AuthMethod::None,
            user: Vec::new(),
            pass: Secret::default(),
            protocol: Protocol::Smtp,
            attempt: 1,
            salt: Some(b"<1.2@mx>".to_vec()),
            envelope: Some(crate::auth::SmtpEnvelope {
                helo: b"client.example".to_vec(),
                from: b"MAIL FROM:<a@b> SIZE=10".to_vec(),
                to: b"RCPT TO:<c@d>".to_vec(),
            }),
        };
        let ctx = RequestContext {
            uri: "/",
            host: "auth",
            client_ip: Some("192.0.2.7".parse().unwrap()),
            headers: &[],
            client_host: Some("[UNAVAILABLE]"),
            keep_alive: true,
            tls: None,
            client_port: None,
            server_addr: None,
            server_name: "mail.example",
            client_id: None,
            proxy_protocol: None,
        };
        assert_eq!(
            String::from_utf8(build(&req, &ctx)).unwrap(),
            "GET / HTTP/1.0\r\nHost: auth\r\nAuth-Method: none\r\nAuth-User: \r\nAuth-Pass: \r\n\
             Auth-Salt: <1.2@mx>\r\nAuth-Protocol: smtp\r\nAuth-Login-Attempt: 1\r\nClient-IP: 192.0.2.7\r\n\
             Client-Host: [UNAVAILABLE]\r\nAuth-SMTP-Helo: client.example\r\n\
             Auth-SMTP-From: MAIL%20FROM:<a@b>%20SIZE=10\r\nAuth-SMTP-To: RCPT%20TO:<c@d>\r\n\
             Connection: keep-alive\r\n\r\n"
        );
    }

    fn plain_imap() -> AuthRequest {
        AuthRequest {
            method: AuthMethod::Plain,
            user: b"bob".to_vec(),
            pass: Secret::new(b"pw".to_vec()),
            protocol: Protocol::Imap,
            attempt: 1,
            salt: None,
            envelope: None,
        }
    }

    fn ctx_with(tls: &TlsFacts) -> RequestContext<'_> {
        RequestContext {
            uri: "/auth",
            host: "localhost",
            client_ip: Some("192.0.2.42".parse().unwrap()),
            headers: &[],
            client_host: None,
            keep_alive: false,
            tls: Some(tls),
            client_port: None,
            server_addr: None,
            server_name: "mail.example",
            client_id: None,
            proxy_protocol: None,
        }
    }

    const HEAD: &str = "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: bob\r\n\
                        Auth-Pass: pw\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 192.0.2.42\r\n";

    #[test]
    fn tls_without_client_certificate() {
        let tls = TlsFacts {
            protocol: "TLSv1.3",
            cipher: "TLS_AES_256_GCM_SHA384".to_string(),
            client_cert: None,
        };
        assert_eq!(
            String::from_utf8(build(&plain_imap(), &ctx_with(&tls))).unwrap(),
            format!(
                "{HEAD}Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.3\r\nAuth-SSL-Cipher: TLS_AES_256_GCM_SHA384\r\n\r\n"
            )
        );
    }

    /// nginx's documented example, with the PEM passed.
    #[test]
    fn tls_with_client_certificate_in_nginx_order() {
        let tls = TlsFacts {
            protocol: "TLSv1.2",
            cipher: "ECDHE-RSA-AES128-GCM-SHA256".to_string(),
            client_cert: Some(crate::tls::ClientCertFacts {
                verify: "SUCCESS".to_string(),
                subject: "CN=example.com".to_string(),
                issuer: "CN=Example CA,O=Example\\, Inc".to_string(),
                serial: "C07AD56B846B5BFF".to_string(),
                fingerprint: "29d6a80a123d13355ed16b4b04605e29cb55a5ad".to_string(),
                pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_string()),
            }),
        };
        let mut ctx = ctx_with(&tls);
        let extra = [("X-Auth-Key".to_string(), "k".to_string())];
        ctx.headers = &extra;
        ctx.keep_alive = true;
        assert_eq!(
            String::from_utf8(build(&plain_imap(), &ctx)).unwrap(),
            format!(
                "{HEAD}Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.2\r\nAuth-SSL-Cipher: ECDHE-RSA-AES128-GCM-SHA256\r\n\
                 Auth-SSL-Verify: SUCCESS\r\nAuth-SSL-Subject: CN=example.com\r\n\
                 Auth-SSL-Issuer: CN=Example CA,O=Example\\, Inc\r\nAuth-SSL-Serial: C07AD56B846B5BFF\r\n\
                 Auth-SSL-Fingerprint: 29d6a80a123d13355ed16b4b04605e29cb55a5ad\r\n\
                 Auth-SSL-Cert: -----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A\r\n\
                 Connection: keep-alive\r\nX-Auth-Key: k\r\n\r\n"
            )
        );
    }

    /// A certificate was asked for and none sent: only Verify, as nginx
    /// leaves out the empty values.
    #[test]
    fn tls_with_no_certificate_sent() {
        let tls = TlsFacts {
            protocol: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256".to_string(),
            client_cert: Some(crate::tls::ClientCertFacts {
                verify: "NONE".to_string(),
                subject: String::new(),
                issuer: String::new(),
                serial: String::new(),
                fingerprint: String::new(),
                pem: None,
            }),
        };
        assert_eq!(
            String::from_utf8(build(&plain_imap(), &ctx_with(&tls))).unwrap(),
            format!(
                "{HEAD}Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.3\r\nAuth-SSL-Cipher: TLS_AES_128_GCM_SHA256\r\n\
                 Auth-SSL-Verify: NONE\r\n\r\n"
            )
        );
    }

    /// Whatever a client puts in its certificate, no value adds a header.
    #[test]
    fn client_values_cannot_add_headers() {
        let evil = "x\r\nAuth-Status: OK\0\x7f".to_string();
        let tls = TlsFacts {
            protocol: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256".to_string(),
            client_cert: Some(crate::tls::ClientCertFacts {
                verify: evil.clone(),
                subject: evil.clone(),
                issuer: evil.clone(),
                serial: evil.clone(),
                fingerprint: evil.clone(),
                pem: Some(evil),
            }),
        };
        let out = build(&plain_imap(), &ctx_with(&tls));
        let text = String::from_utf8(out).unwrap();
        let body = text.strip_suffix("\r\n\r\n").unwrap();
        for line in body.split("\r\n") {
            assert!(!line.starts_with("Auth-Status"), "{line:?}");
            assert!(!line.bytes().any(|b| b < 0x20 || b == 0x7f), "{line:?}");
        }
        assert!(text.contains("Auth-SSL-Subject: x%0D%0AAuth-Status: OK%00%7F\r\n"));
        assert!(text.contains("Auth-SSL-Cert: x%0D%0AAuth-Status:%20OK%00%7F\r\n"));
    }

    #[test]
    fn escaping_rows() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (b"a b", b"a%20b"),
            (b"100%", b"100%25"),
            (b"x\r\nAuth-Status: OK", b"x%0D%0AAuth-Status:%20OK"),
            (b"\x00\x1f\x7f", b"%00%1F%7F"),
            (b"\"\\", b"\"\\"),
            ("ünï".as_bytes(), "ünï".as_bytes()),
        ];
        for (input, want) in rows {
            let mut out = Vec::new();
            escape(input, &mut out);
            assert_eq!(&out, want, "input {:?}", input);
        }
    }

    /// Client-Port, Server-IP/-Port and Auth-ID after nginx's headers, and
    /// the variables of `auth_http_header` values.
    #[test]
    fn client_details_and_variables() {
        let id: ClientId = vec![
            (b"name".to_vec(), Some(b"Thunderbird".to_vec())),
            (b"version".to_vec(), Some(b"115.3.1".to_vec())),
            (b"os".to_vec(), None),
            (b"vendor".to_vec(), Some(b"say \"hi\"\r\nX-Evil: 1".to_vec())),
        ];
        let headers = [
            ("X-Client".to_string(), "$remote_addr:${remote_port}".to_string()),
            (
                "X-Server".to_string(),
                "$protocol://$server_name@$server_addr:$server_port".to_string(),
            ),
            ("X-Key".to_string(), "pa$$word $unknown".to_string()),
        ];
        let ctx = RequestContext {
            uri: "/auth",
            host: "localhost",
            client_ip: Some("192.0.2.7".parse().unwrap()),
            headers: &headers,
            client_host: None,
            keep_alive: false,
            tls: None,
            client_port: Some(50123),
            server_addr: Some("198.51.100.1:993".parse().unwrap()),
            server_name: "mail.example",
            client_id: Some(&id),
            proxy_protocol: None,
        };
        assert_eq!(
            String::from_utf8(build(&plain_imap(), &ctx)).unwrap(),
            "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: bob\r\n\
             Auth-Pass: pw\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 192.0.2.7\r\n\
             Client-Port: 50123\r\nServer-IP: 198.51.100.1\r\nServer-Port: 993\r\n\
             Auth-ID: (\"name\"%20\"Thunderbird\"%20\"version\"%20\"115.3.1\"%20\"os\"%20NIL%20\
             \"vendor\"%20\"say%20\\\"hi\\\"%0D%0AX-Evil:%201\")\r\n\
             X-Client: 192.0.2.7:50123\r\nX-Server: imap://mail.example@198.51.100.1:993\r\n\
             X-Key: pa$$word $unknown\r\n\r\n"
        );
    }

    /// Auth-ID stays within its bound by whole pairs, and stays a list.
    #[test]
    fn auth_id_is_bounded() {
        let id: ClientId = (0..30)
            .map(|i| (format!("field{i:02}").into_bytes(), Some(vec![b'v'; 100])))
            .collect();
        let list = id_list(&id);
        assert!(list.len() <= MAX_AUTH_ID, "{}", list.len());
        assert!(list.starts_with(b"(\"field00\" \"") && list.ends_with(b"\")"));
        // Whole pairs: 9 of 112 bytes fit in 1,024.
        assert_eq!(list.iter().filter(|&&b| b == b'"').count(), 9 * 4);
        assert_eq!(id_list(&Vec::new()), b"()");
    }
}
