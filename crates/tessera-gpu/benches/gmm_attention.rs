//! GMM-masked attention, forward + backward (mask parameter gradients included), on the GPU
//! against tessera-gmm on the CPU: 12 heads, 197 tokens (a CLS token and a 14×14 grid, ViT-B/16
//! at 224²), d_head = 64, batch 32, five Gaussians per head, multiplicative mask. Host↔device
//! copies are included (the host API's cost as a caller sees it). Without a device it prints
//! `skipped: no CUDA device` and returns.
//!
//! `cargo bench -p tessera-gpu --bench gmm_attention`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gmm::{GaussianMixtureMask, LogitMask, MaskRef, TokenGrid};
use tessera_gpu::gmm_attention::{attention_backward, attention_forward, AttentionMask, GmmMask};
use tessera_gpu::GpuContext;

const BATCH: usize = 32;
const HEADS: usize = 12;
const SIDE: usize = 14;
const D_HEAD: usize = 64;
const KERNELS: usize = 5;

fn random(shape: (usize, usize, usize, usize), rng: &mut ChaCha8Rng) -> Array4<f32> {
    Array4::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

fn bench(c: &mut Criterion) {
    let context = match GpuContext::new(0) {
        Ok(context) => context,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            return;
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let tokens = SIDE * SIDE + 1;
    let shape = (BATCH, HEADS, tokens, D_HEAD);
    let (q, k, v) = (
        random(shape, &mut rng),
        random(shape, &mut rng),
        random(shape, &mut rng),
    );
    let grid = TokenGrid::square(SIDE)
        .and_then(|g| g.with_extra_tokens(1))
        .expect("valid grid");
    let cpu_mask = GaussianMixtureMask::new(grid, HEADS, KERNELS, 1).expect("valid mask");
    let mut params = vec![0.0f32; LogitMask::<f32>::parameter_count(&cpu_mask)];
    cpu_mask.initial_parameters(&mut params).expect("valid");
    let block = KERNELS * HEADS;
    let gpu_mask = AttentionMask::Gmm(GmmMask {
        rows: SIDE,
        cols: SIDE,
        extra: 1,
        heads: HEADS,
        kernels: KERNELS,
        alpha: &params[..block],
        sigma: &params[block..],
        combine: LogitMask::<f32>::combine(&cpu_mask),
    });

    let mut group = c.benchmark_group("gmm_attention_forward_backward");
    group.sample_size(10);
    group.bench_function("gpu", |b| {
        b.iter(|| {
            let forward =
                attention_forward(&context, q.view(), k.view(), v.view(), Some(&gpu_mask))
                    .expect("forward");
            let grads = attention_backward(
                &context,
                q.view(),
                k.view(),
                v.view(),
                forward.probabilities.view(),
                forward.output.view(),
                Some(&gpu_mask),
            )
            .expect("backward");
            context.synchronize().expect("synchronize");
            black_box(grads.mask_parameters[0])
        })
    });
    group.bench_function("cpu (tessera-gmm)", |b| {
        b.iter(|| {
            let mask = Some(MaskRef::new(&cpu_mask, &params));
            let (out, cache) = tessera_gmm::attention_forward(q.view(), k.view(), v.view(), mask)
                .expect("forward");
            let mut grad_params = vec![0.0f32; params.len()];
            tessera_gmm::attention_backward(
                &cache,
                q.view(),
                k.view(),
                v.view(),
                out.view(),
                mask,
                &mut grad_params,
            )
            .expect("backward");
            black_box(grad_params[0])
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
