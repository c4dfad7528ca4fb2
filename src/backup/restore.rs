//! `cityd restore FILE [--drill]`: verify the whole file first, refuse what must not be restored
//! (a newer Mattermost than the city's image; a city that holds data, unless `--force`), then
//! stream the file once more into its places: the state files (vault, PKI, config), the database
//! (the tenant made as `db ensure` makes it, objects owned by it), the volumes; prove the restored
//! data equals the manifest (row counts, every file's SHA-256, the CA fingerprint) before
//! Mattermost touches it; then bring the city up. `--drill` restores into scratch places (a
//! scratch database on the same server, scratch volumes, a scratch state directory), proves the
//! same, and removes them: production is never touched.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::runtime::Handle;

use super::archive::{self, Item};
use super::database::{self, Running, ident};
use super::manifest::{Entry, Manifest, compare_versions, image_version};
use super::progress::Progress;
use super::volumes::{Helper, VolumeTar};
use super::{BackupError, KeyFiles, Sources, state_files, volumes};
use crate::docker::Engine;
use crate::docker::spec::Names;
use crate::postgres::session::Session;
use crate::report::{Outcome, Step};
use crate::state::StateDir;

pub struct RestoreOptions<'a> {
    pub keys: KeyFiles,
    pub force: bool,
    pub dry_run: bool,
    pub drill: bool,
    pub quiet: bool,
    pub lan: &'a [IpAddr],
    pub ready_timeout: Duration,
    pub origin: &'a str,
    /// Leave bringing the city up to the service manager (NixOS units).
    pub skip_up: bool,
}

#[derive(Debug, Serialize)]
pub struct Restored {
    pub path: PathBuf,
    pub drill: bool,
    pub dry_run: bool,
    pub created: String,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    pub seconds: f64,
}

/// What was compared with the manifest after the restore.
#[derive(Debug, Serialize)]
pub struct Proof {
    pub tables: usize,
    pub rows: i64,
    pub state_files: usize,
    pub volume_files: usize,
    pub ca_fingerprint: Option<String>,
}

/// Where a restore writes.
struct Target {
    state_root: PathBuf,
    database: String,
    /// `pg_restore --role`: the tenant in production; the administrator in a drill.
    role: Option<String>,
    /// Base name -> Docker volume name.
    volumes: BTreeMap<String, String>,
    prefix: String,
}

fn pg(e: crate::postgres::PgError) -> BackupError {
    e.into()
}

