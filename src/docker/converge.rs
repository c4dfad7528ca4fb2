//! Converging Docker objects through the engine: the network, the volumes, images (pulled with
//! progress when missing), and containers replaced only when their spec digest changed. Every
//! operation reports created / updated / unchanged (or what it would do in a dry run).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::DockerError;
use super::spec::{ContainerSpec, LABEL_CITY, LABEL_SPEC};

pub use crate::report::{Outcome, Step};

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The engine, and where it is (for error messages).
pub struct Engine {
    docker: Docker,
    endpoint: String,
}

impl Engine {
    pub fn new(docker: Docker, endpoint: String) -> Self {
        Self { docker, endpoint }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    fn fail(
        &self,
        action: &'static str,
        subject: &str,
    ) -> impl FnOnce(BollardError) -> DockerError + '_ {
        let subject = subject.to_string();
        move |source| DockerError::Engine {
            endpoint: self.endpoint.clone(),
            action,
            subject,
            source: Box::new(source),
        }
    }

    fn labels(prefix: &str) -> HashMap<String, String> {
        HashMap::from([(LABEL_CITY.to_string(), prefix.to_string())])
    }

    /// Creates the bridge network `name` unless it exists (whoever made it: PostgreSQL may share it).
    pub async fn ensure_network(
        &self,
        name: &str,
        prefix: &str,
        dry_run: bool,
    ) -> Result<Step, DockerError> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => return Ok(Step::new("network", name, Outcome::Unchanged)),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(self.fail("inspect network", name)(e)),
        }
        if !dry_run {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(Self::labels(prefix)),
                ..Default::default()
            };
            self.docker
                .create_network(request)
                .await
                .map_err(self.fail("create network", name))?;
        }
        Ok(Step::new("network", name, Outcome::created(dry_run)))
    }

    /// Creates the named volume unless it exists; an existing volume (and its data) is kept as is.
    pub async fn ensure_volume(
        &self,
        name: &str,
        prefix: &str,
        dry_run: bool,
    ) -> Result<Step, DockerError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(Step::new("volume", name, Outcome::Unchanged)),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(self.fail("inspect volume", name)(e)),
        }
        if !dry_run {
            let request = VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(Self::labels(prefix)),
                ..Default::default()
            };
            self.docker
                .create_volume(request)
                .await
                .map_err(self.fail("create volume", name))?;
        }
        Ok(Step::new("volume", name, Outcome::created(dry_run)))
    }

    /// The local image's ID, or None when the image is not on this host.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail("inspect image", image)(e)),
        }
    }

    /// Makes sure `image` is on this host, pulling it with progress on stderr when it is not.
    /// Returns its ID and the step.
    pub async fn ensure_image(
        &self,
        image: &str,
        dry_run: bool,
    ) -> Result<(Option<String>, Step), DockerError> {
        if let Some(id) = self.image_id(image).await? {
            return Ok((Some(id), Step::new("image", image, Outcome::Unchanged)));
        }
        if dry_run {
            return Ok((
                None,
                Step::new("image", image, Outcome::WouldCreate).detail("would pull"),
            ));
        }
        self.pull(image).await?;
        let id = self
            .image_id(image)
            .await?
            .ok_or_else(|| DockerError::ImageUnavailable {
                image: image.to_string(),
                reason: "the engine reported a finished pull but has no such image".into(),
            })?;
        Ok((
            Some(id),
            Step::new("image", image, Outcome::Created).detail("pulled"),
        ))
    }

    async fn pull(&self, image: &str) -> Result<(), DockerError> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut last: HashMap<String, String> = HashMap::new();
        let started = Instant::now();
        eprintln!("pulling {image}");
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::ImageUnavailable {
                image: image.to_string(),
                reason: e.to_string(),
            })?;
            // One line per layer and state change; byte-level progress would flood a log.
            let status = info.status.unwrap_or_default();
            let id = info.id.unwrap_or_default();
            if last.get(&id) != Some(&status) {
                eprintln!(
                    "  {image} {id} {status} ({:.0}s)",
                    started.elapsed().as_secs_f32()
                );
                last.insert(id, status);
            }
        }
        Ok(())
    }

    pub async fn inspect(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail("inspect container", name)(e)),
        }
    }

    /// Whether the container `spec` names exists and was created from this very spec (its label
    /// holds the spec's digest), running or not.
    pub async fn has_spec(&self, spec: &ContainerSpec) -> Result<bool, DockerError> {
        let current = self.inspect(&spec.name).await?;
        Ok(current
            .as_ref()
            .and_then(|c| c.config.as_ref())
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_SPEC))
            .is_some_and(|d| *d == spec.digest()))
    }

    /// Creates the container if it is missing, replaces it if its spec digest differs, starts it
    /// if it is stopped, and otherwise leaves it running untouched.
    pub async fn ensure_container(
        &self,
        spec: &ContainerSpec,
        prefix: &str,
        dry_run: bool,
    ) -> Result<Step, DockerError> {
        let name = spec.name.as_str();
        let wanted = spec.digest();
        let step = |outcome| Step::new("container", name, outcome);
        let Some(current) = self.inspect(name).await? else {
            if !dry_run {
                self.create_and_start(spec, prefix).await?;
            }
            return Ok(step(Outcome::created(dry_run)).detail(short(&wanted)));
        };
        let labels = current
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let running = current
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        match labels.get(LABEL_SPEC) {
            Some(have) if *have == wanted => {
                if running {
                    return Ok(step(Outcome::Unchanged));
                }
                if !dry_run {
                    self.docker
                        .start_container(name, None)
                        .await
                        .map_err(self.fail("start container", name))?;
                }
                let outcome = if dry_run {
                    Outcome::WouldUpdate
                } else {
                    Outcome::Updated
                };
                Ok(step(outcome).detail("started: it had the current spec but was not running"))
            }
            have => {
                let why = match have {
                    Some(have) => format!("spec {} -> {}", short(have), short(&wanted)),
                    None => "replaces a container cityd did not create".to_string(),
                };
                if dry_run {
                    return Ok(step(Outcome::WouldUpdate).detail(why));
                }
                self.remove(name).await?;
                self.create_and_start(spec, prefix).await?;
                Ok(step(Outcome::Updated).detail(format!("recreated: {why}")))
            }
        }
    }

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        prefix: &str,
    ) -> Result<(), DockerError> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        self.docker
            .create_container(Some(options), spec.create_body(prefix))
            .await
            .map_err(self.fail("create container", &spec.name))?;
        self.docker
            .start_container(&spec.name, None)
            .await
            .map_err(self.fail("start container", &spec.name))?;
        Ok(())
    }

    /// Stops (graceful, then killed after the engine's timeout) and removes a container.
    async fn remove(&self, name: &str) -> Result<(), DockerError> {
        let stop = StopContainerOptionsBuilder::default().t(30).build();
        match self.docker.stop_container(name, Some(stop)).await {
            Ok(()) => {}
            // 304: already stopped; 404: already gone.
            Err(BollardError::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => {}
            Err(e) => return Err(self.fail("stop container", name)(e)),
        }
        let rm = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(rm)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.fail("remove container", name)(e)),
        }
    }

    /// Removes the container if this city created it; leaves foreign containers alone.
    pub async fn remove_container(
        &self,
        name: &str,
        prefix: &str,
        dry_run: bool,
    ) -> Result<Step, DockerError> {
        let step = |outcome| Step::new("container", name, outcome);
        let Some(current) = self.inspect(name).await? else {
            return Ok(step(Outcome::Unchanged).detail("absent"));
        };
        let city = current
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_CITY).cloned());
        if city.as_deref() != Some(prefix) {
            return Ok(
                step(Outcome::Skipped).detail("not created by this city's cityd; left alone")
            );
        }
        if dry_run {
            return Ok(step(Outcome::WouldRemove));
        }
        self.remove(name).await?;
        Ok(step(Outcome::Removed))
    }

    pub async fn remove_volume(&self, name: &str, dry_run: bool) -> Result<Step, DockerError> {
        let step = |outcome| Step::new("volume", name, outcome);
        match self.docker.inspect_volume(name).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(step(Outcome::Unchanged).detail("absent")),
            Err(e) => return Err(self.fail("inspect volume", name)(e)),
        }
        if dry_run {
            return Ok(step(Outcome::WouldRemove));
        }
        let options = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(step(Outcome::Removed)),
            Err(e) if is_not_found(&e) => Ok(step(Outcome::Unchanged).detail("absent")),
            Err(e) => Err(self.fail("remove volume", name)(e)),
        }
    }

    /// Removes the network unless something else (PostgreSQL, say) is still attached to it.
    pub async fn remove_network(&self, name: &str, dry_run: bool) -> Result<Step, DockerError> {
        let step = |outcome| Step::new("network", name, outcome);
        let network = match self.docker.inspect_network(name, None).await {
            Ok(n) => n,
            Err(e) if is_not_found(&e) => return Ok(step(Outcome::Unchanged).detail("absent")),
            Err(e) => return Err(self.fail("inspect network", name)(e)),
        };
        let users: Vec<String> = network
            .containers
            .unwrap_or_default()
            .values()
            .filter_map(|c| c.name.clone())
            .collect();
        if !users.is_empty() {
            return Ok(step(Outcome::Skipped).detail(format!("still used by {}", users.join(", "))));
        }
        if dry_run {
            return Ok(step(Outcome::WouldRemove));
        }
        self.docker
            .remove_network(name)
            .await
            .map_err(self.fail("remove network", name))?;
        Ok(step(Outcome::Removed))
    }

    /// Restarts the existing container `name` (stop with the engine's grace period, then start);
    /// a missing container is an error naming it, since there is nothing cityd could start.
    pub async fn restart_container(&self, name: &str) -> Result<(), DockerError> {
        match self
            .docker
            .restart_container(
                name,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(DockerError::NoSuchContainer {
                name: name.to_string(),
                endpoint: self.endpoint.clone(),
            }),
            Err(e) => Err(self.fail("restart container", name)(e)),
        }
    }

    /// Fails with the container's last log lines if it is not running (any more).
    pub async fn require_running(&self, name: &str) -> Result<(), DockerError> {
        let current = self.inspect(name).await?;
        let state = current.as_ref().and_then(|c| c.state.clone());
        if state.as_ref().and_then(|s| s.running).unwrap_or(false) {
            return Ok(());
        }
        Err(DockerError::Exited {
            name: name.to_string(),
            state: state
                .as_ref()
                .and_then(|s| s.status)
                .map_or_else(|| "absent".to_string(), |s| s.to_string()),
            exit_code: state.and_then(|s| s.exit_code).unwrap_or(-1),
            logs: self.tail_logs(name, 20).await,
        })
    }

    /// The container's last `lines` log lines (stdout and stderr), indented; never fails.
    async fn tail_logs(&self, name: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
