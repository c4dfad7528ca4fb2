//! `cityd export k8s`: the city as manifests for a cluster running the Mattermost Operator — the
//! `Mattermost` resource (installation.mattermost.com/v1beta1) whose environment is the city's own
//! env file (`render::mattermost_env`) adapted to the operator, the Secrets from the vault, coturn
//! on the host network with the city's configuration (`render::coturn`), and rtcd with its
//! `RTCD_*` settings (`export::rtcd`) behind a headless Service, so its URL resolves to every pod.

use std::net::IpAddr;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use std::path::Path;

use super::{ExportFile, Exported, rtcd, yaml};
use crate::docker::spec::{COTURN_CONFIG, COTURN_UID};
use crate::envfile;
use crate::pki::files as pki_files;
use crate::render::{Inputs, container, coturn, mattermost_env};
use crate::secrets::Secret;
use crate::secrets::{SecretName, Vault};
use crate::state::StateDir;

/// The resource names every manifest uses (`<name>-db`, `<name>-rtcd`, ...).
pub const DEFAULT_NAME: &str = "cityd";
/// The image rtcd runs, pinned (Calls v1.11 pins rtcd v1.2.6).
pub const DEFAULT_RTCD_IMAGE: &str = "mattermost/rtcd:v1.2.6";

/// How the ingress gets its certificate.
pub enum Tls {
    /// The city PKI's server certificate (leaf + chain) and key, as a `kubernetes.io/tls` Secret.
    CityPki { chain_pem: String, key_pem: Secret },
    /// cert-manager issues it into the Secret, from the named issuer.
    CertManager {
        issuer: String,
        cluster_issuer: bool,
    },
}

/// Where Mattermost keeps files.
pub enum FileStore {
    /// A PersistentVolumeClaim the operator creates (the appliance's volume, moved).
    Local { size: String },
    /// S3 or MinIO; the Secret (keys `accesskey`, `secretkey`) is the user's.
    S3 {
        url: String,
        bucket: String,
        secret: String,
    },
}

/// Where the ingress certificate comes from, before it is read.
pub enum TlsSource {
    /// `<state>/pki/server.pem` and `server.key` (`cityd pki ensure` writes them).
    CityPki,
    CertManager {
        issuer: String,
        cluster_issuer: bool,
    },
}

/// Choices the city does not make: what the flags say.
pub struct Options {
    pub name: String,
    pub tls: TlsSource,
    /// An operator size preset (`5000users`); `None` with `replicas` `None`: one replica, as the appliance.
    pub size: Option<String>,
    pub replicas: Option<u32>,
    pub license_secret: Option<String>,
    pub ingress_class: Option<String>,
    pub file_store: FileStore,
    pub rtcd_image: String,
    pub rtcd_replicas: u32,
    /// rtcd's media port, UDP and TCP, on each node.
    pub ice_port: u16,
    /// Where Calls media is published, which coturn must be allowed to reach (the nodes running
    /// rtcd). Default: the city's LAN addresses.
    pub media_addresses: Vec<IpAddr>,
    /// coturn as a DaemonSet (one per node) or a Deployment of this many replicas.
    pub coturn_replicas: Option<u32>,
}

/// The vault values the manifests carry.
pub struct Secrets<'a> {
    pub db_password: &'a Secret,
    pub at_rest_encrypt_key: &'a Secret,
    pub public_link_salt: &'a Secret,
    pub turn_static_auth_secret: &'a Secret,
}

/// What the operator does with one key of the city's env file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Carry {
    /// As the city renders it.
    Keep,
    /// Left out; the reason is for the reader of this table.
    Drop(&'static str),
    /// From the `<name>-mattermost` Secret, under the same key.
    FromSecret,
    /// Replaced by a value that holds in the cluster.
    Replace(String),
}

