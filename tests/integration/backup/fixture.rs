//! A city for the backup tests: the Docker lab (`crate::docker::Lab`) brought up with PostgreSQL
//! 17 in a container, an age identity outside the state directory, and helpers that read the
//! city by independent means (psql, pg_dump in the container, docker cp, openssl).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{require_tool, run_ok, stdout_of_success};
use crate::docker::{Lab, Pg};

pub struct City {
    pub pg: Pg,
    pub lab: Lab,
    pub key: PathBuf,
    pub dir: PathBuf,
}

/// `sha256` hex of bytes.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file under `root`, by relative path, with its SHA-256.
pub fn tree_hashes(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, &format!("{name}/"), out);
            } else if m.is_file() {
                out.insert(name, sha(&std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

impl City {
    /// A city that is up (containers, tenant, vault, PKI) with PostgreSQL 17 in a container.
    pub fn new() -> Self {
        require_tool("psql", "postgresql-client");
        require_tool("openssl", "openssl");
        let lab = Lab::new();
        let pg = Pg::start(&lab.scratch);
        lab.up(&pg.args());
        let key = lab.scratch.path().join("backup.key");
        let public = run_ok(crate::common::cityd().args(["backup", "key"]).arg(&key));
        assert!(public.trim().starts_with("age1"), "{public}");
        let dir = lab.scratch.path().join("backups");
        Self { pg, lab, key, dir }
    }

    pub fn vault_password(&self) -> String {
        std::fs::read_to_string(
            self.lab
                .scratch
                .state()
                .join("secrets/mattermost-db-password"),
        )
        .unwrap()
        .trim()
        .to_string()
    }

    fn psql(&self, user: &str, password: &str, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.pg.port.to_string())
            .args(["-U", user, "-d", db, "-At", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        stdout_of_success(&out).trim().to_string()
    }

    pub fn psql_admin(&self, db: &str, sql: &str) -> String {
        self.psql("postgres", Pg::PASSWORD, db, sql)
    }

    pub fn psql_tenant(&self, sql: &str) -> String {
        self.psql("mattermost", &self.vault_password(), "mattermost", sql)
    }

    /// Mattermost-shaped tables as the tenant: `n` posts, n/10 users, 20 channels, n/3 files
    /// with binary thumbnails, and 142 applied migrations.
    pub fn fill_database(&self, n: u32) {
        self.psql_tenant(&format!(
            r#"
CREATE TABLE "Users" ("Id" varchar(26) PRIMARY KEY, "Username" varchar(64) UNIQUE, "Email" text, "Props" bytea, "CreateAt" bigint);
CREATE TABLE "Channels" ("Id" varchar(26) PRIMARY KEY, "Name" text, "DisplayName" text, "CreateAt" bigint);
CREATE TABLE "Posts" ("Id" varchar(26) PRIMARY KEY, "ChannelId" varchar(26) REFERENCES "Channels", "UserId" varchar(26) REFERENCES "Users", "Message" text, "Props" jsonb, "CreateAt" bigint);
CREATE INDEX idx_posts_channel ON "Posts" ("ChannelId", "CreateAt");
CREATE TABLE "FileInfo" ("Id" varchar(26) PRIMARY KEY, "PostId" varchar(26) REFERENCES "Posts", "Path" text, "Size" bigint, "Thumbnail" bytea);
CREATE TABLE db_migrations (version bigint PRIMARY KEY, name text);
INSERT INTO "Users" SELECT 'u'||i, 'user'||i, 'user'||i||'@example.com', decode(repeat(md5(i::text), 8), 'hex'), 1700000000000+i FROM generate_series(1, {u}) i;
INSERT INTO "Channels" SELECT 'c'||i, 'chan'||i, 'Channel '||i, 1700000000000+i FROM generate_series(1, 20) i;
INSERT INTO "Posts" SELECT 'p'||i, 'c'||(i%20+1), 'u'||(i%{u}+1), 'message '||i||' '||repeat('ü', i%50), jsonb_build_object('n', i), 1700000000000+i FROM generate_series(1, {n}) i;
INSERT INTO "FileInfo" SELECT 'f'||i, 'p'||i, 'data/2026/f'||i, 1000+i, decode(repeat(md5((i*7)::text), 64), 'hex') FROM generate_series(1, {f}) i;
INSERT INTO db_migrations SELECT i, 'migration '||i FROM generate_series(1, 142) i;
"#,
            u = n / 10,
            f = n / 3,
        ));
    }

    /// Row counts as `Table|n` lines, by psql.
    pub fn row_counts(&self) -> String {
        self.psql_admin(
            "mattermost",
            r#"SELECT 'Channels|'||count(*) FROM "Channels" UNION ALL SELECT 'FileInfo|'||count(*) FROM "FileInfo"
               UNION ALL SELECT 'Posts|'||count(*) FROM "Posts" UNION ALL SELECT 'Users|'||count(*) FROM "Users"
               UNION ALL SELECT 'db_migrations|'||count(*) FROM db_migrations"#,
        )
    }

    pub fn databases(&self) -> String {
        self.psql_admin(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
        )
    }

    /// SHA-256 of a data-only dump made inside the PostgreSQL container (the per-dump random
    /// `\restrict` key lines of recent pg_dump releases left out).
    pub fn data_dump_hash(&self) -> String {
        let out = Command::new("docker")
            .args(["exec", "-u", "postgres", self.pg.container_id()])
            .args(["pg_dump", "--data-only", "--dbname=mattermost"])
            .output()
            .unwrap();
        let text = stdout_of_success(&out);
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            kept.contains("COPY public.\"Posts\""),
            "{}",
            &kept[..kept.len().min(2000)]
        );
        sha(kept.as_bytes())
    }

    /// Files put into the data, plugins and client-plugins volumes through `docker cp`.
    pub fn fill_volumes(&self) {
        let src = self.lab.scratch.path().join("volume-src");
        let mut seed = 0x2545_f491_u64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        let data = src.join("data");
        for i in 0..24 {
            let dir = data.join(format!("2026/01/{:02}/teams/t1/channels/c{}", i % 5, i % 3));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("file-{i}.bin")), bytes(1000 + i * 7919)).unwrap();
        }
        std::fs::create_dir_all(data.join("users/u1")).unwrap();
        std::fs::write(data.join("users/u1/profile.png"), bytes(40_000)).unwrap();
        std::fs::create_dir_all(data.join("plugins")).unwrap();
        std::fs::write(data.join("plugins/com.example.tar.gz"), bytes(30_000)).unwrap();
        let plugins = src.join("plugins/com.example");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::write(plugins.join("plugin.json"), b"{\"id\":\"com.example\"}").unwrap();
        let client = src.join("client-plugins/com.example");
        std::fs::create_dir_all(&client).unwrap();
        std::fs::write(client.join("main.js"), bytes(5000)).unwrap();
        let mm = self.lab.mattermost();
        for (from, to) in [
            ("data", "/mattermost/data"),
            ("plugins", "/mattermost/plugins"),
            ("client-plugins", "/mattermost/client/plugins"),
        ] {
            run_ok(
                Command::new("docker")
                    .arg("cp")
                    .arg(format!("{}/.", src.join(from).display()))
                    .arg(format!("{mm}:{to}")),
            );
        }
    }

    /// Every file of the three saved volumes, read with `docker cp` from the Mattermost container.
    pub fn volume_tree_hashes(&self) -> BTreeMap<String, String> {
        let out = tempfile::tempdir().unwrap();
        let mm = self.lab.mattermost();
        let mut all = BTreeMap::new();
        for (name, from) in [
            ("data", "/mattermost/data"),
            ("plugins", "/mattermost/plugins"),
            ("client-plugins", "/mattermost/client/plugins"),
        ] {
            let to = out.path().join(name);
            run_ok(
                Command::new("docker")
                    .arg("cp")
                    .arg(format!("{mm}:{from}"))
                    .arg(&to),
            );
            for (k, v) in tree_hashes(&to) {
                all.insert(format!("{name}/{k}"), v);
            }
        }
        assert!(all.len() >= 25, "{all:?}");
        all
    }

    pub fn vault_hashes(&self) -> BTreeMap<String, String> {
        tree_hashes(&self.lab.scratch.state().join("secrets"))
            .into_iter()
            .filter(|(k, _)| !k.starts_with('.'))
            .collect()
    }

    /// The CA's SHA-256 fingerprint as openssl prints it (AB:CD:...).
    pub fn ca_fingerprint(&self) -> String {
        let out = run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
                .arg(self.lab.scratch.state().join("pki/ca.pem")),
        );
        out.trim().rsplit_once('=').unwrap().1.to_string()
    }

    pub fn db_args(&self) -> Vec<String> {
        let mut a = self.pg.args();
        a.extend([
            "--db-container".to_string(),
            self.pg.container_id().to_string(),
        ]);
        a
    }

    pub fn backup_cmd(&self, extra: &[&str]) -> Command {
        self.backup_cmd_in(&self.dir, extra)
    }

    pub fn backup_cmd_in(&self, dir: &Path, extra: &[&str]) -> Command {
        let mut c = self.lab.std_cityd();
        c.arg("backup")
            .arg("--to")
            .arg(dir)
            .args(self.db_args())
            .args(extra);
        if !extra
            .iter()
            .any(|e| e.ends_with("-file") || *e == "--unencrypted")
        {
            c.arg("--identity-file").arg(&self.key);
        }
        c
    }

    pub fn backup(&self, extra: &[&str]) -> Value {
        let out = self.backup_cmd(extra).arg("--json").output().unwrap();
        serde_json::from_str(&stdout_of_success(&out)).unwrap()
    }

    pub fn verify(&self, file: &Path) -> Value {
        let out = self
            .lab
            .cityd()
            .args(["backup", "verify", "--json", "--identity-file"])
            .arg(&self.key)
            .arg(file)
            .output()
            .unwrap();
        serde_json::from_str(&stdout_of_success(&out)).unwrap()
    }

    pub fn restore_cmd(&self, file: &Path, extra: &[&str]) -> Command {
        self.restore_cmd_for(&self.lab.city, file, extra)
    }

    /// `cityd restore` with another city description.
    pub fn restore_cmd_for(&self, city: &Path, file: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cityd"));
        c.env_remove("CITYD_CITY")
            .env_remove("CITYD_STATE_DIR")
            .arg("--state-dir")
            .arg(self.lab.scratch.state())
            .arg("--city")
            .arg(city);
        c.arg("restore").arg(file).args(self.db_args()).args(extra);
        if !extra.iter().any(|e| e.ends_with("-file")) {
            c.arg("--identity-file").arg(&self.key);
        }
        c
    }

    pub fn restore(&self, file: &Path, extra: &[&str]) -> Value {
        let out = self
            .restore_cmd(file, extra)
            .arg("--json")
            .output()
            .unwrap();
        serde_json::from_str(&stdout_of_success(&out)).unwrap()
    }

    /// Volumes of this city (its prefix) on the engine.
    pub fn volumes(&self) -> Vec<String> {
        let out = run_ok(Command::new("docker").args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={}", self.lab.prefix),
        ]));
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    }

    /// Containers, volumes, network, database and role, and the whole state directory.
    pub fn destroy(&self) {
        let out = self.lab.cityd().args(["down", "--purge"]).output().unwrap();
        stdout_of_success(&out);
        self.psql_admin("postgres", "DROP DATABASE mattermost WITH (FORCE)");
        self.psql_admin("postgres", "DROP ROLE mattermost");
        std::fs::remove_dir_all(self.lab.scratch.state()).unwrap();
        assert!(self.volumes().is_empty(), "{:?}", self.volumes());
    }

    /// Complete backups in the directory, oldest first.
    pub fn backups(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("cityd-backup-") && (n.ends_with(".age") || n.ends_with(".tar"))
        });
        v.sort();
        v
    }

    /// Every file in the backup directory (including temporary ones).
    pub fn dir_listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}
