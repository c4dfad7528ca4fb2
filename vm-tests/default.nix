# The VM tests: one runNixOSTest scenario per file, every node with the cityd module imported.
# `checks` runs fully offline (the Mattermost double, built by Nix, stands in for the image);
# `all` adds the variant on the real Enterprise image, whose pin is filled in on a networked host.
{ pkgs, self }:
let
  system = pkgs.stdenv.hostPlatform.system;
  cityd = self.packages.${system}.cityd;
  images = {
    # Plain HTTP on 8065: TLS is proven against a witness serving the city certificate on
    # tlsWitnessPort, and webhooks are posted with --base-url http://... (see vm-tests/lib/server.nix).
    double = {
      image = "localhost/cityd-mattermost-double:vm";
      imageFile = self.packages.${system}.mattermost-double-image;
      memorySize = 2048;
      servesTls = false;
      tlsWitnessPort = 9443;
    };
    enterprise = import ./images/mattermost-enterprise.nix { inherit pkgs; };
  };
  runTest =
    file: image:
    pkgs.testers.runNixOSTest {
      imports = [ file ];
      defaults.imports = [ self.nixosModules.default ];
      _module.args = {
        inherit cityd image;
        cityLib = import ../nixos/lib.nix;
      };
      globalTimeout = 1800;
    };
  offline = {
    vm-appliance = runTest ./appliance.nix images.double;
    vm-turn = runTest ./turn.nix images.double;
    vm-webhook = runTest ./webhook.nix images.double;
    vm-turn-nat = runTest ./turn-nat.nix images.double;
    vm-switch = runTest ./switch.nix images.double;
    vm-turn-independent = runTest ./turn-independent.nix images.double;
    vm-hardening = runTest ./hardening.nix images.double;
    vm-backup = runTest ./backup.nix images.double;
  };
in
{
  checks = offline;
  all = offline // {
    # x86_64 only: the Enterprise image has no arm64 manifest.
    vm-appliance-enterprise = runTest ./appliance.nix images.enterprise;
    vm-webhook-enterprise = runTest ./webhook.nix images.enterprise;
  };
}
