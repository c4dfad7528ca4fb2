# PostgreSQL 17 with Mattermost as a tenant: database and owner role declared here, the role's
# password set from the vault by cityd-db.service (`cityd db ensure`, the superuser over loopback),
# TLS with the city certificate handed over as systemd credentials (the key never leaves root-only
# files otherwise).
{ config
, lib
, pkgs
, ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  pg = cityLib.postgresql cfg;
  backend = config.virtualisation.oci-containers.backend;
in
{
  config = lib.mkIf cfg.enable {
    services.postgresql = {
      enable = true;
      package = pkgs.postgresql_17;
      # The container reaches the host over the bridge, so PostgreSQL listens beyond loopback; the
      # firewall admits it from the container bridge only.
      enableTCPIP = true;
      settings = {
        port = cfg.database.port;
        password_encryption = "scram-sha-256";
      }
      // lib.optionalAttrs cfg.database.tls pg.settings;
      ensureDatabases = [ cfg.database.name ];
      ensureUsers = [
        {
          name = cfg.database.name;
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

    systemd.services.postgresql = lib.mkIf cfg.database.tls {
      requires = [ "cityd-pki.service" ];
      after = [ "cityd-pki.service" ];
      serviceConfig.LoadCredential = pg.loadCredential;
    };

    networking.firewall.interfaces.${cityLib.containerBridge backend}.allowedTCPPorts = [
      cfg.database.port
    ];
  };
}
