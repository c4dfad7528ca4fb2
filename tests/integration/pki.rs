//! Integration tests: pki.
