//! `ssl_session_timeout` for rustls. rustls keeps no age for the sessions
//! in its cache and takes no lifetime for the tickets it seals, so a client
//! could resume with a session or ticket of any age (the cache drops only
//! when full, ticket keys rotate every 6 h). OpenSSL, and so nginx, refuses
//! a session older than its timeout. Here every cached session and every
//! ticket's plaintext carries its expiry, in milliseconds since the epoch,
//! in front of rustls's own bytes, and is refused once past it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::server::{ProducesTickets, StoresServerSessions};

/// Milliseconds since the epoch; a function so tests can move time.
type Clock = fn() -> u64;

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const STAMP: usize = 8;

/// The expiry, then the value.
fn stamped(expiry: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAMP + value.len());
    out.extend_from_slice(&expiry.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value, if `stamped` holds one that has not expired at `now`.
fn fresh(mut stamped: Vec<u8>, now: u64) -> Option<Vec<u8>> {
    let expiry = u64::from_be_bytes(stamped.get(..STAMP)?.try_into().ok()?);
    if now >= expiry {
        return None;
    }
    stamped.drain(..STAMP);
    Some(stamped)
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

/// The timeout and the clock both wrappers stamp and check with.
#[derive(Clone, Copy)]
struct Expiry {
    timeout: u64,
    clock: Clock,
}

impl Expiry {
    fn new(timeout: Duration, clock: Clock) -> Self {
        Expiry {
            timeout: millis(timeout),
            clock,
        }
    }

    /// `value` with the expiry of something made now in front.
    fn stamp(self, value: &[u8]) -> Vec<u8> {
        stamped((self.clock)().saturating_add(self.timeout), value)
    }

    /// The value, if not expired now.
    fn check(self, stamped: Vec<u8>) -> Option<Vec<u8>> {
        fresh(stamped, (self.clock)())
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.timeout)
    }
}

/// A session cache (`StoresServerSessions`) whose entries expire `timeout`
/// after they were stored, or a ticketer (`ProducesTickets`) whose tickets
/// are refused `timeout` after they were issued and tell the client so in
/// their lifetime hint.
#[derive(Debug)]
pub struct Expiring<T: ?Sized> {
    inner: Arc<T>,
    expiry: Expiry,
}

impl<T: ?Sized> Expiring<T> {
    pub fn new(inner: Arc<T>, timeout: Duration) -> Self {
        Self::with_clock(inner, timeout, unix_millis)
    }

    fn with_clock(inner: Arc<T>, timeout: Duration, clock: Clock) -> Self {
        Expiring {
            inner,
            expiry: Expiry::new(timeout, clock),
        }
    }
}

impl<T: StoresServerSessions + ?Sized> StoresServerSessions for Expiring<T> {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, self.expiry.stamp(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.expiry.check(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.expiry.check(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

impl<T: ProducesTickets + ?Sized> ProducesTickets for Expiring<T> {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    /// The shorter of the keys' life and the timeout, in whole seconds.
    fn lifetime(&self) -> u32 {
        let timeout = u32::try_from(self.expiry.timeout / 1000).unwrap_or(u32::MAX);
        self.inner.lifetime().min(timeout)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.expiry.stamp(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.expiry.check(self.inner.decrypt(cipher)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rustls::server::ServerSessionMemoryCache;

    use super::*;

    /// One clock for this module's tests; each test sets it before use and
    /// they run in one thread each, so they share it under a lock.
    static NOW: AtomicU64 = AtomicU64::new(0);
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn test_clock() -> u64 {
        NOW.load(Ordering::SeqCst)
    }

    fn at(ms: u64) {
        NOW.store(ms, Ordering::SeqCst);
    }

    #[test]
    fn cached_sessions_expire_after_the_timeout() {
        let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let store = Expiring::with_clock(ServerSessionMemoryCache::new(8), Duration::from_secs(300), test_clock);
        at(1_000_000);
        assert!(store.put(b"id".to_vec(), b"session".to_vec()));
        at(1_000_000 + 299_999);
        assert_eq!(store.get(b"id"), Some(b"session".to_vec()));
        at(1_000_000 + 300_000);
        assert_eq!(store.get(b"id"), None);
        assert_eq!(store.take(b"id"), None);
        // take gives a fresh one once.
        assert!(store.put(b"id2".to_vec(), b"s2".to_vec()));
        assert_eq!(store.take(b"id2"), Some(b"s2".to_vec()));
        assert_eq!(store.take(b"id2"), None);
        assert_eq!(store.get(b"unknown"), None);
    }

    #[test]
    fn tickets_expire_after_the_timeout_and_say_so() {
        let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let keys = rustls::crypto::ring::Ticketer::new().unwrap();
        let keys_life = keys.lifetime();
        let tickets = Expiring::with_clock(keys, Duration::from_secs(300), test_clock);
        assert!(tickets.enabled());
        assert_eq!(tickets.lifetime(), 300.min(keys_life));
        at(5_000);
        let ticket = tickets.encrypt(b"resumption state").unwrap();
        at(5_000 + 299_999);
        assert_eq!(tickets.decrypt(&ticket), Some(b"resumption state".to_vec()));
        at(5_000 + 300_000);
        assert_eq!(tickets.decrypt(&ticket), None);
        // Garbage and truncated tickets stay refused.
        assert_eq!(tickets.decrypt(b"not a ticket"), None);
        assert_eq!(tickets.decrypt(&ticket[..ticket.len() / 2]), None);
    }

    #[test]
    fn a_stamp_too_short_is_no_session() {
        assert_eq!(fresh(vec![0; STAMP - 1], 0), None);
        assert_eq!(fresh(stamped(10, b""), 9), Some(Vec::new()));
        assert_eq!(fresh(stamped(10, b"x"), 10), None);
    }
}
