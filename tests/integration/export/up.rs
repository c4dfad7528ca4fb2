//! A single-host city that already uses what a multi-host one needs — several TURN servers and an
//! rtcd URL — still comes up with `cityd up` on the Docker engine: the rendered env file names
//! every TURN server and the rtcd, the container carries them, and the host's coturn relays.

use serde_json::Value;

use crate::common::run_ok;
use crate::docker::Lab;

#[test]
fn up_carries_several_turn_servers_and_an_rtcd_url() {
    let mut lab = Lab::new();
    let here = format!("{}:{}", lab.lan.ip, lab.turn_port);
    lab.edit_city(
        "servers = []",
        &format!("servers = [\"{here}\", \"turn2.cicd.local\"]"),
    );
    lab.edit_city(
        "local_socket_dir = \"/mattermost/run\"\n",
        "local_socket_dir = \"/mattermost/run\"\nrtcd_url = \"http://rtcd.cicd.local:8045\"\n",
    );
    lab.up(&["--skip-db".into(), "--skip-wire".into()]);

    let env = std::fs::read_to_string(lab.scratch.state().join("render/mattermost.env")).unwrap();
    let ice = format!(
        "MM_CALLS_ICE_SERVERS_CONFIGS=[{{\"urls\":[\"turn:{here}?transport=udp\",\"turn:{here}?transport=tcp\",\
         \"turn:turn2.cicd.local:{port}?transport=udp\",\"turn:turn2.cicd.local:{port}?transport=tcp\"]}}]",
        port = lab.turn_port
    );
    assert!(env.lines().any(|l| l == ice), "{ice}\n{env}");
    assert!(
        env.lines()
            .any(|l| l == "MM_CALLS_RTCD_SERVICE_URL=http://rtcd.cicd.local:8045")
    );
    let container = lab.inspect(&lab.mattermost());
    let vars: Vec<&str> = container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        vars.contains(&"MM_CALLS_RTCD_SERVICE_URL=http://rtcd.cicd.local:8045"),
        "{vars:?}"
    );

    // The host's own coturn, the first of the listed servers, relays; `turn creds` names both.
    let probe: Value =
        serde_json::from_str(&run_ok(lab.cityd().args(["turn", "probe", "--json"]))).unwrap();
    assert_eq!(probe["verdict"], "relay-works", "{probe:#}");
    let creds: Value =
        serde_json::from_str(&run_ok(lab.cityd().args(["turn", "creds", "--json"]))).unwrap();
    assert_eq!(creds["urls"].as_array().unwrap().len(), 4, "{creds:#}");

    // A second up changes nothing.
    let again = lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    assert_eq!(again["changed"], false, "{again:#}");
}
