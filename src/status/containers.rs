//! One line per container of the city: image, up since, health, restarts.

use super::Line;

/// A container that restarted this recently is in trouble now (a crash loop shows this way
/// between its restarts); later, its restart count alone is a yellow.
const RECENT: u64 = 120;
use crate::city::City;
use crate::docker::spec::Names;
use crate::docker::{DockerError, Engine, health};

pub async fn lines(engine: Result<&Engine, &DockerError>, city: &City) -> Vec<Line> {
    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            return vec![Line::red(
                "container",
                "docker",
                e.to_string(),
                "start the Docker engine (systemctl start docker) or set DOCKER_HOST",
            )];
        }
    };
    let names = Names::new(city);
    let mut wanted = Vec::new();
    if city.database.managed {
        wanted.push(names.postgres());
    }
    wanted.extend([names.coturn(), names.mattermost()]);
    let found = futures_util::future::join_all(wanted.iter().map(|n| engine.inspect(n))).await;
    wanted
        .into_iter()
        .zip(found)
        .map(|(name, found)| match found {
            Err(e) => Line::red("container", name, e.to_string(), "check the Docker engine"),
            Ok(None) => Line::red("container", name, "absent", "`cityd up` creates it"),
            Ok(Some(c)) => line(name, &c),
        })
        .collect()
}

fn line(name: String, c: &bollard::models::ContainerInspectResponse) -> Line {
    let state = c.state.clone().unwrap_or_default();
    let image = c
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let restarts = c.restart_count.unwrap_or(0);
    let health = health::status_of(c);
    let up_for = state
        .started_at
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0) as u64);
    let since = up_for.map_or_else(
        || "?".into(),
        |s| super::age(std::time::Duration::from_secs(s)),
    );
    let logs = format!("`docker logs --tail 50 {name}` shows why");
    if state.restarting == Some(true) {
        return Line::red(
            "container",
            &name,
            format!(
                "{image}: restarting (exit code {}, {restarts} restarts)",
                state.exit_code.unwrap_or(-1)
            ),
            format!("{logs}; fix the cause, then `cityd up`"),
        );
    }
    if state.running != Some(true) {
        let status = state
            .status
            .map_or_else(|| "not running".to_string(), |s| s.to_string());
        return Line::red(
            "container",
            &name,
            format!(
                "{image}: {status} (exit code {})",
                state.exit_code.unwrap_or(-1)
            ),
            format!("`cityd up` starts it; if it stops again, {logs}"),
        );
    }
    let text = format!("{image}, up {since}, {health}, {restarts} restarts");
    if restarts > 0 && up_for.is_some_and(|s| s < RECENT) {
        return Line::red(
            "container",
            &name,
            format!("{text}: it restarted {since} ago"),
            format!("{logs} (it died and the engine restarted it); fix the cause, then `cityd up`"),
        );
    }
    match health.as_str() {
        "unhealthy" => Line::red(
            "container",
            &name,
            format!(
                "{text}: `{}` fails: {}",
                health::command_of(c),
                health::last_output(c)
            ),
            logs,
        ),
        "starting" => Line::yellow(
            "container",
            &name,
            text,
            "wait: its health check has not passed yet",
        ),
        _ if restarts > 0 => Line::yellow(
            "container",
            &name,
            text,
            format!("it restarted on its own; {logs}"),
        ),
        _ => Line::green("container", &name, text),
    }
}
