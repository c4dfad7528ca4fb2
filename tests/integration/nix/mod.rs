//! The flake and the NixOS module, as far as this machine can prove them without nixpkgs: every
//! `.nix` file parses, the module's logic (`nixos/lib.nix`, builtins only) evaluates with Debian's
//! `nix-instantiate` to the specified values, and what it computes is checked against the real
//! `cityd` binary (config check, coturn rendering, vault and render paths).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Scratch, cityd, require_tool, run_ok};

// every cityd command line in the module, the VM tests and the docs, against the real CLI
mod cli;

const LAN: [&str; 2] = ["192.168.1.20", "2001:db8::20"];

/// Names the NixOS test driver defines for a test script, plus the machines our tests declare.
const DRIVER_GLOBALS: &str = "start_all,subtest,t,driver,machines,join_all,retry,\
    serial_stdout_off,serial_stdout_on,polling_condition,create_machine,run_tests,vlans,log,\
    server,phone,router";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `nix-instantiate` run from the repository root, without the build-users warning Debian's
/// default configuration prints when the `nixbld` group does not exist.
fn nix_instantiate() -> Command {
    let mut c = Command::new(require_tool("nix-instantiate", "nix-bin"));
    c.current_dir(repo())
        .env("NIX_CONFIG", "build-users-group =");
    c
}

/// Evaluates a Nix expression that must fail, and returns Nix's error output.
fn eval_error(expr: &str) -> String {
    let out = nix_instantiate()
        .args(["--eval", "--strict", "--expr"])
        .arg(expr)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{expr} evaluated but must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Evaluates a Nix expression strictly and returns it as JSON.
fn eval(expr: &str) -> Value {
    let out = run_ok(
        nix_instantiate()
            .args(["--eval", "--strict", "--json", "--expr"])
            .arg(expr),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("nix printed no JSON ({e}): {out}"))
}

/// `f s` where `s` is the module's configuration (`config.services.cityd`): its defaults with the
/// given LAN addresses, an optional Nix attrset merged over its `settings` (the city, e.g.
/// `{ mattermost = d.mattermost // { port = 9065; }; }`, with `d` the default settings) and one
/// merged over the whole (e.g. `{ relay.enable = true; }`).
fn eval_module(addresses: &[&str], settings: &str, module: &str, f: &str) -> Value {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    eval(&format!(
        "let l = import ./nixos/lib.nix; d = l.defaults.settings; \
             s = l.defaults // {{ settings = d // {{ lan = {{ addresses = [ {} ]; allow_test_ranges = true; }}; }} // ({settings}); }} // ({module}); \
         in {f}",
        list.join(" ")
    ))
}

/// [`eval_module`] with only settings overridden.
fn eval_with(addresses: &[&str], settings: &str, f: &str) -> Value {
    eval_module(addresses, settings, "{ }", f)
}

/// The city file the module writes for the default settings, as the exact bytes Nix produces.
fn module_city_json(scratch: &Scratch, overrides: &str) -> PathBuf {
    let text = eval_with(&LAN, overrides, "l.cityJSON s");
    scratch.write(
        "city.json",
        text.as_str().expect("cityJSON evaluates to a string"),
    )
}

/// `cityd config check FILE` must accept the module's city file.
fn assert_config_check_accepts(file: &Path) {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_cityd"))
            .args(["config", "check"])
            .arg(file),
    );
}

/// What cityd understood: `cityd --city FILE config show --json`.
fn config_show(file: &Path) -> Value {
    let shown = run_ok(
        Command::new(env!("CARGO_BIN_EXE_cityd"))
            .arg("--city")
            .arg(file)
            .args(["config", "show", "--json"]),
    );
    serde_json::from_str(&shown).unwrap()
}

