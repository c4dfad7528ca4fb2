//! `cityd up` as one library call: the whole city on a Docker host, in order: the vault, the PKI,
//! the rendered files, the network, volumes and images, the managed PostgreSQL (when
//! `[database] managed`) and its health, the PostgreSQL tenant, coturn and Mattermost, their
//! health and Mattermost's readiness, then the wiring. Images that cannot be had stop the run only
//! after every step that needs no image. Every step is reported into one `report::Report` as it completes; the run stops at the
//! first step that fails.

mod database;
mod ready;
mod wire;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::city::City;
use crate::docker::{self, city::Rendered};
use crate::mattermost::wiring::WireReport;
use crate::postgres::{self, Admin, TlsMode};
use crate::render::Inputs;
use crate::render::files::{self, Target, TurnSecret};
use crate::report::{Outcome, Report, Step};
use crate::secrets::Vault;
use crate::state::StateDir;

/// How `up` runs, as the verb's flags say.
pub struct Options<'a> {
    pub dry_run: bool,
    /// The tenant's administrator and TLS mode; `None` leaves the tenant alone (`--skip-db`).
    pub database: Option<(&'a Admin, TlsMode)>,
    /// Names the PostgreSQL step when it is skipped or put off (the admin URL as given).
    pub database_subject: &'a str,
    pub skip_wire: bool,
    /// How long Mattermost may take to answer on its local-mode socket.
    pub ready_timeout: Duration,
    /// Where the city description came from, named in the rendered files.
    pub origin: &'a str,
}

/// What the steps found beyond their outcomes, kept also when a later step fails.
#[derive(Debug, Default)]
pub struct Found {
    pub database: Option<postgres::Report>,
    /// The wiring's report (what `cityd wire --json` prints), in JSON mode.
    pub wire: Option<WireReport>,
}

/// `cityd up --json`: the steps, what they found, and why the run stopped if it failed.
#[derive(Debug, Serialize)]
pub struct Json<'a> {
    dry_run: bool,
    steps: &'a [Step],
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'a postgres::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wire: Option<&'a WireReport>,
    changed: bool,
    /// Why the run stopped, when it failed (the same text as on stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    seconds: f64,
}

impl<'a> Json<'a> {
    pub fn new(
        report: &'a Report,
        found: &'a Found,
        error: Option<&anyhow::Error>,
        elapsed: Duration,
    ) -> Self {
        Self {
            dry_run: report.dry_run,
            steps: &report.steps,
            database: found.database.as_ref(),
            wire: found.wire.as_ref(),
            changed: report.changed(),
            error: error.map(|e| format!("{e:#}")),
            seconds: elapsed.as_secs_f64(),
        }
    }
}

/// Every step in order; stops at the first that fails.
pub async fn converge(
    city: &City,
    state: &StateDir,
    vault: &Vault,
    lan: &[IpAddr],
    options: &Options<'_>,
    report: &mut Report,
    found: &mut Found,
) -> anyhow::Result<()> {
    let dry = options.dry_run;
    // Before anything is written: a container under the managed PostgreSQL's name that this
    // city's cityd did not create is the user's, and the run stops with nothing touched. An
    // unreachable engine is reported where the engine is first needed, after the steps that
    // need none.
    let engine = docker::connect().await;
    let managed = city.database.managed;
    if let (true, Ok(engine)) = (managed, &engine) {
        docker::city::refuse_foreign_postgres(engine, city)
            .await
            .map_err(|e| match e {
                e @ docker::DockerError::ForeignContainer { .. } => {
                    anyhow::Error::new(crate::exit::Coded::new(crate::exit::BAD_INPUT, e))
                }
                e => e.into(),
            })?;
    }
    if !dry {
        StateDir::create_private_dir(state.root())?;
    }

    // 1. The vault.
    let secrets = vault.converge(dry).context("the vault")?;
    let generated = secrets
        .secrets
        .iter()
        .filter(|s| s.action.changes_something())
        .count();
    let vault_ready = generated == 0 || !dry;
    report.add(
        Step::new(
            "vault",
            vault.dir().display().to_string(),
            Outcome::created_if(generated > 0, dry),
        )
        .detail(if generated > 0 {
            format!("{generated} secret(s)")
        } else {
            String::new()
        }),
    );

    // 2. The PKI.
    let pki_options = crate::pki::EnsureOptions {
        dry_run: dry,
        ..Default::default()
    };
    let pki = crate::pki::ensure(state, city, lan, &pki_options).context("the PKI")?;
    report.add(
        Step::new(
            "pki",
            pki.dir.display().to_string(),
            Outcome::updated_if(pki.changed, dry),
        )
        .detail(if pki.changed {
            format!(
                "CA {}, server certificate {}",
                pki.ca.as_str(),
                pki.server.as_str()
            )
        } else {
            String::new()
        }),
    );

    // 3. The rendered files.
    let inputs = Inputs {
        city,
        lan,
        origin: options.origin,
    };
    let mut texts = Vec::new();
    for target in Target::ALL {
        let path = target.default_path(state);
        if !vault_ready {
            report.add(
                Step::new("render", path.display().to_string(), Outcome::WouldCreate)
                    .detail("after the vault exists"),
            );
            continue;
        }
        let rendered = files::render(target, &inputs, vault, TurnSecret::Inline, &path, dry)?;
        report.add(rendered.step());
        texts.push(rendered.text);
    }

    // 4. The tenant on a server the admin flags name (an existing one) needs no Docker at all;
    //    on the managed server it comes after the server is healthy (step 5).
    let tenant = Tenant {
        city,
        state,
        vault,
        options,
        vault_ready,
        dry,
    };
    if !managed {
        tenant.ensure(None, report, found).await?;
    }

    // 5. The Docker objects that need no image, then the images (missing ones remembered), then
    //    the managed PostgreSQL and its tenant.
    let engine = engine?;
    let images = docker::city::prepare(&engine, city, dry, report).await?;
    if managed {
        let admin = database::converge(&engine, city, state, vault, &images, dry, report).await?;
        tenant.ensure(Some(admin), report, found).await?;
    }

    // 6. coturn and Mattermost, then their health and Mattermost's readiness.
    let rendered = match texts.as_slice() {
        [mattermost_env, coturn_config] => Some(Rendered {
            mattermost_env,
            coturn_config,
        }),
        _ => None,
    };
    let inputs = docker::city::Inputs {
        city,
        lan,
        state,
        rendered,
        images: &images,
    };
    let specs = docker::city::converge(&engine, inputs, dry, report).await?;
    if let Some(missing) = images.unavailable() {
        return Err(missing.into());
    }
    let mattermost = specs
        .into_iter()
        .find(|s| s.role == docker::spec::Role::Mattermost);
    let mattermost_running = match mattermost {
        None => false,
        // What a dry run of `wire` needs: Mattermost running with its current spec.
        Some(spec) if dry => engine.has_spec(&spec).await?,
        Some(spec) => {
            let waited = ready::wait(&engine, &spec.name, state, options.ready_timeout).await?;
            report.add(
                Step::new("ready", spec.name, Outcome::Unchanged)
                    .detail(format!("answered after {:.1}s", waited.as_secs_f64())),
            );
            let names = docker::spec::Names::new(city);
            let waited = docker::health::wait_healthy(
                &engine,
                &[names.coturn(), names.mattermost()],
                options.ready_timeout,
            )
            .await?;
            for w in &waited {
                report.add(database::health_step(w));
            }
            true
        }
    };

    // 7. The wiring.
    if options.skip_wire {
        report.add(Step::new("wire", "mattermost", Outcome::Skipped).detail("--skip-wire"));
    } else if dry && !mattermost_running {
        report.add(
            Step::new("wire", "mattermost", Outcome::Skipped)
                .detail("dry run: Mattermost is not up yet, so there is nothing to compare"),
        );
    } else {
        wire::wire(city, state, vault, report.json(), dry, &mut found.wire).await?;
    }
    Ok(())
}

