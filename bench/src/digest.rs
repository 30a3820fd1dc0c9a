//! MD5 and HMAC-MD5 as hex strings, for the APOP and CRAM-MD5 logins that
//! nginx forwards to the auth server.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// MD5 of `data` as 32 lowercase hex digits (RFC 1321).
pub fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

/// HMAC-MD5 of `data` under `key` as 32 lowercase hex digits (RFC 2104),
/// the CRAM-MD5 response of RFC 2195.
pub fn hmac_md5_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Md5>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1321() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(md5_hex(b"message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
    }

    #[test]
    fn rfc_1939_apop() {
        assert_eq!(
            md5_hex(b"<1896.697170952@dbc.mtview.ca.us>tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }

    #[test]
    fn rfc_2195_cram_md5() {
        assert_eq!(
            hmac_md5_hex(b"tanstaaftanstaaf", b"<1896.697170952@postoffice.reston.mci.net>"),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        // Keys longer than the 64-byte block are hashed first (RFC 2202 case 6).
        assert_eq!(
            hmac_md5_hex(&[0xaa; 80], b"Test Using Larger Than Block-Size Key - Hash Key First"),
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
        );
    }
}