/// A JSON array of strings (command lines, names) as owned strings.
fn strings(array: &Value) -> Vec<String> {
    array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Every VM test's Python script, rendered by `vm-tests/render-scripts.nix`: name -> script.
fn vm_test_scripts() -> serde_json::Map<String, Value> {
    let scripts = run_ok(nix_instantiate().args([
        "--eval",
        "--strict",
        "--json",
        "vm-tests/render-scripts.nix",
    ]));
    match serde_json::from_str(&scripts).unwrap() {
        Value::Object(map) => map,
        other => panic!("render-scripts.nix evaluates to an attrset of scripts, not {other}"),
    }
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the repository") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    for required in [
        "flake.nix",
        "nixos/module.nix",
        "nixos/lib.nix",
        "vm-tests/default.nix",
        "vm-tests/appliance.nix",
        "vm-tests/turn.nix",
        "vm-tests/webhook.nix",
        "vm-tests/turn-nat.nix",
        "vm-tests/switch.nix",
        "vm-tests/turn-independent.nix",
        "vm-tests/hardening.nix",
        "nixos/example.nix",
        "nixos/tests/stub-eval.nix",
    ] {
        assert!(names.contains(required), "{required} is missing: {names:?}");
    }
    for file in &files {
        let out = nix_instantiate().arg("--parse").arg(file).output().unwrap();
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_module_city_file_passes_cityd_config_check() {
    let s = Scratch::new();
    let file = module_city_json(&s, "{ }");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with('{'), "the module writes JSON: {text}");
    let city: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(city["lan"]["addresses"], json!(LAN));
    // LAN holds a documentation address, so these tests set settings.lan.allow_test_ranges.
    assert_eq!(city["lan"]["allow_test_ranges"], true);
    assert_eq!(city["mattermost"]["metrics"], "127.0.0.1:8067");
    assert_eq!(city["database"]["host"], "192.168.1.20");
    assert_eq!(city["database"]["tls"], true);
    let names: Vec<&str> = city["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["builds", "code-reviews", "alerts", "town-square"]);

    assert_config_check_accepts(&file);
    // What cityd understood is what the module meant.
    let shown = config_show(&file);
    assert_eq!(shown["derived"]["turn_realm"], "mattermost.cicd.local");
    assert_eq!(
        shown["derived"]["site_url"],
        "https://mattermost.cicd.local:8065"
    );
}

#[test]
fn a_bad_option_value_fails_the_build_time_check() {
    let s = Scratch::new();
    let file = module_city_json(
        &s,
        "{ mattermost = d.mattermost // { calls_port = 8443; }; }",
    );
    let out = cityd()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an invalid city must exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mattermost.calls_port"), "{err}");

    // An option the city does not know is refused too (deny_unknown_fields).
    let file = module_city_json(&s, "{ integrations = { colour = \"blue\"; }; }");
    let out = cityd()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown city key must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));
}

/// Every setting reaches its city field with the value set (the settings are the city, RFC 42; a
/// null is an absent field): the file is accepted by `cityd config check` and `cityd config show`
/// reads back exactly what the settings said.
#[test]
fn every_module_setting_reaches_its_city_field() {
    let s = Scratch::new();
    let file = module_city_json(
        &s,
        r#"{
          domain = "lab.example";
          mattermost = d.mattermost // {
            host = "chat.lab.example";
            port = 9065;
            calls_port = 9444;
            metrics = "127.0.0.1:9067";
            allow_cors_from = [ "https://ops.lab.example" ];
            local_socket_dir = "/mattermost/sock";
          };
          turn = {
            port = 3479;
            relay_min = 50000;
            relay_max = 50100;
            realm = "turn.lab.example";
            credential_ttl_minutes = 60;
          };
          team = { name = "ops"; display_name = "Ops"; };
          channels = [
            { name = "deploys"; display_name = "Deploys"; purpose = "Releases"; }
            { name = "town-square"; display_name = "Town Square"; purpose = ""; }
          ];
          bots = [
            { name = "deploy-bot"; display_name = "Deploy"; description = "Posts releases"; channel = "deploys"; }
            { name = "quiet-bot"; display_name = "Quiet"; description = ""; channel = null; }
          ];
          webhooks = [
            { channel = "deploys"; bot = "deploy-bot"; display_name = "Deploys"; description = "Release notes"; }
          ];
          plugins.jenkins = {
            source = "https://example.invalid/jenkins-1.1.0.tar.gz";
            sri = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
            version = "1.1.0";
            jenkins_url = "https://jenkins.lab.example:8080";
          };
          integrations = {
            sonarqube.url = "http://sonar.lab.example:9000";
            jenkins.channel = "deploys";
            gitlab.channel = "deploys";
          };
          database = d.database // { name = "mm"; user = "mm"; host = "10.1.2.3"; port = 5433; tls = false; };
          relay = {
            listen = "192.168.1.20:9280";
            metrics = "127.0.0.1:9281";
            post_passes = true;
            dashboard_url = "https://sonar.lab.example";
          };
        }"#,
    );
    assert_config_check_accepts(&file);
    let shown = config_show(&file);
    let city = &shown["city"];
    assert_eq!(city["domain"], "lab.example");
    assert_eq!(
        city["mattermost"],
        json!({
            "image": "docker.io/mattermost/mattermost-enterprise-edition:11.8.5",
            "host": "chat.lab.example",
            "port": 9065,
            "metrics": "127.0.0.1:9067",
            "calls_port": 9444,
            "allow_cors_from": ["https://ops.lab.example"],
            "local_socket_dir": "/mattermost/sock",
        })
    );
    assert_eq!(
        city["turn"],
        json!({
            "port": 3479,
            "relay_min": 50000,
            "relay_max": 50100,
            "realm": "turn.lab.example",
            "credential_ttl_minutes": 60,
        })
    );
    assert_eq!(
        city["team"],
        json!({ "name": "ops", "display_name": "Ops" })
    );
    assert_eq!(
        city["channels"][0],
        json!({ "name": "deploys", "display_name": "Deploys", "purpose": "Releases" })
    );
    assert_eq!(
        city["bots"],
        json!([
            { "name": "deploy-bot", "display_name": "Deploy", "description": "Posts releases", "channel": "deploys" },
            { "name": "quiet-bot", "display_name": "Quiet", "description": "" },
        ])
    );
    assert_eq!(
        city["webhooks"],
        json!([{ "channel": "deploys", "bot": "deploy-bot", "display_name": "Deploys", "description": "Release notes" }])
    );
    assert_eq!(
        city["plugins"]["jenkins"],
        json!({
            "source": "https://example.invalid/jenkins-1.1.0.tar.gz",
            "sri": "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "version": "1.1.0",
            "jenkins_url": "https://jenkins.lab.example:8080",
        })
    );
    assert_eq!(
        city["integrations"]["sonarqube"]["url"],
        "http://sonar.lab.example:9000"
    );
    assert_eq!(city["integrations"]["jenkins"]["channel"], "deploys");
    assert_eq!(
        city["database"],
        json!({ "host": "10.1.2.3", "port": 5433, "name": "mm", "user": "mm", "tls": false,
                "managed": false, "image": "docker.io/library/postgres:17.6" })
    );
    assert_eq!(
        city["relay"],
        json!({
            "listen": "192.168.1.20:9280",
            "metrics": "127.0.0.1:9281",
            "post_passes": true,
            "dashboard_url": "https://sonar.lab.example",
        })
    );
}

