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
    # The city file every unit reads (a link into the store, managed by environment.etc): a
    # stable path, so a new city changes no command line.
    cityFile = "/etc/cityd/city.json";
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

  # An image name with its registry: a name without one ("mattermost/x:1") is Docker Hub's, and is
  # written out so that no registry search order (podman's unqualified-search-registries) decides.
  qualifyImage =
    image:
    let
      first = builtins.head (builtins.split "/" image);
      hasRegistry =
        builtins.length (builtins.split "/" image) > 1
        && (builtins.match ".*[.:].*" first != null || first == "localhost");
    in
    if hasRegistry then image else "docker.io/${image}";
  isQualifiedImage = image: qualifyImage image == image;

  # The module's defaults (the shape of `config.services.cityd`). `settings` is the city description
  # itself (RFC 42): the default city, with what differs on NixOS. LAN addresses have no default:
  # the peer policy and the firewall need literal addresses at build time, so "auto" cannot be used.
  defaults = {
    settings =
      builtins.removeAttrs defaultCity [
        "admin"
        "plugins"
        "integrations"
      ]
      // {
        lan.addresses = [ ];
        mattermost = defaultCity.mattermost // {
          image = qualifyImage defaultCity.mattermost.image;
        };
        # PostgreSQL is the host's (services.postgresql, not a container cityd manages), reached over
        # TLS at the primary LAN address.
        database =
          builtins.removeAttrs defaultCity.database [
            "host"
            "image"
          ]
          // {
            managed = false;
            tls = true;
          };
      };
    firewallInterface = null;
    openFirewall = true;
    mattermost.imageFile = null;
    relay.enable = false;
    postgresql = {
      allowFrom = null;
      major = 17;
    };
  };

  # The TCP port of a "host:port" listener ("127.0.0.1:8067", "[::]:9180").
  inherit portOf;

  # A value without its null fields, recursively: an unset typed option is an absent city field.
  withoutNulls =
    v:
    if builtins.isAttrs v then
      builtins.mapAttrs (_: withoutNulls) (
        builtins.removeAttrs v (builtins.filter (n: v.${n} == null) (builtins.attrNames v))
      )
    else if builtins.isList v then
      map withoutNulls v
    else
      v;

  mattermostHost =
    s:
    let
      host = s.settings.mattermost.host or null;
    in
    if host != null then host else "mattermost.${s.settings.domain}";

  # The host's main LAN address: the first IPv4 one (phones and most labs are IPv4), else the first.
  primaryAddress =
    s:
    let
      addresses = s.settings.lan.addresses;
      v4 = builtins.filter isIPv4 addresses;
    in
    if v4 != [ ] then
      builtins.head v4
    else if addresses != [ ] then
      builtins.head addresses
    else
      "127.0.0.1";

  # The address the container reaches PostgreSQL on: by default the primary LAN address, which the
  # city certificate names in its SANs, so `sslmode=verify-full` holds.
  databaseHost =
    s:
    let
      host = s.settings.database.host or null;
    in
    if host != null then host else primaryAddress s;

  # The city description cityd reads (JSON; `City::from_toml` accepts JSON): the settings as given,
  # the database host and user filled in. No secret in it.
  city =
    s:
    let
      settings = withoutNulls s.settings;
    in
    settings
    // {
      database = settings.database // {
        host = databaseHost s;
        user = settings.database.user or settings.database.name;
      };
    };

  cityJSON = s: builtins.toJSON (city s);

  # The parts of the city each unit reads: a unit restarts (or, for secrets and pki, re-runs in
  # place) on a switch only when its part changed. `cityd render mattermost-env` reads the domain,
  # the LAN, Mattermost, TURN, the database and the integrations (their hosts become trusted
  # internal connections); `cityd db ensure` the database; the relay its own table, Mattermost
  # (the socket) and the webhooks; `cityd pki ensure` the names in the certificate. `cityd wire`
  # and `cityd secrets ensure` read the whole city.
  cityParts =
    s:
    let
      c = city s;
      pick =
        names:
        builtins.toJSON (
          builtins.intersectAttrs (builtins.listToAttrs (
            map (n: {
              name = n;
              value = null;
            }) names
          )) c
        );
    in
    {
      all = builtins.toJSON c;
      render = pick [
        "domain"
        "lan"
        "mattermost"
        "turn"
        "database"
        "integrations"
      ];
      pki = pick [
        "domain"
        "lan"
        "mattermost"
      ];
      db = pick [ "database" ];
      relay = pick [
        "relay"
        "mattermost"
        "webhooks"
      ];
    };

  # Problems the module reports as NixOS assertions (cityd config check covers the rest at build time).
  problems =
    s:
    let
      addresses = s.settings.lan.addresses;
      metricsHost = builtins.head (builtins.match "(.*):[0-9]+" s.settings.mattermost.metrics);
    in
    (
      if addresses == [ ] then
        [
          "services.cityd.settings.lan.addresses is empty: list this host's LAN IP addresses (e.g. [ \"192.168.1.20\" ]); the coturn peer policy and the certificate need them at build time"
        ]
      else
        [ ]
    )
    ++ map (
      a:
      "services.cityd.settings.lan.addresses contains \"${a}\", which is not an IP address: give literal addresses (interface names and \"auto\" are resolved only at run time, too late for the coturn peer policy)"
    ) (builtins.filter (a: !isIP a) addresses)
    ++ (
      if isQualifiedImage s.settings.mattermost.image then
        [ ]
      else
        [
          "services.cityd.settings.mattermost.image \"${s.settings.mattermost.image}\" names no registry: write it out (\"${qualifyImage s.settings.mattermost.image}\"), so no registry search order picks the image"
        ]
    )
    ++ (
      if s.settings.database.user or s.settings.database.name == s.settings.database.name then
        [ ]
      else
        [
          "services.cityd.settings.database.user (\"${s.settings.database.user}\") differs from settings.database.name (\"${s.settings.database.name}\"): PostgreSQL's ensureDBOwnership gives the database to the role of the same name; use one name for both"
        ]
    )
    ++ (
      if metricsHost == "127.0.0.1" then
        [ ]
      else
        [
          "services.cityd.settings.mattermost.metrics is \"${s.settings.mattermost.metrics}\": metrics are published on 127.0.0.1 only; use \"127.0.0.1:PORT\""
        ]
    );

  # Host firewall, exactly the ports phones and browsers need. The metrics port stays closed (it is
  # published on 127.0.0.1 only), and so does PostgreSQL except from the container bridge.
  firewall =
    s:
    let
      c = s.settings;
    in
    {
      allowedTCPPorts = [
        c.mattermost.port
        c.mattermost.calls_port
        c.turn.port
      ]
      # SonarQube posts to the relay from another host; the relay's metrics stay on loopback.
      ++ (if s.relay.enable then [ (relayPort s) ] else [ ]);
      allowedUDPPorts = [
        c.mattermost.calls_port
        c.turn.port
      ];
      allowedUDPPortRanges = [
        {
          from = c.turn.relay_min;
          to = c.turn.relay_max;
        }
      ];
    };

  # The TCP port of relay.listen ("0.0.0.0:9180", "[::]:9180").
  relayPort = s: portOf s.settings.relay.listen;

  # The bridge the container reaches the host through, per backend (netavark's and Docker's default).
  containerBridge = backend: if backend == "docker" then "docker0" else "podman0";
  # The subnet of that bridge's default network: the only source the container's connections to
  # PostgreSQL come from (netavark's `podman` network and Docker's `bridge` network).
  containerSubnet = backend: if backend == "docker" then "172.17.0.0/16" else "10.88.0.0/16";

  # coturn: what the coturn settings carry, and the lines that go to its extraConfig. Together they
  # equal what `cityd render coturn --without-secret` writes (the CI test compares them).
  coturn =
    s:
    let
      c = s.settings;
    in
    rec {
      options = {
        listening-port = c.turn.port;
        realm = if c.turn.realm or null != null then c.turn.realm else mattermostHost s;
        min-port = c.turn.relay_min;
        max-port = c.turn.relay_max;
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
      allowedPeerLines = map (a: "allowed-peer-ip=${a}") c.lan.addresses;
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
    hbaLine = "${
      if database.tls then "hostssl" else "host"
    } postgres ${user} 127.0.0.1/32 scram-sha-256";
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
  postgresql =
    s: backend:
    let
      db = s.settings.database;
      allowFrom =
        if s.postgresql.allowFrom != null then s.postgresql.allowFrom else [ (containerSubnet backend) ];
    in
    {
      loadCredential = [
        "server.pem:${paths.serverCert}"
        "server.key:${paths.serverKey}"
      ];
      settings = {
        ssl = db.tls;
        ssl_cert_file = "/run/credentials/postgresql.service/server.pem";
        ssl_key_file = "/run/credentials/postgresql.service/server.key";
      };
      # Loopback for cityd's admin connection, the address the container connects to; nothing else.
      listenAddresses = builtins.concatStringsSep "," (
        [ "localhost" ] ++ (if databaseHost s == "127.0.0.1" then [ ] else [ (databaseHost s) ])
      );
      # cityd's admin connection, then the container's (from its network's subnet only): over TCP
      # with the password `cityd db ensure` sets from the vault.
      authentication = builtins.concatStringsSep "\n" (
        [ (dbAdmin db).hbaLine ]
        ++ map (
          from:
          "${if db.tls then "hostssl" else "host"} ${db.name} ${db.user or db.name} ${from} scram-sha-256"
        ) allowFrom
      );
    };

  # The Mattermost container: what `cityd up` runs on a Docker host, as oci-containers settings.
  # Every published port names its address: a published port bypasses the host firewall, so
  # Mattermost and Calls are published on the LAN addresses and metrics on loopback only.
  container =
    s:
    let
      c = s.settings;
      onLan =
        port: proto:
        map (
          a: "${if isIPv6 a then "[${a}]" else a}:${toString port}:${toString port}/${proto}"
        ) c.lan.addresses;
    in
    {
      image = c.mattermost.image;
      # Rendered at run time by cityd-render.service, outside the store, mode 0600.
      environmentFiles = [ paths.envFile ];
      ports =
        onLan c.mattermost.port "tcp"
        ++ onLan c.mattermost.calls_port "tcp"
        ++ onLan c.mattermost.calls_port "udp"
        ++ [
          "127.0.0.1:${toString (portOf c.mattermost.metrics)}:${toString containerPaths.metricsPort}/tcp"
        ];
      volumes = [
        "${paths.mattermostDirs.config}:/mattermost/config:rw"
        "${paths.mattermostDirs.data}:/mattermost/data:rw"
        "${paths.mattermostDirs.logs}:/mattermost/logs:rw"
        "${paths.mattermostDirs.plugins}:/mattermost/plugins:rw"
        "${paths.mattermostDirs.clientPlugins}:/mattermost/client/plugins:rw"
        "${paths.mattermostDirs.certs}:${containerPaths.certDir}:ro"
        "${paths.mattermostDirs.certs}/ca-bundle.crt:${containerPaths.caBundle}:ro"
        "${paths.mattermostDirs.socket}:${c.mattermost.local_socket_dir}:rw"
      ];
      extraOptions = [ "--hostname=${mattermostHost s}" ];
      # The image runs as this UID; the host directories above are created owned by it.
      inherit (containerPaths) uid;
      ownedDirs = builtins.attrValues paths.mattermostDirs;
    };

  # cityd's units, in the order they run: the oneshots, then the relay when it is enabled. Each
  # `args` list follows the global options `--city <file> --state-dir <dir>`; `after` names what
  # must have run first, `part` the part of the city (cityParts) whose change re-runs it, and
  # `onSwitch` what a switch does when that part changed: "restart" (the units that require it
  # restart too, as its output is their input) or "reload" (the unit re-runs its idempotent step
  # in place and nothing else moves: the vault and the PKI never take the city down).
  units =
    {
      backend ? "podman",
      database ? defaults.settings.database,
      relay ? false,
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
        part = "all";
        onSwitch = "reload";
      }
      {
        name = "cityd-pki.service";
        description = "cityd: local CA and the server certificate for the LAN addresses";
        args = [
          "pki"
          "ensure"
        ];
        after = [ "cityd-secrets.service" ];
        part = "pki";
        onSwitch = "reload";
      }
      {
        name = "cityd-render.service";
        description = "cityd: render Mattermost's env file from the city and the vault";
        args = [
          "render"
          "mattermost-env"
        ];
        after = [ "cityd-pki.service" ];
        part = "render";
        onSwitch = "restart";
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
        part = "db";
        onSwitch = "restart";
      }
      {
        # Declared by virtualisation.oci-containers; the module adds the ordering. Its input is the
        # env file, which render writes from the render part.
        name = containerUnit;
        description = null;
        args = null;
        after = [
          "cityd-render.service"
          "cityd-db.service"
        ];
        part = "render";
        onSwitch = "restart";
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
        part = "all";
        onSwitch = "restart";
      }
    ]
    ++ (if relay then [ relayUnit ] else [ ]);

  # `cityd relay serve`: the one long-running cityd unit, after wire (which creates the #alerts and
  # #builds webhooks it posts through). It runs as its own dynamic user with its own state directory
  # (the spool): the webhook secret and the two webhook URLs reach it as systemd credentials from
  # the vault, so it never reads the vault itself and nothing secret is in argv (`%d` is the
  # credentials directory).
  relayUnit = {
    name = "cityd-relay.service";
    description = "cityd: relay SonarQube quality gates to Mattermost (#alerts, #builds)";
    longRunning = true;
    stateDir = relayStateDir;
    args = [
      "relay"
      "serve"
      "--spool"
      "${relayStateDir}/spool"
      "--secret-file"
      "%d/sonarqube-webhook-secret"
      "--webhook-url-file"
      "alerts=%d/webhook-alerts"
      "--webhook-url-file"
      "builds=%d/webhook-builds"
    ];
    credentials = [
      "sonarqube-webhook-secret:${paths.secretsDir}/sonarqube-webhook-secret"
      "webhook-alerts:${paths.secretsDir}/webhook-alerts"
      "webhook-builds:${paths.secretsDir}/webhook-builds"
    ];
    after = [ "cityd-wire.service" ];
    part = "relay";
    onSwitch = "restart";
  };
  relayStateDir = "/var/lib/cityd-relay";

  # The sandbox every cityd unit runs in (`systemd-analyze security` targets: docs/nixos.md).
  # Per unit below: the address families, the capabilities and the writable paths it needs.
  unitHardening = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    NoNewPrivileges = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
    PrivateMounts = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged @resources"
    ];
    SystemCallErrorNumber = "EPERM";
    UMask = "0077";
  };

  # Upper bounds on `systemd-analyze security` exposure (0 = fully sandboxed, 10 = unprotected),
  # asserted per unit by scripts/nix-check.sh (systemd-analyze --offline on the unit files the
  # module renders) and by the VM test `hardening` (the running units). Measured with Debian's
  # systemd 252 offline: secrets, pki and render 0.9, db 1.6, wire 1.8, relay 1.3, lan-follow and
  # lan-watch 1.4; the bounds
  # leave 0.4-0.5 for other systemd versions, which weigh a few settings differently.
  exposureBounds = {
    "cityd-secrets.service" = 1.3;
    "cityd-pki.service" = 1.3;
    "cityd-render.service" = 1.3;
    "cityd-db.service" = 2.1;
    "cityd-wire.service" = 2.3;
    "cityd-relay.service" = 1.8;
    "cityd-lan-follow.service" = 1.9;
    "cityd-lan-watch.service" = 1.9;
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
      (unit.stateDir or stateDir)
    ]
    ++ unit.args;
}
