# Option declarations of `services.cityd`: the city description as NixOS options. Defaults come from
# src/default-city.toml through ./lib.nix, so the module and the binary start from the same city.
{ lib, ... }:
let
  inherit (lib) mkOption mkEnableOption types;
  cityLib = import ./lib.nix;
  d = cityLib.defaults;

  # A list entry (a city table) of these fields; a required string field, and one that may be
  # left out.
  entry = options: types.submodule { inherit options; };
  text = description: mkOption { type = types.str; inherit description; };
  optionalText =
    default: description:
    mkOption {
      type = if default == null then types.nullOr types.str else types.str;
      inherit default description;
    };

  # A field of the city's [relay] table, with the relay's default.
  relaySetting =
    name: type: description:
    mkOption {
      inherit type description;
      default = d.relay.${name};
    };

  # A [[channels]] table of the city.
  channel = entry {
    name = text "Channel name (URL slug): a-z, 0-9, '-' and '_'.";
    displayName = text "Channel display name, 1-64 characters.";
    purpose = optionalText "" "Channel purpose, at most 250 characters.";
  };

  # A [[bots]] table: a user converted to a bot, with its token in the vault.
  bot = entry {
    name = text "Bot username, e.g. `jenkins-bot` (not `gitlab`: the GitLab plugin creates that bot itself).";
    displayName = text "Bot display name.";
    description = optionalText "" "Bot description.";
    channel = optionalText null "The channel the bot posts into (it is made a member).";
  };

  # A [[webhooks]] table: identified on the server by channel, bot and display name.
  webhook = entry {
    channel = text "Channel the incoming webhook is locked to.";
    bot = text "Bot (from `bots`) that owns the webhook and posts through it.";
    displayName = text "Webhook display name (with channel and bot, what identifies it on the server).";
    description = optionalText "" "Webhook description.";
  };

  # [plugins.jenkins]: a bundle cityd verifies before it uploads it.
  pluginBundle = entry {
    source = text "Path or pinned URL of the plugin bundle (.tar.gz).";
    sri = text "SRI hash of the bundle, `sha256-<base64>`; cityd refuses a bundle that does not match.";
    version = text "The bundle's plugin version, e.g. `1.1.0`; `cityd wire` compares it with the installed plugin to decide whether to upload.";
    jenkinsUrl = text "The Jenkins URL the plugin is configured with, e.g. `https://jenkins.cicd.local:8080` (it refuses to start without one).";
  };
