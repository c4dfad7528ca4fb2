# Webhooks on the appliance: after cityd-wire.service, `cityd verify webhook` posts a tagged message
# through every channel's incoming webhook and reads it back; a second `wire` changes nothing.
{ image, ... }:
{
  name = "cityd-webhook";

  nodes.server = import ./lib/server.nix { inherit image; };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
    in
    builtins.readFile ./lib/helpers.py
    + ''
      CITY = "${cfg.cityFile}"

      start_all()
      wait_for_units_in_order(server, ${builtins.toJSON cfg.unitOrder})

      with subtest("every channel's webhook delivers"):
          server.succeed(cityd(CITY, SERVER_STATE, "verify webhook"))
          for channel in ${builtins.toJSON (map (c: c.name) cfg.channels)}:
              server.succeed(cityd(CITY, SERVER_STATE, f"verify webhook --channel {channel}"))

      with subtest("a second wire run changes nothing"):
          out = server.succeed(cityd(CITY, SERVER_STATE, "wire"))
          assert "no changes" in out, out
    '';
}
