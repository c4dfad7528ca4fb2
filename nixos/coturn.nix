# coturn on the host network: TURN REST authentication with the vault's secret (a systemd
# credential, never the store), the relay range, and the peer policy shared with `cityd render coturn`.
{ config
, lib
, ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  turn = cityLib.coturn cfg;
in
{
  config = lib.mkIf cfg.enable {
    services.coturn = turn.options // {
      enable = true;
      static-auth-secret-file = turn.staticAuthSecretFile;
      extraConfig = turn.extraConfig;
    };

    systemd.services.coturn = {
      # The secret must exist before systemd copies it into the credential directory.
      requires = [ "cityd-secrets.service" ];
      after = [ "cityd-secrets.service" ];
      serviceConfig.LoadCredential = [ turn.loadCredential ];
    };
  };
}
