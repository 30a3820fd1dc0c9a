//! STUB until the tlsconf branch lands: the interface the session driver
//! uses. Replaced wholesale by the real module.
#![allow(dead_code, unused_variables)]

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{ConfigError, ServerConfig};

pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    pub fn build(server: &ServerConfig) -> Result<Option<ServerTls>, ConfigError> {
        Ok(None)
    }
    pub fn for_core(&self, cores: usize) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
    pub fn facts(&self, conn: &rustls::ServerConnection, pass_client_cert: bool) -> TlsFacts {
        TlsFacts {
            protocol: "TLSv1.3",
            cipher: String::new(),
            client_cert: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    pub protocol: &'static str,
    pub cipher: String,
    pub client_cert: Option<ClientCertFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFacts {
    pub verify: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub fingerprint: String,
    pub pem: Option<String>,
}

pub struct BackendTls {
    config: Arc<rustls::ClientConfig>,
}

impl BackendTls {
    pub fn build(server: &ServerConfig) -> Result<BackendTls, ConfigError> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::at(e.to_string(), server.location.clone()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Ok(BackendTls {
            config: Arc::new(config),
        })
    }
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }
    pub fn server_name(&self, addr: SocketAddr) -> rustls_pki_types::ServerName<'static> {
        rustls_pki_types::ServerName::IpAddress(addr.ip().into())
    }
}

pub fn ktls_available() -> bool {
    false
}
