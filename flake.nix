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
            services.cityd.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.cityd;
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
          # Every .nix file is formatted with nixfmt, the formatter nixpkgs itself uses (RFC 166
          # style; scripts/nix-check.sh runs nixfmt-rs, a port of the same formatter, from the
          # crates registry).
          nix-format = pkgs.runCommand "cityd-nix-format" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
            cd ${self}
            find . -name '*.nix' -not -path './target/*' -print0 | xargs -0 nixfmt --check
            touch $out
          '';
        }
        # The example configuration of docs/nixos.md builds (its assertions hold, the city file
        # passes `cityd config check`).
        // lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux") {
          example-configuration = self.nixosConfigurations.example.config.system.build.toplevel;
        }
        // (vmTestsFor pkgs).checks
      );

      # The lab host of docs/nixos.md (nixos/example.nix): `nixos-rebuild build --flake .#example`.
      nixosConfigurations.example = lib.nixosSystem {
        modules = [
          self.nixosModules.default
          ./nixos/example.nix
          { nixpkgs.hostPlatform = "x86_64-linux"; }
        ];
      };

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
            nixfmt
            nix-prefetch-docker
          ];
        };
      });

      # `nix fmt` passes no path since Nix 2.25; format the whole tree then.
      formatter = forAllSystems (
        pkgs:
        pkgs.writeShellScriptBin "cityd-nix-fmt" ''
          if [ "$#" -eq 0 ]; then
            find . -name '*.nix' -not -path './target/*' -print0 | xargs -0 ${lib.getExe pkgs.nixfmt}
          else
            exec ${lib.getExe pkgs.nixfmt} "$@"
          fi
        ''
      );
    };
}
