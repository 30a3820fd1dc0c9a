//! TLS with rustls (ring provider): the client side of a server block
//! (`listen ... ssl`, `starttls`, the `ssl_*` directives) and the backend
//! side (`proxy_ssl*`, Postern's own).
//!
//! Everything here is built once, when the configuration is loaded, and
//! then only read: `ServerTls::for_core` gives each core its own rustls
//! config, sharing certificates, keys and ticket keys but with its own
//! session cache, so no lock is shared between cores on the hot path.
//!
//! - `server`: `ServerTls`, the client-facing config, and `TlsFacts` for the
//!   auth request.
//! - `backend`: `BackendTls`, the config for connections to backends.
//! - `client_verify`: `ssl_verify_client` and `ssl_verify_depth`.
//! - `ciphers`: OpenSSL cipher strings mapped to rustls suites.
//! - `kx`: `ssl_ecdh_curve` to key-exchange groups.
//! - `files`: PEM files, with errors naming them.
//! - `cert_info`: what nginx tells the auth server about a client certificate.
//! - `session_age`: `ssl_session_timeout` on cached sessions and tickets.
//! - `ktls`: handing established sessions to kernel TLS (`--ktls`).

mod backend;
pub(crate) mod cert_info;
pub mod ciphers;
mod client_verify;
mod files;
pub mod ktls;
pub mod kx;
mod server;
mod session_age;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::sync::Arc;

pub use backend::BackendTls;
pub use cert_info::ClientCertFacts;
pub use server::{ServerTls, TlsFacts};

/// Loads every server's certificates, keys, CAs and CRLs and builds its
/// rustls configs, as `nginx -t` loads them: a file that is missing or
/// wrong is found when the configuration is read, not at the first client.
pub fn check(config: &crate::config::Config) -> Result<(), crate::config::ConfigError> {
    for server in &config.servers {
        ServerTls::build(server)?;
        BackendTls::build(server)?;
    }
    Ok(())
}

/// Whether a server asks for TLS on the client side.
pub fn wanted(server: &crate::config::ServerConfig) -> bool {
    server.starttls != crate::config::Starttls::Off || server.listen.iter().any(|l| l.params.ssl)
}

/// Where the kernel lists its upper-layer protocols.
const AVAILABLE_ULP: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

/// Whether the kernel offers kernel TLS (the `tls` word in
/// /proc/sys/net/ipv4/tcp_available_ulp). A missing or unreadable file is a
/// kernel without it.
pub fn ktls_available() -> bool {
    std::fs::read_to_string(AVAILABLE_ULP).is_ok_and(|ulps| ulps.split_whitespace().any(|ulp| ulp == "tls"))
}

/// The ring provider with the given TLS 1.2 suites (the TLS 1.3 ones are
/// always all there, as OpenSSL's cipher list leaves them alone) and
/// key-exchange groups (`None`: ring's defaults).
fn provider(
    tls12: Option<&[rustls::SupportedCipherSuite]>,
    kx_groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
) -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(tls12) = tls12 {
        provider
            .cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13);
        provider.cipher_suites.extend_from_slice(tls12);
    }
    if let Some(groups) = kx_groups {
        provider.kx_groups = groups;
    }
    Arc::new(provider)
}
