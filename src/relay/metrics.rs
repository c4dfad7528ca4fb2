//! The relay's counters and gauges, and their Prometheus text rendering (served on loopback only).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a request was refused; each reason is its own `rejected` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Signature,
    ContentType,
    TooLarge,
    Malformed,
    Unavailable,
    /// The body did not arrive within `--body-timeout` (408).
    Timeout,
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::Signature,
        RejectReason::ContentType,
        RejectReason::TooLarge,
        RejectReason::Malformed,
        RejectReason::Unavailable,
        RejectReason::Timeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RejectReason::Signature => "signature",
            RejectReason::ContentType => "content_type",
            RejectReason::TooLarge => "too_large",
            RejectReason::Malformed => "malformed",
            RejectReason::Unavailable => "unavailable",
            RejectReason::Timeout => "timeout",
        }
    }
}

/// Process-lifetime counters (they restart at zero with the process, as Prometheus expects) and
/// gauges that the spool keeps current.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub spooled: AtomicU64,
    pub duplicates: AtomicU64,
    pub delivered: AtomicU64,
    pub found_in_channel: AtomicU64,
    pub skipped: AtomicU64,
    pub retried: AtomicU64,
    rejected: [AtomicU64; 6],
    /// Open connections on the webhook listener.
    pub connections: AtomicU64,
    /// Connections the webhook listener accepted.
    pub connections_accepted: AtomicU64,
    /// Idle connections closed to make room for a new one at a cap.
    pub connections_evicted: AtomicU64,
    /// New connections closed at once: at a cap with every connection inside a request.
    pub connections_refused: AtomicU64,
    /// Connections closed because a request header did not arrive within `--header-timeout`.
    pub connections_timed_out: AtomicU64,
    /// Events in the spool that are not delivered yet.
    pub undelivered: AtomicU64,
    /// Receive time (ms since the epoch) of the oldest undelivered event; 0 when there is none.
    pub oldest_undelivered_ms: AtomicU64,
}

impl Metrics {
    pub fn reject(&self, reason: RejectReason) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason as usize].load(Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn render(&self, now_ms: u64) -> String {
        let mut out = String::with_capacity(2048);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "cityd_relay_received_total",
            "Requests received on POST /sonarqube.",
            self.received.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_spooled_total",
            "Events written to the spool and synced to disk (answered 202).",
            self.spooled.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_duplicates_total",
            "Signed, valid events whose key was already spooled (answered 202, not stored again).",
            self.duplicates.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_delivered_total",
            "Events whose Mattermost post is confirmed (posted now, or found in the channel after a crash).",
            self.delivered.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_found_in_channel_total",
            "Delivered events whose post from an earlier attempt was found in the channel (no repost).",
            self.found_in_channel.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_skipped_total",
            "Events with nothing to post (passed gates while the city does not post passes).",
            self.skipped.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_retried_total",
            "Failed post attempts that will be retried.",
            self.retried.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_connections_accepted_total",
            "Connections accepted on the webhook listener.",
            self.connections_accepted.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_connections_evicted_total",
            "Idle connections closed to make room for a new one at the connection cap or the per-address cap.",
            self.connections_evicted.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_connections_refused_total",
            "New connections closed at once: at a cap with every connection inside a request.",
            self.connections_refused.load(Relaxed),
        );
        counter(
            &mut out,
            "cityd_relay_connections_timed_out_total",
            "Connections closed because no complete request header arrived within the header timeout.",
            self.connections_timed_out.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP cityd_relay_connections Open connections on the webhook listener.\n# TYPE cityd_relay_connections gauge\ncityd_relay_connections {}",
            self.connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cityd_relay_rejected_total Requests refused, by reason.\n# TYPE cityd_relay_rejected_total counter"
        );
        for reason in RejectReason::ALL {
            let _ = writeln!(
                out,
                "cityd_relay_rejected_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.rejected(reason)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cityd_relay_undelivered Events in the spool not yet delivered.\n# TYPE cityd_relay_undelivered gauge\ncityd_relay_undelivered {}",
            self.undelivered.load(Relaxed)
        );
        let oldest = self.oldest_undelivered_ms.load(Relaxed);
        let age = if oldest == 0 {
            0.0
        } else {
            now_ms.saturating_sub(oldest) as f64 / 1000.0
        };
        let _ = writeln!(
            out,
            "# HELP cityd_relay_oldest_undelivered_age_seconds Age of the oldest undelivered event (0 when none).\n# TYPE cityd_relay_oldest_undelivered_age_seconds gauge\ncityd_relay_oldest_undelivered_age_seconds {age:.3}"
        );
        out
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_rendered_with_its_value() {
        let m = Metrics::default();
        m.received.store(5, Relaxed);
        m.reject(RejectReason::Signature);
        m.reject(RejectReason::Signature);
        m.oldest_undelivered_ms.store(1_000, Relaxed);
        let text = m.render(3_500);
        assert!(text.contains("cityd_relay_received_total 5\n"), "{text}");
        assert!(text.contains("cityd_relay_rejected_total{reason=\"signature\"} 2\n"));
        assert!(text.contains("cityd_relay_rejected_total{reason=\"too_large\"} 0\n"));
        assert!(text.contains("cityd_relay_oldest_undelivered_age_seconds 2.500\n"));
        for name in [
            "spooled_total",
            "delivered_total",
            "retried_total",
            "undelivered",
            "connections",
            "connections_accepted_total",
            "connections_evicted_total",
            "connections_refused_total",
            "connections_timed_out_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE cityd_relay_{name} ")),
                "{name}"
            );
        }
    }
}
