//! Observation for plugins: the server's plugin list (GET only), read only when the city wants a
//! plugin. The server's config comes from the wiring's observation.

use super::desired::PluginSpec;
use crate::mattermost::client::ApiClient;
use crate::mattermost::error::ApiError;
use crate::mattermost::model::Plugins;

/// The installed plugins, or none without asking when the city wants none.
pub async fn observe(client: &ApiClient, specs: &[PluginSpec]) -> Result<Plugins, ApiError> {
    if specs.is_empty() {
        return Ok(Plugins::default());
    }
    client.get_plugins().await
}
