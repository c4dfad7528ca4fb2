//! A container registry double (the pull half of the Distribution API v2) that serves one image
//! exported from this host with `docker save`, so tests can drive `cityd up`'s pull path on a
//! machine that reaches no registry. The engine treats 127.0.0.0/8 registries as insecure and
//! speaks plain HTTP to them.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::server::{DoubleServer, Gate};

/// What the registry holds: one repository, one tag, the blobs of one image.
struct Store {
    repository: String,
    tag: String,
    manifest_digest: String,
    /// Every blob of the served image (manifest, config, layers) by digest (`sha256:<hex>`).
    blobs: HashMap<String, Vec<u8>>,
}

/// A running registry double on `127.0.0.1:<ephemeral>`; its request log and base URL come from
/// [`DoubleServer`].
pub struct RegistryDouble {
    server: DoubleServer,
    repository: String,
    tag: String,
}

impl std::ops::Deref for RegistryDouble {
    type Target = DoubleServer;
    fn deref(&self) -> &DoubleServer {
        &self.server
    }
}

impl RegistryDouble {
    /// Exports `local_image` with `docker save` and serves it, plus one small layer of its own,
    /// as `<repository>:<tag>`.
    pub fn serve_local_image(
        local_image: &str,
        repository: &str,
        tag: &str,
    ) -> anyhow::Result<Self> {
        let (blobs, manifest_digest) = saved_image(local_image)?
            .with_marker_layer(&format!("{repository}:{tag}\n"))?
            .publish()?;
        let store = Arc::new(Store {
            repository: repository.to_string(),
            tag: tag.to_string(),
            manifest_digest,
            blobs,
        });
        let app = Router::new().fallback(move |method: Method, uri: Uri| {
            let store = store.clone();
            async move { answer(&store, &method, &uri) }
        });
        let gate = Gate {
            is_mutating: crate::server::not_a_read,
            injected_failure: || {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    "injected failure",
                )
            },
        };
        Ok(Self {
            server: DoubleServer::start("registry-double", gate, app)?,
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The reference to pull: `127.0.0.1:<port>/<repository>:<tag>`.
    pub fn image_ref(&self) -> String {
        format!("{}/{}:{}", self.addr(), self.repository, self.tag)
    }
}

/// An image as `docker save` exported it: its config and its layers (media type, bytes).
struct SavedImage {
    config: Vec<u8>,
    layers: Vec<(String, Vec<u8>)>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Reads `docker save <image>`. Engines since Docker 25 save an OCI layout (`index.json`,
/// `blobs/sha256/`); older ones (Debian 12's 20.10) save `manifest.json` with a config file and
/// one uncompressed `layer.tar` per layer.
fn saved_image(image: &str) -> anyhow::Result<SavedImage> {
    let mut child = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `docker save`")?;
    let stdout = child.stdout.take().context("docker save's stdout")?;
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in tar::Archive::new(stdout).entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        files.insert(path, bytes);
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "docker save {image} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut take = |path: &str| {
        files
            .remove(path)
            .with_context(|| format!("docker save {image}: {path} is missing"))
    };
    let blob_path = |digest: &serde_json::Value| -> anyhow::Result<String> {
        let digest = digest.as_str().context("a digest in the saved manifest")?;
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("{digest} is not a sha256 digest"))?;
        Ok(format!("blobs/sha256/{hex}"))
    };
    if let Ok(index) = take("index.json") {
        let index: serde_json::Value = serde_json::from_slice(&index)?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&take(&blob_path(&index["manifests"][0]["digest"])?)?)?;
        let config = take(&blob_path(&manifest["config"]["digest"])?)?;
        let mut layers = Vec::new();
        for layer in manifest["layers"]
            .as_array()
            .context("the saved manifest lists no layers")?
        {
            let media_type = layer["mediaType"]
                .as_str()
                .unwrap_or(OCI_LAYER_TAR)
                .to_string();
            layers.push((media_type, take(&blob_path(&layer["digest"])?)?));
        }
        return Ok(SavedImage { config, layers });
    }
    let legacy: serde_json::Value = serde_json::from_slice(&take("manifest.json")?)?;
    let config_path = legacy[0]["Config"]
        .as_str()
        .context("manifest.json names no Config")?;
    let config = take(config_path)?;
    let mut layers = Vec::new();
    for layer in legacy[0]["Layers"]
        .as_array()
        .context("manifest.json lists no Layers")?
    {
        let path = layer.as_str().context("a layer path in manifest.json")?;
        layers.push((OCI_LAYER_TAR.to_string(), take(path)?));
    }
    Ok(SavedImage { config, layers })
}

impl SavedImage {
    /// Adds a layer holding one small file, so the served image has a layer this host lacks and
    /// a pull really downloads something (and its own image ID).
    fn with_marker_layer(mut self, marker: &str) -> anyhow::Result<Self> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(marker.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, ".cityd-registry-double", marker.as_bytes())?;
        let layer = builder.into_inner()?;
        let mut config: serde_json::Value = serde_json::from_slice(&self.config)?;
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .context("the image config has no rootfs.diff_ids")?
            .push(digest_of(&layer).into());
        if let Some(history) = config["history"].as_array_mut() {
            history
                .push(serde_json::json!({ "created_by": "cityd registry double: marker layer" }));
        }
        self.config = serde_json::to_vec(&config)?;
        self.layers.push((OCI_LAYER_TAR.to_string(), layer));
        Ok(self)
    }

