//! Postern: a mail proxy for IMAP, POP3 and SMTP, compatible with nginx's
//! `mail {}` configuration. The protocol core (`protocol`, `auth::request`,
//! `auth::reply`, `config`) is sans-IO; `session`, `relay`, `runtime` and
//! `auth::client` are the glommio edge.

pub mod auth;
pub mod cli;
pub mod config;
pub mod eager_read;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod proxy_protocol;
pub mod relay;
pub mod resolver;
pub mod runtime;
pub mod session;
pub mod tls;