pub fn restore(
    handle: &Handle,
    src: &Sources,
    path: &Path,
    options: &RestoreOptions,
) -> Result<Restored, BackupError> {
    let started = Instant::now();
    let opener = options.keys.opener()?;
    let progress = Progress::new(options.quiet);
    // 1. Verify everything before touching anything.
    let scanned = archive::scan(path, &opener, &mut |_| Ok(()))?;
    let manifest = scanned.manifest;
    let mut steps = vec![
        Step::new("verify", path.display().to_string(), Outcome::Unchanged)
            .detail(format!("{} bytes, every hash matches", scanned.bytes)),
    ];

    // 2. Refusals.
    if let (Some(theirs), Some(ours)) = (
        manifest.mattermost.version.as_deref(),
        image_version(&src.city.mattermost.image),
    ) && compare_versions(theirs, &ours) == std::cmp::Ordering::Greater
    {
        return Err(BackupError::Refused {
            reason: format!(
                "the backup is from Mattermost {theirs} ({}) but the city runs {} ({ours}); \
Mattermost does not support downgrades: set [mattermost] image to {theirs} or newer",
                manifest.mattermost.image, src.city.mattermost.image
            ),
        });
    }
    // Without Docker volumes in the backup and with local tools (NixOS), no engine is needed.
    let engine = match handle.block_on(crate::docker::connect()) {
        Ok(engine) => Some(engine),
        Err(_)
            if manifest.mattermost.volumes.is_empty()
                && matches!(src.tool, database::Tool::Local(_))
                && (options.skip_up || options.drill) =>
        {
            None
        }
        Err(e) => return Err(e.into()),
    };
    let engine = engine.as_ref();
    let names = Names::new(src.city);
    let tag = super::tag();
    let target = if options.drill {
        Target {
            state_root: std::env::temp_dir().join(format!("cityd-drill-{tag}")),
            database: format!("{}_drill_{tag}", src.city.database.name),
            role: None,
            volumes: manifest
                .mattermost
                .volumes
                .keys()
                .map(|b| (b.clone(), format!("{}cityd-drill-{tag}-{b}", names.prefix)))
                .collect(),
            prefix: names.prefix.clone(),
        }
    } else {
        Target {
            state_root: src.state.root().to_path_buf(),
            database: src.city.database.name.clone(),
            role: Some(src.city.database.user.clone()),
            volumes: manifest
                .mattermost
                .volumes
                .keys()
                .map(|b| (b.clone(), names.volume(b)))
                .collect(),
            prefix: names.prefix.clone(),
        }
    };

    if !options.drill {
        let held = existing_data(handle, src, engine, &target)?;
        if options.dry_run {
            steps.extend(plan_steps(&target, &held, &manifest, options.force));
            return Ok(Restored {
                path: path.to_path_buf(),
                drill: false,
                dry_run: true,
                created: manifest.created.clone(),
                steps,
                proof: None,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        if !held.is_empty() && !options.force {
            return Err(BackupError::Refused {
                reason: format!(
                    "the city already holds data ({}); restoring replaces it: pass --force to replace it, \
or take a backup of it first",
                    held.join("; ")
                ),
            });
        }
        if !held.is_empty() {
            steps.extend(clear(handle, src, engine, &target)?);
        }
    } else if options.dry_run {
        steps.push(
            Step::new("drill", target.database.clone(), Outcome::WouldCreate)
                .detail("scratch database, volumes and state directory, removed afterwards"),
        );
        return Ok(Restored {
            path: path.to_path_buf(),
            drill: true,
            dry_run: true,
            created: manifest.created.clone(),
            steps,
            proof: None,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    // 3. Restore (and for a drill, always clean up).
    let result = restore_into(
        handle, src, engine, path, &opener, &manifest, &target, options, &progress, &mut steps,
    );
    if options.drill {
        steps.extend(remove_scratch(handle, src, engine, &target));
    }
    let proof = result?;

    // 4. Production: bring the city up with the restored state (the wiring is in the database).
    if !options.drill && !options.skip_up {
        let ca_before = proof.ca_fingerprint.clone();
        let mut report = crate::report::Report::quiet(false);
        let mut found = crate::up::Found::default();
        let vault = crate::secrets::Vault::new(src.state);
        let up_options = crate::up::Options {
            dry_run: false,
            database: Some((src.admin, src.tls.mode)),
            database_subject: "restore",
            skip_wire: true,
            ready_timeout: options.ready_timeout,
            origin: options.origin,
        };
        let up = handle.block_on(crate::up::converge(
            src.city,
            src.state,
            &vault,
            options.lan,
            &up_options,
            &mut report,
            &mut found,
        ));
        steps.extend(report.steps);
        up.map_err(|e| BackupError::Tool {
            what: "bring the restored city up".into(),
            detail: format!("{e:#}"),
        })?;
        let ca_after = crate::pki::ca_certificate(src.state)
            .ok()
            .flatten()
            .map(|der| crate::pki::fingerprint(&der));
        if ca_after != ca_before {
            return Err(BackupError::Proof {
                detail: "the city CA changed while the city came up".into(),
            });
        }
    }
    Ok(Restored {
        path: path.to_path_buf(),
        drill: options.drill,
        dry_run: false,
        created: manifest.created.clone(),
        steps,
        proof: Some(proof),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the city already holds, each as a phrase; empty for an empty city.
fn existing_data(
    handle: &Handle,
    src: &Sources,
    engine: Option<&Engine>,
    target: &Target,
) -> Result<Vec<String>, BackupError> {
    let mut held = Vec::new();
    let secrets = std::fs::read_dir(src.state.secrets_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    if secrets > 0 {
        held.push(format!(
            "{secrets} secret(s) in {}",
            src.state.secrets_dir().display()
        ));
    }
    if src.state.ca_pem().exists() {
        held.push(format!("a CA at {}", src.state.ca_pem().display()));
    }
    let tables = handle.block_on(async {
        let s = Session::admin(src.admin, &src.admin.dbname, &src.tls).await?;
        let exists = s
            .rows("look for the database", "SELECT 1 FROM pg_database WHERE datname = $1", &[&target.database])
            .await?;
        if exists.is_empty() {
            return Ok::<_, crate::postgres::PgError>(None);
        }
        let t = Session::admin(src.admin, &target.database, &src.tls).await?;
        let n = t
            .rows(
                "count tables",
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%'",
                &[],
            )
            .await?;
        Ok(Some(n[0].get::<_, i64>(0)))
    }).map_err(pg)?;
    if let Some(n) = tables {
        held.push(format!("database {} with {n} table(s)", target.database));
    }
    for volume in target.volumes.values() {
        let Some(engine) = engine else { break };
        if handle
            .block_on(engine.docker().inspect_volume(volume))
            .is_ok()
        {
            held.push(format!("volume {volume}"));
        }
    }
    Ok(held)
}

fn plan_steps(target: &Target, held: &[String], manifest: &Manifest, force: bool) -> Vec<Step> {
    let replace = |present: bool| {
        if present {
            Outcome::WouldUpdate
        } else {
            Outcome::WouldCreate
        }
    };
    let has = |needle: &str| held.iter().any(|h| h.contains(needle));
    let mut steps = Vec::new();
    for rel in [
        "secrets",
        "pki",
        "relay-spool",
        "mattermost/config",
        "integrations",
    ] {
        let n = manifest.files_under(&format!("state/{rel}/")).count();
        steps.push(
            Step::new(
                "state",
                target.state_root.join(rel).display().to_string(),
                replace(target.state_root.join(rel).exists()),
            )
            .detail(format!("{n} file(s)")),
        );
    }
    steps.push(
        Step::new(
            "database",
            target.database.clone(),
            replace(has("database ")),
        )
        .detail(format!(
            "{} table(s), {} row(s)",
            manifest.postgres.row_counts.len(),
            manifest.postgres.row_counts.values().sum::<i64>()
        )),
    );
    for (base, volume) in &target.volumes {
        let n = manifest.files_under(&format!("volumes/{base}/")).count();
        steps.push(
            Step::new(
                "volume",
                volume.clone(),
                replace(has(&format!("volume {volume}"))),
            )
            .detail(format!("{n} file(s)")),
        );
    }
    if !held.is_empty() && !force {
        steps.push(
            Step::new("refuse", "the city holds data", Outcome::Skipped).detail(format!(
                "{}; the restore would refuse without --force",
                held.join("; ")
            )),
        );
    }
    steps
}

/// `--force`: removes the containers, the volumes, the database and the saved state directories.
fn clear(
    handle: &Handle,
    src: &Sources,
    engine: Option<&Engine>,
    target: &Target,
) -> Result<Vec<Step>, BackupError> {
    let mut steps = Vec::new();
    if let Some(engine) = engine {
        let mut report = crate::report::Report::quiet(false);
        handle
            .block_on(crate::docker::city::teardown(
                engine,
                src.city,
                src.state,
                false,
                false,
                &mut report,
            ))
            .map_err(|e| BackupError::Tool {
                what: "remove the city's containers".into(),
                detail: format!("{e:#}"),
            })?;
        steps.extend(report.steps);
        for volume in target.volumes.values() {
            steps.push(handle.block_on(engine.remove_volume(volume, false))?);
        }
    }
    handle
        .block_on(async {
            let s = Session::admin(src.admin, &src.admin.dbname, &src.tls).await?;
            s.execute(
                "drop the database",
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(&target.database)
                ),
            )
            .await
        })
        .map_err(pg)?;
    steps.push(Step::new(
        "database",
        target.database.clone(),
        Outcome::Removed,
    ));
    for rel in state_files::saved(src.state) {
        let dir = target.state_root.join(&rel);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| BackupError::Io {
                what: "remove",
                path: dir.clone(),
                source,
            })?;
            steps.push(Step::new(
                "state",
                dir.display().to_string(),
                Outcome::Removed,
            ));
        }
    }
    Ok(steps)
}

/// Removes a drill's scratch places; each removal is a step, failures are reported, not fatal.
fn remove_scratch(
    handle: &Handle,
    src: &Sources,
    engine: Option<&Engine>,
    target: &Target,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let dropped = handle.block_on(async {
        let s = Session::admin(src.admin, &src.admin.dbname, &src.tls).await?;
        s.execute(
            "drop the scratch database",
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(&target.database)
            ),
        )
        .await
    });
    steps.push(
        Step::new(
            "database",
            target.database.clone(),
            if dropped.is_ok() {
                Outcome::Removed
            } else {
                Outcome::Skipped
            },
        )
        .detail(dropped.err().map(|e| e.to_string()).unwrap_or_default()),
    );
    for volume in target.volumes.values() {
        let Some(engine) = engine else { break };
        let step = handle
            .block_on(engine.remove_volume(volume, false))
            .unwrap_or_else(|e| {
                Step::new("volume", volume.clone(), Outcome::Skipped).detail(e.to_string())
            });
        steps.push(step);
    }
    let removed = std::fs::remove_dir_all(&target.state_root);
    steps.push(Step::new(
        "state",
        target.state_root.display().to_string(),
        if removed.is_ok() {
            Outcome::Removed
        } else {
            Outcome::Skipped
        },
    ));
    steps
}

/// Streams the file into the target and proves the result.
#[allow(clippy::too_many_arguments)]
fn restore_into(
    handle: &Handle,
    src: &Sources,
    engine: Option<&Engine>,
    path: &Path,
    opener: &super::key::Opener,
    manifest: &Manifest,
    target: &Target,
    options: &RestoreOptions,
    progress: &Progress,
    steps: &mut Vec<Step>,
) -> Result<Proof, BackupError> {
    StateDir::create_private_dir(&target.state_root).map_err(|e| BackupError::Io {
        what: "create",
        path: target.state_root.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut sink = Sink {
        handle,
        src,
        engine,
        target,
        manifest,
        drill: options.drill,
        progress,
        restore: None,
        helper: None,
        upload: None,
        bytes: 0,
        steps: Vec::new(),
    };
    progress.step();
    let scanned = archive::scan(path, opener, &mut |item| sink.visit(item));
    let ended = sink.end();
    scanned?;
    ended?;
    let helper = sink.helper.take();
    steps.append(&mut sink.steps);

    // Prove: rows, state files, volume files, the CA, before anything else touches them.
    let counts = handle.block_on(async {
        let s = Session::admin(src.admin, &target.database, &src.tls).await?;
        database::row_counts(&s).await
    })?;
    if counts != manifest.postgres.row_counts {
        let diff: Vec<String> = manifest
            .postgres
            .row_counts
            .iter()
            .filter(|(t, n)| counts.get(*t) != Some(n))
            .map(|(t, n)| {
                format!(
                    "{t}: {n} in the backup, {} restored",
                    counts.get(t).copied().unwrap_or(-1)
                )
            })
            .take(5)
            .collect();
        return Err(BackupError::Proof {
            detail: format!("row counts differ ({})", diff.join("; ")),
        });
    }
    let rels = state_files::saved(src.state);
    let restored_state = state_files::file_hashes(&target.state_root, &rels);
    let mut state_count = 0;
    for (name, entry) in manifest.files_under("state/") {
        if restored_state.get(name) != entry.sha256.as_ref() {
            return Err(BackupError::Proof {
                detail: format!("{name} differs from the backup"),
            });
        }
        state_count += 1;
    }
    let mut volume_count = 0;
    if let Some(helper) = &helper {
        for (base, mount) in &manifest.mattermost.volumes {
            let got = volumes::file_hashes(helper, mount)?;
            let prefix = format!("volumes/{base}/");
            for (name, entry) in manifest.files_under(&prefix) {
                let rel = &name[prefix.len()..];
                if got.get(rel) != entry.sha256.as_ref() {
                    return Err(BackupError::Proof {
                        detail: format!("{name} differs from the backup after the restore"),
                    });
                }
                volume_count += 1;
            }
        }
    }
    drop(helper);
    let restored_state_dir =
        StateDir::at(target.state_root.clone()).map_err(|e| BackupError::Io {
            what: "use",
            path: target.state_root.clone(),
            source: std::io::Error::other(e),
        })?;
    let ca = crate::pki::ca_certificate(&restored_state_dir)
        .ok()
        .flatten()
        .map(|der| crate::pki::fingerprint(&der));
    if ca != manifest.ca_fingerprint {
        return Err(BackupError::Proof {
            detail: "the restored CA's fingerprint is not the one in the backup".into(),
        });
    }
    steps.push(Step::new("prove", target.database.clone(), Outcome::Unchanged).detail(format!(
        "{} table(s) and {} row(s), {} state and {} volume file(s), CA {}: equal to the manifest",
        counts.len(),
        counts.values().sum::<i64>(),
        state_count,
        volume_count,
        ca.as_deref().unwrap_or("absent")
    )));
    Ok(Proof {
        tables: counts.len(),
        rows: counts.values().sum(),
        state_files: state_count,
        volume_files: volume_count,
        ca_fingerprint: ca,
    })
}

/// Routes each entry of the second pass to its place.
struct Sink<'a> {
    handle: &'a Handle,
    src: &'a Sources<'a>,
    engine: Option<&'a Engine>,
    target: &'a Target,
    manifest: &'a Manifest,
    drill: bool,
    progress: &'a Progress,
    restore: Option<Running>,
    helper: Option<Helper>,
    upload: Option<(String, VolumeTar)>,
    bytes: u64,
    steps: Vec<Step>,
}

impl Sink<'_> {
    fn visit(&mut self, item: Item<'_>) -> Result<(), BackupError> {
        let entry = Entry {
            kind: item.kind,
            size: item.size,
            sha256: None,
            mode: item.mode,
            uid: item.uid,
            gid: item.gid,
            link: item.link.clone(),
        };
        if let Some(rel) = item.name.strip_prefix("state/") {
            return state_files::write_entry(&self.target.state_root, rel, &entry, item.data);
        }
        if item.part == Some("db/dump") {
            if self.restore.is_none() {
                self.start_database()?;
            }
            let restore = self.restore.as_mut().expect("started");
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = item.data.read(&mut buf).map_err(|e| BackupError::Corrupt {
                    path: self.target.state_root.clone(),
                    reason: e.to_string(),
                })?;
                if n == 0 {
                    break;
                }
                restore
                    .write_all(&buf[..n])
                    .map_err(|e| BackupError::Tool {
                        what: "send the dump to pg_restore".into(),
                        detail: e.to_string(),
                    })?;
                self.bytes += n as u64;
                self.progress.tick("restore: database", self.bytes, 1);
            }
            return Ok(());
        }
        if let Some(rest) = item.name.strip_prefix("volumes/") {
            self.finish_database()?;
            let (base, rel) = rest.split_once('/').unwrap_or((rest, ""));
            if self.upload.as_ref().map(|(b, _)| b.as_str()) != Some(base) {
                self.finish_upload()?;
                let mount = self
                    .manifest
                    .mattermost
                    .volumes
                    .get(base)
                    .cloned()
                    .ok_or_else(|| BackupError::Corrupt {
                        path: self.target.state_root.clone(),
                        reason: format!("volume {base} is not in the manifest"),
                    })?;
                if self.helper.is_none() {
                    self.helper = Some(self.make_volumes()?);
                }
                let upload = self.helper.as_ref().expect("made").upload(&mount);
                self.upload = Some((base.to_string(), VolumeTar::new(upload)));
            }
            let (_, tar) = self.upload.as_mut().expect("started");
            tar.add(rel, &entry, item.mtime, item.data)?;
            self.bytes += item.size;
            self.progress.tick("restore: volumes", self.bytes, 1);
            return Ok(());
        }
        Err(BackupError::Corrupt {
            path: self.target.state_root.clone(),
            reason: format!("unknown entry {}", item.name),
        })
    }

    fn start_database(&mut self) -> Result<(), BackupError> {
        let src = self.src;
        let database = &self.target.database;
        if self.drill {
            self.handle.block_on(async {
                let s = Session::admin(src.admin, &src.admin.dbname, &src.tls).await?;
                s.execute(
                    "create the scratch database",
                    &format!("CREATE DATABASE {}", ident(database)),
                )
                .await
            })?;
            self.steps
                .push(Step::new("database", database.clone(), Outcome::Created).detail("scratch"));
        } else {
            // The tenant as `db ensure` makes it, with the restored vault's password.
            let state =
                StateDir::at(self.target.state_root.clone()).map_err(|e| BackupError::Tool {
                    what: "use the state directory".into(),
                    detail: e.to_string(),
                })?;
            let vault = crate::secrets::Vault::new(&state);
            let report = self
                .handle
                .block_on(crate::postgres::ensure_tenant(
                    src.city,
                    &state,
                    &vault,
                    src.admin,
                    src.tls.mode,
                    false,
                ))
                .map_err(|e| BackupError::Tool {
                    what: "make the database tenant".into(),
                    detail: format!("{e:#}"),
                })?;
            self.steps.push(report.step());
        }
        let args =
            database::restore_args(&src.tool, src.admin, database, self.target.role.as_deref());
        let env = database::admin_env(&src.tool, src.admin, &src.tls);
        self.restore = Some(Running::start(
            self.handle,
            self.engine,
            &src.tool,
            &args,
            &env,
            true,
        )?);
        Ok(())
    }

    fn finish_database(&mut self) -> Result<(), BackupError> {
        if let Some(r) = self.restore.take() {
            let ran = r.finish()?;
            if ran.code != 0 {
                return Err(BackupError::Tool {
                    what: format!(
                        "restore database {} with pg_restore ({})",
                        self.target.database,
                        self.src.tool.describe()
                    ),
                    detail: format!("exit {}: {}", ran.code, ran.stderr),
                });
            }
            self.steps.push(
                Step::new("database", self.target.database.clone(), Outcome::Updated).detail(
                    format!(
                        "restored, objects owned by {}",
                        self.target.role.as_deref().unwrap_or(&self.src.admin.user)
                    ),
                ),
            );
        }
        Ok(())
    }

    fn make_volumes(&mut self) -> Result<Helper, BackupError> {
        let engine = self.engine.ok_or_else(|| BackupError::Tool {
            what: "restore the backup's Docker volumes".into(),
            detail: "no Docker engine is reachable".into(),
        })?;
        let mut mounts = Vec::new();
        for (base, mount) in &self.manifest.mattermost.volumes {
            let volume = &self.target.volumes[base];
            self.steps.push(self.handle.block_on(engine.ensure_volume(
                volume,
                &self.target.prefix,
                false,
            ))?);
            mounts.push((volume.clone(), mount.clone()));
        }
        Helper::create(
            self.handle,
            engine,
            &format!("{}cityd-restore-{}", self.target.prefix, super::tag()),
            &self.src.city.mattermost.image,
            &self.target.prefix,
            &mounts,
            false,
        )
    }

    fn finish_upload(&mut self) -> Result<(), BackupError> {
        if let Some((base, tar)) = self.upload.take() {
            tar.finish()?;
            self.steps.push(
                Step::new(
                    "volume",
                    self.target.volumes[&base].clone(),
                    Outcome::Updated,
                )
                .detail("restored"),
            );
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), BackupError> {
        self.finish_database()?;
        self.finish_upload()
    }
}
