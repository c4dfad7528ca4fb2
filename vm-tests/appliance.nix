# The appliance boots: cityd's units succeed in order, the firewall opens exactly the city's ports,
# and a phone that trusts only the exported city CA verifies TLS to Mattermost by the LAN IP (with
# the plain-HTTP double: to the server's TLS witness, which serves the same certificate).
{ image, cityLib, ... }:
{
  name = "cityd-appliance";

  nodes = {
    server = import ./lib/server.nix { inherit image; };
    phone = ./lib/phone.nix;
  };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      ip = nodes.server.networking.primaryIPAddress;
      fw = cityLib.firewall cfg;
      backend = nodes.server.virtualisation.oci-containers.backend;
      bridge = cityLib.containerBridge backend;
      port = toString;
      tlsPort = if image.servesTls then cfg.settings.mattermost.port else image.tlsWitnessPort;
    in
    builtins.readFile ./lib/helpers.py
    + ''
      CITY = "${cfg.cityFile}"
      IP = "${ip}"
      UNITS = ${builtins.toJSON cfg.unitOrder}
      SERVES_TLS = ${if image.servesTls then "True" else "False"}
      TLS_PORT = ${port tlsPort}

      start_all()

      with subtest("cityd's units succeed in order"):
          wait_for_units_in_order(server, UNITS)
          server.wait_for_unit("postgresql.target")
          server.wait_for_unit("coturn.service")

      with subtest("the container reads the env file cityd rendered, outside the store"):
          server.succeed("test -f ${cityLib.paths.envFile}")
          server.succeed("test $(stat -c %a ${cityLib.paths.envFile}) = 600")
          server.succeed("grep -q '^MM_SQLSETTINGS_DATASOURCE=.*sslmode=verify-full' ${cityLib.paths.envFile}")
          # The running container got its settings from that file (SiteURL is set nowhere else).
          server.succeed("${backend} inspect mattermost --format '{{json .Config.Env}}' | grep -q MM_SERVICESETTINGS_SITEURL=")

      with subtest("the firewall opens exactly the city's ports"):
          rules = server.succeed("iptables -w -S nixos-fw")
          for port in ${builtins.toJSON (map port fw.allowedTCPPorts)}:
              assert_firewall_opens(rules, "tcp", port)
          for port in ${builtins.toJSON (map port fw.allowedUDPPorts)}:
              assert_firewall_opens(rules, "udp", port)
          assert_firewall_opens(rules, "udp", "${port cfg.settings.turn.relay_min}:${port cfg.settings.turn.relay_max}")
          assert_firewall_opens(rules, "tcp", "${port cfg.settings.database.port}", interface="${bridge}")
          assert "--dport ${port (cityLib.portOf cfg.settings.mattermost.metrics)} " not in rules, rules
          # Metrics are published on loopback only, PostgreSQL not at all towards the LAN.
          published = server.succeed("${backend} port mattermost")
          assert "-> 127.0.0.1:${port (cityLib.portOf cfg.settings.mattermost.metrics)}" in published, published
          assert "0.0.0.0:${port (cityLib.portOf cfg.settings.mattermost.metrics)}" not in published, published
          # Mattermost and Calls on the LAN address only: a port published on every address would
          # bypass the host firewall on every interface.
          for proto in ["tcp", "udp"]:
              assert f"${port cfg.settings.mattermost.calls_port}/{proto} -> {IP}:${port cfg.settings.mattermost.calls_port}" in published, published
          assert f"${port cfg.settings.mattermost.port}/tcp -> {IP}:${port cfg.settings.mattermost.port}" in published, published
          assert "0.0.0.0:" not in published and "[::]:" not in published, published
          phone.fail(f"nc -z -w 3 {IP} ${port (cityLib.portOf cfg.settings.mattermost.metrics)}")
          phone.fail(f"nc -z -w 3 {IP} ${port cfg.settings.database.port}")

      with subtest("a phone trusting only the city CA verifies TLS by the LAN IP"):
          share_with_phone(server, phone, "${cityLib.paths.caCert}", f"{PHONE_STATE}/pki/ca.pem", "0644")
          if SERVES_TLS:
              url = f"https://{IP}:{TLS_PORT}/api/v4/system/ping"
          else:
              # The double answers in plain HTTP on the published port; the witness serves the
              # certificate cityd issued, which is what the phone has to accept.
              phone.wait_until_succeeds(f"curl --fail --silent http://{IP}:${port cfg.settings.mattermost.port}/api/v4/system/ping", timeout=600)
              server.wait_for_unit("tls-witness.service")
              url = f"https://{IP}:{TLS_PORT}/"
          phone.wait_until_succeeds(f"nc -z -w 3 {IP} {TLS_PORT}", timeout=600)
          phone.succeed(cityd(PHONE_CITY, PHONE_STATE, f"verify tls --connect {IP}:{TLS_PORT}"))
          # Independent witnesses: openssl checks the IP SAN, curl with only the city CA connects,
          # and curl with the system trust store (which lacks the city CA) refuses.
          phone.succeed(f"openssl s_client -connect {IP}:{TLS_PORT} -CAfile {PHONE_STATE}/pki/ca.pem -verify_ip {IP} -verify_return_error </dev/null")
          phone.succeed(f"curl --fail --silent --cacert {PHONE_STATE}/pki/ca.pem {url}")
          phone.fail(f"curl --fail --silent {url}")

      with subtest("the TURN secret reached coturn without entering the store"):
          server.succeed("grep -q '^use-auth-secret' /run/coturn/turnserver.cfg")
          server.fail("grep -q '#static-auth-secret#' /run/coturn/turnserver.cfg")
          # grep exits 1 for "not found"; 2 would mean it could not look.
          rc, _ = server.execute("grep -qF \"$(cat ${cityLib.paths.turnSecretFile})\" ${cfg.cityFile} /etc/systemd/system/coturn.service")
          assert rc == 1, f"the TURN secret is in the store or grep failed (rc={rc})"
    '';
}
