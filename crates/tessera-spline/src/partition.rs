//! The exact partition of a 2-D slice of the input space into linear regions (SplineCam's
//! computation, by half-plane clipping).

use std::collections::HashSet;

use ndarray::{Array1, Array2, ArrayView1};
use rayon::prelude::*;
use tessera_core::{check, Float, RejectInput};

use crate::error::{Error, Result};
use crate::geometry::{vertex_mean, Line, Point, Polygon};
use crate::net::{PiecewiseLinear, PiecewiseLinearNet};

/// The plane `x(u) = x₀ + u₁·e₁ + u₂·e₂` through the input space.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    origin: Array1<f64>,
    e1: Array1<f64>,
    e2: Array1<f64>,
}

impl Plane {
    /// Checks lengths, finiteness and that `e₁`, `e₂` span a plane (neither is zero, and
    /// `|e₁ ∧ e₂|² > 10⁻¹²·|e₁|²|e₂|²`: they are not parallel).
    pub fn new<F: Float>(
        origin: ArrayView1<'_, F>,
        e1: ArrayView1<'_, F>,
        e2: ArrayView1<'_, F>,
    ) -> Result<Self> {
        let d = origin.len();
        check::positive_size("origin", d)?;
        check::length("e1", e1.len(), d)?;
        check::length("e2", e2.len(), d)?;
        check::finite("origin", &origin)?;
        check::finite("e1", &e1)?;
        check::finite("e2", &e2)?;
        let to64 = |a: ArrayView1<'_, F>| a.mapv(|v| v.to_f64_exact());
        let (origin, e1, e2) = (to64(origin), to64(e1), to64(e2));
        let (n1, n2, c) = (e1.dot(&e1), e2.dot(&e2), e1.dot(&e2));
        if n1 == 0.0 || n2 == 0.0 {
            return Err(Error::invalid(
                if n1 == 0.0 { "e1" } else { "e2" },
                "the zero vector",
                "the plane's directions must be non-zero",
            ));
        }
        if !(n1 * n2).is_finite() {
            return Err(Error::invalid(
                "e1",
                format!("|e1|² = {n1}, |e2|² = {n2}"),
                "the plane's directions are too large to represent their products",
            ));
        }
        let gram = n1 * n2 - c * c;
        if gram <= 1e-12 * n1 * n2 {
            return Err(Error::invalid(
                "e2",
                format!("cos(e1, e2) = {}", c / (n1 * n2).sqrt()),
                "e1 and e2 are parallel: they do not span a plane",
            ));
        }
        Ok(Self { origin, e1, e2 })
    }

    /// The plane through three inputs: `u = (0, 0)` is `a`, `(1, 0)` is `b`, `(0, 1)` is `c`.
    pub fn through_points<F: Float>(
        a: ArrayView1<'_, F>,
        b: ArrayView1<'_, F>,
        c: ArrayView1<'_, F>,
    ) -> Result<Self> {
        check::length("b", b.len(), a.len())?;
        check::length("c", c.len(), a.len())?;
        let e1 = &b - &a;
        let e2 = &c - &a;
        Self::new(a, e1.view(), e2.view())
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.origin.len()
    }

    /// `x₀`.
    pub fn origin(&self) -> ArrayView1<'_, f64> {
        self.origin.view()
    }

    /// `e₁`.
    pub fn e1(&self) -> ArrayView1<'_, f64> {
        self.e1.view()
    }

    /// `e₂`.
    pub fn e2(&self) -> ArrayView1<'_, f64> {
        self.e2.view()
    }

    /// The input `x(u)`.
    pub fn point(&self, u: Point) -> Array1<f64> {
        &self.origin + &(&self.e1 * u[0]) + &(&self.e2 * u[1])
    }

    /// The inputs `x(u)` of many points, one row each.
    pub fn points(&self, us: &[Point]) -> Array2<f64> {
        let mut x = Array2::zeros((us.len(), self.dim()));
        for (mut row, &u) in x.outer_iter_mut().zip(us) {
            row.assign(&self.point(u));
        }
        x
    }
}

