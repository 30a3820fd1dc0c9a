//! A throwaway PKI for TLS tests and benchmarks: CAs, server and client
//! certificates and a CRL, written as PEM files.
//!
//! Everything is made fresh on each call except the RSA server key: rcgen
//! with the ring provider cannot generate RSA keys (only aws-lc can), so the
//! RSA certificate is issued for a fixed 2048-bit test key compiled into the
//! binary (`certs/rsa-2048.pem`, PKCS#8). The certificate itself is new and
//! signed by the fresh CA, so nothing outside this PKI trusts it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SerialNumber, PKCS_RSA_SHA256,
};

/// The fixed RSA key behind [`TestPki::server_rsa_cert`] (see the module doc).
const RSA_KEY: &str = include_str!("certs/rsa-2048.pem");

/// Serial number of [`TestPki::client_cert`] (CN=bob).
pub const CLIENT_SERIAL: u64 = 0x1001;
/// Serial number of [`TestPki::revoked_cert`] (CN=revoked), listed in [`TestPki::crl`].
pub const REVOKED_SERIAL: u64 = 0x1002;

/// Paths of the PEM files [`write_test_pki`] wrote. Keys are PKCS#8
/// (`BEGIN PRIVATE KEY`), which nginx and rustls both read.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The directory holding every file below.
    pub dir: PathBuf,
    /// The CA (CN=Postern Test CA) that signs everything but the `other_*` files.
    pub ca: PathBuf,
    /// The CA's key, to issue more certificates in a test.
    pub ca_key: PathBuf,
    /// ECDSA P-256 server certificate for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// RSA 2048 server certificate for the same names.
    pub server_rsa_cert: PathBuf,
    pub server_rsa_key: PathBuf,
    /// Client certificate CN=bob, serial [`CLIENT_SERIAL`].
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Client certificate CN=revoked, serial [`REVOKED_SERIAL`], revoked by `crl`.
    pub revoked_cert: PathBuf,
    pub revoked_key: PathBuf,
    /// The CA's CRL, revoking `revoked_cert` only.
    pub crl: PathBuf,
    /// A second, unrelated CA (CN=Other Test CA).
    pub other_ca: PathBuf,
    /// Server certificate for `localhost` and `127.0.0.1` signed by `other_ca`.
    pub other_server_cert: PathBuf,
    pub other_server_key: PathBuf,
    /// Server certificate signed by `ca` for `wrong.example` only.
    pub wrong_name_cert: PathBuf,
    pub wrong_name_key: PathBuf,
}

fn pki_error(what: &str, e: rcgen::Error) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// A CA certificate that may sign certificates and CRLs (webpki checks
/// the cRLSign key usage before trusting a CRL).
fn make_ca(name: &str) -> io::Result<(Certificate, KeyPair)> {
    let key = KeyPair::generate().map_err(|e| pki_error("CA key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Postern tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let cert = params.self_signed(&key).map_err(|e| pki_error("CA certificate", e))?;
    Ok((cert, key))
}

/// An end-entity certificate for `names` (DNS names or IP addresses) with
/// common name `cn`, signed by `issuer`.
fn make_leaf(
    cn: &str,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    serial: Option<u64>,
    key: &KeyPair,
    issuer: &(Certificate, KeyPair),
) -> io::Result<Certificate> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).map_err(|e| pki_error(cn, e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Postern tests");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![purpose];
    params.serial_number = serial.map(SerialNumber::from);
    params.use_authority_key_identifier_extension = true;
    params
        .signed_by(key, &issuer.0, &issuer.1)
        .map_err(|e| pki_error(cn, e))
}

fn write(dir: &Path, name: &str, pem: &str) -> io::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, pem)?;
    Ok(path)
}