/// Keys of the city's env file the operator takes unchanged.
const KEPT: &[&str] = &[
    "MM_SERVICESETTINGS_ENABLELOCALMODE",
    "MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS",
    "MM_SERVICESETTINGS_ENABLEINSECUREOUTGOINGCONNECTIONS",
    "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION",
    "MM_SERVICESETTINGS_ENABLEINCOMINGWEBHOOKS",
    "MM_SERVICESETTINGS_ENABLEPOSTUSERNAMEOVERRIDE",
    "MM_SERVICESETTINGS_ENABLEPOSTICONOVERRIDE",
    "MM_SERVICESETTINGS_POSTPRIORITY",
    "MM_SERVICESETTINGS_ENABLEDEVELOPER",
    "MM_TEAMSETTINGS_MAXUSERSPERTEAM",
    "MM_METRICSSETTINGS_ENABLE",
    "MM_METRICSSETTINGS_LISTENADDRESS",
    "MM_PLUGINSETTINGS_ENABLE",
    "MM_PLUGINSETTINGS_REQUIREPLUGINSIGNATURE",
    "MM_PLUGINSETTINGS_AUTOMATICPREPACKAGEDPLUGINS",
    "MM_CALLS_UDP_SERVER_PORT",
    "MM_CALLS_TCP_SERVER_PORT",
    "MM_CALLS_ICE_SERVERS_CONFIGS",
    "MM_CALLS_TURN_CREDENTIALS_EXPIRATION_MINUTES",
    "MM_CALLS_SERVER_SIDE_TURN",
    "MM_CALLS_DEFAULT_ENABLED",
];

/// The operator's treatment of `key`; `None` for a key this table does not know yet (kept, and a
/// unit test fails until the table says what to do with it).
fn carry(key: &str, site_origin: &str, extra_cors: &[String], rtcd_url: &str) -> Option<Carry> {
    Some(match key {
        "MM_SQLSETTINGS_DRIVERNAME" | "MM_SQLSETTINGS_DATASOURCE" => {
            Carry::Drop("the operator sets both from the database Secret's DB_CONNECTION_STRING")
        }
        "MM_SQLSETTINGS_ATRESTENCRYPTKEY"
        | "MM_FILESETTINGS_PUBLICLINKSALT"
        | "MM_CALLS_TURN_STATIC_AUTH_SECRET" => Carry::FromSecret,
        "MM_SERVICESETTINGS_SITEURL" => {
            Carry::Drop("the operator derives the SiteURL from ingress.host")
        }
        "MM_SERVICESETTINGS_LISTENADDRESS"
        | "MM_SERVICESETTINGS_CONNECTIONSECURITY"
        | "MM_SERVICESETTINGS_TLSCERTFILE"
        | "MM_SERVICESETTINGS_TLSKEYFILE" => {
            Carry::Drop("TLS ends at the ingress; the operator's pods serve plain HTTP on 8065")
        }
        "MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION" => Carry::Drop(
            "the socket directory is a host bind mount of the appliance; pods keep the image's default",
        ),
        "MM_CALLS_ICE_HOST_OVERRIDE" => {
            Carry::Drop("the appliance's LAN address; rtcd advertises each node's own")
        }
        "MM_SERVICESETTINGS_ALLOWCORSFROM" => {
            let mut origins = vec![site_origin.to_string()];
            origins.extend(extra_cors.iter().filter(|o| *o != site_origin).cloned());
            Carry::Replace(origins.join(" "))
        }
        "MM_CALLS_RTCD_SERVICE_URL" => Carry::Replace(rtcd_url.to_string()),
        k if KEPT.contains(&k) => Carry::Keep,
        _ => return None,
    })
}

/// The resource name: a DNS label short enough for the longest suffix (`-mattermost`).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--name {name:?} must be 1-40 characters of a-z, 0-9 and '-', not starting or ending with '-' (a Kubernetes name)"
        ))
    }
}

fn labels(name: &str, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": format!("{name}-{component}"),
        "app.kubernetes.io/part-of": name,
        "app.kubernetes.io/managed-by": "cityd",
    })
}

fn metadata(name: &str, component: &str) -> Value {
    json!({ "name": format!("{name}-{component}"), "labels": labels(name, component) })
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn secret_manifest(name: &str, component: &str, kind: &str, data: &[(&str, &str)]) -> Value {
    let data: Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(b64(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, component),
        "type": kind,
        "data": data,
    })
}

/// `repository:tag` (or `repository@digest`) as the operator's `image` and `version`.
fn split_image(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), String::new()),
    }
}

/// The hostname clients use: the city's Mattermost host.
fn host(inputs: &Inputs) -> String {
    inputs.city.mattermost_host()
}

/// rtcd's in-cluster URL: the headless Service, whose DNS name resolves to every rtcd pod.
pub fn rtcd_cluster_url(name: &str) -> String {
    format!("http://{name}-rtcd:{}", rtcd::API_PORT)
}

