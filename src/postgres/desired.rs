//! The tenant the city describes, computed without I/O: the role and database names from
//! `[database]`, the vault's password and the SCRAM verifier that stands for it on the server.

use super::scram;
use crate::city::City;
use crate::render::{Inputs, mattermost_env};
use crate::secrets::Secret;

/// The tenant as the city describes it.
pub struct Tenant<'a> {
    pub role: &'a str,
    pub database: &'a str,
    pub password: &'a Secret,
    /// What `CREATE ROLE` / `ALTER ROLE … PASSWORD` send: never the password itself.
    pub verifier: String,
}

impl<'a> Tenant<'a> {
    /// The tenant of `city` with the vault's `password`, its verifier made with `salt`.
    pub fn new(city: &'a City, password: &'a Secret, salt: &[u8]) -> Self {
        Self {
            role: &city.database.user,
            database: &city.database.name,
            password,
            verifier: scram::verifier(password.expose(), salt, scram::ITERATIONS),
        }
    }
}

/// The DSN Mattermost gets, with the password shown as the vault entry it comes from.
pub fn shown_dsn(city: &City) -> String {
    let inputs = Inputs {
        city,
        lan: &[],
        origin: "",
    };
    mattermost_env::database_dsn(
        &inputs,
        &Secret::new("<vault:mattermost-db-password>".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_the_citys_database_section_and_its_verifier_proves_the_password() {
        let city = City::default_city();
        let password = Secret::new("Passw0rd".into());
        let tenant = Tenant::new(&city, &password, b"0123456789abcdef");
        assert_eq!(tenant.role, city.database.user);
        assert_eq!(tenant.database, city.database.name);
        assert!(tenant.verifier.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!tenant.verifier.contains("Passw0rd"));
        assert!(scram::matches(&tenant.verifier, &password));
        assert!(shown_dsn(&city).contains("<vault:mattermost-db-password>"));
    }
}
