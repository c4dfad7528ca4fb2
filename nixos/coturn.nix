# coturn on the host network: TURN REST authentication with the vault's secret (a systemd
# credential, never the store), the relay range, and the peer policy shared with `cityd render coturn`.
# nixpkgs moved coturn to a freeform `settings` interface (flat options renamed, with a warning);
# the module sets whichever interface the nixpkgs in use declares, so neither warns.
{
  config,
  lib,
  options,
  ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  turn = cityLib.coturn cfg;
  settingsInterface = options.services.coturn ? settings;
in
{
  config = lib.mkIf cfg.enable {
    services.coturn = {
      enable = true;
      extraConfig = turn.extraConfig;
    }
    // (
      if settingsInterface then
        {
          settings = turn.options;
          staticAuthSecretFile = turn.staticAuthSecretFile;
        }
      else
        turn.options
        // {
          static-auth-secret-file = turn.staticAuthSecretFile;
        }
    );

    systemd.services.coturn = {
      # The secret must exist before systemd copies it into the credential directory; ordering
      # only, so that no cityd unit can stop coturn (and drop the calls it relays).
      wants = [ "cityd-secrets.service" ];
      after = [ "cityd-secrets.service" ];
      serviceConfig.LoadCredential = [ turn.loadCredential ];
    };
  };
}
