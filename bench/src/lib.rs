//! Companions for exercising Postern: an nginx-compatible `auth_http`
//! server, fake mail backends and a throughput client, all built on blocking
//! std I/O with one thread per connection.

pub mod auth;
pub mod backend;
pub mod certs;
pub mod chart;
pub mod digest;
pub mod fetch;
pub mod load;
pub mod message;
pub mod net;
pub mod procstat;
pub mod proxy_header;
pub mod record;
pub mod tls;
pub mod users;
