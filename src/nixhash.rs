//! Our own small Nix hash helpers: SRI `sha256-<base64>` parsing and verification, the nixbase32
//! encoding, and the `/nix/store/<32 nixbase32 chars>-<name>` store-path shape. Touches nothing.
//!
//! Written here because the crates registry holds only an empty `nix-compat` placeholder and the
//! real crate is GPL-3.0; we need a few dozen lines of it.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The 32 digits of Nix's base32: 0-9 and a-z without e, o, u and t.
pub const NIXBASE32_ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

const STORE_DIR: &str = "/nix/store/";
const STORE_HASH_LEN: usize = 32;
const STORE_NAME_MAX: usize = 211;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SriError {
    #[error(
        "SRI hash {value:?} has no algorithm prefix; write it as sha256-<base64 of the 32-byte digest> (e.g. from `nix hash file` or `openssl dgst -sha256 -binary FILE | base64`)"
    )]
    NoAlgorithm { value: String },
    #[error(
        "SRI hash {value:?} uses algorithm {algorithm:?}; cityd pins bundles with sha256 only: write sha256-<base64>"
    )]
    UnsupportedAlgorithm { value: String, algorithm: String },
    #[error(
        "SRI hash {value:?}: the digest is not standard base64 ({reason}); copy the value exactly as `nix hash file` prints it"
    )]
    BadBase64 { value: String, reason: String },
    #[error(
        "SRI hash {value:?}: the digest is {len} bytes, a sha256 digest is 32 bytes; the value is truncated or of another algorithm"
    )]
    WrongLength { value: String, len: usize },
}

/// A parsed `sha256-<base64>` SRI hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sri {
    digest: [u8; 32],
}

impl Sri {
    /// Parses `sha256-<base64>` (standard alphabet; the `=` padding may be omitted).
    pub fn parse(value: &str) -> Result<Self, SriError> {
        let trimmed = value.trim();
        let Some((algorithm, b64)) = trimmed.split_once('-') else {
            return Err(SriError::NoAlgorithm {
                value: value.into(),
            });
        };
        if algorithm != "sha256" {
            return Err(SriError::UnsupportedAlgorithm {
                value: value.into(),
                algorithm: algorithm.into(),
            });
        }
        // SRI allows `?options` after the digest; Nix never writes them, and we accept none.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = engine
            .decode(b64.as_bytes())
            .map_err(|e| SriError::BadBase64 {
                value: value.into(),
                reason: e.to_string(),
            })?;
        let digest: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SriError::WrongLength {
                value: value.into(),
                len: bytes.len(),
            })?;
        Ok(Self { digest })
    }

    /// The SRI hash of some bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            digest: Sha256::digest(bytes).into(),
        }
    }

    /// The SRI hash of a reader's whole content, read in chunks.
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self {
            digest: hasher.finalize().into(),
        })
    }

    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        Self::of_reader(std::fs::File::open(path)?)
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// `sha256:<nixbase32>`, the form older Nix expressions use.
    pub fn to_nix_base32(&self) -> String {
        format!("sha256:{}", nixbase32_encode(&self.digest))
    }
}

impl std::fmt::Display for Sri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(self.digest)
        )
    }
}

/// Encodes bytes in nixbase32: the last 5-bit group of the input comes first.
pub fn nixbase32_encode(input: &[u8]) -> String {
    let len = (input.len() * 8).div_ceil(5);
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let low = u16::from(input[i]) >> j;
        let high = input.get(i + 1).map_or(0, |b| u16::from(*b) << (8 - j));
        out.push(NIXBASE32_ALPHABET[usize::from((low | high) & 0x1f)] as char);
    }
    out
}

