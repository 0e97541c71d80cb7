//! Properties over random networks, planes and rescalings.

use proptest::prelude::*;
use tessera_spline::{
    LocalComplexityConfig, LocalComplexityEstimator, Partition2d, PartitionConfig,
    PiecewiseLinearNet, PlActivation, Plane, Polygon,
};

use crate::common::{gaussian, gaussian_matrix, random_net};

/// Multiplies hidden neuron `i` of layer `l`'s incoming weights and bias by `c > 0` and the
/// next layer's column `i` by `1/c`: the same function (ReLU is positively homogeneous).
fn rescaled(net: &PiecewiseLinearNet<f64>, l: usize, i: usize, c: f64) -> PiecewiseLinearNet<f64> {
    let params = net
        .layers()
        .iter()
        .enumerate()
        .map(|(j, layer)| {
            let mut w = layer.weight().to_owned();
            let mut b = layer.bias().to_owned();
            if j == l {
                w.row_mut(i).mapv_inplace(|v| v * c);
                b[i] *= c;
            }
            if j == l + 1 {
                w.column_mut(i).mapv_inplace(|v| v / c);
            }
            (w, b)
        })
        .collect();
    PiecewiseLinearNet::from_arrays(params, PlActivation::Relu).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn partitions_tile_the_domain_and_survive_neuron_rescaling(
        seed in 0u64..1000,
        layer in 0usize..2,
        neuron in 0usize..8,
        log_c in -3.0f64..3.0,
    ) {
        let net = random_net(&[4, 8, 8, 3], PlActivation::Relu, seed);
        let plane = Plane::new(
            gaussian(4, seed + 1).view(),
            gaussian(4, seed + 2).view(),
            gaussian(4, seed + 3).view(),
        ).unwrap();
        let domain = Polygon::rectangle([-1.0, -1.0], [1.0, 1.0]).unwrap();
        let cfg = PartitionConfig::default();
        let a = Partition2d::compute(&net, &plane, &domain, cfg).unwrap();
        let total: f64 = a.areas().iter().sum();
        prop_assert!((total - 4.0).abs() < 4e-9);
        let scaled = rescaled(&net, layer, neuron, log_c.exp());
        let b = Partition2d::compute(&scaled, &plane, &domain, cfg).unwrap();
        prop_assert_eq!(a.num_regions(), b.num_regions());
        for (ra, rb) in a.regions().iter().zip(b.regions()) {
            prop_assert_eq!(ra.pattern(), rb.pattern());
            prop_assert!((ra.area() - rb.area()).abs() < 1e-9 * (1.0 + ra.area()));
        }
        // Local complexity counts the same neurons.
        let x = gaussian_matrix(6, 4, seed + 4);
        let est = LocalComplexityEstimator::new(LocalComplexityConfig {
            radius: 0.5, num_vertices: 6, seed, include_output: true, max_rows_per_chunk: 4096,
        }, 4).unwrap();
        prop_assert_eq!(est.compute(&net, x.view()).unwrap(), est.compute(&scaled, x.view()).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_grid_sees_at_most_the_regions_and_only_their_patterns(
        seed in 0u64..1000,
        n in 2usize..25,
        shift in 0.0f64..1.0,
    ) {
        use std::collections::HashSet;
        use tessera_spline::ActivationPatterns;
        let net = random_net(&[3, 7, 7, 2], PlActivation::LeakyRelu { slope: 0.2 }, seed);
        let plane = Plane::new(
            gaussian(3, seed + 1).view(),
            gaussian(3, seed + 2).view(),
            gaussian(3, seed + 3).view(),
        ).unwrap();
        let domain = Polygon::rectangle([-1.0, -1.0], [1.0, 1.0]).unwrap();
        let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
        let h = 2.0 / n as f64;
        let us: Vec<[f64; 2]> = (0..n * n)
            .map(|k| [-1.0 + ((k / n) as f64 + shift) * h, -1.0 + ((k % n) as f64 + shift) * h])
            .collect();
        let pats = ActivationPatterns::of(&net, plane.points(&us).view()).unwrap();
        prop_assert!(pats.num_distinct() <= part.num_regions());
        let known: HashSet<&[u64]> = part.regions().iter().map(|r| r.pattern()).collect();
        for i in 0..pats.len() {
            prop_assert!(known.contains(pats.pattern(i).unwrap()));
        }
    }
}
