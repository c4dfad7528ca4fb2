//! The one integration-test binary: a module per area, sharing the fixtures in `common`.
//! Tests run the real `cityd` binary and real tools (openssl, coturn); missing tools fail loudly.

mod common;
// city description, `config check|show`
mod config;
// the command line resolved once: one read of the city description per run
mod resolve;
// the vault: shapes, crash safety, concurrency, import-env
mod secrets;
// root CA and server certificate, checked by openssl and a TLS handshake
mod pki;
// env file and coturn config renderers
mod render;
// doctor findings on blog-style files and on the city's own state
mod doctor;
// STUN/TURN codec vectors, credentials, probe against real coturn
mod turn;
// cityd wire and verify webhook against the Mattermost double
mod wire;
// the flake and NixOS module: parse, evaluate the module's logic, compare with the binary
mod nix;
// coturn and namespace fixtures for the TURN tests
mod turn_harness;
// TURN in network namespaces: the rendered coturn config, the double-NAT lab
mod turn_lab;
// cityd up / down / doctor on the real Docker engine with local images
mod docker;
// cityd db ensure against PostgreSQL 17 (container) and 15 (host)
mod db;
// `connect jenkins|gitlab|sonarqube` against the product doubles
mod connect;
// SonarQube -> Mattermost relay: payloads, HMAC, spool durability, exactly-once delivery
mod relay;
// issue 12: hostile input to the vault, the PKI, the city description and the LAN addresses
mod hostile;
// phones: the name-constrained CA, `cityd onboard`, headless Chromium, the leaf following the LAN
mod phones;
// `cityd export k8s|rtcd|turn-fleet`: manifests checked against their schemas, the TURN fleet for real
mod export;

// `[database] managed = true` and `cityd status` on the Docker engine.
mod managed;
// cityd backup / verify / restore / restore --drill, with faults (SIGKILL, full disk, bit flips)
mod backup;