/// Decodes nixbase32; `None` on a digit outside the alphabet or bits beyond the output length.
pub fn nixbase32_decode(input: &str) -> Option<Vec<u8>> {
    let out_len = input.len() * 5 / 8;
    let mut out = vec![0u8; out_len];
    for (n, c) in input.bytes().rev().enumerate() {
        let digit = NIXBASE32_ALPHABET.iter().position(|&a| a == c)? as u16;
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let shifted = digit << j;
        match out.get_mut(i) {
            Some(b) => *b |= (shifted & 0xff) as u8,
            None if shifted != 0 => return None,
            None => {}
        }
        let carry = (shifted >> 8) as u8;
        match out.get_mut(i + 1) {
            Some(b) => *b |= carry,
            None if carry != 0 => return None,
            None => {}
        }
    }
    Some(out)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StorePathError {
    #[error(
        "{path:?} is not under /nix/store/; a Nix store path looks like /nix/store/<hash>-<name>"
    )]
    NotInStore { path: String },
    #[error(
        "{path:?}: the store hash must be 32 nixbase32 characters (0-9, a-z without e o u t); {reason}"
    )]
    BadHash { path: String, reason: String },
    #[error(
        "{path:?}: the store name must be 1-211 characters of a-z A-Z 0-9 + - . _ ? = and must not start with '.'"
    )]
    BadName { path: String },
}

/// A validated `/nix/store/<hash>-<name>` path (possibly with a sub-path after the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePath {
    pub digest: [u8; 20],
    pub name: String,
    /// What follows the store entry, e.g. `/share/plugin.tar.gz`; empty for the entry itself.
    pub rest: String,
}

