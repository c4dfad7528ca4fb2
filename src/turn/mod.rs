//! STUN/TURN codec, credentials and probe (placeholder).