/// The default module city carries the default city's bots and webhooks: without them `cityd
/// wire` creates no webhook and `cityd verify webhook` has nothing to verify (exit 2).
#[test]
fn the_module_city_has_the_default_bots_and_webhooks() {
    let s = Scratch::new();
    let file = module_city_json(&s, "{ }");
    let from_module = config_show(&file);
    // The embedded city's `auto` LAN address may not resolve here: that makes `config show` exit
    // non-zero after printing, and the bots and webhooks do not depend on it.
    let embedded = cityd().args(["config", "show", "--json"]).output().unwrap();
    let embedded: Value = serde_json::from_slice(&embedded.stdout).unwrap_or_else(|e| {
        panic!(
            "config show of the embedded city printed no JSON ({e}): {}",
            String::from_utf8_lossy(&embedded.stderr)
        )
    });
    for key in ["bots", "webhooks"] {
        assert!(
            !embedded["city"][key].as_array().unwrap().is_empty(),
            "the embedded default city has {key}"
        );
        assert_eq!(
            from_module["city"][key], embedded["city"][key],
            "the module's default {key} differ from src/default-city.toml's"
        );
    }
    // The relay's defaults live in src/default-city.toml, which the module reads too.
    assert_eq!(embedded["city"]["relay"]["listen"], "0.0.0.0:9180");
    assert_eq!(
        from_module["city"]["relay"], embedded["city"]["relay"],
        "the module's relay defaults differ from cityd's"
    );
}

#[test]
fn lan_addresses_must_be_literal_ips() {
    let problems = |addresses: &[&str]| eval_with(addresses, "{ }", "l.problems s");
    assert_eq!(problems(&LAN), json!([]));
    let empty = problems(&[]);
    assert!(empty[0].as_str().unwrap().contains("is empty"), "{empty}");
    let named = problems(&["192.168.1.20", "eth0", "auto"]);
    let named: Vec<&str> = named
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(named[0].contains("\"eth0\""), "{named:?}");
    assert!(named[1].contains("\"auto\""), "{named:?}");
    assert_eq!(
        problems(&["300.1.1.1"]).as_array().unwrap().len(),
        1,
        "an octet above 255 is not an address"
    );
}

#[test]
fn the_firewall_opens_exactly_the_specified_ports() {
    let fw = eval_with(&LAN, "{ }", "l.firewall s");
    assert_eq!(
        fw,
        json!({
            "allowedTCPPorts": [8065, 8444, 3478],
            "allowedUDPPorts": [8444, 3478],
            "allowedUDPPortRanges": [{ "from": 49152, "to": 65535 }],
        })
    );
    let text = fw.to_string();
    assert!(
        !text.contains("8067"),
        "metrics must never be opened: {text}"
    );
    assert!(
        !text.contains("5432"),
        "PostgreSQL is opened only on the container bridge"
    );
    // The relay's port opens only with the relay, and follows relay.listen; its metrics never.
    let relay_on = |relay: &str| {
        eval_module(
            &LAN,
            &format!("{{ relay = d.relay // {{ {relay} }}; }}"),
            "{ relay.enable = true; }",
            "l.firewall s",
        )
    };
    assert_eq!(
        relay_on("")["allowedTCPPorts"],
        json!([8065, 8444, 3478, 9180])
    );
    let moved = relay_on("listen = \"[::]:9280\"; metrics = \"127.0.0.1:9281\";");
    assert_eq!(moved["allowedTCPPorts"], json!([8065, 8444, 3478, 9280]));
    assert_eq!(moved["allowedUDPPorts"], fw["allowedUDPPorts"]);
    assert_eq!(
        eval_with(
            &LAN,
            "{ relay = d.relay // { listen = \"0.0.0.0:9280\"; }; }",
            "l.firewall s"
        ),
        fw,
        "a disabled relay opens nothing"
    );
    assert_eq!(
        eval("(import ./nixos/lib.nix).containerBridge \"podman\""),
        "podman0"
    );
    assert_eq!(
        eval("(import ./nixos/lib.nix).containerBridge \"docker\""),
        "docker0"
    );
}

