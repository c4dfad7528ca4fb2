//! The difference between the tenant and what the server holds, as the statements that close it:
//! pure, so every case is unit-tested without a server. A missing privilege is refused here,
//! before any statement runs.

use serde::Serialize;

use super::desired::Tenant;
use super::observe::{Password, Privileges, Schema, Server};

/// One statement `ensure` runs (or would run). What is shown never holds a password or verifier.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub what: String,
    pub statement: String,
    #[serde(skip)]
    sql: String,
}

impl Action {
    fn new(what: impl Into<String>, sql: String, shown: Option<String>) -> Self {
        Self {
            what: what.into(),
            statement: shown.unwrap_or_else(|| sql.clone()),
            sql,
        }
    }

    /// The statement as sent to the server.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// Shows what is shown: the statement sent may carry a verifier.
impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("what", &self.what)
            .field("statement", &self.statement)
            .finish()
    }
}

/// An action the administrator lacks the privilege for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub what: &'static str,
    pub needed: &'static str,
}

fn need(
    privileges: &Privileges,
    holds: bool,
    what: &'static str,
    needed: &'static str,
) -> Result<(), Refusal> {
    if privileges.superuser || holds {
        Ok(())
    } else {
        Err(Refusal { what, needed })
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const SHOWN_VERIFIER: &str = "'<SCRAM verifier of the vault password>'";

/// The role and the database: created when missing, corrected when they differ.
pub fn server(tenant: &Tenant, observed: &Server) -> Result<Vec<Action>, Refusal> {
    let privileges = &observed.privileges;
    let role = ident(tenant.role);
    let db = ident(tenant.database);
    let mut actions = Vec::new();
    match &observed.role {
        None => {
            need(
                privileges,
                privileges.create_role,
                "create the role",
                "CREATEROLE",
            )?;
            actions.push(Action::new(
                format!("create role {}", tenant.role),
                format!("CREATE ROLE {role} LOGIN PASSWORD '{}'", tenant.verifier),
                Some(format!(
                    "CREATE ROLE {role} LOGIN PASSWORD {SHOWN_VERIFIER}"
                )),
            ));
        }
        Some(existing) => {
            if !existing.can_login {
                need(
                    privileges,
                    privileges.create_role,
                    "let the role log in",
                    "CREATEROLE",
                )?;
                actions.push(Action::new(
                    format!("let role {} log in", tenant.role),
                    format!("ALTER ROLE {role} LOGIN"),
                    None,
                ));
            }
            if existing.password == Password::Differs {
                actions.push(set_password(tenant));
            }
        }
    }
    match &observed.database_owner {
        None => {
            need(
                privileges,
                privileges.create_db,
                "create the database",
                "CREATEDB",
            )?;
            actions.push(Action::new(
                format!(
                    "create database {} owned by {}",
                    tenant.database, tenant.role
                ),
                format!("CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8'"),
                None,
            ));
        }
        Some(owner) if owner != tenant.role => actions.push(Action::new(
            format!(
                "hand database {} from {owner} to {}",
                tenant.database, tenant.role
            ),
            format!("ALTER DATABASE {db} OWNER TO {role}"),
            None,
        )),
        Some(_) => {}
    }
    Ok(actions)
}

/// The password reset after logging in as the tenant showed the server holds another password.
pub fn password(tenant: &Tenant, privileges: &Privileges) -> Result<Action, Refusal> {
    need(
        privileges,
        privileges.create_role,
        "set the tenant's password",
        "CREATEROLE",
    )?;
    Ok(set_password(tenant))
}

fn set_password(tenant: &Tenant) -> Action {
    let role = ident(tenant.role);
    Action::new(
        format!("set the password of role {} from the vault", tenant.role),
        format!("ALTER ROLE {role} PASSWORD '{}'", tenant.verifier),
        Some(format!("ALTER ROLE {role} PASSWORD {SHOWN_VERIFIER}")),
    )
}

/// Schema `public` effectively owned by the tenant. In a dry run the database still has its old
/// owner, so `pg_database_owner` is judged by the owner the database is about to get: the tenant.
pub fn schema(tenant: &Tenant, observed: &Schema, dry_run: bool) -> Option<Action> {
    let role = ident(tenant.role);
    match observed {
        Schema::Missing => Some(Action::new(
            format!("create schema public owned by {}", tenant.role),
            format!("CREATE SCHEMA public AUTHORIZATION {role}"),
            None,
        )),
        Schema::Present {
            owner,
            database_owner,
        } => {
            let effective = if owner == "pg_database_owner" {
                if dry_run {
                    tenant.role
                } else {
                    database_owner.as_str()
                }
            } else {
                owner.as_str()
            };
            (effective != tenant.role).then(|| {
                Action::new(
                    format!("hand schema public from {owner} to {}", tenant.role),
                    format!("ALTER SCHEMA public OWNER TO {role}"),
                    None,
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::observe::Role;
    use super::*;
    use crate::city::City;
    use crate::secrets::Secret;

    const SUPER: Privileges = Privileges {
        superuser: true,
        create_role: false,
        create_db: false,
    };
    const NOBODY: Privileges = Privileges {
        superuser: false,
        create_role: false,
        create_db: false,
    };

    fn whats(actions: &[Action]) -> Vec<&str> {
        actions.iter().map(|a| a.what.as_str()).collect()
    }

    fn observed(role: Option<Role>, owner: Option<&str>, privileges: Privileges) -> Server {
        Server {
            version: "17.2".into(),
            privileges,
            role,
            database_owner: owner.map(str::to_string),
        }
    }

    const GOOD_ROLE: Role = Role {
        can_login: true,
        password: Password::Matches,
    };

    fn with_tenant(check: impl FnOnce(&Tenant)) {
        let city = City::default_city();
        let password = Secret::new("VaultPassw0rd".into());
        check(&Tenant::new(&city, &password, b"fixed-test-salt!"));
    }

    #[test]
    fn an_empty_server_gets_the_role_and_the_database_and_never_sees_the_password() {
        with_tenant(|t| {
            let actions = server(t, &observed(None, None, SUPER)).unwrap();
            assert_eq!(
                whats(&actions),
                [
                    "create role mattermost",
                    "create database mattermost owned by mattermost"
                ]
            );
            let create = &actions[0];
            assert!(create.sql().contains(&t.verifier));
            assert!(
                create
                    .statement
                    .contains("<SCRAM verifier of the vault password>")
            );
            assert!(!create.statement.contains("SCRAM-SHA-256$"));
            assert!(!format!("{create:?}").contains("SCRAM-SHA-256$"));
            assert!(!create.sql().contains("VaultPassw0rd"));
        });
    }

    #[test]
    fn a_converged_server_plans_nothing() {
        with_tenant(|t| {
            let actions = server(t, &observed(Some(GOOD_ROLE), Some("mattermost"), SUPER));
            assert_eq!(actions.unwrap(), []);
        });
    }

    #[test]
    fn the_blogs_trap_only_hands_the_database_over() {
        with_tenant(|t| {
            let actions = server(t, &observed(Some(GOOD_ROLE), Some("postgres"), SUPER)).unwrap();
            assert_eq!(
                whats(&actions),
                ["hand database mattermost from postgres to mattermost"]
            );
            assert_eq!(
                actions[0].sql(),
                "ALTER DATABASE \"mattermost\" OWNER TO \"mattermost\""
            );
        });
    }

    #[test]
    fn a_role_without_login_or_with_another_password_is_corrected() {
        with_tenant(|t| {
            let role = Role {
                can_login: false,
                password: Password::Differs,
            };
            let actions = server(t, &observed(Some(role), Some("mattermost"), SUPER)).unwrap();
            assert_eq!(
                whats(&actions),
                [
                    "let role mattermost log in",
                    "set the password of role mattermost from the vault"
                ]
            );
            // Unread (not superuser) is proven later by logging in, not planned here.
            let unread = Role {
                can_login: true,
                password: Password::Unread,
            };
            let privileges = Privileges {
                create_role: true,
                create_db: true,
                ..NOBODY
            };
            let actions = server(t, &observed(Some(unread), Some("mattermost"), privileges));
            assert_eq!(actions.unwrap(), []);
        });
    }

    #[test]
    fn missing_privileges_are_refused_before_anything_is_planned() {
        with_tenant(|t| {
            assert_eq!(
                server(t, &observed(None, None, NOBODY)).unwrap_err(),
                Refusal {
                    what: "create the role",
                    needed: "CREATEROLE"
                }
            );
            let can_create_roles = Privileges {
                create_role: true,
                ..NOBODY
            };
            assert_eq!(
                server(t, &observed(None, None, can_create_roles))
                    .unwrap_err()
                    .needed,
                "CREATEDB"
            );
            assert_eq!(
                password(t, &NOBODY).unwrap_err().what,
                "set the tenant's password"
            );
            assert!(password(t, &can_create_roles).is_ok());
        });
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("mattermost"), "\"mattermost\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn public_is_created_or_handed_over_unless_the_tenant_effectively_owns_it() {
        with_tenant(|t| {
            let present = |owner: &str, db: &str| Schema::Present {
                owner: owner.into(),
                database_owner: db.into(),
            };
            assert_eq!(
                schema(t, &Schema::Missing, false).unwrap().sql(),
                "CREATE SCHEMA public AUTHORIZATION \"mattermost\""
            );
            // PostgreSQL 15+: public belongs to pg_database_owner, so owning the database suffices.
            assert!(schema(t, &present("pg_database_owner", "mattermost"), false).is_none());
            assert!(schema(t, &present("mattermost", "postgres"), false).is_none());
            // A dry run judges by the owner the database is about to get.
            assert!(schema(t, &present("pg_database_owner", "postgres"), true).is_none());
            let handed = schema(t, &present("pg_database_owner", "postgres"), false).unwrap();
            assert_eq!(
                handed.what,
                "hand schema public from pg_database_owner to mattermost"
            );
            // PostgreSQL 14 and older: public belongs to postgres itself.
            let old = schema(t, &present("postgres", "mattermost"), true).unwrap();
            assert_eq!(old.sql(), "ALTER SCHEMA public OWNER TO \"mattermost\"");
        });
    }
}
