//! Postern's limits against bots (nginx has neither), both off by default
//! and both per core and listener: each core has its own SO_REUSEPORT
//! socket and its own counters, so nothing is shared between cores on the
//! path of a login. The kernel spreads one client address over the cores,
//! so `client_preauth_limit N` lets one address hold up to N sessions on
//! each core.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::sync::{Permit, Semaphore};

/// `client_preauth_limit`: sessions per client address that have not
/// logged in yet.
#[derive(Debug)]
pub struct PreauthLimit {
    max: usize,
    counts: RefCell<HashMap<IpAddr, usize>>,
}

/// One session's place under `PreauthLimit`, given back on drop (at login,
/// or when the session ends before it).
#[derive(Debug)]
pub struct PreauthGuard {
    limit: Rc<PreauthLimit>,
    ip: IpAddr,
}

impl PreauthLimit {
    pub fn new(max: usize) -> Self {
        PreauthLimit {
            max,
            counts: RefCell::new(HashMap::new()),
        }
    }

    /// A place for a new session from `ip`, or `None` when that address
    /// already has `max` sessions not logged in.
    pub fn enter(self: &Rc<Self>, ip: IpAddr) -> Option<PreauthGuard> {
        let mut counts = self.counts.borrow_mut();
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PreauthGuard {
            limit: Rc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.counts.borrow().len()
    }
}

impl Drop for PreauthGuard {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.borrow_mut();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            // An address with no session left costs no memory: a bot
            // cycling through addresses cannot grow the table.
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// `auth_http_concurrency` and `auth_http_queue`: auth requests in flight,
/// and logins that may wait for one of those slots.
#[derive(Debug)]
pub struct AuthLimit {
    slots: Semaphore,
    queue: usize,
    waiting: Cell<usize>,
}

/// Why a login got no auth slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    QueueFull,
    WaitedTooLong,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Busy::QueueFull => "auth_http_queue is full",
            Busy::WaitedTooLong => "waited auth_http_timeout for an auth_http_concurrency slot",
        })
    }
}

/// Counts a waiter out again however its wait ends, the future dropped
/// included.
struct Waiting<'a>(&'a Cell<usize>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl AuthLimit {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        AuthLimit {
            slots: Semaphore::new(concurrency as u64),
            queue,
            waiting: Cell::new(0),
        }
    }

    /// A slot for one auth request, held until the permit drops: at once
    /// when one is free, else after waiting in the queue at most `patience`.
    pub async fn slot(&self, patience: Duration) -> Result<Permit<'_>, Busy> {
        if let Ok(permit) = self.slots.try_acquire_permit(1) {
            return Ok(permit);
        }
        if self.waiting.get() >= self.queue {
            return Err(Busy::QueueFull);
        }
        self.waiting.set(self.waiting.get() + 1);
        let _waiting = Waiting(&self.waiting);
        match glommio::timer::timeout(patience, async { Ok(self.slots.acquire_permit(1).await) }).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one is no slot either.
            Ok(Err(_)) | Err(_) => Err(Busy::WaitedTooLong),
        }
    }
}

/// The most client addresses `FailLimit` remembers per core and listener:
/// about 64 bytes each, so a bot cycling through addresses costs at most
/// about half a megabyte.
const FAIL_LIMIT_ADDRESSES: usize = 8192;

/// `auth_fail_limit N per T`: client addresses whose logins the auth server
/// refused N times within T are answered "try later" without asking it,
/// until T has passed since the first of those failures. Approximate by
/// design: a fixed window per address, per core, and when the table is
/// full the stalest addresses are forgotten first.
#[derive(Debug)]
pub struct FailLimit {
    max: u32,
    window: Duration,
    failures: RefCell<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

impl FailLimit {
    pub fn new(max: u32, window: Duration) -> Self {
        FailLimit {
            max,
            window,
            failures: RefCell::new(HashMap::new()),
        }
    }

