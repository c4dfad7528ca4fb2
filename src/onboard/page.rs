//! The onboarding page: one self-contained HTML document (inline style, no script, the QR code an
//! image from the same server), every city value escaped.

use time::OffsetDateTime;

use super::escape::html;
use super::{Onboarding, ios_fingerprint, paths};

/// The mattermost-mobile issue about user-installed CAs on Android, and the first fixed release.
pub const ANDROID_ISSUE: &str = "https://github.com/mattermost/mattermost-mobile/issues/9337";
pub const ANDROID_FIXED_IN: &str = "2.41.0";

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;line-height:1.45;color:#1b1d22;background:#fff}\
h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.15rem;margin:1.4rem 0 .4rem;border-top:1px solid #dde;padding-top:.9rem}\
.fp{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95rem;background:#f3f4f8;padding:.5rem;border-radius:.4rem;word-break:break-all}\
.dl a{display:block;margin:.45rem 0;padding:.7rem 1rem;border-radius:.5rem;background:#1c58d9;color:#fff;text-decoration:none;font-weight:600}\
.dl a small{display:block;font-weight:400;opacity:.9}ol{padding-left:1.3rem}li{margin:.25rem 0}\
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.5rem .8rem;border-radius:.3rem}\
.ok{background:#e9f7ef;border-left:4px solid #2e9d5b;padding:.5rem .8rem;border-radius:.3rem}\
.qr{text-align:center}.qr img{width:240px;height:240px}code{font-family:ui-monospace,Menlo,Consolas,monospace}\
footer{margin-top:1.5rem;font-size:.85rem;color:#555}";

/// The page for `o`, saying it stops at `expires_at`.
pub fn render(o: &Onboarding, expires_at: OffsetDateTime) -> String {
    let domain = html(&o.domain);
    let team = html(&o.team);
    let subject = html(&o.ca_subject);
    let fp_android = html(&o.sha256);
    let fp_ios = html(&ios_fingerprint(&o.sha256));
    let url = html(&o.mattermost_url);
    let link = html(&o.mattermost_link);
    let site = html(&o.site_url);
    let until = html(&crate::pki::rfc3339(expires_at));
    let scope = match &o.scope {
        Some(scope) => format!(
            r#"<p class="ok" id="scope">This CA can vouch only for the city's own names and LAN ({}). It cannot be used to impersonate any other site.</p>"#,
            html(&scope.describe())
        ),
        None => r#"<p class="note" id="scope">This CA has no name constraints: a device that trusts it accepts any certificate it signs, for any site. Install it only if you trust whoever runs this server.</p>"#.to_string(),
    };
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Join {domain}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Join the city <span id="domain">{domain}</span></h1>
<p>Team <strong id="team">{team}</strong>. Three steps: trust the city's certificate authority (CA), check its fingerprint, then add the server to the Mattermost app.</p>

<h2>1. Download the city CA</h2>
<div class="dl">
<a id="dl-android" href="{der}" download="city-ca.crt">Android: city-ca.crt<small>DER certificate for Settings &gt; Install a certificate</small></a>
<a id="dl-ios" href="{mobileconfig}">iPhone, iPad, Mac: profile<small>Configuration profile with the root certificate</small></a>
<a id="dl-pem" href="{pem}" download="city-ca.pem">Desktop: city-ca.pem<small>PEM for browsers and operating systems</small></a>
</div>
{scope}

<h2>2. Check the fingerprint</h2>
<p>Compare it with the one printed on the server's terminal before you trust the CA, named <span id="subject">{subject}</span>.</p>
<p>SHA-256 as Android shows it:</p>
<p class="fp" id="fp-android">{fp_android}</p>
<p>SHA-256 as iOS shows it:</p>
<p class="fp" id="fp-ios">{fp_ios}</p>

<h2>Android</h2>
<ol id="steps-android">
<li>Download <code>city-ca.crt</code> above. Tapping the file does not install it.</li>
<li>Open Settings &gt; Security (or Security &amp; privacy) &gt; More security settings &gt; Encryption &amp; credentials &gt; Install a certificate &gt; <strong>CA certificate</strong>. The path differs a little between makers; search Settings for "CA certificate".</li>
<li>Tap "Install anyway", confirm with your screen lock, and pick <code>city-ca.crt</code> from Downloads.</li>
<li>Check the fingerprint under Trusted credentials &gt; User.</li>
</ol>

<h2>iPhone and iPad</h2>
<ol id="steps-ios">
<li>Open this page in Safari and tap the profile link above; allow the download.</li>
<li>Open Settings &gt; <strong>Profile Downloaded</strong> &gt; Install, and enter your passcode. Install within 8 minutes, or download again.</li>
<li>Turn on full trust: Settings &gt; General &gt; About &gt; <strong>Certificate Trust Settings</strong> &gt; switch on the city CA. Without this step apps do not trust it.</li>
</ol>

<h2>Mac, Linux and Windows</h2>
<ol id="steps-desktop">
<li>macOS: open the profile, then System Settings &gt; Privacy &amp; Security &gt; Profiles &gt; Install.</li>
<li>Linux and Windows: import <code>city-ca.pem</code> into the system or browser trust store as a certificate authority for websites.</li>
</ol>

<h2>3. Add the server to Mattermost</h2>
<div class="qr"><img id="mattermost-qr" src="{qr}" alt="QR code of {url}"></div>
<p>Server URL: <code id="mattermost-url">{url}</code> (on a machine that resolves the city's names: <code id="site-url">{site}</code>).</p>
<p>Scan the QR code with the camera and copy the URL into the app's "Add server" screen, or on the phone tap <a id="mattermost-link" href="{link}">open in the Mattermost app</a> to get that screen pre-filled.</p>
<p class="note" id="android-note">Android: the Mattermost app before version {ANDROID_FIXED_IN} may ignore user-installed CAs and refuse the server even after step 1 (<a href="{ANDROID_ISSUE}">mattermost-mobile#9337</a>). Update the app if it says the certificate is not trusted.</p>

<footer id="expiry">This page is served over plain HTTP on the LAN only until {until}, and carries no secret: anyone on the LAN could serve one like it, which is why step 2 matters.</footer>
</body>
</html>
"##,
        der = paths::DER,
        mobileconfig = paths::MOBILECONFIG,
        pem = paths::PEM,
        qr = paths::MATTERMOST_QR,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(team: &str) -> Onboarding {
        Onboarding {
            domain: "cicd.local".into(),
            team: team.into(),
            ca_der: b"der".to_vec(),
            ca_subject: "CN=cityd CA cicd.local 2026-01-01, O=cityd".into(),
            sha256: "AB:CD:EF".into(),
            scope: None,
            mattermost_url: "https://192.0.2.10:8065".into(),
            mattermost_link: "mattermost://192.0.2.10:8065".into(),
            site_url: "https://mattermost.cicd.local:8065".into(),
            leaf_missing: Vec::new(),
        }
    }

    #[test]
    fn the_page_shows_both_fingerprints_the_links_and_the_android_note() {
        let page = render(&sample("Engineering"), OffsetDateTime::UNIX_EPOCH);
        for needle in [
            r#"<p class="fp" id="fp-android">AB:CD:EF</p>"#,
            r#"<p class="fp" id="fp-ios">AB CD EF</p>"#,
            r#"href="/city-ca.crt""#,
            r#"href="/city-ca.mobileconfig""#,
            r#"href="/city-ca.pem""#,
            r#"href="mattermost://192.0.2.10:8065""#,
            "mattermost-mobile#9337",
            "Certificate Trust Settings",
            "CA certificate",
            "1970-01-01T00:00:00Z",
            "no name constraints",
        ] {
            assert!(page.contains(needle), "the page lacks {needle}");
        }
    }

    #[test]
    fn a_hostile_team_name_is_escaped() {
        let page = render(
            &sample("<script>alert(1)</script>\"'&"),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    }
}
