//! SASL pieces shared by the protocol front ends (RFC 4422): decoding a
//! client response and the PLAIN message. LOGIN's two prompts are plain
//! base64 strings and need nothing more.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// A client's SASL response line, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    Data(Vec<u8>),
    /// `*`: the client gave up the exchange (RFC 4422 3.5; IMAP, POP3, SMTP
    /// all spell it so).
    Cancel,
    /// Not base64.
    Invalid,
}

pub fn decode_response(line: &[u8]) -> Response {
    if line == b"*" {
        return Response::Cancel;
    }
    // RFC 4959: a lone `=` is an empty initial response.
    let line = if line == b"=" { &b""[..] } else { line };
    match BASE64.decode(line) {
        Ok(data) => Response::Data(data),
        Err(_) => Response::Invalid,
    }
}

/// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`. nginx logs in
/// as the authcid and ignores the authzid; an empty authcid is refused.
pub fn split_plain(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = data.splitn(3, |&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    (!user.is_empty()).then(|| (user.to_vec(), pass.to_vec()))
}

/// CRAM-MD5 (RFC 2195): `user SP hex-digest`; split at the last space, as
/// user names may hold spaces. The digest goes to the auth server as is.
pub fn split_cram_md5(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let space = data.iter().rposition(|&b| b == b' ')?;
    let (user, digest) = (&data[..space], &data[space + 1..]);
    let hex = digest.len() == 32 && digest.iter().all(u8::is_ascii_hexdigit);
    (!user.is_empty() && hex).then(|| (user.to_vec(), digest.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(decode_response(b"*"), Response::Cancel);
        assert_eq!(decode_response(b"="), Response::Data(Vec::new()));
        assert_eq!(decode_response(b"Ym9i"), Response::Data(b"bob".to_vec()));
        assert_eq!(decode_response(b"Ym9"), Response::Invalid);
        assert_eq!(decode_response(b"!!"), Response::Invalid);
    }

    type Credentials<'a> = Option<(&'a [u8], &'a [u8])>;

    #[test]
    fn cram_md5() {
        let digest = b"b913a602c7eda7a495b4e6e7334d3890";
        let mut line = b"tim smith ".to_vec();
        line.extend_from_slice(digest);
        assert_eq!(split_cram_md5(&line), Some((b"tim smith".to_vec(), digest.to_vec())));
        assert_eq!(split_cram_md5(b"tim b913a602"), None);
        assert_eq!(split_cram_md5(&digest[..]), None);
    }

    #[test]
    fn plain() {
        let rows: &[(&[u8], Credentials<'_>)] = &[
            (b"\0bob\0pw", Some((b"bob", b"pw"))),
            (b"admin\0bob\0pw", Some((b"bob", b"pw"))),
            (b"\0bob\0", Some((b"bob", b""))),
            (b"\0bob\0p\0w", Some((b"bob", b"p\0w"))),
            (b"\0\0pw", None),
            (b"\0bob", None),
            (b"bob", None),
        ];
        for (input, want) in rows {
            let want = want.map(|(u, p)| (u.to_vec(), p.to_vec()));
            assert_eq!(split_plain(input), want, "input {input:?}");
        }
    }
}