#[test]
fn coturn_settings_equal_what_cityd_render_coturn_writes() {
    let s = Scratch::new();
    let file = module_city_json(&s, "{ }");
    let rendered = run_ok(
        Command::new(env!("CARGO_BIN_EXE_cityd"))
            .arg("--city")
            .arg(&file)
            .arg("--state-dir")
            .arg(s.state())
            .args(["render", "coturn", "--without-secret", "--out", "-"]),
    );
    let from_rust: BTreeSet<&str> = rendered
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let nix = eval_with(
        &LAN,
        "{ }",
        "let c = l.coturn s; in c.optionLines ++ c.extraLines",
    );
    let from_nix: BTreeSet<&str> = nix
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        from_nix, from_rust,
        "the NixOS module and `cityd render coturn` must configure coturn identically"
    );
    for needle in [
        "denied-peer-ip=192.168.0.0-192.168.255.255",
        "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "allowed-peer-ip=192.168.1.20",
        "allowed-peer-ip=2001:db8::20",
        "use-auth-secret",
        "no-cli",
    ] {
        assert!(from_nix.contains(needle), "missing {needle}");
    }

    let options = eval_with(&LAN, "{ }", "l.coturn s");
    assert_eq!(options["options"]["realm"], "mattermost.cicd.local");
    assert_eq!(options["options"]["listening-port"], 3478);
    assert_eq!(options["options"]["min-port"], 49152);
    assert_eq!(options["options"]["max-port"], 65535);
    assert_eq!(
        options["loadCredential"],
        "turn-static-auth-secret:/var/lib/cityd/secrets/turn-static-auth-secret"
    );
    assert_eq!(
        options["staticAuthSecretFile"],
        "/run/credentials/coturn.service/turn-static-auth-secret"
    );
    let secret_file = options["staticAuthSecretFile"].as_str().unwrap();
    assert!(!secret_file.starts_with("/tmp") && !secret_file.starts_with("/home"));
}

#[test]
fn the_container_and_coturn_read_the_files_cityd_writes() {
    let s = Scratch::new();
    let file = module_city_json(&s, "{ }");
    let paths = eval("(import ./nixos/lib.nix).paths");
    let container = eval_with(&LAN, "{ }", "l.container s");
    let state_root = paths["stateDir"].as_str().unwrap();
    let relative = |key: &str| {
        Path::new(paths[key].as_str().unwrap())
            .strip_prefix(state_root)
            .unwrap_or_else(|_| panic!("{key} lies outside the state directory"))
            .to_path_buf()
    };

    // Run the same commands the units run, against a scratch state directory.
    for args in [["secrets", "ensure"], ["render", "mattermost-env"]] {
        s.cityd()
            .arg("--city")
            .arg(&file)
            .args(args)
            .assert()
            .success();
    }
    let env_file = s.state().join(relative("envFile"));
    let secret = s.state().join(relative("turnSecretFile"));
    assert!(
        env_file.is_file(),
        "cityd did not write {}",
        env_file.display()
    );
    assert!(secret.is_file(), "the vault has no {}", secret.display());
    assert_eq!(
        container["environmentFiles"],
        json!([paths["envFile"]]),
        "the container must read the env file cityd renders"
    );

    // The env file's container-side paths are inside the module's mounts.
    let env = std::fs::read_to_string(&env_file).unwrap();
    let value = |key: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing from the env file"))
            .to_string()
    };
    let volumes: Vec<String> = container["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mounted = |inside: &str| {
        volumes.iter().any(|v| {
            let target = v.split(':').nth(1).unwrap();
            Path::new(inside).starts_with(target)
        })
    };
    let dsn = value("MM_SQLSETTINGS_DATASOURCE");
    assert!(dsn.contains("@192.168.1.20:5432/mattermost?sslmode=verify-full"));
    let ca = dsn
        .split("sslrootcert=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    // Where the module's container (and the double's --socket) put the local-mode socket.
    let socket_name = eval("(import ./nixos/lib.nix).containerPaths.localSocketName");
    assert_eq!(
        value("MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION"),
        format!("/mattermost/run/{}", socket_name.as_str().unwrap())
    );
    for inside in [
        ca.to_string(),
        value("MM_SERVICESETTINGS_TLSCERTFILE"),
        value("MM_SERVICESETTINGS_TLSKEYFILE"),
        value("MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION"),
    ] {
        assert!(
            mounted(&inside),
            "{inside} is not inside any volume: {volumes:?}"
        );
    }
    assert!(volumes.iter().all(|v| !v.starts_with("/nix/store")));

    let ports = &container["ports"];
    assert_eq!(
        ports,
        &json!([
            "192.168.1.20:8065:8065/tcp",
            "[2001:db8::20]:8065:8065/tcp",
            "192.168.1.20:8444:8444/tcp",
            "[2001:db8::20]:8444:8444/tcp",
            "192.168.1.20:8444:8444/udp",
            "[2001:db8::20]:8444:8444/udp",
            "127.0.0.1:8067:8067/tcp",
        ])
    );
    // Fully qualified: no registry search order decides which image runs.
    assert_eq!(
        container["image"],
        "docker.io/mattermost/mattermost-enterprise-edition:11.8.5"
    );
}

