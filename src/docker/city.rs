//! The city's containers as a whole on one engine: `converge` brings up the network, the volumes,
//! the images, the containers' host files and both containers, in that order, each a reported
//! step; `teardown` removes the containers (and with `purge` the volumes, the network and the
//! host files), never the vault, the PKI or the rendered files.

use std::net::IpAddr;

use anyhow::Context as _;

use super::desired::{self, Desired, Sources};
use super::spec::{ContainerSpec, Names};
use super::{DockerError, Engine};
use crate::city::City;
use crate::report::{Outcome, Report, Step};
use crate::state::StateDir;

/// The rendered files the containers are made from.
#[derive(Clone, Copy)]
pub struct Rendered<'a> {
    pub mattermost_env: &'a str,
    pub coturn_config: &'a str,
}

/// Converges the city's Docker objects. `rendered` is `None` when the files cannot be rendered yet
/// (a dry run before the vault exists): the containers are then reported as to be created. Returns
/// Mattermost's spec when the containers were converged (or compared, in a dry run).
pub async fn converge(
    engine: &Engine,
    city: &City,
    lan: &[IpAddr],
    state: &StateDir,
    rendered: Option<Rendered<'_>>,
    dry_run: bool,
    report: &mut Report,
) -> Result<Option<ContainerSpec>, DockerError> {
    let names = Names::new(city);
    let prefix = names.prefix.clone();

    report.add(
        engine
            .ensure_network(&names.network(), &prefix, dry_run)
            .await?,
    );
    for volume in names.volumes() {
        report.add(engine.ensure_volume(&volume, &prefix, dry_run).await?);
    }
    let (coturn_image, step) = engine
        .ensure_image(&city.docker.coturn_image, dry_run)
        .await?;
    report.add(step);
    let (mattermost_image, step) = engine.ensure_image(&city.mattermost.image, dry_run).await?;
    report.add(step);

    let later = |report: &mut Report, why: &str| {
        for name in names.containers() {
            report.add(Step::new("container", name, Outcome::WouldCreate).detail(why));
        }
    };
    let Some(rendered) = rendered else {
        later(report, "after the vault and the rendered files exist");
        return Ok(None);
    };
    let sources = Sources {
        city,
        lan,
        state,
        mattermost_env: rendered.mattermost_env,
        coturn_config: rendered.coturn_config,
        coturn_image_id: coturn_image,
        mattermost_image_id: mattermost_image,
    };
    let desired = match desired::desired(&sources) {
        Ok(d) => d,
        Err(DockerError::MissingInput { .. }) if dry_run => {
            later(report, "after the PKI exists");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Desired {
        coturn,
        coturn_files,
        mattermost,
        mattermost_files,
        ..
    } = desired;

    for (files, spec) in [(&coturn_files, &coturn), (&mattermost_files, &mattermost)] {
        let changed = if dry_run {
            files.pending()
        } else {
            files.apply()?
        };
        let shown: Vec<String> = changed
            .iter()
            .filter_map(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        report.add(
            Step::new(
                "files",
                files.container,
                Outcome::updated_if(!changed.is_empty(), dry_run),
            )
            .detail(shown.join(", ")),
        );
        report.add(engine.ensure_container(spec, &prefix, dry_run).await?);
    }
    Ok(Some(mattermost))
}

/// Removes the city's containers, Mattermost first (it is the one that talks to coturn's clients).
/// With `purge`, also the volumes, the network (unless something else still uses it) and the
/// containers' host directories under the state directory.
pub async fn teardown(
    engine: &Engine,
    city: &City,
    state: &StateDir,
    purge: bool,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let names = Names::new(city);
    for name in [names.mattermost(), names.coturn()] {
        report.add(
            engine
                .remove_container(&name, &names.prefix, dry_run)
                .await?,
        );
    }
    if !purge {
        return Ok(());
    }
    for volume in names.volumes() {
        report.add(engine.remove_volume(&volume, dry_run).await?);
    }
    report.add(engine.remove_network(&names.network(), dry_run).await?);
    for dir in [state.mattermost_dir(), state.coturn_dir()] {
        let outcome = if !dir.exists() {
            Outcome::Unchanged
        } else {
            if !dry_run {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            Outcome::removed(dry_run)
        };
        report.add(Step::new("files", dir.display().to_string(), outcome));
    }
    Ok(())
}
