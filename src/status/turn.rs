//! coturn's line: a real TURN probe (`crate::turn::probe`) against the first LAN address: an
//! allocation with a credential minted from the vault's static secret, a relayed round trip to
//! the probe's own peer, then the release, with its time.

use std::sync::Arc;
use std::time::Duration;

use super::{Inputs, Line};
use crate::secrets::SecretName;
use crate::turn::diagnosis::Verdict;
use crate::turn::link::Transport;
use crate::turn::probe::{self, ProbeConfig, Timing};

pub async fn lines(inputs: &Inputs<'_>) -> Vec<Line> {
    let port = inputs.city.turn.port;
    let Some(ip) = inputs.lan.first() else {
        return vec![Line::red(
            "coturn",
            "turn",
            "no LAN address to probe",
            "set [lan] addresses",
        )];
    };
    let server = std::net::SocketAddr::new(*ip, port);
    let Ok(secret) = inputs.vault.get(SecretName::TurnStaticAuthSecret) else {
        return vec![Line::red(
            "coturn",
            "turn",
            "no TURN secret in the vault",
            "`cityd secrets ensure`, then `cityd up`",
        )];
    };
    let request = crate::turn::probe_setup::ProbeRequest {
        server,
        transport: Transport::Udp,
        peer: None,
        user: "cityd-status".into(),
        rto: Duration::from_millis(100),
        deadline: inputs.turn_deadline,
        expired: false,
    };
    let mut cfg: ProbeConfig = match crate::turn::probe_setup::config(
        &request,
        &crate::turn::probe_setup::Credential::Minted(secret),
    ) {
        Ok(c) => c,
        Err(e) => {
            return vec![Line::red(
                "coturn",
                "turn",
                e.to_string(),
                "`cityd secrets ensure`",
            )];
        }
    };
    cfg.timing = Timing {
        rto: Duration::from_millis(100),
        max_sends: 4,
        final_wait_factor: 4,
        tcp_timeout: inputs.turn_deadline,
        data_wait: Duration::from_millis(300),
        data_attempts: 2,
        deadline: inputs.turn_deadline,
    };
    let report = probe::run(&cfg, Arc::new(|_: &str| {})).await;
    if report.verdict == Verdict::RelayWorks {
        vec![Line::green(
            "coturn",
            format!("turn {server}"),
            format!(
                "listening; allocation and relayed round trip in {:.0} ms",
                report.total_ms
            ),
        )]
    } else {
        vec![Line::red(
            "coturn",
            format!("turn {server}"),
            format!("{} after {:.0} ms", report.summary, report.total_ms),
            format!(
                "{} (`cityd up` starts coturn; `cityd turn probe` shows every step)",
                report.diagnosis.trim()
            ),
        )]
    }
}
