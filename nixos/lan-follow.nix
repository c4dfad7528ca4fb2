# The certificate follows the LAN (issue 18): a daily timer, and any change of this host's
# addresses (seen by an `ip monitor address` watcher), start `cityd-lan-follow`. It runs
# `cityd pki ensure`, which re-issues the server certificate only when its names differ from the
# wanted ones or fewer than 30 days remain (otherwise it writes nothing), and restarts the
# Mattermost container only when server.pem changed. The CA is never touched.
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
  containerUnit = "${backend}-mattermost.service";
  serverPem = "${cityLib.paths.pkiDir}/server.pem";
  bin = "${pkgs.coreutils}/bin";
  ensure = lib.escapeShellArgs (
    [ (lib.getExe' cfg.package "cityd") ]
    ++ cityLib.commandLine cityLib.paths.cityFile {
      args = [
        "pki"
        "ensure"
      ];
    }
  );
  follow = pkgs.writeShellScript "cityd-lan-follow" ''
    set -eu
    before=$(${bin}/sha256sum ${serverPem} 2>/dev/null || true)
    ${ensure}
    after=$(${bin}/sha256sum ${serverPem})
    if [ "$before" != "$after" ]; then
      ${pkgs.systemd}/bin/systemctl try-restart ${containerUnit}
    fi
  '';
  watch = pkgs.writeShellScript "cityd-lan-watch" ''
    set -eu
    ${pkgs.iproute2}/bin/ip -o monitor address | while read -r _; do
      ${pkgs.systemd}/bin/systemctl start --no-block cityd-lan-follow.service
    done
  '';
in
{
  config = lib.mkIf cfg.enable {
    systemd.services.cityd-lan-follow = {
      description = "cityd: re-issue the server certificate when the LAN address or its expiry asks";
      after = [ "cityd-pki.service" ];
      environment = cityLib.unitEnvironment;
      # The common sandbox; it writes only the PKI, lists interfaces (netlink) and asks systemd
      # (its socket) to restart the container.
      serviceConfig = cityLib.unitHardening // {
        Type = "oneshot";
        ExecStart = follow;
        ReadWritePaths = [ cityLib.paths.stateDir ];
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_NETLINK"
        ];
        CapabilityBoundingSet = [ "" ];
      };
    };
    systemd.timers.cityd-lan-follow = {
      description = "cityd: renew the server certificate daily when it is due";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = "daily";
        Persistent = true;
        RandomizedDelaySec = "1h";
      };
    };
    systemd.services.cityd-lan-watch = {
      description = "cityd: start cityd-lan-follow when an address of this host changes";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network.target"
        "cityd-pki.service"
      ];
      # Reads netlink address events and asks systemd to start a unit: nothing to write.
      serviceConfig = cityLib.unitHardening // {
        ExecStart = watch;
        Restart = "always";
        RestartSec = "5s";
        ReadWritePaths = [ ];
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_NETLINK"
        ];
        CapabilityBoundingSet = [ "" ];
      };
    };
  };
}
