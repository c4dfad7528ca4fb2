//! Flag groups that more than one verb takes, each with what it resolves to.

pub mod postgres_admin;