/// Settings of the exact partitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionConfig {
    /// Relative tolerance: a vertex with `|A_i·u + d_i| ≤ ε·(|A_i1 u1| + |A_i2 u2| + |d_i|)`
    /// lies on neuron `i`'s line (default 10⁻⁹).
    pub eps: f64,
    /// The computation stops with an error beyond this many regions (default 2,000,000).
    pub max_regions: usize,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            eps: 1e-9,
            max_regions: 2_000_000,
        }
    }
}

impl PartitionConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        check::in_range("eps", self.eps, 0.0, 1e-3)?;
        check::positive_size("max_regions", self.max_regions)?;
        Ok(())
    }
}

/// One linear region: a convex polygon on which the network is the affine map
/// `logits(u) = J·u + o`.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    polygon: Polygon,
    pattern: Vec<u64>,
    jacobian: Array2<f64>,
    offset: Array1<f64>,
}

impl Region {
    /// The region's polygon in `u`.
    pub fn polygon(&self) -> &Polygon {
        &self.polygon
    }

    /// Area in `u` units.
    pub fn area(&self) -> f64 {
        self.polygon.area()
    }

    /// Activation pattern (bit `n` of word `n / 64` for neuron `n` of the kinked hidden layers,
    /// as [`crate::ActivationPatterns`]).
    pub fn pattern(&self) -> &[u64] {
        &self.pattern
    }

    /// `J`, `(classes, 2)`: the logits' derivative along `u`.
    pub fn jacobian(&self) -> &Array2<f64> {
        &self.jacobian
    }

    /// `o`: the logits at `u = 0` of the region's affine map.
    pub fn offset(&self) -> &Array1<f64> {
        &self.offset
    }

    /// `J·u + o`.
    pub fn logits_at(&self, u: Point) -> Array1<f64> {
        &self.jacobian.column(0) * u[0] + &self.jacobian.column(1) * u[1] + &self.offset
    }
}

/// Part of a region where one class has the largest logit.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCell {
    /// Index of the region in [`Partition2d::regions`].
    pub region: usize,
    /// The predicted class (arg-max logit; ties go to the lower index).
    pub class: usize,
    /// Where it is predicted, within the region.
    pub polygon: Polygon,
}

/// The exact partition of a convex domain of a plane into linear regions.
#[derive(Debug, Clone)]
pub struct Partition2d {
    domain: Polygon,
    regions: Vec<Region>,
    cells: Vec<ClassCell>,
    boundary: Vec<[Point; 2]>,
}

impl Partition2d {
    /// Partitions `domain` (convex, in `u`) of `plane` by every neuron of `model`, and splits
    /// each region by the arg-max of its logits.
    pub fn compute<F: Float, M: PiecewiseLinear<F> + ?Sized>(
        model: &M,
        plane: &Plane,
        domain: &Polygon,
        config: PartitionConfig,
    ) -> Result<Self> {
        config.validate()?;
        let net = model.to_affine()?;
        let regions = partition_regions(&net, plane, domain, config)?;
        let (cells, boundary) = class_cells(&regions, config.eps);
        Ok(Self {
            domain: domain.clone(),
            regions,
            cells,
            boundary,
        })
    }

    /// The domain.
    pub fn domain(&self) -> &Polygon {
        &self.domain
    }

    /// Every linear region.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Number of linear regions.
    pub fn num_regions(&self) -> usize {
        self.regions.len()
    }

    /// Number of distinct activation patterns among the regions (a pattern can label several
    /// regions only when the plane leaves a region and re-enters it, which convexity of
    /// regions in input space rules out: so this equals [`Partition2d::num_regions`] up to
    /// regions split by the tolerance).
    pub fn num_distinct_patterns(&self) -> usize {
        self.regions
            .iter()
            .map(|r| r.pattern.as_slice())
            .collect::<HashSet<_>>()
            .len()
    }

