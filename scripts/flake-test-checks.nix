# What the flake's test checks run, evaluated without nixpkgs (builtins and stubs only): the
# package's source filter (absolute paths), and for `checks.<system>.cityd` and
# `checks.<system>.cityd-integration` their cargo test flags and check inputs (the stub packages
# are named as the Debian packages that provide the same tools). Read by scripts/sandbox-test.sh (to run the same tests
# on the same files) and tests/integration/nix/mod.rs (to pin the source filter against Cargo.toml).
# Usage: nix-instantiate --eval --strict --json scripts/flake-test-checks.nix
let
  system = "x86_64-linux";
  lib = {
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    importTOML = file: builtins.fromTOML (builtins.readFile file);
    fileset = {
      toSource = { root, fileset }: fileset;
      unions = paths: paths;
      maybeMissing = path: path;
    };
    optionalAttrs = cond: attrs: if cond then attrs else { };
    licenses.mit = "mit";
    platforms.linux = [ system ];
  };
  # buildRustPackage keeps its arguments, and overrideAttrs merges over them as Nix does.
  rustPlatform.buildRustPackage = attrs: attrs // { overrideAttrs = f: attrs // f attrs; };
  pkgs = {
    inherit lib;
    stdenv.hostPlatform.system = system;
    callPackage = file: args: import file ({ inherit lib rustPlatform; } // args);
    openssl = "openssl";
    coturn = "coturn";
  };
  self = (import ../flake.nix).outputs {
    inherit self;
    nixpkgs = {
      inherit lib;
      legacyPackages.${system} = pkgs;
    };
  };
  testRun = check: {
    cargoTestFlags = check.cargoTestFlags or [ ];
    checkFlags = check.checkFlags or [ ];
    nativeCheckInputs = check.nativeCheckInputs or [ ];
    preCheck = check.preCheck or "";
  };
in
{
  source = map toString self.packages.${system}.cityd.src;
  checks = {
    cityd = testRun self.checks.${system}.cityd;
    cityd-integration = testRun self.checks.${system}.cityd-integration;
  };
}
