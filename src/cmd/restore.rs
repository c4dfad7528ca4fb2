//! `cityd restore FILE [--drill] [--force] [--dry-run] [--json]`: flags to one
//! `crate::backup::restore` call, printed as steps or `--json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::backup::{self, RestoreOptions, Sources};
use crate::cli::Context;
use crate::flags::backup::{OpenArgs, ToolArgs};
use crate::flags::postgres_admin::AdminArgs;

#[derive(Debug, clap::Args)]
#[command(
    about = "Restore the city from a backup (verified first), or prove a backup with --drill",
    long_about = "Verify the whole backup first (every hash, the key), then refuse a backup from a \
newer Mattermost than the city's image (Mattermost does not support downgrades) and a city that \
already holds data (a vault, a CA, the database, the volumes) unless --force. Then restore the \
vault, the PKI and Mattermost's config, the database (the tenant role and ownership as `cityd db \
ensure` makes them), the volumes; prove that the row counts, every file's SHA-256 and the CA \
fingerprint equal the backup's manifest; and bring the city up (the wiring lives in the restored \
database).\n\n--drill restores into scratch places instead (a scratch database on the same server, \
scratch volumes, a scratch state directory), proves the same, and removes them: production is not \
touched. --dry-run lists what would be replaced."
)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    /// Replace a city that already holds data (its containers, volumes, database and state).
    #[arg(long)]
    pub force: bool,
    /// Restore into scratch places, compare with the manifest, remove them.
    #[arg(long)]
    pub drill: bool,
    /// Verify and print what would be replaced; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
    /// Restore and prove, but leave starting the city to the service manager (the NixOS units)
    /// instead of bringing it up here.
    #[arg(long)]
    pub skip_up: bool,
    #[command(flatten)]
    pub tool: ToolArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// How long Mattermost may take to answer on its socket after the restore.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = crate::flags::mattermost_server::parse_wait)]
    pub ready_timeout: Duration,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let admin = args.admin.admin()?;
    let tls = crate::postgres::Tls::load(args.admin.tls_mode(city), &state.ca_pem())?;
    let lan = if args.drill || args.dry_run || args.skip_up {
        Vec::new()
    } else {
        ctx.lan_addresses()?
    };
    let handle = ctx.runtime_handle()?;
    let origin = ctx.city_origin();
    let sources = Sources {
        city,
        state,
        admin: &admin,
        tls,
        tool: args.tool.tool(city),
    };
    let options = RestoreOptions {
        keys: args.open.keys(),
        force: args.force,
        dry_run: args.dry_run,
        drill: args.drill,
        quiet: false,
        lan: &lan,
        ready_timeout: args.ready_timeout,
        origin: &origin,
        skip_up: args.skip_up,
    };
    let restored = backup::restore(&handle, &sources, &args.file, &options)?;
    if args.json {
        crate::report::print_json(&restored)?;
        return Ok(ExitCode::SUCCESS);
    }
    for step in &restored.steps {
        println!("{}", step.text_line());
    }
    let what = match (restored.drill, restored.dry_run) {
        (_, true) => "dry run: nothing was changed",
        (true, false) => {
            "drill passed: the backup restores and equals its manifest; scratch places removed"
        }
        (false, false) => "city restored and proven equal to the backup",
    };
    println!("{what} ({:.1}s)", restored.seconds);
    Ok(ExitCode::SUCCESS)
}
