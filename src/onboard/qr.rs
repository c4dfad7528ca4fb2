//! QR codes: SVG for the page (the Mattermost URL) and half-block text for the terminal (the
//! page's URL), both from the `qrcode` crate.

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

fn code(text: &str) -> QrCode {
    // Medium error correction; URLs of a few dozen bytes always fit (version 40 holds 2 kB).
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .expect("a URL of under 2 kB fits in a QR code")
}

/// An SVG image of `text`, at least 240 px wide.
pub fn svg(text: &str) -> String {
    code(text)
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build()
}

/// `text` as a QR code of Unicode half blocks (two modules a character row), drawn for a dark
/// terminal background, the common default: the light modules are the printed blocks.
pub fn terminal(text: &str) -> String {
    code(text)
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_renderings_are_nonempty_and_the_svg_is_an_svg() {
        let s = super::svg("https://192.0.2.10:8065");
        assert!(s.contains("<svg") && s.contains("</svg>"), "{s}");
        let t = super::terminal("http://192.0.2.10:8090/");
        assert!(t.lines().count() > 10 && t.contains('█'), "{t}");
    }
}
