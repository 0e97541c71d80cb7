//! End-to-end behaviour: learning XOR and a 2-D spiral, determinism, masks, RiFT, saving.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{
    all_module_criticalities, default_alphas, interpolation_curve, least_critical_module,
    module_robust_criticality, Activation, AdamConfig, Decay, Loss, LrSchedule, Mask, MaskPolicy,
    MaskSet, Mlp, MlpConfig, MrcConfig, OptimizerConfig, Parameterization, SgdConfig, Targets,
    Trainer,
};

fn xor() -> (Array2<f64>, Vec<usize>) {
    (
        ndarray::array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
        vec![0, 1, 1, 0],
    )
}

/// Two interleaved spiral arms, `n` points each.
fn spiral(n: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((2 * n, 2));
    let mut labels = Vec::with_capacity(2 * n);
    for arm in 0..2 {
        for i in 0..n {
            let t = 0.25 + 2.5 * std::f64::consts::PI * i as f64 / n as f64;
            let angle = t + arm as f64 * std::f64::consts::PI;
            let r = t / (2.75 * std::f64::consts::PI);
            let row = arm * n + i;
            x[[row, 0]] = r * angle.cos() + rng.random_range(-0.01..0.01);
            x[[row, 1]] = r * angle.sin() + rng.random_range(-0.01..0.01);
            labels.push(arm);
        }
    }
    (x, labels)
}

#[test]
fn learns_xor_with_sgd_momentum() {
    let (x, y) = xor();
    let mut mlp = Mlp::<f64>::new(MlpConfig::new(2, vec![16], 2), 1).unwrap();
    let sgd = OptimizerConfig::Sgd(SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    });
    let mut trainer =
        Trainer::new(&mut mlp, sgd, LrSchedule::constant(0.1).unwrap(), None).unwrap();
    let t = Targets::Hard(&y);
    for _ in 0..400 {
        trainer
            .step(&mut mlp, x.view(), &t, Loss::SoftmaxCrossEntropy)
            .unwrap();
    }
    assert_eq!(mlp.accuracy(x.view(), &t).unwrap(), 1.0);
    assert!(mlp.loss(x.view(), &t, Loss::SoftmaxCrossEntropy).unwrap() < 0.05);
}

#[test]
fn learns_a_spiral_to_full_training_accuracy() {
    let (x, y) = spiral(100, 3);
    let config = MlpConfig::new(2, vec![64, 64], 2).with_activation(Activation::Relu);
    let mut mlp = Mlp::<f32>::new(config, 4).unwrap();
    let x = x.mapv(|v| v as f32);
    let schedule = LrSchedule::new(
        0.01,
        Decay::Cosine {
            total_steps: 1500,
            final_lr: 1e-3,
        },
    )
    .unwrap()
    .with_warmup(20);
    let mut trainer = Trainer::new(&mut mlp, OptimizerConfig::adam(), schedule, None).unwrap();
    let t = Targets::Hard(&y);
    for _ in 0..1500 {
        trainer
            .step(&mut mlp, x.view(), &t, Loss::SoftmaxCrossEntropy)
            .unwrap();
    }
    assert_eq!(mlp.accuracy(x.view(), &t).unwrap(), 1.0);
}

fn train_run(seed: u64, steps: usize) -> Array1<f64> {
    let (x, y) = spiral(30, 8);
    let config = MlpConfig::new(2, vec![32, 32], 2)
        .with_activation(Activation::Gelu)
        .with_parameterization(Parameterization::MuP);
    let mut mlp = Mlp::<f64>::new(config, seed).unwrap();
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::Adam(AdamConfig {
            weight_decay: 1e-3,
            decoupled: true,
            ..AdamConfig::default()
        }),
        LrSchedule::constant(0.01).unwrap(),
        None,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..steps {
        // Mini-batches drawn from the seed as well.
        let idx: Vec<usize> = (0..16).map(|_| rng.random_range(0..x.nrows())).collect();
        let xb = x.select(ndarray::Axis(0), &idx);
        let yb: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
        trainer
            .step(
                &mut mlp,
                xb.view(),
                &Targets::Hard(&yb),
                Loss::SoftmaxCrossEntropy,
            )
            .unwrap();
    }
    mlp.params().to_owned()
}

#[test]
fn same_seed_gives_bit_identical_training() {
    let a = train_run(11, 50);
    let b = train_run(11, 50);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let c = train_run(12, 50);
    assert_ne!(a, c);
}

