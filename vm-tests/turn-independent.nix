# A witness that is not cityd: coturn's own test client, turnutils_uclient, allocates a relay on
# the appliance's coturn with credentials minted by `cityd turn creds` and gets its data back from
# turnutils_peer through the relay, as nixpkgs' own coturn test does with the static secret. A
# password one character off is refused. The peer listens on the server's LAN address, the one
# peer address the city's policy allows on the test VLAN.
{ image, cityLib, ... }:
{
  name = "cityd-turn-independent";

  nodes = {
    server =
      { pkgs, ... }:
      {
        imports = [ (import ./lib/server.nix { inherit image; }) ];
        environment.systemPackages = [ pkgs.coturn ];
      };
    phone =
      { pkgs, ... }:
      {
        imports = [ ./lib/phone.nix ];
        environment.systemPackages = [ pkgs.coturn ];
      };
  };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      ip = nodes.server.networking.primaryIPAddress;
    in
    builtins.readFile ./lib/helpers.py
    + ''
      IP = "${ip}"
      TURN_PORT = ${toString cfg.settings.turn.port}
      PEER_PORT = 3480

      start_all()
      server.wait_for_unit("coturn.service")
      server.wait_for_unit("cityd-secrets.service")
      server.succeed(f"systemd-run --unit turn-peer $(command -v turnutils_peer) -L {IP} -p {PEER_PORT}")
      server.wait_until_succeeds(f"ss -uln | grep -q '{IP}:{PEER_PORT}'")

      creds = json.loads(server.succeed(cityd("${cityLib.paths.cityFile}", SERVER_STATE, "turn creds --user witness --json")))
      user, password = creds["username"], creds["password"]


      def uclient(password):
          return phone.execute(
              f"turnutils_uclient -u '{user}' -w '{password}' -p {TURN_PORT} -e {IP} -r {PEER_PORT} -n 10 -m 1 -c {IP} 2>&1"
          )


      with subtest("coturn's own client relays data with the credentials cityd minted"):
          rc, out = uclient(password)
          print(out)
          assert rc == 0, f"turnutils_uclient failed (rc={rc})"
          assert re.search(r"Total lost packets 0 \(0", out), "data was lost through the relay"
          assert "Total transmit time" in out, out

      with subtest("a password one character off is refused"):
          wrong = ("A" if password[0] != "A" else "B") + password[1:]
          rc, out = uclient(wrong)
          print(out)
          assert rc != 0 or "Total lost packets 0 (0" not in out, "coturn accepted a wrong password"
    '';
}
