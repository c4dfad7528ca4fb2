# The city description as a JSON file, validated at build time by the very cityd that will read it
# (`cityd config check`): a bad setting fails `nixos-rebuild`, not the boot. The units read it at a
# stable path, /etc/cityd/city.json, so a new city changes no unit's command line: each unit
# restarts only when the part of the city it reads changed (see ./units.nix).
{
  config,
  lib,
  pkgs,
  ...
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
    environment.etc."cityd/city.json".source = checkedCityFile;
    assertions = map (message: {
      assertion = false;
      inherit message;
    }) (cityLib.problems cfg);
  };
}