/// A few steps of a network large enough that its products are split across threads.
fn wide_run(threads: usize) -> Array1<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = Array2::from_shape_fn((256, 96), |_| rng.random_range(-1.0f32..1.0));
        let y: Vec<usize> = (0..256).map(|i| i % 10).collect();
        let mut mlp = Mlp::<f32>::new(MlpConfig::new(96, vec![320, 192], 10), 5).unwrap();
        let mut trainer = Trainer::new(
            &mut mlp,
            OptimizerConfig::Sgd(SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            }),
            LrSchedule::constant(0.05).unwrap(),
            None,
        )
        .unwrap();
        for _ in 0..3 {
            trainer
                .step(
                    &mut mlp,
                    x.view(),
                    &Targets::Hard(&y),
                    Loss::SoftmaxCrossEntropy,
                )
                .unwrap();
        }
        mlp.params().to_owned()
    })
}

#[test]
fn training_is_bit_identical_for_any_thread_count() {
    let one = wide_run(1);
    for threads in [2, 3] {
        let many = wide_run(threads);
        assert!(
            one.iter()
                .zip(&many)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{threads}"
        );
    }
}

fn random_masks(mlp: &Mlp<f64>, density: f64, seed: u64) -> Vec<Option<Mask>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    mlp.layers()
        .iter()
        .map(|l| {
            let keep: Vec<bool> = (0..l.fan_in * l.fan_out)
                .map(|_| rng.random_bool(density))
                .collect();
            Some(Mask::from_bools(&keep))
        })
        .collect()
}

#[test]
fn masked_training_never_revives_pruned_weights() {
    let (x, y) = spiral(20, 5);
    for (policy, optimizer) in [
        (
            MaskPolicy::default(),
            OptimizerConfig::Sgd(SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-2,
            }),
        ),
        (
            MaskPolicy {
                mask_gradients: true,
                mask_optimizer_state: true,
            },
            OptimizerConfig::adam(),
        ),
    ] {
        let mut mlp = Mlp::<f64>::new(MlpConfig::new(2, vec![16, 16], 2), 2).unwrap();
        let masks = random_masks(&mlp, 0.4, 9);
        let set = MaskSet::new(&mlp, masks.clone(), policy).unwrap();
        let mut trainer = Trainer::new(
            &mut mlp,
            optimizer,
            LrSchedule::constant(0.05).unwrap(),
            Some(set),
        )
        .unwrap();
        let pruned: Vec<usize> = mlp
            .layers()
            .iter()
            .zip(&masks)
            .flat_map(|(l, m)| {
                let m = m.as_ref().unwrap();
                l.weight_range()
                    .filter(move |&i| !m.get(i - l.weight_offset))
            })
            .collect();
        assert!(pruned.len() > 100);
        let t = Targets::Hard(&y);
        let before = mlp.loss(x.view(), &t, Loss::SoftmaxCrossEntropy).unwrap();
        for _ in 0..30 {
            trainer
                .step(&mut mlp, x.view(), &t, Loss::SoftmaxCrossEntropy)
                .unwrap();
            assert!(pruned.iter().all(|&i| mlp.params()[i] == 0.0));
            if policy.mask_optimizer_state {
                for state in trainer.optimizer_mut().state_mut() {
                    assert!(pruned.iter().all(|&i| state[i] == 0.0));
                }
            }
        }
        let after = mlp.loss(x.view(), &t, Loss::SoftmaxCrossEntropy).unwrap();
        assert!(
            after < before,
            "masked training still learns: {before} -> {after}"
        );
    }
}

