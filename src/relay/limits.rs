//! What the relay allows each client: the timeouts and caps of a listener ([`Limits`]), the
//! descriptor budget they need, and the table of open connections that enforces the caps
//! ([`Connections`]): at a cap, the connection that has waited longest without a request is
//! closed to make room, so idle clients cannot crowd out a sender. Figures: docs/relay.md.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// The timeouts and caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's line and headers must arrive in full within this, counted from the accept or
    /// from the previous response: it is also how long an idle connection is kept.
    pub header_timeout: Duration,
    /// A request's body must arrive in full within this once its header has.
    pub body_timeout: Duration,
    /// Open connections at once (each holds a descriptor).
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_per_peer: usize,
    /// Body bytes buffered at once across all requests whose signature is not yet verified.
    pub max_unverified_bytes: usize,
    /// How long a shutdown lets started requests finish before cutting them off.
    pub shutdown_grace: Duration,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// SonarQube itself gives up after 10 s (integrations.md §1.1): a slower body is no delivery.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// One SonarQube sends a few webhooks at a time; 64 leaves room for a NAT in front of it.
pub const DEFAULT_MAX_PER_PEER: usize = 64;
pub const DEFAULT_MAX_UNVERIFIED_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Descriptors the relay needs besides its webhook connections: stdio, the two listeners, the
/// spool's log, directory and lock, the runtime's epoll and wakers, up to `--concurrency` posts
/// and a read-back connection, the metrics listener's own connections (capped at
/// [`METRICS_LIMITS`]), and one connection accepted only to be shed at a cap.
pub const DESCRIPTOR_RESERVE: u64 = 128;

/// The loopback metrics listener: Prometheus scrapes with one connection.
pub const METRICS_MAX_CONNECTIONS: usize = 16;

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            max_unverified_bytes: DEFAULT_MAX_UNVERIFIED_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl Limits {
    /// The limits of the metrics listener: the same clocks, a small cap.
    pub fn for_metrics(&self) -> Self {
        Self {
            max_connections: METRICS_MAX_CONNECTIONS,
            max_per_peer: METRICS_MAX_CONNECTIONS,
            ..*self
        }
    }

    /// The descriptors (RLIMIT_NOFILE) a relay with these limits needs.
    pub fn descriptors_needed(&self, concurrency: usize) -> u64 {
        self.max_connections as u64 + concurrency as u64 + DESCRIPTOR_RESERVE
    }
}

/// Why a new connection was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// At a cap with every connection inside a request: the new one is closed.
    Refused,
}

struct Entry {
    peer: IpAddr,
    evict: CancellationToken,
    /// The key in `Inner::idle` while the connection waits for a request.
    idle_since: Option<u64>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    entries: HashMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
    /// Connections waiting for a request, oldest first: (order, id).
    idle: BTreeMap<u64, u64>,
}

impl Inner {
    fn stamp(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Forgets `id` (its counts included); true if it was there.
    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        if let Some(since) = entry.idle_since {
            self.idle.remove(&since);
        }
        if let Some(n) = self.per_peer.get_mut(&entry.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&entry.peer);
            }
        }
        true
    }

    /// Closes the longest-idle connection (of `peer` only, if given); false if none is idle.
    fn evict_oldest(&mut self, peer: Option<IpAddr>) -> bool {
        let victim = self
            .idle
            .values()
            .copied()
            .find(|id| peer.is_none_or(|p| self.entries[id].peer == p));
        let Some(id) = victim else { return false };
        let token = self.entries[&id].evict.clone();
        self.remove(id);
        token.cancel();
        true
    }
}

