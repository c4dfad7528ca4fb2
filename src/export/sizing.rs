//! `--sizing USERS`: an estimate (never a promise) of the operator's size preset, the number of
//! rtcd instances and the media bandwidth for a call mix, derived from the figures Mattermost
//! publishes (`sizing_figures.toml`, each table naming its source).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::exit::{BAD_INPUT, ExitCoded};

const FIGURES_TOML: &str = include_str!("sizing_figures.toml");

/// Share of an rtcd instance's CPU the estimate plans to use, leaving headroom for bursts.
pub const TARGET_CPU_SHARE: f64 = 0.7;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    pub operator: OperatorFigures,
    pub rtcd: RtcdFigures,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorFigures {
    pub source: String,
    pub sizes: Vec<OperatorSize>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSize {
    pub name: String,
    pub users: u64,
    pub replicas: u32,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtcdFigures {
    pub source: String,
    pub integrated_sfu_max_participants: u64,
    pub udp_buffer_bytes: u64,
    pub runs: Vec<RtcdRun>,
}

/// One published rtcd load test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtcdRun {
    pub instance: String,
    pub vcpus: u32,
    pub calls: u64,
    pub participants: u64,
    #[serde(default)]
    pub unmuted: Option<u64>,
    pub screen_sharing: bool,
    pub cpu_percent: f64,
    #[serde(default)]
    pub out_mbps: Option<f64>,
}

impl RtcdRun {
    fn vcpus_used(&self) -> f64 {
        f64::from(self.vcpus) * self.cpu_percent / 100.0
    }
}

/// The figures compiled into the binary.
pub fn figures() -> &'static Figures {
    static FIGURES: OnceLock<Figures> = OnceLock::new();
    FIGURES.get_or_init(|| toml::from_str(FIGURES_TOML).expect("sizing_figures.toml is valid"))
}

/// Whether `name` is one of the operator's size presets (`5000users`).
pub fn is_preset(name: &str) -> bool {
    figures().operator.sizes.iter().any(|p| p.name == name)
}

/// Audio streams an SFU forwards for a call mix: each participant receives every unmuted
/// speaker but itself.
fn audio_streams(calls: u64, participants: u64, unmuted: u64) -> u64 {
    calls * participants * unmuted.min(participants.saturating_sub(1))
}

/// Rates derived from the published runs.
#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    /// Forwarded audio streams one vCPU carries (the least of the audio-only runs: small calls cost more per stream).
    pub audio_streams_per_vcpu: f64,
    /// Outbound kbit/s per forwarded audio stream.
    pub audio_kbps_per_stream: f64,
    /// Screen-share receivers one vCPU carries (the screen-sharing run, charged wholly to screen sharing).
    pub screen_receivers_per_vcpu: f64,
    /// Outbound kbit/s per screen-share receiver.
    pub screen_kbps_per_receiver: f64,
}

pub fn rates(figures: &Figures) -> Rates {
    let mut audio_per_vcpu = f64::INFINITY;
    let mut audio_kbps = 0.0_f64;
    let mut screen_per_vcpu = f64::INFINITY;
    let mut screen_kbps = 0.0_f64;
    for run in &figures.rtcd.runs {
        if run.screen_sharing {
            let receivers = (run.calls * run.participants.saturating_sub(1)) as f64;
            screen_per_vcpu = screen_per_vcpu.min(receivers / run.vcpus_used());
            if let Some(mbps) = run.out_mbps {
                screen_kbps = screen_kbps.max(mbps * 1000.0 / receivers);
            }
        } else {
            let streams =
                audio_streams(run.calls, run.participants, run.unmuted.unwrap_or(1)) as f64;
            audio_per_vcpu = audio_per_vcpu.min(streams / run.vcpus_used());
            if let Some(mbps) = run.out_mbps {
                audio_kbps = audio_kbps.max(mbps * 1000.0 / streams);
            }
        }
    }
    Rates {
        audio_streams_per_vcpu: audio_per_vcpu,
        audio_kbps_per_stream: audio_kbps,
        screen_receivers_per_vcpu: screen_per_vcpu,
        screen_kbps_per_receiver: screen_kbps,
    }
}

/// The call mix the estimate is for; defaults are assumptions the output states.
#[derive(Debug, Clone, Serialize)]
pub struct CallMix {
    /// Concurrent calls.
    pub calls: u64,
    pub participants: u64,
    /// Unmuted speakers per call.
    pub unmuted: u64,
    /// Concurrent calls with a screen share.
    pub screen_sharing: u64,
    /// vCPUs of one rtcd instance.
    pub rtcd_vcpus: u32,
}

