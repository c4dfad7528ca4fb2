//! `cityd export k8s | rtcd | turn-fleet`: files written 0600 when they hold secrets, byte-identical
//! re-runs, no secret on stdout or in logs, every manifest checked against its kind's schema
//! (`kinds`, written from the Kubernetes API reference) with `schema`'s validator; the operator's
//! CRD and rtcd's documented keys in `conformance`; the TURN fleet for real in `fleet`.

mod conformance;
mod fleet;
mod kinds;
mod schema;
mod up;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use serde_json::Value;

use crate::common::{Scratch, described, run_ok, stderr_of_exit};

/// A scratch city (LAN 10.99.0.1) with its vault and PKI, and an output directory.
pub struct ExportLab {
    pub scratch: Scratch,
    pub city: PathBuf,
}

impl ExportLab {
    pub fn new() -> Self {
        Self::with_city(&crate::turn_harness::city_toml(
            "10.99.0.1",
            3478,
            49152,
            65535,
        ))
    }

    pub fn with_city(toml: &str) -> Self {
        let scratch = Scratch::new();
        let city = scratch.write("city.toml", toml);
        let lab = Self { scratch, city };
        run_ok(&mut lab.cityd(&["secrets", "ensure"]));
        run_ok(&mut lab.cityd(&["pki", "ensure"]));
        lab
    }

    pub fn cityd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = self.scratch.cityd();
        c.arg("--city").arg(&self.city).args(args);
        c
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// Runs an export that must succeed; returns its output.
    pub fn export(&self, args: &[&str]) -> Output {
        let out = self.cityd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}:\n{}", described(&out));
        out
    }

    /// Every value in the vault, and its base64 form (what a Secret's `data` would hold).
    pub fn vault_values(&self) -> Vec<(String, String)> {
        let dir = self.scratch.state().join("secrets");
        let mut values = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            let value = std::fs::read_to_string(&path)
                .unwrap()
                .trim_end()
                .to_string();
            if value.len() >= 16 {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&value);
                values.push((value, b64));
            }
        }
        assert!(values.len() >= 4, "the vault holds the generated secrets");
        values
    }
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every document of every YAML file in `dir`, with the file it came from.
pub fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for (name, bytes) in snapshot(dir) {
        if name.ends_with(".yaml") {
            for doc in schema::yaml_documents(&String::from_utf8(bytes).unwrap()) {
                docs.push((name.clone(), doc));
            }
        }
    }
    docs
}

fn the_secret_values_appear_nowhere(lab: &ExportLab, texts: &[(&str, &str)]) {
    for (value, b64) in lab.vault_values() {
        for (what, text) in texts {
            assert!(!text.contains(&value), "a vault value appears in {what}");
            assert!(
                !text.contains(&b64),
                "a vault value (base64) appears in {what}"
            );
        }
    }
}

#[test]
fn k8s_export_writes_secrets_0600_says_so_and_a_rerun_is_byte_identical() {
    let lab = ExportLab::new();
    let dir = lab.out("k8s");
    let d = dir.to_str().unwrap();

    let planned = lab.export(&["export", "k8s", "--out", d, "--dry-run"]);
    let text = String::from_utf8(planned.stdout).unwrap();
    assert!(!dir.exists(), "a dry run writes nothing");
    for file in [
        "secret-db.yaml",
        "secret-tls.yaml",
        "mattermost.yaml",
        "coturn.yaml",
        "rtcd.yaml",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("would create") && l.contains(file)),
            "{file}:\n{text}"
        );
    }

    let first = lab.export(&["-vv", "export", "k8s", "--out", d]);
    let files = snapshot(&dir);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "coturn.yaml",
            "mattermost.yaml",
            "rtcd.yaml",
            "secret-coturn.yaml",
            "secret-db.yaml",
            "secret-mattermost.yaml",
            "secret-tls.yaml",
            "secret-turn.yaml",
        ]
    );
    assert_eq!(mode(&dir) & 0o077, 0, "the directory holds secrets");
    for name in files.keys() {
        let want = if name.starts_with("secret-") {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode(&dir.join(name)), want, "{name}");
    }
    let stdout = String::from_utf8(first.stdout.clone()).unwrap();
    let stderr = String::from_utf8(first.stderr.clone()).unwrap();
    assert!(
        stdout.contains("secret-db.yaml  (holds secrets, 0600)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: these files hold secrets"),
        "{stderr}"
    );
    assert!(stderr.contains("kubeseal"), "{stderr}");
    let mut texts = vec![
        ("stdout", stdout.as_str()),
        ("stderr and logs", stderr.as_str()),
    ];
    let plain: Vec<(String, String)> = files
        .iter()
        .filter(|(n, _)| !n.starts_with("secret-"))
        .map(|(n, b)| (n.clone(), String::from_utf8(b.clone()).unwrap()))
        .collect();
    texts.extend(plain.iter().map(|(n, t)| (n.as_str(), t.as_str())));
    the_secret_values_appear_nowhere(&lab, &texts);

    // The secret files do carry them: the database password inside the connection string.
    let db = String::from_utf8(files["secret-db.yaml"].clone()).unwrap();
    let doc = &schema::yaml_documents(&db)[0];
    let dsn = base64::engine::general_purpose::STANDARD
        .decode(doc["data"]["DB_CONNECTION_STRING"].as_str().unwrap())
        .unwrap();
    let password =
        std::fs::read_to_string(lab.scratch.state().join("secrets/mattermost-db-password"))
            .unwrap();
    assert!(String::from_utf8(dsn).unwrap().starts_with(&format!(
        "postgres://mattermost:{}@postgres:5432/mattermost?",
        password.trim_end()
    )));

    let again = lab.export(&["export", "k8s", "--out", d]);
    assert_eq!(
        snapshot(&dir),
        files,
        "a re-run on an unchanged city rewrites nothing"
    );
    let again = String::from_utf8(again.stdout).unwrap();
    assert!(
        again.lines().filter(|l| l.starts_with("unchanged")).count() == 8,
        "{again}"
    );
    assert!(again.contains("no changes"), "{again}");
}

