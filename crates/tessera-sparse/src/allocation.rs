//! Layer-wise density allocation: uniform, Erdős–Rényi (ER) and Erdős–Rényi-Kernel (ERK).
//!
//! Given the weight shapes of a network and a global density $D$, every layer $l$ with
//! $n_l$ weights gets a density $d_l \in (0, 1]$ such that $\sum_l d_l n_l = D \sum_l n_l$
//! exactly (to rounding). Free layers get $d_l = \varepsilon \cdot \mathrm{raw}_l$ where
//!
//! * uniform: $\mathrm{raw}_l = 1$,
//! * ER: $\mathrm{raw}_l = (n_\text{in} + n_\text{out}) / (n_\text{in} n_\text{out})$ with
//!   `[n_out, n_in, ..] = dims` (PyTorch order; kernel dimensions ignored),
//! * ERK: $\mathrm{raw}_l = (\sum_k \mathrm{dims}_k / \prod_k \mathrm{dims}_k)^p$.
//!
//! A layer whose $\varepsilon \cdot \mathrm{raw}_l$ would exceed 1 is made dense and
//! $\varepsilon$ is recomputed (the RigL "epsilon loop"); layers fixed by the caller keep their
//! density and the free layers share what is left of the budget.

use crate::error::{Error, Result};
use tessera_core::{check, RejectInput};

/// One prunable weight tensor: its name and its dimensions in PyTorch order
/// (`[out, in]` for linear layers, `[out, in, kh, kw]` for convolutions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerShape {
    name: String,
    dims: Vec<usize>,
}

impl LayerShape {
    /// A layer called `name` with dimensions `dims`; errors on an empty `dims` or a zero
    /// dimension (a layer without weights cannot be pruned).
    pub fn new(name: impl Into<String>, dims: &[usize]) -> Result<Self> {
        let name = name.into();
        if dims.is_empty() {
            return Err(Error::invalid(
                "dims",
                format!("[] (layer `{name}`)"),
                "a layer needs at least one dimension",
            ));
        }
        if dims.contains(&0) {
            return Err(Error::invalid(
                "dims",
                format!("{dims:?} (layer `{name}`)"),
                "every dimension must be positive",
            ));
        }
        if dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err(Error::invalid(
                "dims",
                format!("{dims:?} (layer `{name}`)"),
                "the number of weights overflows usize",
            ));
        }
        Ok(Self {
            name,
            dims: dims.to_vec(),
        })
    }

    /// The layer's name (e.g. the PyTorch parameter name `features.0.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions in PyTorch order.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of weights $n_l = \prod_k \mathrm{dims}_k$.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The unnormalised density score $\mathrm{raw}_l$ of this layer under `allocation`.
    pub fn raw_score(&self, allocation: Allocation) -> Result<f64> {
        match allocation {
            Allocation::Uniform => Ok(1.0),
            Allocation::ErdosRenyi => {
                if self.dims.len() < 2 {
                    return Err(Error::invalid(
                        "dims",
                        format!("{:?} (layer `{}`)", self.dims, self.name),
                        "Erdős–Rényi needs [out, in, ..] (rank ≥ 2); use ERK for other ranks",
                    ));
                }
                let (n_out, n_in) = (self.dims[0] as f64, self.dims[1] as f64);
                Ok((n_in + n_out) / (n_in * n_out))
            }
            Allocation::ErdosRenyiKernel { power } => {
                check_power(power)?;
                let sum: f64 = self.dims.iter().map(|&d| d as f64).sum();
                Ok((sum / self.numel() as f64).powf(power))
            }
        }
    }
}

/// How the global density is spread over layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allocation {
    /// Every free layer gets the same density.
    Uniform,
    /// Erdős–Rényi: density ∝ $(n_\text{in} + n_\text{out}) / (n_\text{in} n_\text{out})$.
    ErdosRenyi,
    /// Erdős–Rényi-Kernel: density ∝ $(\sum \mathrm{dims} / \prod \mathrm{dims})^p$
    /// (`power` $= p > 0$; RigL's default is 1, smaller values soften the allocation).
    ErdosRenyiKernel {
        /// The exponent $p$ (RigL's `erk_power_scale`).
        power: f64,
    },
}

impl Allocation {
    /// ERK with the default exponent 1.
    pub const ERK: Allocation = Allocation::ErdosRenyiKernel { power: 1.0 };
}

