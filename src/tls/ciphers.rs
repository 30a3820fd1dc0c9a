//! `ssl_ciphers`: an OpenSSL cipher string mapped to the TLS 1.2 suites
//! rustls has, as OpenSSL would select among those same suites.
//!
//! Items are separated by `:` (also `,` and spaces). An item is a suite
//! name or a keyword, or several joined by `+` (all must match, as
//! `ECDHE+AESGCM`), with an optional prefix: none adds, `!` removes for
//! good, `-` removes (a later item may add back), `+` moves to the end.
//! `@STRENGTH` and `@SECLEVEL=n` are accepted and change nothing.
//!
//! Nothing is offered that the string does not select: an item naming
//! only what rustls lacks (`AES256-SHA`, `DHE-RSA-AES256-GCM-SHA384`,
//! `CAMELLIA`) selects nothing and is reported, so the operator is told,
//! and excluding what rustls never offers (`!aNULL`, `!MD5`, `!RC4`) is a
//! no-op. TLS 1.3 suites are not chosen by this string (OpenSSL sets them
//! apart) and are always all enabled.

use rustls::crypto::ring::cipher_suite as cs;
use rustls::{CipherSuite, SupportedCipherSuite};

/// Authentication of a TLS 1.2 suite.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Rsa,
    Ecdsa,
}

/// Bulk cipher of a TLS 1.2 suite.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20,
}

struct Suite {
    suite: SupportedCipherSuite,
    name: &'static str,
    auth: Auth,
    enc: Enc,
}

/// rustls's TLS 1.2 suites in its preference order, with OpenSSL's names.
fn table() -> [Suite; 6] {
    [
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            name: "ECDHE-ECDSA-AES256-GCM-SHA384",
            auth: Auth::Ecdsa,
            enc: Enc::Aes256Gcm,
        },
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            name: "ECDHE-ECDSA-AES128-GCM-SHA256",
            auth: Auth::Ecdsa,
            enc: Enc::Aes128Gcm,
        },
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            name: "ECDHE-ECDSA-CHACHA20-POLY1305",
            auth: Auth::Ecdsa,
            enc: Enc::Chacha20,
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            name: "ECDHE-RSA-AES256-GCM-SHA384",
            auth: Auth::Rsa,
            enc: Enc::Aes256Gcm,
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            name: "ECDHE-RSA-AES128-GCM-SHA256",
            auth: Auth::Rsa,
            enc: Enc::Aes128Gcm,
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            name: "ECDHE-RSA-CHACHA20-POLY1305",
            auth: Auth::Rsa,
            enc: Enc::Chacha20,
        },
    ]
}

/// OpenSSL's names of the TLS 1.3 suites, which `ssl_ciphers` does not set.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

/// Keywords that select none of rustls's suites (kinds it never offers,
/// or, for the MAC names, only CBC suites in OpenSSL's own reading).
const NEVER: &[&str] = &[
    "aNULL",
    "eNULL",
    "NULL",
    "COMPLEMENTOFDEFAULT",
    "COMPLEMENTOFALL",
    "MEDIUM",
    "LOW",
    "EXPORT",
    "EXP",
    "EXPORT40",
    "EXPORT56",
    "RC4",
    "RC2",
    "DES",
    "3DES",
    "IDEA",
    "SEED",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "ARIAGCM",
    "MD5",
    "SHA1",
    "SHA",
    "SHA256",
    "SHA384",
    "PSK",
    "aPSK",
    "kPSK",
    "kECDHEPSK",
    "kDHEPSK",
    "kRSAPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "SRP",
    "kSRP",
    "aSRP",
    "DSS",
    "aDSS",
    "DH",
    "DHE",
    "EDH",
    "kDH",
    "kDHE",
    "kEDH",
    "kDHr",
    "kDHd",
    "ADH",
    "AECDH",
    "kRSA",
    "RSA",
    "AESCCM",
    "AESCCM8",
    "GOST94",
    "GOST89MAC",
    "aGOST",
    "aGOST01",
    "kGOST",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
];

