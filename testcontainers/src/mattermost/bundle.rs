//! Plugin bundles (`.tar.gz`): reading `plugin.json` out of an upload, and building minimal
//! bundles for tests.

use std::io::Read;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// Not a gzip-compressed tar archive.
    NotATarGz,
    /// No `plugin.json` at the top level or one directory down.
    NoManifest,
    /// `plugin.json` is not a JSON object with a string `id`.
    BadManifest,
}

/// Largest manifest the double reads; real manifests are a few kilobytes.
const MAX_MANIFEST: u64 = 1024 * 1024;

/// The manifest of a bundle: `plugin.json` at the archive root or inside one top-level directory
/// (the layout `make dist` produces: `<id>/plugin.json`).
pub fn read_manifest(bundle: &[u8]) -> Result<Value, BundleError> {
    let mut archive = tar::Archive::new(GzDecoder::new(bundle));
    let entries = archive.entries().map_err(|_| BundleError::NotATarGz)?;
    for entry in entries {
        let entry = entry.map_err(|_| BundleError::NotATarGz)?;
        let path = entry
            .path()
            .map_err(|_| BundleError::NotATarGz)?
            .into_owned();
        let parts: Vec<_> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let parts: Vec<&str> = parts
            .iter()
            .map(String::as_str)
            .filter(|p| *p != ".")
            .collect();
        if parts.last() != Some(&"plugin.json") || parts.len() > 2 {
            continue;
        }
        let mut text = String::new();
        entry
            .take(MAX_MANIFEST)
            .read_to_string(&mut text)
            .map_err(|_| BundleError::BadManifest)?;
        let manifest: Value = serde_json::from_str(&text).map_err(|_| BundleError::BadManifest)?;
        return match manifest.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(manifest),
            _ => Err(BundleError::BadManifest),
        };
    }
    Err(BundleError::NoManifest)
}

/// A minimal plugin bundle: `<id>/plugin.json` holding `manifest`, plus `extra` files under the
/// same directory (e.g. `("server/dist/plugin-linux-amd64", b"...")`).
pub fn make_bundle(manifest: &Value, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let id = manifest
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("plugin");
    let manifest_bytes = serde_json::to_vec_pretty(manifest).expect("a JSON value serialises");
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut files: Vec<(String, &[u8])> = vec![(format!("{id}/plugin.json"), &manifest_bytes)];
    files.extend(extra.iter().map(|(p, d)| (format!("{id}/{p}"), *d)));
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, data)
            .expect("writing to memory cannot fail");
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .expect("writing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// Uploaded bundles are network input: arbitrary bytes are refused, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = read_manifest(&bytes);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
            std::io::Write::write_all(&mut gz, &bytes).unwrap();
            let _ = read_manifest(&gz.finish().unwrap());
        }
    }

    #[test]
    fn round_trips_a_manifest() {
        let manifest = json!({"id": "jenkins", "version": "1.1.0"});
        let bundle = make_bundle(&manifest, &[("README.md", b"hi")]);
        assert_eq!(read_manifest(&bundle).unwrap(), manifest);
    }

    #[test]
    fn refuses_garbage_and_missing_manifests() {
        assert_eq!(read_manifest(b"not a tarball"), Err(BundleError::NotATarGz));
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_cksum();
        builder
            .append_data(&mut header, "x/readme", &b"hi"[..])
            .unwrap();
        let bundle = builder.into_inner().unwrap().finish().unwrap();
        assert_eq!(read_manifest(&bundle), Err(BundleError::NoManifest));
        let no_id = make_bundle(&json!({"name": "x"}), &[]);
        assert_eq!(read_manifest(&no_id), Err(BundleError::BadManifest));
    }
}
