//! Integration tests: turn.