#[derive(Debug, Error)]
pub enum SizingError {
    #[error("--sizing needs at least one user; give the number of users the city will serve")]
    NoUsers,
    #[error("--{flag} must be at least {min}")]
    TooSmall { flag: &'static str, min: u64 },
    #[error("--screen-sharing ({screen}) cannot exceed --calls ({calls})")]
    ScreenOverCalls { screen: u64, calls: u64 },
}

impl ExitCoded for SizingError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

/// The estimate, with the figures and assumptions it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Always true: this is an estimate from published load tests, not a measurement of this city.
    pub is_estimate: bool,
    pub users: u64,
    pub operator_size: OperatorSize,
    /// More users than the largest published preset.
    pub beyond_presets: bool,
    /// High availability (more than one app replica) needs an Enterprise licence.
    pub needs_enterprise_licence: bool,
    pub call_mix: CallMix,
    pub audio_streams: u64,
    pub screen_receivers: u64,
    pub rtcd_vcpus_needed: f64,
    pub rtcd_instances: u32,
    pub out_mbps: f64,
    /// Calls larger than the integrated SFU's recommended size need rtcd.
    pub rtcd_required: bool,
    pub udp_buffer_bytes: u64,
    pub rates: Rates,
    pub sources: Vec<String>,
    pub notes: Vec<String>,
}

/// Estimates for `users` and a call mix.
pub fn estimate(users: u64, mix: CallMix) -> Result<Estimate, SizingError> {
    if users == 0 {
        return Err(SizingError::NoUsers);
    }
    for (flag, value, min) in [
        ("calls", mix.calls, 1),
        ("participants", mix.participants, 2),
        ("rtcd-vcpus", u64::from(mix.rtcd_vcpus), 1),
    ] {
        if value < min {
            return Err(SizingError::TooSmall { flag, min });
        }
    }
    if mix.screen_sharing > mix.calls {
        return Err(SizingError::ScreenOverCalls {
            screen: mix.screen_sharing,
            calls: mix.calls,
        });
    }
    let figures = figures();
    let rates = rates(figures);
    let sizes = &figures.operator.sizes;
    let fitting = sizes.iter().find(|s| s.users >= users);
    let operator_size = fitting
        .or(sizes.last())
        .expect("the figures list operator sizes")
        .clone();
    let audio = audio_streams(mix.calls, mix.participants, mix.unmuted);
    let screen = mix.screen_sharing * (mix.participants - 1);
    let vcpus = audio as f64 / rates.audio_streams_per_vcpu
        + screen as f64 / rates.screen_receivers_per_vcpu;
    let per_instance = f64::from(mix.rtcd_vcpus) * TARGET_CPU_SHARE;
    let instances = ((vcpus / per_instance).ceil() as u32).max(1);
    let out_kbps =
        audio as f64 * rates.audio_kbps_per_stream + screen as f64 * rates.screen_kbps_per_receiver;
    let rtcd_required = mix.participants > figures.rtcd.integrated_sfu_max_participants;
    let mut notes = vec![
        "An estimate from Mattermost's published load tests, not a measurement of this city: load-test your own call mix before committing hardware.".to_string(),
        format!(
            "rtcd instances plan for {:.0}% CPU on {} vCPU each; one rtcd per node, spread by DNS (the RTCD service URL resolving to every instance).",
            TARGET_CPU_SHARE * 100.0,
            mix.rtcd_vcpus
        ),
        "Screen-share receivers are charged at the screen-sharing run's full cost, their audio on top: the figure errs high.".to_string(),
    ];
    if fitting.is_none() {
        notes.push(format!(
            "{users} users is beyond the largest published operator preset ({}); size the app replicas and database yourself.",
            operator_size.name
        ));
    }
    if rtcd_required {
        notes.push(format!(
            "calls of {} participants exceed the integrated SFU's recommended {}: use rtcd.",
            mix.participants, figures.rtcd.integrated_sfu_max_participants
        ));
    }
    Ok(Estimate {
        is_estimate: true,
        users,
        needs_enterprise_licence: operator_size.replicas > 1,
        beyond_presets: fitting.is_none(),
        operator_size,
        call_mix: mix,
        audio_streams: audio,
        screen_receivers: screen,
        rtcd_vcpus_needed: (vcpus * 100.0).round() / 100.0,
        rtcd_instances: instances,
        out_mbps: (out_kbps / 10.0).round() / 100.0,
        rtcd_required,
        udp_buffer_bytes: figures.rtcd.udp_buffer_bytes,
        rates,
        sources: vec![figures.operator.source.clone(), figures.rtcd.source.clone()],
        notes,
    })
}

