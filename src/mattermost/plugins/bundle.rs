//! Plugin bundles: read from a path or downloaded from a pinned URL, and checked against the
//! city's SRI hash before anything is uploaded.

use std::time::Duration;

use super::PluginError;
use super::desired::BundleSpec;
use crate::nixhash::Sri;

/// Largest bundle cityd downloads (Mattermost's default upload limit).
const MAX_BUNDLE: usize = 100 * 1024 * 1024;

/// A verified bundle, ready for upload.
pub struct Bundle {
    pub bytes: Vec<u8>,
    pub file_name: String,
}

/// Loads a bundle (path or URL) and checks it against the pinned SRI hash. Nothing is uploaded
/// unless this succeeds.
pub async fn load_verified(plugin: &str, bundle: &BundleSpec) -> Result<Bundle, PluginError> {
    let expected = Sri::parse(&bundle.sri).map_err(|error| PluginError::BadSri {
        plugin: plugin.into(),
        error,
    })?;
    let bytes = if bundle.source.starts_with("http://") || bundle.source.starts_with("https://") {
        download(plugin, &bundle.source).await?
    } else {
        std::fs::read(&bundle.source).map_err(|error| PluginError::ReadBundle {
            plugin: plugin.into(),
            path: bundle.source.clone(),
            error,
        })?
    };
    let actual = Sri::of_bytes(&bytes);
    if actual != expected {
        return Err(PluginError::HashMismatch {
            plugin: plugin.into(),
            source_name: bundle.source.clone(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    let file_name = bundle
        .source
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("plugin.tar.gz")
        .to_string();
    Ok(Bundle { bytes, file_name })
}

async fn download(plugin: &str, url: &str) -> Result<Vec<u8>, PluginError> {
    let fail = |reason: String| PluginError::Download {
        plugin: plugin.into(),
        url: url.into(),
        reason,
    };
    let client = crate::tls::http_builder(crate::tls::Trust::System)
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BUNDLE as u64)
    {
        return Err(fail(format!("larger than {MAX_BUNDLE} bytes")));
    }
    let bytes = response.bytes().await.map_err(|e| fail(e.to_string()))?;
    if bytes.len() > MAX_BUNDLE {
        return Err(fail(format!("larger than {MAX_BUNDLE} bytes")));
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wrong_hash_is_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jenkins-1.1.0.tar.gz");
        std::fs::write(&path, b"not the bundle you pinned").unwrap();
        let spec = BundleSpec {
            source: path.display().to_string(),
            sri: Sri::of_bytes(b"the real bundle").to_string(),
            version: Some("1.1.0".into()),
        };
        let err = load_verified("jenkins", &spec).await.err().unwrap();
        let text = err.to_string();
        assert!(text.contains("refusing to upload"), "{text}");
        assert!(text.contains(&Sri::of_bytes(b"not the bundle you pinned").to_string()));
        let ok = BundleSpec {
            sri: Sri::of_bytes(b"not the bundle you pinned").to_string(),
            ..spec
        };
        let bundle = load_verified("jenkins", &ok).await.unwrap();
        assert_eq!(bundle.file_name, "jenkins-1.1.0.tar.gz");
    }
}
