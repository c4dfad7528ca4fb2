//! `cityd status` against a managed city (filled in below).