    /// Whether logins from `ip` are refused without asking the auth server.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures
            .borrow()
            .get(&ip)
            .is_some_and(|f| now.duration_since(f.since) < self.window && f.count >= self.max)
    }

    /// The auth server refused a login from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.borrow_mut();
        if !failures.contains_key(&ip) && failures.len() >= FAIL_LIMIT_ADDRESSES {
            let window = self.window;
            failures.retain(|_, f| now.duration_since(f.since) < window);
            if failures.len() >= FAIL_LIMIT_ADDRESSES {
                // Still full of live windows: the oldest one goes. A scan,
                // but only when a new address meets a full table.
                if let Some(oldest) = failures.iter().min_by_key(|(_, f)| f.since).map(|(ip, _)| *ip) {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(ip).or_insert(Failures { since: now, count: 0 });
        if now.duration_since(entry.since) >= self.window {
            *entry = Failures { since: now, count: 0 };
        }
        entry.count = entry.count.saturating_add(1);
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.failures.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_limit_blocks_within_the_window_and_forgets_after() {
        let limit = FailLimit::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for i in 0..3 {
            assert!(!limit.blocked(a, t0), "blocked after {i} failures");
            limit.failed(a, t0 + Duration::from_secs(i));
        }
        assert!(limit.blocked(a, t0 + Duration::from_secs(10)));
        assert!(!limit.blocked(b, t0 + Duration::from_secs(10)), "another address");
        // The window counts from the first failure.
        assert!(!limit.blocked(a, t0 + Duration::from_secs(60)));
        limit.failed(a, t0 + Duration::from_secs(61));
        assert!(
            !limit.blocked(a, t0 + Duration::from_secs(62)),
            "a new window starts at 1"
        );
    }

    #[test]
    fn fail_limit_memory_is_bounded() {
        let limit = FailLimit::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(FAIL_LIMIT_ADDRESSES as u32 + 100) {
            limit.failed(IpAddr::from(i.to_be_bytes()), t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(limit.addresses(), FAIL_LIMIT_ADDRESSES);
        // The oldest went first; the newest is remembered.
        assert!(!limit.blocked(IpAddr::from(0u32.to_be_bytes()), t0 + Duration::from_secs(30)));
        let newest = FAIL_LIMIT_ADDRESSES as u32 + 99;
        assert!(limit.blocked(IpAddr::from(newest.to_be_bytes()), t0 + Duration::from_secs(30)));
    }

    #[test]
    fn preauth_limit_counts_per_address_and_forgets_empty_ones() {
        let limit = Rc::new(PreauthLimit::new(2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = limit.enter(a).unwrap();
        let a2 = limit.enter(a).unwrap();
        assert!(limit.enter(a).is_none());
        let b1 = limit.enter(b).unwrap();
        drop(a1);
        let a3 = limit.enter(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(limit.addresses(), 0);
    }

    #[test]
    fn auth_limit_queues_then_refuses() {
        glommio::LocalExecutor::default().run(async {
            let limit = Rc::new(AuthLimit::new(1, 1));
            let held = limit.slot(Duration::from_secs(1)).await.unwrap();
            let waiter = {
                let limit = limit.clone();
                glommio::spawn_local(async move { limit.slot(Duration::from_secs(5)).await.map(drop) })
            };
            // Let the waiter take the one queue place.
            glommio::executor().yield_task_queue_now().await;
            assert_eq!(limit.waiting.get(), 1);
            assert_eq!(limit.slot(Duration::from_secs(1)).await.err(), Some(Busy::QueueFull));
            drop(held);
            assert_eq!(waiter.await, Ok(()));
            assert_eq!(limit.waiting.get(), 0);
            let held = limit.slot(Duration::from_secs(1)).await.unwrap();
            assert_eq!(
                limit.slot(Duration::from_millis(20)).await.err(),
                Some(Busy::WaitedTooLong)
            );
            assert_eq!(limit.waiting.get(), 0);
            drop(held);
        });
    }
}
