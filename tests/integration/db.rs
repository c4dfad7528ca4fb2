//! `cityd db ensure` against real PostgreSQL: 17 from Debian trixie in a container
//! (cityd-test/postgres:17) and 15 from Debian on this host (a throwaway cluster made with initdb
//! in a temp dir, stopped on drop). The blog's trap is reproduced first: a database owned by
//! postgres where the tenant cannot CREATE TABLE in public. The checks use psql, not cityd's code.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Scratch, require_tool, run_ok, stdout_of_success};
use crate::docker::Pg;

/// Where a PostgreSQL server listens and how the superuser logs in.
struct Server {
    port: u16,
    password_file: PathBuf,
    admin_password: String,
}

impl Server {
    fn admin_args(&self) -> Vec<String> {
        vec![
            "--admin-url".into(),
            format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            "--admin-password-file".into(),
            self.password_file.display().to_string(),
        ]
    }

    /// Runs SQL with psql as `user` (password `password`) in `db`.
    fn psql(&self, user: &str, password: &str, db: &str, sql: &str) -> Output {
        let psql = require_tool("psql", "postgresql-client");
        Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", user, "-d", db, "-At", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "disable")
            .output()
            .expect("run psql")
    }

    fn admin(&self, db: &str, sql: &str) -> String {
        let out = self.psql("postgres", &self.admin_password, db, sql);
        assert!(
            out.status.success(),
            "psql as postgres: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn from_container(pg: &Pg) -> Server {
    Server {
        port: pg.port,
        password_file: pg.password_file.clone(),
        admin_password: Pg::PASSWORD.to_string(),
    }
}

/// A PostgreSQL 15 cluster from Debian's postgresql-15, owned by the postgres user, in a temp dir.
struct HostPg15 {
    dir: tempfile::TempDir,
    server: Server,
}

impl HostPg15 {
    const BIN: &'static str = "/usr/lib/postgresql/15/bin";

    fn start() -> Self {
        let initdb = Path::new(Self::BIN).join("initdb");
        assert!(
            initdb.is_file(),
            "{} is missing: run scripts/test.sh (it installs postgresql-15) or `apt-get install postgresql-15`",
            initdb.display()
        );
        let runuser = require_tool("runuser", "util-linux");
        let dir = tempfile::tempdir().unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            chown.success(),
            "chown to the postgres user (the tests run as root)"
        );
        let password = "Pg15AdminPassw0rd";
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(&pwfile)
            .status()
            .unwrap();
        let data = dir.path().join("data");
        run_ok(
            Command::new(&runuser)
                .args(["-u", "postgres", "--"])
                .arg(&initdb)
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--no-locale", "--encoding=UTF8"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display())),
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(&runuser)
            .args(["-u", "postgres", "--"])
            .arg(Path::new(Self::BIN).join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=off -c log_statement=all",
                dir.path().display()
            ))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        Self {
            server: Server {
                port,
                password_file: pwfile,
                admin_password: password.into(),
            },
            dir,
        }
    }
}

impl Drop for HostPg15 {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(Self::BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// `cityd secrets ensure` in the scratch state: the vault the tenant's password comes from.
fn secrets_ensure(s: &Scratch) {
    s.cityd().args(["secrets", "ensure"]).assert().success();
}

fn vault_password(s: &Scratch) -> String {
    run_ok(s.cityd().args(["secrets", "get", "mattermost-db-password"]))
        .trim()
        .to_string()
}

fn ensure(s: &Scratch, server: &Server, extra: &[&str]) -> Value {
    let stdout = run_ok(
        s.cityd()
            .args(["db", "ensure", "--json"])
            .args(server.admin_args())
            .args(extra),
    );
    serde_json::from_str(&stdout).unwrap()
}

fn whats(report: &Value) -> Vec<String> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["what"].as_str().unwrap().to_string())
        .collect()
}

/// The blog's setup: the tenant role and a database that postgres owns, with GRANT ALL on it,
/// which since PostgreSQL 15 does not let the tenant create tables in public.
fn the_blogs_trap_is_fixed(server: &Server, major: &str) {
    let s = Scratch::new();
    secrets_ensure(&s);
    let pw = vault_password(&s);
    server.admin(
        "postgres",
        &format!("CREATE ROLE mattermost LOGIN PASSWORD '{pw}'"),
    );
    server.admin("postgres", "CREATE DATABASE mattermost");
    server.admin(
        "postgres",
        "GRANT ALL PRIVILEGES ON DATABASE mattermost TO mattermost",
    );
    let before = server.psql(
        "mattermost",
        &pw,
        "mattermost",
        "CREATE TABLE probe (i int)",
    );
    assert!(!before.status.success(), "the trap is not set up");
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("permission denied for schema public"),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );

