# PostgreSQL 17 with Mattermost as a tenant: database and owner role declared here, the role's
# password set from the vault by cityd-db.service (`cityd db ensure`, the superuser over loopback),
# TLS with the city certificate handed over as systemd credentials (the key never leaves root-only
# files otherwise). The host's PostgreSQL is shared: the package is only a default, the server
# listens only where the container reaches it, pg_hba admits the container's subnet only, and
# nothing of cityd's can stop it (it orders after cityd-pki, it does not require it).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  backend = config.virtualisation.oci-containers.backend;
  pg = cityLib.postgresql cfg backend;
  package = config.services.postgresql.package;
  major = lib.toInt (lib.versions.major package.version);
in
{
  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = major >= 17;
        message = "services.cityd needs PostgreSQL 17 or later, but services.postgresql.package is ${package.version}; set services.postgresql.package = pkgs.postgresql_17 (Mattermost's database is created there).";
      }
      {
        assertion = major == cfg.postgresql.major;
        message = "services.postgresql.package is PostgreSQL ${toString major}, but the appliance's data directory is PostgreSQL ${toString cfg.postgresql.major} (services.cityd.postgresql.major): a new major version would start an empty data directory beside the old one. Upgrade the data first (docs/nixos.md, \"Upgrading PostgreSQL\"), then set services.cityd.postgresql.major = ${toString major}; or keep services.postgresql.package = pkgs.postgresql_${toString cfg.postgresql.major}.";
      }
    ];

    services.postgresql = {
      enable = true;
      package = lib.mkDefault pkgs.postgresql_17;
      # Loopback (cityd's admin connection) and the address the container connects to, unless the
      # host already opened PostgreSQL to the network itself (enableTCPIP). Above the module's own
      # "localhost" default, below a host's mkForce.
      settings = {
        listen_addresses = lib.mkIf (!config.services.postgresql.enableTCPIP) (
          lib.mkOverride 90 pg.listenAddresses
        );
        port = cfg.settings.database.port;
        password_encryption = "scram-sha-256";
      }
      // lib.optionalAttrs cfg.settings.database.tls pg.settings;
      ensureDatabases = [ cfg.settings.database.name ];
      ensureUsers = [
        {
          name = cfg.settings.database.user;
          ensureDBOwnership = true;
        }
      ];
      authentication = lib.mkBefore pg.authentication;
      # cityd-db.service (root) sets the superuser's password over the socket as `postgres`
      # before `cityd db ensure` connects over TCP with it.
      identMap = ''
        postgres root postgres
      '';
    };

    systemd.services.postgresql = lib.mkMerge [
      {
        # It listens on the LAN address: bind once that address is up (PostgreSQL starts without
        # an address it cannot bind, as long as loopback works, and would stay without it).
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
      }
      # Ordering only: a failed or restarted cityd unit never stops PostgreSQL (a restart of a
      # required unit would restart it, and everyone else's databases with it).
      (lib.mkIf cfg.settings.database.tls {
        wants = [ "cityd-pki.service" ];
        after = [ "cityd-pki.service" ];
        serviceConfig.LoadCredential = pg.loadCredential;
      })
    ];

    networking.firewall.interfaces.${cityLib.containerBridge backend}.allowedTCPPorts = [
      cfg.settings.database.port
    ];
  };
}
