# Webhooks on the appliance: after cityd-wire.service, `cityd verify webhook` posts a tagged message
# through every incoming webhook of the city and reads it back; a second `wire` changes nothing.
# The stored URLs name the HTTPS SiteURL; the plain-HTTP double is reached with --base-url.
{ image, ... }:
{
  name = "cityd-webhook";

  nodes.server = import ./lib/server.nix { inherit image; };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      ip = nodes.server.networking.primaryIPAddress;
      baseUrl =
        if image.servesTls then "" else " --base-url http://${ip}:${toString cfg.settings.mattermost.port}";
    in
    builtins.readFile ./lib/helpers.py
    + ''
      CITY = "${cfg.cityFile}"
      BASE_URL = "${baseUrl}"

      start_all()
      wait_for_units_in_order(server, ${builtins.toJSON cfg.unitOrder})

      with subtest("every webhook delivers"):
          server.succeed(cityd(CITY, SERVER_STATE, "verify webhook" + BASE_URL))
          for channel in ${builtins.toJSON (map (w: w.channel) cfg.settings.webhooks)}:
              server.succeed(cityd(CITY, SERVER_STATE, f"verify webhook --channel {channel}" + BASE_URL))

      with subtest("a second wire run changes nothing"):
          out = server.succeed(cityd(CITY, SERVER_STATE, "wire"))
          assert "no changes" in out, out
    '';
}
