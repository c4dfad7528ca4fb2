//! The docker --env-file dialect: writer and parser (placeholder).
