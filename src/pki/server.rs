//! The server certificate Mattermost presents: which names it must carry (`wanted_sans`) and its
//! issuance (P-256 key, serverAuth, DNS + IP SANs, at most 825 days, random serial, explicit dates).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::PkiError;
use super::ca::{Ca, random_serial, start_of_validity};
use super::inspect::SanSet;
use crate::city::City;

/// Default leaf validity: under the 398 days browsers accept from public CAs, so nothing frowns at it.
pub const DEFAULT_VALIDITY_DAYS: u32 = 397;
/// Apple platforms refuse TLS server certificates valid for longer, even under a user-installed root.
pub const MAX_VALIDITY_DAYS: u32 = 825;
/// `ensure` re-issues a leaf with fewer days left than this.
pub const RENEW_BELOW_DAYS: i64 = 30;

/// The names the server certificate must carry for this city: DNS `mattermost_host()` and
/// `localhost`, IP `127.0.0.1`, `::1` and every LAN address in `lan` (normally the addresses of
/// `lan.addresses` as resolved once, `ctx.lan_addresses()`). `doctor` compares this with the
/// certificate on disk.
pub fn wanted_sans(city: &City, lan: &[IpAddr]) -> SanSet {
    let mut sans = SanSet::default();
    sans.add_dns(&city.mattermost_host());
    sans.add_dns("localhost");
    sans.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    sans.add_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
    for ip in lan {
        sans.add_ip(*ip);
    }
    sans
}

/// Checks a requested leaf validity against Apple's limit.
pub fn check_validity_days(days: u32) -> Result<u32, PkiError> {
    match days {
        0 => Err(PkiError::ValidityZero),
        d if d > MAX_VALIDITY_DAYS => Err(PkiError::ValidityTooLong { days: d }),
        d => Ok(d),
    }
}

/// A freshly issued server certificate and its key.
pub struct Leaf {
    pub cert_der: Vec<u8>,
    pub key: KeyPair,
}

impl Leaf {
    pub fn cert_pem(&self) -> String {
        super::pem::encode("CERTIFICATE", &self.cert_der)
    }
    pub fn key_pem(&self) -> String {
        super::pem::encode("PRIVATE KEY", self.key.serialized_der())
    }
}

/// Issues a server certificate for `sans`, signed by `ca`, valid from an hour ago for
/// `validity_days` (never past the CA's own end). The result is verified against the CA, for every
/// name it carries, before it is returned.
pub fn issue(
    ca: &Ca,
    sans: &SanSet,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    let validity_days = check_validity_days(validity_days)?;
    let key = KeyPair::generate().map_err(|source| PkiError::Generate {
        what: "the server key",
        source,
    })?;
    let mut params = CertificateParams::default();
    // The hostname goes first (and into the CN); localhost last.
    let mut dns: Vec<&String> = sans.dns.iter().collect();
    dns.sort_by_key(|d| *d == "localhost");
    let common_name = dns
        .first()
        .map(|d| d.to_string())
        .or_else(|| sans.ip.iter().next().map(|ip| ip.to_string()))
        .unwrap_or_else(|| "cityd server".to_string());
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "cityd");
    params.distinguished_name = name;
    for d in dns {
        let ia5 = d.clone().try_into().map_err(|source| PkiError::Generate {
            what: "the server certificate's DNS names",
            source,
        })?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(sans.ip.iter().map(|ip| SanType::IpAddress(*ip)));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    params.not_before = start_of_validity(now);
    params.not_after =
        (params.not_before + Duration::days(i64::from(validity_days))).min(ca.not_after());
    let cert = params
        .signed_by(&key, ca.issuer())
        .map_err(|source| PkiError::Generate {
            what: "the server certificate",
            source,
        })?;
    let cert_der = cert.der().to_vec();
    super::trust::leaf_verifies(ca.cert_der(), &cert_der, now).map_err(|detail| {
        PkiError::LeafDoesNotVerify {
            ca: ca.origin().to_path_buf(),
            detail,
        }
    })?;
    Ok(Leaf { cert_der, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_sans_hold_the_host_loopbacks_and_lan() {
        let city = City::default_city();
        let lan: Vec<IpAddr> = vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        let sans = wanted_sans(&city, &lan);
        assert_eq!(
            sans.entries(),
            [
                "DNS:localhost",
                "DNS:mattermost.cicd.local",
                "IP:127.0.0.1",
                "IP:192.0.2.10",
                "IP:::1",
                "IP:2001:db8::10",
            ]
        );
    }

    #[test]
    fn validity_is_bounded_by_apple_and_by_the_ca() {
        assert!(matches!(
            check_validity_days(826),
            Err(PkiError::ValidityTooLong { days: 826 })
        ));
        assert!(check_validity_days(0).is_err());
        let now = OffsetDateTime::now_utc();
        let ca = Ca::generate("t", now).unwrap();
        let sans = wanted_sans(&City::default_city(), &[]);
        let leaf = issue(&ca, &sans, 825, now).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).unwrap();
        let v = cert.validity().not_after.to_datetime() - cert.validity().not_before.to_datetime();
        assert_eq!(v.whole_days(), 825);
        assert_eq!(
            cert.subject().to_string(),
            "CN=mattermost.cicd.local, O=cityd"
        );
        // Issued near the CA's end, the leaf stops with the CA.
        let late = now + Duration::days(super::super::ca::CA_VALIDITY_DAYS - 10);
        let leaf = issue(&ca, &sans, 397, late).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).unwrap();
        assert_eq!(cert.validity().not_after.to_datetime(), ca.not_after());
    }
}
