//! What the city wants on the Mattermost server, derived from the city description alone.

use crate::city::City;

/// The channel every team is created with; `wire` never creates it for a new team.
pub const TOWN_SQUARE: &str = "town-square";

/// Description of the tokens `wire` creates; only tokens with it are ever revoked by `wire`.
pub const TOKEN_DESCRIPTION: &str = "cityd wire";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub team: TeamSpec,
    pub channels: Vec<ChannelSpec>,
    pub admin: String,
    pub bots: Vec<BotSpec>,
    pub hooks: Vec<HookSpec>,
    /// Hook URLs are `<site_url>/hooks/<id>`.
    pub site_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSpec {
    pub name: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: String,
    pub display_name: String,
    pub purpose: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotSpec {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// The address of the user behind the bot; also how `wire` recognises a user it created
    /// but did not get to convert (an interrupted run).
    pub email: String,
    pub channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub channel: String,
    pub bot: String,
    pub display_name: String,
    pub description: String,
}

impl Desired {
    pub fn from_city(city: &City) -> Self {
        Self {
            team: TeamSpec {
                name: city.team.name.clone(),
                display_name: city.team.display_name.clone(),
            },
            channels: city
                .channels
                .iter()
                .map(|c| ChannelSpec {
                    name: c.name.clone(),
                    display_name: c.display_name.clone(),
                    purpose: c.purpose.clone(),
                })
                .collect(),
            admin: city.admin.username.clone(),
            bots: city
                .bots
                .iter()
                .map(|b| BotSpec {
                    name: b.name.clone(),
                    display_name: b.display_name.clone(),
                    description: b.description.clone(),
                    email: bot_email(&b.name, &city.domain),
                    channel: b.channel.clone(),
                })
                .collect(),
            hooks: city
                .webhooks
                .iter()
                .map(|h| HookSpec {
                    channel: h.channel.clone(),
                    bot: h.bot.clone(),
                    display_name: h.display_name.clone(),
                    description: h.description.clone(),
                })
                .collect(),
            site_url: city.site_url(),
        }
    }

    pub fn bot(&self, name: &str) -> Option<&BotSpec> {
        self.bots.iter().find(|b| b.name == name)
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.name == name)
    }

    pub fn hook_for(&self, channel: &str) -> Option<&HookSpec> {
        self.hooks.iter().find(|h| h.channel == channel)
    }

    /// The URL of a hook, as clients (Jenkins, GitLab, SonarQube) are given it.
    pub fn hook_url(&self, hook_id: &str) -> String {
        format!("{}/hooks/{hook_id}", self.site_url.trim_end_matches('/'))
    }

    /// Who must be a member of a channel: the admin everywhere, each bot in its own channel.
    pub fn channel_members(&self, channel: &str) -> Vec<&str> {
        let mut out = vec![self.admin.as_str()];
        out.extend(
            self.bots
                .iter()
                .filter(|b| b.channel.as_deref() == Some(channel))
                .map(|b| b.name.as_str()),
        );
        out
    }
}

fn bot_email(name: &str, domain: &str) -> String {
    format!("{name}@bots.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_city_wants_three_bots_and_three_hooks() {
        let d = Desired::from_city(&City::default_city());
        assert_eq!(d.team.name, "engineering");
        let bots: Vec<_> = d.bots.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(bots, ["jenkins-bot", "gitlab-bot", "sonarqube-bot"]);
        let hooks: Vec<_> = d
            .hooks
            .iter()
            .map(|h| (h.channel.as_str(), h.bot.as_str()))
            .collect();
        assert_eq!(
            hooks,
            [
                ("builds", "jenkins-bot"),
                ("alerts", "sonarqube-bot"),
                ("code-reviews", "gitlab-bot")
            ]
        );
        assert_eq!(
            d.hook_url("abc"),
            "https://mattermost.cicd.local:8065/hooks/abc"
        );
        assert_eq!(d.channel_members("builds"), ["admin", "jenkins-bot"]);
        assert_eq!(d.channel_members("town-square"), ["admin"]);
        assert_eq!(d.bots[0].email, "jenkins-bot@bots.cicd.local");
    }
}
