//! `[database] managed = true` on this machine's Docker engine: `cityd up` runs PostgreSQL 17 (the
//! local cityd-test/postgres:17 image) with TLS from the city CA, the Mattermost double opens the
//! rendered DSN over TLS verified against that CA (a real client), `db ensure` runs through it,
//! and the city converges; a second `up` changes nothing; `down` keeps the data; a container of
//! that name cityd did not create is refused with nothing touched. `status` is in `status.rs`.

mod status;

use std::process::Command;

use serde_json::Value;

use crate::common::{run_ok, stderr_of_exit};
use crate::docker::{Lab, outcome_of, port_bindings, steps};

/// Runs SQL in the managed server through `docker exec` (local trust inside the container), as
/// the superuser, independently of cityd's client.
pub fn psql(lab: &Lab, db: &str, sql: &str) -> String {
    run_ok(Command::new("docker").args([
        "exec",
        &lab.postgres(),
        "psql",
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "postgres",
        "-d",
        db,
        "-c",
        sql,
    ]))
    .trim()
    .to_string()
}

fn health(lab: &Lab, name: &str) -> String {
    lab.inspect(name)["State"]["Health"]["Status"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

/// Every step of a report that changed something.
fn changes(report: &Value) -> Vec<String> {
    steps(report)
        .into_iter()
        .filter(|(_, _, o)| o != "unchanged" && o != "skipped")
        .map(|(s, subj, o)| format!("{s} {subj} {o}"))
        .collect()
}

#[test]
fn up_runs_its_own_postgres_with_tls_and_a_second_up_and_down_up_keep_everything() {
    let lab = Lab::managed();
    let first = lab.up(&[]);

    // The server: labelled, healthy through pg_isready (exec form), published on loopback only.
    assert_eq!(outcome_of(&first, "container", &lab.postgres()), "created");
    let pg = lab.inspect(&lab.postgres());
    assert_eq!(pg["Config"]["Labels"]["org.cityd.role"], "postgres");
    assert_eq!(pg["Config"]["Healthcheck"]["Test"][0], "CMD");
    assert_eq!(pg["Config"]["Healthcheck"]["Test"][1], "pg_isready");
    assert_eq!(health(&lab, &lab.postgres()), "healthy");
    let bindings = port_bindings(&pg);
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert!(bindings[0].starts_with("127.0.0.1:") && bindings[0].ends_with("->5432/tcp"));
    let aliases = &pg["NetworkSettings"]["Networks"][lab.network()]["Aliases"];
    assert!(
        aliases.as_array().unwrap().iter().any(|a| a == "postgres"),
        "{aliases}"
    );
    // TLS is on with the city's leaf, and the superuser's password is the vault's.
    assert_eq!(psql(&lab, "postgres", "SHOW ssl"), "on");
    assert!(lab.scratch.state().join("pki/postgres.pem").exists());
    let password = run_ok(
        lab.cityd()
            .args(["secrets", "get", "postgres-superuser-password"]),
    );
    assert!(password.trim().len() >= 32);

    // db ensure ran through it: the tenant owns its database.
    assert!(!first["database"]["actions"].as_array().unwrap().is_empty());
    assert_eq!(first["database"]["tls"], true);
    assert_eq!(
        psql(
            &lab,
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mattermost'"
        ),
        "mattermost"
    );
    // The double connected as the real server would: the rendered DSN, verify-full against the
    // city CA, as the tenant.
    let logs = run_ok(Command::new("docker").args(["logs", &lab.mattermost()]));
    let logs = logs
        + &String::from_utf8_lossy(
            &Command::new("docker")
                .args(["logs", &lab.mattermost()])
                .output()
                .unwrap()
                .stderr,
        );
    assert!(
        logs.contains("connected to postgres:5432 over TLS (verify-full)"),
        "{logs}"
    );
    let sessions = psql(
        &lab,
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = 'mattermost' AND ssl",
    );
    assert_eq!(sessions, "1", "the double's session is over TLS");
    // Every container turned healthy, and up says what it waited on.
    for name in [lab.postgres(), lab.coturn(), lab.mattermost()] {
        assert_eq!(health(&lab, &name), "healthy", "{name}");
        assert!(outcome_of(&first, "health", &name) == "unchanged");
    }
    assert!(first["wire"]["created"].as_u64().unwrap() > 0);

    // A second up changes nothing: no container recreated, no statement run.
    let ids: Vec<_> = [lab.postgres(), lab.coturn(), lab.mattermost()]
        .iter()
        .map(|n| lab.identity(n))
        .collect();
    let second = lab.up(&[]);
    assert_eq!(changes(&second), Vec::<String>::new(), "{second:#}");
    assert!(second["database"]["actions"].as_array().unwrap().is_empty());
    assert_eq!(second["wire"]["created"], 0);
    assert_eq!(second["wire"]["updated"], 0);
    let again: Vec<_> = [lab.postgres(), lab.coturn(), lab.mattermost()]
        .iter()
        .map(|n| lab.identity(n))
        .collect();
    assert_eq!(ids, again);

    // down keeps the data; up brings every row back.
    psql(
        &lab,
        "mattermost",
        "CREATE TABLE keep (n int); INSERT INTO keep VALUES (1), (2), (3)",
    );
    let out = lab.cityd().arg("down").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lab.exists("container", &lab.postgres()));
    assert!(lab.exists("volume", &format!("{}postgres-data", lab.prefix)));
    lab.up(&[]);
    assert_eq!(psql(&lab, "mattermost", "SELECT sum(n) FROM keep"), "6");
}

#[test]
fn a_container_of_that_name_cityd_did_not_create_is_refused_with_nothing_touched() {
    let lab = Lab::managed();
    run_ok(Command::new("docker").args([
        "create",
        "--name",
        &lab.postgres(),
        &format!(
            "{}:{}",
            crate::docker::POSTGRES_IMAGE.0,
            crate::docker::POSTGRES_IMAGE.1
        ),
    ]));
    let before = lab.identity(&lab.postgres());
    let out = lab.cityd().arg("up").output().unwrap();
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains(&lab.postgres()), "{err}");
    assert!(err.contains("managed = false"), "{err}");
    assert!(err.contains("docker rename"), "{err}");
    assert_eq!(lab.identity(&lab.postgres()), before);
    assert!(
        !lab.scratch.state().exists(),
        "the state directory was created"
    );
    assert!(!lab.exists("network", &lab.network()));
}

