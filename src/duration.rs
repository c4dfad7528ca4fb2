//! The one duration grammar of every flag and setting: `500ms`, `90s`, `30m`, `24h`, `7d`, sums of
//! them such as `1h30m`, decimals such as `1.5s`, or a bare number of seconds.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "duration {text:?} is not understood: give a number with a unit, e.g. 500ms, 90s, 30m, 1h30m, 24h or 7d"
)]
pub struct DurationError {
    pub text: String,
}

impl crate::exit::ExitCoded for DurationError {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

/// Parses a duration in the one grammar (see the module comment). Never panics, on any input.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError { text: text.into() };
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        // A number needs a digit ("." alone is not one); `f64::from_str` would also take "inf".
        if !number.bytes().any(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let seconds_per_unit = match unit {
            // A bare number is seconds, but only alone: "1h30" is a typo, not 1h 30s.
            "" if number_end == t.len() => 1.0,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        total += value * seconds_per_unit;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// `parse` as a clap value parser: the error names the value and the grammar.
pub fn parse_flag(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

/// `parse`, then refuse values above `max`, naming what is limited.
pub fn parse_at_most(text: &str, max: Duration) -> Result<Duration, String> {
    let value = parse_flag(text)?;
    if value > max {
        return Err(format!(
            "duration {text:?} is too long: at most {}s",
            max.as_secs_f64()
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_sums_decimals_and_bare_seconds() {
        for (text, secs) in [
            ("30s", 30.0),
            ("2m", 120.0),
            ("500ms", 0.5),
            ("5", 5.0),
            ("90", 90.0),
            ("24h", 86_400.0),
            ("1h30m", 5_400.0),
            ("7d", 604_800.0),
            ("1.5s", 1.5),
            (" 10s ", 10.0),
            ("1m500ms", 60.5),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_secs_f64(secs)), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_text_and_examples() {
        for text in [
            "",
            "5 parsecs",
            "h",
            "24x",
            "12h5",
            "-1h",
            "99999999999999999999d",
            "-1s",
            "1h30",
            "s",
            ".s",
            "1..5s",
            "inf",
            "NaN",
            "1w",
            "1e3s",
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.text, text);
            assert!(error.to_string().contains("e.g. 500ms"), "{error}");
        }
    }

    #[test]
    fn a_ceiling_is_named() {
        assert_eq!(
            parse_at_most("2m", Duration::from_secs(86_400)),
            Ok(Duration::from_secs(120))
        );
        let error = parse_at_most("2d", Duration::from_secs(86_400)).unwrap_err();
        assert!(error.contains("at most 86400s"), "{error}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = parse(&text);
        }
    }
}
