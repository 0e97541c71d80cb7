//! EfficientTrain's Fourier crop on the GPU against tessera-augment on the CPU: 64 RGB images
//! of 224 × 224 cropped to 160 × 160 (the curriculum's first stage), host to host and with the
//! images already on the device.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_augment::{kept_bins, FourierCrop, FourierCropConfig};
use tessera_gpu::{FourierCropPlan, FourierCropShape, GpuContext};

fn bench(c: &mut Criterion) {
    let (batch, channels, size, out) = (64usize, 3usize, 224usize, 160usize);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let images = Array4::from_shape_simple_fn((batch, channels, size, size), || {
        rng.random_range(0.0f32..1.0)
    });
    let cpu = FourierCrop::<f32>::new(FourierCropConfig::square(size, out)).expect("plan");
    let mut group = c.benchmark_group("fourier_crop_64x3x224_to_160");
    group.sample_size(10);
    group.bench_function("cpu", |b| {
        b.iter(|| cpu.crop_batch(images.view()).expect("cpu"))
    });
    let context = match GpuContext::new(0) {
        Ok(context) => context,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            return;
        }
    };
    let shape = FourierCropShape::new(
        size,
        size,
        &kept_bins(size, out).unwrap(),
        &kept_bins(size, out).unwrap(),
    )
    .expect("shape");
    let plan = FourierCropPlan::new(&context, shape).expect("gpu plan");
    group.bench_function("gpu_host_to_host", |b| {
        b.iter(|| plan.crop_batch(&context, images.view()).expect("gpu"))
    });
    let (resident, items) = plan.upload_images(&context, images.view()).expect("upload");
    group.bench_function("gpu_on_device", |b| {
        b.iter(|| {
            let out = plan
                .crop_on_device(&context, &resident, items)
                .expect("gpu");
            context.synchronize().expect("synchronize");
            out
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
