//! `cityd connect jenkins|gitlab|sonarqube`: wire each product to the city's Mattermost through
//! its `integrations::Product`: resolve its target, run its converge step, print the report (or
//! JSON), and return its typed error (which carries the exit code).

use std::process::ExitCode;

use crate::cli::Context;
use crate::integrations::gitlab::Gitlab;
use crate::integrations::jenkins::Jenkins;
use crate::integrations::record::Records;
use crate::integrations::sonarqube::Sonarqube;
use crate::integrations::{Env, Product};

/// The products, one line each: the subcommand (named after the variant) and its `Product`.
macro_rules! products {
    ($($variant:ident => $product:ty),* $(,)?) => {
        /// Each product's name, in the order of the subcommands.
        pub const PRODUCTS: &[&str] = &[$(<$product as Product>::NAME),*];

        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $($variant(<$product as Product>::Args),)*
        }

        pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
            match command {
                $(Command::$variant(args) => connect::<$product>(ctx, args),)*
            }
        }
    };
}

products! {
    Jenkins => Jenkins,
    Gitlab => Gitlab,
    Sonarqube => Sonarqube,
}

fn connect<P: Product>(ctx: &Context, args: P::Args) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let vault = ctx.vault()?;
    let records = Records::new(state);
    let ca = state.ca_pem();
    let lan = || ctx.lan_addresses();
    let env = Env {
        city: ctx.city()?,
        vault: &vault,
        records: &records,
        ca_pem: ca.is_file().then_some(ca),
        lan: &lan,
    };
    let (dry_run, json) = (P::common(&args).dry_run, P::common(&args).json);
    let target = P::target(&env, args)?;
    let (mut report, result) = ctx.block_on(P::connect(&target, &env, dry_run))?;
    // The report is printed even after a failure: it says what was already done.
    let result = result.map_err(anyhow::Error::from);
    if let Err(error) = &result {
        report.error = Some(format!("{error:#}"));
    }
    if json {
        crate::report::print_json(&report)?;
    } else {
        print!("{}", report.human());
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subcommand_is_named_after_its_product() {
        use clap::Subcommand;
        let connect = Command::augment_subcommands(clap::Command::new("connect"));
        let names: Vec<&str> = connect.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(names, PRODUCTS);
    }
}
