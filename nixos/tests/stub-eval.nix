# Evaluates the whole module with nixpkgs' `lib` but without nixpkgs: every NixOS option the module
# sets is declared in ./stubs.nix with the type the real option has (names from the nixos-26.05
# modules), so a misspelt option, a wrong type, a priority conflict or a broken mkIf/mkMerge fails
# evaluation; then each check below asserts what a defect would change. Run by
# scripts/nix-check.sh. Stubs can drift from NixOS; the VM tests on a Nix host are the real gate.
#
#   nix-instantiate --eval --strict --json nixos/tests/stub-eval.nix --arg lib 'import <nixpkgs.lib>/lib'
{ lib }:
let
  inherit (lib) types;
  fakeDrv =
    name: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    }
    // attrs;
  postgresql = major: fakeDrv "postgresql-${major}" { version = "${major}.6"; };
  pkgs = {
    runCommand =
      name: env: script:
      fakeDrv name { inherit env script; };
    postgresql_16 = postgresql "16";
    postgresql_17 = postgresql "17";
    postgresql_18 = postgresql "18";
    cacert = fakeDrv "nss-cacert" { };
    coreutils = fakeDrv "coreutils" { };
    iproute2 = fakeDrv "iproute2" { };
    systemd = fakeDrv "systemd" { };
    writeShellScript = name: text: fakeDrv name { inherit text; };
    # pkgs.formats.json's type, as nixpkgs declares it.
    formats.json =
      { }:
      {
        type =
          let
            valueType =
              types.nullOr (
                types.oneOf [
                  types.bool
                  types.int
                  types.float
                  types.str
                  types.path
                  (types.attrsOf valueType)
                  (types.listOf valueType)
                ]
              )
              // {
                description = "JSON value";
              };
          in
          valueType;
      };
  };
  cityd = fakeDrv "cityd" { };
  storeCity = "/nix/store/00000000000000000000000000000000-cityd-city.json";

  evalFull =
    {
      extra ? { },
      coturnGeneration ? "flat",
      withPkgsCityd ? false,
      setPackage ? true,
      example ? false,
    }:
    lib.evalModules {
      specialArgs.pkgs = pkgs // lib.optionalAttrs withPkgsCityd { inherit cityd; };
      modules = [
        (import ./stubs.nix { inherit lib coturnGeneration; })
        ../module.nix
        (lib.optionalAttrs setPackage { services.cityd.package = lib.mkDefault cityd; })
        (
          if example then
            ../example.nix
          else
            {
              services.cityd = {
                enable = true;
                settings.lan.addresses = [
                  "192.168.1.20"
                  "2001:db8::20"
                ];
                # 2001:db8::20 is a documentation address, on purpose.
                settings.lan.allow_test_ranges = true;
              };
            }
        )
        extra
      ];
    };
  evalWith = extra: (evalFull { inherit extra; }).config;
  # Evaluates `f config`, returning null when evaluation throws (a type error, a failed apply, a
  # priority conflict), so a check can require that a definition is refused.
  refused = attempt: !(builtins.tryEval (builtins.deepSeq attempt attempt)).success;
  failedAssertionsOf = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);

  c = evalWith { };
  cityLib = import ../lib.nix;
  svc = c.systemd.services;
  failedAssertions = failedAssertionsOf c;
  # Docker instead of podman, and the city's ports opened on one interface only.
  docker = evalWith {
    virtualisation.oci-containers.backend = "docker";
    services.cityd.firewallInterface = "enp3s0";
  };
  # The alert relay enabled, passes posted too.
  relayOn = evalWith {
    services.cityd.relay.enable = true;
    services.cityd.settings.relay.post_passes = true;
  };
  # The switch of the VM test `switch`: a channel added, a Mattermost setting changed.
  channelAdded = evalWith {
    services.cityd.settings.channels = cityLib.defaults.settings.channels ++ [
      {
        name = "releases";
        display_name = "Releases";
      }
    ];
  };
  corsChanged = evalWith {
    services.cityd.settings.mattermost.allow_cors_from = [ "https://ops.cicd.local" ];
  };
  cityUnitNames = [
    "cityd-secrets"
    "cityd-pki"
    "cityd-render"
    "cityd-db"
    "cityd-wire"
  ];
  allCityUnits = relayOn.systemd.services;
  everyCityUnit = cityUnitNames ++ [ "cityd-relay" ];
  # What the unit file of a unit would hold, for the parts a switch compares.
  unitFile =
    u:
    builtins.removeAttrs u [ "reloadTriggers" ]
    // {
      serviceConfig = builtins.removeAttrs u.serviceConfig [ ];
    };
  moved =
    before: after: name:
    builtins.toJSON (unitFile before.systemd.services.${name})
    != builtins.toJSON (unitFile after.systemd.services.${name});
  reloaded =
    before: after: name:
    before.systemd.services.${name}.reloadTriggers != after.systemd.services.${name}.reloadTriggers;
  execLines =
    config:
    lib.concatMap (
      u:
      lib.filter builtins.isString [
        (u.serviceConfig.ExecStart or null)
        (u.serviceConfig.ExecReload or null)
      ]
    ) (builtins.attrValues config.systemd.services);
  hbaLines =
    config: lib.filter (l: l != "") (lib.splitString "\n" config.services.postgresql.authentication);
  hardening = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    NoNewPrivileges = true;
    RestrictNamespaces = true;
    RestrictSUIDSGID = true;
    SystemCallArchitectures = "native";
  };
  settingsCoturn = evalFull { coturnGeneration = "settings"; };
  example = (evalFull { example = true; }).config;

  checks = {
    "no module assertion fails" = failedAssertions == [ ] && c.warnings == [ ];
    "PostgreSQL 17 by default (mkDefault) with the tenant database owned by its role" =
      c.services.postgresql.package.name == "postgresql-17"
      && c.services.postgresql.ensureDatabases == [ "mattermost" ]
      &&
        c.services.postgresql.ensureUsers == [
          {
            name = "mattermost";
            ensureDBOwnership = true;
          }
        ]
      && builtins.any (lib.hasInfix "ensureDBOwnership") (
        failedAssertionsOf (evalWith {
          services.cityd.settings.database.user = "mm";
        })
      );
    "a host's own PostgreSQL package wins over the module's default, and a major change is refused until the upgrade" =
      let
        pg18 = evalWith { services.postgresql.package = pkgs.postgresql_18; };
        upgraded = evalWith {
          services.postgresql.package = pkgs.postgresql_18;
          services.cityd.postgresql.major = 18;
        };
        pg16 = evalWith { services.postgresql.package = pkgs.postgresql_16; };
      in
      pg18.services.postgresql.package.name == "postgresql-18"
      && builtins.any (lib.hasInfix "Upgrading PostgreSQL") (failedAssertionsOf pg18)
      && failedAssertionsOf upgraded == [ ]
      && builtins.any (lib.hasInfix "needs PostgreSQL 17 or later") (failedAssertionsOf pg16)
      && refused (evalWith { services.cityd.postgresql.major = 16; }).services.cityd.postgresql.major;
    "PostgreSQL listens on loopback and the container's address only, unless the host opened it" =
      !c.services.postgresql.enableTCPIP
      && c.services.postgresql.settings.listen_addresses == "localhost,192.168.1.20"
      &&
        (evalWith { services.postgresql.enableTCPIP = true; }).services.postgresql.settings.listen_addresses
        == "*";
    "pg_hba: cityd over loopback, the tenant from the container subnet only" =
      hbaLines c == [
        "hostssl postgres postgres 127.0.0.1/32 scram-sha-256"
        "hostssl mattermost mattermost 10.88.0.0/16 scram-sha-256"
      ]
      &&
        hbaLines docker == [
          "hostssl postgres postgres 127.0.0.1/32 scram-sha-256"
          "hostssl mattermost mattermost 172.17.0.0/16 scram-sha-256"
        ]
      && !(lib.hasInfix "samenet" c.services.postgresql.authentication)
      && !(lib.hasInfix "0.0.0.0" c.services.postgresql.authentication);
    "PostgreSQL serves TLS with the city certificate as credentials" =
      c.services.postgresql.settings.ssl
      &&
        svc.postgresql.serviceConfig.LoadCredential == [
          "server.pem:/var/lib/cityd/pki/server.pem"
          "server.key:/var/lib/cityd/pki/server.key"
        ];
    "cityd administers as the superuser over loopback TLS with a password, root mapped to postgres on the socket" =
      lib.hasInfix "postgres root postgres" c.services.postgresql.identMap
      && lib.hasInfix "/bin/psql -X -q -h /run/postgresql -p 5432 -U postgres -d postgres" svc.cityd-db.preStart
      && lib.hasInfix "ALTER ROLE postgres PASSWORD :'admin_password';" svc.cityd-db.preStart
      && lib.hasInfix "`/nix/store/00000000000000000000000000000000-coreutils/bin/cat /var/lib/cityd/postgresql/admin-password`" svc.cityd-db.preStart
      && svc.cityd-pki.preStart == ""
      && svc.cityd-db.environment == { CITYD_LOG = "info"; };
    "unit graph: PostgreSQL and coturn only order after cityd's units, they never require one" =
      let
        onCityd = l: builtins.filter (lib.hasPrefix "cityd-") l;
        dependsOnly = u: onCityd (u.requires ++ u.bindsTo ++ u.requisite ++ u.partOf) == [ ];
      in
      dependsOnly svc.postgresql
      && dependsOnly svc.coturn
      &&
        lib.sort lib.lessThan svc.postgresql.wants == [
          "cityd-pki.service"
          "network-online.target"
        ]
      && builtins.elem "network-online.target" svc.postgresql.after
      && builtins.elem "cityd-pki.service" svc.postgresql.after
      && svc.coturn.wants == [ "cityd-secrets.service" ]
      && builtins.elem "cityd-secrets.service" svc.coturn.after;
    "no command line names the city's store path; the units read /etc/cityd/city.json" =
      builtins.all (l: !(lib.hasInfix "cityd-city.json" l) && !(lib.hasInfix storeCity l)) (
        execLines relayOn
      )
      && builtins.all (
        n: lib.hasInfix "--city /etc/cityd/city.json " allCityUnits.${n}.serviceConfig.ExecStart
      ) everyCityUnit
      && c.environment.etc."cityd/city.json".source == c.services.cityd.cityFile;
    "secrets and pki are never restarted by a switch: a changed city reloads them (the same idempotent command)" =
      builtins.all
        (
          n:
          !svc.${n}.restartIfChanged
          && svc.${n}.restartTriggers == [ ]
          && svc.${n}.reloadTriggers != [ ]
          && svc.${n}.serviceConfig.ExecReload == svc.${n}.serviceConfig.ExecStart
        )
        [
          "cityd-secrets"
          "cityd-pki"
        ];
    "the other units restart when their inputs change" =
      builtins.all (n: allCityUnits.${n}.restartIfChanged && allCityUnits.${n}.restartTriggers != [ ])
        [
          "cityd-render"
          "cityd-db"
          "cityd-wire"
          "cityd-relay"
          "podman-mattermost"
        ];
    "switch, a channel added: wire re-runs, secrets reload; render, db, the container, PostgreSQL and coturn stay" =
      moved c channelAdded "cityd-wire"
      && reloaded c channelAdded "cityd-secrets"
      && !(moved c channelAdded "cityd-secrets")
      && !(moved c channelAdded "cityd-pki")
      && builtins.all (n: !(moved c channelAdded n)) [
        "cityd-render"
        "cityd-db"
        "podman-mattermost"
        "postgresql"
        "coturn"
      ]
      && c.services.postgresql.settings == channelAdded.services.postgresql.settings
      && c.services.coturn == channelAdded.services.coturn;
    "switch, a Mattermost setting changed: render and the container restart; db, PostgreSQL and coturn stay" =
      builtins.all (n: moved c corsChanged n) [
        "cityd-render"
        "podman-mattermost"
        "cityd-wire"
      ]
      && builtins.all (n: !(moved c corsChanged n)) [
        "cityd-db"
        "cityd-secrets"
        "cityd-pki"
        "postgresql"
        "coturn"
      ];
    "every cityd unit is hardened: strict read-only system, no devices, kernel protections, a syscall filter" =
      builtins.all (
        n:
        let
          sc = allCityUnits.${n}.serviceConfig;
        in
        builtins.all (k: sc.${k} or null == hardening.${k}) (builtins.attrNames hardening)
        && builtins.head sc.SystemCallFilter == "@system-service"
        && sc ? RestrictAddressFamilies
        && sc ? CapabilityBoundingSet
        && (sc ? ReadWritePaths || sc.DynamicUser or false)
      ) everyCityUnit;
    "capabilities and address families are the minimum each unit needs" =
      builtins.all (n: allCityUnits.${n}.serviceConfig.CapabilityBoundingSet == [ "" ]) [
        "cityd-secrets"
        "cityd-pki"
        "cityd-render"
        "cityd-db"
        "cityd-relay"
      ]
      && svc.cityd-wire.serviceConfig.CapabilityBoundingSet == [ "CAP_DAC_OVERRIDE" ]
      &&
        builtins.all
          (
            n:
            svc.${n}.serviceConfig.RestrictAddressFamilies == [
              "AF_UNIX"
              "AF_NETLINK"
            ]
            && svc.${n}.serviceConfig.PrivateNetwork
          )
          [
            "cityd-secrets"
            "cityd-pki"
            "cityd-render"
          ]
      && builtins.all (n: svc.${n}.serviceConfig.ReadWritePaths == [ "/var/lib/cityd" ]) cityUnitNames;
    "coturn (flat options): realm, port, relay range, REST secret from the vault credential, no CLI" =
      c.services.coturn.enable
      && c.services.coturn.realm == "mattermost.cicd.local"
      && c.services.coturn.listening-port == 3478
      && c.services.coturn.min-port == 49152
      && c.services.coturn.max-port == 65535
      && c.services.coturn.use-auth-secret
      && c.services.coturn.no-cli
      &&
        c.services.coturn.static-auth-secret-file
        == "/run/credentials/coturn.service/turn-static-auth-secret"
      &&
        svc.coturn.serviceConfig.LoadCredential == [
          "turn-static-auth-secret:/var/lib/cityd/secrets/turn-static-auth-secret"
        ];
    "coturn (settings interface): the same values through settings, and no rename warning" =
      let
        sc = settingsCoturn.config;
      in
      sc.warnings == [ ]
      && failedAssertionsOf sc == [ ]
      && sc.services.coturn.settings == (cityLib.coturn sc.services.cityd).options
      && sc.services.coturn.settings.realm == "mattermost.cicd.local"
      &&
        sc.services.coturn.staticAuthSecretFile == "/run/credentials/coturn.service/turn-static-auth-secret"
      && sc.services.coturn.extraConfig == c.services.coturn.extraConfig;
    "coturn denies the policy's ranges and allows the LAN addresses" =
      let
        lines = lib.splitString "\n" c.services.coturn.extraConfig;
      in
      builtins.elem "denied-peer-ip=10.0.0.0-10.255.255.255" lines
      && builtins.elem "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255" lines
      && builtins.elem "allowed-peer-ip=192.168.1.20" lines
      && builtins.elem "allowed-peer-ip=2001:db8::20" lines
      &&
        builtins.length (builtins.filter (lib.hasPrefix "denied-peer-ip=") lines)
        == builtins.length cityLib.peerPolicy.denied;
    "firewall: TCP 8065 8444 3478, UDP 8444 3478 and the relay range, never 8067; nothing with openFirewall off" =
      c.networking.firewall.allowedTCPPorts == [
        8065
        8444
        3478
      ]
      &&
        c.networking.firewall.allowedUDPPorts == [
          8444
          3478
        ]
      &&
        c.networking.firewall.allowedUDPPortRanges == [
          {
            from = 49152;
            to = 65535;
          }
        ]
      && c.networking.firewall.interfaces.podman0.allowedTCPPorts == [ 5432 ]
      && (
        let
          closed = evalWith { services.cityd.openFirewall = false; };
        in
        closed.networking.firewall.allowedTCPPorts == [ ]
        && closed.networking.firewall.allowedUDPPorts == [ ]
        && closed.networking.firewall.allowedUDPPortRanges == [ ]
      );
    "published ports: Mattermost and Calls on each LAN address, metrics on loopback, nothing on every address" =
      let
        mm = c.virtualisation.oci-containers.containers.mattermost;
      in
      mm.ports == [
        "192.168.1.20:8065:8065/tcp"
        "[2001:db8::20]:8065:8065/tcp"
        "192.168.1.20:8444:8444/tcp"
        "[2001:db8::20]:8444:8444/tcp"
        "192.168.1.20:8444:8444/udp"
        "[2001:db8::20]:8444:8444/udp"
        "127.0.0.1:8067:8067/tcp"
      ];
    "the image is fully qualified, and an unqualified one is refused" =
      c.virtualisation.oci-containers.containers.mattermost.image
      == "docker.io/mattermost/mattermost-enterprise-edition:11.8.5"
      && builtins.any (lib.hasInfix "names no registry") (
        failedAssertionsOf (evalWith {
          services.cityd.settings.mattermost.image = "mattermost/mattermost-enterprise-edition:11.8.5";
        })
      )
      &&
        failedAssertionsOf (evalWith {
          services.cityd.settings.mattermost.image = "localhost/cityd-mattermost-double:vm";
        }) == [ ];
    "the container: env file outside the store, volumes, certificates copied for its UID" =
      let
        mm = c.virtualisation.oci-containers.containers.mattermost;
      in
      mm.environmentFiles == [ "/var/lib/cityd/render/mattermost.env" ]
      && builtins.elem "/var/lib/cityd/mattermost/run:/mattermost/run:rw" mm.volumes
      && lib.hasInfix "install -m 0400 -o 2000 -g 2000 /var/lib/cityd/pki/server.pem /var/lib/cityd/pki/server.key /var/lib/cityd/pki/ca.pem /var/lib/cityd/mattermost/certs/" svc.podman-mattermost.preStart
      && builtins.elem "d /var/lib/cityd/mattermost/config 0750 2000 2000 -" c.systemd.tmpfiles.rules;
    "units run secrets -> pki -> render -> db -> container -> wire" =
      c.services.cityd.unitOrder == [
        "cityd-secrets.service"
        "cityd-pki.service"
        "cityd-render.service"
        "cityd-db.service"
        "podman-mattermost.service"
        "cityd-wire.service"
      ]
      &&
        svc.cityd-pki.after == [
          "cityd-secrets.service"
          "network-online.target"
        ]
      && builtins.elem "postgresql.target" svc.cityd-db.requires
      &&
        svc.podman-mattermost.requires == [
          "cityd-render.service"
          "cityd-db.service"
        ]
      && svc.cityd-wire.requires == [ "podman-mattermost.service" ];
    "docker backend and a firewall interface: same chain, rules on that interface, PostgreSQL on docker0" =
      docker.services.cityd.unitOrder == [
        "cityd-secrets.service"
        "cityd-pki.service"
        "cityd-render.service"
        "cityd-db.service"
        "docker-mattermost.service"
        "cityd-wire.service"
      ]
      &&
        docker.systemd.services.docker-mattermost.requires == [
          "cityd-render.service"
          "cityd-db.service"
        ]
      && docker.networking.firewall.allowedTCPPorts == [ ]
      &&
        docker.networking.firewall.interfaces.enp3s0.allowedTCPPorts == [
          8065
          8444
          3478
        ]
      && docker.networking.firewall.interfaces.docker0.allowedTCPPorts == [ 5432 ];
    "each unit runs exactly the contract's command" =
      svc.cityd-secrets.serviceConfig.ExecStart
      == "/nix/store/00000000000000000000000000000000-cityd/bin/cityd --city /etc/cityd/city.json --state-dir /var/lib/cityd secrets ensure"
      && lib.hasSuffix "--state-dir /var/lib/cityd db ensure --admin-url postgres://postgres@127.0.0.1:5432/postgres --admin-password-file /var/lib/cityd/postgresql/admin-password" svc.cityd-db.serviceConfig.ExecStart
      && lib.hasSuffix "--state-dir /var/lib/cityd wire --timeout 5m" svc.cityd-wire.serviceConfig.ExecStart
      && svc.cityd-render.serviceConfig.StateDirectory == "cityd";
    "the city file is checked by cityd config check and holds no secret" =
      lib.hasInfix "cityd config check ./city.json" c.services.cityd.cityFile.script
      && builtins.fromJSON c.services.cityd.cityFile.env.city == cityLib.city c.services.cityd;
    "settings are the city (RFC 42): free-form tables pass through, one field keeps the others' defaults" =
      let
        s = evalWith {
          services.cityd.settings = {
            team.name = "ops";
            integrations.sonarqube.url = "http://sonar.cicd.local:9000";
            mattermost.allow_cors_from = [ "https://ops.cicd.local" ];
          };
        };
        city = builtins.fromJSON s.services.cityd.cityFile.env.city;
      in
      city.team == {
        name = "ops";
        display_name = "Engineering";
      }
      && city.integrations.sonarqube.url == "http://sonar.cicd.local:9000"
      && city.mattermost.allow_cors_from == [ "https://ops.cicd.local" ]
      &&
        city.database == {
          host = "192.168.1.20";
          port = 5432;
          name = "mattermost";
          user = "mattermost";
          managed = false;
          tls = true;
        }
      &&
        refused
          (evalWith { services.cityd.settings.turn.port = 70000; }).services.cityd.settings.turn.port
      &&
        refused
          (evalWith { services.cityd.settings.mattermost.calls_port = "8444"; })
          .services.cityd.settings.mattermost.calls_port;
    "the old typed options are refused with the way to settings" =
      builtins.any (lib.hasInfix "settings.channels") (
        failedAssertionsOf (evalWith {
          services.cityd.channels = [ ];
        })
      )
      && (evalWith { services.cityd.lan.interface = "eth0"; }).services.cityd.firewallInterface == "eth0";
    "the package is a package option: pkgs.cityd when nixpkgs has one, else it must be set" =
      (evalFull {
        withPkgsCityd = true;
        setPackage = false;
      }).config.services.cityd.package == cityd
      &&
        refused
          (evalFull {
            setPackage = false;
          }).config.services.cityd.package;
    "the relay is off by default: no unit, its port closed" =
      !(svc ? cityd-relay)
      && !(builtins.elem 9180 c.networking.firewall.allowedTCPPorts)
      && !(builtins.elem "cityd-relay.service" c.services.cityd.unitOrder);
    "the relay enabled: its own dynamic user and state, the vault's files as credentials, 65536 descriptors, its port open" =
      let
        relay = relayOn.systemd.services.cityd-relay;
        sc = relay.serviceConfig;
        city = builtins.fromJSON relayOn.services.cityd.cityFile.env.city;
      in
      sc.Type == "simple"
      && sc.Restart == "on-failure"
      && sc.DynamicUser or false
      && sc.StateDirectory == "cityd-relay"
      && sc.LimitNOFILE or null == 65536
      && !(sc ? ReadWritePaths)
      &&
        sc.LoadCredential == [
          "sonarqube-webhook-secret:/var/lib/cityd/secrets/sonarqube-webhook-secret"
          "webhook-alerts:/var/lib/cityd/secrets/webhook-alerts"
          "webhook-builds:/var/lib/cityd/secrets/webhook-builds"
        ]
      && !(sc ? RemainAfterExit)
      && relay.requires == [ ]
      && builtins.elem "cityd-wire.service" relay.wants
      && builtins.elem "cityd-wire.service" relay.after
      && relay.wantedBy == [ "multi-user.target" ]
      && lib.hasSuffix "--state-dir /var/lib/cityd-relay relay serve --spool /var/lib/cityd-relay/spool --secret-file %d/sonarqube-webhook-secret --webhook-url-file 'alerts=%d/webhook-alerts' --webhook-url-file 'builds=%d/webhook-builds'" sc.ExecStart
      && lib.last relayOn.services.cityd.unitOrder == "cityd-relay.service"
      &&
        relayOn.networking.firewall.allowedTCPPorts == [
          8065
          8444
          3478
          9180
        ]
      &&
        city.relay == {
          listen = "0.0.0.0:9180";
          metrics = "127.0.0.1:9181";
          post_passes = true;
        };
    "the leaf follows the LAN: daily and on address changes, pki ensure, a restart only on change" =
      let
        follow = svc.cityd-lan-follow.serviceConfig.ExecStart.text;
        watch = svc.cityd-lan-watch.serviceConfig.ExecStart.text;
        has = lib.hasInfix;
      in
      svc.cityd-lan-follow.serviceConfig.Type == "oneshot"
      && has "cityd --city /etc/cityd/city.json" follow
      && has "--state-dir /var/lib/cityd pki ensure" follow
      && has "systemctl try-restart podman-mattermost.service" follow
      && has "sha256sum /var/lib/cityd/pki/server.pem" follow
      && c.systemd.timers.cityd-lan-follow.timerConfig.OnCalendar == "daily"
      && c.systemd.timers.cityd-lan-follow.wantedBy == [ "timers.target" ]
      && has "ip -o monitor address" watch
      && has "systemctl start --no-block cityd-lan-follow.service" watch
      && svc.cityd-lan-watch.wantedBy == [ "multi-user.target" ];
    "the city file carries the default city's bots and webhooks" =
      let
        city = builtins.fromJSON c.services.cityd.cityFile.env.city;
      in
      map (w: w.channel) city.webhooks == [
        "builds"
        "alerts"
        "code-reviews"
      ]
      &&
        builtins.head city.bots == {
          name = "jenkins-bot";
          display_name = "Jenkins";
          description = "Posts Jenkins build results";
          channel = "builds";
        };
    "the example configuration (nixosConfigurations.example) evaluates with no failed assertion" =
      failedAssertionsOf example == [ ]
      && example.warnings == [ ]
      && example.services.cityd.enable
      && example.systemd.services ? cityd-wire
      && example.fileSystems ? "/";
  };
  failed = builtins.attrNames (lib.filterAttrs (_: ok: !ok) checks);
in
if failedAssertions != [ ] then
  throw "module assertions failed:\n${builtins.concatStringsSep "\n" failedAssertions}"
else if failed != [ ] then
  throw "stub evaluation checks failed:\n  ${builtins.concatStringsSep "\n  " failed}"
else
  {
    passed = builtins.attrNames checks;
  }
