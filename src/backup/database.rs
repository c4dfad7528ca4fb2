//! The database part: which `pg_dump`/`pg_restore` run (inside the PostgreSQL container through
//! the Docker exec API, or a given PostgreSQL bin directory such as the NixOS server's own
//! package), the major-version check against the server, the exported snapshot that the row
//! counts and the dump share, and restoring a dump with the tenant's ownership.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

use super::BackupError;
use crate::postgres::session::{Session, Tls};
use crate::postgres::{Admin, PgError};
use crate::secrets::Secret;

/// Where the dump and restore tools run.
#[derive(Debug, Clone)]
pub enum Tool {
    /// Inside this container (it runs the server, so its tools match it), as the OS user
    /// `postgres` over the local socket.
    Container(String),
    /// `pg_dump`/`pg_restore` from this directory, over TCP to the administrator's server.
    Local(PathBuf),
}

impl Tool {
    pub fn describe(&self) -> String {
        match self {
            Tool::Container(c) => format!("container {c}"),
            Tool::Local(dir) => dir.display().to_string(),
        }
    }
}

/// The PostgreSQL container's default name for a city: `<prefix>postgres`.
pub fn default_container(city: &crate::city::City) -> String {
    format!("{}postgres", city.docker.prefix)
}

/// The major version in `pg_dump (PostgreSQL) 17.2 (Debian 17.2-1)` or `170002`.
pub fn major_of(version: &str) -> Option<u32> {
    let v = version
        .split_once("(PostgreSQL)")
        .map_or(version, |(_, rest)| rest)
        .trim();
    let first: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u32 = first.parse().ok()?;
    // server_version_num: 170002 -> 17 (from 10 on, major = num / 10000).
    Some(if n >= 100_000 { n / 10_000 } else { n })
}

/// What runs a tool and how it ended.
pub struct Ran {
    pub code: i64,
    pub stderr: String,
}

/// The tool's environment: passwords travel here, never in argv.
fn env_of(password: Option<&Secret>, tls: &Tls) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(p) = password {
        env.push(("PGPASSWORD".into(), p.expose().to_string()));
    }
    env.push((
        "PGSSLMODE".into(),
        match tls.mode {
            crate::postgres::TlsMode::Disable => "disable",
            crate::postgres::TlsMode::Auto => "prefer",
            crate::postgres::TlsMode::Require => "require",
        }
        .into(),
    ));
    env
}