    let first = ensure(&s, server, &[]);
    assert!(
        first["version"].as_str().unwrap().starts_with(major),
        "{first:#}"
    );
    assert_eq!(
        whats(&first),
        ["hand database mattermost from postgres to mattermost"],
        "the role and its password were right; only ownership changes"
    );
    assert_eq!(first["schema_owner"], "mattermost");
    assert_eq!(
        server.admin(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mattermost'"
        ),
        "mattermost"
    );
    let after = server.psql(
        "mattermost",
        &pw,
        "mattermost",
        "CREATE TABLE probe (i int)",
    );
    assert!(
        after.status.success(),
        "the tenant still cannot create tables: {}",
        String::from_utf8_lossy(&after.stderr)
    );

    let second = ensure(&s, server, &[]);
    assert_eq!(second["actions"], serde_json::json!([]), "{second:#}");
}

#[test]
fn db_ensure_fixes_the_public_schema_trap_on_postgres_17_in_a_container() {
    let s = Scratch::new();
    let pg = Pg::start(&s);
    the_blogs_trap_is_fixed(&from_container(&pg), "17.");
}

#[test]
fn db_ensure_fixes_the_public_schema_trap_on_the_hosts_postgres_15() {
    let pg = HostPg15::start();
    the_blogs_trap_is_fixed(&pg.server, "15.");
}

#[test]
fn db_ensure_keeps_the_password_verifier_out_of_a_server_log_that_logs_every_statement() {
    let pg = HostPg15::start(); // log_statement = all
    let s = Scratch::new();
    secrets_ensure(&s);
    let created = ensure(&s, &pg.server, &[]);
    assert!(
        whats(&created).contains(&"create role mattermost".to_string()),
        "{created:#}"
    );
    pg.server.admin(
        "postgres",
        "ALTER ROLE mattermost PASSWORD 'SomethingElse1'",
    );
    let fixed = ensure(&s, &pg.server, &[]);
    assert_eq!(
        whats(&fixed),
        ["set the password of role mattermost from the vault"]
    );
    let log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap();
    assert!(
        log.contains("SomethingElse1"),
        "the server does not log statements, so this test proves nothing:\n{log}"
    );
    assert!(!log.contains("SCRAM-SHA-256$"), "{log}");
    assert!(!log.contains(&vault_password(&s)), "{log}");
}

#[test]
fn db_ensure_creates_a_fresh_tenant_after_a_dry_run_that_changes_nothing() {
    let s = Scratch::new();
    let pg = Pg::start(&s);
    let server = from_container(&pg);
    secrets_ensure(&s);

    let dry = ensure(&s, &server, &["--dry-run"]);
    assert_eq!(
        whats(&dry),
        [
            "create role mattermost",
            "create database mattermost owned by mattermost"
        ]
    );
    assert_eq!(
        server.admin(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'mattermost'"
        ),
        "0",
        "a dry run creates nothing"
    );
    let shown = serde_json::to_string(&dry).unwrap();
    let pw = vault_password(&s);
    assert!(!shown.contains(&pw), "the password leaked into the report");
    assert!(shown.contains("<SCRAM verifier of the vault password>"));
    assert_eq!(
        dry["dsn"],
        // The default city's server is managed, so Mattermost verifies it against the city CA.
        "postgres://mattermost:<vault:mattermost-db-password>@postgres:5432/mattermost?sslmode=verify-full&sslrootcert=/mattermost/certs/ca.pem&connect_timeout=10"
    );

    let first = ensure(&s, &server, &[]);
    assert_eq!(whats(&first), whats(&dry));
    stdout_of_success(&server.psql("mattermost", &pw, "mattermost", "CREATE TABLE t (i int)"));
    // Stored as SCRAM: the clear-text password never reached the server.
    assert!(
        server
            .admin(
                "postgres",
                "SELECT rolpassword FROM pg_authid WHERE rolname = 'mattermost'"
            )
            .starts_with("SCRAM-SHA-256$4096:")
    );
    assert_eq!(ensure(&s, &server, &[])["actions"], serde_json::json!([]));

    // A password changed behind cityd's back is put back to the vault's.
    server.admin(
        "postgres",
        "ALTER ROLE mattermost PASSWORD 'SomethingElse1'",
    );
    let fixed = ensure(&s, &server, &[]);
    assert_eq!(
        whats(&fixed),
        ["set the password of role mattermost from the vault"]
    );
    assert!(
        server
            .psql("mattermost", &pw, "mattermost", "SELECT 1")
            .status
            .success()
    );
}

