//! Pure renderers (placeholder).
