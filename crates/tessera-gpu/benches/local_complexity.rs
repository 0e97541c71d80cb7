//! Local complexity on the GPU against tessera-spline on the CPU: an MNIST-sized MLP
//! (784-512-512-10, ReLU), P = 40 vertices of radius 0.005, 64 samples. The GPU time includes
//! the CPU forward of the vertices the error bounds leave open (counted once and printed), as
//! the `cuda` routing does, and without it.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::{GpuContext, LcLayer, LcNetwork};
use tessera_spline::{
    LocalComplexityConfig, LocalComplexityEstimator, PiecewiseLinear, PiecewiseLinearNet,
    PlActivation,
};

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let widths = [784usize, 512, 512, 10];
    let params: Vec<(Array2<f32>, Array1<f32>)> = widths
        .windows(2)
        .map(|w| {
            let scale = (2.0 / w[0] as f32).sqrt();
            let weight = Array2::from_shape_simple_fn((w[1], w[0]), || {
                scale * rng.random_range(-1.0f32..1.0)
            });
            let bias = Array1::from_shape_simple_fn(w[1], || 0.1 * rng.random_range(-1.0f32..1.0));
            (weight, bias)
        })
        .collect();
    let net = PiecewiseLinearNet::from_arrays(params, PlActivation::Relu).expect("network");
    let lc = LocalComplexityEstimator::<f32>::new(LocalComplexityConfig::default(), widths[0])
        .expect("estimator");
    let x = Array2::from_shape_simple_fn((64, widths[0]), || rng.random_range(0.0f32..1.0));
    let mut group = c.benchmark_group("local_complexity_784_512_512_10_p40_b64");
    group.sample_size(10);
    group.bench_function("cpu", |b| {
        b.iter(|| lc.compute(&net, x.view()).expect("cpu"))
    });
    let context = match GpuContext::new(0) {
        Ok(context) => context,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            return;
        }
    };
    let layers: Vec<LcLayer<'_>> = net
        .layers()
        .iter()
        .map(|l| LcLayer {
            weight: l.weight(),
            bias: l.bias(),
            negative_slope: l.activation().negative_slope() as f32,
            skip_from: l.skip_from(),
        })
        .collect();
    let gpu = LcNetwork::new(&context, &layers).expect("upload");
    let counted = [0usize, 1];
    let frame = lc.frame().to_owned();
    let first = gpu
        .counts(&context, frame.view(), 0.005, x.view(), &counted)
        .expect("gpu");
    let open_rows: usize = first.uncertain.iter().map(|u| u.vertices.len()).sum();
    println!(
        "open samples: {} of {}; vertex rows recomputed on the CPU: {open_rows} of {}",
        first.uncertain.len(),
        x.nrows(),
        x.nrows() * lc.config().num_vertices
    );
    group.bench_function("gpu_then_cpu_recompute", |b| {
        b.iter(|| {
            let result = gpu
                .counts(&context, frame.view(), 0.005, x.view(), &counted)
                .expect("gpu");
            // What the routing adds: the CPU forward of the vertices left open.
            for open in &result.uncertain {
                let rows = lc
                    .vertices(x.row(open.sample))
                    .expect("vertices")
                    .select(Axis(0), &open.vertices);
                net.pre_activations(rows.view()).expect("cpu part");
            }
            result
        })
    });
    group.bench_function("gpu_counts_only", |b| {
        b.iter(|| {
            let result = gpu
                .counts(&context, frame.view(), 0.005, x.view(), &counted)
                .expect("gpu");
            context.synchronize().expect("synchronize");
            result
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
