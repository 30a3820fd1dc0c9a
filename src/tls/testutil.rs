//! Certificates for the TLS tests, made with rcgen in a fresh folder: a
//! CA, RSA and ECDSA server certificates, client certificates (good,
//! revoked, from an unknown CA, behind an intermediate) and a CRL.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};

/// ring cannot make RSA keys, so the RSA server key is a fixed one (made by
/// `openssl genpkey -algorithm RSA`, for these tests only).
const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC5mOyLD9s8VI57
b458Nj1XGL2TnE2emw2rM3lNNpQcq1XPRJfED7IQIk2+yGkHzfENcybYm50edHzH
yTOaCs5E2nEnSBgqGqbcYSQ5pRgQmN2pt/Xw0o2IT0kzRs1m4g6XmD7+oJBTKWk2
hFMkl+74+i6cJcttAeUwvHdlqNBd1KNSwd1ulrtkTg3EmYvW2GeMDTFMGnrlCi5v
G1V3QZf4LmREMCeOxmbuUY3wWU7EUM6hKlnckWZLqZq6BPXJ2vY/uz9+be+C8ZWG
vaw+cPtKsWQIgxQP0saivdqmIVSog/ND7e1evXcgWLEkKb0pGuYGai70LPmnuy79
CJOw9E2NAgMBAAECggEAJV6i/DIWYtykrrpszlpOege/fiX54/5U33yXB0K+ylH+
TmRBiabeY8zAajJooXtoNpzRvMoCdhQe3sxGkVTtKORx5aaoxOuGXvfJRzkUch0R
fr+Na+69NC3Ar6wpJfbM2N29C2Bxhuke5+z3X7Ye1i9rrKGYhuubhfdgtA2sXMPg
o1k52D7d0dcrTiFI/rSrPqjZOAO8pHpF0Vt46vSGbkW6awJQJuTGKscO3sr5G3HJ
9mCVNnmmvO+R7kOeSMTrHj9JH+nRq4F2lmxhsxJKC5LwtQBqb4ASvyHXZkJVMb4c
gI6EWDI0qp1HfLLRMts44suxon/hBUTaYrxIFAZCUQKBgQDoijnG6vUCzPoMZpul
MCe5+TOrB98QQJSKKnz3VpDQ73M5z0QhCjdpYs2+Yu4BjIR1jdzUhk5avUzkDIQt
YBJDlh/+4cFFUr6UwyKEDghhI1kcM9bGAkCf9+ne1lqTlXmNg11IJPNJFc9IxHVu
oMi6h92Y2Y6i2sMjt3LfLg9rfQKBgQDMUlG3FdFWaZepIRpBvDTlZqd+ZwR6H9xk
1O5UdUbFsJGY5brFJlQUoBbaAdU/e/Z6LbhbHb35oixo4t88kHbJo4p5RXASUTwz
o2+yvIbTTLIBfxstnNiQZ24bmM0r9U8KT58iaTenJTzAMa5hyyQ/85RI4zJfLb1P
01Q5MWRnUQKBgDlLDS8wZot5G0aA5WpOsgsFFjDWcKQddTuRelaqUmXYCUi+A2gs
jzh86no0/7UL/PrFqBoIuTdsGoy5dLuFRxq1204+KxM8bs5SQafNmUztm5/yOcFx
fqCrQUjxAUIJevhd3FbRG8vu/rJMDS7jmHE01mk5eQYw5hFfuoK4Y341AoGAZBLR
qS3LeVqAiLsI5DdtZQpxcQy9+Z7PUKemD8HdJwiDV3L1loheWDfM2XxaWRy7LT5l
dGNN4A3ZWIn+MujC9aHfOeSTrrURGm2rUMzb8HQ5H1iFFEMlIx01pdiibSxaST+U
PsNwGbK4XZ43vfhESfpgn45/5nQ9q/Ji5xxVA/ECgYATkdtltafF/FaHtSF77HuA
SlQCILVVxpc8Oa1OSeUt1TysiWCTcPOeDIbwoePBzlsUy1Cd8MsKUZ8ePJr1VFPB
+zOyFbbyq6UEmGoF7DL3NRaYsVGKLM2pQiubinAMfdPu3USm1yTlThjsrDK3d8s/
1kMm4xHms42a/jxMJDJlcg==
-----END PRIVATE KEY-----
";

/// An EC key encrypted with the password `secret` (`openssl genpkey -aes256`).
pub(crate) const ENCRYPTED_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhaEirgE2fTSQICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEJ+WsJ0ysu2O6Q6D97og3mEEgZCL
X2TH1fTNajKaNffUOUXyZdSNlBC+eRXVNsPGbDjgANhGDNprf0/8Bca3ksau4n5w
z5tkHoppTv50PU8rqxITA8rmUU+XNLQG2psvrtfllfXU+FpdlW3DyMPk9EUbySPF
K/95h5IZEoRszjh5eZ8Xj0LT40/1L+x6BRCccskT7Fw/ci1Dj6+0KcDYxk2biz4=
-----END ENCRYPTED PRIVATE KEY-----
";