#[test]
fn units_run_in_the_contract_order_with_the_contract_commands() {
    let units = eval(
        "let l = import ./nixos/lib.nix; in map (u: u // { cmd = if u.args == null then null else l.commandLine \"/nix/store/x-city.json\" u; }) (l.units { })",
    );
    let units = units.as_array().unwrap();
    let names: Vec<&str> = units.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "cityd-secrets.service",
            "cityd-pki.service",
            "cityd-render.service",
            "cityd-db.service",
            "podman-mattermost.service",
            "cityd-wire.service",
        ]
    );
    // Each unit waits for the one before it; the database step also for PostgreSQL's target.
    for pair in units.windows(2) {
        let after = pair[1]["after"].as_array().unwrap();
        assert!(
            after.contains(&pair[0]["name"]),
            "{} must be ordered after {}",
            pair[1]["name"],
            pair[0]["name"]
        );
    }
    assert!(
        units[3]["after"]
            .as_array()
            .unwrap()
            .contains(&json!("postgresql.target"))
    );
    let prefix = [
        "--city",
        "/nix/store/x-city.json",
        "--state-dir",
        "/var/lib/cityd",
    ];
    let expected: [&[&str]; 5] = [
        &["secrets", "ensure"],
        &["pki", "ensure"],
        &["render", "mattermost-env"],
        // TCP only: the superuser over loopback, its password from the file the unit generates.
        &[
            "db",
            "ensure",
            "--admin-url",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "--admin-password-file",
            "/var/lib/cityd/postgresql/admin-password",
        ],
        &["wire", "--timeout", "5m"],
    ];
    let commands: Vec<Vec<String>> = units
        .iter()
        .filter(|u| !u["cmd"].is_null())
        .map(|u| strings(&u["cmd"]))
        .collect();
    assert_eq!(commands.len(), expected.len());
    for (got, want) in commands.iter().zip(expected) {
        let want: Vec<String> = prefix.iter().chain(want).map(|s| s.to_string()).collect();
        assert_eq!(got, &want);
    }
    let docker = eval("map (u: u.name) ((import ./nixos/lib.nix).units { backend = \"docker\"; })");
    assert_eq!(docker[4], "docker-mattermost.service");

    // With the relay: the same chain, then the one long-running unit, after wire.
    let with_relay = eval(
        "let l = import ./nixos/lib.nix; in map (u: u // { cmd = l.commandLine \"/nix/store/x-city.json\" u; }) (builtins.filter (u: u.args != null) (l.units { relay = true; }))",
    );
    let with_relay = with_relay.as_array().unwrap();
    assert_eq!(with_relay.len(), 6);
    let relay = &with_relay[5];
    assert_eq!(relay["name"], "cityd-relay.service");
    assert_eq!(relay["after"], json!(["cityd-wire.service"]));
    assert_eq!(relay["longRunning"], true);
    assert!(
        with_relay[..5]
            .iter()
            .all(|u| u.get("longRunning").is_none()),
        "only the relay runs on"
    );
    // Its own state directory (a dynamic user cannot use root's), the vault's files as systemd
    // credentials (`%d`, the credentials directory).
    let want: Vec<String> = [
        "--city",
        "/nix/store/x-city.json",
        "--state-dir",
        "/var/lib/cityd-relay",
        "relay",
        "serve",
        "--spool",
        "/var/lib/cityd-relay/spool",
        "--secret-file",
        "%d/sonarqube-webhook-secret",
        "--webhook-url-file",
        "alerts=%d/webhook-alerts",
        "--webhook-url-file",
        "builds=%d/webhook-builds",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(strings(&relay["cmd"]), want);
}