impl StorePath {
    pub fn parse(path: &str) -> Result<Self, StorePathError> {
        let Some(entry) = path.strip_prefix(STORE_DIR) else {
            return Err(StorePathError::NotInStore { path: path.into() });
        };
        let (entry, rest) = match entry.find('/') {
            Some(i) => (&entry[..i], &entry[i..]),
            None => (entry, ""),
        };
        let hash = entry.get(..STORE_HASH_LEN).unwrap_or(entry);
        if hash.len() != STORE_HASH_LEN {
            return Err(StorePathError::BadHash {
                path: path.into(),
                reason: format!("found {} characters", hash.len()),
            });
        }
        let digest = nixbase32_decode(hash)
            .and_then(|d| <[u8; 20]>::try_from(d).ok())
            .ok_or_else(|| StorePathError::BadHash {
                path: path.into(),
                reason: format!("{hash:?} has a character outside the alphabet"),
            })?;
        let name = match entry[STORE_HASH_LEN..].strip_prefix('-') {
            Some(name) => name,
            None => {
                return Err(StorePathError::BadName { path: path.into() });
            }
        };
        let name_ok = !name.is_empty()
            && name.len() <= STORE_NAME_MAX
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b));
        if !name_ok {
            return Err(StorePathError::BadName { path: path.into() });
        }
        Ok(Self {
            digest,
            name: name.into(),
            rest: rest.into(),
        })
    }

    /// True when the path claims to be in the store (so it must also be well-formed).
    pub fn looks_like(path: &str) -> bool {
        path.starts_with(STORE_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Vectors computed with `printf %s <text> | openssl dgst -sha256 -binary | base64`.
    const ABC: &str = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
    const EMPTY: &str = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const HELLO_WORLD: &str = "sha256-uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=";

    #[test]
    fn sri_of_known_inputs() {
        assert_eq!(Sri::of_bytes(b"abc").to_string(), ABC);
        assert_eq!(Sri::of_bytes(b"").to_string(), EMPTY);
        assert_eq!(Sri::of_bytes(b"hello world").to_string(), HELLO_WORLD);
        assert_eq!(Sri::parse(ABC).unwrap(), Sri::of_bytes(b"abc"));
        assert_ne!(Sri::parse(ABC).unwrap(), Sri::of_bytes(b"abd"));
        // Missing padding is accepted, surrounding whitespace too.
        assert_eq!(
            Sri::parse(&format!(" {} ", ABC.trim_end_matches('='))).unwrap(),
            Sri::of_bytes(b"abc")
        );
        assert_eq!(
            Sri::of_reader(&b"hello world"[..]).unwrap().to_string(),
            HELLO_WORLD
        );
    }

    #[test]
    fn sri_errors_name_the_value_and_the_rule() {
        let e = Sri::parse("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=").unwrap_err();
        assert!(matches!(e, SriError::NoAlgorithm { .. }), "{e}");
        let e = Sri::parse("sha512-abc").unwrap_err();
        assert!(e.to_string().contains("sha512"), "{e}");
        let e = Sri::parse("sha256-not*base64").unwrap_err();
        assert!(matches!(e, SriError::BadBase64 { .. }), "{e}");
        let e = Sri::parse("sha256-YWJj").unwrap_err();
        assert_eq!(
            e,
            SriError::WrongLength {
                value: "sha256-YWJj".into(),
                len: 3
            }
        );
        // The URL-safe alphabet is not SRI.
        let e = Sri::parse(&ABC.replace('+', "-").replace('/', "_")).unwrap_err();
        assert!(matches!(e, SriError::BadBase64 { .. }), "{e}");
    }

    #[test]
    fn nixbase32_of_the_empty_sha256() {
        // `nix hash to-base32 sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=` (the empty file).
        let empty = Sri::parse(EMPTY).unwrap();
        assert_eq!(
            empty.to_nix_base32(),
            "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
        assert_eq!(
            nixbase32_decode("0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73").unwrap(),
            empty.digest().to_vec()
        );
    }

    #[test]
    fn nixbase32_small_values() {
        assert_eq!(nixbase32_encode(&[]), "");
        assert_eq!(nixbase32_encode(&[0x1f]), "0z");
        assert_eq!(nixbase32_encode(&[0xff]), "7z");
        assert_eq!(nixbase32_decode("7z").unwrap(), vec![0xff]);
        // 8 bits need 2 digits; "8z" would set a ninth bit.
        assert_eq!(nixbase32_decode("8z"), None);
        assert_eq!(nixbase32_decode("e0"), None);
    }

    #[test]
    fn store_paths() {
        let ok = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"; // 52 chars: too long a hash
        assert!(matches!(
            StorePath::parse(ok),
            Err(StorePathError::BadName { .. })
        ));
        let p =
            StorePath::parse("/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmrr-jenkins-1.1.0.tar.gz")
                .unwrap();
        assert_eq!(p.name, "jenkins-1.1.0.tar.gz");
        assert_eq!(p.rest, "");
        let p = StorePath::parse(
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmrr-mattermost-plugin-jenkins/share/jenkins.tar.gz",
        )
        .unwrap();
        assert_eq!(p.rest, "/share/jenkins.tar.gz");
        for bad in [
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmre-x", // 'e' is not a nixbase32 digit
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmr-x",  // 31 characters
        ] {
            assert!(
                matches!(StorePath::parse(bad), Err(StorePathError::BadHash { .. })),
                "{bad}"
            );
        }
        for bad in [
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmrr-",
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmrr-.hidden",
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmrr-a b",
            "/nix/store/4ahgmb7yk5zavjmb9wbfxdbbnpw4jmrrxname",
        ] {
            assert!(
                matches!(StorePath::parse(bad), Err(StorePathError::BadName { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            StorePath::parse("/tmp/jenkins.tar.gz"),
            Err(StorePathError::NotInStore { .. })
        ));
    }

    proptest! {
        #[test]
        fn nixbase32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = nixbase32_encode(&bytes);
            prop_assert!(text.bytes().all(|c| NIXBASE32_ALPHABET.contains(&c)));
            prop_assert_eq!(nixbase32_decode(&text), Some(bytes));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = Sri::parse(&s);
            let _ = StorePath::parse(&s);
            let _ = StorePath::parse(&format!("/nix/store/{s}"));
            let _ = nixbase32_decode(&s);
        }

        #[test]
        fn sri_display_parses_back(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let sri = Sri::of_bytes(&bytes);
            prop_assert_eq!(Sri::parse(&sri.to_string()).unwrap(), sri);
        }
    }
}
