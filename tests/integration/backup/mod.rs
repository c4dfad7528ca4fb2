//! `cityd backup`, `backup verify`, `restore` and `restore --drill` against the real Docker engine
//! with PostgreSQL 17 (cityd-test/postgres:17) and the Mattermost double image with its volumes.
//! The double keeps its state in memory, so each test builds a Mattermost-shaped database itself
//! (Posts, Users, Channels, FileInfo with a few thousand rows and binary columns) and puts files
//! into the volumes. Everything is compared by means independent of cityd: psql, `pg_dump
//! --data-only` inside the PostgreSQL container, `docker cp` of the volumes.

mod faults;
mod fixture;

use std::process::Command;

use fixture::City;

use crate::common::{run_ok, stderr_of_exit};

#[test]
fn round_trip_restores_the_same_data_files_vault_and_ca_after_everything_is_destroyed() {
    let city = City::new();
    city.fill_database(3000);
    city.fill_volumes();
    let data_before = city.data_dump_hash();
    let files_before = city.volume_tree_hashes();
    let vault_before = city.vault_hashes();
    let ca_before = city.ca_fingerprint();
    let rows_before = city.row_counts();
    assert!(rows_before.contains("Posts|3000"), "{rows_before}");

    let taken = city.backup(&[]);
    let file = std::path::PathBuf::from(taken["path"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(taken["encrypted"], true);
    assert_eq!(taken["database"]["tables"], 5, "{taken:#}");
    assert!(taken["volume_files"].as_u64().unwrap() >= 20, "{taken:#}");

    // verify: reports contents and age, touches nothing.
    let verified = city.verify(&file);
    assert_eq!(verified["rows"], taken["database"]["rows"]);
    assert_eq!(verified["schema_version"], 142);
    assert_eq!(
        verified["ca_fingerprint"].as_str(),
        Some(ca_before.as_str())
    );
    assert!(verified["age_seconds"].as_i64().unwrap() < 600);

    // The drill restores into scratch places, proves them and removes them; production untouched.
    let volumes_before = city.volumes();
    let drill = city.restore(&file, &["--drill"]);
    assert_eq!(drill["drill"], true);
    assert_eq!(
        drill["proof"]["rows"], taken["database"]["rows"],
        "{drill:#}"
    );
    assert_eq!(
        city.volumes(),
        volumes_before,
        "the drill's volumes are removed"
    );
    assert!(!city.databases().contains("drill"), "{}", city.databases());
    assert_eq!(city.data_dump_hash(), data_before);

    // Destroy everything: containers, volumes, network, database and role, the state directory.
    city.destroy();
    assert!(!city.lab.scratch.state().exists());

    // --dry-run says what would be created and changes nothing.
    let dry = city.restore(&file, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(!city.lab.scratch.state().join("secrets").exists());

    let restored = city.restore(&file, &[]);
    assert_eq!(restored["proof"]["rows"], taken["database"]["rows"]);
    assert_eq!(
        city.data_dump_hash(),
        data_before,
        "a data-only dump of the restored database"
    );
    assert_eq!(
        city.volume_tree_hashes(),
        files_before,
        "the volumes' file trees"
    );
    assert_eq!(city.vault_hashes(), vault_before, "the vault");
    assert_eq!(
        city.ca_fingerprint(),
        ca_before,
        "the CA phones already trust"
    );
    assert_eq!(city.row_counts(), rows_before);
    // The tenant owns what was restored, as `db ensure` makes it.
    assert_eq!(
        city.psql_admin(
            "mattermost",
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ),
        "mattermost"
    );
    // The city is up again.
    let running = run_ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{.State.Running}}",
        &city.lab.mattermost(),
    ]));
    assert_eq!(running.trim(), "true");
}

#[test]
fn restore_refuses_a_city_that_holds_data_unless_forced() {
    let city = City::new();
    city.fill_database(200);
    let taken = city.backup(&[]);
    let file = std::path::PathBuf::from(taken["path"].as_str().unwrap());
    let before = city.data_dump_hash();
    let out = city.restore_cmd(&file, &[]).output().unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains("already holds data") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(city.data_dump_hash(), before);

    // With --force, the data is replaced by the backup's: a row added after the backup is gone.
    city.psql_tenant("INSERT INTO \"Users\" (\"Id\", \"Username\", \"Email\", \"Props\") VALUES ('late', 'late', 'l@x', '\\x00')");
    let restored = city.restore(&file, &["--force"]);
    assert!(restored["proof"].is_object());
    assert_eq!(city.data_dump_hash(), before);
}

use std::os::unix::fs::PermissionsExt;
