//! GPU vs CPU for the products of hot paths 5 and 8: a dense layer forward (batch 1024,
//! 1024 → 1024), a convolution forward (the first conv of tessera-nn's bench CNN on 128
//! images of 3×32×32, and its second on 32×16×16 maps) and a blocked operator application
//! (a symmetric 4096 × 4096 matrix on 32 probe vectors, as SLQ issues it). The GPU side keeps
//! its operands on the device and synchronises before the clock stops; with no device the
//! bench prints `skipped: no CUDA device` and returns.
//!
//! ```text
//! cargo bench -p tessera-gpu --bench nn
//! ```

use criterion::{black_box, Criterion};
use ndarray::{Array2, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::nn::{conv2d_forward_device, dense_forward_device};
use tessera_gpu::{ConvGeometry, DenseOperator, DeviceMatrix, GpuContext};
use tessera_lanczos::LinearOperator;
use tessera_nn::layers::{Conv2d, Dense};
use tessera_nn::{Context, Layer};

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
}

fn matrix(context: &GpuContext, values: &[f32], rows: usize, cols: usize) -> DeviceMatrix<f32> {
    let view = ndarray::ArrayView2::from_shape((rows, cols), values).unwrap();
    DeviceMatrix::upload(context, "bench", view).unwrap()
}

fn dense(c: &mut Criterion, context: &GpuContext, rng: &mut ChaCha8Rng) {
    let (rows, inputs, outputs) = (1024, 1024, 1024);
    let layer = Dense::new(inputs, outputs).unwrap();
    let params = random(rng, &[Layer::<f32>::parameter_count(&layer)])
        .into_raw_vec_and_offset()
        .0;
    let x = random(rng, &[rows, inputs]);
    let mut group = c.benchmark_group("dense forward 1024×1024→1024");
    group.sample_size(10);
    group.bench_function("cpu", |b| {
        b.iter(|| {
            layer
                .forward(&params, &mut [], x.view(), Context::eval())
                .unwrap()
        })
    });
    let (w, bias) = params.split_at(inputs * outputs);
    let xd = matrix(context, x.as_slice().unwrap(), rows, inputs);
    let (wd, bd) = (
        matrix(context, w, outputs, inputs),
        matrix(context, bias, 1, outputs),
    );
    group.bench_function("gpu", |b| {
        b.iter(|| {
            let y = dense_forward_device(context, &xd, &wd, Some(&bd), false).unwrap();
            context.synchronize().unwrap();
            black_box(y)
        })
    });
    group.finish();
}

fn conv(c: &mut Criterion, context: &GpuContext, rng: &mut ChaCha8Rng) {
    for (batch, channels, side, out) in [(128, 3, 32, 32), (128, 32, 16, 64)] {
        let g = ConvGeometry {
            channels,
            height: side,
            width: side,
            out_channels: out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
        };
        let layer = Conv2d::square(channels, out, 3, 1, 1).unwrap();
        let params = random(rng, &[Layer::<f32>::parameter_count(&layer)])
            .into_raw_vec_and_offset()
            .0;
        let x = random(rng, &[batch, channels, side, side]);
        let name = format!("conv forward {batch}×{channels}×{side}×{side} → {out}");
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("cpu", |b| {
            b.iter(|| {
                layer
                    .forward(&params, &mut [], x.view(), Context::eval())
                    .unwrap()
            })
        });
        let k = channels * 9;
        let (w, bias) = params.split_at(out * k);
        let xd = matrix(
            context,
            x.as_slice().unwrap(),
            batch,
            channels * side * side,
        );
        let (wd, bd) = (matrix(context, w, out, k), matrix(context, bias, 1, out));
        group.bench_function("gpu", |b| {
            b.iter(|| {
                let y = conv2d_forward_device(context, &g, &xd, &wd, Some(&bd)).unwrap();
                context.synchronize().unwrap();
                black_box(y)
            })
        });
        group.finish();
    }
}

fn operator(c: &mut Criterion, context: &GpuContext, rng: &mut ChaCha8Rng) {
    let (n, k) = (4096, 32);
    let a = Array2::from_shape_fn((n, n), |_| rng.random_range(-1.0f32..1.0));
    let a = (&a + &a.t()) * 0.5;
    let x = Array2::from_shape_fn((n, k), |_| rng.random_range(-1.0f32..1.0));
    let mut group = c.benchmark_group("operator block 4096×4096 · 4096×32");
    group.sample_size(10);
    let mut y = Array2::zeros((n, k));
    group.bench_function("cpu", |b| b.iter(|| a.apply_batch(x.view(), y.view_mut())));
    let op = DenseOperator::new(context, a.view()).unwrap();
    let xd = DeviceMatrix::upload(context, "x", x.view()).unwrap();
    group.bench_function("gpu", |b| {
        b.iter(|| {
            let y = op.apply_device(context, &xd).unwrap();
            context.synchronize().unwrap();
            black_box(y)
        })
    });
    group.bench_function("gpu with copies", |b| {
        b.iter(|| op.apply_block(context, x.view()).unwrap())
    });
    group.finish();
}

fn main() {
    let context = match GpuContext::new(0) {
        Ok(context) => context,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            return;
        }
    };
    println!("device: {}", context.device_name());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut c = Criterion::default().configure_from_args();
    dense(&mut c, &context, &mut rng);
    conv(&mut c, &context, &mut rng);
    operator(&mut c, &context, &mut rng);
    c.final_summary();
}
