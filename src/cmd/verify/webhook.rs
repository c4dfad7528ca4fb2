//! `cityd verify webhook [--channel NAME]... [--json]`: post a uniquely tagged message through
//! each channel's incoming webhook (URL from the vault) and read it back from the channel through
//! the API within a deadline. Used by the lab and the NixOS VM tests.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Context;
use crate::cmd::wire::{ServerArgs, parse_duration};
use crate::exit::{self, Failure};
use crate::mattermost::ApiClient;
use crate::mattermost::ready::wait_until_ready;
use crate::mattermost::transport::{Scheme, hook_client, parse_base_url};
use crate::mattermost::webhook_check::{self, Addressing, Delivery};
use crate::mattermost::wiring::desired::hook_vault_name;
use crate::secrets::Vault;

#[derive(Debug, clap::Args)]
#[command(
    about = "Post a tagged message through each channel's incoming webhook and read it back",
    long_about = "For each channel with a webhook in the city (or each --channel), post a uniquely tagged \
message through the incoming webhook whose URL `cityd wire` stored in the vault, then read the channel \
through the API (local socket, or --url with --token-file) until the message shows up. Exits 1 when any \
channel fails.\n\nThe stored URL names the SiteURL's host (e.g. mattermost.cicd.local:8065). When that \
name does not resolve where this runs, --base-url replaces the scheme and host:port (the /hooks/<id> \
path is kept): https://192.168.1.20:8065 works with the city certificate, which carries the LAN IP. \
HTTPS trusts only <state>/pki/ca.pem; http:// URLs (a test server) are posted to in plain HTTP."
)]
pub struct Args {
    /// Channel to check (repeatable). Default: every channel with a webhook in the city.
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Post to this scheme://host:port instead of the SiteURL's (the hook path is kept).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// How long each message may take to appear in its channel.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub deadline: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Outcome {
    channel: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<Delivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let hooked: Vec<&str> = city.webhooks.iter().map(|h| h.channel.as_str()).collect();
    let channels: Vec<String> = if args.channels.is_empty() {
        hooked.iter().map(|c| c.to_string()).collect()
    } else {
        args.channels
            .iter()
            .map(|c| c.trim_start_matches('#').to_string())
            .collect()
    };
    if channels.is_empty() {
        return Err(Failure::new(
            exit::BAD_INPUT,
            format!(
                "{} has no [[webhooks]]: nothing to verify",
                ctx.city_origin()
            ),
        )
        .into());
    }
    for c in &channels {
        if !hooked.contains(&c.as_str()) {
            return Err(Failure::new(
                exit::BAD_INPUT,
                format!(
                    "#{c} has no webhook in {}; channels with webhooks: {}",
                    ctx.city_origin(),
                    hooked.join(", ")
                ),
            )
            .into());
        }
    }
    let base_override = args
        .base_url
        .as_deref()
        .map(parse_base_url)
        .transpose()
        .map_err(|e| Failure::new(exit::BAD_INPUT, format!("--base-url: {e}")))?;
    let vault = Vault::new(state);
    let mut stored = Vec::new();
    for c in &channels {
        let name = hook_vault_name(c);
        let url = vault.read(&name)?.ok_or_else(|| {
            Failure::new(
                exit::FAILED,
                format!(
                    "#{c}: no webhook URL in the vault ({}); run `cityd wire` first",
                    vault.path_of(&name).display()
                ),
            )
        })?;
        stored.push((c.clone(), name, url));
    }
    // The CA is needed only when some post goes over HTTPS.
    let needs_tls = stored.iter().any(|(_, _, url)| {
        let scheme = base_override
            .as_ref()
            .map(|b| b.scheme)
            .or_else(|| parse_base_url(url.expose()).ok().map(|u| u.scheme));
        scheme == Some(Scheme::Https)
    });
    let ca = state.ca_pem();
    let hook_http = hook_client(needs_tls.then_some(ca.as_path()), Duration::from_secs(30))?;
    let target = args.server.target(state)?;
    let addressing = Addressing { base_override };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcomes = runtime.block_on(async {
        let api = ApiClient::new(target)?;
        wait_until_ready(&api, args.server.timeout).await?;
        let mut outcomes = Vec::new();
        for (channel, vault_name, url) in &stored {
            let result = webhook_check::check(
                &api,
                &hook_http,
                &addressing,
                &city.team.name,
                channel,
                vault_name,
                url,
                args.deadline,
            )
            .await;
            outcomes.push(match result {
                Ok(d) => Outcome {
                    channel: channel.clone(),
                    ok: true,
                    delivery: Some(d),
                    error: None,
                },
                Err(e) => Outcome {
                    channel: channel.clone(),
                    ok: false,
                    delivery: None,
                    error: Some(e.to_string()),
                },
            });
        }
        anyhow::Ok(outcomes)
    })?;

    if args.json {
        crate::cmd::print_json(&outcomes)?;
    } else {
        for o in &outcomes {
            match (&o.delivery, &o.error) {
                (Some(d), _) => {
                    let via = if d.posted_to == d.site_address {
                        format!("to {}", d.site_address)
                    } else {
                        format!(
                            "to {} (the SiteURL names {}; --base-url)",
                            d.posted_to, d.site_address
                        )
                    };
                    println!(
                        "ok    #{:<14} posted through the webhook {via}, read back in {:.2}s",
                        d.channel, d.seconds
                    );
                }
                (_, Some(e)) => println!("FAIL  {e}"),
                _ => {}
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    if failed > 0 {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "webhook delivery failed for {failed} of {} channel(s)",
                outcomes.len()
            ),
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
