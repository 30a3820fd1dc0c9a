//! PEM files named by the TLS directives, each error naming the file and
//! what is wrong with it, at the directive that named it.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::{ConfigError, Location};

/// The bytes of `path`; `what` is nginx's noun (`certificate`,
/// `certificate key`, `CRL`...).
fn read(path: &Path, what: &str, at: &Location) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|err| cannot_load(what, path, &err.to_string(), at))
}

pub(crate) fn cannot_load(what: &str, path: &Path, why: &str, at: &Location) -> ConfigError {
    ConfigError::at(format!("cannot load {what} \"{}\": {why}", path.display()), at.clone())
}

/// Every `CERTIFICATE` block, in order (the end-entity certificate first,
/// then its chain, as nginx wants the file); other blocks, such as a key
/// kept in the same file, are skipped. None at all is an error.
pub(crate) fn certificates(
    path: &Path,
    what: &str,
    at: &Location,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(path, what, at)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|err| cannot_load(what, path, &format!("bad PEM: {err}"), at))?;
    if certs.is_empty() {
        return Err(cannot_load(what, path, "no PEM certificate in the file", at));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1). Encrypted keys are
/// refused by name: rustls cannot decrypt them and nginx's
/// `ssl_password_file` is not supported.
pub(crate) fn private_key(path: &Path, at: &Location) -> Result<PrivateKeyDer<'static>, ConfigError> {
    const WHAT: &str = "certificate key";
    let bytes = read(path, WHAT, at)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(cannot_load(
            WHAT,
            path,
            "encrypted private keys are not supported: decrypt the key",
            at,
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| {
        let why = match err {
            pem::Error::NoItemsFound => "no PEM private key in the file".to_string(),
            other => format!("bad PEM: {other}"),
        };
        cannot_load(WHAT, path, &why, at)
    })
}

/// Every `X509 CRL` block; none is an error, as nginx's.
pub(crate) fn crls(path: &Path, at: &Location) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
    const WHAT: &str = "CRL";
    let bytes = read(path, WHAT, at)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|err| cannot_load(WHAT, path, &format!("bad PEM: {err}"), at))?;
    if crls.is_empty() {
        return Err(cannot_load(WHAT, path, "no PEM CRL in the file", at));
    }
    Ok(crls)
}

/// A store of the certificates in `path`, each of which must be usable as
/// a trust anchor.
pub(crate) fn roots(path: &Path, what: &str, at: &Location) -> Result<rustls::RootCertStore, ConfigError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(path, what, at)? {
        store
            .add(cert)
            .map_err(|err| cannot_load(what, path, &err.to_string(), at))?;
    }
    Ok(store)
}
