//! `cityd status`: the whole city at a glance, one line per thing a person cares about, each
//! green, yellow or red with the fix named when it is not green. Every check reads only (the TURN
//! probe allocates and releases one relay); they run concurrently so a healthy city answers in a
//! few hundred milliseconds. Submodules, one per line group: `containers`, `mattermost`,
//! `database`, `turn`, `cert`, `vault`, `relay`, `backup`.

mod backup;
mod cert;
mod containers;
mod database;
mod mattermost;
mod relay;
mod turn;
mod vault;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::city::City;
use crate::secrets::Vault;
use crate::state::StateDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Green,
    Yellow,
    Red,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Green => "ok",
            Level::Yellow => "warn",
            Level::Red => "FAIL",
        }
    }
    fn colour(self) -> &'static str {
        match self {
            Level::Green => "\x1b[32m",
            Level::Yellow => "\x1b[33m",
            Level::Red => "\x1b[31m",
        }
    }
}

/// One line of the screen: what it is about, what was found, and the fix when it is not green.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The group: `container`, `mattermost`, `postgres`, `coturn`, `certificate`, `vault`,
    /// `relay`, `backup`.
    pub area: &'static str,
    /// What in the group (a container's name, `ping`, `plugins`...).
    pub subject: String,
    pub level: Level,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Line {
    pub fn green(area: &'static str, subject: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            area,
            subject: subject.into(),
            level: Level::Green,
            text: text.into(),
            fix: None,
        }
    }
    pub fn yellow(
        area: &'static str,
        subject: impl Into<String>,
        text: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Yellow,
            fix: Some(fix.into()),
            ..Self::green(area, subject, text)
        }
    }
    pub fn red(
        area: &'static str,
        subject: impl Into<String>,
        text: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Red,
            fix: Some(fix.into()),
            ..Self::green(area, subject, text)
        }
    }
}

/// The whole screen, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The worst level of any line.
    pub level: Level,
    pub lines: Vec<Line>,
    pub seconds: f64,
}

impl Status {
    /// Red anywhere: exit 1.
    pub fn is_red(&self) -> bool {
        self.level == Level::Red
    }

    /// The screen: one line each, grouped, the fix indented under lines that are not green.
    pub fn text(&self, colour: bool) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let word = if colour {
                format!("{}{:<4}\x1b[0m", line.level.colour(), line.level.word())
            } else {
                format!("{:<4}", line.level.word())
            };
            out.push_str(&format!(
                "{word}  {:<11} {:<22} {}\n",
                line.area, line.subject, line.text
            ));
            if let Some(fix) = &line.fix {
                out.push_str(&format!("      {:<11} {:<22} fix: {fix}\n", "", ""));
            }
        }
        let counts = |l| self.lines.iter().filter(|x| x.level == l).count();
        out.push_str(&format!(
            "{} green, {} yellow, {} red in {:.0} ms\n",
            counts(Level::Green),
            counts(Level::Yellow),
            counts(Level::Red),
            self.seconds * 1000.0
        ));
        out
    }
}

/// What `status` looks at.
pub struct Inputs<'a> {
    pub city: &'a City,
    pub state: &'a StateDir,
    pub vault: &'a Vault,
    /// The LAN addresses as resolved now (the certificate must still name them).
    pub lan: &'a [IpAddr],
    /// How long the TURN probe may take before its line turns red.
    pub turn_deadline: Duration,
}

/// Runs every check concurrently and gathers the lines in a fixed order.
pub async fn collect(inputs: &Inputs<'_>) -> Status {
    let started = Instant::now();
    let engine = crate::docker::connect().await;
    let mattermost_name = crate::docker::spec::Names::new(inputs.city).mattermost();
    let (containers, mattermost, database, turn, relay) = tokio::join!(
        containers::lines(engine.as_ref(), inputs.city),
        mattermost::lines(inputs.state, &mattermost_name),
        database::lines(engine.as_ref().ok(), inputs),
        turn::lines(inputs),
        relay::lines(inputs.city),
    );
    let mut lines = containers;
    lines.extend(mattermost);
    lines.extend(database);
    lines.extend(turn);
    lines.extend(cert::lines(inputs));
    lines.push(vault::line(inputs.vault));
    lines.extend(relay);
    lines.push(backup::line(inputs.state));
    Status {
        level: lines.iter().map(|l| l.level).max().unwrap_or(Level::Green),
        lines,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// "3d 4h", "5m", "12s": an age a person reads at a glance.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_line_decides_and_fixes_show_under_their_line() {
        let lines = vec![
            Line::green("vault", "secrets", "complete"),
            Line::red("coturn", "turn", "no answer", "cityd up"),
        ];
        let status = Status {
            level: lines.iter().map(|l| l.level).max().unwrap(),
            lines,
            seconds: 0.012,
        };
        assert!(status.is_red());
        let text = status.text(false);
        assert!(text.contains("FAIL  coturn"), "{text}");
        assert!(text.contains("fix: cityd up"), "{text}");
        assert!(
            text.ends_with("1 green, 0 yellow, 1 red in 12 ms\n"),
            "{text}"
        );
        assert_eq!(age(Duration::from_secs(90_000)), "1d 1h");
    }
}
