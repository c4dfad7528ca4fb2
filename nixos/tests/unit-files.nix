# cityd's units as systemd unit files, rendered from the module evaluated against nixpkgs' `lib`
# and the stub NixOS options (the relay enabled): what NixOS writes to /etc/systemd/system for the
# [Service] settings. scripts/nix-check.sh rates them with `systemd-analyze security --offline`
# against the bounds the VM test `hardening` asserts (nixos/lib.nix exposureBounds).
#
#   nix-instantiate --eval --strict --json nixos/tests/unit-files.nix --arg lib 'import <nixpkgs.lib>/lib'
{ lib }:
let
  cityd = {
    type = "derivation";
    name = "cityd";
    outPath = "/nix/store/00000000000000000000000000000000-cityd";
  };
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    version = "17.6";
  };
  config =
    (lib.evalModules {
      specialArgs.pkgs = {
        runCommand =
          name: _: _:
          fake name;
        postgresql_17 = fake "postgresql-17";
        cacert = fake "nss-cacert";
        coreutils = fake "coreutils";
        iproute2 = fake "iproute2";
        systemd = fake "systemd";
        writeShellScript = name: _: fake name;
        formats.json = _: { type = lib.types.attrsOf lib.types.anything; };
      };
      modules = [
        (import ./stubs.nix {
          inherit lib;
          coturnGeneration = "flat";
        })
        ../module.nix
        {
          services.cityd = {
            enable = true;
            package = cityd;
            relay.enable = true;
            settings.lan.addresses = [ "192.168.1.20" ];
          };
        }
      ];
    }).config;
  # As NixOS renders a [Service] value: lists as repeated keys, booleans as true/false.
  value =
    v:
    if v == true then
      "true"
    else if v == false then
      "false"
    else
      toString v;
  section =
    attrs:
    lib.concatStrings (
      lib.mapAttrsToList (
        name: v: lib.concatMapStrings (x: "${name}=${value x}\n") (if builtins.isList v then v else [ v ])
      ) attrs
    );
  unitFile = u: ''
    [Unit]
    Description=${u.description}

    [Service]
    ${section u.serviceConfig}'';
  cityUnits = lib.filterAttrs (name: _: lib.hasPrefix "cityd-" name) config.systemd.services;
in
lib.mapAttrs' (name: u: lib.nameValuePair "${name}.service" (unitFile u)) cityUnits