    /// The blobs to serve (config, layers, an OCI manifest of them) and the manifest's digest.
    fn publish(self) -> anyhow::Result<(HashMap<String, Vec<u8>>, String)> {
        let mut blobs = HashMap::new();
        let mut add = |bytes: Vec<u8>| {
            let digest = digest_of(&bytes);
            let size = bytes.len();
            blobs.insert(digest.clone(), bytes);
            (digest, size)
        };
        let (config_digest, config_size) = add(self.config);
        let layers: Vec<_> = self
            .layers
            .into_iter()
            .map(|(media_type, bytes)| {
                let (digest, size) = add(bytes);
                serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        }))?;
        let (manifest_digest, _) = add(manifest);
        Ok((blobs, manifest_digest))
    }
}

fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// `GET|HEAD /v2/`, `/v2/<name>/manifests/<tag or digest>`, `/v2/<name>/blobs/<digest>`.
fn answer(store: &Store, method: &Method, uri: &Uri) -> Response {
    let path = uri.path();
    if method != Method::GET && method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "pull only");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not a v2 path");
    };
    if rest.is_empty() {
        return blob_response("{}".into(), "application/json", None);
    }
    let (name, kind, reference) = match rest.rsplit_once("/manifests/") {
        Some((name, reference)) => (name, "manifest", reference),
        None => match rest.rsplit_once("/blobs/") {
            Some((name, digest)) => (name, "blob", digest),
            None => return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "unknown path"),
        },
    };
    if name != store.repository {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository not known",
        );
    }
    let digest = match kind {
        "manifest" if reference == store.tag || reference == store.manifest_digest => {
            store.manifest_digest.as_str()
        }
        "manifest" => {
            return error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            );
        }
        _ => reference,
    };
    let Some(bytes) = store.blobs.get(digest) else {
        return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown");
    };
    let content_type = if kind == "manifest" {
        OCI_MANIFEST
    } else {
        "application/octet-stream"
    };
    blob_response(bytes.clone(), content_type, Some(digest))
}

fn blob_response(bytes: Vec<u8>, content_type: &str, digest: Option<&str>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::HeaderName::from_static("docker-distribution-api-version"),
                "registry/2.0".to_string(),
            ),
        ],
        Body::from(bytes),
    )
        .into_response();
    if let Some(digest) = digest.and_then(|d| header::HeaderValue::from_str(d).ok()) {
        response
            .headers_mut()
            .insert("docker-content-digest", digest);
    }
    response
}

/// The registry's error body: `{"errors":[{"code","message"}]}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
    (status, axum::Json(body)).into_response()
}
