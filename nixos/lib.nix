# The NixOS module's own logic as pure functions over the module's settings, using builtins only
# (no nixpkgs), so CI can evaluate it with any `nix-instantiate` and compare it with the cityd binary.
#
# `settings` below always has the shape of `config.services.cityd` (see ./options.nix); `defaults`
# is that shape filled from src/default-city.toml, the same file the Rust binary embeds.
let
  defaultCity = builtins.fromTOML (builtins.readFile ../src/default-city.toml);
  peerPolicy = builtins.fromJSON (builtins.readFile ../src/render/coturn-peer-policy.json);

  # Port of "127.0.0.1:8067" (the default city's metrics listener).
  portOf = hostPort: builtins.fromJSON (builtins.elemAt (builtins.match ".*:([0-9]+)" hostPort) 0);

  isIPv4 =
    s:
    let
      parts = builtins.match "([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})" s;
    in
    parts != null && builtins.all (p: builtins.fromJSON p <= 255) parts;
  isIPv6 = s: builtins.match "[0-9a-fA-F:.]*:[0-9a-fA-F:.]*" s != null;
  isIP = s: isIPv4 s || isIPv6 s;

  # Mattermost's own container paths (src/render/container.rs); the host side is ours.
  containerPaths = {
    certDir = "/mattermost/certs";
    metricsPort = 8067;
    caBundle = "/etc/ssl/certs/ca-certificates.crt";
    uid = 2000;
    # The local-mode socket's file name in `mattermost.local_socket_dir` (LOCAL_SOCKET_NAME).
    localSocketName = "mattermost_local.socket";
  };

  stateDir = "/var/lib/cityd";

  # Option names that differ from the city's field names (camelCase there is snake_case here).
  cityFieldNames = {
    displayName = "display_name";
    jenkinsUrl = "jenkins_url";
    postPasses = "post_passes";
    dashboardUrl = "dashboard_url";
  };
  optionNames = builtins.listToAttrs (
    map
      (n: {
        name = cityFieldNames.${n};
        value = n;
      })
      (builtins.attrNames cityFieldNames)
  );
  # Renames the keys of an attrset through `names`, leaving out null values (an unset option is
  # an absent city field).
  renameFields =
    names: attrs:
    builtins.listToAttrs (
      map
        (n: {
          name = names.${n} or n;
          value = attrs.${n};
        })
        (builtins.filter (n: attrs.${n} != null) (builtins.attrNames attrs))
    );
  # A city table as option values, and back.
  fromCity = renameFields optionNames;
  toCity = renameFields cityFieldNames;
