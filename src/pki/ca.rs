//! The root CA: generated (ECDSA P-256, CN, CA:true pathlen 0, keyCertSign + cRLSign, 10 years,
//! random serial, NameConstraints limiting it to the city's names) or adopted from a PEM certificate and key after checking they form a usable CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::PkiError;
use super::inspect::rfc3339;
use super::scope::NameScope;

/// Ten years, counted in days so no date arithmetic can land on a missing 29 February.
pub const CA_VALIDITY_DAYS: i64 = 3652;

/// Certificates start one hour in the past so a phone whose clock runs a little behind accepts them.
const BACKDATE: Duration = Duration::hours(1);

/// A CA that can sign: its certificate and an rcgen issuer built from that same certificate, so a
/// CA reloaded from disk signs exactly like the one created in this run.
pub struct Ca {
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
    origin: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("origin", &self.origin)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The common name of a new city CA; iOS lists a root only by its CN, so it says whose and when.
pub fn common_name(domain: &str, now: OffsetDateTime) -> String {
    format!("cityd CA {domain} {}", &rfc3339(now)[..10])
}

/// 16 random bytes with the top bit cleared: a positive serial no other certificate shares.
/// Never rcgen's default, which hashes the public key and so repeats when a key is reused.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        // Keep all 16 bytes significant.
        bytes[0] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

/// `now` minus the clock-skew allowance, whole seconds.
pub fn start_of_validity(now: OffsetDateTime) -> OffsetDateTime {
    (now - BACKDATE)
        .replace_nanosecond(0)
        .expect("0 ns is valid")
}

impl Ca {
    /// A new root CA with a fresh P-256 key and no name constraints (tests and tools; the city's
    /// own CA comes from [`Ca::generate_scoped`]).
    pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<Self, PkiError> {
        Self::generate_scoped(common_name, None, now)
    }

    /// A new root CA with a fresh P-256 key that may vouch only for `scope` (a critical
    /// NameConstraints extension), or for anything when `scope` is `None`.
    pub fn generate_scoped(
        common_name: &str,
        scope: Option<&NameScope>,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(|source| PkiError::Generate {
            what: "the CA key",
            source,
        })?;
        Self::self_signed(key, common_name, scope, now, Path::new("the new CA"))
    }

    /// A new root certificate for an existing key (when `ca.key` survived but `ca.pem` did not).
    pub fn self_signed(
        key: KeyPair,
        common_name: &str,
        scope: Option<&NameScope>,
        now: OffsetDateTime,
        origin: &Path,
    ) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        name.push(DnType::OrganizationName, "cityd");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = start_of_validity(now);
        params.not_after = params.not_before + Duration::days(CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial());
        params.name_constraints = scope.map(NameScope::to_rcgen);
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Generate {
                what: "the CA certificate",
                source,
            })?;
        Self::from_parts(cert.der().to_vec(), key, origin, origin, now)
    }

    /// Checks that a certificate and key make a CA that can sign server certificates now: CA:TRUE,
    /// keyCertSign allowed (when key usage is present), not expired, and the key belongs to it.
    pub fn from_parts(
        cert_der: Vec<u8>,
        key: KeyPair,
        cert_path: &Path,
        key_path: &Path,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let bad_cert = |detail: String| PkiError::BadCertificate {
            path: cert_path.to_path_buf(),
            detail,
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| bad_cert(format!("it is not a DER X.509 certificate ({e})")))?;
        let constraints = cert
            .basic_constraints()
            .map_err(|e| bad_cert(format!("its basicConstraints do not parse ({e})")))?;
        if !constraints.is_some_and(|c| c.value.ca) {
            return Err(PkiError::NotACa {
                path: cert_path.to_path_buf(),
            });
        }
        let usage = cert
            .key_usage()
            .map_err(|e| bad_cert(format!("its keyUsage does not parse ({e})")))?;
        if usage.is_some_and(|u| !u.value.key_cert_sign()) {
            return Err(PkiError::CaCannotSign {
                path: cert_path.to_path_buf(),
            });
        }
        let not_after = cert.validity().not_after.to_datetime();
        if not_after <= now {
            return Err(PkiError::CaExpired {
                path: cert_path.to_path_buf(),
                not_after: rfc3339(not_after),
            });
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: cert_path.to_path_buf(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key).map_err(|e| {
            PkiError::IssuerName {
                path: cert_path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        Ok(Self {
            cert_der,
            issuer,
            not_after,
            origin: cert_path.to_path_buf(),
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
    pub fn cert_pem(&self) -> String {
        super::pem::encode("CERTIFICATE", &self.cert_der)
    }
    /// The private key as unencrypted PKCS#8 PEM, for the 0600 `ca.key`.
    pub fn key_pem(&self) -> String {
        super::pem::encode("PRIVATE KEY", self.issuer.key().serialized_der())
    }
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
    /// Where this CA came from (a file, or "the new CA"), for error messages.
    pub fn origin(&self) -> &Path {
        &self.origin
    }
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_sixteen_bytes_and_differ() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_eq!(a.len(), 16);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
        assert_ne!(a, b);
    }

    #[test]
    fn a_generated_ca_is_a_constrained_signing_root() {
        let now = OffsetDateTime::now_utc();
        let ca = Ca::generate("cityd CA test", now).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        assert_eq!(cert.subject().to_string(), "CN=cityd CA test, O=cityd");
        let validity =
            cert.validity().not_after.to_datetime() - cert.validity().not_before.to_datetime();
        assert_eq!(validity.whole_days(), CA_VALIDITY_DAYS);
        assert!(cert.validity().not_before.to_datetime() <= now);
        assert!(cert.validity().not_before.to_datetime().year() > 2000);
    }

    #[test]
    fn a_key_from_another_ca_is_refused_by_name() {
        let now = OffsetDateTime::now_utc();
        let ca = Ca::generate("one", now).unwrap();
        let other = KeyPair::generate().unwrap();
        let err = Ca::from_parts(
            ca.cert_der().to_vec(),
            other,
            Path::new("/in/ca.pem"),
            Path::new("/in/ca.key"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/in/ca.key does not belong to /in/ca.pem"),
            "{err}"
        );
    }
}