/// The `mattermostEnv` list: the city's env file, carried as the operator needs it.
fn mattermost_env(inputs: &Inputs, secrets: &Secrets, options: &Options) -> anyhow::Result<Value> {
    let rendered = mattermost_env::render(
        inputs,
        &mattermost_env::MattermostSecrets {
            db_password: secrets.db_password,
            at_rest_encrypt_key: secrets.at_rest_encrypt_key,
            public_link_salt: secrets.public_link_salt,
            turn_static_auth_secret: secrets.turn_static_auth_secret,
        },
    )?;
    let entries = envfile::parse_docker(&rendered)?;
    let site_origin = format!("https://{}", host(inputs));
    let rtcd_url = rtcd_cluster_url(&options.name);
    let extra = &inputs.city.mattermost.allow_cors_from;
    let mut env = Vec::new();
    let mut has_rtcd = false;
    for entry in &entries {
        has_rtcd |= entry.key == "MM_CALLS_RTCD_SERVICE_URL";
        let how = carry(&entry.key, &site_origin, extra, &rtcd_url).unwrap_or(Carry::Keep);
        match how {
            Carry::Keep => env.push(json!({ "name": entry.key, "value": entry.value })),
            Carry::Drop(_) => {}
            Carry::Replace(value) => env.push(json!({ "name": entry.key, "value": value })),
            Carry::FromSecret => env.push(json!({
                "name": entry.key,
                "valueFrom": { "secretKeyRef": {
                    "name": format!("{}-mattermost", options.name),
                    "key": entry.key,
                }},
            })),
        }
    }
    if !has_rtcd {
        env.push(json!({ "name": "MM_CALLS_RTCD_SERVICE_URL", "value": rtcd_url }));
    }
    Ok(Value::Array(env))
}

fn mattermost_resource(
    inputs: &Inputs,
    secrets: &Secrets,
    tls: &Tls,
    options: &Options,
) -> anyhow::Result<Value> {
    let name = &options.name;
    let (image, version) = split_image(&inputs.city.mattermost.image);
    let mut spec = Map::new();
    spec.insert("image".into(), json!(image));
    spec.insert("version".into(), json!(version));
    match (&options.size, options.replicas) {
        (None, None) => {
            // One node, as the appliance: Entry mode needs no licence; HA does.
            spec.insert("replicas".into(), json!(1));
        }
        (size, replicas) => {
            if let Some(size) = size {
                spec.insert("size".into(), json!(size));
            }
            if let Some(replicas) = replicas {
                spec.insert("replicas".into(), json!(replicas));
            }
        }
    }
    if let Some(licence) = &options.license_secret {
        spec.insert("licenseSecret".into(), json!(licence));
    }
    let mut ingress = Map::new();
    ingress.insert("enabled".into(), json!(true));
    ingress.insert("host".into(), json!(host(inputs)));
    ingress.insert("tlsSecret".into(), json!(format!("{name}-tls")));
    if let Some(class) = &options.ingress_class {
        ingress.insert("ingressClass".into(), json!(class));
    }
    if let Tls::CertManager {
        issuer,
        cluster_issuer,
    } = tls
    {
        let annotation = if *cluster_issuer {
            "cert-manager.io/cluster-issuer"
        } else {
            "cert-manager.io/issuer"
        };
        ingress.insert("annotations".into(), json!({ annotation: issuer }));
    }
    spec.insert("ingress".into(), Value::Object(ingress));
    spec.insert(
        "database".into(),
        json!({ "external": { "secret": format!("{name}-db") } }),
    );
    let file_store = match &options.file_store {
        FileStore::Local { size } => json!({ "local": { "enabled": true, "storageSize": size } }),
        FileStore::S3 {
            url,
            bucket,
            secret,
        } => json!({ "external": { "url": url, "bucket": bucket, "secret": secret } }),
    };
    spec.insert("fileStore".into(), file_store);
    spec.insert(
        "mattermostEnv".into(),
        mattermost_env(inputs, secrets, options)?,
    );
    if inputs.city.database.tls {
        // The DSN verifies the server against container::CA_FILE, as on the appliance.
        spec.insert(
            "volumes".into(),
            json!([{ "name": "city-ca", "configMap": { "name": format!("{name}-ca") } }]),
        );
        spec.insert(
            "volumeMounts".into(),
            json!([{ "name": "city-ca", "mountPath": container::CERT_DIR, "readOnly": true }]),
        );
    }
    Ok(json!({
        "apiVersion": "installation.mattermost.com/v1beta1",
        "kind": "Mattermost",
        "metadata": { "name": name, "labels": labels(name, "mattermost") },
        "spec": spec,
    }))
}

