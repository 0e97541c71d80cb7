//! The exact 2-D partition and the segment partition against independent references.

use approx::{assert_abs_diff_eq, assert_relative_eq};
use std::collections::HashSet;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_spline::{
    ActivationPatterns, Partition2d, PartitionConfig, PiecewiseLinear, PiecewiseLinearNet,
    PlActivation, Plane, Polygon, SegmentPartition, SvgOptions,
};

use crate::common::{gaussian, grid, interior_point, random_net};

fn plane_for(d: usize, seed: u64) -> Plane {
    Plane::new(
        gaussian(d, seed).view(),
        gaussian(d, seed + 1).view(),
        gaussian(d, seed + 2).view(),
    )
    .expect("random plane")
}

/// Lines `a·u + d = 0` of the first layer in plane coordinates, computed directly.
fn first_layer_lines(net: &PiecewiseLinearNet<f64>, plane: &Plane) -> Vec<([f64; 2], f64)> {
    let l = &net.layers()[0];
    let w = l.weight();
    (0..l.width())
        .map(|i| {
            let row = w.row(i);
            (
                [row.dot(&plane.e1()), row.dot(&plane.e2())],
                row.dot(&plane.origin()) + l.bias()[i],
            )
        })
        .collect()
}

#[test]
fn one_layer_gives_one_plus_lines_plus_interior_intersections() {
    for seed in 0..6u64 {
        let net = random_net(&[5, 9, 3], PlActivation::Relu, 100 + seed);
        let plane = plane_for(5, 200 + seed);
        let (lo, hi) = (-1.5, 1.5);
        let domain = Polygon::rectangle([lo, lo], [hi, hi]).unwrap();
        let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();

        let lines = first_layer_lines(&net, &plane);
        let corners = [[lo, lo], [hi, lo], [hi, hi], [lo, hi]];
        let crossing: Vec<_> = lines
            .iter()
            .filter(|(a, d)| {
                let s: Vec<f64> = corners
                    .iter()
                    .map(|u| a[0] * u[0] + a[1] * u[1] + d)
                    .collect();
                s.iter().any(|&v| v > 0.0) && s.iter().any(|&v| v < 0.0)
            })
            .collect();
        let mut inside = 0;
        for i in 0..lines.len() {
            for j in i + 1..lines.len() {
                let ((a, d), (b, e)) = (lines[i], lines[j]);
                let det = a[0] * b[1] - a[1] * b[0];
                let u = [(-d * b[1] + e * a[1]) / det, (-a[0] * e + b[0] * d) / det];
                if u.iter().all(|&t| t > lo && t < hi) {
                    inside += 1;
                }
            }
        }
        let expected = 1 + crossing.len() + inside;
        assert!(
            crossing.len() >= 2,
            "seed {seed}: a test that exercises lines"
        );
        assert_eq!(part.num_regions(), expected, "seed {seed}");
        assert_eq!(part.num_distinct_patterns(), expected, "seed {seed}");
    }
}

#[test]
fn areas_sum_to_the_domain_area() {
    let net = random_net(&[6, 12, 12, 10, 4], PlActivation::Relu, 7);
    let plane = plane_for(6, 8);
    let domain = Polygon::new(vec![
        [-2.0, -1.0],
        [2.5, -1.5],
        [3.0, 2.0],
        [0.0, 3.0],
        [-2.5, 1.0],
    ])
    .unwrap();
    let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    assert!(part.num_regions() > 50, "{}", part.num_regions());
    let total: f64 = part.areas().iter().sum();
    let area = domain.area();
    assert_relative_eq!(total, area, max_relative = 1e-9);
    assert!(part.areas().iter().all(|&a| a > 0.0));
    // The class cells tile the domain too.
    let cells: f64 = part.class_cells().iter().map(|c| c.polygon.area()).sum();
    assert_relative_eq!(cells, area, max_relative = 1e-9);
}

#[test]
fn region_maps_reproduce_the_network_at_interior_points() {
    for act in [PlActivation::Relu, PlActivation::LeakyRelu { slope: 0.1 }] {
        let net = random_net(&[8, 16, 16, 5], act, 11);
        let plane = plane_for(8, 12);
        let domain = Polygon::rectangle([-1.0, -1.0], [1.0, 1.0]).unwrap();
        let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut us = Vec::new();
        for region in part.regions() {
            for _ in 0..3 {
                us.push(interior_point(region.polygon(), &mut rng));
            }
        }
        let x = plane.points(&us);
        let logits = net.predict(x.view()).unwrap();
        let patterns = ActivationPatterns::of(&net, x.view()).unwrap();
        for (k, &u) in us.iter().enumerate() {
            let region = &part.regions()[k / 3];
            let z = region.logits_at(u);
            let scale = 1.0 + logits.row(k).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in z.iter().zip(logits.row(k)) {
                assert_abs_diff_eq!(a, b, epsilon = 1e-9 * scale);
            }
            assert_eq!(region.pattern(), patterns.pattern(k).unwrap(), "{act:?}");
            assert_eq!(part.region_containing(u), Some(k / 3), "{act:?}");
        }
    }
}

