//! `cityd pki ensure | show | export`: the city CA and the server certificate from the command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Context;
use crate::exit::{self, Coded, Failure};
use crate::pki::{self, AdoptCa, CaFormat, EnsureOptions, EnsureReport, PkiError, ShowReport};
use crate::report::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create (or adopt) the CA and issue the server certificate; re-issue it only when needed.
    ///
    /// The server certificate is re-issued only when its names differ from the wanted ones (the LAN
    /// address moved), fewer than 30 days remain, or it no longer matches its key or the CA;
    /// otherwise every file stays byte-identical (same bytes, same mtime). The CA is never replaced.
    #[command(
        after_help = "Files in <state>/pki/: ca.pem, ca.crt (DER, for phones), ca.key (0600), \
server.pem (leaf + CA), server.key (0600).\n\
SANs: DNS mattermost.<domain> (or mattermost.host) and localhost; IP 127.0.0.1, ::1 and every \
address of lan.addresses.\n\
Exit codes: 0 done (or nothing to do), 1 the operation failed, 2 bad input (a file or flag; \
nothing was written)."
    )]
    Ensure(EnsureArgs),
    /// Show SANs, expiry, days left and SHA-256 fingerprints of the CA and the server certificate.
    ///
    /// A phone user compares the CA fingerprint with the one the phone shows before trusting it.
    /// Also reports key file modes, whether the leaf verifies against the CA, and which current
    /// LAN addresses the certificate lacks. Exit code 1 when there is no PKI yet.
    Show {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the CA certificate for phones: DER (ca.crt, what iOS and Android installers take) or PEM.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct EnsureArgs {
    /// Say what would be created or re-issued, and why; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report (decisions, reasons, files, fingerprints) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Validity of a newly issued server certificate, in days: at most 825 (Apple refuses longer).
    #[arg(long, value_name = "DAYS", default_value_t = pki::DEFAULT_VALIDITY_DAYS, value_parser = parse_validity_days)]
    pub validity_days: u32,
    /// Adopt this CA certificate (PEM or DER) instead of creating a CA. Needs --ca-key. Refused when
    /// the state already holds a different CA.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The adopted CA's private key: PEM PKCS#8, EC or RSA; encrypted PKCS#8 with
    /// --ca-key-passphrase-file. cityd keeps an unencrypted copy in <state>/pki/ca.key (0600).
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// File whose first line is the passphrase of an encrypted --ca-key (never on the command line).
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_key_passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Binary DER, what a phone's certificate installer takes (ca.crt).
    Der,
    /// Base64 PEM text.
    Pem,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = Format::Pem)]
    pub format: Format,
    /// Write to FILE (mode 0644) instead of stdout. DER goes to stdout only when it is not a terminal.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Say what would be written; write nothing.
    #[arg(long, requires = "out")]
    pub dry_run: bool,
}

fn parse_validity_days(text: &str) -> Result<u32, String> {
    let days: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of days"))?;
    pki::check_validity_days(days).map_err(|e| e.to_string())
}

/// To this verb, a PKI error exits 2 when the input (a file, a flag, the state) is at fault, else 1;
/// the error stays in the chain with its cause.
fn failure(error: PkiError) -> anyhow::Error {
    Coded::new(exit::failure_code(error.is_bad_input()), error).into()
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ensure(args) => ensure(ctx, args),
        Command::Show { json } => show(ctx, json),
        Command::Export(args) => export(ctx, args),
    }
}

fn lan_ips(ctx: &Context) -> anyhow::Result<Vec<std::net::IpAddr>> {
    ctx.lan_addresses()
        .context("resolving lan.addresses for the server certificate's IP SANs")
}

