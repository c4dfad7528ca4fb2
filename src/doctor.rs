//! Findings with fixes (placeholder).
