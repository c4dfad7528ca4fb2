//! Read-only checks of a city's containers for `cityd doctor`: present, running, created from the
//! current spec, ports published exactly as specified (metrics never beyond loopback), coturn on
//! the host network. Touches nothing.

use std::collections::BTreeSet;

use bollard::models::ContainerInspectResponse;

use super::converge::Engine;
use super::spec::{ContainerSpec, LABEL_SPEC, Network};
use crate::doctor::{Finding, Severity};
use crate::render::container::METRICS_PORT;

/// `(container port/proto, host ip, host port)` as published, from an inspected container.
pub fn published(c: &ContainerInspectResponse) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let bindings = c
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.clone())
        .unwrap_or_default();
    for (key, list) in bindings {
        for b in list.unwrap_or_default() {
            out.insert((
                key.clone(),
                b.host_ip.unwrap_or_default(),
                b.host_port.unwrap_or_default(),
            ));
        }
    }
    out
}

fn wanted(spec: &ContainerSpec) -> BTreeSet<(String, String, String)> {
    spec.ports
        .iter()
        .map(|p| (p.key(), p.host_ip.to_string(), p.host_port.to_string()))
        .collect()
}

/// Findings about one inspected container against its desired spec.
pub fn check(spec: &ContainerSpec, current: &ContainerInspectResponse) -> Vec<Finding> {
    let name = spec.name.as_str();
    let mut out = Vec::new();
    let running = current
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false);
    if !running {
        out.push(Finding::new(
            Severity::Error,
            "container-not-running",
            name,
            format!("container {name} exists but is not running"),
            "run `cityd up` (it starts it), or read `docker logs` for why it stopped",
        ));
    }
    let label = current
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_SPEC).cloned());
    if label.as_deref() != Some(spec.digest().as_str()) {
        out.push(Finding::new(
            Severity::Warning,
            "container-spec-outdated",
            name,
            match label {
                Some(_) => format!("container {name} was created from an older spec"),
                None => {
                    format!("container {name} was not created by cityd (no {LABEL_SPEC} label)")
                }
            },
            "run `cityd up`: it recreates the container from the current spec",
        ));
    }
    let network_mode = current
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    if spec.network == Network::Host && network_mode != "host" {
        out.push(Finding::new(
            Severity::Error,
            "coturn-not-host-network",
            name,
            format!(
                "{name} runs on network {network_mode:?}, not the host network: relayed media would cross Docker's NAT"
            ),
            "run `cityd up`: coturn is created with network mode host",
        ));
    }
    let have = published(current);
    let want = wanted(spec);
    for (key, ip, port) in &have {
        let is_metrics =
            key == &format!("{METRICS_PORT}/tcp") && spec.role == super::spec::Role::Mattermost;
        let loopback = ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
        if is_metrics && !loopback {
            out.push(Finding::new(
                Severity::Error,
                "metrics-on-lan",
                name,
                format!(
                    "Mattermost metrics ({key}) are published on {}:{port}: unauthenticated metrics reachable beyond this host",
                    if ip.is_empty() { "every address" } else { ip }
                ),
                "run `cityd up`: metrics are published on 127.0.0.1 only",
            ));
        }
    }
    let extra: Vec<_> = have.difference(&want).collect();
    let missing: Vec<_> = want.difference(&have).collect();
    if !extra.is_empty() || !missing.is_empty() {
        let show = |v: &[&(String, String, String)]| {
            v.iter()
                .map(|(k, ip, p)| format!("{ip}:{p}->{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(Finding::new(
            Severity::Error,
            "ports-differ",
            name,
            format!(
                "{name} publishes ports other than specified: extra [{}], missing [{}]",
                show(&extra),
                show(&missing)
            ),
            "run `cityd up`: it recreates the container with exactly the specified ports",
        ));
    }
    out
}

