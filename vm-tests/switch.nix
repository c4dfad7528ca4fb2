# `nixos-rebuild switch` on a running appliance. Two specialisations stand in for the next
# configurations: `channel` adds a channel; `setting` also changes a Mattermost setting (an extra
# CORS origin, which the env file carries). After `switch-to-configuration test`:
#  - channel: wire re-ran and the channel exists; PostgreSQL, coturn, the container, render and db
#    were not restarted (same invocation), the vault and PKI units not either (reloaded at most);
#  - setting: render and the container restarted with the new env file; PostgreSQL and coturn not.
{ image, cityLib, ... }:
let
  releases = {
    name = "releases";
    display_name = "Releases";
    purpose = "Release notes";
  };
  origin = "https://ops.cicd.local";
in
{
  name = "cityd-switch";

  nodes.server =
    { lib, ... }:
    {
      imports = [ (import ./lib/server.nix { inherit image; }) ];
      specialisation = {
        channel.configuration = {
          services.cityd.settings.channels = cityLib.defaults.settings.channels ++ [ releases ];
        };
        setting.configuration = {
          services.cityd.settings.channels = cityLib.defaults.settings.channels ++ [ releases ];
          services.cityd.settings.mattermost.allow_cors_from = lib.mkForce [ origin ];
        };
      };
    };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      backend = nodes.server.virtualisation.oci-containers.backend;
      container = "${backend}-mattermost.service";
    in
    builtins.readFile ./lib/helpers.py
    + ''
      UNITS = ${builtins.toJSON cfg.unitOrder}
      CONTAINER = "${container}"
      SOCKET = "${cityLib.paths.mattermostSocket}"
      TEAM = "${cfg.settings.team.name}"
      ORIGIN = "${origin}"

      start_all()
      wait_for_units_in_order(server, UNITS)
      server.wait_for_unit("postgresql.service")
      server.wait_for_unit("coturn.service")


      def channel_exists(name):
          rc, _ = server.execute(
              f"curl --fail --silent --unix-socket {SOCKET} http://localhost/api/v4/teams/name/{TEAM}/channels/name/{name}"
          )
          return rc == 0


      assert not channel_exists("${releases.name}"), "the channel exists before the switch"
      before = invocations(server, STAYING + ["cityd-render.service", "cityd-db.service", CONTAINER, "cityd-wire.service"])

      with subtest("a channel added: wire re-runs, nothing else restarts"):
          switch_to(server, "channel")
          after = invocations(server, list(before))
          for unit in STAYING + ["cityd-render.service", "cityd-db.service", CONTAINER]:
              assert after[unit] == before[unit], f"{unit} restarted on a switch that only added a channel"
          assert after["cityd-wire.service"] != before["cityd-wire.service"], "wire did not re-run"
          server.succeed("systemctl is-active " + " ".join(UNITS))
          assert channel_exists("${releases.name}"), "the new channel is not in Mattermost"

      with subtest("a Mattermost setting changed: render and the container restart, PostgreSQL and coturn stay"):
          switch_to(server, "setting")
          later = invocations(server, list(before))
          for unit in STAYING:
              assert later[unit] == before[unit], f"{unit} restarted on a switch that changed a Mattermost setting"
          for unit in ["cityd-render.service", CONTAINER]:
              assert later[unit] != after[unit], f"{unit} did not restart although its input changed"
          server.wait_for_unit(CONTAINER)
          server.succeed(f"grep -q '^MM_SERVICESETTINGS_ALLOWCORSFROM=.*{ORIGIN}' ${cityLib.paths.envFile}")
          server.succeed(f"${backend} inspect mattermost --format '{{{{json .Config.Env}}}}' | grep -q 'MM_SERVICESETTINGS_ALLOWCORSFROM=[^\"]*{ORIGIN}'")
    '';
}