/// The tenant step with what it needs from `converge`.
struct Tenant<'a> {
    city: &'a City,
    state: &'a StateDir,
    vault: &'a Vault,
    options: &'a Options<'a>,
    vault_ready: bool,
    dry: bool,
}

impl Tenant<'_> {
    /// `managed`: `None` for a server the admin flags name; `Some(admin)` for the managed server
    /// (`Some(None)` when it is not running yet).
    async fn ensure(
        &self,
        managed: Option<Option<Admin>>,
        report: &mut Report,
        found: &mut Found,
    ) -> anyhow::Result<()> {
        let subject = self.options.database_subject;
        let (admin, mode) = match (self.options.database, &managed) {
            (None, _) => {
                report.add(Step::new("postgres", subject, Outcome::Skipped).detail("--skip-db"));
                return Ok(());
            }
            (Some(_), _) if !self.vault_ready => {
                report.add(
                    Step::new("postgres", subject, Outcome::WouldCreate)
                        .detail("after the vault exists"),
                );
                return Ok(());
            }
            (Some(_), Some(None)) => {
                report.add(
                    Step::new("postgres", "managed", Outcome::Skipped)
                        .detail("after the managed PostgreSQL runs"),
                );
                return Ok(());
            }
            (Some(_), Some(Some(own))) => (own, TlsMode::Require),
            (Some((admin, mode)), None) => (admin, mode),
        };
        let tenant =
            postgres::ensure_tenant(self.city, self.state, self.vault, admin, mode, self.dry)
                .await
                .context("the PostgreSQL tenant step")?;
        report.add(tenant.step());
        found.database = Some(tenant);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_keeps_its_field_order_and_says_why_a_run_stopped() {
        let mut report = Report::quiet(true);
        report.add(Step::new("network", "cicd-net", Outcome::WouldCreate));
        let found = Found::default();
        let error = anyhow::anyhow!("engine gone").context("the containers");
        let json = serde_json::to_string(&Json::new(
            &report,
            &found,
            Some(&error),
            Duration::from_millis(1500),
        ))
        .unwrap();
        assert_eq!(
            json,
            r#"{"dry_run":true,"steps":[{"step":"network","subject":"cicd-net","outcome":"would-create"}],"changed":true,"error":"the containers: engine gone","seconds":1.5}"#
        );
        let found = Found {
            database: None,
            wire: Some(crate::mattermost::wiring::WireReport {
                target: "unix socket".into(),
                dry_run: false,
                items: Vec::new(),
                warnings: Vec::new(),
                blockers: Vec::new(),
                created: 0,
                updated: 0,
                unchanged: 0,
                applied: 0,
                requests: Default::default(),
                seconds: 0.0,
                error: None,
            }),
        };
        let json = serde_json::to_value(Json::new(&report, &found, None, Duration::ZERO)).unwrap();
        assert_eq!(json["wire"]["created"], 0);
        assert!(json.get("error").is_none() && json.get("database").is_none());
    }
}
