//! Connecting Jenkins, GitLab and SonarQube to the city's Mattermost (`cityd connect`): one module
//! per product, the JCasC editor, the shared HTTP client, and the records cityd keeps of what it set.

pub mod http;
pub mod jcasc;
