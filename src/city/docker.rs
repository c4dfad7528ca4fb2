//! `[docker]`: how `cityd up` names and pins what it runs on a Docker host.

use serde::{Deserialize, Serialize};

use super::rules::{ImagePin, Problems, docker_name_rule, image_pin};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerHost {
    /// Prepended to every container, network and volume name. Empty keeps the blog's names
    /// (`mattermost`, `coturn`, `cicd-net`, `mattermost-data`, ...); tests use it to run cities side by side.
    pub prefix: String,
    /// The network Mattermost joins (and PostgreSQL, when it runs in a container).
    pub network: String,
    /// Pinned coturn image. cityd's coturn configuration targets coturn before 4.9.0.
    pub coturn_image: String,
}

impl DockerHost {
    pub(super) fn check(&self, out: &mut Problems) {
        // The prefix is not a name by itself but the start of every name `up` builds; judged as
        // the start of one ("x" stands for the base names, mattermost, coturn, cicd-net, ...).
        if !self.prefix.is_empty()
            && let Some(rule) = docker_name_rule(&format!("{}x", self.prefix))
        {
            out.bad(
                "docker.prefix",
                &self.prefix,
                format!("starts every container, volume and network name, so it {rule}"),
            );
        }
        out.rule(
            "docker.network",
            &self.network,
            docker_name_rule(&self.network),
        );
        match image_pin(&self.coturn_image) {
            ImagePin::Tag(tag) if tag != "latest" => {}
            ImagePin::Digest => {}
            _ => out.bad(
                "docker.coturn_image",
                &self.coturn_image,
                "must carry a pinned version tag, e.g. coturn/coturn:4.6.3",
            ),
        }
    }
}
