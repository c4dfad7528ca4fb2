# The city description as a JSON file in the store, validated at build time by the very cityd that
# will read it (`cityd config check`): a bad option value fails `nixos-rebuild`, not the boot.
{ config
, lib
, pkgs
, ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  checkedCityFile =
    pkgs.runCommand "cityd-city.json"
      {
        nativeBuildInputs = [ cfg.package ];
        city = cityLib.cityJSON cfg;
        passAsFile = [ "city" ];
      }
      ''
        cp "$cityPath" city.json
        cityd config check ./city.json
        cp city.json "$out"
      '';
in
{
  config = lib.mkIf cfg.enable {
    services.cityd.cityFile = checkedCityFile;
    assertions = map
      (message: {
        assertion = false;
        inherit message;
      })
      (cityLib.problems cfg);
  };
}
