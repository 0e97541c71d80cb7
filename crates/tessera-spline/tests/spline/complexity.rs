//! Local complexity against a naive count, the closed form and across thread pools.

use approx::assert_abs_diff_eq;
use ndarray::{s, Array2};
use tessera_nn::{Mlp, MlpConfig, ResidualConfig};
use tessera_spline::{
    ActivationPatterns, LocalComplexityConfig, LocalComplexityEstimator, PiecewiseLinear,
    PlActivation,
};

use crate::common::{gaussian_matrix, random_net};

fn config(p: usize, r: f64) -> LocalComplexityConfig {
    LocalComplexityConfig {
        radius: r,
        num_vertices: p,
        seed: 17,
        include_output: false,
        max_rows_per_chunk: 64,
    }
}

#[test]
fn frame_is_orthonormal_and_seeded() {
    let est = LocalComplexityEstimator::<f64>::new(config(20, 1.0), 50).unwrap();
    let f = est.frame();
    let gram = f.dot(&f.t());
    for i in 0..10 {
        for j in 0..10 {
            let want = if i == j { 1.0 } else { 0.0 };
            assert_abs_diff_eq!(gram[[i, j]], want, epsilon = 1e-13);
        }
    }
    let again = LocalComplexityEstimator::<f64>::new(config(20, 1.0), 50).unwrap();
    assert_eq!(again.frame(), f);
    let other = LocalComplexityEstimator::<f64>::new(
        LocalComplexityConfig {
            seed: 18,
            ..config(20, 1.0)
        },
        50,
    )
    .unwrap();
    assert_ne!(other.frame(), f);
}

#[test]
fn counts_match_a_naive_count_over_the_vertices() {
    let net = random_net(&[12, 20, 20, 5], PlActivation::Relu, 3);
    let x = gaussian_matrix(7, 12, 4);
    for include_output in [false, true] {
        let est = LocalComplexityEstimator::new(
            LocalComplexityConfig {
                include_output,
                ..config(10, 0.4)
            },
            12,
        )
        .unwrap();
        let lc = est.compute(&net, x.view()).unwrap();
        let want_layers: Vec<usize> = if include_output {
            vec![0, 1, 2]
        } else {
            vec![0, 1]
        };
        assert_eq!(lc.layers(), want_layers.as_slice());
        for i in 0..7 {
            let v = est.vertices(x.row(i)).unwrap();
            // Vertices are x ± r·v_p with the frame rows.
            for p in 0..5 {
                let dist = (&v.row(p) - &x.row(i)).mapv(|e| e * e).sum().sqrt();
                assert_abs_diff_eq!(dist, 0.4, epsilon = 1e-12);
                let back = &v.row(p) + &v.row(p + 5);
                assert_abs_diff_eq!(back, &x.row(i) * 2.0, epsilon = 1e-12);
            }
            let pres = net.pre_activations(v.view()).unwrap();
            for (slot, &l) in lc.layers().iter().enumerate() {
                let pre = &pres[l];
                let naive = (0..pre.ncols())
                    .filter(|&n| {
                        let col = pre.column(n);
                        let pos = col.iter().any(|&z| z > 0.0);
                        let neg = col.iter().any(|&z| z < 0.0);
                        let zero = col.iter().any(|&z| z == 0.0);
                        (pos as u8 + neg as u8 + zero as u8) > 1
                    })
                    .count();
                assert_eq!(lc.counts()[[i, slot]], naive, "row {i} layer {l}");
            }
        }
        let totals = lc.totals();
        assert_eq!(totals[0], lc.counts().row(0).sum());
        let frac = lc.fractions();
        assert_abs_diff_eq!(
            frac[[0, 0]],
            lc.counts()[[0, 0]] as f64 / 20.0,
            epsilon = 1e-15
        );
        assert!(lc.mean_total() > 0.0);
    }
}

#[test]
fn first_layer_equals_the_closed_form() {
    let mlp = Mlp::<f64>::new(MlpConfig::new(30, vec![40, 40], 10), 8).unwrap();
    let x = gaussian_matrix(25, 30, 9);
    for r in [0.05, 0.3, 1.0] {
        let est = LocalComplexityEstimator::new(config(16, r), 30).unwrap();
        let lc = est.compute(&mlp, x.view()).unwrap();
        let closed = est
            .first_layer_closed_form(mlp.weight(0).unwrap(), mlp.bias(0).unwrap(), x.view())
            .unwrap();
        assert_eq!(lc.counts().column(0).to_vec(), closed.to_vec(), "r = {r}");
    }
    // The count grows with the radius (nested cross-polytopes).
    let small = LocalComplexityEstimator::new(config(16, 0.05), 30).unwrap();
    let large = LocalComplexityEstimator::new(config(16, 1.0), 30).unwrap();
    let a = small.compute(&mlp, x.view()).unwrap();
    let b = large.compute(&mlp, x.view()).unwrap();
    for i in 0..25 {
        assert!(a.counts()[[i, 0]] <= b.counts()[[i, 0]]);
    }
    assert!(b.mean_total() > a.mean_total());
}