fn coturn_workload(inputs: &Inputs, options: &Options) -> Value {
    let name = &options.name;
    let labels = labels(name, "coturn");
    let pod = json!({
        "metadata": { "labels": labels },
        "spec": {
            // coturn must see clients' real addresses and own its relay ports.
            "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "securityContext": {
                "runAsUser": COTURN_UID,
                "runAsGroup": COTURN_UID,
                "fsGroup": COTURN_UID,
                "runAsNonRoot": true,
            },
            "containers": [{
                "name": "coturn",
                "image": inputs.city.docker.coturn_image,
                "args": ["-c", COTURN_CONFIG],
                "ports": [
                    { "name": "turn-udp", "containerPort": inputs.city.turn.port, "protocol": "UDP" },
                    { "name": "turn-tcp", "containerPort": inputs.city.turn.port, "protocol": "TCP" },
                ],
                "volumeMounts": [{
                    "name": "config",
                    "mountPath": COTURN_CONFIG,
                    "subPath": "turnserver.conf",
                    "readOnly": true,
                }],
            }],
            "volumes": [{
                "name": "config",
                // 0440 with fsGroup: readable by coturn's group, nobody else on the node.
                "secret": { "secretName": format!("{name}-coturn"), "defaultMode": 0o440 },
            }],
        },
    });
    let selector = json!({ "matchLabels": labels });
    match options.coturn_replicas {
        None => json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": metadata(name, "coturn"),
            "spec": { "selector": selector, "template": pod },
        }),
        Some(replicas) => json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, "coturn"),
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "template": anti_affinity(pod, &labels),
            },
        }),
    }
}

/// One pod per node: pods on the host network would fight over the same ports.
fn anti_affinity(mut pod: Value, labels: &Value) -> Value {
    pod["spec"]["affinity"] = json!({
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": { "matchLabels": labels },
                "topologyKey": "kubernetes.io/hostname",
            }],
        },
    });
    pod
}

fn rtcd_manifests(inputs: &Inputs, options: &Options) -> Vec<Value> {
    let name = &options.name;
    let labels = labels(name, "rtcd");
    let env: Vec<Value> = rtcd::settings(inputs, options.ice_port)
        .into_iter()
        .map(|(key, value)| match value {
            rtcd::Value::Literal(v) => json!({ "name": key, "value": v }),
            rtcd::Value::TurnSecret => json!({
                "name": key,
                "valueFrom": { "secretKeyRef": {
                    "name": format!("{name}-turn"), "key": "static-auth-secret",
                }},
            }),
            rtcd::Value::HostAddress => json!({
                "name": key,
                "valueFrom": { "fieldRef": { "fieldPath": "status.hostIP" } },
            }),
        })
        .collect();
    let pod = json!({
        "metadata": { "labels": labels },
        "spec": {
            "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "containers": [{
                "name": "rtcd",
                "image": options.rtcd_image,
                "env": env,
                "ports": [
                    { "name": "api", "containerPort": rtcd::API_PORT, "protocol": "TCP" },
                    { "name": "rtc-udp", "containerPort": options.ice_port, "protocol": "UDP" },
                    { "name": "rtc-tcp", "containerPort": options.ice_port, "protocol": "TCP" },
                ],
            }],
        },
    });
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, "rtcd"),
            "spec": {
                "replicas": options.rtcd_replicas,
                "selector": { "matchLabels": labels },
                "template": anti_affinity(pod, &labels),
            },
        }),
        // Headless: the name resolves to every rtcd pod, which is how Calls spreads calls.
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, "rtcd"),
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                "ports": [{ "name": "api", "port": rtcd::API_PORT, "targetPort": rtcd::API_PORT, "protocol": "TCP" }],
            },
        }),
    ]
}