/// The relay unit's own command line, with a scratch state directory and credentials directory
/// and `--dry-run`: cityd resolves the settings from the city file, the secret and the webhook
/// URLs from the files systemd hands over as credentials (copies of the vault's; never argv), and
/// the spool under the relay's own state directory.
#[test]
fn the_relay_unit_serves_the_module_settings_from_its_credentials() {
    let s = Scratch::new();
    let file = module_city_json(
        &s,
        r#"{ relay = d.relay // {
               listen = "192.168.1.20:9280";
               post_passes = true;
               dashboard_url = "https://sonar.lab.example";
             }; }"#,
    );
    let cmd = eval(&format!(
        "let l = import ./nixos/lib.nix; in l.commandLine \"{}\" l.relayUnit",
        file.display()
    ));
    let credentials = s.state().join("credentials");
    let relay_state = s.state().join("relay");
    let mut args = strings(&cmd);
    let state_at = args.iter().position(|a| a == "--state-dir").unwrap() + 1;
    assert_eq!(args[state_at], "/var/lib/cityd-relay");
    for arg in args.iter_mut() {
        *arg = arg
            .replace("/var/lib/cityd-relay", &relay_state.display().to_string())
            .replace("%d", &credentials.display().to_string());
    }
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_cityd"))
            .args(&args)
            .args(["--dry-run", "--json"]),
    );
    let plan: Value = serde_json::from_str(&out).unwrap();
    let credential = |name: &str| credentials.join(name).display().to_string();
    assert_eq!(plan["listen"], "192.168.1.20:9280");
    assert_eq!(plan["metrics"], "127.0.0.1:9181");
    assert_eq!(plan["post_passes"], true);
    assert_eq!(plan["dashboard_url"], "https://sonar.lab.example");
    assert_eq!(
        plan["spool"],
        relay_state.join("spool").display().to_string().as_str()
    );
    assert_eq!(
        plan["secret_from"],
        credential("sonarqube-webhook-secret").as_str()
    );
    assert_eq!(
        plan["alerts_webhook_from"],
        credential("webhook-alerts").as_str()
    );
    assert_eq!(
        plan["builds_webhook_from"],
        credential("webhook-builds").as_str()
    );
    // The credentials are the vault's files, by the names the vault gives them.
    let units = eval("(import ./nixos/lib.nix).relayUnit.credentials");
    let paths = eval("(import ./nixos/lib.nix).paths");
    let secrets_dir = paths["secretsDir"].as_str().unwrap();
    for spec in strings(&units) {
        let (id, source) = spec.split_once(':').unwrap();
        assert_eq!(source, format!("{secrets_dir}/{id}"), "{spec}");
    }
}

#[test]
fn vm_test_scripts_are_python_calling_the_contract_commands() {
    let python = require_tool("python3", "python3");
    let pyflakes = require_tool("pyflakes3", "pyflakes3");
    let scripts = vm_test_scripts();
    let s = Scratch::new();
    let mut all = String::new();
    for (name, script) in &scripts {
        let script = script.as_str().unwrap();
        let path = s.write(&format!("{name}.py"), script);
        run_ok(Command::new(&python).args(["-m", "py_compile"]).arg(&path));
        // The NixOS test driver refuses a script pyflakes complains about; lint it the same way,
        // with the driver's globals and this test's machine names declared.
        let lint = Command::new(&pyflakes)
            .env("PYFLAKES_BUILTINS", DRIVER_GLOBALS)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "pyflakes rejects the {name} VM test script:\n{}",
            String::from_utf8_lossy(&lint.stdout)
        );
        all.push_str(script);
    }
    let names: BTreeSet<&str> = scripts.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "appliance",
            "appliance-enterprise",
            "backup",
            "hardening",
            "switch",
            "turn",
            "turn-independent",
            "turn-nat",
            "webhook",
            "webhook-enterprise"
        ])
    );
    for call in [
        "\"verify tls --connect ",
        "\"turn probe\"",
        "\"turn probe --server 192.168.1.2:3478 --peer 192.168.1.2:40000\"",
        "\"turn probe --server 192.168.1.2:3478 --peer 10.0.0.1:9\"",
        "\"verify webhook\" + BASE_URL",
        "BASE_URL = \" --base-url http://192.168.1.2:8065\"",
        "BASE_URL = \"\"",
        "\"wire\"",
        "wait_for_units_in_order(server, UNITS)",
        "\"turn creds --user witness --json\"",
        "switch_to(server, \"channel\")",
        "systemd-analyze security --no-pager {unit}",
    ] {
        assert!(all.contains(call), "no VM test calls {call}");
    }
}