#[test]
fn db_ensure_errors_name_the_server_the_user_and_the_missing_privilege() {
    let s = Scratch::new();
    secrets_ensure(&s);
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = s
        .cityd()
        .args(["db", "ensure", "--admin-url"])
        .arg(format!("postgres://postgres@127.0.0.1:{closed}/postgres"))
        .output()
        .unwrap();
    let err = crate::common::stderr_of_exit(&out, 1);
    assert!(
        err.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{closed}")),
        "{err}"
    );
    assert!(err.contains("listen_addresses"), "{err}");

    let pg = Pg::start(&s);
    let server = from_container(&pg);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    let wrong = s.write("wrong", "WrongPassw0rd\n");
    let out = s
        .cityd()
        .args(["db", "ensure", "--admin-url", &url, "--admin-password-file"])
        .arg(&wrong)
        .output()
        .unwrap();
    let err = crate::common::stderr_of_exit(&out, 1);
    assert!(
        err.contains(&format!(
            "PostgreSQL at 127.0.0.1:{} refused to authenticate postgres",
            pg.port
        )),
        "{err}"
    );
    assert!(!err.contains("WrongPassw0rd"));

    // PGPASSWORD works as well as the file.
    let out = s
        .cityd()
        .args(["db", "ensure", "--dry-run", "--admin-url", &url])
        .env("PGPASSWORD", Pg::PASSWORD)
        .output()
        .unwrap();
    // Not run_ok: its message would print the command with PGPASSWORD.
    stdout_of_success(&out);

    server.admin("postgres", "CREATE ROLE weak LOGIN PASSWORD 'WeakPassw0rd'");
    let weak = s.write("weak", "WeakPassw0rd\n");
    let out = s
        .cityd()
        .args(["db", "ensure", "--admin-url"])
        .arg(format!("postgres://weak@127.0.0.1:{}/postgres", pg.port))
        .arg("--admin-password-file")
        .arg(&weak)
        .output()
        .unwrap();
    let err = crate::common::stderr_of_exit(&out, 1);
    assert!(err.contains("role weak on 127.0.0.1"), "{err}");
    assert!(err.contains("may not create the role"), "{err}");
    assert!(err.contains("CREATEROLE"), "{err}");
    assert_eq!(
        server.admin(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'mattermost'"
        ),
        "0",
        "nothing was created"
    );

    let out = s
        .cityd()
        .args(["db", "ensure", "--admin-url"])
        .arg(format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            Pg::PASSWORD,
            pg.port
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a password in argv is bad input"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password"), "{err}");
    assert!(!err.contains(Pg::PASSWORD), "the password leaked: {err}");
}

/// Signs a server certificate for 127.0.0.1 with the city CA (or, with `foreign`, a CA of its own)
/// and writes it where the PostgreSQL image looks for TLS material.
fn server_certs(s: &Scratch, foreign: bool) -> PathBuf {
    use rcgen::{CertificateParams, Issuer, KeyPair};
    let (ca_pem, ca_key) = if foreign {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    } else {
        let pki = s.state().join("pki");
        (
            std::fs::read_to_string(pki.join("ca.pem")).unwrap(),
            std::fs::read_to_string(pki.join("ca.key")).unwrap(),
        )
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let dir = s
        .path()
        .join(if foreign { "certs-foreign" } else { "certs" });
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    // The container's postgres user copies them; a throwaway test key may be world-readable.
    for f in ["server.pem", "server.key"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}

#[test]
fn db_ensure_verifies_tls_against_the_city_ca_whenever_the_server_offers_it() {
    let s = Scratch::new();
    secrets_ensure(&s);
    run_ok(s.cityd().args(["pki", "ensure"]));

    let pg = Pg::start_with(&s, Some(&server_certs(&s, false)));
    let server = from_container(&pg);
    let report = ensure(&s, &server, &[]);
    assert_eq!(report["tls"], true, "{report:#}");
    assert_eq!(ensure(&s, &server, &["--db-tls", "require"])["tls"], true);
    assert_eq!(ensure(&s, &server, &["--db-tls", "disable"])["tls"], false);

    // A server whose certificate the city CA did not sign is refused, not trusted.
    let foreign = Pg::start_with(&s, Some(&server_certs(&s, true)));
    let out = s
        .cityd()
        .args(["db", "ensure"])
        .args(from_container(&foreign).admin_args())
        .output()
        .unwrap();
    let err = crate::common::stderr_of_exit(&out, 1);
    assert!(
        err.contains(&format!(
            "TLS with PostgreSQL at 127.0.0.1:{} failed",
            foreign.port
        )),
        "{err}"
    );

    // `require` against a server without TLS fails rather than falling back to plain text.
    let plain = Pg::start(&s);
    let out = s
        .cityd()
        .args(["db", "ensure", "--db-tls", "require"])
        .args(from_container(&plain).admin_args())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
