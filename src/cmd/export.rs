//! `cityd export k8s | rtcd | turn-fleet --out DIR [--sizing USERS]`: the city's inputs for the
//! engines that scale past one host (the Mattermost Operator, rtcd, a coturn fleet), written into
//! DIR (files holding secrets 0600, with a warning on how to seal them), and a sizing estimate.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::Context;
use crate::exit::{self, Failure};
use crate::export::k8s::{self, FileStore, Options, TlsSource};
use crate::export::sizing::{self, CallMix, Estimate};
use crate::export::{Exported, rtcd, turn_fleet};
use crate::render::Inputs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manifests for a cluster with the Mattermost Operator: the Mattermost resource, the Secrets
    /// from the vault, coturn on the host network and rtcd (apply with `kubectl apply -n NS -f DIR`).
    K8s(Box<K8sArgs>),
    /// The env file of a standalone rtcd next to the appliance, and the Calls setting that points
    /// Mattermost at it.
    Rtcd(RtcdArgs),
    /// coturn configurations for N TURN servers sharing the secret, and the ICE list naming them all.
    TurnFleet(FleetArgs),
}

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Directory to write into (created 0700: some files hold secrets).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// List the files that would be written or changed, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the files written, their outcome, whether they hold secrets (and the estimate) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SizingArgs {
    /// Estimate the operator size preset, rtcd instances and media bandwidth for this many users,
    /// from Mattermost's published load figures (an estimate, said so in the output).
    #[arg(long, value_name = "USERS")]
    pub sizing: Option<u64>,
    /// Call mix for the estimate: concurrent calls (default: one per 100 users).
    #[arg(long, value_name = "N", requires = "sizing")]
    pub calls: Option<u64>,
    /// Call mix: participants per call.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "sizing")]
    pub participants: u64,
    /// Call mix: unmuted speakers per call.
    #[arg(long, value_name = "N", default_value_t = 2, requires = "sizing")]
    pub unmuted: u64,
    /// Call mix: concurrent calls with a screen share.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "sizing")]
    pub screen_sharing: u64,
    /// vCPUs of one rtcd instance.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "sizing")]
    pub rtcd_vcpus: u32,
}

impl SizingArgs {
    fn estimate(&self) -> anyhow::Result<Option<Estimate>> {
        let Some(users) = self.sizing else {
            return Ok(None);
        };
        let mix = CallMix {
            calls: self.calls.unwrap_or(users.div_ceil(100)),
            participants: self.participants,
            unmuted: self.unmuted,
            screen_sharing: self.screen_sharing,
            rtcd_vcpus: self.rtcd_vcpus,
        };
        Ok(Some(sizing::estimate(users, mix)?))
    }
}