/// A running tool: its stdout as a blocking reader, its stdin as a blocking writer, its end.
pub struct Running {
    handle: Handle,
    inner: RunningInner,
    pending: Bytes,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

enum RunningInner {
    Exec {
        docker: bollard::Docker,
        id: String,
        output: Option<ExecOutput>,
        input: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
        drain: Option<tokio::task::JoinHandle<()>>,
    },
    Local {
        child: std::process::Child,
        stderr_thread: Option<std::thread::JoinHandle<()>>,
    },
}

/// The attached output of an exec.
type ExecOutput = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;

const STDERR_LIMIT: usize = 64 * 1024;

fn keep_stderr(buf: &std::sync::Mutex<Vec<u8>>, bytes: &[u8]) {
    let mut b = buf.lock().expect("stderr buffer");
    let room = STDERR_LIMIT.saturating_sub(b.len());
    b.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Running {
    /// Starts `args` with the tool (`pg_dump`, `pg_restore`). With `stdin`, the caller writes
    /// the input; otherwise it reads stdout.
    pub fn start(
        handle: &Handle,
        engine: Option<&crate::docker::Engine>,
        tool: &Tool,
        args: &[String],
        env: &[(String, String)],
        stdin: bool,
    ) -> Result<Self, BackupError> {
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let program = &args[0];
        let inner = match tool {
            Tool::Container(name) => {
                let engine = engine.expect("a container tool comes with an engine");
                let docker = engine.docker().clone();
                let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let config = CreateExecOptions {
                    cmd: Some(args.to_vec()),
                    env: Some(env),
                    user: Some("postgres".to_string()),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                };
                let engine_err = |e: bollard::errors::Error| BackupError::Tool {
                    what: format!("run {program} in container {name}"),
                    detail: crate::exit::causes_text(&e),
                };
                let (id, started) = handle
                    .block_on(async {
                        let created = docker.create_exec(name, config).await?;
                        // A 1 MiB frame buffer instead of bollard's 8 KiB: the dump streams through here.
                        let options = bollard::exec::StartExecOptions {
                            output_capacity: Some(1 << 20),
                            ..Default::default()
                        };
                        let started = docker.start_exec(&created.id, Some(options)).await?;
                        Ok::<_, bollard::errors::Error>((created.id, started))
                    })
                    .map_err(engine_err)?;
                let StartExecResults::Attached { output, input } = started else {
                    return Err(BackupError::Tool {
                        what: format!("run {program} in container {name}"),
                        detail: "the engine did not attach to it".into(),
                    });
                };
                let (output, drain) = if stdin {
                    // Writing: drain the output concurrently, keeping stderr (and stdout) for errors.
                    let kept = stderr.clone();
                    let mut output = output;
                    let task = handle.spawn(async move {
                        while let Some(Ok(item)) = output.next().await {
                            keep_stderr(&kept, &item.into_bytes());
                        }
                    });
                    (None, Some(task))
                } else {
                    (Some(output), None)
                };
                RunningInner::Exec {
                    docker,
                    id,
                    output,
                    input: Some(input),
                    drain,
                }
            }
            Tool::Local(dir) => {
                let mut cmd = std::process::Command::new(dir.join(program));
                cmd.args(&args[1..])
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .stdin(if stdin {
                        std::process::Stdio::piped()
                    } else {
                        std::process::Stdio::null()
                    })
                    .stdout(if stdin {
                        std::process::Stdio::null()
                    } else {
                        std::process::Stdio::piped()
                    })
                    .stderr(std::process::Stdio::piped());
                let mut child = cmd.spawn().map_err(|e| BackupError::Tool {
                    what: format!("run {}", dir.join(program).display()),
                    detail: e.to_string(),
                })?;
                let mut err = child.stderr.take().expect("piped");
                let kept = stderr.clone();
                let stderr_thread = std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = err.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        keep_stderr(&kept, &buf[..n]);
                    }
                });
                RunningInner::Local {
                    child,
                    stderr_thread: Some(stderr_thread),
                }
            }
        };
        Ok(Self {
            handle: handle.clone(),
            inner,
            pending: Bytes::new(),
            stderr,
        })
    }

    /// Writes input (the `stdin` mode).
    pub fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.inner {
            RunningInner::Exec { input, .. } => {
                let input = input.as_mut().expect("input is open");
                self.handle.block_on(input.write_all(data))
            }
            RunningInner::Local { child, .. } => {
                std::io::Write::write_all(child.stdin.as_mut().expect("piped"), data)
            }
        }
    }

    /// Closes input, waits for the end and returns the exit code and stderr.
    pub fn finish(mut self) -> Result<Ran, BackupError> {
        let code = match &mut self.inner {
            RunningInner::Exec {
                docker,
                id,
                output,
                input,
                drain,
            } => {
                let handle = self.handle.clone();
                let kept = self.stderr.clone();
                handle.block_on(async {
                    if let Some(mut i) = input.take() {
                        let _ = i.shutdown().await;
                    }
                    if let Some(mut o) = output.take() {
                        while let Some(Ok(item)) = o.next().await {
                            if let bollard::container::LogOutput::StdErr { message } = item {
                                keep_stderr(&kept, &message);
                            }
                        }
                    }
                    if let Some(d) = drain.take() {
                        let _ = d.await;
                    }
                    // The exec's exit code shows once the process is gone.
                    for _ in 0..200 {
                        match docker.inspect_exec(id).await {
                            Ok(i) if i.running != Some(true) => return i.exit_code.unwrap_or(-1),
                            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                            Err(_) => return -1,
                        }
                    }
                    -1
                })
            }
            RunningInner::Local {
                child,
                stderr_thread,
            } => {
                drop(child.stdin.take());
                let status = child.wait().map_err(|e| BackupError::Tool {
                    what: "wait for the PostgreSQL tool".into(),
                    detail: e.to_string(),
                })?;
                if let Some(t) = stderr_thread.take() {
                    let _ = t.join();
                }
                i64::from(status.code().unwrap_or(-1))
            }
        };
        let stderr = String::from_utf8_lossy(&self.stderr.lock().expect("stderr"))
            .trim()
            .to_string();
        Ok(Ran { code, stderr })
    }
}