/// ERK scores divided by the largest one, computed in log space: with a large `power` the plain
/// scores $(\sum \mathrm{dims}/\prod \mathrm{dims})^p$ under- or overflow `f64` (and the allocation
/// became NaN), while the densities only depend on their ratios. Used only when a plain score is
/// not a normal number, so ordinary powers keep their exact arithmetic.
fn erk_scores_relative_to_largest(layers: &[LayerShape], power: f64) -> Result<Vec<f64>> {
    let logs: Vec<f64> = layers
        .iter()
        .map(|l| {
            let sum: f64 = l.dims.iter().map(|&d| d as f64).sum();
            sum.ln() - (l.numel() as f64).ln()
        })
        .collect();
    let largest = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let scores: Vec<f64> = logs
        .iter()
        .map(|&l| (power * (l - largest)).exp())
        .collect();
    if let Some(i) = scores.iter().position(|s| !s.is_normal()) {
        return Err(Error::invalid(
            "power",
            power,
            format!(
                "the ERK score of layer `{}` relative to the largest underflows f64 at this \
                 exponent (its density would be 0); use a smaller power",
                layers[i].name
            ),
        ));
    }
    Ok(scores)
}

fn check_power(power: f64) -> Result<()> {
    if power.is_finite() && power > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "power",
            power,
            "the ERK exponent must be finite and positive",
        ))
    }
}

/// How a layer's density was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DensitySource {
    /// $d_l = \varepsilon \cdot \mathrm{raw}_l$.
    Scaled,
    /// Moved to dense by the epsilon loop because $\varepsilon \cdot \mathrm{raw}_l > 1$.
    MadeDense,
    /// Fixed by the caller through an override.
    Fixed,
}

/// The per-layer densities that [`layer_densities`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDensities {
    /// $d_l$, one per layer, in the order of the input layers.
    pub densities: Vec<f64>,
    /// How each density was decided.
    pub sources: Vec<DensitySource>,
    /// The final scale $\varepsilon$ (`None` when every layer is fixed or dense).
    pub epsilon: Option<f64>,
    /// The target global density $D$.
    pub target: f64,
}

impl LayerDensities {
    /// Expected number of kept weights $\sum_l d_l n_l$.
    pub fn expected_kept(&self, layers: &[LayerShape]) -> f64 {
        self.densities
            .iter()
            .zip(layers)
            .map(|(d, l)| d * l.numel() as f64)
            .sum()
    }

    /// Overall density $\sum_l d_l n_l / \sum_l n_l$ (equals the target to rounding).
    pub fn overall_density(&self, layers: &[LayerShape]) -> f64 {
        let total: f64 = layers.iter().map(|l| l.numel() as f64).sum();
        self.expected_kept(layers) / total
    }
}

