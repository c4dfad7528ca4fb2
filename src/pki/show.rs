//! What `cityd pki show` reports: the summary of `<state>/pki/` and how the server certificate's
//! names compare with the ones the current LAN addresses want.

use std::net::IpAddr;

use serde::Serialize;

use super::{PkiSummary, SanSet, wanted_sans};
use crate::city::City;

#[derive(Debug, Serialize)]
pub struct ShowReport {
    #[serde(flatten)]
    pub summary: PkiSummary,
    pub wanted_sans: Option<SanSet>,
    /// Wanted names the server certificate lacks (empty when current).
    pub missing_sans: Vec<String>,
    /// Why the wanted names could not be computed (lan.addresses did not resolve).
    pub lan_error: Option<String>,
}

/// Compares the summary with the names `lan` wants; `lan` is the reason text when the LAN
/// addresses did not resolve, which the report carries instead of failing.
pub fn show_report(
    summary: PkiSummary,
    city: &City,
    lan: Result<Vec<IpAddr>, String>,
) -> ShowReport {
    let (wanted, lan_error) = match lan {
        Ok(lan) => (Some(wanted_sans(city, &lan)), None),
        Err(reason) => (None, Some(reason)),
    };
    let missing_sans = match (&wanted, &summary.server) {
        (Some(wanted), Some(server)) => wanted.missing_from(&server.sans),
        _ => Vec::new(),
    };
    ShowReport {
        summary,
        wanted_sans: wanted,
        missing_sans,
        lan_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{EnsureOptions, ensure, inspect};
    use crate::state::StateDir;

    fn issued_for(address: &str) -> (tempfile::TempDir, City, PkiSummary) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().to_path_buf()).unwrap();
        let city = City::default_city();
        let lan = [address.parse().unwrap()];
        ensure(&state, &city, &lan, &EnsureOptions::default()).unwrap();
        let summary = inspect(&state).unwrap().unwrap();
        (dir, city, summary)
    }

    #[test]
    fn a_moved_lan_address_is_reported_missing() {
        let (_dir, city, summary) = issued_for("192.0.2.10");
        let same: [IpAddr; 1] = ["192.0.2.10".parse().unwrap()];
        let current = show_report(summary.clone(), &city, Ok(same.to_vec()));
        assert!(current.missing_sans.is_empty(), "{current:?}");
        assert!(current.wanted_sans.is_some());

        let moved: [IpAddr; 1] = ["192.0.2.20".parse().unwrap()];
        let report = show_report(summary, &city, Ok(moved.to_vec()));
        assert_eq!(report.missing_sans, ["IP:192.0.2.20"]);
    }

    #[test]
    fn unresolved_lan_addresses_are_carried_not_compared() {
        let (_dir, city, summary) = issued_for("192.0.2.10");
        let report = show_report(summary, &city, Err("no interface".into()));
        assert_eq!(report.lan_error.as_deref(), Some("no interface"));
        assert_eq!(report.wanted_sans, None);
        assert!(report.missing_sans.is_empty());
    }
}
