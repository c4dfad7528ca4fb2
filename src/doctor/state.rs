//! The audit of the city's own state for `cityd doctor`: the vault, the LAN addresses, the PKI,
//! the rendered files, the PostgreSQL tenant (when the environment names an administrator) and the
//! containers on this Docker host. Reads only.

use std::net::IpAddr;

use super::{Finding, Severity};
use crate::city::City;
use crate::postgres::{Admin, TlsMode};
use crate::render::Inputs as RenderInputs;
use crate::render::files::{self, Target, TurnSecret};
use crate::secrets::Vault;
use crate::state::StateDir;

/// What the audit looks at, resolved by the verb.
pub struct Inputs<'a> {
    pub city: &'a City,
    /// Where the description came from (named in the rendered files' header).
    pub origin: &'a str,
    pub state: &'a StateDir,
    pub vault: &'a Vault,
    /// The city's LAN addresses, or why they did not resolve.
    pub lan: Result<&'a [IpAddr], &'a anyhow::Error>,
    /// The PostgreSQL administrator when the environment names one (or why it is unusable), with
    /// the TLS mode; `None` leaves the tenant alone.
    pub database: Option<(Result<&'a Admin, &'a anyhow::Error>, TlsMode)>,
}

/// Every finding about the city's state, in the order the parts are looked at.
pub async fn audit(inputs: &Inputs<'_>) -> anyhow::Result<Vec<Finding>> {
    let Inputs {
        city, state, vault, ..
    } = *inputs;
    let mut findings = super::audit_vault(vault);
    let lan = match inputs.lan {
        Ok(lan) => lan,
        Err(e) => {
            findings.push(Finding::new(
                Severity::Error,
                "lan-unresolved",
                "lan.addresses",
                format!("{e:#}"),
                "set lan.addresses in the city description",
            ));
            return Ok(findings);
        }
    };
    let pki = crate::pki::inspect(state)?;
    findings.extend(super::audit_pki(
        pki.as_ref(),
        &crate::pki::wanted_sans(city, lan),
    ));
    let render = RenderInputs {
        city,
        lan,
        origin: inputs.origin,
    };
    // Without the vault there is nothing to compare against; the vault findings already say so.
    let [mattermost_env, coturn_config] =
        Target::ALL.map(|target| files::text(target, &render, vault, TurnSecret::Inline).ok());
    for (target, expected) in Target::ALL.iter().zip([&mattermost_env, &coturn_config]) {
        if let Some(expected) = expected {
            findings.extend(super::audit_rendered(
                &target.default_path(state),
                expected,
                target.command(),
            ));
        }
    }
    if let Some((admin, mode)) = inputs.database {
        findings.extend(crate::postgres::audit::schema_findings(city, state, admin, mode).await);
    }
    if let (Some(env), Some(conf)) = (&mattermost_env, &coturn_config) {
        findings.extend(
            crate::docker::audit::city_findings(&crate::docker::desired::Sources {
                city,
                lan,
                state,
                mattermost_env: env,
                coturn_config: conf,
                coturn_image_id: None,
                mattermost_image_id: None,
            })
            .await,
        );
    }
    Ok(findings)
}