#[test]
fn rift_criticality_fine_tuning_and_interpolation() {
    let (x, y) = spiral(30, 6);
    let t = Targets::Hard(&y);
    let mut mlp = Mlp::<f64>::new(MlpConfig::new(2, vec![24, 24], 2), 3).unwrap();
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::adam(),
        LrSchedule::constant(0.01).unwrap(),
        None,
    )
    .unwrap();
    for _ in 0..200 {
        trainer
            .step(&mut mlp, x.view(), &t, Loss::SoftmaxCrossEntropy)
            .unwrap();
    }
    let config = MrcConfig::default();
    let crits =
        all_module_criticalities(&mlp, x.view(), &t, Loss::SoftmaxCrossEntropy, &config).unwrap();
    assert_eq!(crits.len(), 3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for c in &crits {
        assert!(c.mrc >= 0.0 && c.radius > 0.0);
        // Projected ascent must beat random directions on the boundary of the same ball.
        let range = mlp.layers()[c.layer].param_range();
        let mut best_random = f64::MIN;
        for _ in 0..20 {
            let dir: Vec<f64> = range.clone().map(|_| rng.random_range(-1.0..1.0)).collect();
            let norm = dir.iter().map(|d| d * d).sum::<f64>().sqrt();
            let mut probe = mlp.clone();
            for (i, d) in range.clone().zip(&dir) {
                probe.params_mut()[i] += d * c.radius / norm;
            }
            let l = probe.loss(x.view(), &t, Loss::SoftmaxCrossEntropy).unwrap();
            best_random = best_random.max(l - c.base_loss);
        }
        assert!(
            c.mrc >= best_random,
            "layer {}: {} < {best_random}",
            c.layer,
            c.mrc
        );
    }
    // A larger ball can only be more critical.
    let wide = module_robust_criticality(
        &mlp,
        x.view(),
        &t,
        Loss::SoftmaxCrossEntropy,
        0,
        &MrcConfig {
            epsilon: 0.3,
            ..config
        },
    )
    .unwrap();
    assert!(wide.mrc >= crits[0].mrc);

    let layer = least_critical_module(&crits).unwrap();
    let min = crits.iter().map(|c| c.mrc).fold(f64::MAX, f64::min);
    assert_eq!(crits[layer].mrc, min);

    let initial = mlp.clone();
    let mut ft = mlp.clone();
    let mut trainer = Trainer::new(
        &mut ft,
        OptimizerConfig::adam(),
        LrSchedule::constant(0.01).unwrap(),
        None,
    )
    .unwrap();
    trainer
        .optimizer_mut()
        .set_trainable_layers(&[layer])
        .unwrap();
    for _ in 0..50 {
        trainer
            .step(&mut ft, x.view(), &t, Loss::SoftmaxCrossEntropy)
            .unwrap();
    }
    for (j, l) in ft.layers().iter().enumerate() {
        let changed = l
            .param_range()
            .any(|i| ft.params()[i] != initial.params()[i]);
        assert_eq!(changed, j == layer, "layer {j}");
    }
    let curve = interpolation_curve(
        &initial,
        &ft,
        x.view(),
        &t,
        Loss::SoftmaxCrossEntropy,
        &default_alphas(),
    )
    .unwrap();
    assert_eq!(curve.len(), 11);
    let l0 = initial
        .loss(x.view(), &t, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let l1 = ft.loss(x.view(), &t, Loss::SoftmaxCrossEntropy).unwrap();
    assert_abs_diff_eq!(curve[0].loss, l0, epsilon = 1e-12);
    assert_abs_diff_eq!(curve[10].loss, l1, epsilon = 1e-12);
    assert_eq!(curve[10].accuracy, ft.accuracy(x.view(), &t).unwrap());
    assert_abs_diff_eq!(curve[5].alpha, 0.5, epsilon = 1e-15);
}

#[test]
fn safetensors_round_trip_and_checks() {
    let config = MlpConfig::new(3, vec![5, 4], 2).with_activation(Activation::Gelu);
    let a = Mlp::<f64>::new(config.clone(), 1).unwrap();
    let bytes = a.to_safetensors().unwrap();
    let mut b = Mlp::<f64>::new(config.clone(), 2).unwrap();
    assert_ne!(a.params(), b.params());
    b.load_safetensors(&bytes).unwrap();
    assert_eq!(a.params(), b.params());
    // Cross precision: f64 file into an f32 network and back through a file.
    let mut c = Mlp::<f32>::new(config.clone(), 3).unwrap();
    c.load_safetensors(&bytes).unwrap();
    assert!(c
        .params()
        .iter()
        .zip(a.params())
        .all(|(&x, &y)| x == y as f32));
    let path = std::env::temp_dir().join(format!("tessera-nn-{}.safetensors", std::process::id()));
    c.save_safetensors_file(&path).unwrap();
    let mut d = Mlp::<f32>::new(config, 4).unwrap();
    d.load_safetensors_file(&path).unwrap();
    assert_eq!(c.params(), d.params());
    std::fs::remove_file(&path).unwrap();
    // A different architecture is rejected by name and shape.
    let mut other = Mlp::<f64>::new(MlpConfig::new(3, vec![6, 4], 2), 1).unwrap();
    let err = other.load_safetensors(&bytes).unwrap_err().to_string();
    assert!(err.contains("layers.0.weight"), "{err}");
    assert!(other.load_safetensors(b"not a safetensors file").is_err());
    assert!(d
        .load_safetensors_file("/nonexistent/dir/x.safetensors")
        .is_err());
}
