//! An SVG picture of a 2-D partition: regions filled with a colour derived from their
//! activation pattern, the decision boundary drawn on top (what SplineCam shows).

use std::fmt::Write;

use tessera_core::{check, RejectInput};

use crate::error::{Error, Result};
use crate::geometry::Point;
use crate::partition::Partition2d;

/// How to draw a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgOptions {
    /// Width of the picture in pixels (the height follows the domain's aspect ratio).
    pub width: u32,
    /// Draw region edges (thin grey lines).
    pub region_edges: bool,
    /// Stroke width of the decision boundary in pixels.
    pub boundary_width: f64,
    /// Points to mark (e.g. the inputs the plane goes through: `(0,0)`, `(1,0)`, `(0,1)`).
    pub markers: Vec<Point>,
    /// A title written above the picture (optional).
    pub title: Option<String>,
}

impl Default for SvgOptions {
    fn default() -> Self {
        Self {
            width: 600,
            region_edges: true,
            boundary_width: 2.0,
            markers: Vec::new(),
            title: None,
        }
    }
}

/// A colour per pattern: FNV-1a of its words, spread over hues with moderate lightness.
fn pattern_colour(pattern: &[u64]) -> (u8, u8, u8) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in pattern {
        for byte in w.to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let hue = (h % 360) as f64;
    let sat = 0.45 + 0.3 * ((h >> 16) % 100) as f64 / 100.0;
    let light = 0.55 + 0.25 * ((h >> 32) % 100) as f64 / 100.0;
    hsl_to_rgb(hue, sat, light)
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

impl Partition2d {
    /// The partition as a self-contained SVG document (`u₁` to the right, `u₂` up).
    pub fn to_svg(&self, options: &SvgOptions) -> Result<String> {
        check::positive_size("width", options.width as usize)?;
        check::size_at_most("width", options.width as usize, 100_000)?;
        check::positive("boundary_width", options.boundary_width)?;
        let (lo, hi) = self.domain().bounding_box();
        let (du, dv) = (hi[0] - lo[0], hi[1] - lo[1]);
        if !(du > 0.0 && dv > 0.0) {
            return Err(Error::invalid(
                "domain",
                format!("{lo:?}..{hi:?}"),
                "has no area",
            ));
        }
        let margin = 10.0;
        let title_h = if options.title.is_some() { 24.0 } else { 0.0 };
        let w = f64::from(options.width);
        let scale = (w - 2.0 * margin) / du;
        let h = dv * scale + 2.0 * margin + title_h;
        let px = |u: Point| -> (f64, f64) {
            (
                margin + (u[0] - lo[0]) * scale,
                title_h + margin + (hi[1] - u[1]) * scale,
            )
        };
        let mut s = String::new();
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.1} {h:.1}">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        if let Some(t) = &options.title {
            let escaped = t
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let _ = writeln!(
                s,
                r#"<text x="{margin}" y="18" font-family="sans-serif" font-size="14">{escaped}</text>"#
            );
        }
        let stroke = if options.region_edges {
            r##"stroke="#555" stroke-width="0.3""##
        } else {
            r#"stroke="none""#
        };
        let _ = writeln!(s, r#"<g {stroke} stroke-linejoin="round">"#);
        for region in self.regions() {
            let (r, g, b) = pattern_colour(region.pattern());
            let points: Vec<String> = region
                .polygon()
                .vertices()
                .iter()
                .map(|&u| {
                    let (x, y) = px(u);
                    format!("{x:.2},{y:.2}")
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polygon points="{}" fill="rgb({r},{g},{b})"/>"#,
                points.join(" ")
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(
            s,
            r#"<g stroke="black" stroke-width="{}" stroke-linecap="round">"#,
            options.boundary_width
        );
        for seg in self.decision_boundary() {
            let (x1, y1) = px(seg[0]);
            let (x2, y2) = px(seg[1]);
            let _ = writeln!(
                s,
                r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}"/>"#
            );
        }
        let _ = writeln!(s, "</g>");
        for &m in &options.markers {
            let (x, y) = px(m);
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.2}" cy="{y:.2}" r="4" fill="white" stroke="black" stroke-width="1.5"/>"#
            );
        }
        let outline: Vec<String> = self
            .domain()
            .vertices()
            .iter()
            .map(|&u| {
                let (x, y) = px(u);
                format!("{x:.2},{y:.2}")
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polygon points="{}" fill="none" stroke="black" stroke-width="1"/>"#,
            outline.join(" ")
        );
        s.push_str("</svg>\n");
        Ok(s)
    }
}