impl Read for Running {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending = self.pending.slice(n..);
                return Ok(n);
            }
            match &mut self.inner {
                RunningInner::Exec { output, .. } => {
                    let Some(o) = output.as_mut() else {
                        return Ok(0);
                    };
                    match self.handle.block_on(o.next()) {
                        None => return Ok(0),
                        Some(Err(e)) => return Err(std::io::Error::other(e)),
                        Some(Ok(bollard::container::LogOutput::StdOut { message })) => {
                            self.pending = message;
                        }
                        Some(Ok(other)) => keep_stderr(&self.stderr, &other.into_bytes()),
                    }
                }
                RunningInner::Local { child, .. } => {
                    return child.stdout.as_mut().expect("piped").read(buf);
                }
            }
        }
    }
}

/// `pg_dump --version` of the tool.
pub fn tool_version(
    handle: &Handle,
    engine: Option<&crate::docker::Engine>,
    tool: &Tool,
) -> Result<String, BackupError> {
    let mut run = Running::start(
        handle,
        engine,
        tool,
        &["pg_dump".into(), "--version".into()],
        &[],
        false,
    )?;
    let mut out = String::new();
    run.read_to_string(&mut out)
        .map_err(|e| BackupError::Tool {
            what: format!("run pg_dump --version ({})", tool.describe()),
            detail: e.to_string(),
        })?;
    let ran = run.finish()?;
    if ran.code != 0 || out.trim().is_empty() {
        return Err(BackupError::Tool {
            what: format!("run pg_dump --version ({})", tool.describe()),
            detail: format!("exit {}: {}", ran.code, ran.stderr),
        });
    }
    Ok(out.trim().to_string())
}

/// The server's version and the tool's must share a major: a newer server cannot be dumped by
/// an older pg_dump, and a different major is not the server's own tool.
pub fn check_majors(
    tool: &Tool,
    tool_version: &str,
    server_version: &str,
) -> Result<u32, BackupError> {
    let t = major_of(tool_version);
    let s = major_of(server_version);
    match (t, s) {
        (Some(t), Some(s)) if t == s => Ok(s),
        _ => Err(BackupError::ToolMismatch {
            tool: tool.describe(),
            tool_version: tool_version.to_string(),
            server_version: server_version.to_string(),
            server_major: s.map_or_else(|| "?".into(), |s| s.to_string()),
        }),
    }
}

/// A snapshot held open by a repeatable-read transaction, so pg_dump (`--snapshot`) and the
/// row counts see exactly the same data.
pub struct Snapshot {
    pub session: Session,
    pub id: String,
    pub server_version: String,
}

fn pg(e: PgError) -> BackupError {
    BackupError::Postgres(Box::new(e))
}

/// Quotes an identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Snapshot {
    pub async fn open(admin: &Admin, database: &str, tls: &Tls) -> Result<Self, BackupError> {
        let session = Session::admin(admin, database, tls).await.map_err(pg)?;
        session
            .execute(
                "start a snapshot",
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )
            .await
            .map_err(pg)?;
        let rows = session
            .rows(
                "export the snapshot",
                "SELECT pg_export_snapshot(), current_setting('server_version')",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(Self {
            id: rows[0].get(0),
            server_version: rows[0].get(1),
            session,
        })
    }
}

