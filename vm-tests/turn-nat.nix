# TURN across NAT: the phone sits behind a NAT router (as on a phone's Wi-Fi), so the server only
# ever sees the router's address; the probe still gets a relay and its data back through it.
{ image, cityLib, ... }:
{
  name = "cityd-turn-nat";

  nodes = {
    server = import ./lib/server.nix { inherit image; };

    router =
      { ... }:
      {
        virtualisation.vlans = [
          1
          2
        ];
        networking.nat = {
          enable = true;
          externalInterface = "eth1";
          internalInterfaces = [ "eth2" ];
        };
        networking.firewall.enable = false;
      };

    phone =
      { nodes, ... }:
      {
        imports = [ ./lib/phone.nix ];
        virtualisation.vlans = [ 2 ];
        # Only the router knows the way to the server's LAN.
        networking.defaultGateway =
          (builtins.head nodes.router.networking.interfaces.eth2.ipv4.addresses).address;
      };
  };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      ip = nodes.server.networking.primaryIPAddress;
      routerOutside = nodes.router.networking.primaryIPAddress;
      phoneInside = nodes.phone.networking.primaryIPAddress;
      routerInside = (builtins.head nodes.router.networking.interfaces.eth2.ipv4.addresses).address;
      turn = "${ip}:${toString cfg.settings.turn.port}";
    in
    builtins.readFile ./lib/helpers.py
    + ''
      start_all()
      server.wait_for_unit("coturn.service")
      server.wait_for_unit("udp-echo.service")
      router.wait_for_unit("network.target")
      phone.wait_for_unit("network.target")

      with subtest("the phone reaches the server only through the router"):
          phone.succeed("ip route get ${ip} | grep -q 'via ${routerInside} '")
          phone.succeed("ping -c 1 -W 5 ${ip}")

      with subtest("the probe gets a relay and its data back through the NAT"):
          share_with_phone(server, phone, "${cityLib.paths.turnSecretFile}", f"{PHONE_STATE}/secrets/turn-static-auth-secret", "0600")
          phone.succeed(f"chmod 0700 {PHONE_STATE}/secrets")
          out = phone.succeed(cityd(PHONE_CITY, PHONE_STATE, "turn probe --server ${turn} --peer ${ip}:40000 --json"))
          print(out)
          report = probe_report(out)
          # The mapped address coturn reports is the router's outside address: the NAT was crossed.
          assert report["mapped"].rsplit(":", 1)[0] == "${routerOutside}", report["mapped"]
          assert report["local"].rsplit(":", 1)[0] == "${phoneInside}", report["local"]
          assert "${phoneInside}" != "${routerOutside}"
    '';
}
