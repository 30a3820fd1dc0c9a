//! The SASL decoders: a response line is Cancel, base64 that re-encodes to
//! itself, or Invalid; PLAIN and CRAM-MD5 splits give what RFC 4616 and
//! RFC 2195 allow and nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
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
