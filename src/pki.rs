//! The local root CA and the mobile-ready server certificate (placeholder).
