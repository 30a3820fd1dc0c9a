//! A core's cache of DNS answers: bounded in entries (the oldest insert is
//! dropped first) and each entry kept until its expiry. Time is passed in,
//! so tests step a clock instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Instant;

/// Entries per core and server block: a PTR and an address set for each
/// of this many recent clients, a few MB at most, so a flood of clients
/// from distinct addresses cannot grow it without bound.
pub const DEFAULT_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    expires: Instant,
    /// Which insert this is, to tell a live entry from a stale place in
    /// the order queue.
    seq: u64,
}

#[derive(Debug)]
pub struct Cache<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Keys in insert order; a key inserted again leaves its old place
    /// behind, skipped when it comes up.
    order: VecDeque<(K, u64)>,
    seq: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            capacity: capacity.max(1),
        }
    }

    /// The value if it has not expired at `now`; an expired one is dropped.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        let slot = self.map.get(key)?;
        if now < slot.expires {
            return Some(slot.value.clone());
        }
        self.map.remove(key);
        None
    }

    pub fn insert(&mut self, key: K, value: V, expires: Instant) {
        self.seq += 1;
        let seq = self.seq;
        self.order.push_back((key.clone(), seq));
        self.map.insert(key, Slot { value, expires, seq });
        while self.map.len() > self.capacity {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|slot| slot.seq == old_seq) {
                self.map.remove(&old);
            }
        }
        // Stale places (re-inserted or expired keys) would otherwise pile up
        // in the queue while the map stays under capacity.
        if self.order.len() > 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(key, seq)| map.get(key).is_some_and(|slot| slot.seq == *seq));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_at_their_time() {
        let t0 = Instant::now();
        let mut cache = Cache::new(10);
        cache.insert("a", 1, t0 + Duration::from_secs(60));
        cache.insert("b", 2, t0 + Duration::from_secs(5));
        assert_eq!(cache.get(&"a", t0), Some(1));
        assert_eq!(cache.get(&"b", t0 + Duration::from_secs(4)), Some(2));
        assert_eq!(
            cache.get(&"b", t0 + Duration::from_secs(5)),
            None,
            "expired at its instant"
        );
        assert_eq!(cache.len(), 1, "an expired entry is dropped when seen");
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(59)), Some(1));
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(61)), None);
        assert_eq!(cache.get(&"c", t0), None);
    }

    #[test]
    fn the_oldest_insert_goes_first() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(3600);
        let mut cache = Cache::new(3);
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            cache.insert(k, v, later);
        }
        // Inserting `a` again makes it the newest.
        cache.insert("a", 10, later);
        cache.insert("d", 4, later);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&"b", t0), None, "b was the oldest");
        assert_eq!(cache.get(&"a", t0), Some(10));
        assert_eq!(cache.get(&"c", t0), Some(3));
        assert_eq!(cache.get(&"d", t0), Some(4));
    }

    #[test]
    fn the_order_queue_stays_bounded() {
        let t0 = Instant::now();
        let mut cache = Cache::new(4);
        for i in 0..1000 {
            cache.insert(i % 2, i, t0 + Duration::from_secs(1));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.order.len() <= 8, "{}", cache.order.len());
        assert_eq!(cache.get(&1, t0), Some(999));
    }
}
