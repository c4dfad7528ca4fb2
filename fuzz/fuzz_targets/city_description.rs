//! Fuzz target: whatever text a city file holds (TOML, or JSON when it starts with `{`), reading
//! it never panics or hangs, and ends in exactly one of two ways: a city whose every rule holds
//! (and that reads back the same after being written out as TOML), or a refusal that names where:
//! the line and column of a syntax error, or the dotted field of each problem.

#![no_main]

use cityd::city::{City, CityError};
use cityd::exit::{BAD_INPUT, ExitCoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // A file that is not UTF-8 fails at the read, before the parser (CityError::Read).
        return;
    };
    match City::from_toml(text, "fuzz.toml") {
        Ok(city) => {
            assert!(city.problems().is_empty(), "an accepted city breaks a rule");
            let written = toml::to_string(&city).expect("an accepted city serializes");
            let again = City::from_toml(&written, "written.toml")
                .unwrap_or_else(|e| panic!("an accepted city does not read back: {e}\n{written}"));
            assert_eq!(again, city, "an accepted city reads back differently");
        }
        Err(error) => {
            assert_eq!(error.exit_code(), BAD_INPUT);
            let message = error.to_string();
            assert!(
                message.contains("fuzz.toml"),
                "the refusal names no file: {message}"
            );
            match &error {
                CityError::Parse { message, .. } => {
                    assert!(!message.trim().is_empty(), "an empty parse error");
                }
                CityError::Invalid { problems, .. } => {
                    assert!(!problems.is_empty());
                    for p in problems {
                        let root = p.field.split(['.', '[']).next().unwrap_or("");
                        assert!(
                            !root.is_empty()
                                && (root.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
                            "a problem names no field: {p}"
                        );
                    }
                }
                CityError::Read { .. } => panic!("text was given, nothing is read"),
            }
        }
    }
});
