//! The last backup's age: the slot `cityd backup` fills. Until backups exist (another change
//! builds `src/backup/`), it reads nothing and says so.

use super::Line;
use crate::state::StateDir;

/// When the newest backup of this city was taken, once `cityd backup` records them.
fn last_backup(_state: &StateDir) -> Option<std::time::SystemTime> {
    None
}

pub fn line(state: &StateDir) -> Line {
    match last_backup(state) {
        Some(at) => {
            let age = at.elapsed().unwrap_or_default();
            Line::green("backup", "last", format!("{} ago", super::age(age)))
        }
        None => Line::yellow(
            "backup",
            "last",
            "no backups yet",
            "take one with `cityd backup` once it exists in this build",
        ),
    }
}