/// Exact row counts of every ordinary table outside the system schemas, as `schema.table`.
pub async fn row_counts(session: &Session) -> Result<BTreeMap<String, i64>, BackupError> {
    let tables = session
        .rows(
            "list tables",
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut out = BTreeMap::new();
    for t in tables {
        let (schema, table): (String, String) = (t.get(0), t.get(1));
        let rows = session
            .rows(
                "count rows",
                &format!("SELECT count(*) FROM {}.{}", ident(&schema), ident(&table)),
                &[],
            )
            .await
            .map_err(pg)?;
        out.insert(format!("{schema}.{table}"), rows[0].get::<_, i64>(0));
    }
    Ok(out)
}

/// Mattermost's schema level: the highest version in `db_migrations`, when the table exists.
pub async fn schema_version(session: &Session) -> Result<Option<i64>, BackupError> {
    let column = session
        .rows(
            "find db_migrations",
            "SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = to_regclass('public.db_migrations') \
             AND lower(a.attname) = 'version' AND NOT a.attisdropped",
            &[],
        )
        .await
        .map_err(pg)?;
    let Some(col) = column.first().map(|r| r.get::<_, String>(0)) else {
        return Ok(None);
    };
    let rows = session
        .rows(
            "read the schema version",
            &format!(
                "SELECT max({}::bigint) FROM public.db_migrations",
                ident(&col)
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(rows[0].get::<_, Option<i64>>(0))
}

/// `pg_dump` arguments for the snapshot, custom format.
pub fn dump_args(tool: &Tool, admin: &Admin, database: &str, snapshot: &str) -> Vec<String> {
    let mut a = vec![
        "pg_dump".to_string(),
        "--format=custom".into(),
        format!("--snapshot={snapshot}"),
        format!("--username={}", admin.user),
        format!("--dbname={database}"),
    ];
    if matches!(tool, Tool::Local(_)) {
        a.push(format!("--host={}", admin.host));
        a.push(format!("--port={}", admin.port));
    }
    a
}

/// `pg_restore` arguments: objects owned by `role` (SET ROLE), no ownership or grants from the
/// dump, stopping at the first error.
pub fn restore_args(tool: &Tool, admin: &Admin, database: &str, role: Option<&str>) -> Vec<String> {
    let mut a = vec![
        "pg_restore".to_string(),
        "--no-owner".into(),
        "--no-privileges".into(),
        "--exit-on-error".into(),
        format!("--username={}", admin.user),
        format!("--dbname={database}"),
    ];
    if let Some(role) = role {
        a.push(format!("--role={role}"));
    }
    if matches!(tool, Tool::Local(_)) {
        a.push(format!("--host={}", admin.host));
        a.push(format!("--port={}", admin.port));
    }
    a
}

/// The environment of the tool for the administrator. Inside the container the tools connect
/// over the local socket as the OS user `postgres` (trusted there in the official image and ours),
/// so no password is sent at all: an exec's environment is stored by the engine (`docker inspect`
/// of the exec) and written to the client's debug log, so it is no place for one.
pub fn admin_env(tool: &Tool, admin: &Admin, tls: &Tls) -> Vec<(String, String)> {
    match tool {
        Tool::Container(_) => Vec::new(),
        Tool::Local(_) => env_of(admin.password.as_ref(), tls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_from_tools_and_servers() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)"),
            Some(17)
        );
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_of("17.6 (Debian 17.6-1)"), Some(17));
        assert_eq!(major_of("9.6.24"), Some(9));
        assert_eq!(major_of("nonsense"), None);
    }

    #[test]
    fn a_mismatch_names_both_versions() {
        let tool = Tool::Local("/usr/lib/postgresql/15/bin".into());
        let err = check_majors(&tool, "pg_dump (PostgreSQL) 15.14", "17.6")
            .unwrap_err()
            .to_string();
        assert!(err.contains("15.14") && err.contains("17.6"), "{err}");
        assert!(check_majors(&tool, "pg_dump (PostgreSQL) 17.2", "17.6").is_ok());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("Posts"), "\"Posts\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