    /// Region areas.
    pub fn areas(&self) -> Vec<f64> {
        self.regions.iter().map(Region::area).collect()
    }

    /// The regions split by predicted class.
    pub fn class_cells(&self) -> &[ClassCell] {
        &self.cells
    }

    /// The decision boundary as segments `[from, to]` in `u`: where the top two logits tie.
    ///
    /// The logits are continuous, so the predicted class never jumps across a region's edge
    /// (except where a tie lies exactly on it); it changes inside regions, on the lines
    /// `(J_a − J_b)·u + (o_a − o_b) = 0` where classes `a` and `b` share the largest logit.
    pub fn decision_boundary(&self) -> &[[Point; 2]] {
        &self.boundary
    }

    /// The region containing `u` (on a shared edge: the first one found).
    pub fn region_containing(&self, u: Point) -> Option<usize> {
        let (lo, hi) = self.domain.bounding_box();
        let scale = (hi[0] - lo[0]).abs().max((hi[1] - lo[1]).abs()).max(1.0);
        let tol = 1e-12 * scale * scale;
        self.regions.iter().position(|r| r.polygon.contains(u, tol))
    }
}

/// A region under construction: its polygon and the affine map of the current node,
/// stored column-wise (`∂/∂u₁`, `∂/∂u₂`, offset), plus saved maps of nodes reused by skips.
struct Work {
    poly: Vec<Point>,
    map: NodeMap,
    bits: Vec<u64>,
    saved: Vec<Option<NodeMap>>,
}

#[derive(Clone)]
struct NodeMap {
    m1: Vec<f64>,
    m2: Vec<f64>,
    c: Vec<f64>,
}

