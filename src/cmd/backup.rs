//! `cityd backup [--to DIR] [--keep N]`, `cityd backup verify FILE`, `cityd backup key FILE`:
//! flags to one `crate::backup` call each, printed as text or `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::backup::{self, BackupOptions, Sources};
use crate::cli::Context;
use crate::flags::backup::{OpenArgs, SealArgs, ToolArgs};
use crate::flags::postgres_admin::AdminArgs;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    about = "Back up the city into one encrypted file (database, volumes, vault, PKI); verify a backup",
    long_about = "Write one backup file holding the Mattermost database (a pg_dump custom-format \
dump by the server's own major version, from a snapshot shared with the per-table row counts), \
Mattermost's volumes (data, plugins, client plugins, through the Docker archive endpoint), the \
vault, the PKI with the CA key, the relay spool and Mattermost's config, and a manifest with the \
versions and the SHA-256 of every part and file.\n\nThe database is dumped before the files: a \
file uploaded meanwhile is harmless, a post pointing at a missing file is not.\n\nThe file is age-\
encrypted to --recipient-file (or --identity-file's public key) or with --passphrase-file; \
--unencrypted must be said explicitly. It is written under a temporary name, fsynced and renamed, \
so a crash leaves the previous backups or the new complete one. --keep N keeps the newest N."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub take: TakeArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decrypt a backup, check every hash against its manifest, and report what it holds.
    Verify(VerifyArgs),
    /// Make a new age identity file (0600) for backups and print its public key.
    Key(KeyArgs),
}

#[derive(Debug, clap::Args)]
pub struct TakeArgs {
    /// Directory of the backups. Default: <state>/backups.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Keep the newest N complete backups, removing older ones after this one is complete.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    #[command(flatten)]
    pub seal: SealArgs,
    #[command(flatten)]
    pub tool: ToolArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// Where to write the identity (must not exist yet).
    pub file: PathBuf,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::Verify(v)) => verify(v),
        Some(Command::Key(k)) => {
            let public = backup::key::generate(&k.file)?;
            println!("{public}");
            eprintln!(
                "identity written to {} (0600); keep a copy off this machine: without it no backup opens",
                k.file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => take(ctx, args.take),
    }
}

fn take(ctx: &Context, args: TakeArgs) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let admin = args.admin.admin()?;
    let tls = crate::postgres::Tls::load(args.admin.tls_mode(city), &state.ca_pem())?;
    let handle = ctx.runtime_handle()?;
    let sources = Sources {
        city,
        state,
        admin: &admin,
        tls,
        tool: args.tool.tool(city),
    };
    let options = BackupOptions {
        dir: args.to.clone().unwrap_or_else(|| state.backups_dir()),
        keep: args.keep.map(|k| k as usize),
        keys: args.seal.keys(),
        quiet: false,
    };
    let taken = backup::backup(&handle, &sources, &options)?;
    for w in &taken.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        crate::report::print_json(&taken)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "backup    {} ({} bytes, {})",
        taken.path.display(),
        taken.bytes,
        if taken.encrypted {
            "age-encrypted"
        } else {
            "NOT encrypted"
        }
    );
    println!(
        "database  PostgreSQL {} by {}: {} bytes, {} table(s), {} row(s)",
        taken.database.server_version,
        taken.database.dump_tool,
        taken.database.dump_bytes,
        taken.database.tables,
        taken.database.rows
    );
    println!(
        "files     {} from the state directory, {} from volumes {}",
        taken.state_files,
        taken.volume_files,
        taken.volumes.join(", ")
    );
    for r in &taken.removed {
        println!("removed   {} (retention)", r.display());
    }
    println!("done in {:.1}s", taken.seconds);
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let v = backup::verify(&args.file, &args.open.keys())?;
    if args.json {
        crate::report::print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "ok        {}: every hash matches its manifest",
        v.path.display()
    );
    println!(
        "taken     {} ({} ago) by cityd {}",
        v.created,
        backup::check::human_age(v.age_seconds),
        v.cityd_version
    );
    println!(
        "mattermost {} (version {})",
        v.mattermost_image,
        v.mattermost_version.as_deref().unwrap_or("unknown")
    );
    println!(
        "database  PostgreSQL {}, schema {}, {} table(s), {} row(s), {} bytes",
        v.postgres_version,
        v.schema_version
            .map_or_else(|| "unknown".into(), |s| s.to_string()),
        v.tables,
        v.rows,
        v.database_bytes
    );
    println!(
        "files     {} state, {} in volumes {}",
        v.state_files,
        v.volume_files,
        v.volumes.join(", ")
    );
    println!(
        "CA        {}",
        v.ca_fingerprint.as_deref().unwrap_or("none")
    );
    Ok(ExitCode::SUCCESS)
}
