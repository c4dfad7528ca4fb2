//! The certificate line: the leaf Mattermost presents, its SANs, days left, and whether every
//! LAN address the city resolves to now is still in it (DHCP moves addresses; phones connect by
//! address).

use super::{Inputs, Line};

pub fn lines(inputs: &Inputs<'_>) -> Vec<Line> {
    let fix_reissue = "`cityd up` (or `cityd pki ensure`) re-issues the leaf with the current addresses; phones keep trusting the same CA";
    let summary = match crate::pki::inspect(inputs.state) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return vec![Line::red(
                "certificate",
                "server",
                "no PKI yet",
                "`cityd up` (or `cityd pki ensure`) creates the CA and the server certificate",
            )];
        }
        Err(e) => {
            return vec![Line::red(
                "certificate",
                "server",
                format!("{e}"),
                "`cityd pki show` explains; `cityd pki ensure` repairs",
            )];
        }
    };
    let Some(leaf) = summary.server else {
        return vec![Line::red(
            "certificate",
            "server",
            "no server certificate",
            fix_reissue,
        )];
    };
    let mut lines = Vec::new();
    let days = leaf.days_left;
    let text = format!("{} days left, SANs {}", days, leaf.sans.entries().join(" "));
    lines.push(if days < 0 {
        Line::red(
            "certificate",
            "server",
            format!("expired; {text}"),
            fix_reissue,
        )
    } else if days < crate::pki::RENEW_BELOW_DAYS {
        Line::yellow("certificate", "server", text, fix_reissue)
    } else {
        Line::green("certificate", "server", text)
    });
    let missing: Vec<String> = inputs
        .lan
        .iter()
        .filter(|ip| !leaf.sans.ip.contains(ip))
        .map(ToString::to_string)
        .collect();
    lines.push(if missing.is_empty() {
        Line::green(
            "certificate",
            "lan address",
            format!(
                "{} in the certificate",
                inputs
                    .lan
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        Line::red(
            "certificate",
            "lan address",
            format!(
                "the LAN address {} is not in the certificate: phones connecting by address fail the handshake",
                missing.join(", ")
            ),
            fix_reissue,
        )
    });
    lines
}
