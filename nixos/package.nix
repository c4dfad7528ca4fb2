# The cityd package: the crate built by rustPlatform with its dependencies vendored from Cargo.lock
# (each crate's checksum is already in the lock, so no cargoHash). Unit tests run in the build;
# the integration tests that need no root run in the flake's `cityd-integration` check.
{ lib
, rustPlatform
,
}:
let
  root = ../.;
  manifest = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "cityd";
  version = manifest.package.version;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      (lib.fileset.maybeMissing ../testcontainers)
      (lib.fileset.maybeMissing ../benches)
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # Unit tests only: the integration binary runs coturn, network namespaces and Docker, which the
  # build sandbox does not have (see the flake's checks).
  cargoTestFlags = [ "--lib" ];

  meta = {
    description = manifest.package.description;
    license = lib.licenses.mit;
    mainProgram = "cityd";
    platforms = lib.platforms.linux;
  };
}
