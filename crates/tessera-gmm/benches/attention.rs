//! Forward + backward of 12-head attention (64 tokens on an 8×8 grid, d_head = 16, batch 128,
//! f32) without a mask, with the GMM mask multiplying the logits (the reference) and adding
//! to them, interleaved in one run so that the ratio is measured under the same load.
//!
//! `cargo bench -p tessera-gmm --bench attention`

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, Criterion};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gmm::{
    attention_backward, attention_forward, GaussianMixtureMask, LogitMask, MaskCombine, MaskRef,
    TokenGrid,
};

const BATCH: usize = 128;
const HEADS: usize = 12;
const SIDE: usize = 8;
const D_HEAD: usize = 16;

fn random(shape: (usize, usize, usize, usize), rng: &mut ChaCha8Rng) -> Array4<f32> {
    Array4::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

fn step(
    q: &Array4<f32>,
    k: &Array4<f32>,
    v: &Array4<f32>,
    mask: Option<MaskRef<'_, f32>>,
    grad_params: &mut [f32],
) -> f32 {
    let (out, cache) = attention_forward(q.view(), k.view(), v.view(), mask).expect("valid");
    let grads = attention_backward(
        &cache,
        q.view(),
        k.view(),
        v.view(),
        out.view(),
        mask,
        grad_params,
    )
    .expect("valid");
    grads.q[[0, 0, 0, 0]] + grads.k[[0, 0, 0, 0]] + grads.v[[0, 0, 0, 0]]
}

fn attention(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let tokens = SIDE * SIDE;
    let shape = (BATCH, HEADS, tokens, D_HEAD);
    let (q, k, v) = (
        random(shape, &mut rng),
        random(shape, &mut rng),
        random(shape, &mut rng),
    );
    let grid = TokenGrid::square(SIDE).expect("valid grid");
    let multiply = GaussianMixtureMask::new(grid, HEADS, 5, 1).expect("valid mask");
    let add = multiply.clone().with_combine(MaskCombine::Add);
    let mut params = vec![0.0f32; LogitMask::<f32>::parameter_count(&multiply)];
    multiply.initial_parameters(&mut params).expect("length");
    let mut grad_params = vec![0.0f32; params.len()];

    let mut group = c.benchmark_group("attention_fwd_bwd_b128_h12_n64_d16_f32");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("unmasked", |b| {
        b.iter(|| black_box(step(&q, &k, &v, None, &mut [])))
    });
    group.bench_function("gmm_multiply", |b| {
        b.iter(|| {
            black_box(step(
                &q,
                &k,
                &v,
                Some(MaskRef::new(&multiply, &params)),
                &mut grad_params,
            ))
        })
    });
    group.bench_function("gmm_add", |b| {
        b.iter(|| {
            black_box(step(
                &q,
                &k,
                &v,
                Some(MaskRef::new(&add, &params)),
                &mut grad_params,
            ))
        })
    });
    group.finish();
}

/// CPU time of all threads of this process in seconds (the first field of each thread's
/// `/proc/self/task/*/schedstat`, nanoseconds on a CPU): on a loaded machine it excludes the
/// time the threads wait for a core, which wall time does not.
fn process_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

/// Best-of-`ROUNDS` wall and CPU time of each variant, the variants interleaved round by round so that
/// a change of machine load hits all of them alike; printed with the load average.
fn interleaved() {
    const ROUNDS: usize = 25;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let shape = (BATCH, HEADS, SIDE * SIDE, D_HEAD);
    let (q, k, v) = (
        random(shape, &mut rng),
        random(shape, &mut rng),
        random(shape, &mut rng),
    );
    let grid = TokenGrid::square(SIDE).expect("valid grid");
    let multiply = GaussianMixtureMask::new(grid, HEADS, 5, 1).expect("valid mask");
    let add = multiply.clone().with_combine(MaskCombine::Add);
    let mut params = vec![0.0f32; LogitMask::<f32>::parameter_count(&multiply)];
    multiply.initial_parameters(&mut params).expect("length");
    let mut grad_params = vec![0.0f32; params.len()];
    let mut best = [f64::INFINITY; 3];
    let mut best_cpu = [f64::INFINITY; 3];
    for _ in 0..ROUNDS {
        for variant in 0..3 {
            let start = Instant::now();
            let cpu = process_cpu_seconds();
            let mask = match variant {
                0 => None,
                1 => Some(MaskRef::new(&multiply as &dyn LogitMask<f32>, &params[..])),
                _ => Some(MaskRef::new(&add as &dyn LogitMask<f32>, &params[..])),
            };
            let grads: &mut [f32] = if variant == 0 {
                &mut []
            } else {
                &mut grad_params
            };
            black_box(step(&q, &k, &v, mask, grads));
            best[variant] = best[variant].min(start.elapsed().as_secs_f64());
            best_cpu[variant] = best_cpu[variant].min(process_cpu_seconds() - cpu);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "interleaved best of {ROUNDS} (threads {}): wall: unmasked {:.1} ms, gmm multiply {:.1} ms ({:.3}x), gmm add {:.1} ms ({:.3}x); cpu: unmasked {:.1} ms, gmm multiply {:.1} ms ({:.3}x), gmm add {:.1} ms ({:.3}x); loadavg {}",
        rayon::current_num_threads(),
        best[0] * 1e3,
        best[1] * 1e3,
        best[1] / best[0],
        best[2] * 1e3,
        best[2] / best[0],
        best_cpu[0] * 1e3,
        best_cpu[1] * 1e3,
        best_cpu[1] / best_cpu[0],
        best_cpu[2] * 1e3,
        best_cpu[2] / best_cpu[0],
        load.trim()
    );
}

criterion_group!(benches, attention);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        interleaved();
        if std::env::var_os("GMM_BENCH_INTERLEAVED_ONLY").is_some() {
            return;
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
