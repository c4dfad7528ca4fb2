# cityd's own oneshot units, chained secrets -> pki -> render -> db -> container -> wire. Each runs
# `cityd --city <store file> --state-dir /var/lib/cityd <verb>`; secrets stay in the state directory
# (0700, files 0600) and reach other services only as files or systemd credentials.
{ config
, lib
, ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  backend = config.virtualisation.oci-containers.backend;
  units = cityLib.units { inherit backend; };
  cityUnits = builtins.filter (u: u.args != null) units;
  unitName = lib.removeSuffix ".service";
  pgPort = toString config.services.postgresql.settings.port;

  mkUnit = u: {
    name = unitName u.name;
    value = {
      inherit (u) description;
      wantedBy = [ "multi-user.target" ];
      after = u.after ++ [ "network-online.target" ];
      requires = u.after;
      wants = [ "network-online.target" ];
      environment = {
        CITYD_LOG = "info";
      }
      // lib.optionalAttrs (u.name == "cityd-db.service") {
        # The admin connection: the Unix socket, as `postgres` (root is mapped to it by identMap).
        PGHOST = "/run/postgresql";
        PGPORT = pgPort;
        PGUSER = "postgres";
        PGDATABASE = "postgres";
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = lib.escapeShellArgs (
          [ (lib.getExe' cfg.package "cityd") ] ++ cityLib.commandLine cfg.cityFile u
        );
        StateDirectory = "cityd";
        StateDirectoryMode = "0700";
        UMask = "0077";
        PrivateTmp = true;
        ProtectHome = true;
        NoNewPrivileges = true;
      };
    };
  };
in
{
  config = lib.mkIf cfg.enable {
    services.cityd.unitOrder = map (u: u.name) units;
    systemd.services = builtins.listToAttrs (map mkUnit cityUnits);
  };
}
