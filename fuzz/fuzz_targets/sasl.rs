//! The SASL decoders: a response line is Cancel, base64 that re-encodes to
//! itself, or Invalid; PLAIN and CRAM-MD5 splits give what RFC 4616 and
//! RFC 2195 allow and nothing else; an OAUTHBEARER or XOAUTH2 message gives
//! a token of RFC 6750's b64token alphabet, and what Postern would send a
//! backend for that user and token reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::auth::OAuthMechanism;
use postern::protocol::sasl::{decode_response, split_cram_md5, split_plain, Response};

fuzz_target!(|data: &[u8]| {
    match decode_response(data) {
        Response::Cancel => assert_eq!(data, b"*"),
        Response::Data(decoded) if data != b"=" => assert_eq!(encode(&decoded).as_bytes(), data),
        Response::Data(decoded) => assert!(decoded.is_empty()),
        Response::Invalid => {}
    }
    if let Some((user, pass)) = split_plain(data) {
        assert!(!user.is_empty() && !user.contains(&0));
        // authzid NUL user NUL pass: the two parts are the input's tail.
        let mut tail = user.clone();
        tail.push(0);
        tail.extend_from_slice(&pass);
        assert!(data.ends_with(&tail));
    }
    for mechanism in [OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2] {
        if let Ok(bearer) = mechanism.parse(data) {
            let (body, padding) = split_padding(&bearer.token);
            assert!(!body.is_empty(), "{mechanism:?}: empty token");
            assert!(
                body.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
                    && padding.iter().all(|&b| b == b'='),
                "{mechanism:?}: token {:?}",
                bearer.token
            );
            // XOAUTH2's user is taken up to the separator: no \x01 inside.
            if mechanism == OAuthMechanism::XOAuth2 {
                assert!(!bearer.user.contains(&1));
            }
            let again = mechanism.parse(&mechanism.message(&bearer.user, &bearer.token));
            assert_eq!(
                again.map(|b| (b.user, b.token)),
                Ok((bearer.user, bearer.token)),
                "{mechanism:?}"
            );
        }
    }
    if let Some((user, digest)) = split_cram_md5(data) {
        assert!(!user.is_empty());
        assert!(digest.len() == 32 && digest.iter().all(u8::is_ascii_hexdigit));
        assert_eq!(data.len(), user.len() + 1 + 32);
    }
});

/// Standard base64 with padding, written out so the check does not lean on
/// the decoder's own crate.
fn encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The token's characters and its trailing `=` padding.
fn split_padding(token: &[u8]) -> (&[u8], &[u8]) {
    let body = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    token.split_at(body)
}