#[test]
fn k8s_json_report_names_files_and_secrets_and_the_tls_secret_is_the_city_certificate() {
    let lab = ExportLab::new();
    let dir = lab.out("k8s");
    let out = lab.export(&["export", "k8s", "--out", dir.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 8);
    for f in files {
        let path = f["path"].as_str().unwrap();
        assert_eq!(f["outcome"], "created");
        assert_eq!(f["secret"], path.contains("/secret-"), "{path}");
    }
    assert!(report["warning"].as_str().unwrap().contains("seal"));
    let docs = documents(&dir);
    let tls = docs
        .iter()
        .find(|(_, d)| d["type"] == "kubernetes.io/tls")
        .map(|(_, d)| d)
        .unwrap();
    let decode = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(tls["data"][k].as_str().unwrap())
            .unwrap()
    };
    let pki = lab.scratch.state().join("pki");
    assert_eq!(
        decode("tls.crt"),
        std::fs::read(pki.join("server.pem")).unwrap()
    );
    assert_eq!(
        decode("tls.key"),
        std::fs::read(pki.join("server.key")).unwrap()
    );
    let mm = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Mattermost")
        .unwrap();
    assert_eq!(mm.1["spec"]["ingress"]["host"], "mattermost.cicd.local");
    assert_eq!(mm.1["spec"]["ingress"]["tlsSecret"], "cityd-tls");
    assert_eq!(mm.1["spec"]["replicas"], 1);
}

/// Checks beyond one document's schema: selectors select their pods, every reference to a
/// Secret or ConfigMap key names one the export writes, the Service reaches the rtcd pods.
fn check_references(docs: &[(String, Value)]) {
    let mut keys: Vec<(String, String)> = Vec::new();
    for (_, d) in docs {
        if matches!(d["kind"].as_str(), Some("Secret" | "ConfigMap")) {
            for k in d["data"].as_object().unwrap().keys() {
                keys.push((
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                    k.clone(),
                ));
            }
        }
    }
    let mut workload_labels = Vec::new();
    for (file, d) in docs {
        if matches!(d["kind"].as_str(), Some("Deployment" | "DaemonSet")) {
            let selector = d["spec"]["selector"]["matchLabels"].as_object().unwrap();
            let labels = d["spec"]["template"]["metadata"]["labels"]
                .as_object()
                .unwrap();
            for (k, v) in selector {
                assert_eq!(
                    labels.get(k),
                    Some(v),
                    "{file}: the selector misses its pods"
                );
            }
            workload_labels.push(labels.clone());
        }
        let text = d.to_string();
        for marker in ["secretKeyRef", "configMapKeyRef"] {
            let mut rest = text.as_str();
            while let Some(i) = rest.find(marker) {
                rest = &rest[i + marker.len()..];
                let end = rest.find('}').unwrap();
                let r: Value = serde_json::from_str(&format!("{}}}", &rest[2..end])).unwrap();
                let pair = (
                    r["name"].as_str().unwrap().to_string(),
                    r["key"].as_str().unwrap().to_string(),
                );
                assert!(keys.contains(&pair), "{file}: {pair:?} is not written");
            }
        }
        for volume in d
            .pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(secret) = volume.pointer("/secret/secretName").and_then(Value::as_str) {
                assert!(
                    keys.iter().any(|(n, _)| n == secret),
                    "{file}: volume of {secret}"
                );
            }
        }
    }
    for (file, d) in docs.iter().filter(|(_, d)| d["kind"] == "Service") {
        let selector = d["spec"]["selector"].as_object().unwrap();
        assert!(
            workload_labels
                .iter()
                .any(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v))),
            "{file}: the Service selects no pods"
        );
    }
}