/// Until the Enterprise pin is filled in, using the image stops evaluation with the command that
/// computes it; a filled-in pin reaches `dockerTools.pullImage` unchanged.
#[test]
fn the_enterprise_image_pin_fails_loudly_until_filled_in() {
    let stub_pkgs = "{ dockerTools.pullImage = args: args; }";
    let err = eval_error(&format!(
        "(import ./vm-tests/images/mattermost-enterprise.nix {{ pkgs = {stub_pkgs}; }}).imageFile"
    ));
    for needle in [
        "the Enterprise image is not pinned",
        "imageDigest is \"PLACEHOLDER-run-nix-prefetch-docker\"",
        "nix-prefetch-docker -- --image-name mattermost/mattermost-enterprise-edition --image-tag 11.8.5",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // The image name alone still evaluates (listing the tests must not need the pin).
    assert_eq!(
        eval(&format!(
            "(import ./vm-tests/images/mattermost-enterprise.nix {{ pkgs = {stub_pkgs}; }}).image"
        )),
        "docker.io/mattermost/mattermost-enterprise-edition:11.8.5"
    );

    let text =
        std::fs::read_to_string(repo().join("vm-tests/images/mattermost-enterprise.nix")).unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let hash = format!("sha256-{}=", "A".repeat(43));
    let pinned = text
        .replacen(
            "imageDigest = \"PLACEHOLDER-run-nix-prefetch-docker\"",
            &format!("imageDigest = \"{digest}\""),
            1,
        )
        .replacen(
            "hash = \"PLACEHOLDER-run-nix-prefetch-docker\"",
            &format!("hash = \"{hash}\""),
            1,
        );
    assert_ne!(pinned, text, "the placeholders moved; update this test");
    let s = Scratch::new();
    let file = s.write("enterprise.nix", &pinned);
    let args = eval(&format!(
        "(import \"{}\" {{ pkgs = {stub_pkgs}; }}).imageFile",
        file.display()
    ));
    assert_eq!(args["imageDigest"], digest.as_str());
    assert_eq!(args["hash"], hash.as_str());
    assert_eq!(
        args["finalImageName"],
        "docker.io/mattermost/mattermost-enterprise-edition"
    );

    // Half-filled: the message names the value still wrong.
    let half = text.replacen(
        "imageDigest = \"PLACEHOLDER-run-nix-prefetch-docker\"",
        &format!("imageDigest = \"{digest}\""),
        1,
    );
    let file = s.write("half.nix", &half);
    let err = eval_error(&format!(
        "(import \"{}\" {{ pkgs = {stub_pkgs}; }}).imageFile",
        file.display()
    ));
    assert!(err.contains("hash is \"PLACEHOLDER"), "{err}");
    assert!(!err.contains("imageDigest is"), "{err}");
}

#[test]
fn flake_lock_pins_the_recorded_nixos_26_05_revision() {
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("flake.lock")).unwrap()).unwrap();
    assert_eq!(lock["version"], 7);
    assert_eq!(lock["root"], "root");
    assert_eq!(
        lock["nodes"]["root"]["inputs"],
        json!({ "nixpkgs": "nixpkgs" })
    );
    assert_eq!(
        lock["nodes"].as_object().unwrap().len(),
        2,
        "nixpkgs is the only input"
    );
    let locked = &lock["nodes"]["nixpkgs"]["locked"];
    assert_eq!(locked["rev"], "34268251cf5547d39063f2c5ea9a196246f7f3a6");
    assert_eq!(
        locked["narHash"],
        "sha256-G3tw/IXmaH6IQ2upZvhuN9sG8CkuX+BLuJDpE8hz0Ds="
    );
    assert_eq!(locked["lastModified"], 1782116945);
    assert_eq!(lock["nodes"]["nixpkgs"]["original"]["ref"], "nixos-26.05");
}

