# Evaluates the whole module with nixpkgs' `lib` but without nixpkgs: every NixOS option the module
# sets is declared here as a stub with the type the real option has (names from the nixos-26.05
# modules), so a misspelt option, a wrong type or a broken mkIf/mkMerge fails evaluation. Stubs
# can drift from NixOS; the VM tests on a Nix host are the real gate.
#
#   nix-instantiate --eval --strict --json nixos/tests/stub-eval.nix --arg lib 'import <nixpkgs.lib>/lib'
{ lib }:
let
  inherit (lib) mkOption types;
  anyAttrs = types.attrsOf types.anything;

  fakeDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    runCommand =
      name: env: script:
      fakeDrv name // { inherit env script; };
    postgresql_17 = fakeDrv "postgresql-17";
    cacert = fakeDrv "nss-cacert";
    coreutils = fakeDrv "coreutils";
    iproute2 = fakeDrv "iproute2";
    systemd = fakeDrv "systemd";
    writeShellScript = name: text: fakeDrv name // { inherit text; };
  };

  firewallRules = {
    allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };
    allowedUDPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };
    allowedTCPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
    };
    allowedUDPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
    };
  };

  unit = types.submodule {
    options = {
      description = mkOption {
        type = types.str;
        default = "";
      };
      wantedBy = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      after = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      requires = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      wants = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      serviceConfig = mkOption {
        type = anyAttrs;
        default = { };
      };
    };
  };

  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      systemd.services = mkOption {
        type = types.attrsOf unit;
        default = { };
      };
      systemd.timers = mkOption {
        type = anyAttrs;
        default = { };
      };
      systemd.tmpfiles.rules = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      networking.hosts = mkOption {
        type = types.attrsOf (types.listOf types.str);
        default = { };
      };
      networking.firewall = firewallRules // {
        interfaces = mkOption {
          type = types.attrsOf (types.submodule { options = firewallRules; });
          default = { };
        };
      };
      services.postgresql = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        package = mkOption { type = types.package; };
        enableTCPIP = mkOption {
          type = types.bool;
          default = false;
        };
        settings = mkOption {
          type = types.submodule {
            freeformType = types.attrsOf (
              types.oneOf [
                types.bool
                types.float
                types.int
                types.str
              ]
            );
            options.port = mkOption {
              type = types.port;
              default = 5432;
            };
          };
          default = { };
        };
        ensureDatabases = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        ensureUsers = mkOption {
          type = types.listOf (
            types.submodule {
              options = {
                name = mkOption { type = types.str; };
                ensureDBOwnership = mkOption {
                  type = types.bool;
                  default = false;
                };
              };
            }
          );
          default = [ ];
        };
        authentication = mkOption {
          type = types.lines;
          default = "";
        };
        identMap = mkOption {
          type = types.lines;
          default = "";
        };
      };
      services.coturn =
        let
          flag = mkOption {
            type = types.bool;
            default = false;
          };
          port =
            default:
            mkOption {
              type = types.port;
              inherit default;
            };
        in
        {
          enable = flag;
          listening-port = port 3478;
          min-port = port 49152;
          max-port = port 65535;
          realm = mkOption { type = types.str; };
          use-auth-secret = flag;
          no-cli = flag;
          no-tcp-relay = flag;
          static-auth-secret-file = mkOption {
            type = types.nullOr types.str;
            default = null;
          };
          extraConfig = mkOption {
            type = types.lines;
            default = "";
          };
        };
      virtualisation.oci-containers = {
        backend = mkOption {
          type = types.enum [
            "podman"
            "docker"
          ];
          default = "podman";
        };
        containers = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                image = mkOption { type = types.str; };
                imageFile = mkOption {
                  type = types.nullOr types.package;
                  default = null;
                };
                environmentFiles = mkOption {
                  type = types.listOf types.path;
                  default = [ ];
                };
                ports = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                };
                volumes = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                };
                extraOptions = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                };
              };
            }
          );
          default = { };
        };
      };
    };
  };

  evalWith =
    extra:
    lib.evalModules {
      specialArgs = { inherit pkgs; };
      modules = [
        stubs
        ../module.nix
        {
          services.cityd = {
            enable = true;
            package = fakeDrv "cityd";
            lan.addresses = [
              "192.168.1.20"
              "2001:db8::20"
            ];
          };
        }
        extra
      ];
    };
  eval = evalWith { };
  # Docker instead of podman, and the city's ports opened on one interface only.
  docker =
    (evalWith {
      virtualisation.oci-containers.backend = "docker";
      services.cityd.lan.interface = "enp3s0";
    }).config;
  # The alert relay enabled, passes posted too.
  relayOn =
    (evalWith {
      services.cityd.relay = {
        enable = true;
        postPasses = true;
      };
    }).config;
  c = eval.config;
  cityLib = import ../lib.nix;
  svc = c.systemd.services;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);

  checks = {
    "no module assertion fails" = failedAssertions == [ ];
    "PostgreSQL 17 with the tenant database owned by its role" =
      c.services.postgresql.package.name == "postgresql-17"
      && c.services.postgresql.ensureDatabases == [ "mattermost" ]
      && c.services.postgresql.ensureUsers == [
        {
          name = "mattermost";
          ensureDBOwnership = true;
        }
      ];
    "PostgreSQL serves TLS with the city certificate as credentials" =
      c.services.postgresql.settings.ssl
      && svc.postgresql.serviceConfig.LoadCredential == [
        "server.pem:/var/lib/cityd/pki/server.pem"
        "server.key:/var/lib/cityd/pki/server.key"
      ]
      && builtins.elem "cityd-pki.service" svc.postgresql.after;
    "the container role connects over TLS with scram" = lib.hasInfix "hostssl mattermost mattermost samenet scram-sha-256" c.services.postgresql.authentication;
    "cityd administers as the superuser over loopback TLS with a password, root mapped to postgres on the socket" =
      lib.hasInfix "hostssl postgres postgres 127.0.0.1/32 scram-sha-256" c.services.postgresql.authentication
      && lib.hasInfix "postgres root postgres" c.services.postgresql.identMap
      && lib.hasInfix "/bin/psql -X -q -h /run/postgresql -p 5432 -U postgres -d postgres" svc.cityd-db.preStart
      && lib.hasInfix "ALTER ROLE postgres PASSWORD :'admin_password';" svc.cityd-db.preStart
      && lib.hasInfix "`/nix/store/00000000000000000000000000000000-coreutils/bin/cat /var/lib/cityd/postgresql/admin-password`" svc.cityd-db.preStart
      && svc.cityd-pki.preStart == ""
      && svc.cityd-db.environment == { CITYD_LOG = "info"; };
    "coturn: realm, port, relay range, REST secret from the vault credential, no CLI" =
      c.services.coturn.enable
      && c.services.coturn.realm == "mattermost.cicd.local"
      && c.services.coturn.listening-port == 3478
      && c.services.coturn.min-port == 49152
      && c.services.coturn.max-port == 65535
      && c.services.coturn.use-auth-secret
      && c.services.coturn.no-cli
      && c.services.coturn.static-auth-secret-file == "/run/credentials/coturn.service/turn-static-auth-secret"
      && svc.coturn.serviceConfig.LoadCredential == [
        "turn-static-auth-secret:/var/lib/cityd/secrets/turn-static-auth-secret"
      ];
    "coturn denies the policy's ranges and allows the LAN addresses" =
      let
        lines = lib.splitString "\n" c.services.coturn.extraConfig;
      in
      builtins.elem "denied-peer-ip=10.0.0.0-10.255.255.255" lines
      && builtins.elem "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255" lines
      && builtins.elem "allowed-peer-ip=192.168.1.20" lines
      && builtins.elem "allowed-peer-ip=2001:db8::20" lines
      && builtins.length (builtins.filter (lib.hasPrefix "denied-peer-ip=") lines)
      == builtins.length cityLib.peerPolicy.denied;
    "firewall: TCP 8065 8444 3478, UDP 8444 3478 and the relay range, never 8067" =
      c.networking.firewall.allowedTCPPorts == [
        8065
        8444
        3478
      ]
      && c.networking.firewall.allowedUDPPorts == [
        8444
        3478
      ]
      && c.networking.firewall.allowedUDPPortRanges == [
        {
          from = 49152;
          to = 65535;
        }
      ]
      && c.networking.firewall.interfaces.podman0.allowedTCPPorts == [ 5432 ];
    "the container: pinned image, env file outside the store, ports as cityd up publishes them" =
      let
        mm = c.virtualisation.oci-containers.containers.mattermost;
      in
      mm.image == "mattermost/mattermost-enterprise-edition:11.8.5"
      && mm.environmentFiles == [ "/var/lib/cityd/render/mattermost.env" ]
      && builtins.elem "192.168.1.20:8065:8065/tcp" mm.ports
      && builtins.elem "127.0.0.1:8067:8067/tcp" mm.ports
      && builtins.elem "8444:8444/udp" mm.ports
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
      && svc.cityd-pki.after == [
        "cityd-secrets.service"
        "network-online.target"
      ]
      && builtins.elem "postgresql.target" svc.cityd-db.requires
      && svc.podman-mattermost.requires == [
        "cityd-render.service"
        "cityd-db.service"
      ]
      && svc.cityd-wire.requires == [ "podman-mattermost.service" ];
    "docker backend and a LAN interface: same chain, rules on that interface, PostgreSQL on docker0" =
      docker.services.cityd.unitOrder == [
        "cityd-secrets.service"
        "cityd-pki.service"
        "cityd-render.service"
        "cityd-db.service"
        "docker-mattermost.service"
        "cityd-wire.service"
      ]
      && docker.systemd.services.docker-mattermost.requires == [
        "cityd-render.service"
        "cityd-db.service"
      ]
      && docker.networking.firewall.allowedTCPPorts == [ ]
      && docker.networking.firewall.interfaces.enp3s0.allowedTCPPorts == [
        8065
        8444
        3478
      ]
      && docker.networking.firewall.interfaces.docker0.allowedTCPPorts == [ 5432 ];
    "each unit runs exactly the contract's command" =
      svc.cityd-secrets.serviceConfig.ExecStart
      == "/nix/store/00000000000000000000000000000000-cityd/bin/cityd --city /nix/store/00000000000000000000000000000000-cityd-city.json --state-dir /var/lib/cityd secrets ensure"
      && lib.hasSuffix "--state-dir /var/lib/cityd db ensure --admin-url postgres://postgres@127.0.0.1:5432/postgres --admin-password-file /var/lib/cityd/postgresql/admin-password" svc.cityd-db.serviceConfig.ExecStart
      && lib.hasSuffix "--state-dir /var/lib/cityd wire --timeout 5m" svc.cityd-wire.serviceConfig.ExecStart
      && svc.cityd-render.serviceConfig.StateDirectory == "cityd";
    "the city file is checked by cityd config check and holds no secret" =
      lib.hasInfix "cityd config check ./city.json" c.services.cityd.cityFile.script
      && builtins.fromJSON c.services.cityd.cityFile.env.city == cityLib.city c.services.cityd;
    "the relay is off by default: no unit, its port closed" =
      !(svc ? cityd-relay)
      && !(builtins.elem 9180 c.networking.firewall.allowedTCPPorts)
      && !(builtins.elem "cityd-relay.service" c.services.cityd.unitOrder);
    "the relay enabled: long-running after wire, hardened, its port open, its settings in the city" =
      let
        relay = relayOn.systemd.services.cityd-relay;
        city = builtins.fromJSON relayOn.services.cityd.cityFile.env.city;
      in
      relay.serviceConfig.Type == "simple"
      && relay.serviceConfig.Restart == "on-failure"
      && !(relay.serviceConfig ? RemainAfterExit)
      && relay.requires == [ ]
      && builtins.elem "cityd-wire.service" relay.wants
      && builtins.elem "cityd-wire.service" relay.after
      && relay.wantedBy == [ "multi-user.target" ]
      && lib.hasSuffix "--state-dir /var/lib/cityd relay serve --mattermost-socket /var/lib/cityd/mattermost/run/mattermost_local.socket" relay.serviceConfig.ExecStart
      && builtins.all (k: relay.serviceConfig.${k} == svc.cityd-wire.serviceConfig.${k}) [
        "StateDirectory"
        "StateDirectoryMode"
        "UMask"
        "PrivateTmp"
        "ProtectHome"
        "NoNewPrivileges"
      ]
      && lib.last relayOn.services.cityd.unitOrder == "cityd-relay.service"
      && relayOn.networking.firewall.allowedTCPPorts == [
        8065
        8444
        3478
        9180
      ]
      && city.relay == {
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
      && has "cityd --city /nix/store/" follow
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
      && builtins.head city.bots == {
        name = "jenkins-bot";
        display_name = "Jenkins";
        description = "Posts Jenkins build results";
        channel = "builds";
      };
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
