# Backup and restore on the appliance: posts (rows put in through PostgreSQL), files in
# Mattermost's data directory and the webhooks go in; the timer's service backs up and drills;
# the city is wiped (container stopped, database dropped, state removed except the database
# administrator's password and the key, which lives outside it); `cityd restore` brings back the
# same rows, files, CA and webhooks.
{ image, cityLib, ... }:
{
  name = "cityd-backup";

  nodes.server =
    { ... }:
    {
      imports = [ (import ./lib/server.nix { inherit image; }) ];
      services.cityd.backup = {
        enable = true;
        identityFile = "/root/backup.key";
        directory = "/var/backup/cityd";
        keep = 2;
      };
    };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.server.services.cityd;
      ip = nodes.server.networking.primaryIPAddress;
      admin = cityLib.dbAdmin cfg.settings.database;
      baseUrl =
        if image.servesTls then "" else " --base-url http://${ip}:${toString cfg.settings.mattermost.port}";
    in
    builtins.readFile ./lib/helpers.py
    + ''
      CITY = "${cfg.cityFile}"
      BASE_URL = "${baseUrl}"
      UNITS = ${builtins.toJSON cfg.unitOrder}
      KEY = "/root/backup.key"
      DIR = "/var/backup/cityd"
      # The newest backup, copied to a fixed name so that every cityd call here is a literal.
      LATEST = "/root/latest-backup.age"
      # The server's own client tools: the postgresql module puts its package on the system path.
      PG_BIN = "/run/current-system/sw/bin"
      DB = "${admin.url}"
      DB_PASSWORD_FILE = "${admin.passwordFile}"
      DATA = "${cityLib.paths.mattermostDirs.data}"


      def psql(sql):
          return server.succeed(f"runuser -u postgres -- psql -X -At -d mattermost -c \"{sql}\"").strip()


      def city_fingerprint():
          return server.succeed(f"openssl x509 -noout -fingerprint -sha256 -in {SERVER_STATE}/pki/ca.pem").strip()


      start_all()
      wait_for_units_in_order(server, UNITS)

      with subtest("posts, files and hooks go in"):
          server.succeed(cityd(CITY, SERVER_STATE, "verify webhook" + BASE_URL))
          psql("CREATE TABLE vm_posts AS SELECT g AS id, md5(g::text) AS body, decode(md5(g::text), 'hex') AS raw FROM generate_series(1, 5000) g")
          server.succeed(f"install -d -o 2000 -g 2000 {DATA}/vmtest && head -c 300000 /dev/urandom > {DATA}/vmtest/upload.bin && chown 2000:2000 {DATA}/vmtest/upload.bin")
          rows = psql("SELECT count(*) || ':' || md5(string_agg(body, ',' ORDER BY id)) FROM vm_posts")
          files = server.succeed(f"cd {DATA} && find . -type f -print0 | sort -z | xargs -0 sha256sum")
          fingerprint = city_fingerprint()

      with subtest("the timer's service backs up and drills the backup"):
          server.succeed(cityd(CITY, SERVER_STATE, f"backup key {KEY}"))
          server.succeed("systemctl start cityd-backup.service")
          newest = server.succeed(f"ls -1 {DIR}/cityd-backup-*.age | sort | tail -n 1").strip()
          server.succeed(f"test $(stat -c %a {newest}) = 600")
          server.succeed(f"cp -p {newest} {LATEST}")
          report = json.loads(server.succeed(cityd(CITY, SERVER_STATE, f"backup verify --json --identity-file {KEY} {LATEST}")))
          assert report["tables"] >= 1, report
          journal = server.succeed("journalctl -u cityd-backup.service")
          assert "drill passed" in journal, journal

      with subtest("the city is wiped"):
          for unit in reversed(UNITS):
              server.succeed(f"systemctl stop {unit}")
          psql_admin = "runuser -u postgres -- psql -X -At -d postgres -c"
          server.succeed(f"{psql_admin} 'DROP DATABASE mattermost WITH (FORCE)'")
          server.succeed(f"find {SERVER_STATE} -mindepth 1 -maxdepth 1 ! -name postgresql -exec rm -rf {{}} +")

      with subtest("restore brings back the same posts, files, CA and hooks"):
          server.succeed(cityd(CITY, SERVER_STATE, f"restore {LATEST} --identity-file {KEY} --pg-bin {PG_BIN} --admin-url {DB} --admin-password-file {DB_PASSWORD_FILE} --skip-up"))
          for unit in UNITS:
              server.succeed(f"systemctl restart {unit}")
          wait_for_units_in_order(server, UNITS)
          assert psql("SELECT count(*) || ':' || md5(string_agg(body, ',' ORDER BY id)) FROM vm_posts") == rows
          assert server.succeed(f"cd {DATA} && find . -type f -print0 | sort -z | xargs -0 sha256sum") == files
          assert city_fingerprint() == fingerprint
          server.succeed(cityd(CITY, SERVER_STATE, "verify webhook" + BASE_URL))
    '';
}
