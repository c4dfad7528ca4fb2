# services.cityd.backup: a timer and a hardened oneshot that runs `cityd backup` (the server's own
# pg_dump through --pg-bin, Mattermost's files from the state directory), keeps the newest
# `keep` backups, and with `drill` proves the new backup with `cityd restore --drill` right away.
# Key files reach the service through systemd's LoadCredential only: never argv, never the store.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption types;
  cfg = config.services.cityd;
  b = cfg.backup;
  cityLib = import ./lib.nix;
  admin = cityLib.dbAdmin cfg.settings.database;
  cityd = lib.getExe' cfg.package "cityd";
  pgBin = "${config.services.postgresql.package}/bin";
  global = [
    "--city"
    cityLib.paths.cityFile
    "--state-dir"
    cityLib.paths.stateDir
  ];
  database = [
    "--pg-bin"
    pgBin
    "--admin-url"
    admin.url
    "--admin-password-file"
    admin.passwordFile
  ];
  # The credential that seals the backup, and the one that opens it for the drill.
  sealFlag =
    if b.recipientFile != null then
      [
        "--recipient-file"
        "\${CREDENTIALS_DIRECTORY}/recipient"
      ]
    else if b.identityFile != null then
      [
        "--identity-file"
        "\${CREDENTIALS_DIRECTORY}/identity"
      ]
    else
      [
        "--passphrase-file"
        "\${CREDENTIALS_DIRECTORY}/passphrase"
      ];
  openFlag =
    if b.identityFile != null then
      [
        "--identity-file"
        "\${CREDENTIALS_DIRECTORY}/identity"
      ]
    else
      [
        "--passphrase-file"
        "\${CREDENTIALS_DIRECTORY}/passphrase"
      ];
  credentials =
    lib.optional (b.recipientFile != null) "recipient:${b.recipientFile}"
    ++ lib.optional (b.identityFile != null) "identity:${b.identityFile}"
    ++ lib.optional (b.passphraseFile != null) "passphrase:${b.passphraseFile}";
  # Arguments are quoted for the shell; the credential paths expand there.
  args =
    list:
    lib.concatMapStringsSep " " (
      a: if lib.hasPrefix "\${" a then "\"${a}\"" else lib.escapeShellArg a
    ) list;
  script = pkgs.writeShellScript "cityd-backup" (
    ''
      set -euo pipefail
      ${cityd} ${args global} backup --to ${lib.escapeShellArg b.directory} --keep ${toString b.keep} ${args database} ${args sealFlag}
    ''
    + lib.optionalString b.drill ''
      newest="$(${pkgs.coreutils}/bin/ls -1 ${lib.escapeShellArg b.directory}/cityd-backup-* | ${pkgs.coreutils}/bin/sort | ${pkgs.coreutils}/bin/tail -n 1)"
      ${cityd} ${args global} restore --drill "$newest" ${args database} ${args openFlag}
    ''
  );
in
{
  options.services.cityd.backup = {
    enable = mkEnableOption "scheduled backups of the city (database, files, vault, PKI), each proven by a restore drill";
    startAt = mkOption {
      type = types.either types.str (types.listOf types.str);
      default = "daily";
      description = "When to back up (systemd.time(7) calendar events).";
    };
    keep = mkOption {
      type = types.ints.positive;
      default = 7;
      description = "How many complete backups to keep; older ones are removed after a new one is complete.";
    };
    directory = mkOption {
      type = types.str;
      default = "/var/backup/cityd";
      description = "Where the backups are written (0700). Copy them off the machine too.";
    };
    recipientFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "File of age public keys (age1...) to encrypt to. A drill then needs identityFile as well.";
    };
    identityFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "age identity file (from `cityd backup key FILE`): encrypts to its public key and opens backups for the drill. A path outside the Nix store.";
    };
    passphraseFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "File whose first line is the passphrase (age scrypt). A path outside the Nix store.";
    };
    drill = mkOption {
      type = types.bool;
      default = true;
      description = "After each backup, restore it into a scratch database and state directory, compare it with its manifest, and remove them.";
    };
  };

  config = lib.mkIf (cfg.enable && b.enable) {
    assertions = [
      {
        assertion = b.recipientFile != null || b.identityFile != null || b.passphraseFile != null;
        message = "services.cityd.backup needs recipientFile, identityFile or passphraseFile (backups hold the vault and the CA key)";
      }
      {
        assertion = !b.drill || b.identityFile != null || b.passphraseFile != null;
        message = "services.cityd.backup.drill needs identityFile or passphraseFile to open the backup";
      }
      {
        assertion = lib.all (f: f == null || !lib.hasPrefix builtins.storeDir f) [
          b.recipientFile
          b.identityFile
          b.passphraseFile
        ];
        message = "services.cityd.backup key files must not be in the Nix store (it is world-readable)";
      }
    ];

    systemd.tmpfiles.rules = [ "d ${b.directory} 0700 root root -" ];

    systemd.services.cityd-backup = {
      description = "cityd backup (and restore drill)";
      after = [
        "postgresql.service"
        "cityd-db.service"
      ];
      requires = [ "postgresql.service" ];
      inherit (b) startAt;
      environment = cityLib.unitEnvironment;
      # The common sandbox of cityd's units; it writes the backups and, for the drill, scratch
      # places under the state directory, and reaches PostgreSQL over its socket and loopback.
      serviceConfig = cityLib.unitHardening // {
        Type = "oneshot";
        ExecStart = script;
        LoadCredential = credentials;
        ReadWritePaths = [
          b.directory
          cityLib.paths.stateDir
        ];
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_NETLINK"
          "AF_INET"
          "AF_INET6"
        ];
        CapabilityBoundingSet = [ "" ];
      };
    };
  };
}
