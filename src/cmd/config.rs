//! `cityd config check [FILE]` and `cityd config show [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::city::{City, Origins};
use crate::cli::Context;
use crate::lan::LanAddress;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a city description (default: --city, else the embedded default). Exit 2 when invalid.
    Check {
        /// The file to check; overrides --city.
        file: Option<PathBuf>,
    },
    /// Print the effective city: the file laid over the embedded default (values the file set are
    /// marked), derived names, and what `auto` resolved to and why.
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Effective<'a> {
    city: &'a City,
    /// The city file, and the dotted paths of the values it set; all others are defaults.
    origins: &'a Origins,
    derived: Derived,
    lan: Vec<LanAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lan_error: Option<String>,
}

#[derive(Serialize)]
struct Derived {
    mattermost_host: String,
    site_url: String,
    turn_realm: String,
    cors_origins: Vec<String>,
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { file } => {
            let loaded;
            let (city, origin): (&City, String) = match &file {
                Some(f) => {
                    loaded = City::load(f)?;
                    (&loaded, f.display().to_string())
                }
                None => (ctx.city()?, ctx.city_origin()),
            };
            println!(
                "{origin}: valid (team {}, {} channels, Mattermost {})",
                city.team.name,
                city.channels.len(),
                city.mattermost.image
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { json } => {
            let (city, origins) = (ctx.city()?, ctx.city_origins()?);
            // An unresolvable LAN is shown, not fatal: `config show` is how a user finds out why.
            let (lan, lan_error) = match ctx.lan() {
                Ok(l) => (l.to_vec(), None),
                Err(e) => (Vec::new(), Some(format!("{e:#}"))),
            };
            let ips: Vec<_> = lan.iter().map(|l| l.address).collect();
            let effective = Effective {
                city,
                origins,
                derived: Derived {
                    mattermost_host: city.mattermost_host(),
                    site_url: city.site_url(),
                    turn_realm: city.turn_realm(),
                    cors_origins: city.cors_origins(&ips),
                },
                lan,
                lan_error,
            };
            if json {
                crate::report::print_json(&effective)?;
            } else {
                print!("{}", origins.annotate(&toml::to_string(city)?));
                println!("\n# derived");
                println!("# mattermost host: {}", effective.derived.mattermost_host);
                println!("# site url:        {}", effective.derived.site_url);
                println!("# turn realm:      {}", effective.derived.turn_realm);
                println!(
                    "# cors origins:    {}",
                    effective.derived.cors_origins.join(" ")
                );
                for l in &effective.lan {
                    println!("# lan address:     {} ({})", l.address, l.why);
                }
                if let Some(e) = &effective.lan_error {
                    println!("# lan address:     unresolved: {e}");
                }
            }
            Ok(if effective.lan_error.is_some() {
                ExitCode::from(crate::exit::FAILED)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