#[test]
fn grid_patterns_bound_the_region_count_and_match_it_on_a_fine_grid() {
    let net = random_net(&[2, 5, 5, 3], PlActivation::Relu, 21);
    let plane = Plane::new(
        ndarray::array![0.0, 0.0].view(),
        ndarray::array![1.0, 0.0].view(),
        ndarray::array![0.0, 1.0].view(),
    )
    .unwrap();
    let domain = Polygon::rectangle([-2.0, -2.0], [2.0, 2.0]).unwrap();
    let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    let regions: HashSet<Vec<u64>> = part
        .regions()
        .iter()
        .map(|r| r.pattern().to_vec())
        .collect();
    assert_eq!(regions.len(), part.num_regions());
    for (n, must_match) in [(7usize, false), (31, false), (400, true)] {
        let x = plane.points(&grid(-2.0, 2.0, n));
        let pats = ActivationPatterns::of(&net, x.view()).unwrap();
        assert!(part.num_regions() >= pats.num_distinct(), "grid {n}");
        for i in 0..pats.len() {
            assert!(
                regions.contains(pats.pattern(i).unwrap()),
                "grid {n}: unknown pattern"
            );
        }
        if must_match {
            assert_eq!(pats.num_distinct(), part.num_regions(), "grid {n}");
        }
    }
}

