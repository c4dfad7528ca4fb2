//! The rule that spans sections: every port of the city (Mattermost, its metrics, Calls, TURN) is
//! distinct, outside the TURN relay range and off the ports the blog's lab already holds.

use std::collections::BTreeSet;

use super::City;
use super::rules::Problems;

/// Ports the city holds besides Calls: the Calls port must not collide with any of them.
/// 8443 is listed because the blog's lab runs Artifactory there.
const RESERVED_PORTS: &[(u16, &str)] = &[(8443, "Artifactory in the blog's lab")];

pub(super) fn check(city: &City, out: &mut Problems) {
    let (mattermost, turn) = (&city.mattermost, &city.turn);
    let relay = turn.relay_range();
    let calls = mattermost.calls_port;
    let used: [(&str, u16); 3] = [
        ("mattermost.port", mattermost.port),
        ("mattermost.metrics", mattermost.metrics.port()),
        ("turn.port", turn.port),
    ];
    for (name, port) in used {
        if relay.as_ref().is_some_and(|r| r.contains(&port)) {
            out.bad(
                "turn.relay_min",
                format!("{}-{}", turn.relay_min, turn.relay_max),
                format!("the relay range overlaps {name} ({port}); move the range or the port"),
            );
        }
    }
    for (name, port) in used {
        if port == calls {
            out.bad(
                "mattermost.calls_port",
                port.to_string(),
                format!("collides with {name}; every port of the city must be distinct"),
            );
        }
    }
    for (port, holder) in RESERVED_PORTS {
        if *port == calls {
            out.bad(
                "mattermost.calls_port",
                port.to_string(),
                format!("is held by {holder}; use another port such as 8444"),
            );
        }
    }
    if relay.as_ref().is_some_and(|r| r.contains(&calls)) {
        out.bad(
            "mattermost.calls_port",
            calls.to_string(),
            "lies inside the TURN relay range; move it below turn.relay_min",
        );
    }
    let mut seen = BTreeSet::new();
    for (name, port) in used {
        if !seen.insert(port) {
            out.bad(
                name,
                port.to_string(),
                "collides with another port of the city; every port must be distinct",
            );
        }
    }
}
