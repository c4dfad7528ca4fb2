# The sandbox holds: with the relay enabled, every cityd unit still succeeds, and `systemd-analyze
# security` rates each at or below its exposure bound (nixos/lib.nix exposureBounds; the numbers
# are targets, see docs/nixos.md). The relay runs as its own non-root user with 65536 descriptors.
{ image, cityLib, ... }:
{
  name = "cityd-hardening";

  nodes.server =
    { ... }:
    {
      imports = [ (import ./lib/server.nix { inherit image; }) ];
      services.cityd.relay.enable = true;
    };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
    in
    builtins.readFile ./lib/helpers.py
    + ''
      UNITS = ${builtins.toJSON cfg.unitOrder}
      BOUNDS = ${builtins.toJSON cityLib.exposureBounds}
      RELAY = "${cfg.settings.relay.listen}".replace("0.0.0.0", "127.0.0.1")

      start_all()
      wait_for_units_in_order(server, UNITS)

      with subtest("each cityd unit's exposure is at or below its bound"):
          scores = {}
          for unit, bound in BOUNDS.items():
              out = server.succeed(f"systemd-analyze security --no-pager {unit}")
              m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
              assert m, out
              scores[unit] = float(m.group(1))
              print(f"{unit}: exposure {scores[unit]} (bound {bound})")
          over = {u: s for u, s in scores.items() if s > BOUNDS[u]}
          assert not over, f"exposure above the bound: {over}"

      with subtest("the relay runs as its own user, with its descriptor limit, and answers"):
          server.wait_until_succeeds(f"curl --fail --silent http://{RELAY}/healthz")
          pid = server.succeed("systemctl show -p MainPID --value cityd-relay.service").strip()
          user = server.succeed(f"ps -o user= -p {pid}").strip()
          assert user not in ("root", "0"), f"the relay runs as {user}"
          limits = server.succeed(f"cat /proc/{pid}/limits")
          assert re.search(r"Max open files\s+65536\s+65536", limits), limits
          # The vault stays root's: the relay's user cannot read it.
          server.fail(f"setpriv --reuid={user} --regid={user} --clear-groups cat ${cityLib.paths.turnSecretFile}")
    '';
}