/// The flake's outputs, listed by evaluating `outputs` with a stand-in nixpkgs that only provides
/// `lib.genAttrs` (names are enough: no value is forced), and the docs must list exactly those.
#[test]
fn the_flake_outputs_are_the_documented_ones() {
    let outputs = eval(
        r#"let
             stub = {
               lib = {
                 genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
                 optionalAttrs = cond: attrs: if cond then attrs else { };
               };
               legacyPackages = stub.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: {
                 stdenv.hostPlatform.system = system;
               });
             };
             self = (import ./flake.nix).outputs { inherit self; nixpkgs = stub; };
             names = prefix: set: map (n: "${prefix}.${n}") (builtins.attrNames set);
             sys = "x86_64-linux";
           in
             names "packages.<system>" self.packages.${sys}
             ++ names "checks.<system>" self.checks.${sys}
             ++ names "devShells.<system>" self.devShells.${sys}
             ++ names "legacyPackages.<system>.vmTests" self.legacyPackages.${sys}.vmTests
             ++ names "nixosModules" self.nixosModules
             ++ names "nixosConfigurations" self.nixosConfigurations
             ++ [ "formatter.<system>" ]
             ++ [ (builtins.concatStringsSep "," (builtins.attrNames self.packages)) ]
             ++ [ (builtins.concatStringsSep "," (builtins.attrNames self)) ]"#,
    );
    let mut outputs: Vec<String> = outputs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let top = outputs.pop().unwrap();
    let systems = outputs.pop().unwrap();
    assert_eq!(systems, "aarch64-linux,x86_64-linux");
    assert_eq!(
        top,
        "checks,devShells,formatter,legacyPackages,nixosConfigurations,nixosModules,packages"
    );
    let doc = std::fs::read_to_string(repo().join("docs/nixos.md")).expect("docs/nixos.md");
    // Inline code spans outside fenced blocks that name a flake output.
    let mut documented = BTreeSet::new();
    let mut fenced = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for span in line.split('`').skip(1).step_by(2) {
            let output = [
                "packages.",
                "checks.",
                "devShells.",
                "legacyPackages.",
                "nixosModules.",
                "nixosConfigurations.",
                "formatter.",
            ]
            .iter()
            .any(|p| span.starts_with(p));
            if output {
                documented.insert(span.to_string());
            }
        }
    }
    let actual: BTreeSet<String> = outputs.into_iter().collect();
    assert_eq!(
        actual, documented,
        "docs/nixos.md must list exactly the flake's outputs"
    );
}

/// Every path a Cargo manifest of the workspace names (members, targets, path dependencies), relative
/// to the repository, following the members' manifests too.
fn cargo_named_paths(manifest_dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let manifest = manifest_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let doc: toml::Table = toml::from_str(&text).expect("Cargo.toml is TOML");
    let mut add = |rel: &str| {
        let path = manifest_dir.join(rel);
        let normal: PathBuf = path
            .strip_prefix(repo())
            .unwrap_or_else(|_| panic!("{} is outside the repository", path.display()))
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        out.insert(normal);
    };
    add("Cargo.toml");
    if let Some(build) = doc
        .get("package")
        .and_then(|p| p.get("build"))
        .and_then(|b| b.as_str())
    {
        add(build);
    }
    for (key, value) in &doc {
        let targets: Vec<&toml::Value> = match (key.as_str(), value) {
            ("lib", v) => vec![v],
            ("bin" | "example" | "test" | "bench", toml::Value::Array(a)) => a.iter().collect(),
            _ => vec![],
        };
        for target in targets {
            if let Some(path) = target.get("path").and_then(|p| p.as_str()) {
                add(path);
            }
        }
    }
    let mut dependency_tables: Vec<&toml::Table> =
        ["dependencies", "dev-dependencies", "build-dependencies"]
            .iter()
            .filter_map(|t| doc.get(*t).and_then(|d| d.as_table()))
            .collect();
    for platform in doc
        .get("target")
        .and_then(|t| t.as_table())
        .into_iter()
        .flat_map(|t| t.values())
    {
        for t in ["dependencies", "dev-dependencies", "build-dependencies"] {
            dependency_tables.extend(platform.get(t).and_then(|d| d.as_table()));
        }
    }
    for dependency in dependency_tables.into_iter().flat_map(|t| t.values()) {
        if let Some(path) = dependency.get("path").and_then(|p| p.as_str()) {
            add(path);
        }
    }
    let members = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array());
    for member in members.into_iter().flatten().filter_map(|m| m.as_str()) {
        let dir = manifest_dir.join(member);
        if dir.canonicalize().unwrap() != manifest_dir.canonicalize().unwrap() {
            cargo_named_paths(&dir, out);
        }
    }
}

/// Nix copies only the package's source filter into the build; cargo refuses a manifest whose
/// targets are missing and `cargo test` builds the examples, so every path Cargo.toml names must be
/// inside it (the filter is read from nixos/package.nix by scripts/flake-test-checks.nix).
#[test]
fn the_package_source_holds_every_path_cargo_names() {
    let checks = eval("import ./scripts/flake-test-checks.nix");
    let source: Vec<PathBuf> = strings(&checks["source"])
        .iter()
        .map(|p| {
            Path::new(p)
                .strip_prefix(repo())
                .unwrap_or_else(|_| panic!("the source filter names {p}, outside the repository"))
                .to_path_buf()
        })
        .collect();
    let mut named = BTreeSet::new();
    cargo_named_paths(&repo(), &mut named);
    assert!(
        named.contains(Path::new("bench/relay_load.rs"))
            && named.contains(Path::new("testcontainers/Cargo.toml")),
        "the manifests were not read: {named:?}"
    );
    let missing: Vec<&PathBuf> = named
        .iter()
        .filter(|path| !source.iter().any(|kept| path.starts_with(kept)))
        .collect();
    assert!(
        missing.is_empty(),
        "nixos/package.nix's source filter ({source:?}) leaves out {missing:?}, which Cargo.toml names"
    );
}
