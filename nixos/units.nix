# cityd's own units: oneshots chained secrets -> pki -> render -> db -> container -> wire, then the
# long-running relay if enabled. Each runs `cityd --city <store file> --state-dir /var/lib/cityd
# <verb>`; secrets stay in the state directory (0700, files 0600) and reach other services only as
# files or systemd credentials.
{ config
, lib
, pkgs
, ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  backend = config.virtualisation.oci-containers.backend;
  units = cityLib.units {
    inherit backend;
    inherit (cfg) database;
    relay = cfg.relay.enable;
  };
  cityUnits = builtins.filter (u: u.args != null) units;
  unitName = lib.removeSuffix ".service";
  admin = cityLib.dbAdmin cfg.database;
  bin = "${pkgs.coreutils}/bin";
  psql = lib.getExe' config.services.postgresql.package "psql";

  # Before `cityd db ensure`: the superuser's password file (generated once, 64 hex digits) and
  # the role's password set from it over the Unix socket, where root is mapped to `postgres`.
  dbAdminPreStart = ''
    if [ ! -s ${admin.passwordFile} ]; then
      ${bin}/install -d -m 0700 ${cityLib.paths.dbAdminDir}
      ${bin}/head -c 32 /dev/urandom | ${bin}/od -An -tx1 | ${bin}/tr -d ' \n' > ${admin.passwordFile}.new
      ${bin}/mv ${admin.passwordFile}.new ${admin.passwordFile}
    fi
    ${psql} -X -q -h /run/postgresql -p ${toString cfg.database.port} -U ${admin.user} -d postgres <<'SQL'
    ${admin.setPasswordSql "${bin}/cat"}
    SQL
  '';

  mkUnit = u: {
    name = unitName u.name;
    value = {
      inherit (u) description;
      wantedBy = [ "multi-user.target" ];
      after = u.after ++ [ "network-online.target" ];
      # A oneshot needs the step before it; the relay only starts after wire, and keeps running
      # (its spool holds alerts) if a later re-run of wire fails.
      requires = if u.longRunning or false then [ ] else u.after;
      wants = [ "network-online.target" ] ++ lib.optionals (u.longRunning or false) u.after;
      environment = cityLib.unitEnvironment;
      preStart = lib.optionalString (u.name == "cityd-db.service") dbAdminPreStart;
      # The relay runs on; systemd stops it with SIGTERM, on which it drains open requests and
      # posts (its spool keeps the rest across the restart).
      serviceConfig = (
        if u.longRunning or false then
          {
            Type = "simple";
            Restart = "on-failure";
            RestartSec = "5s";
          }
        else
          {
            Type = "oneshot";
            RemainAfterExit = true;
          }
      ) // {
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
