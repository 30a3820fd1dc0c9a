//! Moving bytes both ways once the backend login is done.

pub mod copy;

/// What one relay moved, for the session's log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayStats {
    pub client_to_backend: u64,
    pub backend_to_client: u64,
    /// Why the relay ended early, if it did not end with both sides closing.
    pub error: Option<String>,
}