#[test]
fn without_the_postgres_image_up_does_every_step_that_needs_none_then_names_it() {
    let mut lab = Lab::managed();
    lab.edit_city(
        &format!(
            "image = \"{}:{}\"",
            crate::docker::POSTGRES_IMAGE.0,
            crate::docker::POSTGRES_IMAGE.1
        ),
        "image = \"cityd-test/not-built-postgres:17.0\"",
    );
    let out = lab.cityd().args(["up", "--json"]).output().unwrap();
    stderr_of_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("cityd-test/not-built-postgres:17.0"),
        "{error}"
    );
    assert!(error.contains("docker load -i"), "{error}");
    // Everything that needs no image is there; no container started.
    let state = lab.scratch.state();
    for path in [
        "secrets/postgres-superuser-password",
        "pki/postgres.pem",
        "render/mattermost.env",
        "postgres/server.key",
        "coturn/turnserver.conf",
    ] {
        assert!(state.join(path).exists(), "{path}");
    }
    assert!(lab.exists("network", &lab.network()));
    assert!(lab.exists("volume", &format!("{}postgres-data", lab.prefix)));
    assert_eq!(lab.labelled_containers(), Vec::<String>::new());
    assert_eq!(
        outcome_of(&report, "image", "cityd-test/not-built-postgres:17.0"),
        "skipped"
    );
}
