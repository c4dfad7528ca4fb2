//! The names of the secrets cityd generates (`SecretName`: file name, shape, and why), and the shape
//! and rule of any file name in the vault.

use super::{Secret, Shape, VaultError};

/// Every secret cityd generates: file name, shape, and what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretName {
    TurnStaticAuthSecret,
    MattermostAtRestEncryptKey,
    MattermostPublicLinkSalt,
    GitlabPluginEncryptionKey,
    JenkinsPluginEncryptionKey,
    GitlabPluginWebhookSecret,
    SonarqubeWebhookSecret,
    MattermostDbPassword,
    PostgresSuperuserPassword,
}

impl SecretName {
    pub const ALL: [SecretName; 9] = [
        SecretName::TurnStaticAuthSecret,
        SecretName::MattermostAtRestEncryptKey,
        SecretName::MattermostPublicLinkSalt,
        SecretName::GitlabPluginEncryptionKey,
        SecretName::JenkinsPluginEncryptionKey,
        SecretName::GitlabPluginWebhookSecret,
        SecretName::SonarqubeWebhookSecret,
        SecretName::MattermostDbPassword,
        SecretName::PostgresSuperuserPassword,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            SecretName::TurnStaticAuthSecret => "turn-static-auth-secret",
            SecretName::MattermostAtRestEncryptKey => "mattermost-at-rest-encrypt-key",
            SecretName::MattermostPublicLinkSalt => "mattermost-public-link-salt",
            SecretName::GitlabPluginEncryptionKey => "gitlab-plugin-encryption-key",
            SecretName::JenkinsPluginEncryptionKey => "jenkins-plugin-encryption-key",
            SecretName::GitlabPluginWebhookSecret => "gitlab-plugin-webhook-secret",
            SecretName::SonarqubeWebhookSecret => "sonarqube-webhook-secret",
            SecretName::MattermostDbPassword => "mattermost-db-password",
            SecretName::PostgresSuperuserPassword => "postgres-superuser-password",
        }
    }

    /// The shape values must have. Generated values have the minimum length of `AtLeast` shapes.
    ///
    /// The database password is "at least 32" rather than "exactly 32": cityd generates 32, but the
    /// blog's database script (`01-setup-database.sh`) generated 64 hex digits, and PostgreSQL
    /// already holds that password, so importing it must work.
    pub fn shape(self) -> Shape {
        match self {
            SecretName::TurnStaticAuthSecret
            | SecretName::GitlabPluginWebhookSecret
            | SecretName::SonarqubeWebhookSecret => Shape::Hex(64),
            SecretName::MattermostAtRestEncryptKey
            | SecretName::MattermostPublicLinkSalt
            | SecretName::MattermostDbPassword
            | SecretName::PostgresSuperuserPassword => Shape::AtLeast(32),
            SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
                Shape::Exactly(32)
            }
        }
    }

    /// The shape and why it is that shape, for error messages.
    pub fn rule(self) -> String {
        let why = match self {
            SecretName::TurnStaticAuthSecret => "the shared secret of coturn and Calls",
            SecretName::MattermostAtRestEncryptKey | SecretName::MattermostPublicLinkSalt => {
                "Mattermost refuses to start below 32"
            }
            SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
                "the plugin uses it as a 32-byte AES-256 key and fails on any other length when it encrypts"
            }
            SecretName::GitlabPluginWebhookSecret | SecretName::SonarqubeWebhookSecret => {
                "the token webhook senders present"
            }
            SecretName::MattermostDbPassword => {
                "it goes into the database URL, where other characters would need escaping"
            }
            SecretName::PostgresSuperuserPassword => {
                "the managed PostgreSQL's superuser, set when its volume is first initialised"
            }
        };
        format!("{} ({why})", self.shape().rule())
    }

    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.file_name() == name)
    }

    /// A fresh value of this secret's shape from the OS random source.
    pub fn generate(self) -> Result<Secret, VaultError> {
        self.shape().generate()
    }
}

/// Shape of any file in the vault: generated secrets have theirs, stored ones (webhook URLs, tokens) are opaque.
pub fn shape_of(file_name: &str) -> Shape {
    SecretName::from_file_name(file_name).map_or(Shape::Opaque, SecretName::shape)
}

/// The rule for any file in the vault, with the reason for generated ones.
pub fn rule_of(file_name: &str) -> String {
    SecretName::from_file_name(file_name).map_or_else(|| Shape::Opaque.rule(), SecretName::rule)
}