/// The TLS 1.2 suites `spec` selects, and what it names that rustls lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// In the order the string puts them (the server's order with
    /// `ssl_prefer_server_ciphers on`).
    pub suites: Vec<SupportedCipherSuite>,
    /// Items that would add suites but select none rustls has.
    pub not_offered: Vec<String>,
    /// TLS 1.3 suite names, which this string does not choose.
    pub tls13_names: Vec<String>,
}

/// Which suites of the table a keyword or suite name matches, as a bit
/// mask; `None` for a word OpenSSL would not know here.
fn matches(word: &str, table: &[Suite]) -> Option<u8> {
    let mask = |pred: &dyn Fn(&Suite) -> bool| -> u8 {
        table
            .iter()
            .enumerate()
            .filter(|(_, s)| pred(s))
            .fold(0, |m, (i, _)| m | (1 << i))
    };
    if let Some(i) = table.iter().position(|s| s.name.eq_ignore_ascii_case(word)) {
        return Some(1 << i);
    }
    Some(match word {
        "ALL" | "DEFAULT" | "HIGH" | "TLSv1.2" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "ECDH" | "AEAD" => {
            mask(&|_| true)
        }
        "aRSA" => mask(&|s| s.auth == Auth::Rsa),
        "aECDSA" | "ECDSA" => mask(&|s| s.auth == Auth::Ecdsa),
        "AES" | "AESGCM" => mask(&|s| s.enc != Enc::Chacha20),
        "AES128" => mask(&|s| s.enc == Enc::Aes128Gcm),
        "AES256" => mask(&|s| s.enc == Enc::Aes256Gcm),
        "CHACHA20" => mask(&|s| s.enc == Enc::Chacha20),
        _ if NEVER.contains(&word) => 0,
        _ => return None,
    })
}

/// Maps an OpenSSL cipher string; never fails: what cannot be honoured is
/// in `not_offered`, and an empty `suites` is for the caller to refuse
/// when TLS 1.2 is enabled.
pub fn select(spec: &str) -> Selection {
    let table = table();
    let mut order: Vec<usize> = Vec::new();
    let mut banned: u8 = 0;
    let mut not_offered = Vec::new();
    let mut tls13_names = Vec::new();
    for item in spec.split([':', ',', ' ']).filter(|i| !i.is_empty()) {
        if item.starts_with('@') {
            continue;
        }
        let (op, body) = match item.strip_prefix(['!', '-', '+']) {
            Some(body) => (item.as_bytes().first().copied().unwrap_or(0), body),
            None => (0, item),
        };
        if TLS13_NAMES.iter().any(|n| n.eq_ignore_ascii_case(body)) {
            tls13_names.push(body.to_string());
            continue;
        }
        // `A+B`: the suites matching every part; an unknown part matches none.
        let set = body
            .split('+')
            .map(|word| matches(word, &table).unwrap_or(0))
            .fold(u8::MAX, |acc, m| acc & m);
        let set = if body.is_empty() { 0 } else { set };
        match op {
            b'!' => {
                banned |= set;
                order.retain(|&i| set & (1 << i) == 0);
            }
            b'-' => order.retain(|&i| set & (1 << i) == 0),
            b'+' => {
                let (moved, kept): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| set & (1 << i) != 0);
                order = kept;
                order.extend(moved);
            }
            _ => {
                if set == 0 {
                    not_offered.push(item.to_string());
                }
                for i in 0..table.len() {
                    if set & (1 << i) != 0 && banned & (1 << i) == 0 && !order.contains(&i) {
                        order.push(i);
                    }
                }
            }
        }
    }
    Selection {
        suites: order.into_iter().map(|i| table[i].suite).collect(),
        not_offered,
        tls13_names,
    }
}

