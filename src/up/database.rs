//! The managed PostgreSQL step of `up` (`[database] managed = true`): its leaf from the city CA,
//! its host files, its container, a wait on its health check, and the administrator connection
//! `db ensure` then uses: the superuser from the vault, through the port published on 127.0.0.1,
//! TLS verified against the city CA (the leaf names 127.0.0.1).

use std::time::Duration;

use anyhow::Context as _;

use crate::city::City;
use crate::docker::city::Images;
use crate::docker::spec::Names;
use crate::docker::{Engine, health, postgres as pg};
use crate::postgres::Admin;
use crate::report::{Outcome, Report, Step};
use crate::secrets::{SecretName, Vault};
use crate::state::StateDir;

/// How long a first initialisation of the volume may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(180);

/// Converges the managed server and returns how cityd reaches it as administrator, or `None`
/// when it is not running (yet): a dry run before it exists, or its image is missing.
pub async fn converge(
    engine: &Engine,
    city: &City,
    state: &StateDir,
    vault: &Vault,
    images: &Images,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<Option<Admin>> {
    let names = Names::new(city);
    let name = names.postgres();
    let leaf = crate::pki::ensure_service_leaf(state, pg::LEAF, &pg::sans(city), dry_run)
        .context("the managed PostgreSQL's certificate")?;
    let (cert_path, _) = crate::pki::service_paths(state, pg::LEAF);
    report.add(
        Step::new(
            "pki",
            cert_path.display().to_string(),
            Outcome::created_if(leaf.issued, dry_run),
        )
        .detail(leaf.why.clone()),
    );
    let password = match vault.get(SecretName::PostgresSuperuserPassword) {
        Ok(p) => p,
        Err(_) if dry_run => {
            report.add(
                Step::new("container", name, Outcome::WouldCreate).detail("after the vault exists"),
            );
            return Ok(None);
        }
        Err(e) => return Err(e).context("the managed PostgreSQL's superuser password"),
    };
    let files = pg::host_files(state, &leaf.cert_pem, &leaf.key_pem, password.expose());
    let changed = if dry_run {
        files.pending()
    } else {
        files.apply()?
    };
    report.add(Step::new(
        "files",
        files.container,
        Outcome::updated_if(!changed.is_empty(), dry_run),
    ));
    let image_id = images.postgres.clone();
    if !images.missing.is_empty() && !dry_run {
        let why = match image_id {
            None => format!("its image {} is missing", city.database.image),
            Some(_) => "another image of the city is missing".to_string(),
        };
        report.add(Step::new("container", name, Outcome::Skipped).detail(why));
        return Ok(None);
    }
    let image_id = image_id.unwrap_or_else(|| "absent".into());
    let mut inputs = files.digests();
    inputs.insert("image".into(), image_id);
    let spec = pg::spec(city, state, inputs);
    report.add(
        engine
            .ensure_container(&spec, &names.prefix, dry_run)
            .await?,
    );
    if dry_run && !engine.has_spec(&spec).await? {
        return Ok(None);
    }
    if !dry_run {
        for waited in
            health::wait_healthy(engine, std::slice::from_ref(&name), HEALTH_TIMEOUT).await?
        {
            report.add(health_step(&waited));
        }
    }
    let container = engine.inspect(&name).await?;
    let Some(port) = container
        .as_ref()
        .and_then(|c| health::published_port(c, pg::PORT))
    else {
        anyhow::bail!(
            "the managed PostgreSQL container {name} publishes no port on 127.0.0.1; remove it \
(`docker rm -f {name}`; its data volume stays) and run `cityd up` again"
        );
    };
    Ok(Some(Admin {
        host: "127.0.0.1".into(),
        port,
        user: pg::SUPERUSER.into(),
        dbname: "postgres".into(),
        password: Some(password),
    }))
}

/// One container `up` waited on, as a step: what proved it healthy, and after how long.
pub fn health_step(waited: &health::Waited) -> Step {
    Step::new("health", waited.name.clone(), Outcome::Unchanged).detail(format!(
        "healthy after {:.1}s: {}",
        waited.seconds, waited.command
    ))
}