fn ensure(ctx: &Context, args: EnsureArgs) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let lan = lan_ips(ctx)?;
    let adopt = match (args.ca_cert, args.ca_key) {
        (Some(cert), Some(key)) => Some(AdoptCa {
            cert,
            key,
            passphrase_file: args.ca_key_passphrase_file,
        }),
        _ => None,
    };
    let options = EnsureOptions {
        validity_days: args.validity_days,
        adopt,
        dry_run: args.dry_run,
    };
    let report = pki::ensure(state, city, &lan, &options).map_err(failure)?;
    if args.json {
        crate::report::print_json(&report)?;
    } else {
        print_ensure(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_ensure(r: &EnsureReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let verb = |action: pki::Action| {
        if action.outcome.is_planned() {
            format!("would be {}", action.as_str())
        } else {
            action.as_str().to_string()
        }
    };
    writeln!(out, "CA      {:<16} {}", verb(r.ca), r.ca_why)?;
    writeln!(out, "        {}", r.ca_subject)?;
    writeln!(out, "        SHA-256 {}", r.ca_sha256)?;
    writeln!(
        out,
        "        may vouch for {}",
        scope_text(r.ca_scope.as_ref())
    )?;
    let why = if r.server_why.is_empty() {
        "names and validity are current".to_string()
    } else {
        r.server_why.join("; ")
    };
    writeln!(out, "server  {:<16} {why}", verb(r.server))?;
    writeln!(out, "        SANs {}", r.sans.entries().join(", "))?;
    writeln!(
        out,
        "        not after {} ({} days left)",
        r.server_not_after, r.server_days_left
    )?;
    writeln!(out, "        SHA-256 {}", r.server_sha256)?;
    for f in r.files.iter().filter(|f| f.outcome != Outcome::Unchanged) {
        let outcome = f.outcome.as_str();
        let outcome = if r.dry_run {
            format!("would be {outcome}")
        } else {
            outcome.to_string()
        };
        writeln!(out, "{outcome:<17} {} ({})", f.path.display(), f.mode)?;
    }
    if !r.changed {
        writeln!(
            out,
            "no changes: every file in {} is current",
            r.dir.display()
        )?;
    } else if r.dry_run {
        writeln!(out, "dry run: nothing was written")?;
    }
    Ok(())
}

/// A CA's NameConstraints in words; without them it may vouch for any site.
fn scope_text(scope: Option<&pki::NameScope>) -> String {
    match scope {
        Some(scope) => scope.describe(),
        None => "any name (no name constraints; see `cityd doctor`)".to_string(),
    }
}

fn show(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let Some(summary) = pki::inspect(state).map_err(failure)? else {
        eprintln!(
            "no PKI in {} yet; run `cityd pki ensure`",
            state.pki_dir().display()
        );
        return Ok(ExitCode::from(exit::FAILED));
    };
    let city = ctx.city()?;
    let lan = lan_ips(ctx).map_err(|e| format!("{e:#}"));
    let report = pki::show_report(summary, city, lan);
    if json {
        crate::report::print_json(&report)?;
    } else {
        print_show(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_show(r: &ShowReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let s = &r.summary;
    writeln!(out, "PKI in {}", s.dir.display())?;
    match &s.ca {
        Some(ca) => {
            writeln!(out, "CA       {}", ca.subject)?;
            writeln!(out, "         SHA-256   {}", ca.sha256)?;
            writeln!(
                out,
                "         not after {} ({} days left)",
                ca.not_after, ca.days_left
            )?;
            writeln!(
                out,
                "         may vouch for {}",
                scope_text(ca.name_constraints.as_ref())
            )?;
        }
        None => writeln!(out, "CA       missing (ca.pem); run `cityd pki ensure`")?,
    }
    match &s.server {
        Some(leaf) => {
            writeln!(out, "server   {}", leaf.subject)?;
            writeln!(out, "         SANs      {}", leaf.sans.entries().join(", "))?;
            writeln!(
                out,
                "         not after {} ({} days left)",
                leaf.not_after, leaf.days_left
            )?;
            writeln!(out, "         SHA-256   {}", leaf.sha256)?;
            match (&s.server_verifies, &s.server_problem) {
                (Some(true), _) => writeln!(out, "         verifies against ca.pem")?,
                (_, Some(problem)) => writeln!(out, "         DOES NOT VERIFY: {problem}")?,
                _ => {}
            }
            if !r.missing_sans.is_empty() {
                writeln!(
                    out,
                    "         lacks {} (the LAN address moved?); run `cityd pki ensure`",
                    r.missing_sans.join(", ")
                )?;
            }
            if let Some(e) = &r.lan_error {
                writeln!(out, "         (cannot compare with the LAN addresses: {e})")?;
            }
        }
        None => writeln!(out, "server   missing (server.pem); run `cityd pki ensure`")?,
    }
    for f in &s.files {
        let state = match (&f.mode, f.mode_ok) {
            (None, _) => "missing".to_string(),
            (Some(m), true) => m.clone(),
            (Some(m), false) => format!("{m} (should be {})", f.expected_mode),
        };
        writeln!(out, "file     {:<11} {state}", f.name)?;
    }
    Ok(())
}

fn export(ctx: &Context, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let format = match args.format {
        Format::Der => CaFormat::Der,
        Format::Pem => CaFormat::Pem,
    };
    let export = pki::ca_export(state, format)?;
    match args.out {
        Some(path) => {
            if args.dry_run {
                println!(
                    "would write the CA certificate to {} (SHA-256 {})",
                    path.display(),
                    export.sha256
                );
                return Ok(ExitCode::SUCCESS);
            }
            let outcome = pki::write_export(&path, &export)?;
            println!(
                "{} {} (SHA-256 {})",
                outcome.as_str(),
                path.display(),
                export.sha256
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            if args.format == Format::Der && stdout.is_terminal() {
                return Err(Failure::new(
                    exit::BAD_INPUT,
                    "DER is binary: redirect stdout to a file or give --out ca.crt",
                )
                .into());
            }
            stdout.write_all(&export.bytes)?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
