# Renders every VM test's Python script against stand-in node values, with builtins only, so CI
# (no nixpkgs) can check that each script is valid Python and that every cityd command in it
# parses with the real CLI. The stand-ins are the module's defaults from ../nixos/lib.nix, the test
# VLAN's addresses, and both images' attributes as vm-tests/default.nix and images/ set them.
let
  cityLib = import ../nixos/lib.nix;
  double = {
    image = "localhost/cityd-mattermost-double:vm";
    imageFile = null;
    memorySize = 2048;
    servesTls = false;
    tlsWitnessPort = 9443;
  };
  enterprise = {
    image = "docker.io/mattermost/mattermost-enterprise-edition:11.8.5";
    imageFile = null;
    memorySize = 4096;
    servesTls = true;
    tlsWitnessPort = null;
  };
  server = address: {
    services.cityd = cityLib.defaults // {
      settings = cityLib.defaults.settings // {
        lan.addresses = [ address ];
      };
      cityFile = "/nix/store/00000000000000000000000000000000-cityd-city.json";
      unitOrder = map (u: u.name) (cityLib.units { });
    };
    networking.primaryIPAddress = address;
    virtualisation.oci-containers.backend = "podman";
  };
  node = address: eth2: {
    networking.primaryIPAddress = address;
    networking.interfaces.eth2.ipv4.addresses = [
      {
        address = eth2;
        prefixLength = 24;
      }
    ];
  };
  render =
    file: image: nodes:
    (import file {
      inherit image cityLib;
    }).testScript
      { inherit nodes; };
  lan = {
    server = server "192.168.1.2";
    phone = node "192.168.1.1" null;
  };
in
{
  appliance = render ./appliance.nix double lan;
  appliance-enterprise = render ./appliance.nix enterprise lan;
  turn = render ./turn.nix double lan;
  webhook = render ./webhook.nix double lan;
  webhook-enterprise = render ./webhook.nix enterprise lan;
  switch = render ./switch.nix double lan;
  turn-independent = render ./turn-independent.nix double lan;
  hardening = render ./hardening.nix double {
    server = lan.server // {
      services.cityd = lan.server.services.cityd // {
        relay.enable = true;
        unitOrder = map (u: u.name) (cityLib.units { relay = true; });
      };
    };
  };
  backup = render ./backup.nix double lan;
  turn-nat = render ./turn-nat.nix double {
    server = server "192.168.1.3";
    router = node "192.168.1.2" "192.168.2.2";
    phone = node "192.168.2.1" null;
  };
}
