//! The relay's line, from its own loopback metrics (the numbers its spool keeps current,
//! `crate::relay::spool`): listening, backlog, oldest undelivered event.

use std::time::Duration;

use super::Line;
use crate::city::City;

/// The relay retries at once; an event still undelivered after this means delivery is failing.
const STUCK: Duration = Duration::from_secs(10);

pub async fn lines(city: &City) -> Vec<Line> {
    let url = format!("http://{}/metrics", city.relay.metrics);
    let fix_start =
        "start it: `cityd relay serve` (the NixOS module runs it as cityd-relay.service)";
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(e) => return vec![Line::red("relay", "metrics", e.to_string(), fix_start)],
    };
    let text = match client.get(&url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => {
            return vec![Line::yellow(
                "relay",
                city.relay.listen.to_string(),
                format!("not running (nothing answers on {url})"),
                fix_start,
            )];
        }
    };
    let gauge = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let (Some(backlog), Some(age)) = (
        gauge("cityd_relay_undelivered"),
        gauge("cityd_relay_oldest_undelivered_age_seconds"),
    ) else {
        return vec![Line::red(
            "relay",
            "metrics",
            format!("{url} has no spool gauges"),
            "run the relay of this cityd version",
        )];
    };
    let text = format!(
        "listening on {}; backlog {backlog:.0}{}",
        city.relay.listen,
        if backlog > 0.0 {
            format!(
                ", oldest undelivered {} old",
                super::age(Duration::from_secs_f64(age))
            )
        } else {
            String::new()
        }
    );
    let fix = "Mattermost (the relay's target) is not taking posts: check the mattermost lines; the spool keeps every event until it is delivered";
    vec![if backlog > 0.0 && age >= STUCK.as_secs_f64() {
        Line::red("relay", city.relay.listen.to_string(), text, fix)
    } else if backlog > 0.0 {
        Line::yellow("relay", city.relay.listen.to_string(), text, fix)
    } else {
        Line::green("relay", city.relay.listen.to_string(), text)
    }]
}
