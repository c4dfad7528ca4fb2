//! The Docker host executor, through the engine's API (bollard): connecting with a negotiated API
//! version, and the errors that name what failed. Submodules: `spec` (containers as pure data),
//! `desired` (the city's specs and host files), `host` (the files and directories containers
//! mount), `converge` (one object at a time: create/replace/remove with reports), `city` (the
//! city's whole container converge and teardown), `audit` (read-only checks for `cityd doctor`).

pub mod audit;
pub mod city;
pub mod converge;
pub mod desired;
pub mod health;
pub mod host;
pub mod postgres;
pub mod spec;

use bollard::Docker;
use thiserror::Error;

pub use converge::{Engine, Outcome, Step};

#[derive(Debug, Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine at {endpoint}; start it (systemctl start docker), \
or point DOCKER_HOST at a running engine"
    )]
    Unreachable {
        endpoint: String,
        // Boxed: bollard's error is large, and every `Result<_, DockerError>` would carry its size.
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error("the Docker engine at {endpoint} failed to {action} {subject}")]
    Engine {
        endpoint: String,
        action: &'static str,
        subject: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error(
        "image {image} is not on this host and cannot be pulled: {reason}. Without registry access, \
save it where it can be pulled (`docker pull {image} && docker save {image} -o image.tar`), copy \
image.tar here and run `docker load -i image.tar`, then `cityd up` again"
    )]
    ImageUnavailable { image: String, reason: String },
    #[error(
        "container {name} stopped while cityd waited for it (state {state}, exit code {exit_code}); \
its last log lines:\n{logs}\nfix the cause, then run `cityd up` again"
    )]
    Exited {
        name: String,
        state: String,
        exit_code: i64,
        logs: String,
    },
    #[error(
        "container {name} is unhealthy: its health check `{command}` fails ({output}); see \
`docker logs {name}`, fix the cause, then run `cityd up` again"
    )]
    Unhealthy {
        name: String,
        command: String,
        output: String,
    },
    #[error(
        "{names} did not turn healthy within {seconds}s; see `docker inspect --format \
'{{{{json .State.Health}}}}' <name>` and `docker logs <name>`, then run `cityd up` again"
    )]
    HealthTimeout { names: String, seconds: u64 },
    #[error(
        "a container named {name} already exists and cityd did not create it (it carries no \
org.cityd.city label for this city); with [database] managed = true cityd runs its own PostgreSQL \
under that name. Either point the city at that server (set [database] managed = false and its \
host), or remove or rename that container (`docker rename {name} {name}-old`), then run `cityd up` \
again. Nothing was changed"
    )]
    ForeignContainer { name: String },
    #[error(
        "missing images, and they cannot be pulled here: {images}. Every step that needs no image \
is done. Without registry access, on a machine that has them run `docker pull <image> && \
docker save <image> -o image.tar`, copy each image.tar here and run `docker load -i image.tar`, \
then `cityd up` again ({reasons})"
    )]
    ImagesUnavailable { images: String, reasons: String },
    #[error(
        "there is no container {name} on the Docker engine at {endpoint} (`docker ps -a` lists \
the containers there)"
    )]
    NoSuchContainer { name: String, endpoint: String },
    #[error("cannot prepare {path} for the {container} container")]
    HostFile {
        path: std::path::PathBuf,
        container: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is missing: the {container} container mounts it; {fix}")]
    MissingInput {
        path: std::path::PathBuf,
        container: &'static str,
        fix: &'static str,
    },
}

/// Where the engine is, as the user would name it (DOCKER_HOST or the default socket).
pub fn endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Connects to the engine named by DOCKER_HOST (default: the local socket) and negotiates the
/// API version, so an older engine (this code speaks 1.52, Debian 12 ships 1.41) still works.
pub async fn connect() -> Result<Engine, DockerError> {
    let endpoint = endpoint();
    let unreachable = |source| DockerError::Unreachable {
        endpoint: endpoint.clone(),
        source: Box::new(source),
    };
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    Ok(Engine::new(docker, endpoint))
}