#[test]
fn every_manifest_validates_against_its_kinds_schema() {
    let tls_db = crate::turn_harness::city_toml("10.99.0.1", 3478, 49152, 65535)
        .replace("tls = false", "tls = true");
    for (city, extra) in [
        (None, vec![]),
        (
            Some(tls_db),
            vec![
                "--cert-manager-issuer",
                "lab-ca",
                "--namespaced-issuer",
                "--coturn-replicas",
                "2",
                "--s3-url",
                "minio.lab:9000",
                "--s3-bucket",
                "mm",
                "--s3-secret",
                "minio-keys",
                "--license-secret",
                "mm-licence",
                "--sizing",
                "3000",
                "--media-address",
                "10.0.0.5",
            ],
        ),
    ] {
        let lab = match &city {
            None => ExportLab::new(),
            Some(toml) => ExportLab::with_city(toml),
        };
        let dir = lab.out("k8s");
        let mut args = vec!["export", "k8s", "--out", dir.to_str().unwrap()];
        args.extend(extra.iter().copied());
        lab.export(&args);
        let docs = documents(&dir);
        let mut kinds: Vec<&str> = Vec::new();
        for (file, doc) in &docs {
            let kind = doc["kind"].as_str().unwrap();
            kinds.push(kind);
            if kind == "Mattermost" {
                continue; // the operator's CRD checks it (conformance)
            }
            let schema =
                kinds::schema(kind).unwrap_or_else(|| panic!("{file}: unexpected kind {kind}"));
            let errors = schema::validate(&schema, doc);
            assert!(errors.is_empty(), "{file} ({kind}):\n{}", errors.join("\n"));
        }
        check_references(&docs);
        kinds.sort();
        if city.is_some() {
            assert!(
                kinds.contains(&"ConfigMap"),
                "database.tls needs the CA: {kinds:?}"
            );
            assert!(
                !docs.iter().any(|(f, _)| f == "secret-tls.yaml"),
                "cert-manager makes it"
            );
            let coturn = docs.iter().find(|(f, _)| f == "coturn.yaml").unwrap();
            assert_eq!(coturn.1["kind"], "Deployment");
            let conf = docs
                .iter()
                .find(|(f, _)| f == "secret-coturn.yaml")
                .unwrap();
            let text = base64::engine::general_purpose::STANDARD
                .decode(conf.1["data"]["turnserver.conf"].as_str().unwrap())
                .unwrap();
            let text = String::from_utf8(text).unwrap();
            assert!(
                text.lines().any(|l| l == "allowed-peer-ip=10.0.0.5"),
                "{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l == "denied-peer-ip=10.0.0.0-10.255.255.255")
            );
        } else {
            assert_eq!(
                kinds,
                [
                    "DaemonSet",
                    "Deployment",
                    "Mattermost",
                    "Secret",
                    "Secret",
                    "Secret",
                    "Secret",
                    "Secret",
                    "Service"
                ]
            );
        }
    }
}

