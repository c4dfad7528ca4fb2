//! The iOS/macOS configuration profile (`.mobileconfig`): one `com.apple.security.root` payload
//! holding the CA's DER, with identifiers derived from the CA so a re-download replaces the
//! installed profile instead of adding a second one.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::escape::html as xml;

/// `org.cityd.ca.<first 8 bytes of the CA's SHA-256, hex>`: the same CA always gets the same
/// identifier (iOS replaces a profile with the same top-level PayloadIdentifier); another CA
/// gets another one, so a new CA never silently takes an old one's place.
pub fn identifier(ca_der: &[u8]) -> String {
    format!("org.cityd.ca.{}", hex::encode(&Sha256::digest(ca_der)[..8]))
}

/// A name-based UUID (RFC 9562 version 5 layout over SHA-256) of the CA and a label: stable
/// across downloads and runs, different for the profile and its payload.
pub fn uuid(ca_der: &[u8], label: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"cityd onboard profile\0");
    hasher.update(label.as_bytes());
    hasher.update(b"\0");
    hasher.update(ca_der);
    let mut b: [u8; 16] = hasher.finalize()[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The profile's XML property list. `display_name` (the CA's subject) and `domain` are escaped.
pub fn mobileconfig(ca_der: &[u8], display_name: &str, domain: &str) -> String {
    let id = identifier(ca_der);
    let data = base64::engine::general_purpose::STANDARD.encode(ca_der);
    // 52 characters a line, as Apple's own tools wrap <data>.
    let wrapped: Vec<&str> = data
        .as_bytes()
        .chunks(52)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let data = wrapped.join("\n\t\t\t");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>city-ca.crt</string>
			<key>PayloadContent</key>
			<data>
			{data}
			</data>
			<key>PayloadDescription</key>
			<string>Adds the root certificate of the city {domain}.</string>
			<key>PayloadDisplayName</key>
			<string>{name}</string>
			<key>PayloadIdentifier</key>
			<string>{id}.root</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>{payload_uuid}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Trust the certificates of the city {domain} (Mattermost on your LAN). After installing, turn on full trust in Settings &gt; General &gt; About &gt; Certificate Trust Settings.</string>
	<key>PayloadDisplayName</key>
	<string>City CA {domain}</string>
	<key>PayloadIdentifier</key>
	<string>{id}</string>
	<key>PayloadOrganization</key>
	<string>cityd</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>{profile_uuid}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
"#,
        domain = xml(domain),
        name = xml(display_name),
        payload_uuid = uuid(ca_der, "root payload"),
        profile_uuid = uuid(ca_der, "profile"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_stable_per_ca_and_differ_between_cas() {
        assert_eq!(identifier(b"ca one"), identifier(b"ca one"));
        assert_ne!(identifier(b"ca one"), identifier(b"ca two"));
        let u = uuid(b"ca one", "profile");
        assert_eq!(u, uuid(b"ca one", "profile"));
        assert_ne!(u, uuid(b"ca one", "root payload"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5", "version 5 layout: {u}");
        assert!("89AB".contains(&u[19..20]), "RFC variant: {u}");
    }

    #[test]
    fn names_are_escaped_in_the_plist() {
        let text = mobileconfig(b"der", "CN=<a&b>", "x\"y");
        assert!(
            text.contains("<string>CN=&lt;a&amp;b&gt;</string>"),
            "{text}"
        );
        assert!(text.contains("City CA x&quot;y"));
        assert!(!text.contains("<a&b>"));
    }
}