#[derive(Debug, clap::Args)]
pub struct K8sArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Name of the Mattermost resource; the other objects are NAME-db, NAME-rtcd, ...
    #[arg(long, default_value = k8s::DEFAULT_NAME, value_name = "NAME")]
    pub name: String,
    /// Let cert-manager issue the ingress certificate from this issuer, instead of the city PKI's
    /// server certificate.
    #[arg(long, value_name = "ISSUER")]
    pub cert_manager_issuer: Option<String>,
    /// The cert-manager issuer is a namespaced Issuer (default: a ClusterIssuer).
    #[arg(long, requires = "cert_manager_issuer")]
    pub namespaced_issuer: bool,
    /// Operator size preset (100users, 1000users, 5000users, 10000users, 25000users). Default:
    /// one replica, as the appliance (more needs an Enterprise licence), or --sizing's preset.
    #[arg(long, value_name = "PRESET")]
    pub size: Option<String>,
    /// Mattermost app replicas (overrides the size's).
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Secret holding the Mattermost licence (needed for more than one replica and for rtcd).
    #[arg(long, value_name = "SECRET")]
    pub license_secret: Option<String>,
    #[arg(long, value_name = "CLASS")]
    pub ingress_class: Option<String>,
    /// Size of the file store's PersistentVolumeClaim (when no S3 store is given).
    #[arg(long, default_value = "50Gi", value_name = "QUANTITY")]
    pub file_store_size: String,
    /// S3 or MinIO endpoint for the file store (with --s3-bucket and --s3-secret).
    #[arg(long, value_name = "URL", requires_all = ["s3_bucket", "s3_secret"])]
    pub s3_url: Option<String>,
    #[arg(long, value_name = "BUCKET", requires = "s3_url")]
    pub s3_bucket: Option<String>,
    /// Your Secret with keys accesskey and secretkey.
    #[arg(long, value_name = "SECRET", requires = "s3_url")]
    pub s3_secret: Option<String>,
    #[arg(long, default_value = k8s::DEFAULT_RTCD_IMAGE, value_name = "IMAGE")]
    pub rtcd_image: String,
    /// rtcd pods, one per node (default: 1, or --sizing's estimate).
    #[arg(long, value_name = "N")]
    pub rtcd_replicas: Option<u32>,
    /// rtcd's media port, UDP and TCP (default: mattermost.calls_port).
    #[arg(long, value_name = "PORT")]
    pub ice_port: Option<u16>,
    /// Address where Calls media is published (the nodes running rtcd), which coturn's peer
    /// policy must allow; repeat for several. Default: the city's LAN addresses.
    #[arg(long, value_name = "IP")]
    pub media_address: Vec<IpAddr>,
    /// Run coturn as a Deployment of N replicas (default: a DaemonSet, one per node).
    #[arg(long, value_name = "N")]
    pub coturn_replicas: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct RtcdArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// rtcd's media port, UDP and TCP (default: mattermost.calls_port; on the appliance's own host
    /// pick another, since the Mattermost container publishes that one).
    #[arg(long, value_name = "PORT")]
    pub ice_port: Option<u16>,
}

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// How many TURN servers (default: as many as turn.servers lists; the names are
    /// turn<i>.<domain> when it lists none).
    #[arg(long, value_name = "N")]
    pub servers: Option<usize>,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    exported: &'a Exported,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sizing: Option<&'a Estimate>,
    next: Vec<String>,
}

