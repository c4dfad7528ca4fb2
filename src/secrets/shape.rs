//! `Shape`: the rule a secret's value must satisfy, its description in words (never echoing the
//! value), and generation of fresh values of that shape from the OS random source.

use std::fmt;

use rand::TryRng;

use super::{Secret, VaultError};

/// The rule a secret's value must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Exactly this many lowercase hex digits.
    Hex(usize),
    /// Exactly this many letters and digits (an AES key of that many bytes).
    Exactly(usize),
    /// At least this many letters and digits.
    AtLeast(usize),
    /// Stored, not generated (webhook URLs, tokens): non-empty, one line, no spaces.
    Opaque,
}

/// The letters and digits a generated secret is drawn from: safe in URLs, env files and shells.
const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl Shape {
    /// The rule in words, for errors and `list`.
    pub fn rule(self) -> String {
        match self {
            Shape::Hex(n) => format!("exactly {n} lowercase hex digits (0-9, a-f)"),
            Shape::Exactly(n) => format!("exactly {n} letters or digits"),
            Shape::AtLeast(n) => format!("at least {n} letters or digits"),
            Shape::Opaque => "one non-empty line without spaces or control characters".into(),
        }
    }

    pub fn accepts(self, value: &str) -> bool {
        self.violation(value).is_none()
    }

    /// What is wrong with `value`, in words that never contain the value or any of its characters.
    pub fn violation(self, value: &str) -> Option<String> {
        let (in_class, class): (fn(u8) -> bool, &str) = match self {
            Shape::Hex(_) => (
                |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
                "a lowercase hex digit",
            ),
            Shape::Exactly(_) | Shape::AtLeast(_) => {
                (|b| b.is_ascii_alphanumeric(), "a letter or digit")
            }
            Shape::Opaque => (
                |b| !b.is_ascii_whitespace() && !b.is_ascii_control(),
                "printable",
            ),
        };
        let len = value.len();
        let length_problem = match self {
            Shape::Hex(n) | Shape::Exactly(n) if len != n => {
                Some(format!("it has {len} characters instead of {n}"))
            }
            Shape::AtLeast(n) if len < n => Some(format!("it has only {len} characters")),
            Shape::Opaque if len == 0 => Some("it is empty".to_string()),
            _ => None,
        };
        let bad: Vec<usize> = value
            .bytes()
            .enumerate()
            .filter(|&(_, b)| !in_class(b))
            .map(|(i, _)| i + 1)
            .collect();
        let class_problem = bad.first().map(|&first| {
            let kind = if value.as_bytes()[first - 1].is_ascii_whitespace()
                || value.as_bytes()[first - 1].is_ascii_control()
            {
                " (whitespace or a control character)"
            } else if value.as_bytes()[first - 1] == b'"' || value.as_bytes()[first - 1] == b'\'' {
                " (a quote)"
            } else {
                ""
            };
            match bad.len() {
                1 => format!("character {first} is not {class}{kind}"),
                n => format!("{n} characters are not {class}, the first at position {first}{kind}"),
            }
        });
        match (length_problem, class_problem) {
            (None, None) => None,
            (Some(l), None) => Some(l),
            (None, Some(c)) => Some(c),
            (Some(l), Some(c)) => Some(format!("{l} and {c}")),
        }
    }

    /// A fresh value of this shape from `fill` (the OS random source outside tests). Letters and
    /// digits come from rejection sampling, so every character is equally likely.
    pub fn generate_with<E: fmt::Display>(
        self,
        mut fill: impl FnMut(&mut [u8]) -> Result<(), E>,
    ) -> Result<Secret, VaultError> {
        let random = |e: E| VaultError::Random(e.to_string());
        match self {
            Shape::Hex(n) => {
                let mut bytes = vec![0u8; n.div_ceil(2)];
                fill(&mut bytes).map_err(random)?;
                let mut s = hex::encode(bytes);
                s.truncate(n);
                Ok(Secret::new(s))
            }
            Shape::Exactly(n) | Shape::AtLeast(n) => {
                let mut out = String::with_capacity(n);
                let mut buf = [0u8; 64];
                while out.len() < n {
                    fill(&mut buf).map_err(random)?;
                    // 248 = 4 * 62: bytes at or above it would favour the first letters.
                    for &b in buf.iter().filter(|&&b| b < 248) {
                        if out.len() == n {
                            break;
                        }
                        out.push(ALNUM[usize::from(b) % ALNUM.len()] as char);
                    }
                }
                Ok(Secret::new(out))
            }
            Shape::Opaque => Err(VaultError::Random(
                "opaque values are learned, not generated".into(),
            )),
        }
    }

    /// A fresh value of this shape from the operating system's random source (getrandom).
    pub fn generate(self) -> Result<Secret, VaultError> {
        self.generate_with(|buf| rand::rngs::SysRng.try_fill_bytes(buf))
    }
}