#[test]
fn decision_boundary_segments_are_ties_and_separate_every_class_change() {
    let net = random_net(&[4, 10, 10, 3], PlActivation::Relu, 31);
    let plane = plane_for(4, 32);
    let domain = Polygon::rectangle([-1.5, -1.5], [1.5, 1.5]).unwrap();
    let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    let boundary = part.decision_boundary();
    assert!(!boundary.is_empty());
    // Midpoints: the two largest logits tie (checked by a direct forward pass).
    let mids: Vec<[f64; 2]> = boundary
        .iter()
        .map(|s| [(s[0][0] + s[1][0]) / 2.0, (s[0][1] + s[1][1]) / 2.0])
        .collect();
    let z = net.predict(plane.points(&mids).view()).unwrap();
    for row in z.outer_iter() {
        let mut v = row.to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        assert_relative_eq!(v[0], v[1], epsilon = 1e-9, max_relative = 1e-9);
    }
    // Grid neighbours with different predicted classes have a boundary segment between them.
    let n = 40;
    let pts = grid(-1.5, 1.5, n);
    let classes: Vec<usize> = net
        .predict(plane.points(&pts).view())
        .unwrap()
        .outer_iter()
        .map(|r| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
        .collect();
    let crosses = |p: [f64; 2], q: [f64; 2]| {
        boundary.iter().any(|s| {
            let o = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
                (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            };
            o(p, q, s[0]) * o(p, q, s[1]) <= 0.0 && o(s[0], s[1], p) * o(s[0], s[1], q) <= 0.0
        })
    };
    let mut changes = 0;
    for i in 0..n {
        for j in 0..n {
            let k = i * n + j;
            for k2 in [
                if j + 1 < n { Some(k + 1) } else { None },
                if i + 1 < n { Some(k + n) } else { None },
            ]
            .into_iter()
            .flatten()
            {
                if classes[k] != classes[k2] {
                    changes += 1;
                    assert!(crosses(pts[k], pts[k2]), "class change without a boundary");
                }
            }
        }
    }
    assert!(changes > 0, "the test needs a class change in the domain");
    let svg = part
        .to_svg(&SvgOptions {
            markers: vec![[0.0, 0.0]],
            title: Some("partition <test>".into()),
            ..SvgOptions::default()
        })
        .unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polygon").count(), part.num_regions() + 1);
    assert_eq!(svg.matches("<line").count(), boundary.len());
    assert!(svg.contains("&lt;test&gt;"));
}

#[test]
fn segment_crossings_match_the_regions_a_segment_of_the_plane_visits() {
    let net = random_net(&[5, 12, 12, 4], PlActivation::Relu, 41);
    let plane = plane_for(5, 42);
    let domain = Polygon::rectangle([-2.0, -2.0], [2.0, 2.0]).unwrap();
    let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    let (ua, ub) = ([-1.7, -1.3], [1.6, 1.9]);
    let seg = SegmentPartition::compute(
        &net,
        plane.point(ua).view(),
        plane.point(ub).view(),
        PartitionConfig::default(),
    )
    .unwrap();
    // Regions the segment passes through with positive length, by clipping it to each polygon.
    let visited = part
        .regions()
        .iter()
        .filter(|r| {
            let v = r.polygon().vertices();
            let (mut t0, mut t1) = (0.0f64, 1.0f64);
            for i in 0..v.len() {
                let (p, q) = (v[i], v[(i + 1) % v.len()]);
                let n = [-(q[1] - p[1]), q[0] - p[0]];
                let f = |t: f64| {
                    let u = [ua[0] + t * (ub[0] - ua[0]), ua[1] + t * (ub[1] - ua[1])];
                    n[0] * (u[0] - p[0]) + n[1] * (u[1] - p[1])
                };
                let (f0, f1) = (f(0.0), f(1.0));
                if f0 < 0.0 && f1 < 0.0 {
                    return false;
                }
                if f0 < 0.0 {
                    t0 = t0.max(f0 / (f0 - f1));
                } else if f1 < 0.0 {
                    t1 = t1.min(f0 / (f0 - f1));
                }
            }
            t1 - t0 > 1e-9
        })
        .count();
    assert!(seg.num_pieces() > 5);
    assert_eq!(seg.num_pieces(), visited);
    assert_eq!(seg.num_crossings() + 1, seg.num_pieces());
    // Dense sampling sees at most as many pattern changes.
    let ts: Vec<f64> = (0..=4000).map(|i| i as f64 / 4000.0).collect();
    let x = Array2::from_shape_fn((ts.len(), 5), |(i, k)| {
        let a = plane.point(ua);
        let b = plane.point(ub);
        a[k] + ts[i] * (b[k] - a[k])
    });
    let pats = ActivationPatterns::of(&net, x.view()).unwrap();
    let changes = (1..ts.len())
        .filter(|&i| pats.hamming(i - 1, i).unwrap() > 0)
        .count();
    assert!(changes <= seg.num_crossings());
    assert!(
        changes + 2 >= seg.num_crossings(),
        "{changes} vs {}",
        seg.num_crossings()
    );
    let len = (&plane.point(ub) - &plane.point(ua))
        .dot(&(&plane.point(ub) - &plane.point(ua)))
        .sqrt();
    assert_abs_diff_eq!(
        seg.density(),
        seg.num_crossings() as f64 / len,
        epsilon = 1e-12
    );
    assert!(seg.crossings().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn mlp_and_safetensors_give_the_same_partition() {
    use tessera_nn::{Mlp, MlpConfig};
    let mlp = Mlp::<f64>::new(MlpConfig::new(6, vec![10, 10], 3), 5).unwrap();
    let net = PiecewiseLinearNet::<f64>::from_safetensors(
        &mlp.to_safetensors().unwrap(),
        PlActivation::Relu,
    )
    .unwrap();
    let plane = plane_for(6, 50);
    let domain = Polygon::rectangle([-1.0, -1.0], [1.0, 1.0]).unwrap();
    let a = Partition2d::compute(&mlp, &plane, &domain, PartitionConfig::default()).unwrap();
    let b = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    assert_eq!(a.num_regions(), b.num_regions());
    assert_eq!(a.areas(), b.areas());
    let x = plane.points(&[[0.1, 0.2], [-0.5, 0.7]]);
    let pm = mlp.pre_activations(x.view()).unwrap();
    let pn = net.pre_activations(x.view()).unwrap();
    for (p, q) in pm.iter().zip(&pn) {
        for (a, b) in p.iter().zip(q) {
            assert_abs_diff_eq!(a, b, epsilon = 1e-12);
        }
    }
    // f32 networks round-trip through their own precision: the same f32 parameters give the
    // same predictions up to the rounding of the two engines' matrix kernels (tessera-nn's
    // products run on the gemm crate, the spline crate's on ndarray's).
    let mlp32 = Mlp::<f32>::new(MlpConfig::new(6, vec![10], 3), 5).unwrap();
    let net32 = PiecewiseLinearNet::<f32>::from_safetensors(
        &mlp32.to_safetensors().unwrap(),
        PlActivation::Relu,
    )
    .unwrap();
    let x32 = x.mapv(|v| v as f32);
    let (p32, q32) = (
        mlp32.predict(x32.view()).unwrap(),
        net32.predict(x32.view()).unwrap(),
    );
    assert_eq!(p32.dim(), q32.dim());
    for (a, b) in p32.iter().zip(&q32) {
        assert_relative_eq!(a, b, epsilon = 1e-5, max_relative = 1e-5);
    }
}

#[test]
fn residual_skips_are_partitioned_exactly() {
    use tessera_spline::AffineLayer;
    let base = random_net(&[4, 6, 6, 6, 3], PlActivation::Relu, 61);
    let mut layers: Vec<AffineLayer<f64>> = base.layers().to_vec();
    // Layer 2 closes a residual block from node 1 (the output of layer 0).
    layers[2] = layers[2].clone().with_skip_from(1);
    let net = PiecewiseLinearNet::new(layers).unwrap();
    let plane = plane_for(4, 62);
    let domain = Polygon::rectangle([-1.0, -1.0], [1.0, 1.0]).unwrap();
    let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let us: Vec<[f64; 2]> = part
        .regions()
        .iter()
        .map(|r| interior_point(r.polygon(), &mut rng))
        .collect();
    let z = net.predict(plane.points(&us).view()).unwrap();
    for (k, r) in part.regions().iter().enumerate() {
        let got = r.logits_at(us[k]);
        for (a, b) in got.iter().zip(z.row(k)) {
            assert_relative_eq!(a, b, epsilon = 1e-9, max_relative = 1e-9);
        }
    }
}