fn bad_input(message: impl Into<String>) -> anyhow::Error {
    Failure::new(exit::BAD_INPUT, message).into()
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    let lan = ctx.lan_addresses()?;
    let origin = ctx.city_origin();
    let inputs = Inputs {
        city: ctx.city()?,
        lan: &lan,
        origin: &origin,
    };
    let vault = ctx.vault()?;
    match command {
        Command::K8s(args) => {
            let estimate = args.sizing.estimate()?;
            if args.size.as_deref().is_some_and(|s| !sizing::is_preset(s)) {
                return Err(bad_input(
                    "--size must be one of 100users, 1000users, 5000users, 10000users, 25000users",
                ));
            }
            let size = args
                .size
                .clone()
                .or_else(|| estimate.as_ref().map(|e| e.operator_size.name.clone()));
            let options = Options {
                name: args.name.clone(),
                tls: match &args.cert_manager_issuer {
                    Some(issuer) => TlsSource::CertManager {
                        issuer: issuer.clone(),
                        cluster_issuer: !args.namespaced_issuer,
                    },
                    None => TlsSource::CityPki,
                },
                size,
                replicas: args.replicas,
                license_secret: args.license_secret.clone(),
                ingress_class: args.ingress_class.clone(),
                file_store: match (&args.s3_url, &args.s3_bucket, &args.s3_secret) {
                    (Some(url), Some(bucket), Some(secret)) => FileStore::S3 {
                        url: url.clone(),
                        bucket: bucket.clone(),
                        secret: secret.clone(),
                    },
                    _ => FileStore::Local {
                        size: args.file_store_size.clone(),
                    },
                },
                rtcd_image: args.rtcd_image.clone(),
                rtcd_replicas: args
                    .rtcd_replicas
                    .or(estimate.as_ref().map(|e| e.rtcd_instances))
                    .unwrap_or(1),
                ice_port: args.ice_port.unwrap_or(inputs.city.mattermost.calls_port),
                media_addresses: if args.media_address.is_empty() {
                    lan.clone()
                } else {
                    args.media_address.clone()
                },
                coturn_replicas: args.coturn_replicas,
            };
            k8s::check_name(&options.name).map_err(bad_input)?;
            let state = ctx.state()?;
            let exported = k8s::export(
                &inputs,
                state,
                &vault,
                &options,
                &args.output.out,
                args.output.dry_run,
            )?;
            let mut next = vec![format!(
                "kubectl apply -n NAMESPACE -f {} (the Mattermost Operator must be installed)",
                args.output.out.display()
            )];
            let replicas = options.replicas.unwrap_or(1) > 1
                || estimate
                    .as_ref()
                    .is_some_and(|e| e.needs_enterprise_licence)
                || options.size.is_some();
            if options.license_secret.is_none() {
                next.push(format!(
                    "{} an Enterprise licence: create a Secret with it and re-export with --license-secret",
                    if replicas {
                        "rtcd and more than one replica need"
                    } else {
                        "rtcd needs"
                    }
                ));
            }
            if inputs.city.turn.servers.is_empty() {
                next.push(
                    "Calls hands clients the city's TURN servers, now its LAN addresses: list the names \
                     the cluster's coturn nodes answer on in turn.servers and export again"
                        .to_string(),
                );
            }
            print(&args.output, &exported, Vec::new(), estimate.as_ref(), next)
        }
        Command::Rtcd(args) => {
            let estimate = args.sizing.estimate()?;
            let ice_port = args.ice_port.unwrap_or(inputs.city.mattermost.calls_port);
            let exported = rtcd::export(
                &inputs,
                &vault,
                ice_port,
                &args.output.out,
                args.output.dry_run,
            )?;
            let next = vec![
                format!(
                    "docker run -d --name rtcd --network host --env-file {} {}",
                    args.output.out.join("rtcd.env").display(),
                    k8s::DEFAULT_RTCD_IMAGE
                ),
                format!(
                    "point Mattermost at it: set rtcd_url = \"{}\" under [mattermost] in the city description, then `cityd up`",
                    rtcd::service_url(&inputs)
                ),
            ];
            print(&args.output, &exported, Vec::new(), estimate.as_ref(), next)
        }
        Command::TurnFleet(args) => {
            let (servers, exported) = turn_fleet::export(
                &inputs,
                &vault,
                args.servers,
                &args.output.out,
                args.output.dry_run,
            )?;
            let next = vec![
                "run one coturn per server with its turnserver-<i>.conf (`turnserver -c FILE`)"
                    .to_string(),
                format!(
                    "hand the fleet to Calls: set servers = {:?} under [turn] in the city description, then `cityd up`",
                    servers
                ),
            ];
            print(&args.output, &exported, servers, None, next)
        }
    }
}

fn print(
    output: &OutputArgs,
    exported: &Exported,
    servers: Vec<String>,
    sizing: Option<&Estimate>,
    next: Vec<String>,
) -> anyhow::Result<ExitCode> {
    if output.json {
        crate::report::print_json(&Report {
            exported,
            servers,
            sizing,
            next,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    for w in &exported.files {
        println!(
            "{:<13} {}{}",
            w.outcome.as_str(),
            w.path.display(),
            if w.secret {
                "  (holds secrets, 0600)"
            } else {
                ""
            }
        );
    }
    if exported
        .files
        .iter()
        .all(|w| !w.outcome.changes_something())
    {
        println!("no changes");
    }
    if let Some(warning) = &exported.warning {
        eprintln!("warning: {warning}");
    }
    if let Some(estimate) = sizing {
        print!("{}", estimate.text());
    }
    for step in &next {
        println!("next: {step}");
    }
    Ok(ExitCode::SUCCESS)
}