/// Every manifest, one file per concern; the Secrets in files of their own (0600).
pub fn files(
    inputs: &Inputs,
    secrets: &Secrets,
    tls: &Tls,
    ca_pem: Option<&str>,
    options: &Options,
) -> anyhow::Result<Vec<ExportFile>> {
    let name = &options.name;
    let mut out = Vec::new();
    let dsn = mattermost_env::database_dsn(inputs, secrets.db_password);
    out.push(ExportFile::secret(
        "secret-db.yaml",
        yaml::documents(&[secret_manifest(
            name,
            "db",
            "Opaque",
            &[("DB_CONNECTION_STRING", &dsn)],
        )]),
    ));
    out.push(ExportFile::secret(
        "secret-mattermost.yaml",
        yaml::documents(&[secret_manifest(
            name,
            "mattermost",
            "Opaque",
            &[
                (
                    "MM_CALLS_TURN_STATIC_AUTH_SECRET",
                    secrets.turn_static_auth_secret.expose(),
                ),
                (
                    "MM_FILESETTINGS_PUBLICLINKSALT",
                    secrets.public_link_salt.expose(),
                ),
                (
                    "MM_SQLSETTINGS_ATRESTENCRYPTKEY",
                    secrets.at_rest_encrypt_key.expose(),
                ),
            ],
        )]),
    ));
    out.push(ExportFile::secret(
        "secret-turn.yaml",
        yaml::documents(&[secret_manifest(
            name,
            "turn",
            "Opaque",
            &[(
                "static-auth-secret",
                secrets.turn_static_auth_secret.expose(),
            )],
        )]),
    ));
    // coturn's configuration carries the secret inline, so it is a Secret too.
    let coturn_inputs = Inputs {
        lan: &options.media_addresses,
        ..*inputs
    };
    let conf = coturn::render(
        &coturn_inputs,
        coturn::SecretSource::Inline(secrets.turn_static_auth_secret),
    );
    out.push(ExportFile::secret(
        "secret-coturn.yaml",
        yaml::documents(&[secret_manifest(
            name,
            "coturn",
            "Opaque",
            &[("turnserver.conf", &conf)],
        )]),
    ));
    if let Tls::CityPki { chain_pem, key_pem } = tls {
        out.push(ExportFile::secret(
            "secret-tls.yaml",
            yaml::documents(&[secret_manifest(
                name,
                "tls",
                "kubernetes.io/tls",
                &[("tls.crt", chain_pem), ("tls.key", key_pem.expose())],
            )]),
        ));
    }
    if inputs.city.database.tls {
        let ca = ca_pem.context(
            "database.tls verifies PostgreSQL against the city CA, which is not in the state \
             directory yet; run `cityd pki ensure`",
        )?;
        out.push(ExportFile::plain(
            "ca.yaml",
            yaml::documents(&[json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(name, "ca"),
                "data": { "ca.pem": ca },
            })]),
        ));
    }
    out.push(ExportFile::plain(
        "mattermost.yaml",
        yaml::documents(&[mattermost_resource(inputs, secrets, tls, options)?]),
    ));
    out.push(ExportFile::plain(
        "coturn.yaml",
        yaml::documents(&[coturn_workload(inputs, options)]),
    ));
    out.push(ExportFile::plain(
        "rtcd.yaml",
        yaml::documents(&rtcd_manifests(inputs, options)),
    ));
    Ok(out)
}

