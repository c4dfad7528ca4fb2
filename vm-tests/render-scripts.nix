# Renders every VM test's Python script against stand-in node values, with builtins only, so CI
# (no nixpkgs) can check that each script is valid Python and calls the contract's cityd commands.
# The stand-ins are the module's defaults from ../nixos/lib.nix and the test VLAN's addresses.
let
  cityLib = import ../nixos/lib.nix;
  image = {
    image = "localhost/cityd-mattermost-double:vm";
    imageFile = null;
    memorySize = 2048;
  };
  server = address: {
    services.cityd = cityLib.defaults // {
      lan = cityLib.defaults.lan // {
        addresses = [ address ];
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
    file: nodes:
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
  appliance = render ./appliance.nix lan;
  turn = render ./turn.nix lan;
  webhook = render ./webhook.nix lan;
  turn-nat = render ./turn-nat.nix {
    server = server "192.168.1.3";
    router = node "192.168.1.2" "192.168.2.2";
    phone = node "192.168.2.1" null;
  };
}
