//! Pictures of masks as SVG heat maps.
//!
//! Written by hand rather than with plotters: a heat map is one `<rect>` per cell plus a
//! colour bar, the output is byte-for-byte deterministic (testable), and the mask crate stays
//! free of a plotting dependency (tessera-repro, which draws curves, has plotters).
//!
//! Colours diverge around 0 (blue below, white at 0, red above) on a scale symmetric in the
//! largest magnitude over all panels, so that heads are comparable and the sign of α shows.

use std::fmt::Write as _;

use ndarray::{ArrayView2, Axis};
use tessera_core::{Float, LogitMask};

use crate::mask::{mask_array, GaussianMixtureMask};
use crate::Result;

const MARGIN: f64 = 8.0;
const TITLE_HEIGHT: f64 = 18.0;
const BAR_WIDTH: f64 = 14.0;
const BAR_STEPS: usize = 32;

/// One panel of a heat map: a title and its values (NaN cells are drawn grey).
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// Caption above the panel.
    pub title: String,
    /// Values, row 0 at the top.
    pub values: ArrayView2<'a, f64>,
}

/// The colour of `t` ∈ [−1, 1] on the diverging blue–white–red scale.
fn colour(t: f64) -> String {
    if !t.is_finite() {
        return "#bbbbbb".to_owned();
    }
    let t = t.clamp(-1.0, 1.0);
    let (end, w) = if t < 0.0 {
        ((33.0, 102.0, 172.0), -t)
    } else {
        ((178.0, 24.0, 43.0), t)
    };
    let mix = |e: f64| (255.0 + (e - 255.0) * w).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(end.0), mix(end.1), mix(end.2))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Panels side by side, each cell a `cell × cell` square, with a shared colour bar.
pub fn heat_map_svg(panels: &[Panel<'_>], cell: f64) -> String {
    let cell = if cell.is_finite() && cell > 0.0 {
        cell
    } else {
        8.0
    };
    let limit = panels
        .iter()
        .flat_map(|p| p.values.iter())
        .filter(|v| v.is_finite())
        .fold(0.0_f64, |m, v| m.max(v.abs()));
    let limit = if limit > 0.0 { limit } else { 1.0 };
    let height_cells = panels
        .iter()
        .map(|p| p.values.len_of(Axis(0)))
        .max()
        .unwrap_or(0);
    let mut x = MARGIN;
    let mut body = String::new();
    for panel in panels {
        let (rows, cols) = panel.values.dim();
        let _ = writeln!(
            body,
            r#"<text x="{x:.1}" y="{:.1}" font-size="12">{}</text>"#,
            MARGIN + 12.0,
            escape(&panel.title)
        );
        let top = MARGIN + TITLE_HEIGHT;
        for r in 0..rows {
            for c in 0..cols {
                let _ = writeln!(
                    body,
                    r#"<rect x="{:.2}" y="{:.2}" width="{cell:.2}" height="{cell:.2}" fill="{}"/>"#,
                    x + c as f64 * cell,
                    top + r as f64 * cell,
                    colour(panel.values[[r, c]] / limit)
                );
            }
        }
        x += cols as f64 * cell + MARGIN * 2.0;
    }
    let bar_height = (height_cells as f64 * cell).max(60.0);
    let top = MARGIN + TITLE_HEIGHT;
    let step = bar_height / BAR_STEPS as f64;
    for i in 0..BAR_STEPS {
        let t = 1.0 - 2.0 * (i as f64 + 0.5) / BAR_STEPS as f64;
        let _ = writeln!(
            body,
            r#"<rect x="{x:.2}" y="{:.2}" width="{BAR_WIDTH}" height="{step:.2}" fill="{}"/>"#,
            top + i as f64 * step,
            colour(t)
        );
    }
    let label_x = x + BAR_WIDTH + 4.0;
    let _ = writeln!(
        body,
        r#"<text x="{label_x:.1}" y="{:.1}" font-size="10">{limit:.3}</text>"#,
        top + 8.0
    );
    let _ = writeln!(
        body,
        r#"<text x="{label_x:.1}" y="{:.1}" font-size="10">0</text>"#,
        top + bar_height / 2.0 + 4.0
    );
    let _ = writeln!(
        body,
        r#"<text x="{label_x:.1}" y="{:.1}" font-size="10">{:.3}</text>"#,
        top + bar_height,
        -limit
    );
    let width = label_x + 48.0;
    let height = top + bar_height + MARGIN;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

/// Each head's mask `(tokens × tokens)` as a heat map panel, for any [`LogitMask`].
pub fn mask_svg<F: Float>(mask: &dyn LogitMask<F>, parameters: &[F]) -> Result<String> {
    let g = mask_array(mask, parameters)?.mapv(F::to_f64_exact);
    let titles = (0..g.len_of(Axis(0))).map(|h| format!("head {h}"));
    let panels: Vec<Panel<'_>> = titles
        .zip(g.outer_iter())
        .map(|(title, values)| Panel { title, values })
        .collect();
    let n = g.len_of(Axis(1)).max(1) as f64;
    Ok(heat_map_svg(&panels, (256.0 / n).clamp(2.0, 16.0)))
}

/// Each head's mixture as a function of the token offset: the `(2·rows − 1) × (2·cols − 1)`
/// kernel view ([`GaussianMixtureMask::kernel`]), centre = zero offset.
pub fn kernel_svg<F: Float>(mask: &GaussianMixtureMask, parameters: &[F]) -> Result<String> {
    let kernel = mask.kernel(parameters)?.mapv(F::to_f64_exact);
    let panels: Vec<Panel<'_>> = kernel
        .outer_iter()
        .enumerate()
        .map(|(h, values)| Panel {
            title: format!("head {h} kernel"),
            values,
        })
        .collect();
    let side = kernel.len_of(Axis(1)).max(kernel.len_of(Axis(2))).max(1) as f64;
    Ok(heat_map_svg(&panels, (192.0 / side).clamp(4.0, 24.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn colours_diverge_from_white_and_grey_out_nan() {
        assert_eq!(colour(0.0), "#ffffff");
        assert_eq!(colour(1.0), "#b2182b");
        assert_eq!(colour(-1.0), "#2166ac");
        assert_eq!(colour(5.0), colour(1.0));
        assert_eq!(colour(f64::NAN), "#bbbbbb");
    }

    #[test]
    fn one_rect_per_cell_and_escaped_titles() {
        let a = array![[1.0, -2.0], [0.0, f64::NAN]];
        let svg = heat_map_svg(
            &[Panel {
                title: "a<b & c".into(),
                values: a.view(),
            }],
            10.0,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 1 + 4 + BAR_STEPS);
        assert!(svg.contains("a&lt;b &amp; c"));
        // −2 is the largest magnitude: full blue; 1 is half red.
        assert!(svg.contains(&colour(-1.0)) && svg.contains(&colour(0.5)));
        assert!(svg.contains("2.000") && svg.contains("-2.000"));
    }
}
