//! The exact partition of a segment `x(t) = a + t·(b − a)`, `t ∈ [0, 1]`, into linear pieces:
//! how many region boundaries the segment crosses.

use ndarray::ArrayView1;
use tessera_core::{check, Float, RejectInput};

use crate::error::{Error, Result};
use crate::net::PiecewiseLinear;
use crate::partition::{flatten, PartitionConfig};

/// The linear pieces of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentPartition {
    breaks: Vec<f64>,
    patterns: Vec<Vec<u64>>,
    length: f64,
}

impl SegmentPartition {
    /// Partitions the segment from `a` to `b` by every neuron of `model` (1-D splitting: each
    /// piece's affine pre-activations `z(t) = α·t + β` vanish at `t = −β/α`).
    pub fn compute<F: Float, M: PiecewiseLinear<F> + ?Sized>(
        model: &M,
        a: ArrayView1<'_, F>,
        b: ArrayView1<'_, F>,
        config: PartitionConfig,
    ) -> Result<Self> {
        config.validate()?;
        let d = model.input_dim();
        check::length("a", a.len(), d)?;
        check::length("b", b.len(), d)?;
        check::finite("a", &a)?;
        check::finite("b", &b)?;
        let a: Vec<f64> = a.iter().map(|v| v.to_f64_exact()).collect();
        let dir: Vec<f64> = b
            .iter()
            .zip(&a)
            .map(|(v, &a)| v.to_f64_exact() - a)
            .collect();
        let length = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        if length == 0.0 {
            return Err(Error::invalid(
                "b",
                "b = a",
                "the segment must have positive length",
            ));
        }
        let net = model.to_affine()?;
        let (layers, words, needed) = flatten(&net);
        let eps = config.eps;
        // Pieces: (t0, t1, slope, offset, bits, saved node maps for skips).
        struct Piece {
            t0: f64,
            t1: f64,
            slope: Vec<f64>,
            offset: Vec<f64>,
            bits: Vec<u64>,
            saved: Vec<Option<(Vec<f64>, Vec<f64>)>>,
        }
        let mut saved0 = vec![None; layers.len() + 1];
        if needed[0] {
            saved0[0] = Some((dir.clone(), a.clone()));
        }
        let mut pieces = vec![Piece {
            t0: 0.0,
            t1: 1.0,
            slope: dir,
            offset: a,
            bits: vec![0; words],
            saved: saved0,
        }];
        let last = layers.len() - 1;
        for (j, layer) in layers[..last].iter().enumerate() {
            let mut next = Vec::new();
            for p in pieces {
                let width = layer.b.len();
                let mut alpha = Vec::with_capacity(width);
                let mut beta = Vec::with_capacity(width);
                for i in 0..width {
                    let row = &layer.w[i * layer.fan_in..(i + 1) * layer.fan_in];
                    let mut s: f64 = row.iter().zip(&p.slope).map(|(w, v)| w * v).sum();
                    let mut o: f64 =
                        row.iter().zip(&p.offset).map(|(w, v)| w * v).sum::<f64>() + layer.b[i];
                    if let Some(Some((ss, so))) = layer.skip.map(|k| &p.saved[k]) {
                        s += ss[i];
                        o += so[i];
                    }
                    alpha.push(s);
                    beta.push(o);
                }
                let mut cuts: Vec<f64> = Vec::new();
                if layer.kink {
                    for i in 0..width {
                        let at = |t: f64| alpha[i] * t + beta[i];
                        let tol = |t: f64| eps * ((alpha[i] * t).abs() + beta[i].abs());
                        let (z0, z1) = (at(p.t0), at(p.t1));
                        if (z0 > tol(p.t0) && z1 < -tol(p.t1))
                            || (z0 < -tol(p.t0) && z1 > tol(p.t1))
                        {
                            cuts.push(-beta[i] / alpha[i]);
                        }
                    }
                }
                cuts.sort_by(f64::total_cmp);
                let mut bounds = vec![p.t0];
                let span = p.t1 - p.t0;
                for t in cuts {
                    // Coincident zeros of several neurons are one boundary.
                    let prev = bounds[bounds.len() - 1];
                    if t - prev > eps * span.max(f64::MIN_POSITIVE) && p.t1 - t > eps * span {
                        bounds.push(t);
                    }
                }
                bounds.push(p.t1);
                for w in bounds.windows(2) {
                    let mid = 0.5 * (w[0] + w[1]);
                    let mut bits = p.bits.clone();
                    let mut slope = Vec::with_capacity(width);
                    let mut offset = Vec::with_capacity(width);
                    for i in 0..width {
                        let q = if alpha[i] * mid + beta[i] > 0.0 {
                            if layer.kink {
                                let n = layer.bit_offset + i;
                                bits[n / 64] |= 1 << (n % 64);
                            }
                            1.0
                        } else {
                            layer.slope
                        };
                        slope.push(q * alpha[i]);
                        offset.push(q * beta[i]);
                    }
                    let mut saved = p.saved.clone();
                    if needed[j + 1] {
                        saved[j + 1] = Some((slope.clone(), offset.clone()));
                    }
                    next.push(Piece {
                        t0: w[0],
                        t1: w[1],
                        slope,
                        offset,
                        bits,
                        saved,
                    });
                }
            }
            if next.len() > config.max_regions {
                return Err(Error::too_large("pieces", next.len(), config.max_regions));
            }
            pieces = next;
        }
        let breaks = pieces.iter().skip(1).map(|p| p.t0).collect();
        let patterns = pieces.into_iter().map(|p| p.bits).collect();
        Ok(Self {
            breaks,
            patterns,
            length,
        })
    }

    /// Number of linear pieces.
    pub fn num_pieces(&self) -> usize {
        self.patterns.len()
    }

    /// Number of region boundaries crossed (`num_pieces − 1`).
    pub fn num_crossings(&self) -> usize {
        self.breaks.len()
    }

    /// The parameters `t ∈ (0, 1)` of the crossings, increasing.
    pub fn crossings(&self) -> &[f64] {
        &self.breaks
    }

    /// Activation pattern of each piece, in order.
    pub fn patterns(&self) -> &[Vec<u64>] {
        &self.patterns
    }

    /// `‖b − a‖`.
    pub fn length(&self) -> f64 {
        self.length
    }

    /// Crossings per unit length of input space.
    pub fn density(&self) -> f64 {
        self.breaks.len() as f64 / self.length
    }
}
