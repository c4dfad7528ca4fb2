//! `cityd secrets ensure | list | get NAME | import-env FILE`: the vault from the command line.
//! Only `get` ever prints a value; everything else prints names, lengths, paths and ages.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::Context;
use crate::exit::{self, Coded};
use crate::secrets::import_env::{self, ImportError, ImportReport};
use crate::secrets::{EnsureReport, ListStatus, VaultError, action_word, human_age};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate every missing secret; existing ones are validated and never rewritten.
    ///
    /// One 0600 file per secret under <state>/secrets/ (directory 0700), from the OS random source,
    /// letters and digits only. An existing secret of the wrong shape is an error naming the file and
    /// the rule; it is never replaced, and nothing else is created until it is fixed. Concurrent runs
    /// are serialised by a lock; a killed run leaves every secret absent or complete.
    ///
    /// Secrets and their rules (generated values have the minimum length):
    ///   turn-static-auth-secret          64 lowercase hex digits
    ///   mattermost-at-rest-encrypt-key   at least 32 letters or digits (Mattermost refuses less)
    ///   mattermost-public-link-salt      at least 32 letters or digits (Mattermost refuses less)
    ///   gitlab-plugin-encryption-key     exactly 32 letters or digits (AES-256 key)
    ///   jenkins-plugin-encryption-key    exactly 32 letters or digits (AES-256 key)
    ///   gitlab-plugin-webhook-secret     64 lowercase hex digits
    ///   sonarqube-webhook-secret         64 lowercase hex digits
    ///   mattermost-db-password           at least 32 letters or digits (the blog's is 64 hex)
    #[command(verbatim_doc_comment)]
    Ensure {
        /// Show what would be created without writing anything (not even the directory).
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable report (names, paths, actions, lengths; never values).
        #[arg(long)]
        json: bool,
    },
    /// Names, lengths, paths, modes and ages of the secrets; never their values.
    List {
        /// Machine-readable list.
        #[arg(long)]
        json: bool,
    },
    /// Print one secret's value on stdout, for piping into another tool (never logged).
    ///
    /// Exit 2 when the name is unknown or the file breaks its shape.
    Get {
        /// File name in the vault, e.g. turn-static-auth-secret (`cityd secrets list` shows them).
        name: String,
    },
    /// Adopt the secrets of the blog's cicd.env so an existing installation keeps its keys.
    ///
    /// Reads MATTERMOST_TURN_SECRET, MATTERMOST_AT_REST_KEY, MATTERMOST_PUBLIC_LINK_SALT,
    /// MATTERMOST_GITLAB_PLUGIN_SECRET, MATTERMOST_GITLAB_PLUGIN_KEY, MATTERMOST_JENKINS_PLUGIN_KEY
    /// and MATTERMOST_DB_PASSWORD the way the blog's scripts `source` the file (quoted or not,
    /// `export` allowed, the last assignment wins). Reports per variable: taken, same (already in
    /// the vault), conflict (the vault holds a different value), wrong shape, or absent. Any
    /// conflict or wrong shape is an error (exit 2) and nothing is written. Run `cityd secrets
    /// ensure` afterwards to generate what the file did not have.
    #[command(verbatim_doc_comment)]
    ImportEnv {
        /// The env file, usually ~/cicd_stack/cicd.env.
        file: PathBuf,
        /// Validate and show what would be taken without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable report (variables, lines, statuses, rules; never values).
        #[arg(long)]
        json: bool,
    },
}