/// The open connections of one listener.
pub struct Connections {
    limits: Limits,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

impl Connections {
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            metrics,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table stays consistent between statements; a panic elsewhere cannot tear it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a new connection from `peer` into the table, making room at a cap by closing the
    /// longest-idle connection (of the same address when its cap is the one reached).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Shed> {
        let peer = peer.to_canonical();
        let mut inner = self.lock();
        if inner.per_peer.get(&peer).copied().unwrap_or(0) >= self.limits.max_per_peer {
            if !inner.evict_oldest(Some(peer)) {
                self.metrics.connections_refused.fetch_add(1, Relaxed);
                return Err(Shed::Refused);
            }
            self.metrics.connections_evicted.fetch_add(1, Relaxed);
        }
        if inner.entries.len() >= self.limits.max_connections {
            if !inner.evict_oldest(None) {
                self.metrics.connections_refused.fetch_add(1, Relaxed);
                return Err(Shed::Refused);
            }
            self.metrics.connections_evicted.fetch_add(1, Relaxed);
        }
        let id = inner.stamp();
        let since = inner.stamp();
        let evict = CancellationToken::new();
        inner.entries.insert(
            id,
            Entry {
                peer,
                evict: evict.clone(),
                idle_since: Some(since),
            },
        );
        inner.idle.insert(since, id);
        *inner.per_peer.entry(peer).or_insert(0) += 1;
        self.metrics
            .connections
            .store(inner.entries.len() as u64, Relaxed);
        Ok(Admitted {
            table: Arc::clone(self),
            id,
            evict,
        })
    }

    /// Open connections now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection in the table; leaves it when dropped.
pub struct Admitted {
    table: Arc<Connections>,
    id: u64,
    evict: CancellationToken,
}

impl Admitted {
    /// Fires when the table closes this connection to make room.
    pub fn evicted(&self) -> CancellationToken {
        self.evict.clone()
    }

    /// A request is being handled: not to be evicted.
    pub fn busy(&self) {
        let mut inner = self.table.lock();
        if let Some(since) = inner
            .entries
            .get_mut(&self.id)
            .and_then(|e| e.idle_since.take())
        {
            inner.idle.remove(&since);
        }
    }

    /// The response is given: waiting for the next request, evictable again (newest last).
    pub fn idle(&self) {
        let mut inner = self.table.lock();
        let since = inner.stamp();
        let Some(entry) = inner.entries.get_mut(&self.id) else {
            return;
        };
        if let Some(old) = entry.idle_since.replace(since) {
            inner.idle.remove(&old);
        }
        inner.idle.insert(since, self.id);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        if inner.remove(self.id) {
            self.table
                .metrics
                .connections
                .store(inner.entries.len() as u64, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, per_peer: usize) -> Arc<Connections> {
        Connections::new(
            Limits {
                max_connections: max,
                max_per_peer: per_peer,
                ..Limits::default()
            },
            Arc::new(Metrics::default()),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let t = table(3, 3);
        let a = t.admit(ip("10.0.0.1")).unwrap();
        let b = t.admit(ip("10.0.0.2")).unwrap();
        let c = t.admit(ip("10.0.0.3")).unwrap();
        a.busy();
        let d = t.admit(ip("10.0.0.4")).unwrap();
        assert!(!a.evicted().is_cancelled(), "a request in progress stays");
        assert!(b.evicted().is_cancelled(), "the oldest idle one goes");
        assert!(!c.evicted().is_cancelled());
        assert_eq!(t.len(), 3);
        drop(b);
        assert_eq!(t.len(), 3, "an evicted connection was already counted out");
        // All busy: a new connection is refused.
        c.busy();
        d.busy();
        assert_eq!(t.admit(ip("10.0.0.5")).err(), Some(Shed::Refused));
        // A finished request is idle again and evictable.
        a.idle();
        let _e = t.admit(ip("10.0.0.5")).unwrap();
        assert!(a.evicted().is_cancelled());
        assert_eq!(t.metrics.connections_evicted.load(Relaxed), 2);
        assert_eq!(t.metrics.connections_refused.load(Relaxed), 1);
    }

    #[test]
    fn one_address_only_displaces_its_own_connections() {
        let t = table(10, 2);
        let other = t.admit(ip("10.0.0.9")).unwrap();
        let a = t.admit(ip("10.0.0.1")).unwrap();
        let b = t.admit(ip("::ffff:10.0.0.1")).unwrap();
        let c = t.admit(ip("10.0.0.1")).unwrap();
        assert!(
            a.evicted().is_cancelled(),
            "IPv4-mapped is the same address"
        );
        assert!(!other.evicted().is_cancelled());
        b.busy();
        c.busy();
        assert_eq!(t.admit(ip("10.0.0.1")).err(), Some(Shed::Refused));
        assert!(t.admit(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn the_descriptor_budget_covers_the_caps() {
        let limits = Limits::default();
        assert_eq!(limits.descriptors_needed(16), 512 + 16 + 128);
        assert!(limits.descriptors_needed(16) <= 1024);
    }
}
