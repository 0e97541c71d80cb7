//! SVG plots (plotters) shared by the experiments: lines with a ±std band, scatter, heat map,
//! histogram and density curves. Non-finite values are skipped; every function returns
//! `anyhow::Result<()>` and writes one SVG file.

use std::fmt::Display;
use std::ops::Range;
use std::path::Path;

use anyhow::{anyhow, Result};
use ndarray::Array2;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One curve of [`lines_with_band`]: `mean` against `x`, with an optional ±`std` band.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates (the mean over seeds).
    pub mean: Vec<f64>,
    /// Standard deviation over seeds, same length as `mean`, drawn as a shaded band.
    pub std: Option<Vec<f64>>,
}

const SIZE: (u32, u32) = (860, 540);

/// A curve to draw: label, points, optional band `(x, low, high)`.
type Curve = (String, Vec<(f64, f64)>, Option<Vec<(f64, f64, f64)>>);

/// A chart on an SVG file with f64 coordinates `X × Y`.
type Chart<'p, X, Y> = ChartContext<'p, SVGBackend<'p>, Cartesian2d<X, Y>>;

fn pe<E: Display>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

/// A colour per series index (a fixed, colour-blind-friendly cycle).
pub fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
        RGBColor(150, 150, 150),
    ];
    C[i % C.len()]
}

/// The range covering the finite values, padded by 5 % (a unit range around a single value).
fn padded_range(values: impl Iterator<Item = f64>, positive: bool) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!positive || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if positive { 0.1..1.0 } else { 0.0..1.0 };
    }
    if positive {
        if hi <= lo {
            return lo / 2.0..hi * 2.0;
        }
        let r = (hi / lo).powf(0.05);
        return lo / r..hi * r;
    }
    if hi <= lo {
        return lo - 0.5..hi + 0.5;
    }
    let pad = 0.05 * (hi - lo);
    lo - pad..hi + pad
}

fn root(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(pe)?;
    Ok(root)
}

/// The frame every chart shares: title, margins and label areas (`y_label_area` pixels wide
/// for the y tick labels) around `x_range × y_range`.
fn chart_frame<'p, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &DrawingArea<SVGBackend<'p>, Shift>,
    title: &str,
    y_label_area: u32,
    x_range: X,
    y_range: Y,
) -> Result<Chart<'p, X::CoordDescType, Y::CoordDescType>> {
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(x_range, y_range)
        .map_err(pe)
}

/// Axes with their descriptions and no minor grid lines.
fn draw_axes<X, Y>(chart: &mut Chart<'_, X, Y>, x_label: &str, y_label: &str) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(pe)
}

/// Draws the legend at `position` and writes the file.
fn finish_with_legend<X: Ranged, Y: Ranged>(
    chart: &mut Chart<'_, X, Y>,
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(position)
        .draw()
        .map_err(pe)?;
    root.present().map_err(pe)?;
    Ok(())
}

/// Draws polyline series (with optional bands) on any pair of f64 coordinates.
fn line_chart<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    x_range: X,
    y_range: Y,
    curves: &[Curve],
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = chart_frame(root, title, 65, x_range, y_range)?;
    draw_axes(&mut chart, x_label, y_label)?;
    for (i, (label, points, band)) in curves.iter().enumerate() {
        let c = colour(i);
        if let Some(band) = band {
            if band.len() >= 2 {
                let mut poly: Vec<(f64, f64)> = band.iter().map(|&(x, lo, _)| (x, lo)).collect();
                poly.extend(band.iter().rev().map(|&(x, _, hi)| (x, hi)));
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                    .map_err(pe)?;
            }
        }
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(pe)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(pe)?;
    }
    finish_with_legend(&mut chart, root, SeriesLabelPosition::UpperRight)
}