in
{
  options.services.cityd = {
    enable = mkEnableOption "the cityd ChatOps appliance (PostgreSQL 17, coturn, Mattermost with Calls, cityd's units)";

    package = mkOption {
      type = types.package;
      description = "The cityd package. The flake's `nixosModules.default` sets it to its own build.";
    };

    domain = mkOption {
      type = types.str;
      default = d.domain;
      description = "DNS domain of the lab; Mattermost lives at `mattermost.<domain>` unless `mattermost.host` says otherwise.";
    };

    lan = {
      addresses = mkOption {
        type = types.listOf types.str;
        default = d.lan.addresses;
        example = [ "192.168.1.20" ];
        description = ''
          This host's LAN IP addresses, literally. They go into the server certificate's SANs, the
          coturn `allowed-peer-ip` rules, the ICE candidates and the published Mattermost port.
          Interface names and `auto` are not accepted here: the peer policy is fixed at build time.
        '';
      };
      allowTestRanges = mkOption {
        type = types.bool;
        default = d.lan.allowTestRanges;
        description = ''
          Accept documentation and benchmarking addresses (192.0.2.0/24, 198.51.100.0/24,
          203.0.113.0/24, 198.18.0.0/15, 2001:db8::/32) in `lan.addresses`; only labs and tests use
          them. Loopback, link-local, metadata, broadcast, unspecified and multicast addresses are
          refused either way: each LAN address becomes a coturn `allowed-peer-ip`, which overrides
          the deny-list.
        '';
      };
      interface = mkOption {
        type = types.nullOr types.str;
        default = d.lan.interface;
        example = "eth0";
        description = "If set, the firewall opens the city's ports on this interface only; otherwise on all.";
      };
    };

    openFirewall = mkOption {
      type = types.bool;
      default = d.openFirewall;
      description = "Open TCP 8065, the Calls port and 3478, and UDP for the Calls port, 3478 and the relay range.";
    };

    mattermost = {
      image = mkOption {
        type = types.str;
        default = d.mattermost.image;
        description = "Pinned Mattermost image `repository:tag` (never `latest` or `release-X`).";
      };
      imageFile = mkOption {
        type = types.nullOr types.package;
        default = null;
        description = ''
          Image archive loaded before start (e.g. `dockerTools.pullImage` with a pinned digest), so the
          host needs no registry. Its name and tag must equal `image`.
        '';
      };
      host = mkOption {
        type = types.nullOr types.str;
        default = d.mattermost.host;
        description = "Mattermost's hostname; default `mattermost.<domain>`.";
      };
      port = mkOption {
        type = types.port;
        default = d.mattermost.port;
        description = "HTTPS port of Mattermost, published on each LAN address.";
      };
      callsPort = mkOption {
        type = types.port;
        default = d.mattermost.callsPort;
        description = "Calls RTC port (TCP and UDP). 8443 is refused: Artifactory holds it in the lab.";
      };
      metricsPort = mkOption {
        type = types.port;
        default = d.mattermost.metricsPort;
        description = "Prometheus metrics port, published on 127.0.0.1 only and never opened in the firewall.";
      };
      localSocketDir = mkOption {
        type = types.str;
        default = d.mattermost.localSocketDir;
        description = "Directory inside the container holding the local-mode socket (bind-mounted from the host).";
      };
      allowCorsFrom = mkOption {
        type = types.listOf types.str;
        default = d.mattermost.allowCorsFrom;
        description = "Extra CORS origins on top of the city's own; `[ \"*\" ]` only if you mean it.";
      };
    };

    turn = {
      port = mkOption {
        type = types.port;
        default = d.turn.port;
        description = "TURN listening port (UDP and TCP).";
      };
      relayMin = mkOption {
        type = types.port;
        default = d.turn.relayMin;
        description = "Lowest relay port.";
      };
      relayMax = mkOption {
        type = types.port;
        default = d.turn.relayMax;
        description = "Highest relay port.";
      };
      realm = mkOption {
        type = types.nullOr types.str;
        default = d.turn.realm;
        description = "TURN realm; default the Mattermost hostname.";
      };
      credentialTtlMinutes = mkOption {
        type = types.ints.positive;
        default = d.turn.credentialTtlMinutes;
        description = "Lifetime of the TURN credentials Calls mints, in minutes (below one week).";
      };
    };

    team = {
      name = mkOption {
        type = types.str;
        default = d.team.name;
        description = "Team name (URL slug).";
      };
      displayName = mkOption {
        type = types.str;
        default = d.team.displayName;
        description = "Team display name.";
      };
    };

    channels = mkOption {
      type = types.listOf channel;
      default = d.channels;
      description = "The team's channels; `cityd wire` creates them and their incoming webhooks.";
    };

    bots = mkOption {
      type = types.listOf bot;
      default = d.bots;
      description = "Bot accounts `cityd wire` creates (users converted to bots, tokens in the vault).";
    };

    webhooks = mkOption {
      type = types.listOf webhook;
      default = d.webhooks;
      description = ''
        Incoming webhooks `cityd wire` creates, owned by a bot and locked to a channel; their URLs
        go to the vault as `webhook-<channel>`. `cityd verify webhook` checks each one.
      '';
    };

    plugins.jenkins = mkOption {
      type = types.nullOr pluginBundle;
      default = d.plugins.jenkins;
      description = "The Jenkins plugin bundle (amd64 only), verified against its SRI hash before upload.";
    };

    integrations = mkOption {
      type = types.attrsOf types.anything;
      default = d.integrations;
      description = ''
        The city's `integrations` table (Jenkins, GitLab, SonarQube), passed through as JSON. It is
        checked by `cityd config check` at build time; put URLs here, never tokens.
      '';
    };

    database = {
      name = mkOption {
        type = types.str;
        default = d.database.name;
        description = "Name of Mattermost's database and of the role that owns it.";
      };
      host = mkOption {
        type = types.nullOr types.str;
        default = d.database.host;
        description = "Address the container connects to; default the first IPv4 LAN address (named in the certificate).";
      };
      port = mkOption {
        type = types.port;
        default = d.database.port;
        description = "PostgreSQL's TCP port (also `services.postgresql.settings.port`).";
      };
      tls = mkOption {
        type = types.bool;
        default = d.database.tls;
        description = "Serve PostgreSQL over TLS with the city certificate; Mattermost verifies it (`verify-full`).";
      };
      allowFrom = mkOption {
        type = types.listOf types.str;
        default = d.database.allowFrom;
        description = "pg_hba address fields the Mattermost role may connect from (`samenet` covers the container bridge).";
      };
    };

    relay = {
      enable = mkEnableOption ''
        the SonarQube -> Mattermost alert relay (`cityd-relay.service`, after `cityd wire`): failed
        quality gates to #alerts, passes to #builds with `postPasses`. Opens the `listen` port (TCP)
      '';
      listen = relaySetting "listen" types.str "Address SonarQube posts its webhook to (`POST /sonarqube`), e.g. `192.168.1.20:9180`; `relay.listen`.";
      metrics = relaySetting "metrics" types.str "Prometheus listener (`/metrics`), loopback only and never opened in the firewall; `relay.metrics`.";
      postPasses = relaySetting "postPasses" types.bool "Also post passed quality gates to #builds; `relay.post_passes`.";
      dashboardUrl = relaySetting "dashboardUrl" (types.nullOr types.str) "Public SonarQube root for message links, e.g. `https://sonarqube.cicd.local`; default the links in the payload. `relay.dashboard_url`.";
    };

    cityFile = mkOption {
      type = types.path;
      readOnly = true;
      description = "The generated city description (JSON in the store, no secret), checked by `cityd config check`.";
    };

    unitOrder = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      description = "The units that bring the city up, in the order they run (for tests and `systemctl`).";
    };
  };
}