impl Shape {
    /// The length of the values `generate` makes.
    pub fn generated_length(self) -> usize {
        match self {
            Shape::Hex(n) | Shape::Exactly(n) | Shape::AtLeast(n) => n,
            Shape::Opaque => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretName;
    use proptest::prelude::*;
    use std::convert::Infallible;

    #[test]
    fn generated_values_fit_their_shapes_and_lengths() {
        for name in SecretName::ALL {
            let v = name.generate().unwrap();
            assert!(name.shape().accepts(v.expose()), "{name:?}");
            assert_eq!(v.len(), name.shape().generated_length(), "{name:?}");
        }
        assert_eq!(
            SecretName::MattermostDbPassword.generate().unwrap().len(),
            32
        );
    }

    #[test]
    fn blog_values_fit_the_shapes() {
        // What the blog's scripts generate: `openssl rand -hex 32` for secrets, salts and the database
        // password, `openssl rand -hex 16` for the plugin AES keys.
        let hex64 = "0123456789abcdef".repeat(4);
        let hex32 = "0123456789abcdef".repeat(2);
        for name in SecretName::ALL {
            let value = match name {
                SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
                    &hex32
                }
                _ => &hex64,
            };
            assert!(name.shape().accepts(value), "{name:?}");
        }
        assert!(
            !SecretName::GitlabPluginEncryptionKey
                .shape()
                .accepts(&hex64)
        );
    }

    #[test]
    fn violations_describe_without_the_value() {
        let v = Shape::Exactly(32)
            .violation("\"abcdefghijklmnopqrstuvwxyz01234\"")
            .unwrap();
        assert!(v.contains("33 characters instead of 32"), "{v}");
        assert!(v.contains("first at position 1 (a quote)"), "{v}");
        assert!(!v.contains("abc"), "{v}");
        assert_eq!(
            Shape::Hex(4).violation("abcG").unwrap(),
            "character 4 is not a lowercase hex digit"
        );
        assert_eq!(
            Shape::AtLeast(32).violation("short").unwrap(),
            "it has only 5 characters"
        );
    }

    /// A character outside `shape`'s class, chosen by `pick`. The classes are written out here
    /// rather than taken from `accepts`, which is what is under test.
    fn outsider(shape: Shape, pick: usize) -> u8 {
        const POOL: &[u8] = b"ABCDEFZghijxyz!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x00\x7f";
        let in_class = |b: u8| match shape {
            Shape::Hex(_) => b"0123456789abcdef".contains(&b),
            _ => b.is_ascii_alphanumeric(),
        };
        let outside: Vec<u8> = POOL.iter().copied().filter(|&b| !in_class(b)).collect();
        outside[pick % outside.len()]
    }

    const GENERATED: [Shape; 3] = [Shape::Hex(64), Shape::Exactly(32), Shape::AtLeast(32)];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever bytes the random source yields, the value has the shape (Hex, Exactly, AtLeast).
        #[test]
        fn generated_values_always_have_their_shape(
            stream in proptest::collection::vec(any::<u8>(), 1..300),
            which in 0usize..3,
        ) {
            prop_assume!(stream.iter().any(|&b| b < 248));
            let shape = GENERATED[which];
            let mut pos = 0;
            let secret = shape.generate_with(|buf: &mut [u8]| {
                for b in buf.iter_mut() {
                    *b = stream[pos % stream.len()];
                    pos += 1;
                }
                Ok::<(), Infallible>(())
            }).unwrap();
            prop_assert!(shape.accepts(secret.expose()));
            prop_assert_eq!(secret.len(), shape.generated_length());
        }

        /// Generation from the real OS source always has the shape, and two values never coincide.
        #[test]
        fn os_generated_secrets_have_their_shape(which in 0usize..8) {
            let name = SecretName::ALL[which];
            let a = name.generate().unwrap();
            let b = name.generate().unwrap();
            prop_assert!(name.shape().accepts(a.expose()));
            prop_assert_ne!(a, b);
        }

        /// Replacing any single character of a valid value by one outside the class is rejected,
        /// and the violation names the position without echoing the value.
        #[test]
        fn every_single_character_corruption_is_rejected(
            which in 0usize..8,
            position in any::<proptest::sample::Index>(),
            pick in any::<usize>(),
        ) {
            let name = SecretName::ALL[which];
            let shape = name.shape();
            let valid = name.generate().unwrap();
            let mut bytes = valid.expose().as_bytes().to_vec();
            let i = position.index(bytes.len());
            bytes[i] = outsider(shape, pick);
            let corrupted = String::from_utf8(bytes).unwrap();
            prop_assert!(!shape.accepts(&corrupted));
            let why = shape.violation(&corrupted).unwrap();
            let expected = format!("character {} is not", i + 1);
            prop_assert!(why.contains(&expected), "{}", why);
            prop_assert!(!why.contains(valid.expose()));
        }

        /// Dropping or adding a character breaks exact lengths; dropping one breaks minimum lengths
        /// of a value at the minimum.
        #[test]
        fn length_changes_are_rejected(which in 0usize..8, position in any::<proptest::sample::Index>()) {
            let name = SecretName::ALL[which];
            let shape = name.shape();
            let valid = name.generate().unwrap().expose().to_string();
            let i = position.index(valid.len());
            let mut shorter = valid.clone();
            shorter.remove(i);
            prop_assert!(!shape.accepts(&shorter));
            let mut longer = valid.clone();
            longer.insert(i, valid.as_bytes()[i] as char);
            prop_assert_eq!(shape.accepts(&longer), matches!(shape, Shape::AtLeast(_)));
        }

        /// `accepts` agrees with a plain statement of each rule on arbitrary strings.
        #[test]
        fn accepts_matches_the_rule(
            value in prop_oneof![
                "[0-9a-f]{62,66}",
                "[0-9a-fA-G]{64}",
                "[0-9a-zA-Z]{30,34}",
                "[0-9a-zA-Z+/=_-]{32}",
                "[0-9a-zA-Z+/= \"'-]{0,70}",
            ],
            which in 0usize..3,
        ) {
            let shape = GENERATED[which];
            let alnum = value.bytes().all(|b| b.is_ascii_alphanumeric());
            let hex = value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let expected = match shape {
                Shape::Hex(n) => hex && value.len() == n,
                Shape::Exactly(n) => alnum && value.len() == n,
                Shape::AtLeast(n) => alnum && value.len() >= n,
                Shape::Opaque => unreachable!(),
            };
            prop_assert_eq!(shape.accepts(&value), expected);
            prop_assert_eq!(shape.violation(&value).is_none(), expected);
        }
    }
}
