//! PEM text in and out, and private-key loading: PKCS#8 (plain or encrypted with a passphrase file),
//! SEC1 `EC PRIVATE KEY` and PKCS#1 `RSA PRIVATE KEY`, all turned into the PKCS#8 form ring signs with.

use std::path::Path;

use base64::Engine;
use rcgen::KeyPair;

use super::PkiError;

/// One `-----BEGIN <label>-----` ... `-----END <label>-----` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub label: String,
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): OpenSSL's legacy key encryption.
    pub has_headers: bool,
    pub der: Vec<u8>,
}

/// Every PEM block in `text`, in order; text outside blocks (comments, `openssl x509 -text` output) is ignored.
pub(crate) fn blocks(text: &[u8]) -> Result<Vec<Block>, String> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    let mut current: Option<(String, bool, String)> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        match &mut current {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    current = Some((label.to_string(), false, String::new()));
                }
            }
            Some((label, has_headers, body)) => {
                if let Some(end) = line
                    .strip_prefix("-----END ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    if end != label {
                        return Err(format!(
                            "line {}: END {end} closes BEGIN {label}",
                            number + 1
                        ));
                    }
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(body.as_bytes())
                        .map_err(|e| format!("the {label} block is not valid base64 ({e})"))?;
                    out.push(Block {
                        label: std::mem::take(label),
                        has_headers: *has_headers,
                        der,
                    });
                    current = None;
                } else if line.contains(':') {
                    *has_headers = true;
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    if let Some((label, _, _)) = current {
        return Err(format!(
            "the {label} block has no END line (truncated file?)"
        ));
    }
    Ok(out)
}

/// PEM text of one DER object, 64 base64 characters a line, LF line ends.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The certificates of a PEM file in order, or the file itself when it is one DER certificate.
pub(crate) fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let bad = |detail: String| PkiError::BadCertificate {
        path: path.to_path_buf(),
        detail,
    };
    let found = blocks(bytes).map_err(bad)?;
    let certs: Vec<Vec<u8>> = found
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect();
    if !certs.is_empty() {
        return Ok(certs);
    }
    // A DER certificate starts with a SEQUENCE tag; accept it so a phone's ca.crt can be adopted too.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    Err(bad(
        "it holds no PEM CERTIFICATE block and is not a DER certificate".into(),
    ))
}

/// Where a private key's passphrase comes from: a file, so it never appears in argv.
#[derive(Debug, Clone, Copy)]
pub struct Passphrase<'a> {
    pub file: &'a Path,
    pub bytes: &'a [u8],
}

/// Reads a passphrase file: its content up to the first line end (what `openssl -passin file:` takes).
pub fn read_passphrase(file: &Path) -> Result<Vec<u8>, PkiError> {
    let raw = std::fs::read(file).map_err(|source| PkiError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let first_line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
    let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
    if first_line.is_empty() {
        return Err(PkiError::EmptyPassphrase {
            path: file.to_path_buf(),
        });
    }
    Ok(first_line.to_vec())
}

/// Loads the first private key in a PEM file as a signing key.
pub(crate) fn private_key(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<Passphrase<'_>>,
) -> Result<KeyPair, PkiError> {
    let bad = |detail: String| PkiError::BadKey {
        path: path.to_path_buf(),
        detail,
    };
    let found = blocks(bytes).map_err(bad)?;
    let block = found
        .iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| {
            let labels: Vec<&str> = found.iter().map(|b| b.label.as_str()).collect();
            bad(if labels.is_empty() {
                "it holds no PEM block".to_string()
            } else {
                format!(
                    "it holds no PRIVATE KEY block (found: {})",
                    labels.join(", ")
                )
            })
        })?;
    if block.has_headers {
        return Err(PkiError::LegacyEncryptedKey {
            path: path.to_path_buf(),
        });
    }
    let pkcs8 = match block.label.as_str() {
        "PRIVATE KEY" => block.der.clone(),
        "RSA PRIVATE KEY" => wrap_pkcs1(&block.der),
        "EC PRIVATE KEY" => {
            // SEC1 keys name their curve inside; try the curves ring signs with.
            return [P256_OID, P384_OID]
                .iter()
                .find_map(|curve| KeyPair::try_from(wrap_sec1(&block.der, curve)).ok())
                .ok_or_else(|| bad(UNSUPPORTED_KEY.into()));
        }
        "ENCRYPTED PRIVATE KEY" => {
            let Some(passphrase) = passphrase else {
                return Err(PkiError::PassphraseNeeded {
                    path: path.to_path_buf(),
                });
            };
            decrypt(path, &block.der, passphrase)?
        }
        other => {
            return Err(bad(format!(
                "{other} is not a private key format cityd reads"
            )));
        }
    };
    KeyPair::try_from(pkcs8).map_err(|_| bad(UNSUPPORTED_KEY.into()))
}