/// Four-way unrolled dot product (vectorises, and is deterministic for a given length).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4;
    for k in 0..chunks {
        for l in 0..4 {
            acc[l] += a[4 * k + l] * b[4 * k + l];
        }
    }
    let mut tail = 0.0;
    for k in 4 * chunks..a.len() {
        tail += a[k] * b[k];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `A = W·M`, `d = W·c + b` (+ the skip node's map).
fn layer_map(
    w: &[f64],
    b: &[f64],
    fan_in: usize,
    input: &NodeMap,
    skip: Option<&NodeMap>,
) -> NodeMap {
    let width = b.len();
    let mut out = NodeMap {
        m1: Vec::with_capacity(width),
        m2: Vec::with_capacity(width),
        c: Vec::with_capacity(width),
    };
    for i in 0..width {
        let row = &w[i * fan_in..(i + 1) * fan_in];
        out.m1.push(dot(row, &input.m1));
        out.m2.push(dot(row, &input.m2));
        out.c.push(dot(row, &input.c) + b[i]);
    }
    if let Some(s) = skip {
        for i in 0..width {
            out.m1[i] += s.m1[i];
            out.m2[i] += s.m2[i];
            out.c[i] += s.c[i];
        }
    }
    out
}

pub(crate) struct FlatLayer {
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub fan_in: usize,
    pub slope: f64,
    pub kink: bool,
    pub skip: Option<usize>,
    pub bit_offset: usize,
}

/// The layers as contiguous row-major buffers, with each kinked hidden layer's first bit in
/// the pattern; returns also the pattern's word count and which nodes skips reuse.
pub(crate) fn flatten(net: &PiecewiseLinearNet<f64>) -> (Vec<FlatLayer>, usize, Vec<bool>) {
    let n = net.layers().len();
    let mut bit = 0usize;
    let mut needed = vec![false; n + 1];
    let layers = net
        .layers()
        .iter()
        .enumerate()
        .map(|(j, l)| {
            let kink = j + 1 < n && l.activation().has_kink();
            let offset = bit;
            if kink {
                bit += l.width();
            }
            if let Some(k) = l.skip_from() {
                needed[k] = true;
            }
            FlatLayer {
                w: l.weight().iter().copied().collect(),
                b: l.bias().to_vec(),
                fan_in: l.fan_in(),
                slope: l.activation().negative_slope(),
                kink,
                skip: l.skip_from(),
                bit_offset: offset,
            }
        })
        .collect();
    (layers, bit.div_ceil(64).max(1), needed)
}

fn partition_regions(
    net: &PiecewiseLinearNet<f64>,
    plane: &Plane,
    domain: &Polygon,
    config: PartitionConfig,
) -> Result<Vec<Region>> {
    let d = net.layers()[0].fan_in();
    if plane.dim() != d {
        return Err(Error::shape(
            "plane",
            format!("a plane in R^{d} (the model's input_dim)"),
            format!("a plane in R^{}", plane.dim()),
        ));
    }
    let (layers, words, needed) = flatten(net);
    let input = NodeMap {
        m1: plane.e1.to_vec(),
        m2: plane.e2.to_vec(),
        c: plane.origin.to_vec(),
    };
    let mut saved = if needed.iter().any(|&n| n) {
        vec![None; layers.len() + 1]
    } else {
        Vec::new()
    };
    if needed[0] {
        saved[0] = Some(input.clone());
    }
    let mut works = vec![Work {
        poly: domain.vertices().to_vec(),
        map: input,
        bits: vec![0; words],
        saved,
    }];
    let eps = config.eps;
    let last = layers.len() - 1;
    for (j, layer) in layers[..last].iter().enumerate() {
        let next: Vec<Vec<Work>> = works
            .into_par_iter()
            .map(|w| split_region(w, layer, j, &needed, eps))
            .collect();
        let total: usize = next.iter().map(Vec::len).sum();
        if total > config.max_regions {
            return Err(Error::too_large("regions", total, config.max_regions));
        }
        works = next.into_iter().flatten().collect();
    }
    let out = &layers[last];
    Ok(works
        .into_par_iter()
        .map(|w| {
            let skip = out.skip.and_then(|k| w.saved[k].as_ref());
            let map = layer_map(&out.w, &out.b, out.fan_in, &w.map, skip);
            let k = map.c.len();
            let jacobian =
                Array2::from_shape_fn((k, 2), |(i, c)| if c == 0 { map.m1[i] } else { map.m2[i] });
            Region {
                polygon: Polygon::from_vertices_unchecked(w.poly),
                pattern: w.bits,
                jacobian,
                offset: Array1::from(map.c),
            }
        })
        .collect())
}

/// Splits one region by every neuron line of `layer`, then gives each piece its activation
/// pattern (at its vertex mean, strictly inside) and the affine map of the layer's output.
fn split_region(w: Work, layer: &FlatLayer, j: usize, needed: &[bool], eps: f64) -> Vec<Work> {
    let skip = layer.skip.and_then(|k| w.saved[k].as_ref());
    let pre = layer_map(&layer.w, &layer.b, layer.fan_in, &w.map, skip);
    let width = pre.c.len();
    let mut pieces = vec![w.poly];
    if layer.kink {
        // Most lines miss most regions: test each against the whole region once (a line that
        // crosses a piece's interior crosses the region's), then split the pieces.
        let crossing: Vec<Line> = (0..width)
            .map(|i| Line {
                a: [pre.m1[i], pre.m2[i]],
                d: pre.c[i],
            })
            .filter(|line| line.crosses(&pieces[0], eps))
            .collect();
        for line in crossing {
            let mut next = Vec::with_capacity(pieces.len() + 1);
            for p in pieces {
                match line.split(&p, eps) {
                    Some((above, below)) => {
                        next.push(above);
                        next.push(below);
                    }
                    None => next.push(p),
                }
            }
            pieces = next;
        }
    }
    let mut out = Vec::with_capacity(pieces.len());
    for poly in pieces {
        let centre = vertex_mean(&poly);
        let mut bits = w.bits.clone();
        let mut map = NodeMap {
            m1: Vec::with_capacity(width),
            m2: Vec::with_capacity(width),
            c: Vec::with_capacity(width),
        };
        for i in 0..width {
            let z = pre.m1[i] * centre[0] + pre.m2[i] * centre[1] + pre.c[i];
            let q = if z > 0.0 {
                if layer.kink {
                    let n = layer.bit_offset + i;
                    bits[n / 64] |= 1 << (n % 64);
                }
                1.0
            } else {
                layer.slope
            };
            map.m1.push(q * pre.m1[i]);
            map.m2.push(q * pre.m2[i]);
            map.c.push(q * pre.c[i]);
        }
        // Empty unless the network has skips, so the clone costs nothing in the plain case.
        let mut saved = w.saved.clone();
        if needed[j + 1] {
            saved[j + 1] = Some(map.clone());
        }
        out.push(Work {
            poly,
            map,
            bits,
            saved,
        });
    }
    out
}

/// Splits every region by the arg-max of its logits; returns the cells and the decision
/// boundary segments (each once).
fn class_cells(regions: &[Region], eps: f64) -> (Vec<ClassCell>, Vec<[Point; 2]>) {
    let per_region: Vec<(Vec<ClassCell>, Vec<[Point; 2]>)> = regions
        .par_iter()
        .enumerate()
        .map(|(r, region)| cells_of_region(r, region, eps))
        .collect();
    let mut cells = Vec::new();
    let mut boundary = Vec::new();
    for (c, b) in per_region {
        cells.extend(c);
        boundary.extend(b);
    }
    (cells, boundary)
}

fn argmax(z: &Array1<f64>) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

fn cells_of_region(r: usize, region: &Region, eps: f64) -> (Vec<ClassCell>, Vec<[Point; 2]>) {
    let verts = region.polygon.vertices();
    let classes: Vec<usize> = verts
        .iter()
        .map(|&u| argmax(&region.logits_at(u)))
        .collect();
    // The set where one class wins is convex: if it holds every vertex, it holds the region.
    if classes.iter().all(|&c| c == classes[0]) {
        return (
            vec![ClassCell {
                region: r,
                class: classes[0],
                polygon: region.polygon.clone(),
            }],
            Vec::new(),
        );
    }
    let k = region.offset.len();
    let (jac, off) = (&region.jacobian, &region.offset);
    let mut cells = Vec::new();
    let mut boundary = Vec::new();
    let area_floor = eps * region.area();
    for c in 0..k {
        let mut poly = verts.to_vec();
        let mut alive = true;
        for j in 0..k {
            if j == c {
                continue;
            }
            let line = Line {
                a: [jac[[c, 0]] - jac[[j, 0]], jac[[c, 1]] - jac[[j, 1]]],
                d: off[c] - off[j],
            };
            match line.clip_keep_non_negative(&poly, eps) {
                Some(p) => poly = p,
                None => {
                    alive = false;
                    break;
                }
            }
        }
        if !alive || crate::geometry::signed_area(&poly) <= area_floor {
            continue;
        }
        // Edges of the cell on a tie line, kept once: from the lower class of the pair.
        let n = poly.len();
        for e in 0..n {
            let (p, q) = (poly[e], poly[(e + 1) % n]);
            let mid = [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0];
            let z = region.logits_at(mid);
            let scale = z.iter().fold(0.0f64, |m, v| m.max(v.abs()))
                + jac.iter().fold(0.0f64, |m, v| m.max(v.abs())) * mid[0].abs().max(mid[1].abs());
            let runner = (0..k)
                .filter(|&i| i != c)
                .max_by(|&a, &b| z[a].total_cmp(&z[b]).then(b.cmp(&a)));
            if let Some(o) = runner {
                if (z[c] - z[o]).abs() <= 1e3 * eps * scale.max(f64::MIN_POSITIVE) && c < o {
                    boundary.push([p, q]);
                }
            }
        }
        cells.push(ClassCell {
            region: r,
            class: c,
            polygon: Polygon::from_vertices_unchecked(poly),
        });
    }
    (cells, boundary)
}
