//! PostgreSQL's lines: version, the tenant database's size, connections against the limit. The
//! managed server is reached as cityd reaches it in `up` (superuser from the vault, loopback port,
//! TLS verified against the city CA); another server only when CITYD_DB_ADMIN_URL names it.

use std::time::Duration;

use super::{Inputs, Line};
use crate::docker::spec::Names;
use crate::docker::{Engine, health, postgres as pg};
use crate::flags::postgres_admin::AdminArgs;
use crate::postgres::session::Session;
use crate::postgres::{Admin, Tls, TlsMode};
use crate::secrets::SecretName;

const TIMEOUT: Duration = Duration::from_secs(3);

pub async fn lines(engine: Option<&Engine>, inputs: &Inputs<'_>) -> Vec<Line> {
    let city = inputs.city;
    let (admin, mode, fix) = if city.database.managed {
        let name = Names::new(city).postgres();
        let fix =
            format!("`cityd up` starts it; `docker logs --tail 50 {name}` shows why it stopped");
        let Some(engine) = engine else {
            return vec![Line::red(
                "postgres",
                "server",
                "the Docker engine is unreachable",
                fix,
            )];
        };
        let port = match engine.inspect(&name).await {
            Ok(Some(c)) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {
                health::published_port(&c, pg::PORT)
            }
            _ => None,
        };
        let Some(port) = port else {
            return vec![Line::red(
                "postgres",
                "server",
                format!("{name} is not running"),
                fix,
            )];
        };
        let Ok(password) = inputs.vault.get(SecretName::PostgresSuperuserPassword) else {
            return vec![Line::red(
                "postgres",
                "server",
                "the superuser's password is not in the vault",
                "`cityd secrets ensure`",
            )];
        };
        let admin = Admin {
            host: "127.0.0.1".into(),
            port,
            user: pg::SUPERUSER.into(),
            dbname: "postgres".into(),
            password: Some(password),
        };
        (admin, TlsMode::Require, fix)
    } else {
        let Some(args) = AdminArgs::from_env() else {
            return vec![Line::yellow(
                "postgres",
                "server",
                format!(
                    "not checked: {}:{} is not run by cityd",
                    city.database.host, city.database.port
                ),
                "set CITYD_DB_ADMIN_URL (and CITYD_DB_ADMIN_PASSWORD_FILE) to let status look at it",
            )];
        };
        match args.admin() {
            Ok(admin) => (
                admin,
                args.tls_mode(city),
                "check the server named by CITYD_DB_ADMIN_URL".to_string(),
            ),
            Err(e) => {
                return vec![Line::red(
                    "postgres",
                    "server",
                    format!("{e:#}"),
                    "fix CITYD_DB_ADMIN_URL / CITYD_DB_ADMIN_PASSWORD_FILE",
                )];
            }
        }
    };
    match tokio::time::timeout(TIMEOUT, read(&admin, mode, inputs)).await {
        Ok(Ok(lines)) => lines,
        Ok(Err(e)) => vec![Line::red("postgres", "server", e, fix)],
        Err(_) => vec![Line::red(
            "postgres",
            "server",
            format!(
                "no answer from {} within {}s",
                admin.server(),
                TIMEOUT.as_secs()
            ),
            fix,
        )],
    }
}

async fn read(admin: &Admin, mode: TlsMode, inputs: &Inputs<'_>) -> Result<Vec<Line>, String> {
    let tls = Tls::load(mode, &inputs.state.ca_pem()).map_err(|e| e.to_string())?;
    let session = Session::admin(admin, &admin.dbname, &tls)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let db = inputs.city.database.name.as_str();
    let rows = session
        .rows(
            "read the server's status",
            "SELECT current_setting('server_version'), \
                    (SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1), \
                    (SELECT count(*) FROM pg_stat_activity WHERE datname = $1), \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                    current_setting('max_connections')::bigint",
            &[&db],
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
    let row = rows.first().ok_or("the status query returned no row")?;
    let version: String = row.get(0);
    let size: Option<i64> = row.get(1);
    let tenant: i64 = row.get(2);
    let clients: i64 = row.get(3);
    let max: i64 = row.get(4);
    let mut lines = vec![Line::green(
        "postgres",
        "server",
        format!(
            "PostgreSQL {version} at {}{}",
            session.server,
            if session.tls { ", TLS" } else { "" }
        ),
    )];
    lines.push(match size {
        Some(bytes) => Line::green(
            "postgres",
            format!("database {db}"),
            format!("{:.1} MiB", bytes as f64 / 1048576.0),
        ),
        None => Line::red(
            "postgres",
            format!("database {db}"),
            "absent",
            "`cityd up` (or `cityd db ensure`) creates the tenant",
        ),
    });
    let text = format!("{clients} of {max} connections ({tenant} to {db})");
    lines.push(if clients * 10 >= max * 9 {
        Line::yellow(
            "postgres",
            "connections",
            text,
            "raise max_connections or find the client holding them (pg_stat_activity)",
        )
    } else {
        Line::green("postgres", "connections", text)
    });
    Ok(lines)
}
