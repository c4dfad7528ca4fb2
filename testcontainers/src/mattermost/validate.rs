//! The server's validity rules for names the double accepts (MM `model/team.go`, `channel.go`,
//! `user.go`, `users/password.go`), with the error ids the real server answers.

use super::errors::{ApiResult, AppError};

/// Team-name prefixes the server reserves (`reservedName`, matched as prefixes).
const RESERVED_TEAM_PREFIXES: &[&str] = &[
    "admin",
    "api",
    "channel",
    "claim",
    "error",
    "files",
    "help",
    "landing",
    "login",
    "mfa",
    "oauth",
    "plug",
    "plugins",
    "post",
    "signup",
    "boards",
    "playbooks",
];

const RESTRICTED_USERNAMES: &[&str] = &["all", "channel", "matterbot", "system"];

fn alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$`, 2..=64 characters, no reserved prefix.
pub fn team_name(name: &str) -> ApiResult<()> {
    let chars_ok = if name.contains('_') {
        name.split_once("__").is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.chars().all(alnum) && b.chars().all(alnum)
        })
    } else {
        name.chars().all(|c| alnum(c) || c == '-')
            && name.starts_with(alnum)
            && name.ends_with(alnum)
    };
    if !(2..=64).contains(&name.len()) || !chars_ok {
        return Err(AppError::bad_request(
            "model.team.is_valid.characters.app_error",
            "Name must be 2 or more lowercase alphanumeric characters.",
        ));
    }
    if RESERVED_TEAM_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(AppError::bad_request(
            "model.team.is_valid.reserved.app_error",
            "This URL is unavailable. Please try another.",
        ));
    }
    Ok(())
}

/// `^[a-z0-9]+([a-z\-\_0-9]+|(__)?)[a-z0-9]*$`, 2..=64 characters.
pub fn channel_name(name: &str) -> ApiResult<()> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "model.channel.is_valid.2_or_more.app_error",
            "Name must be 2 or more lowercase alphanumeric characters.",
        ))
    }
}

/// 1..=64 characters (runes).
pub fn display_name(value: &str, id: &str, message: &str) -> ApiResult<()> {
    let n = value.chars().count();
    if (1..=64).contains(&n) {
        Ok(())
    } else {
        Err(AppError::bad_request(id, message))
    }
}

/// `IsValidUsername`: 1..=64 of `[a-z0-9.\-_]`, not a restricted name. Expects the lower-cased form.
pub fn username(name: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| alnum(c) || matches!(c, '.' | '-' | '_'))
        && !RESTRICTED_USERNAMES.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "model.user.is_valid.username.app_error",
            "Username must begin with a letter, and contain between 3 to 22 lowercase characters made up of \
             numbers, letters, and the symbols '.', '-', and '_'.",
        ))
    }
}

/// A single `@` with text on both sides, no whitespace, at most 128 characters.
pub fn email(value: &str) -> ApiResult<()> {
    let ok = value.len() <= 128
        && !value.chars().any(char::is_whitespace)
        && value
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "model.user.is_valid.email.app_error",
            "Invalid email.",
        ))
    }
}

/// `IsPasswordValidWithSettings` with the default settings (only the length rules are on).
pub fn password(value: &str, minimum: usize) -> ApiResult<()> {
    if value.len() < minimum {
        return Err(AppError::bad_request(
            "model.user.is_valid.pwd_min_length.app_error",
            format!("Your password must contain at least {minimum} characters."),
        ));
    }
    if value.len() > 72 {
        return Err(AppError::bad_request(
            "model.user.is_valid.pwd_max_length.app_error",
            "Your password must contain no more than 72 characters.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names_follow_the_server_pattern() {
        for ok in ["city", "ops-team", "a1", "ab__cd"] {
            assert!(team_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "ab-", "Ab", "a_b", "a-b__c", "has space"] {
            assert_eq!(
                team_name(bad).unwrap_err().id,
                "model.team.is_valid.characters.app_error",
                "{bad}"
            );
        }
        assert_eq!(
            team_name("channels").unwrap_err().id,
            "model.team.is_valid.reserved.app_error"
        );
    }

    #[test]
    fn channel_and_user_names() {
        assert!(channel_name("code-reviews").is_ok());
        assert!(channel_name("a_b-").is_ok());
        assert!(channel_name("-x").is_err());
        assert!(channel_name("Builds").is_err());
        assert!(username("jenkins-bot").is_ok());
        assert!(username("all").is_err());
        assert!(username("has space").is_err());
        assert!(email("a@b").is_ok());
        assert!(email("nope").is_err());
        assert!(password("1234567", 8).is_err());
        assert!(password("12345678", 8).is_ok());
    }
}