impl Estimate {
    /// The estimate as text lines for a terminal.
    pub fn text(&self) -> String {
        let mix = &self.call_mix;
        let size = &self.operator_size;
        let mut out = format!(
            "ESTIMATE for {} users (from published figures, not a measurement):\n\
             \x20 operator size preset: {} ({} app replica(s), {} CPU / {} memory requested each, limits {} / {}){}\n\
             \x20 call mix: {} concurrent call(s) of {} participants, {} unmuted, {} with screen sharing\n\
             \x20 rtcd: {} instance(s) of {} vCPU ({:.2} vCPU of media work; {} audio streams, {} screen receivers)\n\
             \x20 media bandwidth out of rtcd: about {:.1} Mbit/s\n\
             \x20 UDP buffers on rtcd hosts: net.core.rmem_max = net.core.wmem_max = {}\n",
            self.users,
            size.name,
            size.replicas,
            size.cpu_request,
            size.memory_request,
            size.cpu_limit,
            size.memory_limit,
            if self.needs_enterprise_licence {
                "; more than one replica needs an Enterprise licence"
            } else {
                ""
            },
            mix.calls,
            mix.participants,
            mix.unmuted,
            mix.screen_sharing,
            self.rtcd_instances,
            mix.rtcd_vcpus,
            self.rtcd_vcpus_needed,
            self.audio_streams,
            self.screen_receivers,
            self.out_mbps,
            self.udp_buffer_bytes,
        );
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        for source in &self.sources {
            out.push_str(&format!("  source: {source}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(calls: u64, participants: u64, unmuted: u64, screen: u64) -> CallMix {
        CallMix {
            calls,
            participants,
            unmuted,
            screen_sharing: screen,
            rtcd_vcpus: 4,
        }
    }

    #[test]
    fn rates_come_from_the_published_runs() {
        let r = rates(figures());
        // 1000 calls x 2 on 78% of 8 vCPU: 2000 streams / 6.24 vCPU (the costlier audio run).
        assert!(
            (r.audio_streams_per_vcpu - 2000.0 / 6.24).abs() < 0.01,
            "{r:?}"
        );
        // 194 Mbps for 1000 participants hearing 2 speakers.
        assert!((r.audio_kbps_per_stream - 97.0).abs() < 0.01, "{r:?}");
        // 7.17 Gbps for 4 x 999 receivers.
        assert!(
            (r.screen_kbps_per_receiver - 7_170_000.0 / 3996.0).abs() < 0.01,
            "{r:?}"
        );
        assert!(
            (r.screen_receivers_per_vcpu - 3996.0 / 13.28).abs() < 0.01,
            "{r:?}"
        );
    }

    #[test]
    fn a_published_run_is_estimated_within_its_own_figures() {
        // The c7i.xlarge run: 1 call x 1000, 2 unmuted, 194 Mbps.
        let e = estimate(5000, mix(1, 1000, 2, 0)).unwrap();
        assert!(e.is_estimate);
        assert_eq!(e.audio_streams, 2000);
        assert!((e.out_mbps - 194.0).abs() < 0.1, "{e:?}");
        assert!(e.rtcd_required);
        assert_eq!(e.operator_size.name, "5000users");
        assert!(e.needs_enterprise_licence);
        assert!(e.text().starts_with("ESTIMATE"));
    }

    #[test]
    fn presets_are_picked_by_users_and_the_largest_is_flagged() {
        let small = estimate(80, mix(1, 5, 2, 0)).unwrap();
        assert_eq!(small.operator_size.name, "100users");
        assert!(!small.needs_enterprise_licence && !small.rtcd_required);
        assert_eq!(small.rtcd_instances, 1);
        assert_eq!(
            estimate(1001, mix(1, 5, 2, 0)).unwrap().operator_size.name,
            "5000users"
        );
        let huge = estimate(90_000, mix(100, 10, 2, 10)).unwrap();
        assert!(huge.beyond_presets);
        assert_eq!(huge.operator_size.name, "25000users");
        assert!(huge.notes.iter().any(|n| n.contains("beyond the largest")));
    }

    #[test]
    fn more_calls_need_more_rtcd_instances() {
        let few = estimate(1000, mix(10, 10, 2, 0)).unwrap();
        let many = estimate(1000, mix(1000, 10, 2, 100)).unwrap();
        assert!(many.rtcd_instances > few.rtcd_instances, "{few:?} {many:?}");
        assert!(many.out_mbps > few.out_mbps);
    }

    #[test]
    fn nonsense_mixes_are_bad_input() {
        assert!(matches!(
            estimate(0, mix(1, 2, 1, 0)),
            Err(SizingError::NoUsers)
        ));
        assert!(matches!(
            estimate(10, mix(1, 1, 1, 0)),
            Err(SizingError::TooSmall {
                flag: "participants",
                ..
            })
        ));
        assert!(matches!(
            estimate(10, mix(1, 2, 1, 2)),
            Err(SizingError::ScreenOverCalls { .. })
        ));
    }
}
