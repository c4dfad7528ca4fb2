# The firewall: exactly the ports phones and browsers use (Mattermost, Calls, TURN and its relay
# range), on one interface if `firewallInterface` is set. Metrics (8067) and PostgreSQL stay closed.
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  rules = cityLib.firewall cfg;
in
{
  config = lib.mkIf (cfg.enable && cfg.openFirewall) {
    networking.firewall =
      if cfg.firewallInterface == null then rules else { interfaces.${cfg.firewallInterface} = rules; };
  };
}
