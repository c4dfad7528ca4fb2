//! The city's containers as a whole on one engine: `prepare` brings up the network, the volumes
//! and the images (remembering the ones that cannot be had), `converge` the containers' host
//! files and the coturn and Mattermost containers, each a reported step; `teardown` removes the
//! containers, the managed PostgreSQL's included (and with `purge` the volumes, its data volume
//! too, the network and the host files), never the vault, the PKI or the rendered files.

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

/// What `converge` builds the coturn and Mattermost containers from.
pub struct Inputs<'a> {
    pub city: &'a City,
    pub lan: &'a [IpAddr],
    pub state: &'a StateDir,
    pub rendered: Option<Rendered<'a>>,
    pub images: &'a Images,
}

/// The images the city runs, by ID when on this host, and the ones that are not and could not
/// be pulled (image, reason).
#[derive(Debug, Default)]
pub struct Images {
    pub coturn: Option<String>,
    pub mattermost: Option<String>,
    pub postgres: Option<String>,
    pub missing: Vec<(String, String)>,
}

impl Images {
    /// The error naming every missing image and how to `docker load` it, if any is missing.
    pub fn unavailable(&self) -> Option<DockerError> {
        (!self.missing.is_empty()).then(|| DockerError::ImagesUnavailable {
            images: self
                .missing
                .iter()
                .map(|(i, _)| i.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reasons: self
                .missing
                .iter()
                .map(|(i, r)| format!("{i}: {r}"))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

/// The objects that need no image first (the network, the volumes), then the images, each pulled
/// when missing; an image that cannot be had is reported and remembered, not fatal yet, so `up`
/// can still do every step that needs no image.
pub async fn prepare(
    engine: &Engine,
    city: &City,
    dry_run: bool,
    report: &mut Report,
) -> Result<Images, DockerError> {
    let names = Names::new(city);
    let prefix = names.prefix.clone();
    report.add(
        engine
            .ensure_network(&names.network(), &prefix, dry_run)
            .await?,
    );
    let mut volumes = names.volumes();
    if city.database.managed {
        volumes.push(names.postgres_volume());
    }
    for volume in volumes {
        report.add(engine.ensure_volume(&volume, &prefix, dry_run).await?);
    }
    let mut images = Images::default();
    let mut wanted = vec![&city.docker.coturn_image, &city.mattermost.image];
    if city.database.managed {
        wanted.push(&city.database.image);
    }
    for (i, image) in wanted.into_iter().enumerate() {
        let id = match engine.ensure_image(image, dry_run).await {
            Ok((id, step)) => {
                report.add(step);
                id
            }
            Err(DockerError::ImageUnavailable { image, reason }) => {
                report.add(
                    Step::new("image", image.clone(), Outcome::Skipped)
                        .detail("missing, and it cannot be pulled"),
                );
                images.missing.push((image, reason));
                None
            }
            Err(e) => return Err(e),
        };
        match i {
            0 => images.coturn = id,
            1 => images.mattermost = id,
            _ => images.postgres = id,
        }
    }
    Ok(images)
}

/// Converges coturn and Mattermost: their host files, then the containers (skipped, with the
/// reason, when an image is missing). `rendered` is `None` when the files cannot be rendered yet
/// (a dry run before the vault exists): the containers are then reported as to be created. Returns
/// the specs of the containers that were converged (or compared, in a dry run): coturn, then
/// Mattermost.
pub async fn converge(
    engine: &Engine,
    inputs: Inputs<'_>,
    dry_run: bool,
    report: &mut Report,
) -> Result<Vec<ContainerSpec>, DockerError> {
    let Inputs {
        city,
        lan,
        state,
        rendered,
        images,
    } = inputs;
    let names = Names::new(city);
    let prefix = names.prefix.clone();
    let later = |report: &mut Report, why: &str| {
        for name in names.containers() {
            report.add(Step::new("container", name, Outcome::WouldCreate).detail(why));
        }
    };
    let Some(rendered) = rendered else {
        later(report, "after the vault and the rendered files exist");
        return Ok(Vec::new());
    };
    let sources = Sources {
        city,
        lan,
        state,
        mattermost_env: rendered.mattermost_env,
        coturn_config: rendered.coturn_config,
        coturn_image_id: images.coturn.clone(),
        mattermost_image_id: images.mattermost.clone(),
    };
    let desired = match desired::desired(&sources) {
        Ok(d) => d,
        Err(DockerError::MissingInput { .. }) if dry_run => {
            later(report, "after the PKI exists");
            return Ok(Vec::new());
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

    let mut converged = Vec::new();
    for (files, spec, image) in [
        (&coturn_files, coturn, &images.coturn),
        (&mattermost_files, mattermost, &images.mattermost),
    ] {
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
        // Half a city is no use: with any image missing, no container starts.
        if !images.missing.is_empty() && !dry_run {
            let why = match image {
                None => format!("its image {} is missing", spec.image),
                Some(_) => "another image of the city is missing".to_string(),
            };
            report.add(Step::new("container", spec.name.clone(), Outcome::Skipped).detail(why));
            continue;
        }
        report.add(engine.ensure_container(&spec, &prefix, dry_run).await?);
        converged.push(spec);
    }
    Ok(converged)
}

/// Refuses a container named like the managed PostgreSQL that this city's cityd did not create
/// (a PostgreSQL the user runs under that name, say): nothing may touch it.
pub async fn refuse_foreign_postgres(engine: &Engine, city: &City) -> Result<(), DockerError> {
    let names = Names::new(city);
    let name = names.postgres();
    let Some(current) = engine.inspect(&name).await? else {
        return Ok(());
    };
    let labels = current.config.as_ref().and_then(|c| c.labels.as_ref());
    let ours = labels.is_some_and(|l| {
        l.get(super::spec::LABEL_CITY) == Some(&names.prefix)
            && l.get(super::spec::LABEL_ROLE).map(String::as_str) == Some("postgres")
    });
    if ours {
        Ok(())
    } else {
        Err(DockerError::ForeignContainer { name })
    }
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
    // PostgreSQL last: Mattermost holds connections to it until it stops.
    let mut containers = vec![names.mattermost(), names.coturn()];
    if city.database.managed {
        containers.push(names.postgres());
    }
    for name in containers {
        report.add(
            engine
                .remove_container(&name, &names.prefix, dry_run)
                .await?,
        );
    }
    if !purge {
        return Ok(());
    }
    let mut volumes = names.volumes();
    if city.database.managed {
        volumes.push(names.postgres_volume());
    }
    for volume in volumes {
        report.add(engine.remove_volume(&volume, dry_run).await?);
    }
    report.add(engine.remove_network(&names.network(), dry_run).await?);
    for dir in [
        state.mattermost_dir(),
        state.coturn_dir(),
        state.postgres_dir(),
    ] {
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