/// OpenSSL's name for a suite, as nginx's `$ssl_cipher` and Auth-SSL-Cipher
/// give it.
pub fn openssl_name(suite: CipherSuite) -> String {
    let name = match suite {
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        other => match table().iter().find(|s| s.suite.suite() == other) {
            Some(s) => s.name,
            None => return format!("{other:?}"),
        },
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        select(spec).suites.iter().map(|s| openssl_name(s.suite())).collect()
    }

    const ALL6: &[&str] = &[
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ];

    #[test]
    fn mapping_rows() {
        let rows: &[(&str, &[&str])] = &[
            ("HIGH:!aNULL:!MD5", ALL6),
            ("DEFAULT", ALL6),
            ("ALL:!RC4:!3DES:!EXPORT:!PSK:!SRP:!DSS:!CAMELLIA:!SHA1", ALL6),
            (
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256",
                &["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            ),
            (
                "ECDHE+AESGCM",
                &[
                    "ECDHE-ECDSA-AES256-GCM-SHA384",
                    "ECDHE-ECDSA-AES128-GCM-SHA256",
                    "ECDHE-RSA-AES256-GCM-SHA384",
                    "ECDHE-RSA-AES128-GCM-SHA256",
                ],
            ),
            (
                "EECDH+AESGCM:EDH+AESGCM",
                &[
                    "ECDHE-ECDSA-AES256-GCM-SHA384",
                    "ECDHE-ECDSA-AES128-GCM-SHA256",
                    "ECDHE-RSA-AES256-GCM-SHA384",
                    "ECDHE-RSA-AES128-GCM-SHA256",
                ],
            ),
            (
                "CHACHA20",
                &["ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"],
            ),
            ("aRSA+AES256", &["ECDHE-RSA-AES256-GCM-SHA384"]),
            (
                "HIGH:!aECDSA:!CHACHA20",
                &["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"],
            ),
            // `-` removes, a later item adds back; `!` removes for good.
            (
                "HIGH:-AES:AES128",
                &[
                    "ECDHE-ECDSA-CHACHA20-POLY1305",
                    "ECDHE-RSA-CHACHA20-POLY1305",
                    "ECDHE-ECDSA-AES128-GCM-SHA256",
                    "ECDHE-RSA-AES128-GCM-SHA256",
                ],
            ),
            (
                "HIGH:!AES:AES128",
                &["ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"],
            ),
            // `+` moves to the end.
            (
                "ECDSA:RSA+AES:+AES256",
                &[
                    "ECDHE-ECDSA-AES128-GCM-SHA256",
                    "ECDHE-ECDSA-CHACHA20-POLY1305",
                    "ECDHE-ECDSA-AES256-GCM-SHA384",
                ],
            ),
            (
                "ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384 @STRENGTH",
                &["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"],
            ),
            ("AES256-SHA:DHE-RSA-AES256-GCM-SHA384", &[]),
            ("!ALL", &[]),
            ("", &[]),
        ];
        for &(spec, want) in rows {
            assert_eq!(names(spec), want, "{spec}");
        }
    }

    #[test]
    fn what_rustls_lacks_is_reported() {
        let got = select("ECDHE+AESGCM:AES256-SHA:DHE-RSA-AES256-GCM-SHA384:!RC4:CAMELLIA:TLS_AES_128_GCM_SHA256");
        assert_eq!(got.not_offered, ["AES256-SHA", "DHE-RSA-AES256-GCM-SHA384", "CAMELLIA"]);
        assert_eq!(got.tls13_names, ["TLS_AES_128_GCM_SHA256"]);
        assert_eq!(got.suites.len(), 4);
        assert!(select("HIGH:!aNULL:!MD5").not_offered.is_empty());
    }

    #[test]
    fn openssl_names() {
        assert_eq!(
            openssl_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            openssl_name(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
            "ECDHE-RSA-CHACHA20-POLY1305"
        );
    }
}