const UNSUPPORTED_KEY: &str =
    "the key does not parse as an ECDSA P-256/P-384, RSA or Ed25519 private key";

fn decrypt(path: &Path, der: &[u8], passphrase: Passphrase<'_>) -> Result<Vec<u8>, PkiError> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| PkiError::BadKey {
        path: path.to_path_buf(),
        detail: format!("the ENCRYPTED PRIVATE KEY block does not parse ({e})"),
    })?;
    let plain = info
        .decrypt(passphrase.bytes)
        .map_err(|_| PkiError::WrongPassphrase {
            path: path.to_path_buf(),
            passphrase_file: passphrase.file.to_path_buf(),
        })?;
    Ok(plain.as_bytes().to_vec())
}

// DER of the algorithm identifiers a PKCS#8 wrapper needs.
const RSA_ENCRYPTION_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING } around a bare key.
fn pkcs8_around(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let version = [0x02, 0x01, 0x00];
    let body = [&version[..], &tlv(0x30, algorithm), &tlv(0x04, key)].concat();
    tlv(0x30, &body)
}

fn wrap_pkcs1(rsa_private_key: &[u8]) -> Vec<u8> {
    let algorithm = [RSA_ENCRYPTION_OID, &[0x05, 0x00]].concat();
    pkcs8_around(&algorithm, rsa_private_key)
}

fn wrap_sec1(ec_private_key: &[u8], curve: &[u8]) -> Vec<u8> {
    let algorithm = [EC_PUBLIC_KEY_OID, curve].concat();
    pkcs8_around(&algorithm, ec_private_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_skip_surrounding_text_and_flag_legacy_headers() {
        let key = KeyPair::generate().unwrap();
        let text = format!(
            "Bag Attributes\n{}\nsome trailer\n-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
            encode("PRIVATE KEY", key.serialized_der())
        );
        let found = blocks(text.as_bytes()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].der, key.serialized_der());
        assert!(!found[0].has_headers);
        assert!(found[1].has_headers);
    }

    #[test]
    fn truncated_and_mismatched_blocks_are_errors() {
        assert!(
            blocks(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
                .unwrap_err()
                .contains("no END")
        );
        assert!(
            blocks(b"-----BEGIN A-----\nAAAA\n-----END B-----\n")
                .unwrap_err()
                .contains("closes")
        );
        assert!(
            blocks(b"-----BEGIN A-----\n!!!!\n-----END A-----\n")
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn a_plain_pkcs8_key_round_trips() {
        let key = KeyPair::generate().unwrap();
        let pem = encode("PRIVATE KEY", key.serialized_der());
        let back = private_key(Path::new("k.pem"), pem.as_bytes(), None).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn an_encrypted_key_without_passphrase_names_the_flag() {
        let pem = encode("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]);
        let err = private_key(Path::new("/x/ca.key"), pem.as_bytes(), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/x/ca.key") && text.contains("--ca-key-passphrase-file"),
            "{text}"
        );
    }

    #[test]
    fn der_lengths_use_the_long_form_above_127() {
        assert_eq!(tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }
}