/// Findings for all the city's containers. When none of them exists the city is not deployed on
/// this Docker host (NixOS, or not up yet): that is not a problem, so there are no findings.
pub async fn audit(engine: &Engine, specs: &[&ContainerSpec]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for spec in specs {
        match engine.inspect(&spec.name).await {
            Ok(Some(c)) => found.push((spec, c)),
            Ok(None) => missing.push(spec.name.clone()),
            Err(e) => {
                return vec![Finding::new(
                    Severity::Warning,
                    "docker-inspect-failed",
                    &spec.name,
                    crate::exit::causes_text(&e),
                    "check the Docker engine (docker info)",
                )];
            }
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Finding> = missing
        .iter()
        .map(|name| {
            Finding::new(
                Severity::Error,
                "container-missing",
                name,
                format!("container {name} is missing while the rest of the city runs"),
                "run `cityd up`",
            )
        })
        .collect();
    for (spec, current) in found {
        out.extend(check(spec, &current));
    }
    out
}

/// Doctor's entry point: the desired specs from the rendered texts, compared with what runs.
/// No Docker engine, or no container of this city, means no findings.
pub async fn city_findings(sources: &super::desired::Sources<'_>) -> Vec<Finding> {
    let Ok(engine) = super::connect().await else {
        return Vec::new();
    };
    let names = super::spec::Names::new(sources.city);
    let mut any = false;
    for name in names.containers() {
        any |= matches!(engine.inspect(&name).await, Ok(Some(_)));
    }
    if !any {
        return Vec::new();
    }
    let ids = (
        engine
            .image_id(&sources.city.docker.coturn_image)
            .await
            .ok()
            .flatten(),
        engine
            .image_id(&sources.city.mattermost.image)
            .await
            .ok()
            .flatten(),
    );
    let sources = super::desired::Sources {
        coturn_image_id: ids.0,
        mattermost_image_id: ids.1,
        ..sources.clone()
    };
    let desired = match super::desired::desired(&sources) {
        Ok(d) => d,
        Err(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "container-spec-unknown",
                "docker",
                format!(
                    "cannot compute the containers' specs: {}",
                    crate::exit::causes_text(&e)
                ),
                "run `cityd up`",
            )];
        }
    };
    audit(&engine, &[&desired.coturn, &desired.mattermost]).await
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use bollard::models::{ContainerConfig, ContainerState, HostConfig, PortBinding};

    use super::*;
    use crate::city::City;
    use crate::docker::spec::{self, Env, HostPaths, Names};
    use crate::state::StateDir;

    fn specs() -> (ContainerSpec, ContainerSpec) {
        let city = City::default_city();
        let names = Names::new(&city);
        let paths = HostPaths::new(&StateDir::at("/var/lib/cityd".into()).unwrap());
        let lan = ["192.168.1.20".parse().unwrap()];
        (
            spec::coturn(&city, &names, &paths, BTreeMap::new()),
            spec::mattermost(&city, &lan, &names, &paths, Env::default(), BTreeMap::new()),
        )
    }

    /// What the engine would report for a container created from `spec`, then edited.
    fn inspected(
        spec: &ContainerSpec,
        edit: impl FnOnce(&mut HostConfig),
    ) -> ContainerInspectResponse {
        let body = spec.create_body("");
        let mut host = body.host_config.unwrap();
        edit(&mut host);
        ContainerInspectResponse {
            config: Some(ContainerConfig {
                labels: body.labels,
                ..Default::default()
            }),
            state: Some(ContainerState {
                running: Some(true),
                ..Default::default()
            }),
            host_config: Some(host),
            ..Default::default()
        }
    }

    fn codes(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_container_made_from_its_spec_has_no_findings() {
        let (coturn, mm) = specs();
        assert!(check(&coturn, &inspected(&coturn, |_| {})).is_empty());
        assert!(check(&mm, &inspected(&mm, |_| {})).is_empty());
    }

    #[test]
    fn metrics_on_every_address_are_an_error_and_a_port_difference() {
        let (_, mm) = specs();
        let c = inspected(&mm, |h| {
            let mut ports = h.port_bindings.clone().unwrap();
            ports.insert(
                "8067/tcp".into(),
                Some(vec![PortBinding {
                    host_ip: Some("0.0.0.0".into()),
                    host_port: Some("8067".into()),
                }]),
            );
            h.port_bindings = Some(ports);
        });
        let got = codes(&check(&mm, &c));
        assert!(got.contains(&"metrics-on-lan"), "{got:?}");
        assert!(got.contains(&"ports-differ"), "{got:?}");
    }

    #[test]
    fn coturn_on_a_bridge_and_a_stale_label_are_reported() {
        let (coturn, _) = specs();
        let mut c = inspected(&coturn, |h| {
            h.network_mode = Some("bridge".into());
            h.port_bindings = Some(HashMap::new());
        });
        c.config.as_mut().unwrap().labels = Some(HashMap::from([(
            spec::LABEL_SPEC.to_string(),
            "0".repeat(64),
        )]));
        c.state.as_mut().unwrap().running = Some(false);
        let got = codes(&check(&coturn, &c));
        for code in [
            "coturn-not-host-network",
            "container-spec-outdated",
            "container-not-running",
        ] {
            assert!(got.contains(&code), "{code} missing from {got:?}");
        }
    }
}
