//! The last backup's age: the newest complete backup in the state directory's `backups/` (where
//! `cityd backup` writes without `--to`).

use std::time::Duration;

use super::Line;
use crate::state::StateDir;

/// Older than this, the line turns yellow: twice the daily schedule the NixOS timer defaults to.
const STALE_AFTER: Duration = Duration::from_secs(2 * 24 * 3600);

pub fn line(state: &StateDir) -> Line {
    let dir = state.backups_dir();
    match crate::backup::retention::newest(&dir) {
        Ok(Some((_, age))) if age <= STALE_AFTER => {
            Line::green("backup", "last", format!("{} ago", super::age(age)))
        }
        Ok(Some((_, age))) => Line::yellow(
            "backup",
            "last",
            format!("{} ago", super::age(age)),
            "take one with `cityd backup` (and schedule it: on NixOS services.cityd.backup.enable)",
        ),
        Ok(None) => Line::yellow(
            "backup",
            "last",
            format!("no backups in {}", dir.display()),
            "take one with `cityd backup`",
        ),
        Err(e) => Line::red(
            "backup",
            "last",
            format!("cannot list {}: {e}", dir.display()),
            "check the directory's owner and mode",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Level;

    fn name_at(at: time::OffsetDateTime) -> String {
        format!(
            "cityd-backup-{:04}{:02}{:02}T{:02}{:02}{:02}.000Z.age",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    }

    #[test]
    fn none_is_yellow_a_fresh_one_green_an_old_one_yellow_and_partials_do_not_count() {
        let root = tempfile::tempdir().unwrap();
        let state = StateDir::at(root.path().join("state")).unwrap();
        assert_eq!(line(&state).level, Level::Yellow);

        let dir = state.backups_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let now = time::OffsetDateTime::now_utc();
        std::fs::write(dir.join(name_at(now) + ".partial"), b"").unwrap();
        assert_eq!(
            line(&state).level,
            Level::Yellow,
            "a partial file is no backup"
        );

        std::fs::write(dir.join(name_at(now - time::Duration::days(3))), b"").unwrap();
        let old = line(&state);
        assert_eq!(old.level, Level::Yellow);
        assert!(old.text.starts_with("3d"), "{}", old.text);

        std::fs::write(dir.join(name_at(now - time::Duration::hours(1))), b"").unwrap();
        let fresh = line(&state);
        assert_eq!(fresh.level, Level::Green, "{}", fresh.text);
        assert!(
            fresh.text.starts_with("1h") || fresh.text.starts_with("59m"),
            "{}",
            fresh.text
        );
    }
}