#[test]
fn bit_identical_for_one_and_two_threads() {
    let mlp = Mlp::<f32>::new(MlpConfig::new(64, vec![128, 128, 128], 10), 1).unwrap();
    let x = gaussian_matrix(40, 64, 2).mapv(|v| v as f32);
    let est = LocalComplexityEstimator::new(
        LocalComplexityConfig {
            include_output: true,
            max_rows_per_chunk: 200,
            ..config(20, 0.3)
        },
        64,
    )
    .unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| est.compute(&mlp, x.view()).unwrap())
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one, two);
    assert!(one.mean_total() > 0.0);
    // Chunking changes nothing either.
    let whole = LocalComplexityEstimator::new(
        LocalComplexityConfig {
            include_output: true,
            max_rows_per_chunk: 1 << 20,
            ..config(20, 0.3)
        },
        64,
    )
    .unwrap()
    .compute(&mlp, x.view())
    .unwrap();
    assert_eq!(whole.counts(), one.counts());
}

#[test]
fn residual_mlps_are_read_through_their_forward_pass() {
    let cfg = MlpConfig::new(10, vec![16, 16], 4).with_residual(ResidualConfig {
        blocks_per_stage: 1,
        branch_scale: 0.2,
        branch_depth: 1,
    });
    let mlp = Mlp::<f64>::new(cfg, 3).unwrap();
    let info = mlp.layer_info();
    assert_eq!(info.len(), mlp.num_layers());
    let x = gaussian_matrix(5, 10, 4);
    let est = LocalComplexityEstimator::new(config(8, 0.5), 10).unwrap();
    let lc = est.compute(&mlp, x.view()).unwrap();
    assert_eq!(lc.layers().len(), mlp.num_layers() - 1);
    let pats = ActivationPatterns::of(&mlp, x.view()).unwrap();
    assert_eq!(pats.num_neurons(), 16 * 4);
    assert_eq!(pats.len(), 5);
    let h = pats.hamming_matrix();
    for i in 0..5 {
        assert_eq!(h[[i, i]], 0);
        for j in 0..5 {
            assert_eq!(h[[i, j]], h[[j, i]]);
            let naive = (0..pats.num_neurons())
                .filter(|&n| pats.is_active(i, n).unwrap() != pats.is_active(j, n).unwrap())
                .count();
            assert_eq!(h[[i, j]], naive);
        }
    }
    // Pattern bits are the signs of the forward pass's pre-activations.
    let pres = mlp.pre_activations(x.slice(s![0..1, ..])).unwrap();
    let mut n = 0;
    for pre in &pres[..pres.len() - 1] {
        for &z in pre.row(0) {
            assert_eq!(pats.is_active(0, n).unwrap(), z > 0.0);
            n += 1;
        }
    }
}

#[test]
fn distinct_patterns_count_identical_rows_once() {
    let net = random_net(&[3, 8, 2], PlActivation::Relu, 5);
    let mut x = Array2::zeros((4, 3));
    x.row_mut(0).assign(&ndarray::array![0.1, 0.2, 0.3]);
    x.row_mut(1).assign(&ndarray::array![0.1, 0.2, 0.3]);
    x.row_mut(2).assign(&ndarray::array![-3.0, 2.0, 1.0]);
    x.row_mut(3).assign(&ndarray::array![0.1, 0.2, 0.3 + 1e-12]);
    let p = ActivationPatterns::of(&net, x.view()).unwrap();
    assert_eq!(p.hamming(0, 1).unwrap(), 0);
    assert!(p.hamming(0, 2).unwrap() > 0);
    assert_eq!(p.num_distinct(), 2);
}

/// The `cuda` routing recomputes the samples the GPU could not certify in a batch of their
/// own: a sample's counts must not depend on the other samples of its batch (or chunk).
#[test]
fn counts_of_a_sample_do_not_depend_on_its_batch() {
    let net = random_net(&[12, 40, 30, 5], PlActivation::Relu, 5);
    let net = tessera_spline::PiecewiseLinearNet::from_arrays(
        net.layers()
            .iter()
            .map(|l| (l.weight().mapv(|v| v as f32), l.bias().mapv(|v| v as f32)))
            .collect(),
        PlActivation::Relu,
    )
    .unwrap();
    let x = gaussian_matrix(23, 12, 6).mapv(|v| v as f32);
    let est = LocalComplexityEstimator::<f32>::new(config(8, 0.3), 12).unwrap();
    let all = est.compute(&net, x.view()).unwrap();
    let subset = [3usize, 4, 17, 22];
    let some = est
        .compute(&net, x.select(ndarray::Axis(0), &subset).view())
        .unwrap();
    for (row, &sample) in subset.iter().enumerate() {
        assert_eq!(some.counts().row(row), all.counts().row(sample));
    }
    assert!(
        all.counts().iter().any(|&c| c > 0),
        "radius too small to test anything"
    );
}

#[test]
fn only_plain_networks_offer_themselves_to_the_gpu_path() {
    let net = random_net(&[4, 6, 2], PlActivation::Relu, 1);
    assert!(net.as_net().is_some_and(|n| std::ptr::eq(n, &net)));
    let mlp = Mlp::<f64>::new(MlpConfig::new(4, vec![6], 2), 1).unwrap();
    assert!(mlp.as_net().is_none());
}
