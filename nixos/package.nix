# The cityd package: the crate built by rustPlatform with its dependencies vendored from Cargo.lock
# (each crate's checksum is already in the lock, so no cargoHash). Unit tests run in the build;
# the integration tests that need no root run in the flake's `cityd-integration` check.
{
  lib,
  rustPlatform,
}:
let
  root = ../.;
  manifest = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "cityd";
  version = manifest.package.version;

  # Every path Cargo.toml names must be here (tests/integration/nix/mod.rs checks it): cargo refuses a
  # manifest whose targets are missing, and `cargo test` builds the examples too.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      ../testcontainers
      ../bench/relay_load.rs
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # Unit tests only: the integration binary runs coturn, network namespaces and Docker, which the
  # build sandbox does not have (see the flake's checks). scripts/sandbox-test.sh runs the same
  # tests under the sandbox's conditions.
  cargoTestFlags = [ "--lib" ];
  # Needs root to chown a file to coturn's uid; scripts/test.sh runs it as root.
  checkFlags = [
    "--skip"
    "docker::host::tests::apply_is_idempotent_and_sets_owner_and_mode"
  ];

  # The build sandbox has HOME=/homeless-shelter (which does not exist), no CA bundle
  # (SSL_CERT_FILE=/no-cert-file.crt), no network and an unprivileged build user. The tests need
  # none of the network or the system's CA roots (each test makes its own CA; scripts/sandbox-test.sh
  # proves it under those conditions), only a writable HOME for what defaults to it.
  preCheck = ''
    export HOME="$(mktemp -d)"
  '';

  meta = {
    description = manifest.package.description;
    license = lib.licenses.mit;
    mainProgram = "cityd";
    platforms = lib.platforms.linux;
  };
}