pub(crate) struct Issued {
    pub(crate) cert: rcgen::Certificate,
    pub(crate) key: KeyPair,
}

/// The folder and what is in it; removed on drop.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) client: Issued,
    pub(crate) server_rsa: Issued,
    pub(crate) server_ec: Issued,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn ca_params(parts: &[(DnType, &str)], constraint: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(parts);
    params.is_ca = IsCa::Ca(constraint);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn leaf_params(parts: &[(DnType, &str)], serial: &[u8], client: bool) -> CertificateParams {
    let mut params = if client {
        CertificateParams::default()
    } else {
        CertificateParams::new(vec!["mail.example.test".to_string(), "127.0.0.1".to_string()]).unwrap()
    };
    params.distinguished_name = dn(parts);
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    params
}

fn ec_key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("postern-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).unwrap();

        let ca_key = ec_key();
        let ca = ca_params(
            &[
                (DnType::OrganizationName, "Postern"),
                (DnType::CommonName, "Postern Test CA"),
            ],
            BasicConstraints::Unconstrained,
        )
        .self_signed(&ca_key)
        .unwrap();
        write("ca.pem", &ca.pem());

        let other_key = ec_key();
        let other = ca_params(&[(DnType::CommonName, "Unknown CA")], BasicConstraints::Unconstrained)
            .self_signed(&other_key)
            .unwrap();
        write("other-ca.pem", &other.pem());

        let issue = |params: CertificateParams, key: KeyPair, by: &rcgen::Certificate, by_key: &KeyPair| Issued {
            cert: params.signed_by(&key, by, by_key).unwrap(),
            key,
        };
        let server_rsa = issue(
            leaf_params(&[(DnType::CommonName, "mail.example.test")], &[0x01], false),
            KeyPair::from_pem(RSA_KEY).unwrap(),
            &ca,
            &ca_key,
        );
        let server_ec = issue(
            leaf_params(&[(DnType::CommonName, "mail.example.test")], &[0x02], false),
            ec_key(),
            &ca,
            &ca_key,
        );
        let client = issue(
            leaf_params(
                &[
                    (DnType::CountryName, "NO"),
                    (DnType::OrganizationName, "Example, Inc"),
                    (DnType::CommonName, "alice"),
                ],
                &[0x00, 0xC0, 0x7A, 0xD5, 0x6B],
                true,
            ),
            ec_key(),
            &ca,
            &ca_key,
        );
        let revoked = issue(
            leaf_params(&[(DnType::CommonName, "mallory")], &[0x77], true),
            ec_key(),
            &ca,
            &ca_key,
        );
        let stranger = issue(
            leaf_params(&[(DnType::CommonName, "stranger")], &[0x03], true),
            ec_key(),
            &other,
            &other_key,
        );
        let inter_key = ec_key();
        let inter = ca_params(
            &[(DnType::CommonName, "Intermediate")],
            BasicConstraints::Constrained(0),
        )
        .signed_by(&inter_key, &ca, &ca_key)
        .unwrap();
        let deep = issue(
            leaf_params(&[(DnType::CommonName, "bob")], &[0x04], true),
            ec_key(),
            &inter,
            &inter_key,
        );

        write("server-rsa.pem", &server_rsa.cert.pem());
        write("server-rsa.key", &server_rsa.key.serialize_pem());
        write("server-ec.pem", &server_ec.cert.pem());
        write("server-ec.key", &server_ec.key.serialize_pem());
        for (name, issued) in [("client", &client), ("revoked", &revoked), ("stranger", &stranger)] {
            write(&format!("{name}.pem"), &issued.cert.pem());
            write(&format!("{name}.key"), &issued.key.serialize_pem());
        }
        write("deep.pem", &format!("{}{}", deep.cert.pem(), inter.pem()));
        write("deep.key", &deep.key.serialize_pem());
        write("encrypted.key", ENCRYPTED_KEY);
        write("garbage.pem", "this is not PEM\n");

        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from_slice(&[0x77]),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca, &ca_key)
        .unwrap();
        write("crl.pem", &crl.pem().unwrap());

        Pki {
            dir,
            client,
            server_rsa,
            server_ec,
        }
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A client certificate chain and key as rustls takes them.
    pub(crate) fn identity(
        &self,
        name: &str,
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap();
        (certs, key)
    }

    /// The configuration file's path, for relative paths in its text.
    pub(crate) fn conf(&self) -> PathBuf {
        self.path("postern.conf")
    }

    /// One server parsed from `mail { <mail_lines> server { <server_lines> } }`.
    pub(crate) fn server(
        &self,
        mail_lines: &str,
        server_lines: &str,
    ) -> Result<crate::config::ServerConfig, crate::config::ConfigError> {
        let text = format!(
            "mail {{\n auth_http 127.0.0.1:9000/auth;\n {mail_lines}\n server {{\n  protocol imap;\n  {server_lines}\n }}\n}}\n"
        );
        let mut config = crate::config::parse_str(&text, &self.conf())?;
        Ok(config.servers.remove(0))
    }
}
