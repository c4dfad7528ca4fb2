//! The export against upstream's own definitions, kept in the shared reference beside the
//! repository (`k8s/`; skipped by name when it is absent): the `Mattermost` resource against the
//! operator's CRD (`openAPIV3Schema` of v1beta1), and every `RTCD_*` key against rtcd's
//! `docs/env_config.md`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{ExportLab, documents, schema};
use crate::common::conformance_reference;

/// The operator's schema of `installation.mattermost.com/v1beta1` `Mattermost`.
fn crd_schema() -> Value {
    let path = conformance_reference("k8s/installation.mattermost.com_mattermosts.crd.yaml");
    let crd = schema::yaml_documents(&std::fs::read_to_string(path).unwrap())
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(crd["spec"]["group"], "installation.mattermost.com");
    assert_eq!(crd["spec"]["names"]["kind"], "Mattermost");
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1beta1")
        .expect("the CRD serves v1beta1")["schema"]["openAPIV3Schema"]
        .clone()
}

fn mattermost_resources(lab: &ExportLab, extra: &[&str]) -> Vec<Value> {
    let dir = lab.out(&format!("k8s-{}", extra.len()));
    let mut args = vec!["export", "k8s", "--out", dir.to_str().unwrap()];
    args.extend(extra);
    lab.export(&args);
    documents(&dir)
        .into_iter()
        .filter(|(_, d)| d["kind"] == "Mattermost")
        .map(|(_, d)| d)
        .collect()
}

#[test]
fn the_mattermost_resource_validates_against_the_operators_crd() {
    let schema = crd_schema();
    // The validator accepts upstream's own full example, so a failure below is ours.
    let example = conformance_reference("k8s/operator-example-mattermost_full.yaml");
    let upstream = schema::yaml_documents(&std::fs::read_to_string(example).unwrap());
    let upstream = upstream.iter().find(|d| d["kind"] == "Mattermost").unwrap();
    let errors = schema::validate(&schema, upstream);
    assert!(
        errors.is_empty(),
        "upstream example:\n{}",
        errors.join("\n")
    );

    let tls_db = crate::turn_harness::city_toml("10.99.0.1", 3478, 49152, 65535)
        .replace("tls = false", "tls = true");
    let plain = ExportLab::new();
    let tls = ExportLab::with_city(&tls_db);
    let mut resources = mattermost_resources(&plain, &[]);
    resources.extend(mattermost_resources(
        &tls,
        &[
            "--cert-manager-issuer",
            "lab-ca",
            "--s3-url",
            "minio.lab:9000",
            "--s3-bucket",
            "mm",
            "--s3-secret",
            "minio-keys",
            "--license-secret",
            "mm-licence",
            "--sizing",
            "12000",
            "--replicas",
            "3",
            "--ingress-class",
            "nginx",
        ],
    ));
    assert_eq!(resources.len(), 2);
    for resource in &resources {
        assert_eq!(
            resource["apiVersion"],
            "installation.mattermost.com/v1beta1"
        );
        let errors = schema::validate(&schema, resource);
        assert!(errors.is_empty(), "{resource:#}\n{}", errors.join("\n"));
    }
    let rich = &resources[1]["spec"];
    assert_eq!(rich["size"], "25000users");
    assert_eq!(rich["replicas"], 3);
    assert_eq!(rich["volumeMounts"][0]["mountPath"], "/mattermost/certs");

    // And the schema check can fail: a misspelt field, a wrong type, a missing required one.
    let mut bad = resources[0].clone();
    bad["spec"]["replicas"] = "two".into();
    bad["spec"]["ingress"]
        .as_object_mut()
        .unwrap()
        .remove("enabled");
    bad["spec"]["fileStore"]["locl"] = serde_json::json!({});
    let errors = schema::validate(&schema, &bad).join("\n");
    for needle in [
        "spec.replicas: must be integer",
        "required field enabled",
        "fileStore.locl: unknown field",
    ] {
        assert!(errors.contains(needle), "{needle}:\n{errors}");
    }
}

/// Keys rtcd documents as environment overrides.
fn documented_rtcd_keys() -> BTreeSet<String> {
    let path = conformance_reference("k8s/rtcd-env_config.md");
    let keys: BTreeSet<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("RTCD_"))
        .map(str::to_string)
        .collect();
    assert!(keys.len() > 20, "{keys:?}");
    keys
}

#[test]
fn every_rtcd_key_written_is_one_rtcd_documents() {
    let documented = documented_rtcd_keys();
    let lab = ExportLab::new();
    let rtcd_dir = lab.out("rtcd");
    lab.export(&["export", "rtcd", "--out", rtcd_dir.to_str().unwrap()]);
    let env = std::fs::read_to_string(rtcd_dir.join("rtcd.env")).unwrap();
    let mut written: Vec<String> = env
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    assert!(written.len() >= 10, "{env}");

    let k8s_dir = lab.out("k8s");
    lab.export(&["export", "k8s", "--out", k8s_dir.to_str().unwrap()]);
    let mut from_k8s = 0;
    for (_, doc) in documents(&k8s_dir) {
        for container in doc
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for var in container["env"].as_array().into_iter().flatten() {
                let name = var["name"].as_str().unwrap().to_string();
                if name.starts_with("RTCD_") {
                    from_k8s += 1;
                    written.push(name);
                }
            }
        }
    }
    assert!(from_k8s >= 10);
    for key in &written {
        assert!(
            documented.contains(key),
            "{key} is not in rtcd's env_config.md"
        );
    }
}
