# TURN on the appliance: from a phone on the LAN, `cityd turn probe` allocates a relay and gets
# data back through it from a peer on the server's LAN address; a peer the policy denies gets the
# 403 diagnosis, and a wrong secret the 401 one. The server probes itself with the defaults.
{ image, cityLib, ... }:
{
  name = "cityd-turn";

  nodes = {
    server = import ./lib/server.nix { inherit image; };
    phone = ./lib/phone.nix;
  };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      ip = nodes.server.networking.primaryIPAddress;
      turn = "${ip}:${toString cfg.settings.turn.port}";
    in
    builtins.readFile ./lib/helpers.py
    + ''
      CITY = "${cfg.cityFile}"
      SECRET = "${cityLib.paths.turnSecretFile}"

      start_all()
      server.wait_for_unit("coturn.service")
      server.wait_for_unit("udp-echo.service")

      with subtest("the server probes its own relay with the defaults"):
          server.succeed(cityd(CITY, SERVER_STATE, "turn probe"))

      with subtest("the phone gets a relay and a data round trip to the Calls address"):
          share_with_phone(server, phone, SECRET, f"{PHONE_STATE}/secrets/turn-static-auth-secret", "0600")
          phone.succeed(f"chmod 0700 {PHONE_STATE}/secrets")
          out = phone.succeed(cityd(PHONE_CITY, PHONE_STATE, "turn probe --server ${turn} --peer ${ip}:40000"))
          print(out)
          out = phone.succeed(cityd(PHONE_CITY, PHONE_STATE, "turn probe --server ${turn} --transport tcp --peer ${ip}:40000"))
          print(out)

      with subtest("a peer the policy denies gets the 403 diagnosis"):
          # CreatePermission is refused by coturn: nothing is ever sent to 10.0.0.1.
          rc, out = phone.execute(cityd(PHONE_CITY, PHONE_STATE, "turn probe --server ${turn} --peer 10.0.0.1:9") + " 2>&1")
          print(out)
          assert rc == PROBE_PEER_DENIED, f"expected exit {PROBE_PEER_DENIED} (403 at CreatePermission), got {rc}"
          assert "403" in out, out

      with subtest("a wrong secret gets the 401 diagnosis"):
          phone.succeed("mkdir -p -m 0700 /root/wrong/secrets && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /root/wrong/secrets/turn-static-auth-secret && chmod 0600 /root/wrong/secrets/turn-static-auth-secret")
          rc, out = phone.execute(cityd(PHONE_CITY, "/root/wrong", "turn probe --server ${turn} --peer ${ip}:40000") + " 2>&1")
          print(out)
          assert rc == PROBE_UNAUTHORIZED, f"expected exit {PROBE_UNAUTHORIZED} (401 to Allocate), got {rc}"
          assert "401" in out, out
    '';
}
