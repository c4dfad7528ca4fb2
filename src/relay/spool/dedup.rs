//! The dedup window: recently seen event keys, oldest first, bounded by count and age, that never
//! forgets the key of an event still undelivered.

use std::collections::{HashSet, VecDeque};

use crate::relay::record::KeyId;

/// Recently seen keys, oldest first, bounded by count and age.
pub(super) struct Dedup {
    set: HashSet<KeyId>,
    order: VecDeque<(KeyId, u64)>,
    capacity: usize,
    max_age_ms: u64,
}

impl Dedup {
    pub(super) fn new(capacity: usize, max_age_ms: u64) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
            max_age_ms,
        }
    }

    /// How many keys are remembered.
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    /// The remembered keys with the time each was seen, oldest first (what compaction keeps).
    pub(super) fn entries(&self) -> impl Iterator<Item = (KeyId, u64)> + '_ {
        self.order.iter().copied()
    }

    pub(super) fn contains(&self, id: &KeyId) -> bool {
        self.set.contains(id)
    }

    pub(super) fn insert(&mut self, id: KeyId, at_ms: u64) {
        if self.set.insert(id) {
            self.order.push_back((id, at_ms));
        }
    }

    /// Forgets the oldest keys beyond the bounds, but never the key of an undelivered event.
    pub(super) fn evict(&mut self, now_ms: u64, live: &HashSet<KeyId>) {
        let mut budget = self.order.len();
        while budget > 0 {
            budget -= 1;
            let Some(&(id, at)) = self.order.front() else {
                break;
            };
            let too_many = self.order.len() > self.capacity;
            let too_old = now_ms.saturating_sub(at) > self.max_age_ms;
            if !too_many && !too_old {
                break;
            }
            self.order.pop_front();
            if live.contains(&id) {
                self.order.push_back((id, now_ms));
            } else {
                self.set.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_forgets_old_keys_but_not_undelivered_ones() {
        let mut d = Dedup::new(2, 1000);
        let (a, b, c) = (KeyId::of("a"), KeyId::of("b"), KeyId::of("c"));
        d.insert(a, 0);
        d.insert(b, 10);
        d.insert(c, 20);
        let live: HashSet<KeyId> = [a].into_iter().collect();
        d.evict(30, &live);
        assert!(d.contains(&a) && !d.contains(&b) && d.contains(&c));
        d.evict(5000, &HashSet::new());
        assert!(d.set.is_empty());
    }
}
