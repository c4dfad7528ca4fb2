{
  description = "cityd: a self-hosted ChatOps command center (Mattermost with Calls, coturn, PostgreSQL 17, a local CA) as one NixOS appliance";

  # nixpkgs is the only input; flake.lock pins nixos-26.05 (see docs/nixos.md for its provenance).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # The Jenkins plugin and the Enterprise image are amd64-only; everything else builds on both.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      vmTestsFor = pkgs: import ./vm-tests { inherit pkgs self; };
    in
    {
      packages = forAllSystems (pkgs: rec {
        cityd = pkgs.callPackage ./nixos/package.nix { };
        default = cityd;
        # The Mattermost double as an OCI archive: the offline stand-in the VM tests run.
        mattermost-double-image = import ./vm-tests/images/mattermost-double.nix {
          inherit pkgs;
          src = cityd.src;
        };
      });

      # `default` brings its own cityd; `cityd` is the bare module (set services.cityd.package).
      nixosModules = {
        cityd = ./nixos/module.nix;
        default =
          { lib, pkgs, ... }:
          {
            imports = [ ./nixos/module.nix ];
            services.cityd.package =
              lib.mkDefault
                self.packages.${pkgs.stdenv.hostPlatform.system}.cityd;
          };
      };

      checks = forAllSystems (
        pkgs:
        let
          cityd = self.packages.${pkgs.stdenv.hostPlatform.system}.cityd;
        in
        {
          # Builds the crate and runs its unit tests. scripts/sandbox-test.sh runs this check's
          # tests and cityd-integration's under the build sandbox's conditions, read from here.
          inherit cityd;
          # Integration areas that need neither root, Docker nor ../shared/reference.
          cityd-integration = cityd.overrideAttrs (old: {
            pname = "cityd-integration";
            cargoTestFlags = [
              "--test"
              "integration"
            ];
            checkFlags = [
              "config::"
              "secrets::"
              "pki::"
              "render::"
              "doctor::"
            ];
            nativeCheckInputs = (old.nativeCheckInputs or [ ]) ++ [
              pkgs.openssl
              pkgs.coturn
            ];
          });
          # Every .nix file is formatted (the same nixpkgs-fmt 1.3.0 that scripts/nix-check.sh runs).
          nix-format =
            pkgs.runCommand "cityd-nix-format" { nativeBuildInputs = [ pkgs.nixpkgs-fmt ]; }
              ''
                cd ${self}
                find . -name '*.nix' -not -path './target/*' -print0 | xargs -0 nixpkgs-fmt --check
                touch $out
              '';
        }
        // (vmTestsFor pkgs).checks
      );

      # VM tests that need a pin filled in on a networked machine (see docs/nixos.md).
      legacyPackages = forAllSystems (pkgs: {
        vmTests = (vmTestsFor pkgs).all;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            rustfmt
            clippy
            coturn
            openssl
            postgresql_17
            iproute2
            iptables
            nixpkgs-fmt
            nix-prefetch-docker
          ];
        };
      });

      # `nix fmt` passes no path since Nix 2.25; format the whole tree then.
      formatter = forAllSystems (
        pkgs:
        pkgs.writeShellScriptBin "cityd-nix-fmt" ''
          exec ${pkgs.nixpkgs-fmt}/bin/nixpkgs-fmt "''${@:-.}"
        ''
      );
    };
}
