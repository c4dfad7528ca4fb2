//! Whether the server certificate on disk still serves the city's LAN: the names it lacks and the
//! names its CA may not vouch for. One answer for `doctor`, `status` and `onboard`.

use std::net::IpAddr;

use serde::Serialize;

use super::{PkiSummary, wanted_sans};
use crate::city::City;

/// How the leaf and the CA in `<state>/pki/` cover the names the current LAN addresses want.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeafCoverage {
    /// Wanted names the server certificate lacks (`IP:192.0.2.20`): a phone using one of them
    /// refuses the handshake until `cityd pki ensure` (or `cityd up`) re-issues the leaf.
    pub missing: Vec<String>,
    /// Wanted names outside the CA's NameConstraints: re-issuing cannot help, only a LAN address
    /// inside the CA's scope or a new CA.
    pub outside_ca: Vec<String>,
    /// The CA carries NameConstraints (`false`: it may vouch for any site, public ones included).
    pub ca_constrained: bool,
    /// Whole days the server certificate has left; `None` without one.
    pub leaf_days_left: Option<i64>,
}

impl LeafCoverage {
    /// Every wanted name is in the leaf and within the CA's scope.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.outside_ca.is_empty()
    }
}

/// Compares what [`super::inspect`] read with the names `lan` wants for `city`.
pub fn leaf_covers(summary: &PkiSummary, city: &City, lan: &[IpAddr]) -> LeafCoverage {
    let wanted = wanted_sans(city, lan);
    let scope = summary
        .ca
        .as_ref()
        .and_then(|ca| ca.name_constraints.as_ref());
    LeafCoverage {
        missing: match &summary.server {
            Some(leaf) => wanted.missing_from(&leaf.sans),
            None => wanted.entries(),
        },
        outside_ca: scope.map(|s| s.outside(&wanted)).unwrap_or_default(),
        ca_constrained: scope.is_some(),
        leaf_days_left: summary.server.as_ref().map(|s| s.days_left),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{EnsureOptions, ensure_in, inspect::inspect_dir};
    use time::OffsetDateTime;

    #[test]
    fn a_moved_address_is_missing_and_a_far_one_is_outside_the_ca() {
        // A pki directory inside a state directory of its own: the state is checked before use.
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("pki");
        let city = City::default_city();
        let now = OffsetDateTime::now_utc();
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        ensure_in(&dir, &city, &[a], &EnsureOptions::default(), now).unwrap();
        let summary = inspect_dir(&dir, now).unwrap().unwrap();

        let here = leaf_covers(&summary, &city, &[a]);
        assert!(here.is_complete() && here.ca_constrained, "{here:?}");
        assert!(here.leaf_days_left.unwrap() > 390);

        let moved = leaf_covers(&summary, &city, &["192.0.2.20".parse().unwrap()]);
        assert_eq!(moved.missing, ["IP:192.0.2.20"]);
        assert!(
            moved.outside_ca.is_empty(),
            "same /24: the CA still covers it"
        );

        let far = leaf_covers(&summary, &city, &["198.51.100.7".parse().unwrap()]);
        assert_eq!(far.missing, ["IP:198.51.100.7"]);
        assert_eq!(far.outside_ca, ["IP:198.51.100.7"]);
    }
}