in
rec {
  inherit
    defaultCity
    peerPolicy
    isIPv4
    isIPv6
    isIP
    containerPaths
    ;

  # Where cityd keeps its state and what the units and services read from it. cityd's StateDir
  # owns these names (src/state.rs, src/secrets/name.rs); the CI test checks they agree.
  paths = rec {
    inherit stateDir;
    secretsDir = "${stateDir}/secrets";
    turnSecretFile = "${secretsDir}/turn-static-auth-secret";
    pkiDir = "${stateDir}/pki";
    serverCert = "${pkiDir}/server.pem";
    serverKey = "${pkiDir}/server.key";
    caCert = "${pkiDir}/ca.pem";
    envFile = "${stateDir}/render/mattermost.env";
    # `cityd relay serve`'s durable queue (its default, <state>/relay-spool).
    relaySpool = "${stateDir}/relay-spool";
    # The PostgreSQL superuser's password for `cityd db ensure --admin-password-file`: cityd
    # administers over TCP only, so cityd-db.service generates it and sets it on the role first.
    dbAdminDir = "${stateDir}/postgresql";
    dbAdminPasswordFile = "${dbAdminDir}/admin-password";
    # Host directories bind-mounted into the Mattermost container, owned by its UID.
    mattermostDir = "${stateDir}/mattermost";
    mattermostDirs = {
      config = "${mattermostDir}/config";
      data = "${mattermostDir}/data";
      logs = "${mattermostDir}/logs";
      plugins = "${mattermostDir}/plugins";
      clientPlugins = "${mattermostDir}/client-plugins";
      certs = "${mattermostDir}/certs";
      socket = "${mattermostDir}/run";
    };
    # Mattermost's local-mode socket on the host side (`cityd wire`'s default); the relay reads
    # channels back through it after an uncertain post, so it never posts an event twice.
    mattermostSocket = "${mattermostDirs.socket}/${containerPaths.localSocketName}";
  };

  # The module's option defaults, from the default city. LAN addresses have no default: the peer
  # policy and the firewall need literal addresses at build time, so "auto" cannot be used here.
  defaults = {
    domain = defaultCity.domain;
    lan = {
      addresses = [ ];
      interface = null;
      allowTestRanges = defaultCity.lan.allow_test_ranges;
    };
    openFirewall = true;
    mattermost = {
      image = defaultCity.mattermost.image;
      host = null;
      port = defaultCity.mattermost.port;
      callsPort = defaultCity.mattermost.calls_port;
      metricsPort = portOf defaultCity.mattermost.metrics;
      localSocketDir = defaultCity.mattermost.local_socket_dir;
      allowCorsFrom = [ ];
    };
    turn = {
      port = defaultCity.turn.port;
      relayMin = defaultCity.turn.relay_min;
      relayMax = defaultCity.turn.relay_max;
      realm = null;
      credentialTtlMinutes = defaultCity.turn.credential_ttl_minutes;
    };
    team = fromCity defaultCity.team;
    # With the defaults the options have where the city file leaves a field out.
    channels = map (c: { purpose = ""; } // fromCity c) defaultCity.channels;
    bots = map
      (
        b:
        {
          description = "";
          channel = null;
        }
        // fromCity b
      )
      defaultCity.bots;
    webhooks = map (w: { description = ""; } // fromCity w) defaultCity.webhooks;
    plugins.jenkins = null;
    integrations = { };
    database = {
      name = defaultCity.database.name;
      host = null;
      port = defaultCity.database.port;
      tls = true;
      allowFrom = [ "samenet" ];
    };
    # The CI test compares these with what `cityd config show` reports for the embedded city.
    relay = {
      enable = false;
      listen = defaultCity.relay.listen;
      metrics = defaultCity.relay.metrics;
      postPasses = defaultCity.relay.post_passes;
      dashboardUrl = defaultCity.relay.dashboard_url or null;
    };
  };

  mattermostHost = s: if s.mattermost.host != null then s.mattermost.host else "mattermost.${s.domain}";

  # The host's main LAN address: the first IPv4 one (phones and most labs are IPv4), else the first.
  primaryAddress =
    s:
    let
      v4 = builtins.filter isIPv4 s.lan.addresses;
    in
    if v4 != [ ] then
      builtins.head v4
    else if s.lan.addresses != [ ] then
      builtins.head s.lan.addresses
    else
      "127.0.0.1";

  # The address the container reaches PostgreSQL on: by default the primary LAN address, which the
  # city certificate names in its SANs, so `sslmode=verify-full` holds.
  databaseHost = s: if s.database.host != null then s.database.host else primaryAddress s;

  # The city description cityd reads (JSON; `City::from_toml` accepts JSON). No secret in it.
  city =
    s:
    let
      optional = cond: attrs: if cond then attrs else { };
    in
    {
      domain = s.domain;
      lan.addresses = s.lan.addresses;
      lan.allow_test_ranges = s.lan.allowTestRanges;
      mattermost = {
        image = s.mattermost.image;
        port = s.mattermost.port;
        metrics = "127.0.0.1:${toString s.mattermost.metricsPort}";
        calls_port = s.mattermost.callsPort;
        allow_cors_from = s.mattermost.allowCorsFrom;
        local_socket_dir = s.mattermost.localSocketDir;
      }
      // optional (s.mattermost.host != null) { host = s.mattermost.host; };
      turn = {
        port = s.turn.port;
        relay_min = s.turn.relayMin;
        relay_max = s.turn.relayMax;
        credential_ttl_minutes = s.turn.credentialTtlMinutes;
      }
      // optional (s.turn.realm != null) { realm = s.turn.realm; };
      team = toCity s.team;
      channels = map toCity s.channels;
      # Without these the city has no bots and no webhooks: `cityd wire` would create none and
      # `cityd verify webhook` would have nothing to verify.
      bots = map toCity s.bots;
      webhooks = map toCity s.webhooks;
      database = {
        host = databaseHost s;
        port = s.database.port;
        name = s.database.name;
        user = s.database.name;
        tls = s.database.tls;
      };
      # Written whether or not the relay runs here: the SonarQube integration derives the
      # relay's URL from relay.listen.
      relay = toCity (builtins.removeAttrs s.relay [ "enable" ]);
    }
    // optional (s.plugins.jenkins != null) {
      plugins.jenkins = toCity s.plugins.jenkins;
    }
    // optional (s.integrations != { }) { integrations = s.integrations; };

  cityJSON = s: builtins.toJSON (city s);

  # Problems the module reports as NixOS assertions (cityd config check covers the rest at build time).
  problems =
    s:
    (
      if s.lan.addresses == [ ] then
        [
          "services.cityd.lan.addresses is empty: list this host's LAN IP addresses (e.g. [ \"192.168.1.20\" ]); the coturn peer policy and the certificate need them at build time"
        ]
      else
        [ ]
    )
    ++ map
      (
        a:
        "services.cityd.lan.addresses contains \"${a}\", which is not an IP address: give literal addresses (interface names and \"auto\" are resolved only at run time, too late for the coturn peer policy)"
      )
      (builtins.filter (a: !isIP a) s.lan.addresses);

  # Host firewall, exactly the ports phones and browsers need. The metrics port stays closed (it is
  # published on 127.0.0.1 only), and so does PostgreSQL except from the container bridge.
  firewall = s: {
    allowedTCPPorts = [
      s.mattermost.port
      s.mattermost.callsPort
      s.turn.port
    ]
    # SonarQube posts to the relay from another host; the relay's metrics stay on loopback.
    ++ (if s.relay.enable then [ (relayPort s) ] else [ ]);
    allowedUDPPorts = [
      s.mattermost.callsPort
      s.turn.port
    ];
    allowedUDPPortRanges = [
      {
        from = s.turn.relayMin;
        to = s.turn.relayMax;
      }
    ];
  };

  # The TCP port of relay.listen ("0.0.0.0:9180", "[::]:9180").
  relayPort = s: portOf s.relay.listen;

  # The bridge the container reaches the host through, per backend (netavark's and Docker's default).
  containerBridge = backend: if backend == "docker" then "docker0" else "podman0";

  # coturn: what `services.coturn` options carry, and the lines that go to its extraConfig. Together
  # they equal what `cityd render coturn --without-secret` writes (the CI test compares them).
  coturn = s: rec {
    options = {
      listening-port = s.turn.port;
      realm = if s.turn.realm != null then s.turn.realm else mattermostHost s;
      min-port = s.turn.relayMin;
      max-port = s.turn.relayMax;
      use-auth-secret = true;
      no-cli = true;
      no-tcp-relay = true;
    };
    # Lines the flat `services.coturn` options render for the settings above.
    optionLines = [
      "listening-port=${toString options.listening-port}"
      "realm=${options.realm}"
      "min-port=${toString options.min-port}"
      "max-port=${toString options.max-port}"
      "use-auth-secret"
      "no-cli"
      "no-tcp-relay"
    ];
    hardeningLines = [
      "fingerprint"
      "no-multicast-peers"
      "no-rfc5780"
      "no-software-attribute"
      "stale-nonce=600"
      "max-allocate-lifetime=3600"
      "user-quota=12"
      "total-quota=1200"
      "log-file=stdout"
    ];
    deniedPeerLines = map (d: "denied-peer-ip=${d.range}") peerPolicy.denied;
    allowedPeerLines = map (a: "allowed-peer-ip=${a}") s.lan.addresses;
    extraLines = hardeningLines ++ deniedPeerLines ++ allowedPeerLines;
    extraConfig = builtins.concatStringsSep "\n" extraLines + "\n";
    # The secret reaches coturn as a systemd credential: PID 1 copies the root-only vault file into
    # a directory only the turnserver user can read, so the file never leaves the vault's 0600 mode.
    credential = "turn-static-auth-secret";
    loadCredential = "${credential}:${paths.turnSecretFile}";
    staticAuthSecretFile = "/run/credentials/coturn.service/${credential}";
  };

  # How `cityd db ensure` administers PostgreSQL. Its --admin-url is TCP only (no Unix-socket
  # form, so no peer authentication): the superuser over loopback with a password from a root-only
  # file, TLS verified against the city CA when the city asks for TLS (the server certificate
  # names 127.0.0.1).
  dbAdmin = database: rec {
    user = "postgres";
    url = "postgres://${user}@127.0.0.1:${toString database.port}/postgres";
    passwordFile = paths.dbAdminPasswordFile;
    hbaLine = "${if database.tls then "hostssl" else "host"} postgres ${user} 127.0.0.1/32 scram-sha-256";
    # psql input run over the Unix socket as `postgres` (root is mapped to it) before each
    # `cityd db ensure`: sets the superuser's password from the file. The password goes through
    # psql's backquote expansion, so it is in no argv, and the session logs no statement.
    # `cat` is the absolute path of cat (this file has no pkgs).
    setPasswordSql = cat: ''
      \set ON_ERROR_STOP on
      SET log_statement = 'none';
      SET log_min_error_statement = 'panic';
      \set admin_password `${cat} ${passwordFile}`
      ALTER ROLE ${user} PASSWORD :'admin_password';
    '';
  };

  # PostgreSQL's server certificate and key, handed over the same way (PostgreSQL accepts a key
  # owned by its user with mode 0400, which is what systemd credentials are).
  postgresql = s: {
    loadCredential = [
      "server.pem:${paths.serverCert}"
      "server.key:${paths.serverKey}"
    ];
    settings = {
      ssl = s.database.tls;
      ssl_cert_file = "/run/credentials/postgresql.service/server.pem";
      ssl_key_file = "/run/credentials/postgresql.service/server.key";
    };
    # cityd's admin connection, then the container's: over TCP with the password `cityd db ensure`
    # sets from the vault.
    authentication = builtins.concatStringsSep "\n" (
      [ (dbAdmin s.database).hbaLine ]
      ++ map
        (
          from:
          "${if s.database.tls then "hostssl" else "host"} ${s.database.name} ${s.database.name} ${from} scram-sha-256"
        )
        s.database.allowFrom
    );
  };

  # The Mattermost container: what `cityd up` runs on a Docker host, as oci-containers settings.
  container = s: {
    image = s.mattermost.image;
    # Rendered at run time by cityd-render.service, outside the store, mode 0600.
    environmentFiles = [ paths.envFile ];
    ports =
      map
        (
          a:
          "${if isIPv6 a then "[${a}]" else a}:${toString s.mattermost.port}:${toString s.mattermost.port}/tcp"
        )
        s.lan.addresses
      ++ [
        "${toString s.mattermost.callsPort}:${toString s.mattermost.callsPort}/tcp"
        "${toString s.mattermost.callsPort}:${toString s.mattermost.callsPort}/udp"
        "127.0.0.1:${toString s.mattermost.metricsPort}:${toString containerPaths.metricsPort}/tcp"
      ];
    volumes = [
      "${paths.mattermostDirs.config}:/mattermost/config:rw"
      "${paths.mattermostDirs.data}:/mattermost/data:rw"
      "${paths.mattermostDirs.logs}:/mattermost/logs:rw"
      "${paths.mattermostDirs.plugins}:/mattermost/plugins:rw"
      "${paths.mattermostDirs.clientPlugins}:/mattermost/client/plugins:rw"
      "${paths.mattermostDirs.certs}:${containerPaths.certDir}:ro"
      "${paths.mattermostDirs.certs}/ca-bundle.crt:${containerPaths.caBundle}:ro"
      "${paths.mattermostDirs.socket}:${s.mattermost.localSocketDir}:rw"
    ];
    extraOptions = [ "--hostname=${mattermostHost s}" ];
    # The image runs as this UID; the host directories above are created owned by it.
    inherit (containerPaths) uid;
    ownedDirs = builtins.attrValues paths.mattermostDirs;
  };

  # cityd's units, in the order they must run: the oneshots, then the relay when it is enabled.
  # Each `args` list follows the global options `--city <file> --state-dir <dir>`; `after` names
  # what must have succeeded first.
  units =
    { backend ? "podman"
    , database ? defaults.database
    , relay ? false
    ,
    }:
    let
      containerUnit = "${backend}-mattermost.service";
      admin = dbAdmin database;
    in
    [
      {
        name = "cityd-secrets.service";
        description = "cityd: generate the vault's secrets (never rotates an existing one)";
        args = [
          "secrets"
          "ensure"
        ];
        after = [ ];
      }
      {
        name = "cityd-pki.service";
        description = "cityd: local CA and the server certificate for the LAN addresses";
        args = [
          "pki"
          "ensure"
        ];
        after = [ "cityd-secrets.service" ];
      }
      {
        name = "cityd-render.service";
        description = "cityd: render Mattermost's env file from the city and the vault";
        args = [
          "render"
          "mattermost-env"
        ];
        after = [ "cityd-pki.service" ];
      }
      {
        name = "cityd-db.service";
        description = "cityd: Mattermost's PostgreSQL role, its password from the vault, and ownership";
        args = [
          "db"
          "ensure"
          "--admin-url"
          admin.url
          "--admin-password-file"
          admin.passwordFile
        ];
        after = [
          "cityd-render.service"
          "postgresql.target"
        ];
      }
      {
        # Declared by virtualisation.oci-containers; the module adds the ordering.
        name = containerUnit;
        description = null;
        args = null;
        after = [
          "cityd-render.service"
          "cityd-db.service"
        ];
      }
      {
        name = "cityd-wire.service";
        description = "cityd: team, channels, bots, webhooks and plugins in Mattermost";
        # The first start of the real image migrates the database; podman reports the container
        # started long before Mattermost answers, and wire's default wait is 60 s.
        args = [
          "wire"
          "--timeout"
          "5m"
        ];
        after = [ containerUnit ];
      }
    ]
    ++ (if relay then [ relayUnit ] else [ ]);

  # `cityd relay serve`: the one long-running cityd unit, after wire (which creates the #alerts and
  # #builds webhooks it posts through). It reads its secret and webhook URLs from the vault and
  # spools under the state directory (paths.relaySpool, its default); nothing secret is in argv.
  relayUnit = {
    name = "cityd-relay.service";
    description = "cityd: relay SonarQube quality gates to Mattermost (#alerts, #builds)";
    longRunning = true;
    args = [
      "relay"
      "serve"
      "--mattermost-socket"
      paths.mattermostSocket
    ];
    after = [ "cityd-wire.service" ];
  };

  # The environment of every cityd unit: only variables cityd reads (the CI test checks each name
  # against the source). CITYD_LOG is the tracing filter; info logs each step's decision.
  unitEnvironment = {
    CITYD_LOG = "info";
  };

  # `cityd --city <file> --state-dir <dir> <args>` for one unit.
  commandLine =
    cityFile: unit:
    [
      "--city"
      cityFile
      "--state-dir"
      stateDir
    ]
    ++ unit.args;
}