/// Per-layer densities meeting the global `density` exactly.
///
/// `overrides` fixes the density of named layers (e.g. `("conv1.weight", 1.0)` keeps the first
/// layer dense, `("fc.weight", 0.2)` fixes the classifier); the remaining layers are
/// re-budgeted so that $\sum_l d_l n_l = D \sum_l n_l$ still holds. This differs from
/// RigL's `custom_sparsity_map`, which leaves the custom layers out of the budget entirely
/// (the free layers alone meet $D$, so the network as a whole misses it), and from
/// Random_Pruning's `uniform_plus`, which divides the remaining budget by the size of the
/// *whole* network and therefore ends below the target.
///
/// Errors: empty `layers`, `density` outside (0, 1], an override naming no layer (or a layer
/// twice), an override density outside (0, 1], duplicate layer names, and a target that the
/// overrides make unreachable (fixed layers alone exceed it, or the free layers cannot reach
/// it even when dense).
pub fn layer_densities(
    layers: &[LayerShape],
    density: f64,
    allocation: Allocation,
    overrides: &[(&str, f64)],
) -> Result<LayerDensities> {
    if layers.is_empty() {
        return Err(Error::invalid(
            "layers",
            "[]",
            "at least one layer is needed",
        ));
    }
    check::density("density", density)?;
    if let Allocation::ErdosRenyiKernel { power } = allocation {
        check_power(power)?;
    }
    for (i, layer) in layers.iter().enumerate() {
        // Re-validate: the fields are private, but a clone of a valid value stays valid; this
        // catches duplicate names, which overrides could not address unambiguously.
        if layers[..i].iter().any(|other| other.name == layer.name) {
            return Err(Error::invalid(
                "layers",
                format!("`{}`", layer.name),
                "layer names must be unique",
            ));
        }
    }

    let mut fixed: Vec<Option<f64>> = vec![None; layers.len()];
    for &(name, d) in overrides {
        let index = layers.iter().position(|l| l.name == name).ok_or_else(|| {
            Error::invalid("overrides", format!("`{name}`"), "no layer has this name")
        })?;
        if fixed[index].is_some() {
            return Err(Error::invalid(
                "overrides",
                format!("`{name}`"),
                "the layer is overridden twice",
            ));
        }
        check::density("overrides", d).map_err(|_| {
            Error::invalid(
                "overrides",
                format!("`{name}` = {d}"),
                "an override density must lie in (0, 1]",
            )
        })?;
        fixed[index] = Some(d);
    }

    let sizes: Vec<f64> = layers.iter().map(|l| l.numel() as f64).collect();
    let total: f64 = sizes.iter().sum();
    let target_kept = density * total;
    let fixed_kept: f64 = fixed
        .iter()
        .zip(&sizes)
        .filter_map(|(f, n)| f.map(|d| d * n))
        .sum();
    let free: Vec<usize> = (0..layers.len()).filter(|&i| fixed[i].is_none()).collect();
    let free_size: f64 = free.iter().map(|&i| sizes[i]).sum();
    let tolerance = 1e-12 * total;
    let budget = target_kept - fixed_kept;

    let unreachable = |why: String| {
        Error::invalid(
            "density",
            density,
            format!("the target is unreachable with these overrides: {why}"),
        )
    };
    if free.is_empty() {
        if (budget).abs() > tolerance {
            return Err(unreachable(format!(
                "every layer is fixed and they keep {fixed_kept} weights instead of {target_kept}"
            )));
        }
    } else if budget <= tolerance {
        return Err(unreachable(format!(
            "the fixed layers keep {fixed_kept} weights, leaving no positive budget of the \
             {target_kept} allowed for the free layers"
        )));
    } else if budget > free_size + tolerance {
        return Err(unreachable(format!(
            "the free layers would need {budget} weights but have only {free_size}"
        )));
    }

    let mut raw: Vec<f64> = layers
        .iter()
        .map(|l| l.raw_score(allocation))
        .collect::<Result<_>>()?;
    if let Allocation::ErdosRenyiKernel { power } = allocation {
        if !raw.iter().all(|r| r.is_normal()) {
            raw = erk_scores_relative_to_largest(layers, power)?;
        }
    }

    let mut made_dense = vec![false; layers.len()];
    let mut epsilon = None;
    loop {
        let sparse: Vec<usize> = free.iter().copied().filter(|&i| !made_dense[i]).collect();
        if sparse.is_empty() {
            break;
        }
        let dense_size: f64 = free
            .iter()
            .filter(|&&i| made_dense[i])
            .map(|&i| sizes[i])
            .sum();
        let rhs = budget - dense_size;
        let divisor: f64 = sparse.iter().map(|&i| raw[i] * sizes[i]).sum();
        let eps = rhs / divisor;
        let max_raw = sparse.iter().map(|&i| raw[i]).fold(f64::MIN, f64::max);
        if max_raw * eps > 1.0 {
            for &i in &sparse {
                if raw[i] == max_raw {
                    made_dense[i] = true;
                }
            }
        } else {
            epsilon = Some(eps);
            break;
        }
    }

    let mut densities = Vec::with_capacity(layers.len());
    let mut sources = Vec::with_capacity(layers.len());
    for i in 0..layers.len() {
        let (d, source) = match (fixed[i], made_dense[i], epsilon) {
            (Some(d), _, _) => (d, DensitySource::Fixed),
            (None, true, _) => (1.0, DensitySource::MadeDense),
            (None, false, Some(eps)) => (eps * raw[i], DensitySource::Scaled),
            (None, false, None) => unreachable!("the loop only ends without ε when all are dense"),
        };
        densities.push(d);
        sources.push(source);
    }
    let result = LayerDensities {
        densities,
        sources,
        epsilon,
        target: density,
    };
    // Every free layer ended dense while the budget was (to rounding) exactly their size;
    // anything else would be a budget the dense layers cannot absorb.
    let kept = result.expected_kept(layers);
    if (kept - target_kept).abs() > tolerance {
        return Err(unreachable(format!(
            "the allocation keeps {kept} weights instead of {target_kept}"
        )));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn worked_example() -> Vec<LayerShape> {
        [
            ("conv1", vec![16, 3, 3, 3]),
            ("conv2", vec![32, 16, 3, 3]),
            ("conv3", vec![64, 32, 3, 3]),
            ("conv4", vec![128, 64, 3, 3]),
            ("fc1", vec![256, 512]),
            ("fc2", vec![10, 256]),
        ]
        .into_iter()
        .map(|(n, d)| LayerShape::new(n, &d).unwrap())
        .collect()
    }

    #[test]
    fn worked_example_digit_for_digit() {
        let layers = worked_example();
        let result = layer_densities(&layers, 0.1, Allocation::ERK, &[]).unwrap();
        let rounded: Vec<String> = result.densities.iter().map(|d| format!("{d:.6}")).collect();
        assert_eq!(
            rounded,
            ["1.000000", "0.209843", "0.099092", "0.048089", "0.104921", "1.000000"]
        );
        assert_eq!(format!("{:.6}", result.epsilon.unwrap()), "17.906595");
        assert_eq!(result.sources[0], DensitySource::MadeDense);
        assert_eq!(result.sources[5], DensitySource::MadeDense);
        let overall = result.overall_density(&layers);
        assert_abs_diff_eq!(overall, 0.1, epsilon = 1e-12);
    }

    #[test]
    fn uniform_without_overrides_is_constant() {
        let layers = worked_example();
        let result = layer_densities(&layers, 0.3, Allocation::Uniform, &[]).unwrap();
        for d in &result.densities {
            assert_abs_diff_eq!(*d, 0.3, epsilon = 1e-15);
        }
    }

    #[test]
    fn overrides_are_rebudgeted() {
        let layers = worked_example();
        let result = layer_densities(
            &layers,
            0.1,
            Allocation::Uniform,
            &[("conv1", 1.0), ("fc2", 0.2)],
        )
        .unwrap();
        assert_eq!(result.densities[0], 1.0);
        assert_eq!(result.densities[5], 0.2);
        assert_abs_diff_eq!(result.overall_density(&layers), 0.1, epsilon = 1e-12);
        // The free layers share one density, below 0.1 because the fixed ones exceed it.
        let free = result.densities[1];
        assert!(free < 0.1);
        for d in &result.densities[1..5] {
            assert_eq!(*d, free);
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let layers = worked_example();
        let err = layer_densities(&[], 0.1, Allocation::ERK, &[]).unwrap_err();
        assert!(err.to_string().contains("layers"), "{err}");
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let err = layer_densities(&layers, bad, Allocation::ERK, &[]).unwrap_err();
            assert!(err.to_string().contains("density"), "{err}");
        }
        let err = layer_densities(&layers, 0.1, Allocation::ERK, &[("nope", 1.0)]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = layer_densities(&layers, 0.1, Allocation::ERK, &[("conv1", 0.0)]).unwrap_err();
        assert!(err.to_string().contains("overrides"), "{err}");
        // fc1 alone holds 131072 of 230832 weights: dense fc1 exceeds a 10% target.
        let err = layer_densities(&layers, 0.1, Allocation::ERK, &[("fc1", 1.0)]).unwrap_err();
        assert!(err.to_string().contains("unreachable"), "{err}");
        // Fixing fc1 very sparse leaves more than the other layers can hold at 90%.
        let err = layer_densities(&layers, 0.9, Allocation::ERK, &[("fc1", 0.01)]).unwrap_err();
        assert!(err.to_string().contains("unreachable"), "{err}");
        let err = LayerShape::new("x", &[3, 0]).unwrap_err();
        assert!(err.to_string().contains("dims"), "{err}");
        let err = LayerShape::new("x", &[]).unwrap_err();
        assert!(err.to_string().contains("dims"), "{err}");
        let err = layer_densities(
            &layers,
            0.1,
            Allocation::ErdosRenyiKernel { power: f64::NAN },
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("power"), "{err}");
        let one_d = [LayerShape::new("b", &[7]).unwrap()];
        assert!(layer_densities(&one_d, 0.5, Allocation::ErdosRenyi, &[]).is_err());
        let dup = [layers[0].clone(), layers[0].clone()];
        assert!(layer_densities(&dup, 0.5, Allocation::ERK, &[]).is_err());
    }

    #[test]
    fn large_erk_powers_give_finite_densities_or_a_named_error() {
        let layers = worked_example();
        // At p = 150 the plain score of conv4 underflows (0.0027^150 < 1e-308), while every
        // ratio to the largest (fc2: 0.104) stays normal (≥ 0.026^150 ≈ 1e-238): the allocation
        // must still meet the target with densities in (0, 1].
        let plain: Vec<f64> = layers
            .iter()
            .map(|l| {
                l.raw_score(Allocation::ErdosRenyiKernel { power: 150.0 })
                    .unwrap()
            })
            .collect();
        assert!(plain.iter().any(|&r| !r.is_normal()), "{plain:?}");
        let power = 150.0;
        let result =
            layer_densities(&layers, 0.3, Allocation::ErdosRenyiKernel { power }, &[]).unwrap();
        assert!(result.densities.iter().all(|&d| d > 0.0 && d <= 1.0));
        let kept: f64 = result
            .densities
            .iter()
            .zip(&layers)
            .map(|(d, l)| d * l.numel() as f64)
            .sum();
        let total: f64 = layers.iter().map(|l| l.numel() as f64).sum();
        assert_abs_diff_eq!(kept / total, 0.3, epsilon = 1e-9);
        // A power so large that a relative score underflows too is a named error, never NaN.
        let err = layer_densities(
            &layers,
            0.3,
            Allocation::ErdosRenyiKernel { power: 1e6 },
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("power"), "{err}");
    }

    #[test]
    fn density_one_makes_everything_dense() {
        let layers = worked_example();
        let result = layer_densities(&layers, 1.0, Allocation::ERK, &[]).unwrap();
        assert!(result.densities.iter().all(|&d| d == 1.0));
    }
}