/// Lines of `mean` against `x`, one per series, each with a shaded ±`std` band when given;
/// `log_x` draws x on a log scale (non-positive x are skipped then).
///
/// # Errors
/// The file cannot be written.
pub fn lines_with_band(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> Result<()> {
    let keep_x = |x: f64| x.is_finite() && (!log_x || x > 0.0);
    let curves: Vec<_> = series
        .iter()
        .map(|s| {
            let points: Vec<(f64, f64)> =
                s.x.iter()
                    .zip(&s.mean)
                    .filter(|(x, y)| keep_x(**x) && y.is_finite())
                    .map(|(&x, &y)| (x, y))
                    .collect();
            let band = s.std.as_ref().map(|std| {
                s.x.iter()
                    .zip(&s.mean)
                    .zip(std)
                    .filter(|((x, m), d)| keep_x(**x) && m.is_finite() && d.is_finite())
                    .map(|((&x, &m), &d)| (x, m - d, m + d))
                    .collect::<Vec<_>>()
            });
            (s.label.clone(), points, band)
        })
        .collect();
    let xs = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0));
    let ys = curves.iter().flat_map(|c| {
        c.1.iter().map(|p| p.1).chain(
            c.2.iter()
                .flat_map(|b| b.iter().flat_map(|&(_, lo, hi)| [lo, hi])),
        )
    });
    let y_range = padded_range(ys, false);
    let path = path.as_ref();
    let root = root(path)?;
    if log_x {
        let x_range = padded_range(xs, true);
        line_chart(
            &root,
            title,
            x_label,
            y_label,
            x_range.log_scale(),
            y_range,
            &curves,
        )
    } else {
        let x_range = padded_range(xs, false);
        line_chart(&root, title, x_label, y_label, x_range, y_range, &curves)
    }
}

/// Density curves (`grid`, `density`) per series; `log_y` draws y on a log scale (non-positive
/// densities are skipped then).
///
/// # Errors
/// The file cannot be written.
pub fn density(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<f64>, Vec<f64>)],
    log_y: bool,
) -> Result<()> {
    let curves: Vec<_> = series
        .iter()
        .map(|(label, grid, dens)| {
            let points: Vec<(f64, f64)> = grid
                .iter()
                .zip(dens)
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || **y > 0.0))
                .map(|(&x, &y)| (x, y))
                .collect();
            (label.clone(), points, None)
        })
        .collect();
    let x_range = padded_range(curves.iter().flat_map(|c| c.1.iter().map(|p| p.0)), false);
    let ys = curves.iter().flat_map(|c| c.1.iter().map(|p| p.1));
    let path = path.as_ref();
    let root = root(path)?;
    if log_y {
        let y_range = padded_range(ys, true);
        line_chart(
            &root,
            title,
            x_label,
            "density",
            x_range,
            y_range.log_scale(),
            &curves,
        )
    } else {
        let y_range = padded_range(ys, false);
        line_chart(&root, title, x_label, "density", x_range, y_range, &curves)
    }
}

/// Points per group, one colour per group, with a legend.
///
/// # Errors
/// The file cannot be written.
pub fn scatter(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let x_range = padded_range(groups.iter().flat_map(|g| g.1.iter().map(|p| p.0)), false);
    let y_range = padded_range(groups.iter().flat_map(|g| g.1.iter().map(|p| p.1)), false);
    let path = path.as_ref();
    let root = root(path)?;
    let mut chart = chart_frame(&root, title, 65, x_range, y_range)?;
    draw_axes(&mut chart, x_label, y_label)?;
    for (i, (label, points)) in groups.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(
                points
                    .iter()
                    .filter(finite)
                    .map(|&p| Circle::new(p, 3, c.mix(0.75).filled())),
            )
            .map_err(pe)?
            .label(label.as_str())
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
    }
    finish_with_legend(&mut chart, &root, SeriesLabelPosition::MiddleRight)
}

/// A blue → yellow ramp (viridis-like endpoints) for values in [0, 1].
pub fn ramp(v: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    } * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(
        mix(stops[i].0, stops[i + 1].0),
        mix(stops[i].1, stops[i + 1].1),
        mix(stops[i].2, stops[i + 1].2),
    )
}

