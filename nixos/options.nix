# Option declarations of `services.cityd`. The city description is one freeform JSON value,
# `settings` (RFC 42): whatever cityd's city accepts can be written there under the city's own
# field names, and becomes the city file as it is. Typed options exist only for what the module
# itself reads (ports for the firewall and the container, addresses for coturn and PostgreSQL,
# names for the database) and for what is not part of the city (enable flags, the package, the
# image archive, the firewall scope). Defaults come from src/default-city.toml through ./lib.nix,
# so the module and the binary start from the same city.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption types;
  cityLib = import ./lib.nix;
  d = cityLib.defaults;
  dc = d.settings;
  format = pkgs.formats.json { };

  # A typed field of the city, with the default city's value.
  field =
    type: default: description:
    mkOption { inherit type default description; };
  optionalField =
    type: description:
    mkOption {
      type = types.nullOr type;
      default = null;
      inherit description;
    };
  listener = types.strMatching ".*:[0-9]+";

  # The default city at every leaf as a default: setting one field of the team keeps the other,
  # and a list (channels, bots, webhooks) is replaced as a whole.
  deepDefault =
    v: if builtins.isAttrs v then builtins.mapAttrs (_: deepDefault) v else lib.mkDefault v;

  removed =
    path: instead:
    lib.mkRemovedOptionModule
      (
        [
          "services"
          "cityd"
        ]
        ++ path
      )
      "The city description moved to services.cityd.settings under the city's own field names (see docs/nixos.md, \"Settings\"): use ${instead}.";