/// To this verb, bad input (wrong shapes, unknown names, missing secrets, conflicts, unusable state)
/// exits 2 and failed operations 1; the error stays in the chain with its cause.
fn vault_error(e: VaultError) -> anyhow::Error {
    Coded::new(exit::failure_code(e.is_bad_input()), e).into()
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    // The city is read (and refused, exit 2) before the vault is touched: `--city` is never
    // ignored, and a wrong one writes nothing.
    ctx.city()?;
    let vault = ctx.vault()?;
    match command {
        Command::Ensure { dry_run, json } => {
            let report = vault.converge(dry_run).map_err(vault_error)?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                crate::report::print_json(&report)?;
            } else {
                print_ensure(&report)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json } => {
            let list = vault.list().map_err(vault_error)?;
            if json {
                crate::report::print_json(&list)?;
                return unreadable(&list);
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "vault {}", vault.dir().display())?;
            for e in &list {
                let length = e.length.map_or("-".to_string(), |l| l.to_string());
                let age = e.age_seconds.map_or("-".to_string(), human_age);
                let mode = e.mode.as_deref().unwrap_or("-");
                let status = match e.status {
                    ListStatus::Ok => "",
                    ListStatus::Missing => "  (missing: `cityd secrets ensure` creates it)",
                    ListStatus::WrongShape => "  (WRONG SHAPE: see `cityd secrets ensure`)",
                    ListStatus::Unreadable => "  (UNREADABLE)",
                };
                writeln!(
                    out,
                    "{:<32} {:>4} chars  {:>5}  {mode:>4}  {}{status}",
                    e.name,
                    length,
                    age,
                    e.path.display()
                )?;
            }
            unreadable(&list)
        }
        Command::Get { name } => {
            let secret = vault.get_by_name(&name).map_err(vault_error)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", secret.expose())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportEnv {
            file,
            dry_run,
            json,
        } => {
            // A refused import still prints its report (what each variable would have become);
            // the error then says why nothing was written.
            let report = match import_env::import(&vault, &file, dry_run) {
                Ok(report) => report,
                Err(ImportError::Refused(report)) => {
                    print_import_report(&report, json)?;
                    return Err(ImportError::Refused(report).into());
                }
                Err(e) => return Err(e.into()),
            };
            print_import_report(&report, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `list` shows every file, then fails with exit 2 naming each file it could not read and why.
fn unreadable(list: &[crate::secrets::ListEntry]) -> anyhow::Result<ExitCode> {
    let problems: Vec<&str> = list.iter().filter_map(|e| e.problem.as_deref()).collect();
    if problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    Err(exit::Failure::new(
        exit::BAD_INPUT,
        format!(
            "{} vault file(s) could not be read:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ),
    )
    .into())
}

fn print_ensure(report: &EnsureReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in &report.secrets {
        writeln!(
            out,
            "{:<12} {:<32} {}",
            action_word(e.action),
            e.name,
            e.path.display()
        )?;
    }
    if report.removed_temp_files > 0 {
        writeln!(
            out,
            "removed {} temp file(s) left by an interrupted run",
            report.removed_temp_files
        )?;
    }
    match (report.changed, report.dry_run) {
        (false, _) => writeln!(out, "no changes"),
        (true, true) => writeln!(out, "dry run: nothing was written"),
        (true, false) => Ok(()),
    }
}

fn print_import_report(report: &ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        crate::report::print_json(report)
    } else {
        Ok(print_import(report)?)
    }
}

fn print_import(report: &ImportReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "import from {} into {}",
        report.file.display(),
        report.vault.display()
    )?;
    for e in &report.variables {
        let at = e.line.map_or_else(String::new, |l| format!(" (line {l})"));
        writeln!(
            out,
            "{:<18} {:<32} -> {}{at}",
            e.status.as_str(),
            e.variable,
            e.secret
        )?;
        for note in &e.notes {
            writeln!(out, "{:<18} note: {note}", "")?;
        }
    }
    if !report.ok {
        return writeln!(out, "refused: nothing was written");
    }
    if report.dry_run {
        writeln!(out, "dry run: nothing was written")?;
    } else if !report.changed {
        writeln!(out, "no changes")?;
    }
    if !report.still_missing.is_empty() {
        writeln!(
            out,
            "not in the file: {}; `cityd secrets ensure` generates them",
            report.still_missing.join(", ")
        )?;
    }
    Ok(())
}
