# Stub NixOS: every NixOS option the cityd module sets (or reads), declared with the type it has in
# the nixos-26.05 modules, plus the definitions of those modules that the cityd module must not
# collide with (PostgreSQL's listen_addresses, coturn's realm) and the renames of coturn's
# `settings` generation. `coturnGeneration` picks coturn's interface: "flat" (options per
# directive) or "settings" (freeform settings; the flat names renamed, with a warning).
{ lib, coturnGeneration }:
let
  inherit (lib) mkOption types;
  anyAttrs = types.attrsOf types.anything;
  option =
    type: default:
    mkOption {
      inherit type;
      default = default;
    };
  list = t: option (types.listOf t) [ ];
  flag = option types.bool false;

  firewallRules = {
    allowedTCPPorts = list types.port;
    allowedUDPPorts = list types.port;
    allowedTCPPortRanges = list (types.attrsOf types.port);
    allowedUDPPortRanges = list (types.attrsOf types.port);
  };

  unit = types.submodule {
    options = {
      description = option (types.nullOr types.str) "";
      wantedBy = list types.str;
      after = list types.str;
      before = list types.str;
      requires = list types.str;
      wants = list types.str;
      bindsTo = list types.str;
      partOf = list types.str;
      requisite = list types.str;
      environment = option (types.attrsOf types.str) { };
      path = list types.package;
      preStart = option types.lines "";
      script = option types.lines "";
      restartTriggers = list types.unspecified;
      reloadTriggers = list types.unspecified;
      restartIfChanged = option types.bool true;
      reloadIfChanged = flag;
      stopIfChanged = option types.bool true;
      serviceConfig = option anyAttrs { };
    };
  };

  coturnFlat =
    let
      port = default: option types.port default;
    in
    {
      enable = flag;
      listening-port = port 3478;
      min-port = port 49152;
      max-port = port 65535;
      realm = option types.str "stub-hostname";
      use-auth-secret = flag;
      no-cli = flag;
      no-tcp-relay = flag;
      static-auth-secret-file = option (types.nullOr types.str) null;
      extraConfig = option types.lines "";
    };
  coturnSettings = {
    enable = flag;
    staticAuthSecretFile = option (types.nullOr types.str) null;
    settings = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf (
          types.oneOf [
            types.bool
            types.int
            types.str
            (types.listOf types.str)
          ]
        );
      };
      default = { };
    };
    extraConfig = option types.lines "";
  };
  # What the settings generation of coturn.nix does with the old names ("Added 03/2026").
  coturnRenames = lib.optionals (coturnGeneration == "settings") (
    [
      (lib.mkRenamedOptionModule
        [ "services" "coturn" "static-auth-secret-file" ]
        [ "services" "coturn" "staticAuthSecretFile" ]
      )
    ]
    ++
      map
        (
          name: lib.mkRenamedOptionModule [ "services" "coturn" name ] [ "services" "coturn" "settings" name ]
        )
        [
          "listening-port"
          "min-port"
          "max-port"
          "realm"
          "use-auth-secret"
          "no-cli"
          "no-tcp-relay"
        ]
  );

  pgSettings = types.submodule {
    freeformType = types.attrsOf (
      types.oneOf [
        types.bool
        types.float
        types.int
        types.str
      ]
    );
    options.port = option types.port 5432;
  };
in
{
  imports = coturnRenames ++ [
    # nixpkgs' postgresql.nix defines listen_addresses at normal priority.
    (
      { config, ... }:
      {
        config.services.postgresql.settings.listen_addresses =
          if config.services.postgresql.enableTCPIP then "*" else "localhost";
      }
    )
    # nixpkgs' coturn.nix (settings generation) defaults the realm to the host name.
    (
      if coturnGeneration == "settings" then
        { config.services.coturn.settings.realm = lib.mkDefault "stub-hostname"; }
      else
        { }
    )
  ];

  options = {
    assertions = list types.unspecified;
    warnings = list types.str;
    environment.etc = option (types.attrsOf (
      types.submodule {
        options.source = mkOption { type = types.path; };
      }
    )) { };
    systemd.services = option (types.attrsOf unit) { };
    systemd.timers = option anyAttrs { };
    systemd.tmpfiles.rules = list types.str;
    networking.hosts = option (types.attrsOf (types.listOf types.str)) { };
    networking.hostName = option types.str "nixos";
    networking.firewall = firewallRules // {
      interfaces = option (types.attrsOf (types.submodule { options = firewallRules; })) { };
    };
    # What a bootable configuration sets (the example configuration).
    fileSystems = option anyAttrs { };
    boot.loader.grub.devices = list types.str;
    system.stateVersion = option types.str "26.05";
    nixpkgs.hostPlatform = option types.str "x86_64-linux";
    services.postgresql = {
      enable = flag;
      package = mkOption { type = types.package; };
      enableTCPIP = flag;
      settings = option pgSettings { };
      ensureDatabases = list types.str;
      ensureUsers = list (
        types.submodule {
          options = {
            name = mkOption { type = types.str; };
            ensureDBOwnership = flag;
          };
        }
      );
      authentication = option types.lines "";
      identMap = option types.lines "";
    };
    services.coturn = if coturnGeneration == "settings" then coturnSettings else coturnFlat;
    virtualisation.oci-containers = {
      backend = option (types.enum [
        "podman"
        "docker"
      ]) "podman";
      containers = option (types.attrsOf (
        types.submodule {
          options = {
            image = mkOption { type = types.str; };
            imageFile = option (types.nullOr types.package) null;
            environmentFiles = list types.path;
            ports = list types.str;
            volumes = list types.str;
            extraOptions = list types.str;
          };
        }
      )) { };
    };
  };
}
