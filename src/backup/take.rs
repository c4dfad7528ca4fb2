//! `cityd backup`: the state parts, then the database (dumped before the files, from a snapshot
//! the row counts share), then the volumes, then the manifest; then retention. The directory is
//! locked for the run, and what a killed run left (a `.partial` file, a helper container) is
//! cleared first.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tokio::runtime::Handle;

use super::archive::Writer;
use super::database::{self, Running, Snapshot};
use super::manifest::{FORMAT, Kind, Manifest, MattermostInfo, PostgresInfo, image_version};
use super::progress::Progress;
use super::{BackupError, KeyFiles, Sources, retention, state_files, volumes};
use crate::docker::Engine;
use crate::docker::spec::Names;

pub struct BackupOptions {
    pub dir: PathBuf,
    pub keep: Option<usize>,
    pub keys: KeyFiles,
    /// No progress lines.
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct Taken {
    pub path: PathBuf,
    pub bytes: u64,
    pub encrypted: bool,
    pub created: String,
    pub database: DatabaseSummary,
    pub state_files: usize,
    pub volume_files: usize,
    pub volumes: Vec<String>,
    pub removed: Vec<PathBuf>,
    pub cleared_partials: usize,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct DatabaseSummary {
    pub server_version: String,
    pub dump_tool: String,
    pub dump_bytes: u64,
    pub tables: usize,
    pub rows: i64,
    pub schema_version: Option<i64>,
}

/// Locks the backup directory for one run (released when the file is dropped).
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, BackupError> {
    let path = dir.join(".cityd-backup.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| BackupError::Io {
            what: "open the lock",
            path: path.clone(),
            source,
        })?;
    file.lock().map_err(|source| BackupError::Io {
        what: "lock",
        path,
        source,
    })?;
    Ok(file)
}

/// Removes helper containers a killed run of this city left behind.
fn clear_helpers(handle: &Handle, engine: &Engine, prefix: &str) {
    use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}={prefix}", crate::docker::spec::LABEL_CITY),
            "org.cityd.role=backup-helper".to_string(),
        ],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(list) = handle.block_on(engine.docker().list_containers(Some(options))) else {
        return;
    };
    for c in list {
        if let Some(id) = c.id {
            let rm = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = handle.block_on(engine.docker().remove_container(&id, Some(rm)));
        }
    }
}