/// Writes a fresh test PKI into `dir` (created if missing) and returns the
/// paths. File names are fixed (`ca.pem`, `server.pem`, `server.key`, ...),
/// so a second call in the same directory replaces the first.
pub fn write_test_pki(dir: &Path) -> io::Result<TestPki> {
    fs::create_dir_all(dir)?;
    let server_names = ["localhost", "127.0.0.1"];
    let ca = make_ca("Postern Test CA")?;
    let other = make_ca("Other Test CA")?;
    let new_key = || KeyPair::generate().map_err(|e| pki_error("key", e));

    let server_key = new_key()?;
    let server = make_leaf(
        "localhost",
        &server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
        &server_key,
        &ca,
    )?;
    let rsa_key =
        KeyPair::from_pem_and_sign_algo(RSA_KEY, &PKCS_RSA_SHA256).map_err(|e| pki_error("RSA test key", e))?;
    let server_rsa = make_leaf(
        "localhost",
        &server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
        &rsa_key,
        &ca,
    )?;
    let client_key = new_key()?;
    let client = make_leaf(
        "bob",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        Some(CLIENT_SERIAL),
        &client_key,
        &ca,
    )?;
    let revoked_key = new_key()?;
    let revoked = make_leaf(
        "revoked",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        Some(REVOKED_SERIAL),
        &revoked_key,
        &ca,
    )?;
    let other_server_key = new_key()?;
    let other_server = make_leaf(
        "localhost",
        &server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
        &other_server_key,
        &other,
    )?;
    let wrong_name_key = new_key()?;
    let wrong_name = make_leaf(
        "wrong.example",
        &["wrong.example"],
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
        &wrong_name_key,
        &ca,
    )?;
    let crl = CertificateRevocationListParams {
        this_update: date_time_ymd(2024, 1, 1),
        next_update: date_time_ymd(2999, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(REVOKED_SERIAL),
            revocation_time: date_time_ymd(2024, 1, 1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.0, &ca.1)
    .map_err(|e| pki_error("CRL", e))?;
    let crl_pem = crl.pem().map_err(|e| pki_error("CRL", e))?;

    Ok(TestPki {
        dir: dir.to_path_buf(),
        ca: write(dir, "ca.pem", &ca.0.pem())?,
        ca_key: write(dir, "ca.key", &ca.1.serialize_pem())?,
        server_cert: write(dir, "server.pem", &server.pem())?,
        server_key: write(dir, "server.key", &server_key.serialize_pem())?,
        server_rsa_cert: write(dir, "server-rsa.pem", &server_rsa.pem())?,
        server_rsa_key: write(dir, "server-rsa.key", RSA_KEY)?,
        client_cert: write(dir, "client.pem", &client.pem())?,
        client_key: write(dir, "client.key", &client_key.serialize_pem())?,
        revoked_cert: write(dir, "revoked.pem", &revoked.pem())?,
        revoked_key: write(dir, "revoked.key", &revoked_key.serialize_pem())?,
        crl: write(dir, "crl.pem", &crl_pem)?,
        other_ca: write(dir, "other-ca.pem", &other.0.pem())?,
        other_server_cert: write(dir, "other-server.pem", &other_server.pem())?,
        other_server_key: write(dir, "other-server.key", &other_server_key.serialize_pem())?,
        wrong_name_cert: write(dir, "wrong-name.pem", &wrong_name.pem())?,
        wrong_name_key: write(dir, "wrong-name.key", &wrong_name_key.serialize_pem())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
    use std::sync::Arc;

    fn cert(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    fn roots(ca: &Path) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert(ca)).unwrap();
        Arc::new(roots)
    }

    fn server_verifier(ca: &Path) -> Arc<rustls::client::WebPkiServerVerifier> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca), provider)
            .build()
            .unwrap()
    }

    fn verify_server(ca: &Path, leaf: &Path, name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        let name = ServerName::try_from(name.to_string()).unwrap();
        server_verifier(ca)
            .verify_server_cert(&cert(leaf), &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    fn verify_client(pki: &TestPki, leaf: &Path) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let crl = CertificateRevocationListDer::from_pem_file(&pki.crl).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&pki.ca), provider)
            .with_crls([crl])
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&cert(leaf), &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn pki_files_parse_and_verify() {
        let dir = std::env::temp_dir().join(format!("postern-bench-pki-{}", std::process::id()));
        let pki = write_test_pki(&dir).unwrap();
        for key in [
            &pki.ca_key,
            &pki.server_key,
            &pki.server_rsa_key,
            &pki.client_key,
            &pki.revoked_key,
            &pki.other_server_key,
            &pki.wrong_name_key,
        ] {
            PrivateKeyDer::from_pem_file(key).unwrap();
        }
        for name in ["localhost", "127.0.0.1"] {
            verify_server(&pki.ca, &pki.server_cert, name).unwrap();
            verify_server(&pki.ca, &pki.server_rsa_cert, name).unwrap();
            verify_server(&pki.other_ca, &pki.other_server_cert, name).unwrap();
            assert!(verify_server(&pki.ca, &pki.other_server_cert, name).is_err());
            assert!(verify_server(&pki.ca, &pki.wrong_name_cert, name).is_err());
        }
        verify_server(&pki.ca, &pki.wrong_name_cert, "wrong.example").unwrap();
        verify_client(&pki, &pki.client_cert).unwrap();
        let revoked = verify_client(&pki, &pki.revoked_cert).unwrap_err();
        assert!(format!("{revoked:?}").contains("Revoked"), "{revoked:?}");

        // The keys match their certificates: a server config accepts each pair.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        for (c, k) in [
            (&pki.server_cert, &pki.server_key),
            (&pki.server_rsa_cert, &pki.server_rsa_key),
            (&pki.other_server_cert, &pki.other_server_key),
            (&pki.wrong_name_cert, &pki.wrong_name_key),
        ] {
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert(c)], PrivateKeyDer::from_pem_file(k).unwrap())
                .unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