#[test]
fn a_tampered_manifest_fails_its_kinds_schema() {
    let lab = ExportLab::new();
    let dir = lab.out("k8s");
    lab.export(&["export", "k8s", "--out", dir.to_str().unwrap()]);
    let docs = documents(&dir);
    let (_, rtcd) = docs
        .iter()
        .find(|(f, d)| f == "rtcd.yaml" && d["kind"] == "Deployment")
        .unwrap();
    let schema = kinds::schema("Deployment").unwrap();
    let mut bad = rtcd.clone();
    bad["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] = "RTCD-API".into();
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000.into();
    bad["spec"]["template"]["spec"]["hostNetwrok"] = true.into();
    let errors = schema::validate(&schema, &bad).join("\n");
    for needle in [
        "env[0].name",
        "containerPort: 70000 is above 65535",
        "hostNetwrok: unknown field",
    ] {
        assert!(errors.contains(needle), "{needle}:\n{errors}");
    }
}

#[test]
fn sizing_says_it_is_an_estimate_and_sets_the_preset_and_rtcd_count() {
    let lab = ExportLab::new();
    let dir = lab.out("k8s");
    let d = dir.to_str().unwrap();
    let out = lab.export(&[
        "export",
        "k8s",
        "--out",
        d,
        "--sizing",
        "3000",
        "--calls",
        "200",
        "--participants",
        "60",
        "--unmuted",
        "3",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("ESTIMATE for 3000 users"), "{stdout}");
    assert!(
        stdout.contains("operator size preset: 5000users"),
        "{stdout}"
    );
    assert!(
        stdout.contains("exceed the integrated SFU's recommended 50"),
        "{stdout}"
    );
    assert!(
        stdout.contains("source: mattermost/mattermost-operator"),
        "{stdout}"
    );
    let json = lab.export(&[
        "export",
        "k8s",
        "--out",
        d,
        "--sizing",
        "3000",
        "--calls",
        "200",
        "--participants",
        "60",
        "--unmuted",
        "3",
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let sizing = &report["sizing"];
    assert_eq!(sizing["is_estimate"], true);
    assert_eq!(sizing["audio_streams"], 200 * 60 * 3);
    let instances = sizing["rtcd_instances"].as_u64().unwrap();
    assert!(instances >= 2, "{sizing:#}");
    let docs = documents(&dir);
    let mm = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Mattermost")
        .unwrap();
    assert_eq!(mm.1["spec"]["size"], "5000users");
    let rtcd = docs
        .iter()
        .find(|(f, d)| f == "rtcd.yaml" && d["kind"] == "Deployment")
        .unwrap();
    assert_eq!(rtcd.1["spec"]["replicas"].as_u64(), Some(instances));
}

#[test]
fn rtcd_export_writes_the_env_file_0600_and_the_calls_setting() {
    let lab = ExportLab::new();
    let dir = lab.out("rtcd");
    let out = lab.export(&[
        "export",
        "rtcd",
        "--out",
        dir.to_str().unwrap(),
        "--ice-port",
        "8445",
    ]);
    let env = std::fs::read_to_string(dir.join("rtcd.env")).unwrap();
    assert_eq!(mode(&dir.join("rtcd.env")), 0o600);
    assert_eq!(mode(&dir.join("mattermost-calls.env")), 0o644);
    assert!(
        env.lines()
            .any(|l| l == "RTCD_RTC_ICEHOSTOVERRIDE=10.99.0.1"),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "RTCD_RTC_ICEPORTUDP=8445"),
        "{env}"
    );
    let secret =
        std::fs::read_to_string(lab.scratch.state().join("secrets/turn-static-auth-secret"))
            .unwrap();
    assert!(
        env.lines()
            .any(|l| l == format!("RTCD_RTC_TURNCONFIG_STATICAUTHSECRET={}", secret.trim_end()))
    );
    let calls = std::fs::read_to_string(dir.join("mattermost-calls.env")).unwrap();
    assert!(
        calls
            .lines()
            .any(|l| l == "MM_CALLS_RTCD_SERVICE_URL=http://10.99.0.1:8045"),
        "{calls}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    the_secret_values_appear_nowhere(&lab, &[("stdout", &stdout), ("stderr", &stderr)]);
    assert!(
        stdout.contains("rtcd_url = \"http://10.99.0.1:8045\""),
        "{stdout}"
    );
    let files = snapshot(&dir);
    let again = lab.export(&[
        "export",
        "rtcd",
        "--out",
        dir.to_str().unwrap(),
        "--ice-port",
        "8445",
    ]);
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("no changes")
    );
    assert_eq!(snapshot(&dir), files);

    // The city's own rtcd_url reaches Mattermost's env file through `cityd render`.
    let with_rtcd = format!(
        "{}\n",
        std::fs::read_to_string(&lab.city).unwrap().replace(
            "local_socket_dir = \"/mattermost/run\"",
            "local_socket_dir = \"/mattermost/run\"\nrtcd_url = \"http://10.99.0.1:8045\""
        )
    );
    std::fs::write(&lab.city, with_rtcd).unwrap();
    let rendered = run_ok(&mut lab.cityd(&["render", "mattermost-env", "--out", "-"]));
    assert!(
        rendered
            .lines()
            .any(|l| l == "MM_CALLS_RTCD_SERVICE_URL=http://10.99.0.1:8045")
    );
}

#[test]
fn bad_export_input_is_exit_2_and_names_the_flag() {
    let lab = ExportLab::new();
    let dir = lab.out("x");
    let d = dir.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["export", "turn-fleet", "--out", d, "--servers", "0"],
            "--servers",
        ),
        (vec!["export", "turn-fleet", "--out", d], "--servers"),
        (
            vec!["export", "k8s", "--out", d, "--name", "Bad_Name"],
            "--name",
        ),
        (
            vec!["export", "k8s", "--out", d, "--size", "7users"],
            "--size",
        ),
        (
            vec!["export", "k8s", "--out", d, "--sizing", "0"],
            "--sizing",
        ),
    ] {
        let out = lab.cityd(&args).output().unwrap();
        let stderr = stderr_of_exit(&out, 2);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!dir.exists(), "{args:?} wrote something");
    }
}