pub fn backup(
    handle: &Handle,
    src: &Sources,
    options: &BackupOptions,
) -> Result<Taken, BackupError> {
    let started = Instant::now();
    let seal = options.keys.seal()?;
    let mut warnings = Vec::new();
    if !seal.is_encrypted() {
        warnings.push(
            "the backup is NOT encrypted: it holds the vault and the CA key in plain text (file mode 0600)"
                .to_string(),
        );
    }
    crate::state::StateDir::create_private_dir(&options.dir).map_err(|e| BackupError::Io {
        what: "create",
        path: options.dir.clone(),
        source: std::io::Error::other(e),
    })?;
    let _lock = lock_dir(&options.dir)?;
    let cleared_partials = retention::clear_partials(&options.dir);

    // A NixOS host dumps with the server's own tools and keeps Mattermost's files in the state
    // directory: there, no Docker engine is needed.
    let engine = match handle.block_on(crate::docker::connect()) {
        Ok(engine) => Some(engine),
        Err(e) if matches!(src.tool, database::Tool::Local(_)) => {
            warnings.push(format!(
                "no Docker volumes saved ({e}); Mattermost's files are saved from the state directory"
            ));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let names = Names::new(src.city);
    if let Some(engine) = &engine {
        clear_helpers(handle, engine, &names.prefix);
    }

    let progress = Progress::new(options.quiet);
    let created_at = time::OffsetDateTime::now_utc();
    let mut writer = Writer::create(&options.dir, &seal, created_at)?;
    match write_all(
        handle,
        src,
        engine.as_ref(),
        &names,
        &progress,
        &mut writer,
        created_at,
    ) {
        Ok((manifest, db, state_files, volume_files, vols)) => {
            let (path, bytes) = writer.finish(&manifest)?;
            let removed = match options.keep {
                Some(keep) => {
                    retention::prune(&options.dir, keep).map_err(|source| BackupError::Io {
                        what: "apply retention in",
                        path: options.dir.clone(),
                        source,
                    })?
                }
                None => Vec::new(),
            };
            Ok(Taken {
                path,
                bytes,
                encrypted: seal.is_encrypted(),
                created: manifest.created.clone(),
                database: db,
                state_files,
                volume_files,
                volumes: vols,
                removed,
                cleared_partials,
                warnings,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            writer.abandon();
            Err(e)
        }
    }
}

type Written = (Manifest, DatabaseSummary, usize, usize, Vec<String>);

fn write_all(
    handle: &Handle,
    src: &Sources,
    engine: Option<&Engine>,
    names: &Names,
    progress: &Progress,
    writer: &mut Writer,
    created_at: time::OffsetDateTime,
) -> Result<Written, BackupError> {
    let city = src.city;
    // 1. The state directory's parts (small; the restore needs the vault before the database).
    let state_count = state_files::add_all(src.state, writer)?;
    let ca_fingerprint = crate::pki::ca_certificate(src.state)
        .ok()
        .flatten()
        .map(|der| crate::pki::fingerprint(&der));

    // 2. The database, from one snapshot for the counts and the dump.
    progress.step();
    let tool_version = database::tool_version(handle, engine, &src.tool)?;
    let database_name = city.database.name.clone();
    let snapshot = handle.block_on(Snapshot::open(src.admin, &database_name, &src.tls))?;
    database::check_majors(&src.tool, &tool_version, &snapshot.server_version)?;
    let row_counts = handle.block_on(database::row_counts(&snapshot.session))?;
    let schema_version = handle.block_on(database::schema_version(&snapshot.session))?;
    let args = database::dump_args(&src.tool, src.admin, &database_name, &snapshot.id);
    let env = database::admin_env(&src.tool, src.admin, &src.tls);
    let mut dump = Running::start(handle, engine, &src.tool, &args, &env, false)?;
    let part = writer
        .add_part("db/dump", &mut dump, &mut |bytes| {
            progress.tick("backup: database", bytes, 1)
        })?
        .clone();
    let ran = dump.finish()?;
    // The snapshot may end only once pg_dump has it; it has when pg_dump ended.
    let _ = handle.block_on(snapshot.session.execute("end the snapshot", "COMMIT"));
    if ran.code != 0 {
        return Err(BackupError::Tool {
            what: format!(
                "dump database {database_name} with pg_dump ({})",
                src.tool.describe()
            ),
            detail: format!("exit {}: {}", ran.code, ran.stderr),
        });
    }

    // 3. The volumes, after the database.
    progress.step();
    let mut saved = BTreeMap::new();
    let mut mounts = Vec::new();
    for (base, target) in volumes::saved() {
        let Some(engine) = engine else { break };
        let volume = names.volume(base);
        if handle
            .block_on(engine.docker().inspect_volume(&volume))
            .is_ok()
        {
            mounts.push((volume, target.to_string()));
            saved.insert(base.to_string(), target.to_string());
        }
    }
    let mut volume_files = 0usize;
    if let (false, Some(engine)) = (mounts.is_empty(), engine) {
        let helper_name = format!("{}cityd-backup-{}", names.prefix, super::tag());
        let helper = volumes::Helper::create(
            handle,
            engine,
            &helper_name,
            &city.mattermost.image,
            &names.prefix,
            &mounts,
            true,
        )?;
        for (base, target) in &saved {
            let root = format!("volumes/{base}");
            volumes::walk(helper.download(target), &mut |item| {
                let name = if item.rel.is_empty() {
                    root.clone()
                } else {
                    format!("{root}/{}", item.rel)
                };
                match item.entry.kind {
                    Kind::File => {
                        writer.add_file(&name, item.entry, item.mtime, item.data)?;
                        volume_files += 1;
                        progress.tick("backup: volumes", writer.written, volume_files as u64);
                    }
                    _ => writer.add_other(&name, item.entry, item.mtime)?,
                }
                Ok(())
            })?;
        }
    }

    let manifest = Manifest {
        format: FORMAT,
        cityd_version: env!("CARGO_PKG_VERSION").to_string(),
        created: crate::pki::rfc3339(created_at),
        created_unix: created_at.unix_timestamp(),
        mattermost: MattermostInfo {
            image: city.mattermost.image.clone(),
            version: image_version(&city.mattermost.image),
            volumes: saved.clone(),
        },
        postgres: PostgresInfo {
            server_version: snapshot.server_version.clone(),
            server_major: database::major_of(&snapshot.server_version).unwrap_or(0),
            dump_tool: tool_version.clone(),
            database: database_name,
            role: city.database.user.clone(),
            schema_version,
            row_counts: row_counts.clone(),
        },
        ca_fingerprint,
        parts: writer.parts.clone(),
        entries: writer.entries.clone(),
    };
    let summary = DatabaseSummary {
        server_version: snapshot.server_version,
        dump_tool: tool_version,
        dump_bytes: part.size,
        tables: row_counts.len(),
        rows: row_counts.values().sum(),
        schema_version,
    };
    Ok((
        manifest,
        summary,
        state_count,
        volume_files,
        saved.into_keys().collect(),
    ))
}
