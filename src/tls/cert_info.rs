//! What nginx tells the auth server about a client certificate, in the
//! forms of its `$ssl_client_*` variables: the subject and issuer as
//! OpenSSL prints them with `XN_FLAG_RFC2253`, the serial in uppercase hex,
//! the SHA-1 fingerprint in lowercase hex, the PEM.
//!
//! The subject and issuer come from the client: RFC 2253's escaping (and
//! OpenSSL's `\XX` for control and non-ASCII bytes) leaves no byte below
//! 0x20, so neither can end a header line.

use base64::Engine as _;
use x509_parser::asn1_rs::{Tag, ToDer};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

/// The client-certificate part of the auth request (Auth-SSL-Verify and
/// the headers after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFacts {
    /// `SUCCESS`, `FAILED:<reason>`, or `NONE` (no certificate).
    pub verify: String,
    /// RFC 2253 form, as nginx's `$ssl_client_s_dn`; empty without a
    /// certificate (the header is then left out, as nginx does).
    pub subject: String,
    pub issuer: String,
    /// Hex, uppercase, as nginx.
    pub serial: String,
    /// SHA-1 of the DER, lowercase hex without colons.
    pub fingerprint: String,
    /// The certificate as PEM, when `auth_http_pass_client_cert on`.
    pub pem: Option<String>,
}

impl ClientCertFacts {
    /// No certificate was sent.
    pub(crate) fn none() -> ClientCertFacts {
        ClientCertFacts {
            verify: "NONE".to_string(),
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            fingerprint: String::new(),
            pem: None,
        }
    }

    /// The facts of `der`; a certificate x509-parser cannot read (rustls
    /// accepted it, so only in `optional_no_ca`) gives empty names and
    /// serial, the fingerprint and PEM still.
    pub(crate) fn of(der: &[u8], verify: String, pass_pem: bool) -> ClientCertFacts {
        let (subject, issuer, serial) = match X509Certificate::from_der(der) {
            Ok((_, cert)) => (
                rfc2253(cert.subject()),
                rfc2253(cert.issuer()),
                serial_hex(cert.raw_serial()),
            ),
            Err(_) => (String::new(), String::new(), String::new()),
        };
        ClientCertFacts {
            verify,
            subject,
            issuer,
            serial,
            fingerprint: fingerprint(der),
            pem: pass_pem.then(|| pem(der)),
        }
    }
}

/// OpenSSL's `i2a_ASN1_INTEGER`: the magnitude's bytes as uppercase hex,
/// without DER's leading zero byte, `00` for zero.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let mut bytes = raw;
    while let [0, rest @ ..] = bytes {
        if rest.is_empty() {
            break;
        }
        bytes = rest;
    }
    if bytes.is_empty() {
        return "00".to_string();
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// PEM as OpenSSL writes it: 64 characters a line, each line ending in LF.
pub(crate) fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so any split is on a char boundary.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// OpenSSL's short names for the attribute types it knows (`XN_FLAG_FN_SN`).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// The name as `X509_NAME_print_ex(..., XN_FLAG_RFC2253)`: RDNs last to
/// first, separated by `,`, multi-valued ones joined by `+`.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            attribute(attr, &mut out);
        }
    }
    out
}

fn attribute(attr: &AttributeTypeAndValue<'_>, out: &mut String) {
    let oid = attr.attr_type().to_id_string();
    let value = attr.attr_value();
    match short_name(&oid) {
        Some(name) => {
            out.push_str(name);
            out.push('=');
            match decode_string(value.tag(), value.as_bytes()) {
                Some(text) => escape_value(&text, out),
                None => hex_dump(value, out),
            }
        }
        // XN_FLAG_DUMP_UNKNOWN_FIELDS: unknown types as `oid=#<DER hex>`.
        None => {
            out.push_str(&oid);
            out.push('=');
            hex_dump(value, out);
        }
    }
}

/// `#` and the value's DER in hex, as OpenSSL dumps what it cannot print.
fn hex_dump(value: &x509_parser::asn1_rs::Any<'_>, out: &mut String) {
    out.push('#');
    let der = value.to_der_vec().unwrap_or_else(|_| value.as_bytes().to_vec());
    for b in der {
        out.push_str(&format!("{b:02X}"));
    }
}

/// The text of the string types OpenSSL converts to UTF-8; `None` for
/// other types, which are dumped.
fn decode_string(tag: Tag, data: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            Some(String::from_utf8_lossy(data).into_owned())
        }
        // T61/Teletex: OpenSSL reads each byte as Latin-1.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| Some(u16::from_be_bytes([*c.first()?, *c.get(1)?])))
                .collect::<Option<_>>()?;
            Some(String::from_utf16_lossy(&units))
        }
        Tag::UniversalString => data
            .chunks(4)
            .map(|c| {
                let bytes: [u8; 4] = c.try_into().ok()?;
                char::from_u32(u32::from_be_bytes(bytes))
            })
            .collect(),
        _ => None,
    }
}

/// ASN1_STRFLGS_RFC2253's escaping: `,+"\<>;` with a backslash, a leading
/// `#` or space and a trailing space likewise, and every control or
/// non-ASCII byte (of the UTF-8) as `\XX`.
fn escape_value(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x00..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{b:02X}")),
            _ => out.push(char::from(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_rows() {
        let rows: &[(&[u8], &str)] = &[
            (&[0x00, 0xC0, 0x7A], "C07A"),
            (&[0x01], "01"),
            (&[0x00], "00"),
            (&[], "00"),
            (&[0x0A, 0xBC, 0x00], "0ABC00"),
        ];
        for &(raw, want) in rows {
            assert_eq!(serial_hex(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn escaping_rows() {
        let rows: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("Example, Inc", "Example\\, Inc"),
            ("a+b=c", "a\\+b=c"),
            ("#x", "\\#x"),
            (" lead and trail ", "\\ lead and trail\\ "),
            ("x\r\nAuth-Status: OK", "x\\0D\\0AAuth-Status: OK"),
            ("nul\0", "nul\\00"),
            ("é", "\\C3\\A9"),
            ("<\"q\">;\\", "\\<\\\"q\\\"\\>\\;\\\\"),
        ];
        for &(input, want) in rows {
            let mut out = String::new();
            escape_value(input, &mut out);
            assert_eq!(out, want, "{input:?}");
        }
    }

    #[test]
    fn pem_lines_of_64() {
        let der = vec![0xAB; 100];
        let text = pem(&der);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(text.ends_with('\n'));
    }
}