/// A heat map of `values` (rows = `y_labels`, columns = `x_labels`), each cell annotated with
/// its value when there are at most 400 cells; non-finite cells are grey.
///
/// # Errors
/// Label counts that do not match the array, or the file cannot be written.
pub fn heatmap(
    path: impl AsRef<Path>,
    title: &str,
    x_labels: &[String],
    y_labels: &[String],
    values: &Array2<f64>,
) -> Result<()> {
    let (rows, cols) = values.dim();
    anyhow::ensure!(
        rows == y_labels.len() && cols == x_labels.len(),
        "heatmap: values is {rows}×{cols}, labels are {}×{}",
        y_labels.len(),
        x_labels.len()
    );
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let path = path.as_ref();
    let root = root(path)?;
    let mut chart = chart_frame(
        &root,
        title,
        90,
        0.0..cols.max(1) as f64,
        0.0..rows.max(1) as f64,
    )?;
    // At most about 12 labels per axis: every `step`-th cell centre is labelled.
    let label_at = |labels: &[String], v: f64| -> String {
        let step = labels.len().div_ceil(12).max(1);
        let i = v.floor();
        let centre = (v - i - 0.5).abs() < 1e-6;
        if centre && i >= 0.0 && (i as usize) < labels.len() && (i as usize).is_multiple_of(step) {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    let x_fmt = |v: &f64| label_at(x_labels, *v);
    let y_fmt = |v: &f64| label_at(y_labels, *v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(cols * 2 + 1)
        .y_labels(rows * 2 + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(pe)?;
    chart
        .draw_series(values.indexed_iter().map(|((r, c), &v)| {
            let fill = if v.is_finite() {
                ramp((v - lo) / span)
            } else {
                RGBColor(200, 200, 200)
            };
            Rectangle::new(
                [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                fill.filled(),
            )
        }))
        .map_err(pe)?;
    if rows * cols <= 400 {
        chart
            .draw_series(values.indexed_iter().map(|((r, c), &v)| {
                let dark = v.is_finite() && (v - lo) / span < 0.6;
                let colour = if dark { WHITE } else { BLACK };
                Text::new(
                    format!("{v:.3}"),
                    (c as f64 + 0.3, r as f64 + 0.55),
                    ("sans-serif", 12).into_font().color(&colour),
                )
            }))
            .map_err(pe)?;
    }
    root.present().map_err(pe)?;
    Ok(())
}

/// Overlaid histograms of each group's values over shared `bins` equal-width bins (counts
/// normalised to fractions so groups of different sizes compare).
///
/// # Errors
/// `bins = 0`, or the file cannot be written.
pub fn histogram(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    groups: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<()> {
    anyhow::ensure!(bins > 0, "histogram: bins = 0, need at least 1");
    let all = groups.iter().flat_map(|g| g.1.iter().copied());
    let range = padded_range(all, false);
    let width = (range.end - range.start) / bins as f64;
    let hists: Vec<Vec<f64>> = groups
        .iter()
        .map(|(_, values)| {
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            let mut counts = vec![0.0; bins];
            for v in &finite {
                let b = (((v - range.start) / width) as usize).min(bins - 1);
                counts[b] += 1.0;
            }
            let n = finite.len().max(1) as f64;
            counts.iter().map(|c| c / n).collect()
        })
        .collect();
    let top = hists
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.08;
    let path = path.as_ref();
    let root = root(path)?;
    let mut chart = chart_frame(&root, title, 65, range.clone(), 0.0..top)?;
    draw_axes(&mut chart, x_label, "fraction")?;
    for (i, ((label, _), hist)) in groups.iter().zip(&hists).enumerate() {
        let c = colour(i);
        let start = range.start;
        chart
            .draw_series(hist.iter().enumerate().map(|(b, &h)| {
                let x0 = start + b as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, h)], c.mix(0.35).filled())
            }))
            .map_err(pe)?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    finish_with_legend(&mut chart, &root, SeriesLabelPosition::MiddleRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plot_writes_an_svg() {
        let dir = std::env::temp_dir().join(format!("tessera-repro-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Series {
            label: "a".into(),
            x: vec![1.0, 10.0, 100.0],
            mean: vec![0.5, f64::NAN, 0.9],
            std: Some(vec![0.1, 0.1, 0.05]),
        };
        lines_with_band(
            dir.join("l.svg"),
            "t",
            "x",
            "y",
            std::slice::from_ref(&s),
            true,
        )
        .unwrap();
        lines_with_band(dir.join("l2.svg"), "t", "x", "y", &[s], false).unwrap();
        scatter(
            dir.join("s.svg"),
            "t",
            "x",
            "y",
            &[("g".into(), vec![(0.0, 1.0), (1.0, 2.0)])],
        )
        .unwrap();
        let v = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f64);
        let l = |n: usize| (0..n).map(|i| format!("l{i}")).collect::<Vec<_>>();
        heatmap(dir.join("h.svg"), "t", &l(3), &l(2), &v).unwrap();
        assert!(heatmap(dir.join("bad.svg"), "t", &l(2), &l(2), &v).is_err());
        histogram(
            dir.join("hi.svg"),
            "t",
            "x",
            &[("g".into(), vec![0.0, 1.0, 1.0, 2.0])],
            4,
        )
        .unwrap();
        density(
            dir.join("d.svg"),
            "t",
            "x",
            &[("g".into(), vec![0.0, 1.0], vec![0.0, 2.0])],
            true,
        )
        .unwrap();
        for f in ["l.svg", "l2.svg", "s.svg", "h.svg", "hi.svg", "d.svg"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(text.starts_with("<svg"), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
