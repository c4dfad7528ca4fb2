# cityd's own units: oneshots chained secrets -> pki -> render -> db -> container -> wire, then the
# long-running relay if enabled. Each runs `cityd --city /etc/cityd/city.json --state-dir
# /var/lib/cityd <verb>`; secrets stay in the state directory (0700, files 0600) and reach other
# services only as files or systemd credentials.
#
# What `nixos-rebuild switch` does to them: a unit's command line never names the city's store
# path, so a unit moves only when the part of the city it reads changed (`lib.nix` cityParts).
# The vault and the PKI are never restarted by a switch (a restart would stop everything that
# requires them): when their part changed they are *reloaded*, which re-runs their idempotent
# step in place. Render, db and wire restart when their part changed; the container restarts with
# render, since the env file is its input. PostgreSQL and coturn only order after these units.
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
  units = cityLib.units {
    inherit backend;
    inherit (cfg.settings) database;
    relay = cfg.relay.enable;
  };
  cityUnits = builtins.filter (u: u.args != null) units;
  parts = cityLib.cityParts cfg;
  unitName = lib.removeSuffix ".service";
  admin = cityLib.dbAdmin cfg.settings.database;
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
    ${psql} -X -q -h /run/postgresql -p ${toString cfg.settings.database.port} -U ${admin.user} -d postgres <<'SQL'
    ${admin.setPasswordSql "${bin}/cat"}
    SQL
  '';

  # The sandbox every cityd unit runs in: lib.nix.
  hardening = cityLib.unitHardening;

  # What each unit needs beyond the common sandbox. secrets, pki and render touch only files:
  # no network at all. db talks to PostgreSQL (socket and loopback TCP), wire to Mattermost (its
  # local-mode socket lives in a directory owned by the image's UID, hence CAP_DAC_OVERRIDE), and
  # the relay listens for SonarQube and posts to Mattermost.
  needs = {
    "cityd-secrets.service" = offline;
    "cityd-pki.service" = offline;
    "cityd-render.service" = offline;
    "cityd-db.service" = online [ "" ];
    "cityd-wire.service" = online [ "CAP_DAC_OVERRIDE" ];
    "cityd-relay.service" = online [ "" ];
  };
  # AF_NETLINK: cityd lists the interfaces (getifaddrs) whenever it resolves `lan.addresses`, even
  # literal ones; inside PrivateNetwork it sees only loopback, which literal addresses do not need.
  offline = {
    PrivateNetwork = true;
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_NETLINK"
    ];
    CapabilityBoundingSet = [ "" ];
  };
  online = caps: {
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_NETLINK"
      "AF_INET"
      "AF_INET6"
    ];
    CapabilityBoundingSet = caps;
  };

  command =
    u:
    lib.escapeShellArgs (
      [ (lib.getExe' cfg.package "cityd") ] ++ cityLib.commandLine cityLib.paths.cityFile u
    );

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
      restartTriggers = lib.optionals (u.onSwitch == "restart") [ parts.${u.part} ];
      reloadTriggers = lib.optionals (u.onSwitch == "reload") [ parts.${u.part} ];
      restartIfChanged = u.onSwitch != "reload";
      serviceConfig =
        hardening
        // needs.${u.name}
        // (
          if u.longRunning or false then
            {
              # The relay runs on; systemd stops it with SIGTERM, on which it drains open
              # requests and posts (its spool keeps the rest across the restart). Its own
              # dynamic user and state directory; the vault's files it needs arrive as
              # credentials. Each connection holds a descriptor: room for the relay's caps.
              Type = "simple";
              Restart = "on-failure";
              RestartSec = "5s";
              DynamicUser = true;
              StateDirectory = baseNameOf u.stateDir;
              StateDirectoryMode = "0700";
              LoadCredential = u.credentials;
              LimitNOFILE = 65536;
            }
          else
            {
              Type = "oneshot";
              RemainAfterExit = true;
              StateDirectory = "cityd";
              StateDirectoryMode = "0700";
              ReadWritePaths = [ cityLib.paths.stateDir ];
            }
        )
        // {
          ExecStart = command u;
        }
        // lib.optionalAttrs (u.onSwitch == "reload") {
          # Re-runs the idempotent step in place (see the top of this file).
          ExecReload = command u;
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
