//! Moving bytes both ways once the backend login is done: by splice (zero
//! copy) when a pipe can be had, by copy otherwise (and later for TLS).

pub mod copy;
pub mod splice;

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How the relay moves bytes (`--relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    Splice,
    Copy,
}

/// What one relay moved, for the session's log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayStats {
    pub client_to_backend: u64,
    pub backend_to_client: u64,
    /// Why the relay ended early, if it did not end with both sides closing.
    pub error: Option<String>,
}

/// Completes once nothing has moved for `limit` (`proxy_timeout`). One timer
/// per session, re-armed at most once per `limit`, not once per read.
async fn idle_watch(limit: Duration, last_moved: &Cell<Instant>) {
    loop {
        let deadline = last_moved.get() + limit;
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        glommio::timer::sleep(deadline - now).await;
    }
}

/// The stats of a relay from how its two directions ended.
fn finish(
    up: Option<Result<(), String>>,
    down: Option<Result<(), String>>,
    timed_out: bool,
    idle_limit: Duration,
    client_to_backend: u64,
    backend_to_client: u64,
) -> RelayStats {
    let error = match (up, down) {
        _ if timed_out => Some(format!("proxy_timeout: no data for {}s", idle_limit.as_secs())),
        (Some(Err(e)), _) => Some(format!("client->backend: {e}")),
        (_, Some(Err(e))) => Some(format!("backend->client: {e}")),
        _ => None,
    };
    RelayStats {
        client_to_backend,
        backend_to_client,
        error,
    }
}