/// Reads the vault (and the PKI when the ingress uses it), renders every manifest and writes them
/// into `dir` (compares only, with `dry_run`).
pub fn export(
    inputs: &Inputs,
    state: &StateDir,
    vault: &Vault,
    options: &Options,
    dir: &Path,
    dry_run: bool,
) -> anyhow::Result<Exported> {
    let get = |n| {
        vault
            .get(n)
            .context("the manifests need the vault (`cityd secrets ensure`)")
    };
    let db = get(SecretName::MattermostDbPassword)?;
    let at = get(SecretName::MattermostAtRestEncryptKey)?;
    let salt = get(SecretName::MattermostPublicLinkSalt)?;
    let turn = get(SecretName::TurnStaticAuthSecret)?;
    let secrets = Secrets {
        db_password: &db,
        at_rest_encrypt_key: &at,
        public_link_salt: &salt,
        turn_static_auth_secret: &turn,
    };
    let tls = match &options.tls {
        TlsSource::CertManager {
            issuer,
            cluster_issuer,
        } => Tls::CertManager {
            issuer: issuer.clone(),
            cluster_issuer: *cluster_issuer,
        },
        TlsSource::CityPki => {
            let dir = state.pki_dir();
            let read = |file: &str| {
                let path = dir.join(file);
                std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "cannot read {}: the ingress certificate comes from the city PKI; run \
                         `cityd pki ensure`, or give --cert-manager-issuer NAME",
                        path.display()
                    )
                })
            };
            Tls::CityPki {
                chain_pem: read(pki_files::SERVER_PEM)?,
                key_pem: Secret::new(read(pki_files::SERVER_KEY)?),
            }
        }
    };
    let ca = std::fs::read_to_string(state.ca_pem()).ok();
    let files = files(inputs, &secrets, &tls, ca.as_deref(), options)?;
    Exported::write(dir, &files, dry_run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DefaultCity;

    fn options() -> Options {
        Options {
            name: DEFAULT_NAME.into(),
            tls: TlsSource::CertManager {
                issuer: "city-ca".into(),
                cluster_issuer: true,
            },
            size: None,
            replicas: None,
            license_secret: None,
            ingress_class: None,
            file_store: FileStore::Local {
                size: "50Gi".into(),
            },
            rtcd_image: DEFAULT_RTCD_IMAGE.into(),
            rtcd_replicas: 1,
            ice_port: 8444,
            media_addresses: vec![IpAddr::from([192, 168, 1, 20])],
            coturn_replicas: None,
        }
    }

    fn vault() -> [Secret; 4] {
        [
            Secret::new("D".repeat(32)),
            Secret::new("A".repeat(32)),
            Secret::new("S".repeat(32)),
            Secret::new("t".repeat(64)),
        ]
    }

    #[test]
    fn every_key_of_the_city_env_file_has_a_decision() {
        let mut city = crate::city::City::default_city();
        city.mattermost.rtcd_url = Some("http://rtcd:8045".into());
        let lan = [IpAddr::from([192, 168, 1, 20])];
        let inputs = Inputs {
            city: &city,
            lan: &lan,
            origin: "t",
        };
        let [db, at, salt, turn] = vault();
        let text = mattermost_env::render(
            &inputs,
            &mattermost_env::MattermostSecrets {
                db_password: &db,
                at_rest_encrypt_key: &at,
                public_link_salt: &salt,
                turn_static_auth_secret: &turn,
            },
        )
        .unwrap();
        for entry in envfile::parse_docker(&text).unwrap() {
            assert!(
                carry(&entry.key, "https://h", &[], "http://r").is_some(),
                "{} is new in the env file: say in export/k8s.rs how the operator carries it",
                entry.key
            );
        }
    }

    #[test]
    fn the_resource_carries_secrets_by_reference_only() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        let [db, at, salt, turn] = vault();
        let secrets = Secrets {
            db_password: &db,
            at_rest_encrypt_key: &at,
            public_link_salt: &salt,
            turn_static_auth_secret: &turn,
        };
        let tls = Tls::CertManager {
            issuer: "city-ca".into(),
            cluster_issuer: true,
        };
        let files = files(&inputs, &secrets, &tls, None, &options()).unwrap();
        let names: Vec<_> = files.iter().map(|f| (f.name.as_str(), f.secret)).collect();
        assert_eq!(
            names,
            [
                ("secret-db.yaml", true),
                ("secret-mattermost.yaml", true),
                ("secret-turn.yaml", true),
                ("secret-coturn.yaml", true),
                ("mattermost.yaml", false),
                ("coturn.yaml", false),
                ("rtcd.yaml", false),
            ]
        );
        for f in files.iter().filter(|f| !f.secret) {
            for s in [&db, &at, &salt, &turn] {
                assert!(!f.text.contains(s.expose()), "{} holds a secret", f.name);
                assert!(
                    !f.text.contains(&b64(s.expose())),
                    "{} holds a secret",
                    f.name
                );
            }
        }
        let mm = &files[4].text;
        assert!(
            mm.contains("cert-manager.io/cluster-issuer: \"city-ca\""),
            "{mm}"
        );
        assert!(mm.contains("value: \"http://cityd-rtcd:8045\""), "{mm}");
        assert!(!mm.contains("MM_SQLSETTINGS_DATASOURCE"), "{mm}");
        assert!(mm.contains("image: \"mattermost/mattermost-enterprise-edition\""));
        assert!(mm.contains("version: \"11.8.5\""));
    }

    #[test]
    fn images_split_into_repository_and_version() {
        assert_eq!(
            split_image("mattermost/mattermost-enterprise-edition:11.8.5"),
            (
                "mattermost/mattermost-enterprise-edition".into(),
                "11.8.5".into()
            )
        );
        assert_eq!(
            split_image("registry.local:5000/mm@sha256:abcd"),
            ("registry.local:5000/mm".into(), "sha256:abcd".into())
        );
        assert_eq!(
            split_image("registry.local:5000/mm:11.8.5"),
            ("registry.local:5000/mm".into(), "11.8.5".into())
        );
    }
}