in
{
  imports = [
    (removed [ "domain" ] "settings.domain")
    (removed [ "lan" "addresses" ] "settings.lan.addresses")
    (lib.mkRenamedOptionModule
      [ "services" "cityd" "lan" "interface" ]
      [ "services" "cityd" "firewallInterface" ]
    )
    (removed [ "mattermost" "image" ] "settings.mattermost.image")
    (removed [ "mattermost" "host" ] "settings.mattermost.host")
    (removed [ "mattermost" "port" ] "settings.mattermost.port")
    (removed [ "mattermost" "callsPort" ] "settings.mattermost.calls_port")
    (removed [ "mattermost" "metricsPort" ] "settings.mattermost.metrics (\"127.0.0.1:PORT\")")
    (removed [ "mattermost" "localSocketDir" ] "settings.mattermost.local_socket_dir")
    (removed [ "mattermost" "allowCorsFrom" ] "settings.mattermost.allow_cors_from")
    (removed [ "turn" ] "settings.turn (port, relay_min, relay_max, realm, credential_ttl_minutes)")
    (removed [ "team" ] "settings.team (name, display_name)")
    (removed [ "channels" ] "settings.channels (name, display_name, purpose)")
    (removed [ "bots" ] "settings.bots (name, display_name, description, channel)")
    (removed [ "webhooks" ] "settings.webhooks (channel, bot, display_name, description)")
    (removed [ "plugins" ] "settings.plugins.jenkins (source, sri, version, jenkins_url)")
    (removed [ "integrations" ] "settings.integrations")
    (removed [
      "database"
    ] "settings.database (name, port, host, tls) and services.cityd.postgresql.allowFrom")
    (removed [ "relay" "listen" ] "settings.relay.listen")
    (removed [ "relay" "metrics" ] "settings.relay.metrics")
    (removed [ "relay" "postPasses" ] "settings.relay.post_passes")
    (removed [ "relay" "dashboardUrl" ] "settings.relay.dashboard_url")
  ];

  options.services.cityd = {
    enable = mkEnableOption "the cityd ChatOps appliance (PostgreSQL 17, coturn, Mattermost with Calls, cityd's units)";

    # nixpkgs has no `cityd`: the flake's `nixosModules.default` sets this to its own build (or an
    # overlay adds `pkgs.cityd`).
    package = lib.mkPackageOption pkgs "cityd" {
      extraDescription = "The flake's `nixosModules.default` sets it to the flake's own build.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = d.openFirewall;
      description = "Open TCP for Mattermost, Calls and TURN, and UDP for Calls, TURN and the relay range (and the alert relay's port when it is enabled).";
    };

    firewallInterface = mkOption {
      type = types.nullOr types.str;
      default = d.firewallInterface;
      example = "eth0";
      description = "If set, `openFirewall` opens the city's ports on this interface only; otherwise on all.";
    };

    mattermost.imageFile = mkOption {
      type = types.nullOr types.package;
      default = null;
      description = ''
        Image archive loaded before start (e.g. `dockerTools.pullImage` with a pinned digest), so the
        host needs no registry. Its name and tag must equal `settings.mattermost.image`.
      '';
    };

    relay.enable = mkEnableOption ''
      the SonarQube -> Mattermost alert relay (`cityd-relay.service`, after `cityd wire`): failed
      quality gates to #alerts, passes to #builds with `settings.relay.post_passes`. Opens the
      `settings.relay.listen` port (TCP) with `openFirewall`
    '';

    postgresql = {
      allowFrom = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "10.88.0.0/16" ];
        description = "pg_hba address fields the Mattermost role may connect from; default the subnet of the container backend's default network (podman 10.88.0.0/16, Docker 172.17.0.0/16).";
      };
      major = mkOption {
        type = types.ints.between 17 99;
        default = d.postgresql.major;
        description = ''
          The PostgreSQL major version the appliance's data directory was created with, like
          `system.stateVersion`: the build refuses a `services.postgresql.package` of another major
          version, which would start an empty data directory beside the old one. Raise it only as
          the last step of the upgrade in docs/nixos.md ("Upgrading PostgreSQL").
        '';
      };
    };

    settings = mkOption {
      default = { };
      description = ''
        The city description (the JSON form of the city file `cityd` reads; see docs/city.md), under
        the city's own field names: `team`, `channels`, `bots`, `webhooks`, `plugins`,
        `integrations`, Mattermost settings and anything else cityd's city accepts pass through as
        given, and `cityd config check` checks the whole file while the system is built. The
        fields below are typed because the module reads them too.
      '';
      example = lib.literalExpression ''
        {
          lan.addresses = [ "192.168.1.20" ];
          channels = [ { name = "builds"; display_name = "Builds"; } ];
          integrations.jenkins.url = "https://jenkins.cicd.local:10400";
        }
      '';
      type = types.submodule {
        freeformType = format.type;
        options = {
          domain =
            field types.str dc.domain
              "DNS domain of the lab; Mattermost lives at `mattermost.<domain>` unless `mattermost.host` says otherwise.";
          lan.addresses = mkOption {
            type = types.listOf types.str;
            default = dc.lan.addresses;
            example = [ "192.168.1.20" ];
            description = ''
              This host's LAN IP addresses, literally. They go into the server certificate's SANs, the
              coturn `allowed-peer-ip` rules, the ICE candidates and the published Mattermost and
              Calls ports. Interface names and `auto` are not accepted here: the peer policy is fixed
              at build time.
            '';
          };
          mattermost = {
            image =
              field types.str dc.mattermost.image
                "Pinned Mattermost image with its registry, `registry/repository:tag` (never `latest`).";
            host = optionalField types.str "Mattermost's hostname; default `mattermost.<domain>`.";
            port =
              field types.port dc.mattermost.port
                "HTTPS port of Mattermost, published on each LAN address.";
            calls_port =
              field types.port dc.mattermost.calls_port
                "Calls RTC port (TCP and UDP), published on each LAN address. 8443 is refused: Artifactory holds it in the lab.";
            metrics =
              field listener dc.mattermost.metrics
                "Prometheus metrics listener, `127.0.0.1:PORT`: published on loopback only and never opened in the firewall.";
            local_socket_dir =
              field types.str dc.mattermost.local_socket_dir
                "Directory inside the container holding the local-mode socket (bind-mounted from the host).";
          };
          turn = {
            port = field types.port dc.turn.port "TURN listening port (UDP and TCP).";
            relay_min = field types.port dc.turn.relay_min "Lowest relay port.";
            relay_max = field types.port dc.turn.relay_max "Highest relay port.";
            realm = optionalField types.str "TURN realm; default the Mattermost hostname.";
          };
          database = {
            name =
              field types.str dc.database.name
                "Name of Mattermost's database and of the role that owns it.";
            user = field types.str dc.database.user "The role Mattermost connects as (owner of the database).";
            host = optionalField types.str "Address the container connects to; default the first IPv4 LAN address (named in the certificate).";
            port =
              field types.port dc.database.port
                "PostgreSQL's TCP port (also `services.postgresql.settings.port`).";
            tls =
              field types.bool dc.database.tls
                "Serve PostgreSQL over TLS with the city certificate; Mattermost verifies it (`verify-full`).";
          };
          relay = {
            listen =
              field listener dc.relay.listen
                "Address SonarQube posts its webhook to (`POST /sonarqube`), e.g. `192.168.1.20:9180`.";
            metrics =
              field listener dc.relay.metrics
                "The relay's Prometheus listener, loopback only and never opened in the firewall.";
          };
        };
      };
    };

    cityFile = mkOption {
      type = types.path;
      readOnly = true;
      description = "The generated city description (JSON in the store, no secret), checked by `cityd config check`; the units read it at `/etc/cityd/city.json`.";
    };

    unitOrder = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      description = "The units that bring the city up, in the order they run (for tests and `systemctl`).";
    };
  };

  config = lib.mkIf config.services.cityd.enable {
    services.cityd.settings = deepDefault dc;
  };
}
